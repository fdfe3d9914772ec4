"""Issue 20.3: a trained network's outputs are decoded with its own priors, everywhere,
by construction.

A checkpoint trained with `priors='shapes'` (chapter 2's designed layout: 7942 of its
8732 priors differ from `voc`'s) goes through every library path that decodes:
`load_model`, `predict`, the `'test'` phase, `evaluate_model` and `Detector`. Each must
give what decoding with the shapes priors gives, and differ from decoding with `voc`'s.
"""

import pytest
import torch

from ssdbook.checkpoint import checkpoint_state, load_model, save_checkpoint
from ssdbook.data import SHAPES_CLASSES, BaseTransform
from ssdbook.dataset import VOCDetection
from ssdbook.detect import Detect, predict
from ssdbook.evaluate import evaluate_detections, evaluate_model
from ssdbook.inference import Detector
from ssdbook.model import build_ssd
from ssdbook.priors import CONFIGS, PriorBox, voc
from ssdbook.shapes import make_shapes_voc

C = len(SHAPES_CLASSES) + 1


@pytest.fixture(scope="module")
def shapes_ckpt(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("own_priors")
    torch.manual_seed(0)
    net = build_ssd("train", num_classes=C, base="mini", cfg=CONFIGS["shapes"])
    with torch.no_grad():
        for conv in net.conf:
            conv.weight.mul_(30)  # confident, distinct scores
    path = save_checkpoint(
        tmp / "shapes.pth",
        checkpoint_state(
            net, iteration=1, classes=list(SHAPES_CLASSES), config=dict(priors="shapes")
        ),
    )
    root = make_shapes_voc(tmp / "data", n_train=1, n_test=6)
    ds = VOCDetection(
        root.parent,
        [("shapes", "test")],
        transform=BaseTransform(),
        classes=SHAPES_CLASSES,
        keep_difficult=True,
    )
    return path, ds


def decoded(net, images, priors, clip=True):
    """The pipeline written out with the given priors: raw heads, softmax, Detect,
    to_list."""
    with torch.no_grad():
        loc, conf, _ = net.raw(images)
        out = Detect(C)(loc, conf.softmax(-1), priors)
    if clip:
        out[..., 1:].clamp_(0, 1)
    return Detect.to_list(out)


def same(a, b):
    return all(
        torch.equal(x["boxes"], y["boxes"]) and torch.equal(x["scores"], y["scores"])
        for x, y in zip(a, b)
    ) and len(a) == len(b)


def test_the_checkpoint_rebuilds_its_own_priors(shapes_ckpt):
    net, ck = load_model(shapes_ckpt[0], device="cpu")
    shapes = PriorBox(CONFIGS["shapes"]).forward()
    assert ck["prior_cfg"]["name"] == "shapes" and torch.equal(net.priors, shapes)
    assert int((shapes != PriorBox(voc).forward()).any(1).sum()) > 7000


def test_predict_and_test_phase_decode_with_the_net_priors(shapes_ckpt):
    path, ds = shapes_ckpt
    net, _ = load_model(path, device="cpu")
    images = torch.stack([ds[i][0] for i in range(4)])
    own, wrong = (
        decoded(net, images, net.priors),
        decoded(net, images, PriorBox(voc).forward()),
    )
    assert same(predict(net, images), own) and not same(own, wrong)
    test_net, _ = load_model(path, device="cpu", phase="test")
    with torch.no_grad():
        out = test_net(images)  # Detect on the net's own priors
    assert same(Detect.to_list(out.clamp(min=0, max=1)), own)


def test_evaluate_model_decodes_with_the_net_priors(shapes_ckpt):
    path, ds = shapes_ckpt
    net, _ = load_model(path, device="cpu")
    res = evaluate_model(net, ds, return_detections=True)
    images = torch.stack([ds[i][0] for i in range(len(ds))])
    own = decoded(net, images, net.priors, clip=False)
    for d, o, a in zip(res["detections"], own, res["annotations"]):
        wh = torch.tensor([a["width"], a["height"], a["width"], a["height"]])
        assert torch.allclose(d["boxes"], o["boxes"] * wh) and torch.equal(
            d["scores"], o["scores"]
        )


def test_detector_decodes_with_the_checkpoint_priors(shapes_ckpt):
    path, ds = shapes_ckpt
    det = Detector.from_checkpoint(
        path, device="cpu", score_thresh=0.01, max_detections=200
    )
    assert torch.equal(det.net.priors, PriorBox(CONFIGS["shapes"]).forward())
    images = [ds.pull_image(i) for i in range(2)]
    res = det.predict(images)
    own = decoded(
        det.net, torch.stack([BaseTransform()(im)[0] for im in images]), det.net.priors
    )
    for r, o, im in zip(res, own, images):
        H, W = im.shape[-2:]
        keep = o["scores"] > 0.01
        assert torch.allclose(
            r["boxes"], o["boxes"][keep][:200] * torch.tensor([W, H, W, H]), atol=1e-4
        )


def test_detect_refuses_logits_and_evaluate_refuses_mixed_units(shapes_ckpt):
    "Issue 21.13: the two silent mistakes of using a model by hand are one-line errors."
    path, ds = shapes_ckpt
    net, _ = load_model(path, device="cpu")
    images = torch.stack([ds[i][0] for i in range(2)])
    with torch.no_grad():
        loc, logits, priors = net.raw(images)
    with pytest.raises(ValueError, match="probabilities .*logits") as e:
        Detect(C)(loc, logits, priors)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="probabilities"):
        Detect(C)(loc, logits.softmax(-1) * 0.5, priors)  # rows summing to 0.5
    with pytest.raises(ValueError, match="probabilities"):
        Detect(C)(
            loc,
            logits.softmax(-1)
            .nan_to_num(0)
            .index_fill(0, torch.tensor([0]), float("nan")),
            priors,
        )
    from ssdbook.detect import _check_probabilities

    _check_probabilities(logits.softmax(-1).bfloat16())  # low precision sums pass
    assert Detect(C)(loc[:, :0], logits[:, :0].softmax(-1), priors[:0]).shape == (
        2,
        C,
        200,
        5,
    )
    dets = predict(net, images)  # fractions
    annos = [ds.pull_anno(i) for i in range(2)]  # pixels
    with pytest.raises(
        ValueError, match="detections' boxes are in fractions.*annotations' in pixels"
    ):
        evaluate_detections(dets, annos)
    px = [dict(d, boxes=d["boxes"] * 300) for d in dets]
    frac = [dict(a, boxes=torch.as_tensor(a["boxes"]) / 300) for a in annos]
    with pytest.raises(
        ValueError, match="detections' boxes are in pixels.*annotations' in fractions"
    ):
        evaluate_detections(px, frac)
    assert (
        evaluate_detections(px, annos)["map"] >= 0
        and evaluate_detections(dets, frac)["map"] >= 0
    )
