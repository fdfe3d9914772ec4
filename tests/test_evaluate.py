"""ssdbook evaluation (Pascal VOC AP, vectorised) against a per-detection reference loop
and pycocotools."""

import contextlib
import io
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ssdbook.evaluate import evaluate_detections, format_results, voc_ap

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _devkit import devkit_voc_ap, devkit_voc_eval  # noqa: E402  the devkit's loop, one copy (benchmarks/_devkit.py)


def random_case(n_img=40, K=4, seed=0, overlapping=True, difficult=0.0):
    """Random ground truth and noisy detections (duplicates, wrong classes, clutter);
    boxes in pixels."""
    g = torch.Generator().manual_seed(seed)
    dets, annos = [], []
    for i in range(n_img):
        cells = torch.randperm(9, generator=g)[
            : int(torch.randint(0, 6, (1,), generator=g))
        ]
        n = len(cells)
        cx, cy = (cells % 3).double() * 100, (cells // 3).double() * 100
        if overlapping:  # gts may overlap each other
            cx, cy = cx * 0.4, cy * 0.4
        x1 = cx + torch.rand(n, generator=g, dtype=torch.float64) * 30
        y1 = cy + torch.rand(n, generator=g, dtype=torch.float64) * 30
        w = 20 + torch.rand(n, generator=g, dtype=torch.float64) * 50
        h = 20 + torch.rand(n, generator=g, dtype=torch.float64) * 50
        gb = torch.stack(
            [x1, y1, (x1 + w).clamp(max=cx + 99), (y1 + h).clamp(max=cy + 99)], 1
        )
        gl = torch.randint(0, K, (n,), generator=g)
        gd = torch.rand(n, generator=g) < difficult
        annos.append(dict(boxes=gb, labels=gl, difficult=gd, width=400, height=400))
        rep = torch.randint(0, 3, (n,), generator=g)
        db, dl = gb.repeat_interleave(rep, 0), gl.repeat_interleave(rep)
        db = db + torch.randn(db.shape, generator=g, dtype=torch.float64) * 6
        db[:, 2:] = torch.maximum(db[:, 2:], db[:, :2] + 1)
        wrong = torch.rand(len(dl), generator=g) < 0.15
        dl = torch.where(wrong, torch.randint(0, K, dl.shape, generator=g), dl)
        nr = int(torch.randint(0, 6, (1,), generator=g))
        rb = torch.rand(nr, 4, generator=g, dtype=torch.float64) * 250
        rb = torch.cat(
            [
                torch.minimum(rb[:, :2], rb[:, 2:]),
                torch.maximum(rb[:, :2], rb[:, 2:]) + 1,
            ],
            1,
        )
        db, dl = (
            torch.cat([db, rb]),
            torch.cat([dl, torch.randint(0, K, (nr,), generator=g)]),
        )
        dets.append(
            dict(
                boxes=db,
                scores=torch.rand(len(dl), generator=g, dtype=torch.float64),
                labels=dl,
            )
        )
    return dets, annos


# ---------------------------------------------------------------- voc_ap on hand-made
# curves
def test_voc_ap_hand_cases():
    rec, prec = [0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3]
    assert voc_ap(rec, prec, True) == pytest.approx((6 * 1.0 + 5 * 2 / 3) / 11)
    assert voc_ap(rec, prec, False) == pytest.approx(0.5 * 1.0 + 0.5 * 2 / 3)
    assert voc_ap([0.25, 0.5, 0.75, 1.0], [1.0] * 4, True) == pytest.approx(1.0)
    assert voc_ap([0.25, 0.5, 0.75, 1.0], [1.0] * 4, False) == pytest.approx(1.0)
    # half the objects found, all correct: 11-point counts t = 0..0.5 (6 of 11), area
    # 0.5
    assert voc_ap([0.5], [1.0], True) == pytest.approx(6 / 11)
    assert voc_ap([0.5], [1.0], False) == pytest.approx(0.5)
    assert voc_ap([0.5], [1.0], method="coco101") == pytest.approx(51 / 101)
    assert voc_ap([], [], True) == 0.0 and voc_ap([], [], False) == 0.0
    # the devkit's thresholds come from np.arange: 0.30000000000000004 > 0.3, so recall
    # 0.3 misses t=0.3
    assert voc_ap([0.3], [1.0], True) == pytest.approx(3 / 11)
    with pytest.raises(ValueError):
        voc_ap([0.1], [1.0], method="nope")


@pytest.mark.parametrize("seed", range(4))
def test_voc_ap_equals_devkit_on_random_curves(seed):
    rng = np.random.default_rng(seed)
    tp = rng.random(60) < 0.6
    rec = np.cumsum(tp) / 50
    prec = np.cumsum(tp) / np.arange(1, 61)
    for use07 in (True, False):
        assert voc_ap(rec, prec, use07) == pytest.approx(
            devkit_voc_ap(rec, prec, use07), abs=1e-12
        )


# ---------------------------------------------------------------- evaluate_detections
# against the loop
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("use07", [True, False])
def test_equals_per_detection_reference(seed, use07):
    dets, annos = random_case(seed=seed, overlapping=True, difficult=0.2)
    res = evaluate_detections(dets, annos, 4, use_07_metric=use07)
    ref = [devkit_voc_eval(dets, annos, k, 0.5, use07) for k in range(4)]
    np.testing.assert_allclose(res["ap"].numpy(), ref, atol=1e-12)
    assert res["map"] == pytest.approx(np.nanmean(ref))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", range(3))
def test_ties_and_both_sort_paths_equal_reference(seed, dtype):
    # coarse scores make many ties (they must keep the input order, as the devkit's
    # stable sort does);
    # float32-valued scores take the one-sort path, 0.1-multiples in float64 the
    # two-sort path;
    # negative scores (logits) and -0.0 must sort like numbers too
    dets, annos = random_case(seed=seed, overlapping=True, difficult=0.2)
    for d in dets:
        s = (d["scores"] * 10).round() / 10 - 0.3
        s[s == 0] = -0.0
        d["scores"] = s.to(dtype).double() if dtype == torch.float32 else s
    for use07 in (True, False):
        res = evaluate_detections(dets, annos, 4, use_07_metric=use07)
        ref = [devkit_voc_eval(dets, annos, k, 0.5, use07) for k in range(4)]
        np.testing.assert_allclose(res["ap"].numpy(), ref, atol=1e-12)


def test_float32_inputs_lists_and_missing_difficult():
    dets, annos = random_case(seed=5, overlapping=True, difficult=0.0)
    ref = evaluate_detections(dets, annos, 4)
    dets32 = [
        dict(
            boxes=d["boxes"].float(),
            scores=d["scores"].float(),
            labels=d["labels"].int(),
        )
        for d in dets
    ]
    annos_plain = [
        dict(
            boxes=a["boxes"].tolist(),
            labels=a["labels"].tolist(),
            width=400,
            height=400,
        )
        for a in annos
    ]  # no 'difficult'
    res = evaluate_detections(dets32, annos_plain, 4)
    exp = [devkit_voc_eval(dets32, annos, k) for k in range(4)]
    np.testing.assert_allclose(res["ap"].numpy(), exp, atol=1e-12)
    assert torch.equal(res["npos"], ref["npos"])


def _coco_ap50(dets, annos, K):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images = [dict(id=i + 1, width=400, height=400) for i in range(len(annos))]
    anns = []
    for i, a in enumerate(annos):
        for b, l in zip(a["boxes"].tolist(), a["labels"].tolist()):
            anns.append(
                dict(
                    id=len(anns) + 1,
                    image_id=i + 1,
                    category_id=l + 1,
                    iscrowd=0,
                    bbox=[b[0], b[1], b[2] - b[0], b[3] - b[1]],
                    area=(b[2] - b[0]) * (b[3] - b[1]),
                )
            )
    res = [
        dict(
            image_id=i + 1,
            category_id=l + 1,
            bbox=[b[0], b[1], b[2] - b[0], b[3] - b[1]],
            score=s,
        )
        for i, d in enumerate(dets)
        for b, s, l in zip(
            d["boxes"].tolist(), d["scores"].tolist(), d["labels"].tolist()
        )
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dict(
            images=images,
            annotations=anns,
            categories=[dict(id=k + 1) for k in range(K)],
        )
        gt.createIndex()
        E = COCOeval(gt, gt.loadRes(res), "bbox")
        E.params.iouThrs = np.array([0.5])
        E.params.maxDets = [10000]
        E.params.areaRng, E.params.areaRngLbl = [[0, 1e10]], ["all"]
        E.evaluate()
        E.accumulate()
    p = E.eval["precision"][0, :, :, 0, 0]  # (101 recall points, K)
    return np.array(
        [p[:, k].mean() if (p[:, k] > -1).all() else np.nan for k in range(K)]
    )


@pytest.mark.parametrize("seed", range(3))
def test_coco101_equals_pycocotools(seed):
    pytest.importorskip("pycocotools")
    # gts of one image never overlap, so VOC's "best gt" and COCO's "best unmatched gt"
    # rules coincide
    dets, annos = random_case(n_img=60, seed=seed, overlapping=False)
    res = evaluate_detections(dets, annos, 4, method="coco101")
    np.testing.assert_allclose(res["ap"].numpy(), _coco_ap50(dets, annos, 4), atol=1e-4)


# ---------------------------------------------------------------- VOC rules, by hand
def _d(boxes, scores, labels):
    return dict(
        boxes=torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4),
        scores=torch.tensor(scores, dtype=torch.float64),
        labels=torch.tensor(labels, dtype=torch.long),
    )


def test_difficult_and_duplicates_by_hand():
    annos = [
        dict(
            boxes=torch.tensor([[0, 0, 10, 10], [20, 20, 30, 30.0]]),
            labels=torch.tensor([0, 0]),
            difficult=torch.tensor([False, True]),
            width=100,
            height=100,
        )
    ]
    dets = [
        _d(
            [[0, 0, 10, 10], [0, 0, 10, 9.5], [20, 20, 30, 30], [50, 50, 60, 60]],
            [0.9, 0.8, 0.95, 0.7],
            [0, 0, 0, 0],
        )
    ]
    res = evaluate_detections(dets, annos, 1, use_07_metric=False)
    # ranked: 0.95 -> difficult gt (ignored), 0.9 TP, 0.8 duplicate FP, 0.7 FP; npos = 1
    assert int(res["npos"][0]) == 1
    assert torch.allclose(
        res["recall"][0], torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)
    )
    assert torch.allclose(
        res["precision"][0], torch.tensor([1.0, 0.5, 1 / 3], dtype=torch.float64)
    )
    assert res["ap"][0] == pytest.approx(1.0) and res["map"] == pytest.approx(1.0)
    # the same picture without the difficult flag: the 0.95 detection is a TP, recall
    # reaches 1 at rank 2
    annos[0]["difficult"] = torch.tensor([False, False])
    res = evaluate_detections(dets, annos, 1, use_07_metric=False)
    assert int(res["npos"][0]) == 2 and res["ap"][0] == pytest.approx(1.0)
    # IoU exactly at the threshold is not a match (VOC: strictly greater)
    half = [
        dict(
            boxes=torch.tensor([[0, 0, 10, 10.0]]),
            labels=torch.tensor([0]),
            width=100,
            height=100,
        )
    ]
    res = evaluate_detections([_d([[0, 0, 10, 5]], [0.5], [0])], half, 1)
    assert res["ap"][0] == 0.0


