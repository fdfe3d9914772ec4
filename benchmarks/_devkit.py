"""The Pascal VOC devkit's evaluation, ported straight from the reference's `eval.py`
(`voc_ap`, `voc_eval`): numpy, one class at a time, one detection at a time.

The one copy of this slow, obvious loop: `bench_evaluate.py` times ssdbook's vectorised
evaluation against it, and `tests/test_evaluate.py` checks ssdbook's numbers against it.
Detections and annotations are the in-memory lists ssdbook uses (`boxes`, `scores`,
`labels` per image; `boxes`, `labels` and optionally `difficult` per image) instead of
the devkit's files.
"""

import math

import numpy as np
import torch


def devkit_voc_ap(rec, prec, use_07_metric=True):
    """The devkit's voc_ap: VOC07 11-point AP, or the area under the interpolated curve
    (VOC2010+)."""
    if use_07_metric:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            p = 0 if np.sum(rec >= t) == 0 else np.max(prec[rec >= t])
            ap = ap + p / 11.0
        return ap
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])


def _class_records(annos, k):
    """Ground truth of class `k` per image (`det` marks boxes already matched) and the
    number of non-difficult boxes."""
    recs, npos = {}, 0
    for i, a in enumerate(annos):
        m = a["labels"] == k
        diff = a.get("difficult", torch.zeros(len(a["labels"]), dtype=torch.bool))[
            m
        ].numpy()
        recs[i] = dict(
            bbox=a["boxes"][m].numpy().astype(float),
            difficult=diff,
            det=[False] * int(m.sum()),
        )
        npos += int((~diff).sum())
    return recs, npos


def _overlaps(bb, gt, pixel_offset):
    """IoU of one box with each ground-truth box; `pixel_offset=1` counts the last pixel
    in (the devkit's `+ 1`)."""
    iw = np.maximum(
        np.minimum(gt[:, 2], bb[2]) - np.maximum(gt[:, 0], bb[0]) + pixel_offset, 0.0
    )
    ih = np.maximum(
        np.minimum(gt[:, 3], bb[3]) - np.maximum(gt[:, 1], bb[1]) + pixel_offset, 0.0
    )
    inters = iw * ih
    uni = (
        (bb[2] - bb[0] + pixel_offset) * (bb[3] - bb[1] + pixel_offset)
        + (gt[:, 2] - gt[:, 0] + pixel_offset) * (gt[:, 3] - gt[:, 1] + pixel_offset)
        - inters
    )
    return inters / uni


def devkit_voc_eval(dets, annos, k, thresh=0.5, use_07_metric=True, pixel_offset=0.0):
    """The devkit's voc_eval for class `k`: detections sorted by score (stable: ties
    keep their order), each one a true positive if its best overlap with a ground-truth
    box exceeds `thresh` and that box is not taken yet; detections on difficult boxes
    count as neither. `pixel_offset=1.0` is the devkit's pixel rule (a box from x1 to x2
    is x2 - x1 + 1 pixels wide), 0.0 the continuous rule. NaN when class `k` has no
    (non-difficult) box."""
    recs, npos = _class_records(annos, k)
    ids, conf, bbs = [], [], []
    for i, d in enumerate(dets):
        m = d["labels"] == k
        ids += [i] * int(m.sum())
        conf.append(d["scores"][m].numpy())
        bbs.append(d["boxes"][m].numpy())
    conf, bbs = np.concatenate(conf), np.concatenate(bbs).reshape(-1, 4).astype(float)
    order = np.argsort(-conf, kind="stable")
    bbs, ids = bbs[order], [ids[j] for j in order]
    tp, fp = np.zeros(len(ids)), np.zeros(len(ids))
    for d in range(len(ids)):
        R, bb = recs[ids[d]], bbs[d]
        ovmax = -np.inf
        if R["bbox"].size > 0:
            overlaps = _overlaps(bb, R["bbox"], pixel_offset)
            ovmax, jmax = np.max(overlaps), np.argmax(overlaps)
        if ovmax > thresh:
            if not R["difficult"][jmax]:
                if not R["det"][jmax]:
                    tp[d] = 1.0
                    R["det"][jmax] = True
                else:
                    fp[d] = 1.0
        else:
            fp[d] = 1.0
    fp, tp = np.cumsum(fp), np.cumsum(tp)
    if npos == 0:
        return math.nan
    rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return devkit_voc_ap(rec, prec, use_07_metric)
