"""Speed of ssdbook's vectorised VOC evaluation against two baselines, on the same data,
same protocol.

Data: VOC2007-test sized -- 4952 images, 100-200 detections each, 20 classes, 1-10
objects per image (pixels, 10 % difficult). Every contender gets the same warm-up run
and the same number of timed repeats; the median of the repeats is reported, as
wall-clock and as CPU time (the machine is shared: CPU time is the steadier one, and the
recorded `ratio` uses it). One thread for everybody (numpy and pycocotools are
single-threaded).

1. `ssdbook.evaluate.evaluate_detections` (VOC07 11-point, difficult honoured, the
   devkit's +1 pixel rule).
2. The VOC devkit's per-detection loop, ported straight from the reference's `eval.py`
   (`voc_eval`, numpy, one class at a time, one detection at a time): the baseline a VOC
   user has. Same numbers (checked to 1e-12).
3. torchmetrics' `MeanAveragePrecision(iou_thresholds=[0.5])`: COCO's rules (101 points,
   crowd for difficult), and it computes COCO's whole set of numbers (mAR at 1/10/200
   detections, size bands) along the way -- a different job, shown for scale. It is
   slow, so by default it runs on a subsample (`--tm-images`), and ssdbook is timed
   again on that same subsample.

Also printed: the ratio under the old, unfair protocol (ssdbook best of 3 against one
cold torchmetrics run). Usage: python benchmarks/bench_evaluate.py [--images N]
[--tm-images N] [--repeats R] [--skip-torchmetrics]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import record  # noqa: E402

from _devkit import devkit_voc_eval  # noqa: E402  the devkit's loop, one copy (shared with tests/test_evaluate.py)
from ssdbook.evaluate import evaluate_detections  # noqa: E402


def make_data(n_images, max_dets=200, num_classes=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    dets, annos = [], []
    for _ in range(n_images):
        m = int(torch.randint(1, 11, (1,), generator=g))
        xy = torch.rand(m, 2, generator=g) * 300
        gb = torch.cat([xy, xy + 20 + torch.rand(m, 2, generator=g) * 150], 1)
        gl = torch.randint(0, num_classes, (m,), generator=g)
        annos.append(
            dict(
                boxes=gb,
                labels=gl,
                difficult=torch.rand(m, generator=g) < 0.1,
                width=500,
                height=500,
            )
        )
        n = int(torch.randint(max_dets // 2, max_dets + 1, (1,), generator=g))
        src = torch.randint(0, m, (n,), generator=g)
        db = gb[src] + torch.randn(n, 4, generator=g) * 25
        db[:, 2:] = torch.maximum(db[:, 2:], db[:, :2] + 1)
        dl = torch.where(
            torch.rand(n, generator=g) < 0.7,
            gl[src],
            torch.randint(0, num_classes, (n,), generator=g),
        )
        dets.append(dict(boxes=db, scores=torch.rand(n, generator=g), labels=dl))
    return dets, annos


def devkit_map(dets, annos, num_classes=20):
    return float(
        np.mean(
            [
                devkit_voc_eval(dets, annos, k, pixel_offset=1.0)
                for k in range(num_classes)
            ]
        )
    )


def torchmetrics_map(dets, annos):
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(
        iou_thresholds=[0.5], box_format="xyxy", max_detection_thresholds=[1, 10, 200]
    )
    metric.warn_on_many_detections = False
    metric.update(
        [dict(boxes=d["boxes"], scores=d["scores"], labels=d["labels"]) for d in dets],
        [
            dict(boxes=a["boxes"], labels=a["labels"], iscrowd=a["difficult"].long())
            for a in annos
        ],
    )
    return float(metric.compute()["map_50"])


def timed(fn, warmup, repeats):
    """Run `fn` warmup + repeats times; return (result, median wall s, median CPU s, the
    first (cold) wall s)."""
    walls, cpus, cold = [], [], None
    for k in range(warmup + repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        cold = wall if cold is None else cold
        if k >= warmup:
            walls.append(wall)
            cpus.append(cpu)
    return out, statistics.median(walls), statistics.median(cpus), cold, min(walls)


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--images", type=int, default=4952)
    ap.add_argument(
        "--tm-images",
        type=int,
        default=600,
        help="images for the torchmetrics comparison",
    )
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-torchmetrics", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dets, annos = make_data(args.images)
    n_det, n_obj = (
        sum(len(d["scores"]) for d in dets),
        sum(len(a["labels"]) for a in annos),
    )
    print(
        f"{args.images} images, {n_det} detections, {n_obj} objects, 20 classes; "
        f"warm-up {args.warmup}, median of {args.repeats}, {args.threads} thread(s)"
    )
    ours = lambda d, a: evaluate_detections(
        d, a, 20, use_07_metric=True, pixel_offset=1.0
    )["map"]
    m_ours, w_ours, c_ours, _, best_ours = timed(
        lambda: ours(dets, annos), args.warmup, args.repeats
    )
    print(
        f"ssdbook evaluate_detections: {w_ours:.3f} s wall, {c_ours:.3f} s CPU, "
        f"mAP {m_ours:.6f}"
    )
    m_dev, w_dev, c_dev, _, _ = timed(
        lambda: devkit_map(dets, annos), args.warmup, args.repeats
    )
    assert abs(m_dev - m_ours) < 1e-12, (m_dev, m_ours)
    print(
        f"VOC devkit loop (reference eval.py port): {w_dev:.3f} s wall, "
        f"{c_dev:.3f} s CPU, mAP {m_dev:.6f} (identical)"
    )
    print(
        f"ratio devkit / ssdbook: {w_dev / w_ours:.1f}x wall, {c_dev / c_ours:.1f}x CPU"
    )
    rec = dict(
        images=args.images,
        detections=n_det,
        objects=n_obj,
        warmup=args.warmup,
        repeats=args.repeats,
        threads=args.threads,
        ssdbook_s=round(w_ours, 4),
        ssdbook_cpu_s=round(c_ours, 4),
        devkit_s=round(w_dev, 3),
        devkit_cpu_s=round(c_dev, 3),
        devkit_ratio=round(c_dev / c_ours, 1),
        devkit_ratio_wall=round(w_dev / w_ours, 1),
        ratio=round(c_dev / c_ours, 1),
        map_voc07=round(m_ours, 6),
    )
    if not args.skip_torchmetrics:
        n = min(args.tm_images, args.images)
        sd, sa = dets[:n], annos[:n]
        _, w_sub, c_sub, _, best_sub = timed(
            lambda: ours(sd, sa), args.warmup, args.repeats
        )
        m_tm, w_tm, c_tm, cold_tm, _ = timed(
            lambda: torchmetrics_map(sd, sa), args.warmup, args.repeats
        )
        print(
            f"on the first {n} images: ssdbook {w_sub:.3f} s wall / {c_sub:.3f} s CPU; "
            f"torchmetrics MeanAveragePrecision(iou_thresholds=[0.5]) "
            f"(COCO rules, all 12 COCO numbers) {w_tm:.3f} s wall / "
            f"{c_tm:.3f} s CPU, map_50 {m_tm:.4f}"
        )
        print(
            f"ratio torchmetrics / ssdbook: {w_tm / w_sub:.1f}x wall, "
            f"{c_tm / c_sub:.1f}x CPU (old protocol, one cold run vs best of "
            f"{args.repeats}: {cold_tm / best_sub:.1f}x)"
        )
        rec.update(
            torchmetrics_images=n,
            ssdbook_subset_s=round(w_sub, 4),
            torchmetrics_s=round(w_tm, 3),
            torchmetrics_cpu_s=round(c_tm, 3),
            torchmetrics_ratio=round(c_tm / c_sub, 1),
            torchmetrics_ratio_wall=round(w_tm / w_sub, 1),
            torchmetrics_ratio_old_protocol=round(cold_tm / best_sub, 1),
        )
    record("bench_evaluate", rec)
    print("recorded in benchmarks/results.json (timings on a shared machine are noisy)")


if __name__ == "__main__":
    main()
