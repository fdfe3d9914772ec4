"""ssdbook.detect: Detect (decode -> threshold -> top-k -> batched NMS) and the
hand-written nms."""

import pytest
import torch
import torchvision

from ssdbook.detect import Detect, nms, noisy_oracle
from ssdbook.encoding import decode


def _random_boxes(n, g, scale=1.0):
    xy = torch.rand(n, 2, generator=g) * scale
    wh = torch.rand(n, 2, generator=g) * 0.3 * scale + 0.01
    return torch.cat([xy, xy + wh], 1)


@pytest.mark.parametrize("case", [0, 1])
def test_detect_reproduces_golden(golden, case):
    c = golden["decode_nms_cases"][case]
    priors = golden["priors_voc300"]
    assert torch.equal(decode(c["loc"], priors), c["decoded_boxes"])
    out = Detect(21, 0, 200, 0.01, 0.45)(c["loc"][None], c["conf_scores"][None], priors)
    assert out.shape == (1, 21, 200, 5)
    assert torch.equal(out[0], c["detect_output"])
    assert torch.equal((out[0, :, :, 0] > 0).sum(1), c["kept_per_class"])


@pytest.mark.parametrize("case", [0, 1])
def test_hand_nms_reproduces_golden_per_class(golden, case):
    c = golden["decode_nms_cases"][case]
    for cl in range(1, 21):
        s = c["conf_scores"][:, cl]
        m = s > 0.01
        boxes, scores = c["decoded_boxes"][m], s[m]
        keep = nms(boxes, scores, 0.45, 200)
        assert len(keep) == c["kept_per_class"][cl]
        rows = torch.cat([scores[keep, None], boxes[keep]], 1)
        assert torch.equal(rows, c["detect_output"][cl, : len(keep)])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("thresh", [0.0, 0.3, 0.45, 0.7, 1.0])
def test_hand_nms_equals_torchvision(seed, thresh):
    g = torch.Generator().manual_seed(seed)
    n = 150
    boxes = _random_boxes(n, g)
    scores = torch.rand(n, generator=g)
    ours = nms(boxes, scores, thresh, top_k=n)
    ref = torchvision.ops.nms(boxes, scores, thresh)
    assert torch.equal(ours, ref)


def test_hand_nms_top_k_cuts_before_suppression():
    g = torch.Generator().manual_seed(0)
    boxes, scores = _random_boxes(300, g), torch.rand(300, generator=g)
    top = scores.argsort(descending=True)[:50]
    keep = nms(boxes, scores, 0.45, top_k=50)
    assert torch.equal(keep, top[torchvision.ops.nms(boxes[top], scores[top], 0.45)])


def test_hand_nms_empty_and_bad_input():
    assert nms(torch.zeros(0, 4), torch.zeros(0)).shape == (0,)
    with pytest.raises(ValueError):
        nms(torch.zeros(3, 5), torch.zeros(3))
    boxes, scores = _random_boxes(5, torch.Generator().manual_seed(0)), torch.rand(5)
    for top_k in (0, -1, 2.5, True):  # top_k=0 used to keep every box ([-0:])
        with pytest.raises(ValueError, match="top_k"):
            nms(boxes, scores, 0.45, top_k=top_k)
    for overlap in (float("nan"), -0.1, 1.5, "0.5"):
        with pytest.raises(ValueError, match="overlap"):
            nms(boxes, scores, overlap)
    assert len(nms(boxes, scores, 0.45, top_k=1)) == 1