def test_best_gt_taken_means_false_positive_voc_rule():
    # the second detection's best gt is already taken: FP, even though it overlaps
    # another gt > 0.5
    annos = [
        dict(
            boxes=torch.tensor([[0, 0, 10, 10], [0, 0, 10, 14.0]]),
            labels=torch.tensor([0, 0]),
            width=20,
            height=20,
        )
    ]
    dets = [_d([[0, 0, 10, 10], [0, 0, 10, 10.5]], [0.9, 0.8], [0, 0])]
    res = evaluate_detections(dets, annos, 1, use_07_metric=False)
    assert torch.allclose(
        res["recall"][0], torch.tensor([0.5, 0.5], dtype=torch.float64)
    )
    assert res["ap"][0] == pytest.approx(0.5)


def test_empty_images_classes_without_gt_and_no_detections():
    annos = [
        dict(boxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long)),
        dict(boxes=torch.tensor([[0, 0, 1, 1.0]]), labels=torch.tensor([1])),
    ]
    dets = [_d([[0, 0, 1, 1]], [0.5], [0]), _d([], [], [])]
    res = evaluate_detections(dets, annos, 3)
    assert math.isnan(res["ap"][0]) and math.isnan(
        res["ap"][2]
    )  # no gt of classes 0 and 2
    assert res["ap"][1] == 0.0 and res["map"] == 0.0  # class 1 never detected
    res = evaluate_detections([_d([], [], [])] * 2, [annos[0]] * 2, 2)
    assert math.isnan(res["map"])


