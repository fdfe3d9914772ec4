"""Speed of the SSD loss: ssdbook's MultiBoxLoss vs torchvision's SSD loss, on the same
inputs, same run.

B=32 images, 1..5 objects each (about 3), 8732 priors, 21 classes. Both sides include
  matching: ssdbook:     MultiBoxLoss(21)((loc, conf, priors), targets)   (the paper's
  defaults: IoU 0.5, 3 negatives/positive) torchvision: box_iou + model.proposal_matcher
  per image, then model.compute_loss (ssd300_vgg16(weights=None, weights_backbone=None,
  num_classes=21); anchors = our priors in point form x 300, boxes x 300, labels + 1)
  Row 1 times the forward pass; row 2 forward + backward. Median of interleaved repeats,
  as wall-clock time and (on the CPU) as process CPU time, which a machine shared with
  other jobs disturbs much less. Both sides get the same warm-up and the same repeats,
  interleaved. The numbers go to benchmarks/results.json (`bench_loss` for the CPU,
  `bench_loss_cuda` for a GPU), which chapter 7 reads.

    python benchmarks/bench_loss.py [--device cpu|cuda] [--repeats 30] [--threads N]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torchvision.models.detection import ssd300_vgg16
from torchvision.ops import box_iou

from ssdbook.loss import MultiBoxLoss
from ssdbook.matching import point_form
from ssdbook.priors import PriorBox, voc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import record  # noqa: E402


def make_batch(B, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    targets = []
    for n in torch.randint(1, 6, (B,), generator=g).tolist():
        xy = torch.rand(n, 2, generator=g) * 0.7
        wh = 0.05 + torch.rand(n, 2, generator=g) * 0.25
        targets.append(
            torch.cat(
                [xy, xy + wh, torch.randint(0, 20, (n, 1), generator=g).float()], 1
            ).to(device)
        )
    loc = torch.randn(B, 8732, 4, generator=g).to(device)
    conf = torch.randn(B, 8732, 21, generator=g).to(device)
    return loc, conf, targets


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument(
        "--threads", type=int, default=0, help="torch.set_num_threads (0 = leave as is)"
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)

    priors = PriorBox(voc).forward().to(dev)
    loc, conf, targets = make_batch(args.batch, dev)
    criterion = MultiBoxLoss(21)

    with torch.device(
        "meta"
    ):  # compute_loss uses none of the network's weights: do not allocate them
        tv = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=21)
    anchors = point_form(priors) * 300
    tv_targets = [
        dict(boxes=t[:, :4] * 300, labels=t[:, 4].long() + 1) for t in targets
    ]

    def ours(backward):
        l, c = criterion((loc, conf, priors), targets)
        if backward:
            (l + c).backward()
        return l, c

    def torchvision_loss(backward):
        matched = [
            tv.proposal_matcher(box_iou(t["boxes"], anchors)) for t in tv_targets
        ]
        out = tv.compute_loss(
            tv_targets,
            dict(bbox_regression=loc, cls_logits=conf),
            [anchors] * len(targets),
            matched,
        )
        if backward:
            (out["bbox_regression"] + out["classification"]).backward()
        return out["bbox_regression"], out["classification"]

    def timed(fn, backward):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        fn(backward)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0, time.process_time() - c0

    l1, c1 = ours(False)
    l2, c2 = torchvision_loss(False)
    print(
        f"device {dev}, threads {torch.get_num_threads()}, B={args.batch}, "
        f"{sum(len(t) for t in targets) / len(targets):.2f} objects/image, "
        f"8732 priors, 21 classes"
    )
    print(
        f"values: ssdbook loss_l {float(l1):.6f} loss_c {float(c1):.6f} | "
        f"torchvision {float(l2):.6f} {float(c2):.6f}  "
        f"(differ only where best-prior IoU ties are broken "
        f"differently: the book's appendix on reference quirks)"
    )
    # global warm-up with backward: the first timed row would otherwise also pay for
    # growing the
    # allocator's heap (the row measured first came out ~30% slower on the CPU)
    loc.requires_grad_(True)
    conf.requires_grad_(True)
    for _ in range(args.warmup):
        for fn in (ours, torchvision_loss):
            fn(True)
        loc.grad = conf.grad = None
    clocks = ["wall"] if dev.type == "cuda" else ["wall", "cpu"]
    result = dict(
        device=torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)",
        batch=args.batch,
        objects_per_image=round(sum(len(t) for t in targets) / len(targets), 2),
        warmup=args.warmup,
        repeats=args.repeats,
    )
    print(
        f"{'':24s}{'clock':>6s}{'ssdbook ms':>12s}"
        f"{'torchvision ms':>16s}{'speed-up':>10s}"
    )
    for backward in (False, True):
        loc.requires_grad_(backward)
        conf.requires_grad_(backward)
        times = {"ours": [], "tv": []}
        for i in range(
            args.warmup + args.repeats
        ):  # interleaved, so load changes hit both
            for name, fn in (("ours", ours), ("tv", torchvision_loss)):
                t = timed(fn, backward)
                if i >= args.warmup:
                    times[name].append(t)
            loc.grad = conf.grad = None
        label = "forward + backward" if backward else "forward (match + loss)"
        for k, clock in enumerate(clocks):
            a = statistics.median(t[k] for t in times["ours"]) * 1e3
            b = statistics.median(t[k] for t in times["tv"]) * 1e3
            print(f"{label:24s}{clock:>6s}{a:12.2f}{b:16.2f}{b / a:9.2f}x")
            row = "backward" if backward else "forward"
            result.update(
                {
                    f"{row}_{clock}_ssdbook_ms": round(a, 2),
                    f"{row}_{clock}_torchvision_ms": round(b, 2),
                    f"{row}_{clock}_ratio": round(b / a, 2),
                }
            )
    clock = (
        "cpu" if dev.type == "cpu" else "wall"
    )  # headline: CPU time on the CPU, wall-clock on a GPU
    result["ratio"] = result[f"forward_{clock}_ratio"]
    record("bench_loss" if dev.type == "cpu" else "bench_loss_cuda", result)


if __name__ == "__main__":
    main()