def test_batched_equals_one_image_at_a_time(golden):
    g = torch.Generator().manual_seed(1)
    priors = golden["priors_voc300"]
    B, P, C = 3, priors.shape[0], 6
    loc = torch.randn(B, P, 4, generator=g) * 0.5
    conf = (torch.randn(B, P, C, generator=g) * 2).softmax(-1)
    det = Detect(C, 0, 50, 0.05, 0.45)
    out = det(loc, conf, priors)
    assert out.shape == (B, C, 50, 5)
    for b in range(B):
        assert torch.equal(out[b : b + 1], det(loc[b : b + 1], conf[b : b + 1], priors))
    assert (out[:, 0] == 0).all()  # background row
    s = out[..., 0]
    assert (s[..., 1:] <= s[..., :-1]).all()  # descending, zero padded at the end
    # same result as torchvision's nms, one image and class at a time
    boxes = decode(loc, priors)
    for b in range(B):
        for c in range(1, C):
            sc = conf[b, :, c]
            idx = sc.argsort(descending=True)[:50]
            idx = idx[sc[idx] > 0.05]
            keep = idx[torchvision.ops.nms(boxes[b, idx], sc[idx], 0.45)]
            n = len(keep)
            assert torch.equal(out[b, c, :n, 0], sc[keep]) and torch.equal(
                out[b, c, :n, 1:], boxes[b, keep]
            )
            assert (out[b, c, n:] == 0).all()


def test_no_cross_class_suppression_far_outside_the_image():
    # identical boxes in two classes, with coordinates far below -1 (torchvision's
    # offset trick needs care)
    boxes = torch.tensor([[[-3.0, -3.0, -2.5, -2.5], [0.1, 0.1, 0.2, 0.2]]])
    conf = torch.tensor([[[0.0, 0.5, 0.5], [0.0, 0.5, 0.5]]])
    out = Detect(3, 0, 5, 0.01, 0.45).detect_boxes(boxes, conf)
    assert ((out[0, 1:, :, 0] > 0).sum(1) == 2).all()


def test_nothing_above_threshold_gives_zeros():
    P = 10
    priors = torch.tensor([[0.5, 0.5, 0.2, 0.2]]).repeat(P, 1)
    conf = torch.zeros(2, P, 4)
    conf[..., 0] = 1.0
    out = Detect(4, 0, 7, 0.01, 0.45)(torch.zeros(2, P, 4), conf, priors)
    assert out.shape == (2, 4, 7, 5) and (out == 0).all()
    assert [len(d["scores"]) for d in Detect.to_list(out)] == [0, 0]


def test_to_list():
    out = torch.zeros(2, 4, 3, 5)
    out[0, 1, 0] = torch.tensor([0.9, 0.1, 0.1, 0.2, 0.2])
    out[0, 3, 0] = torch.tensor([0.95, 0.3, 0.3, 0.4, 0.4])
    out[0, 3, 1] = torch.tensor([0.2, 0.5, 0.5, 0.6, 0.6])
    out[1, 2, 0] = torch.tensor([0.5, 0.0, 0.0, 1.0, 1.0])
    res = Detect.to_list(out)
    assert [len(r["scores"]) for r in res] == [3, 1]
    assert torch.equal(res[0]["scores"], torch.tensor([0.95, 0.9, 0.2]))
    assert torch.equal(res[0]["labels"], torch.tensor([2, 0, 2]))  # 0-based
    assert torch.equal(res[0]["boxes"][0], torch.tensor([0.3, 0.3, 0.4, 0.4]))
    assert torch.equal(res[1]["labels"], torch.tensor([1]))
    res = Detect.to_list(out, max_per_image=2)
    assert [len(r["scores"]) for r in res] == [2, 1]
    assert torch.equal(res[0]["scores"], torch.tensor([0.95, 0.9]))
    res = Detect.to_list(out, score_thresh=0.6)
    assert [len(r["scores"]) for r in res] == [2, 0] and res[1]["boxes"].shape == (0, 4)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(conf_thresh=float("nan")), "conf_thresh"),
        (dict(conf_thresh=float("inf")), "conf_thresh"),
        (dict(conf_thresh=-0.1), "conf_thresh"),
        (dict(conf_thresh=1.0), "conf_thresh"),
        (dict(conf_thresh="0.1"), "conf_thresh"),
        (dict(top_k=0), "top_k"),
        (dict(top_k=-5), "top_k"),
        (dict(top_k=10.0), "top_k"),
        (dict(nms_thresh=0.0), "nms_thresh"),
        (dict(nms_thresh=float("nan")), "nms_thresh"),
        (dict(nms_thresh=1.01), "nms_thresh"),
        (dict(bkg_label=3), "bkg_label"),
        (dict(num_classes=1), "num_classes"),
        (dict(num_classes=2.5), "num_classes"),
    ],
)
def test_invalid_thresholds_are_one_line_errors(kwargs, name):
    kwargs = dict(dict(num_classes=3), **kwargs)
    with pytest.raises(ValueError, match=name) as e:
        Detect(**kwargs)
    assert "\n" not in str(e.value)


