"""One SSD300 training step (forward + loss + backward + optimiser), ssdbook vs torchvision, same images, same run.

    python benchmarks/bench_train_step.py                 # CPU, B=4 (the issue's comparison)
    python benchmarks/bench_train_step.py --device cuda   # also img/s at B=32 with and without AMP

ssdbook: `build_ssd('train', base='vgg16')` + `MultiBoxLoss` + SGD (the chapter 9 step, fp32 on the CPU).
torchvision: `ssd300_vgg16(weights=None, weights_backbone=None, num_classes=21)` in train mode, which computes
its own matching and loss inside forward. Both get the same 300x300 images and the same boxes (torchvision in
pixels with labels 1..20, ssdbook in fractions with labels 0..19). Prints the median of `--repeats` steps
after `--warmup` steps, and the ratio torchvision / ssdbook (> 1: ssdbook is faster).
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
    "Median time of each step, measured in turns (a, b, c, a, b, c, ...) so that load changes hit all alike."
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
    torch.manual_seed(0)
    net = build_ssd("train", 300, 21, base="vgg16").to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    crit = MultiBoxLoss(21, 0.5, True, 0, True, 3, 0.5, False, use_gpu=device.type == "cuda")
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    x = images.to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    t = [tt.to(device) for tt in targets]

    def step():
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            loc, conf, priors = net(x)
        loss_l, loss_c = crit((loc.float(), conf.float(), priors), t)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss_l + loss_c).backward()
        scaler.step(opt)
        scaler.update()
    return step


def torchvision_step(images, targets, device, amp_dtype=None):
    from torchvision.models.detection import ssd300_vgg16
    torch.manual_seed(0)
    net = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=21).to(device).train()
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    x = list(images.to(device))
    t = [dict(boxes=tt[:, :4].to(device) * 300, labels=tt[:, 4].long().to(device) + 1) for tt in targets]

    def step():
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            losses = net(x, t)
        loss = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    return step


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--gpu-batch", type=int, default=32)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    device = torch.device(a.device)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"SSD300 VGG16, B={a.batch}, median of {a.repeats} steps after {a.warmup} warm-up")
    images, targets = make_batch(a.batch)
    steps = {"ssdbook (channels_last, as train() runs it)": ssdbook_step(images, targets, device, channels_last=True),
             "ssdbook (contiguous)": ssdbook_step(images, targets, device),
             "torchvision ssd300_vgg16": torchvision_step(images, targets, device)}
    times = interleaved(steps, device, a.warmup, a.repeats)   # alternate the contenders: fair under load
    for name, t in times.items():
        print(f"{name:<44} train step: {t * 1000:8.1f} ms  ({a.batch / t:6.2f} img/s)")
    tv = times["torchvision ssd300_vgg16"]
    for name in list(times)[:2]:
        print(f"ratio torchvision / {name} = {tv / times[name]:.2f}  (> 1: ssdbook faster)")
    if device.type == "cuda":
        B = a.gpu_batch
        images, targets = make_batch(B, seed=1)
        bf16 = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        rows = [("fp32", None, False), (f"{str(bf16)[6:]} autocast", bf16, False),
                (f"{str(bf16)[6:]} + channels_last", bf16, True)]
        print(f"\nGPU, B={B} (data loading excluded):")
        for name, dt, cl in rows:
            s = time_steps(ssdbook_step(images, targets, device, dt, cl), device, 3, 10)
            print(f"  ssdbook     {name:<24} {B / s:8.1f} img/s")
        for name, dt in (("fp32", None), (f"{str(bf16)[6:]} autocast", bf16)):
            s = time_steps(torchvision_step(images, targets, device, dt), device, 3, 10)
            print(f"  torchvision {name:<24} {B / s:8.1f} img/s")


if __name__ == "__main__":
    main()
