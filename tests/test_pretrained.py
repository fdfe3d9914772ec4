"""Chapter 3a (issue 21.6): torchvision's ssd300_vgg16 converted into
build_ssd(base='vgg16'), proved offline.

torchvision's model with random weights (never a download) and ours after
`load_torchvision_ssd300` see the same 300 x 300 image; torchvision's own
post-processing and chapter 10's `Detect` give the same boxes and scores."""

import pytest
import torch

from ssdbook.data import BaseTransform
from ssdbook.detect import Detect
from ssdbook.encoding import decode
from ssdbook.model import build_ssd
from ssdbook.pretrained import (
    coco_classes,
    load_torchvision_ssd300,
    pretrained_ssd300,
    torchvision_priors,
)
from ssdbook.priors import CONFIGS

tv_detection = pytest.importorskip("torchvision.models.detection")


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    tv = tv_detection.ssd300_vgg16(weights=None, weights_backbone=None).eval()
    with torch.no_grad():
        for conv in tv.head.classification_head.module_list:
            conv.weight.mul_(0.1)  # random VGG: keep the softmax off 0 and 1
    net = load_torchvision_ssd300(
        build_ssd("train", 300, 91, "vgg16", cfg=torchvision_priors()), tv.state_dict()
    ).eval()
    g = torch.Generator().manual_seed(1)
    image = torch.nn.functional.interpolate(
        torch.rand(1, 3, 30, 30, generator=g), size=(300, 300), mode="bilinear"
    )[0]  # a smooth 300 x 300 image
    with torch.no_grad():
        out_tv = tv([image])[0]
        loc, conf, priors = net.raw(BaseTransform()(image)[0][None])
    return tv, net, image, out_tv, (loc, conf, priors)


def test_same_detections_through_both_post_processings(pair):
    tv, net, image, out_tv, (loc, conf, priors) = pair
    det = Detect(
        91,
        top_k=tv.topk_candidates,
        conf_thresh=tv.score_thresh,
        nms_thresh=tv.nms_thresh,
    )
    boxes = decode(loc, priors).clamp(
        0, 1
    )  # torchvision clips before NMS (Detect: after)
    ours = Detect.to_list(
        det.detect_boxes(boxes, conf.softmax(-1)), max_per_image=tv.detections_per_img
    )[0]
    n = 100
    assert len(out_tv["scores"]) >= n and len(ours["scores"]) >= n
    boxes = ours["boxes"] * 300  # torchvision: pixels
    for b, s, l in zip(out_tv["boxes"][:n], out_tv["scores"][:n], out_tv["labels"][:n]):
        same = (ours["labels"] + 1 == l) & ((ours["scores"] - s).abs() < 1e-4)
        assert same.any(), (float(s), int(l))
        assert float((boxes[same] - b).abs().amax(1).min()) < 0.05, (b, boxes[same][:3])
    torch.testing.assert_close(
        ours["scores"][:n], out_tv["scores"][:n], atol=1e-4, rtol=0
    )


def test_priors_and_raw_outputs(pair):
    tv, net, image, out_tv, (loc, conf, priors) = pair
    from torchvision.models.detection.image_list import ImageList

    maps = [torch.zeros(1, 1, f, f) for f in (38, 19, 10, 5, 3, 1)]
    anchors = tv.anchor_generator(
        ImageList(torch.zeros(1, 3, 300, 300), [(300, 300)]), maps
    )[0]
    corners = (
        torch.cat(
            [priors[:, :2] - priors[:, 2:] / 2, priors[:, :2] + priors[:, 2:] / 2], 1
        )
        * 300
    )
    torch.testing.assert_close(corners, anchors, atol=1e-3, rtol=0)
    with torch.no_grad():
        batch, _ = tv.transform([image])
        head = tv.head(list(tv.backbone(batch.tensors).values()))
    torch.testing.assert_close(loc[0], head["bbox_regression"][0], atol=0.02, rtol=1e-3)
    torch.testing.assert_close(
        conf[0].softmax(-1), head["cls_logits"][0].softmax(-1), atol=1e-4, rtol=0
    )


def test_81_classes_keep_the_real_ones_and_new_classes_keep_fresh_heads(pair):
    tv, net91, image, _, (_, conf91, _) = pair
    names = coco_classes(with_na=True)
    assert len(coco_classes()) == 80 and len(names) == 90 and names[0] == "person"
    net81 = load_torchvision_ssd300(
        build_ssd("train", 300, 81, "vgg16", cfg=torchvision_priors()), tv.state_dict()
    ).eval()
    keep = [0] + [i + 1 for i, n in enumerate(names) if n != "N/A"]
    with torch.no_grad():
        _, conf81, _ = net81.raw(BaseTransform()(image)[0][None])
    torch.testing.assert_close(conf81, conf91[..., keep], atol=1e-4, rtol=0)
    torch.manual_seed(3)
    fresh = build_ssd("train", 300, 4, "vgg16", cfg=torchvision_priors())
    before = {
        k: v.clone() for k, v in fresh.state_dict().items() if k.startswith("conf.")
    }
    load_torchvision_ssd300(fresh, tv.state_dict())
    assert all(
        torch.equal(fresh.state_dict()[k], v) for k, v in before.items()
    )  # heads untouched
    assert torch.equal(
        fresh.state_dict()["loc.0.weight"], net91.state_dict()["loc.0.weight"]
    )


def test_wrong_network_or_weights_are_one_line_errors(pair):
    tv = pair[0]
    cases = [
        (build_ssd("train", 300, 91, "mini"), tv.state_dict(), "base='vgg16'"),
        (
            build_ssd("train", 300, 91, "vgg16", cfg=CONFIGS["coco"]),
            tv.state_dict(),
            "torchvision_priors",
        ),
        (
            build_ssd("train", 300, 91, "vgg16", cfg=torchvision_priors()),
            {"x": torch.zeros(1)},
            "not a torchvision ssd300_vgg16",
        ),
    ]
    for net, sd, message in cases:
        with pytest.raises(ValueError, match=message) as e:
            load_torchvision_ssd300(net, sd)
        assert "\n" not in str(e.value)


def test_pretrained_from_a_saved_state_dict(pair, tmp_path):
    "`weights=` a path: what a user does after downloading once (no download here)."
    tv, net91 = pair[0], pair[1]
    path = tmp_path / "ssd300_vgg16.pth"
    torch.save(tv.state_dict(), path)
    net = pretrained_ssd300(num_classes=91, weights=path)
    assert all(
        torch.equal(a, b)
        for a, b in zip(net.state_dict().values(), net91.state_dict().values())
    )
    assert net.cfg["name"] == "coco_torchvision"