def test_bad_input_raises():
    det = Detect(3)
    priors = torch.rand(5, 4)
    with pytest.raises(ValueError, match="conf"):
        det(torch.zeros(1, 5, 4), torch.zeros(1, 5, 4), priors)
    with pytest.raises(ValueError, match="priors"):
        det(torch.zeros(1, 5, 4), torch.zeros(1, 5, 3), torch.rand(6, 4))
    with pytest.raises(ValueError, match="loc"):
        det(torch.zeros(5, 4), torch.zeros(1, 5, 3), priors)


def test_test_phase_model_returns_detections():
    model = pytest.importorskip("ssdbook.model")
    torch.manual_seed(0)
    net = model.build_ssd("test", 300, 7, base="mini").eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, 300, 300))
    assert out.shape == (2, 7, 200, 5)
    assert (out[:, 0] == 0).all()


def test_noisy_oracle_shapes_probabilities_and_determinism(golden):
    priors = golden["priors_voc300"]
    targets = [
        torch.tensor([[0.1, 0.1, 0.5, 0.6, 2.0], [0.5, 0.5, 0.9, 0.8, 0.0]]),
        torch.zeros(0, 5),
    ]
    loc, conf = noisy_oracle(targets, priors, 4, seed=3)
    assert loc.shape == (2, priors.shape[0], 4) and conf.shape == (
        2,
        priors.shape[0],
        4,
    )
    assert torch.allclose(conf.sum(-1), torch.ones(2, priors.shape[0]))
    loc2, conf2 = noisy_oracle(
        targets[:1], priors, 4, seed=3
    )  # image 0's noise depends on image 0 only
    assert torch.equal(loc2[0], loc[0]) and torch.equal(conf2[0], conf[0])
    dets = Detect.to_list(Detect(4)(loc, conf, priors), score_thresh=0.9)
    assert len(dets[0]["scores"]) > len(
        dets[1]["scores"]
    )  # the empty image gets only noise
    assert set(dets[0]["labels"][:2].tolist()) == {
        0,
        2,
    }  # the best two: the two objects


# ---------------------------------------------------------------- exact score ties,
# against a port of the reference
def ref_nms(boxes, scores, overlap=0.5, top_k=200, stable=True):
    """amdegroot/ssd.pytorch layers/box_utils.py `nms`, ported line by line;
    `stable=True` makes its `scores.sort(0)` stable (torch's default sort scrambles runs
    of more than 16 equal values)."""
    keep = scores.new(scores.size(0)).zero_().long()
    if boxes.numel() == 0:
        return keep, 0
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = torch.mul(x2 - x1, y2 - y1)
    v, idx = (
        scores.sort(dim=0, stable=True) if stable else scores.sort(0)
    )  # sort in ascending order
    idx = idx[-top_k:]
    count = 0
    while idx.numel() > 0:
        i = idx[-1]
        keep[count] = i
        count += 1
        if idx.size(0) == 1:
            break
        idx = idx[:-1]
        xx1 = torch.index_select(x1, 0, idx).clamp(min=x1[i])
        yy1 = torch.index_select(y1, 0, idx).clamp(min=y1[i])
        xx2 = torch.index_select(x2, 0, idx).clamp(max=x2[i])
        yy2 = torch.index_select(y2, 0, idx).clamp(max=y2[i])
        w, h = (xx2 - xx1).clamp(min=0.0), (yy2 - yy1).clamp(min=0.0)
        inter = w * h
        rem_areas = torch.index_select(area, 0, idx)
        union = (rem_areas - inter) + area[i]
        IoU = inter / union
        idx = idx[IoU.le(overlap)]
    return keep, count


