"""One SSD300 training step (forward + loss + backward + optimiser), ssdbook vs
torchvision, same images, same run.

    # CPU, B=4 (the issue's comparison)
    python benchmarks/bench_train_step.py
    # also img/s at B=32 with and without AMP
    python benchmarks/bench_train_step.py --device cuda

ssdbook: `build_ssd('train', base='vgg16')` + `MultiBoxLoss` + SGD (chapter 9d's
`train_step`, fp32 on the CPU). torchvision: `ssd300_vgg16(weights=None,
weights_backbone=None, num_classes=21)` in train mode, which computes its own matching
and loss inside forward. Both get the same 300x300 images and the same boxes
(torchvision in pixels with labels 1..20, ssdbook in fractions with labels 0..19).

Fair by construction (issue 10): every contender gets the same `--warmup` steps and the
same `--repeats` timed steps, measured in turns (a, b, c, d, a, b, ...) so that load
changes on a shared machine hit all alike, and both libraries run in both memory formats
(contiguous NCHW and channels_last): the ratio is printed per format. The old protocol's
ratio (ssdbook channels_last vs torchvision contiguous, 1 warm-up, 3 repeats) is printed
for reference. Results go to benchmarks/results.json (`_results.record`).
"""

import argparse
import statistics
import time

import torch


def make_batch(B, seed=0, size=300):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(B, 3, size, size, generator=g)
    targets = []
    for _ in range(B):
        n = int(torch.randint(1, 6, (1,), generator=g))
        xy = torch.rand(n, 2, generator=g) * 0.7
        wh = 0.05 + torch.rand(n, 2, generator=g) * 0.25
        boxes = torch.cat([xy, (xy + wh).clamp(max=1)], 1)
        labels = torch.randint(0, 20, (n,), generator=g).float()
        targets.append(torch.cat([boxes, labels[:, None]], 1))
    return images, targets


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(step, device, warmup, repeats):
    for _ in range(warmup):
        step()
    sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def interleaved(steps, device, warmup, repeats):
    """Median time of each step, measured in turns (a, b, c, a, b, c, ...) so that load
    changes hit all alike."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times = {k: [] for k in steps}
    for _ in range(repeats):
        for k, step in steps.items():
            sync(device)
            t = time.perf_counter()
            step()
            sync(device)
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def ssdbook_step(images, targets, device, amp_dtype=None, channels_last=False):
    from ssdbook.loss import MultiBoxLoss
    from ssdbook.model import build_ssd
    from ssdbook.train import train_step

    torch.manual_seed(0)
    net = build_ssd("train", 300, 21, base="vgg16").to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    crit = MultiBoxLoss(21)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    x = images.to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    t = [tt.to(device) for tt in targets]

    def step():  # chapter 9d's step, as train() runs it
        train_step(net, crit, opt, scaler, x, t, amp_dtype)

    return step


def torchvision_step(images, targets, device, amp_dtype=None, channels_last=False):
    from torchvision.models.detection import ssd300_vgg16

    torch.manual_seed(0)
    net = (
        ssd300_vgg16(weights=None, weights_backbone=None, num_classes=21)
        .to(device)
        .train()
    )
    if (
        channels_last
    ):  # its transform batches the images itself; the weights set the conv layout
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    x = list(images.to(device))
    t = [
        dict(boxes=tt[:, :4].to(device) * 300, labels=tt[:, 4].long().to(device) + 1)
        for tt in targets
    ]

    def step():
        with torch.autocast(
            device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None
        ):
            losses = net(x, t)
        loss = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    return step


def main():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--gpu-batch", type=int, default=32)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument(
        "--no-record", action="store_true", help="do not write benchmarks/results.json"
    )
    a = p.parse_args()
    device = torch.device(a.device)
    print(
        f"torch {torch.__version__}, device {device}, "
        f"threads {torch.get_num_threads()}, SSD300 VGG16, "
        f"B={a.batch}, median of {a.repeats} steps after {a.warmup} warm-up steps, "
        f"every contender alike"
    )
    images, targets = make_batch(a.batch)
    steps = {
        "ssdbook contiguous": ssdbook_step(images, targets, device),
        "torchvision contiguous": torchvision_step(images, targets, device),
        "ssdbook channels_last": ssdbook_step(
            images, targets, device, channels_last=True
        ),
        "torchvision channels_last": torchvision_step(
            images, targets, device, channels_last=True
        ),
    }
    times = interleaved(
        steps, device, a.warmup, a.repeats
    )  # alternate the contenders: fair under load
    for name, t in times.items():
        print(f"{name:<28} train step: {t * 1000:8.1f} ms  ({a.batch / t:6.2f} img/s)")
    ratios = {
        fmt: times[f"torchvision {fmt}"] / times[f"ssdbook {fmt}"]
        for fmt in ("contiguous", "channels_last")
    }
    for fmt, r in ratios.items():
        print(
            f"ratio torchvision / ssdbook, both {fmt} = {r:.2f}  (> 1: ssdbook faster)"
        )
    old = times["torchvision contiguous"] / times["ssdbook channels_last"]
    print(
        f"(old, unfair protocol: ssdbook channels_last vs torchvision contiguous "
        f"= {old:.2f})"
    )
    if not a.no_record:
        import sys
        from pathlib import Path

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _results import record

        record(
            "bench_train_step",
            dict(
                {f"{k.replace(' ', '_')}_ms": 1000 * v for k, v in times.items()},
                ratio=ratios["contiguous"],
                ratio_channels_last=ratios["channels_last"],
                ratio_old_protocol=old,
                ratio_before_fix_published=1.07,
                batch=a.batch,
                warmup=a.warmup,
                repeats=a.repeats,
                device=str(device),
                what="SSD300-VGG16 train step, torchvision time / ssdbook time "
                "(>1: ssdbook faster)",
            ),
        )
    if device.type == "cuda":
        B = a.gpu_batch
        images, targets = make_batch(B, seed=1)
        bf16 = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        print(
            f"\nGPU, B={B} (data loading excluded), {a.warmup} warm-up, "
            f"{a.repeats} repeats:"
        )
        for name, dt, cl in (
            ("fp32", None, False),
            (f"{str(bf16)[6:]} autocast", bf16, False),
            (f"{str(bf16)[6:]} + channels_last", bf16, True),
        ):
            mine = time_steps(
                ssdbook_step(images, targets, device, dt, cl),
                device,
                a.warmup,
                a.repeats,
            )
            theirs = time_steps(
                torchvision_step(images, targets, device, dt, cl),
                device,
                a.warmup,
                a.repeats,
            )
            print(
                f"  {name:<24} ssdbook {B / mine:8.1f} img/s   "
                f"torchvision {B / theirs:8.1f} img/s"
            )


if __name__ == "__main__":
    main()