def test_bad_input_raises():
    annos = [dict(boxes=torch.tensor([[0, 0, 1, 1.0]]), labels=torch.tensor([0]))]
    with pytest.raises(ValueError, match="2 detection entries for 1"):
        evaluate_detections([_d([], [], [])] * 2, annos, 1)
    with pytest.raises(ValueError, match="image 0.*label 3"):
        evaluate_detections([_d([[0, 0, 1, 1]], [0.5], [3])], annos, 2)
    with pytest.raises(ValueError, match="image 1, box 0"):
        evaluate_detections(
            [_d([], [], []), _d([[0, 0, float("nan"), 1]], [0.5], [0])], annos * 2, 1
        )
    with pytest.raises(ValueError, match="image 0"):
        evaluate_detections(
            [
                dict(
                    boxes=torch.zeros(2, 4),
                    scores=torch.zeros(3),
                    labels=torch.zeros(2),
                )
            ],
            annos,
            1,
        )


def test_bad_method_and_bad_entries():
    annos = [dict(boxes=torch.tensor([[0, 0, 1, 1.0]]), labels=torch.tensor([0]))]
    with pytest.raises(ValueError, match="method"):
        evaluate_detections([_d([], [], [])], annos, 1, method="nope")
    with pytest.raises(ValueError, match="image 0.*scores"):
        evaluate_detections(
            [dict(boxes=torch.zeros(1, 4), labels=torch.zeros(1))], annos, 1
        )
    with pytest.raises(ValueError, match="annotations of image 0, box 0"):
        evaluate_detections(
            [_d([], [], [])],
            [dict(boxes=torch.tensor([[2, 0, 1, 1.0]]), labels=torch.tensor([0]))],
            1,
        )
    with pytest.raises(ValueError, match="image 1.*boxes"):
        evaluate_detections(
            [_d([], [], [])] * 2,
            annos + [dict(boxes=torch.zeros(5), labels=torch.zeros(1))],
            1,
        )