def ref_detect(
    loc,
    conf,
    priors,
    num_classes,
    top_k=200,
    conf_thresh=0.01,
    nms_thresh=0.45,
    stable=True,
):
    """amdegroot/ssd.pytorch layers/functions/detection.py `Detect.forward`, ported (one
    image, one class at a time)."""
    num, num_priors = loc.size(0), priors.size(0)
    output = torch.zeros(num, num_classes, top_k, 5, dtype=conf.dtype)
    conf_preds = conf.view(num, num_priors, num_classes).transpose(2, 1)
    for i in range(num):
        decoded_boxes = decode(loc[i], priors, (0.1, 0.2))
        conf_scores = conf_preds[i].clone()
        for cl in range(1, num_classes):
            c_mask = conf_scores[cl].gt(conf_thresh)
            scores = conf_scores[cl][c_mask]
            if scores.numel() == 0:  # the reference tests scores.dim() == 0
                continue
            l_mask = c_mask.unsqueeze(1).expand_as(decoded_boxes)
            boxes = decoded_boxes[l_mask].view(-1, 4)
            ids, count = ref_nms(boxes, scores, nms_thresh, top_k, stable)
            output[i, cl, :count] = torch.cat(
                (scores[ids[:count]].unsqueeze(1), boxes[ids[:count]]), 1
            )
    return output


