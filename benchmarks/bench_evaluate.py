"""Speed of ssdbook's vectorised VOC evaluation against torchmetrics' MeanAveragePrecision (same data).

VOC2007-test sized: 4952 images, up to 200 detections each, 20 classes, 1-10 objects per image (pixels).
Prints both timings and their ratio. Usage: python benchmarks/bench_evaluate.py [--images N] [--skip-torchmetrics]
"""
import argparse
import time

import torch

from ssdbook.evaluate import evaluate_detections


def make_data(n_images, max_dets=200, num_classes=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    dets, annos = [], []
    for _ in range(n_images):
        m = int(torch.randint(1, 11, (1,), generator=g))
        xy = torch.rand(m, 2, generator=g) * 400
        gb = torch.cat([xy, xy + 20 + torch.rand(m, 2, generator=g) * 150], 1)
        gl = torch.randint(0, num_classes, (m,), generator=g)
        annos.append(dict(boxes=gb, labels=gl, difficult=torch.rand(m, generator=g) < 0.1))
        n = int(torch.randint(max_dets // 2, max_dets + 1, (1,), generator=g))
        src = torch.randint(0, m, (n,), generator=g)
        db = gb[src] + torch.randn(n, 4, generator=g) * 25
        db[:, 2:] = torch.maximum(db[:, 2:], db[:, :2] + 1)
        dl = torch.where(torch.rand(n, generator=g) < 0.7, gl[src], torch.randint(0, num_classes, (n,), generator=g))
        dets.append(dict(boxes=db, scores=torch.rand(n, generator=g), labels=dl))
    return dets, annos


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=4952)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-torchmetrics", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    dets, annos = make_data(args.images)
    n_det = sum(len(d["scores"]) for d in dets)
    print(f"{args.images} images, {n_det} detections, {sum(len(a['labels']) for a in annos)} objects, 20 classes")
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        res = evaluate_detections(dets, annos, 20, use_07_metric=True)
        times.append(time.perf_counter() - t0)
    ours = min(times)
    print(f"ssdbook evaluate_detections (VOC07, difficult honoured): {ours:.3f} s (best of {args.repeats}), mAP {res['map']:.4f}")
    if args.skip_torchmetrics:
        return
    from torchmetrics.detection import MeanAveragePrecision
    metric = MeanAveragePrecision(iou_thresholds=[0.5], box_format="xyxy", max_detection_thresholds=[1, 10, 200])
    metric.warn_on_many_detections = False
    t0 = time.perf_counter()
    metric.update([dict(boxes=d["boxes"], scores=d["scores"], labels=d["labels"]) for d in dets],
                  [dict(boxes=a["boxes"], labels=a["labels"], iscrowd=a["difficult"].long()) for a in annos])
    tm = metric.compute()
    theirs = time.perf_counter() - t0
    print(f"torchmetrics MeanAveragePrecision(iou_thresholds=[0.5]) (COCO rules, difficult as crowd): "
          f"{theirs:.3f} s, map_50 {float(tm['map_50']):.4f}")
    print(f"ratio torchmetrics / ssdbook: {theirs / ours:.1f}x")
    print("(timings on a shared machine are noisy; the two mAPs differ because VOC07 11-point interpolation and "
          "difficult objects differ from COCO's 101-point rule and crowd handling)")


if __name__ == "__main__":
    main()