def test_evaluate_model_and_save_detections(tmp_path):
    data = pytest.importorskip("ssdbook.data")
    model = pytest.importorskip("ssdbook.model")
    from ssdbook.dataset import VOCDetection
    from ssdbook.evaluate import evaluate_model, format_results, save_detections
    from ssdbook.shapes import shapes_set

    ds = VOCDetection(
        shapes_set(tmp_path, n_train=0, n_test=6, seed=0),
        [("shapes", "test")],
        transform=data.BaseTransform(),
        classes=data.SHAPES_CLASSES,
    )
    torch.manual_seed(0)
    net = model.build_ssd("train", 300, len(data.SHAPES_CLASSES) + 1, base="mini")
    res = evaluate_model(net, ds, batch_size=3, return_detections=True)
    assert res["ap"].shape == (len(data.SHAPES_CLASSES),) and res["num_images"] == 6
    assert net.training  # mode restored
    assert "mAP" in format_results(res)
    out = save_detections(
        tmp_path / "det.png",
        ds.pull_image(0),
        res["detections"][0],
        data.SHAPES_CLASSES,
        score_thresh=0.0,
        coords="pixel",
    )
    assert out.stat().st_size > 0

    # evaluate(): Detect's own defaults unless an option is given; detections and
    # annotations come back
    from ssdbook.evaluate import evaluate

    r2 = evaluate(net, ds, batch_size=3, num_workers=0)
    assert (
        torch.equal(r2["ap"].nan_to_num(-1), res["ap"].nan_to_num(-1))
        and len(r2["detections"]) == 6
    )
    r3 = evaluate(net, ds, batch_size=3, num_workers=0, conf_thresh=0.5, top_k=5)
    assert all(
        len(d["scores"]) <= 5 * len(data.SHAPES_CLASSES) and (d["scores"] > 0.5).all()
        for d in r3["detections"]
    )
    with pytest.raises(ValueError, match="conf_thresh"):
        evaluate(net, ds, conf_thresh=float("nan"))


def test_ground_truth_goes_through_check_targets():
    det = [_d([[0, 0, 1, 1]], [0.5], [0])]
    with pytest.raises(ValueError, match="annotations of image 0, box 0.*label"):
        evaluate_detections(
            det,
            [dict(boxes=torch.tensor([[0, 0, 0.5, 0.5]]), labels=torch.tensor([0.5]))],
            2,
        )
    with pytest.raises(ValueError, match="width"):  # pixels without the image size
        evaluate_detections(
            det,
            [dict(boxes=torch.tensor([[0, 0, 50, 50.0]]), labels=torch.tensor([0]))],
            2,
        )
    with pytest.raises(ValueError, match="annotations of image 1, box 0"):  # zero width
        evaluate_detections(
            det * 2,
            [
                dict(boxes=torch.zeros(0, 4), labels=torch.zeros(0)),
                dict(
                    boxes=torch.tensor([[5, 5, 5, 9.0]]),
                    labels=torch.tensor([0]),
                    width=10,
                    height=10,
                ),
            ],
            2,
        )
    with pytest.raises(ValueError, match="label"):  # a non-integer detection label
        evaluate_detections(
            [_d([[0, 0, 1, 1]], [0.5], [0])]
            and [
                dict(
                    boxes=torch.tensor([[0, 0, 1, 1.0]]),
                    scores=torch.tensor([0.5]),
                    labels=torch.tensor([0.5]),
                )
            ],
            [dict(boxes=torch.tensor([[0, 0, 1, 1.0]]), labels=torch.tensor([0]))],
            2,
        )


