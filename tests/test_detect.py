"""ssdbook.detect: Detect (decode -> threshold -> top-k -> batched NMS) and the hand-written nms."""
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
    assert (out[:, 0] == 0).all()                                  # background row
    s = out[..., 0]
    assert (s[..., 1:] <= s[..., :-1]).all()                       # descending, zero padded at the end
    # same result as torchvision's nms, one image and class at a time
    boxes = decode(loc, priors)
    for b in range(B):
        for c in range(1, C):
            sc = conf[b, :, c]
            idx = sc.argsort(descending=True)[:50]
            idx = idx[sc[idx] > 0.05]
            keep = idx[torchvision.ops.nms(boxes[b, idx], sc[idx], 0.45)]
            n = len(keep)
            assert torch.equal(out[b, c, :n, 0], sc[keep]) and torch.equal(out[b, c, :n, 1:], boxes[b, keep])
            assert (out[b, c, n:] == 0).all()


def test_no_cross_class_suppression_far_outside_the_image():
    # identical boxes in two classes, with coordinates far below -1 (torchvision's offset trick needs care)
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
    assert torch.equal(res[0]["labels"], torch.tensor([2, 0, 2]))                # 0-based
    assert torch.equal(res[0]["boxes"][0], torch.tensor([0.3, 0.3, 0.4, 0.4]))
    assert torch.equal(res[1]["labels"], torch.tensor([1]))
    res = Detect.to_list(out, max_per_image=2)
    assert [len(r["scores"]) for r in res] == [2, 1]
    assert torch.equal(res[0]["scores"], torch.tensor([0.95, 0.9]))
    res = Detect.to_list(out, score_thresh=0.6)
    assert [len(r["scores"]) for r in res] == [2, 0] and res[1]["boxes"].shape == (0, 4)


def test_bad_input_raises():
    with pytest.raises(ValueError):
        Detect(1)
    with pytest.raises(ValueError):
        Detect(21, nms_thresh=1.5)
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
    targets = [torch.tensor([[0.1, 0.1, 0.5, 0.6, 2.0], [0.5, 0.5, 0.9, 0.8, 0.0]]), torch.zeros(0, 5)]
    loc, conf = noisy_oracle(targets, priors, 4, seed=3)
    assert loc.shape == (2, priors.shape[0], 4) and conf.shape == (2, priors.shape[0], 4)
    assert torch.allclose(conf.sum(-1), torch.ones(2, priors.shape[0]))
    loc2, conf2 = noisy_oracle(targets[:1], priors, 4, seed=3)           # image 0's noise depends on image 0 only
    assert torch.equal(loc2[0], loc[0]) and torch.equal(conf2[0], conf[0])
    dets = Detect.to_list(Detect(4)(loc, conf, priors), score_thresh=0.9)
    assert len(dets[0]["scores"]) > len(dets[1]["scores"])              # the empty image gets only noise
    assert set(dets[0]["labels"][:2].tolist()) == {0, 2}                 # the best two: the two objects