def _saturated(golden, B=2, C=6, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    priors = golden["priors_voc300"].to(dtype)
    loc = (torch.randn(B, priors.shape[0], 4, generator=g) * 0.3).to(dtype)
    conf = (
        (torch.randn(B, priors.shape[0], C, generator=g) * 40).to(dtype).softmax(-1)
    )  # many exactly 1.0
    return loc, conf, priors


@pytest.mark.parametrize("seed", range(3))
def test_exact_ties_broken_like_the_reference(golden, seed):
    loc, conf, priors = _saturated(golden, seed=seed)
    ones = (conf[..., 1:] == 1.0).sum(1)  # (B, C-1) exactly tied top scores
    assert (ones > 200).all()  # ties decide the top_k cut and NMS order
    ours = Detect(6)(loc, conf, priors)
    assert torch.equal(ours, ref_detect(loc, conf, priors, 6))
    # the opposite tie rule (lower index first) keeps other boxes: the test can fail
    flip = Detect(6)(loc.flip(1), conf.flip(1), priors.flip(0))
    assert not torch.equal(ours, flip)


def test_exact_ties_float64_path_and_small_top_k(golden):
    loc, conf, priors = _saturated(golden, seed=3, dtype=torch.float64)
    assert torch.equal(Detect(6)(loc, conf, priors), ref_detect(loc, conf, priors, 6))
    loc, conf, priors = _saturated(golden, seed=4)
    det = Detect(6, top_k=7, nms_thresh=0.3, conf_thresh=0.2)
    assert torch.equal(
        det(loc, conf, priors), ref_detect(loc, conf, priors, 6, 7, 0.2, 0.3)
    )


def test_hand_nms_ties_like_the_reference():
    g = torch.Generator().manual_seed(0)
    boxes = _random_boxes(400, g)
    scores = (
        torch.randint(0, 4, (400,), generator=g).float() / 4
    )  # runs of ~100 exactly equal scores
    for top_k in (400, 50):
        keep, count = ref_nms(boxes, scores, 0.45, top_k)
        assert torch.equal(nms(boxes, scores, 0.45, top_k), keep[:count])
    # on up to 16 equal values torch's (unstable) default sort keeps their order: there
    # the literal
    # reference agrees with its stable version, i.e. with the rule "higher index first"
    small, ssc = boxes[:16], torch.ones(16)
    keep, count = ref_nms(small, ssc, 0.45, 200, stable=False)
    assert torch.equal(nms(small, ssc, 0.45), keep[:count])
    assert int(nms(small, ssc, 0.45)[0]) == 15


# ---------------------------------------------------------------- predict and the
# model's default detector
def test_predict_any_phase_restores_mode_and_clips():
    from ssdbook.detect import predict
    from ssdbook.model import build_ssd

    torch.manual_seed(0)
    net = build_ssd("train", 300, 4, base="mini")
    x = torch.randn(2, 3, 300, 300)
    a = predict(net, x)
    assert net.training  # mode restored
    test_net = build_ssd("test", 300, 4, base="mini")
    test_net.load_state_dict(net.state_dict())
    b = predict(test_net, x)
    assert len(a) == 2 and all(
        torch.equal(d["boxes"], e["boxes"]) and torch.equal(d["scores"], e["scores"])
        for d, e in zip(a, b)
    )
    for d in a:
        assert (
            d["boxes"].shape[1] == 4 and d["boxes"].min() >= 0 and d["boxes"].max() <= 1
        )
        assert (d["scores"][1:] <= d["scores"][:-1]).all() and d["labels"].max() < 3
    # the test phase's forward is Detect (registered by importing ssdbook.detect) on the
    # raw heads
    net.eval()
    test_net.eval()
    with torch.no_grad():
        loc, conf, priors = net.raw(x)
        assert torch.equal(test_net(x), Detect(4)(loc, conf.softmax(-1), priors))
    c = predict(net, x, detect=Detect(4, conf_thresh=0.5))
    assert all((d["scores"] > 0.5).all() for d in c)


def test_draw_detections_captions_stay_inside(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ssdbook.detect import draw_detections, save_detections

    image = torch.rand(3, 100, 120)
    det = dict(
        boxes=torch.tensor([[0.0, 0.0, 0.5, 0.4], [0.4, 0.5, 0.9, 0.9]]),
        scores=torch.tensor([0.9, 0.8]),
        labels=torch.tensor([0, 1]),
    )
    fig, ax = plt.subplots()
    draw_detections(
        ax,
        image,
        det,
        ["a", "b"],
        score_thresh=0.5,
        ground_truth=dict(boxes=det["boxes"][:1]),
    )
    texts = {t.get_text(): t for t in ax.texts}
    assert set(texts) == {"a 0.90", "b 0.80"}
    assert (
        texts["a 0.90"].get_va() == "top" and texts["b 0.80"].get_va() == "bottom"
    )  # box at the top: inside
    assert len(ax.patches) == 3  # two detections + one ground truth
    plt.close(fig)
    out = save_detections(tmp_path / "d.png", image, det, ["a", "b"])
    from PIL import Image

    assert Image.open(out).size == (120, 100)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_dtypes_run_and_keep_about_the_same_boxes(golden, dtype):
    c, priors = golden["decode_nms_cases"][1], golden["priors_voc300"]
    ref = Detect(21)(c["loc"][None], c["conf_scores"][None], priors)
    out = Detect(21)(
        c["loc"][None].to(dtype), c["conf_scores"][None].to(dtype), priors.to(dtype)
    )
    assert out.dtype == dtype and out.shape == ref.shape
    assert (
        abs(int((out[..., 0] > 0).sum()) - int((ref[..., 0] > 0).sum())) <= 3
    )  # rounding moves a few near ties


def test_predict_unclipped_and_capped():
    from ssdbook.detect import predict
    from ssdbook.model import build_ssd

    torch.manual_seed(1)
    net = build_ssd("train", 300, 4, base="mini")
    x = torch.randn(2, 3, 300, 300)
    raw = predict(net, x, clip=False)
    capped = predict(net, x, clip=False, max_per_image=5)
    for r, c in zip(raw, capped):
        assert len(c["scores"]) == min(5, len(r["scores"]))
        assert torch.equal(c["scores"], r["scores"][:5]) and torch.equal(
            c["boxes"], r["boxes"][:5]
        )
    assert any(
        (r["boxes"] < 0).any() or (r["boxes"] > 1).any() for r in raw
    )  # an untrained net leaves the image
    with pytest.raises(ValueError, match="max_per_image"):
        predict(net, x, max_per_image=0)