def test_crowd_is_ignored_like_difficult_in_voc_methods():
    dets, annos = random_case(seed=7, overlapping=True, difficult=0.3)
    ref = evaluate_detections(dets, annos, 4)
    crowd = [
        dict(a, iscrowd=a["difficult"], difficult=torch.zeros_like(a["difficult"]))
        for a in annos
    ]
    res = evaluate_detections(dets, crowd, 4)
    assert torch.equal(res["ap"].nan_to_num(-1), ref["ap"].nan_to_num(-1))


# ---------------------------------------------------------------- method='coco'
# (pycocotools COCOeval)
def _coco_direct(dets, annos, K):
    """pycocotools' COCOeval called the usual way (COCO.loadRes), with default
    parameters; crowd from 'iscrowd'."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    anns = []
    for i, a in enumerate(annos):
        crowd = a.get(
            "iscrowd", torch.zeros(len(a["labels"]), dtype=torch.bool)
        ).tolist()
        for b, l, c in zip(a["boxes"].tolist(), a["labels"].tolist(), crowd):
            anns.append(
                dict(
                    id=len(anns) + 1,
                    image_id=i + 1,
                    category_id=l + 1,
                    iscrowd=int(c),
                    bbox=[b[0], b[1], b[2] - b[0], b[3] - b[1]],
                    area=(b[2] - b[0]) * (b[3] - b[1]),
                )
            )
    res = [
        dict(
            image_id=i + 1,
            category_id=l + 1,
            bbox=[b[0], b[1], b[2] - b[0], b[3] - b[1]],
            score=s,
        )
        for i, d in enumerate(dets)
        for b, s, l in zip(
            d["boxes"].tolist(), d["scores"].tolist(), d["labels"].tolist()
        )
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dict(
            images=[dict(id=i + 1) for i in range(len(annos))],
            annotations=anns,
            categories=[dict(id=k + 1) for k in range(K)],
        )
        gt.createIndex()
        E = COCOeval(gt, gt.loadRes(res), "bbox")
        E.evaluate()
        E.accumulate()
        E.summarize()
    return E


@pytest.mark.parametrize("seed", range(2))
def test_coco_method_equals_pycocotools_with_crowd(seed):
    pytest.importorskip("pycocotools")
    dets, annos = random_case(n_img=30, seed=seed, overlapping=True)
    g = torch.Generator().manual_seed(seed)
    for a in annos:
        a["iscrowd"] = torch.rand(len(a["labels"]), generator=g) < 0.2
    E = _coco_direct(dets, annos, 4)
    res = evaluate_detections(dets, annos, 4, method="coco")
    np.testing.assert_allclose(list(res["coco_stats"].values()), E.stats, atol=1e-12)
    assert res["map"] == pytest.approx(E.stats[0]) and res["method"] == "coco"
    p = E.eval["precision"][:, :, :, 0, -1]
    np.testing.assert_allclose(
        res["ap"].numpy(),
        [p[:, :, k].mean() if (p[:, :, k] > -1).all() else np.nan for k in range(4)],
    )
    assert res["map"] == pytest.approx(np.nanmean(res["ap"].numpy()))


def test_coco_method_by_hand():
    pytest.importorskip("pycocotools")
    annos = [
        dict(
            boxes=torch.tensor([[0, 0, 100, 100], [200, 200, 300, 300.0]]),
            labels=torch.tensor([0, 0]),
            iscrowd=torch.tensor([False, True]),
            width=400,
            height=400,
        )
    ]
    exact = _d([[0, 0, 100, 100]], [0.9], [0])
    res = evaluate_detections([exact], annos, 1, method="coco")
    assert (
        res["ap"][0] == pytest.approx(1.0) and int(res["npos"][0]) == 1
    )  # crowd not a positive
    on_crowd = _d(
        [[0, 0, 100, 100], [220, 220, 260, 260]], [0.9, 0.95], [0, 0]
    )  # inside the crowd region
    assert evaluate_detections([on_crowd], annos, 1, method="coco")["ap"][
        0
    ] == pytest.approx(1.0)
    elsewhere = _d(
        [[0, 0, 100, 100], [120, 0, 180, 60]], [0.9, 0.95], [0, 0]
    )  # a FP ranked first
    assert evaluate_detections([elsewhere], annos, 1, method="coco")["ap"][0] < 0.6
    none = evaluate_detections([_d([], [], [])], annos, 1, method="coco")
    assert none["ap"][0] == 0.0
    assert "AP50" in format_results(res)
