"""One prepared GPU check for ssdbook (issue 13): one command, one table, under 8
minutes on one GPU.

    # on a CUDA machine: the full check, recorded in benchmarks/results.json
    python benchmarks/gpu_check.py
    # CPU mode (automatic without CUDA): tiny sizes, seconds, nothing recorded
    python benchmarks/gpu_check.py --cpu

Rows: SSD300-VGG16 training img/s at batch 32 (bf16 autocast, channels_last; eager and
torch.compile) with peak memory; the mini SSD at batch 128; inference + Detect img/s at
batch 64; match_batch + loss against the per-image match loop + loss; every golden check
(ssdbook.reference.load_golden) run on the device. NVIDIA's published SSD300 figures are
printed beside, for scale only (another model and recipe: ResNet-50 SSD, A100, AMP). In
CPU mode the VGG16 rows use the mini base and batch 2, compile is skipped, and the
numbers only prove the script runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

NVIDIA = {
    "train": (
        "663-724 img/s (A100 80GB, AMP, ResNet-50 SSD, NVIDIA DeepLearningExamples)"
    ),
    "infer": "1,058 img/s (A100, AMP, ResNet-50 SSD, NVIDIA DeepLearningExamples)",
}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, warmup, reps):
    "Median seconds of `fn()` over `reps` calls after `warmup` calls."
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def random_batch(B, device, num_classes=21, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(B, 3, 300, 300, generator=g)
    targets = []
    for _ in range(B):
        n = int(torch.randint(1, 6, (1,), generator=g))
        xy = torch.rand(n, 2, generator=g) * 0.7
        wh = 0.05 + torch.rand(n, 2, generator=g) * 0.25
        labels = torch.randint(0, num_classes - 1, (n, 1), generator=g).float()
        targets.append(torch.cat([xy, (xy + wh).clamp(max=1), labels], 1).to(device))
    return images.to(device).contiguous(memory_format=torch.channels_last), targets


def peak_mb(device):
    """Peak CUDA memory of the measurement (None on the CPU: the process's RSS would not
    be this measurement's)."""
    return (
        torch.cuda.max_memory_allocated(device) / 2**20
        if device.type == "cuda"
        else None
    )


def mb(v):
    return "peak     n/a" if v is None else f"peak {v:7.0f} MB"


def train_speed(base, B, device, dtype, compile_, warmup, reps):
    "img/s of full training steps (forward, fp32 loss, backward, SGD) and peak memory."
    from ssdbook.loss import MultiBoxLoss
    from ssdbook.model import build_ssd
    from ssdbook.train import train_step

    torch.manual_seed(0)
    net = (
        build_ssd("train", 300, 21, base=base)
        .to(device)
        .to(memory_format=torch.channels_last)
    )
    model = torch.compile(net) if compile_ else net
    crit, opt = (
        MultiBoxLoss(21),
        torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4),
    )
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    x, t = random_batch(B, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    s = timed(
        lambda: train_step(model, crit, opt, scaler, x, t, dtype), device, warmup, reps
    )
    return B / s, peak_mb(device), time.perf_counter() - t0


def inference_speed(base, B, device, dtype, warmup, reps):
    "img/s of forward + softmax + Detect (decode, per-class NMS, top 200)."
    from ssdbook.detect import Detect
    from ssdbook.model import build_ssd

    torch.manual_seed(0)
    net = (
        build_ssd("train", 300, 21, base=base)
        .to(device)
        .to(memory_format=torch.channels_last)
        .eval()
    )
    detect = Detect(21)
    x, _ = random_batch(B, device)

    @torch.no_grad()
    def run():
        with torch.autocast(
            device.type, dtype=dtype or torch.float32, enabled=dtype is not None
        ):
            loc, conf, priors = net.raw(x)
        return detect(loc.float(), conf.float().softmax(-1), priors.float())

    return B / timed(run, device, warmup, reps)


def match_loss_speed(B, device, warmup, reps):
    """ms of matching + loss for a batch: match_batch (batched) vs the reference's
    per-image match loop."""
    from ssdbook.loss import MultiBoxLoss, multibox_loss
    from ssdbook.matching import match
    from ssdbook.priors import PriorBox, voc

    priors = PriorBox(voc).forward().to(device)
    _, targets = random_batch(B, device)
    g = torch.Generator().manual_seed(1)
    loc = torch.randn(B, len(priors), 4, generator=g).to(device)
    conf = torch.randn(B, len(priors), 21, generator=g).to(device)
    crit = MultiBoxLoss(21)

    def batched():
        return crit((loc, conf, priors), targets)

    def per_image():
        loc_t = torch.zeros(B, len(priors), 4, device=device)
        conf_t = torch.zeros(B, len(priors), dtype=torch.long, device=device)
        for i, t in enumerate(targets):
            match(0.5, t[:, :4], priors, (0.1, 0.2), t[:, 4], loc_t, conf_t, i)
        return multibox_loss(loc, conf, loc_t, conf_t)

    a, b = batched(), per_image()
    assert torch.allclose(torch.stack(a), torch.stack(b), rtol=1e-4), (a, b)
    return 1000 * timed(batched, device, warmup, reps), 1000 * timed(
        per_image, device, warmup, reps
    )


def golden_checks(device):
    """Every golden case of the reference data, computed on `device`: (passed, total,
    worst relative difference)."""
    from ssdbook.detect import Detect
    from ssdbook.loss import MultiBoxLoss
    from ssdbook.matching import jaccard, match_batch
    from ssdbook.priors import PriorBox, voc
    from ssdbook.reference import load_golden

    g = load_golden()
    d = lambda t: t.to(device)
    results = []
    priors = PriorBox(voc).forward().to(device)
    results.append(("priors", float((priors.cpu() - g["priors_voc300"]).abs().max())))
    gp = d(g["priors_voc300"])
    for c in g["jaccard_cases"]:
        results.append(
            (
                "jaccard",
                float(
                    (jaccard(d(c["box_a"]), d(c["box_b"])).cpu() - c["iou"]).abs().max()
                ),
            )
        )
    for c in g["match_cases"]:
        target = torch.cat([c["truths"], c["labels"].float()[:, None]], 1)
        loc_t, conf_t = match_batch([d(target)], gp, c["threshold"], c["variances"])
        bad = float((conf_t[0].cpu() != c["conf_t"]).sum())
        results.append(
            ("match", max(bad, float((loc_t[0].cpu() - c["loc_t"]).abs().max())))
        )
    crit = MultiBoxLoss(21)
    for c in g["loss_cases"]:
        l, cc = crit(
            (d(c["loc_data"]), d(c["conf_data"]), gp), [d(t) for t in c["targets"]]
        )
        rel = max(
            abs(float(l) - float(c["loss_l"])) / abs(float(c["loss_l"])),
            abs(float(cc) - float(c["loss_c"])) / abs(float(c["loss_c"])),
        )
        results.append(("loss", rel))
    for c in g["decode_nms_cases"]:
        out = Detect(21, 0, 200, 0.01, 0.45)(
            d(c["loc"])[None], d(c["conf_scores"])[None], gp
        )[0].cpu()
        results.append(("detect", float((out - c["detect_output"]).abs().max())))
    tol = {"priors": 1e-6, "jaccard": 1e-6, "match": 1e-5, "loss": 1e-4, "detect": 1e-4}
    passed = sum(v <= tol[k] for k, v in results)
    worst = {k: max(v for kk, v in results if kk == k) for k in tol}
    return passed, len(results), worst


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--cpu",
        action="store_true",
        help="CPU mode: tiny sizes (automatic when CUDA is missing)",
    )
    p.add_argument(
        "--no-record", action="store_true", help="do not write benchmarks/results.json"
    )
    a = p.parse_args(argv)
    cuda = torch.cuda.is_available() and not a.cpu
    device = torch.device("cuda" if cuda else "cpu")
    t_start = time.perf_counter()
    if cuda:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        big, B_big, B_mini, B_inf, B_match, W, R = "vgg16", 32, 128, 64, 32, 5, 20
        name = torch.cuda.get_device_name(device)
    else:
        dtype, big, B_big, B_mini, B_inf, B_match, W, R = (
            torch.bfloat16,
            "mini",
            2,
            4,
            4,
            8,
            1,
            2,
        )
        name = "CPU mode (tiny sizes; not a measurement of anything but the script)"
    print(
        f"ssdbook GPU check - {name}; torch {torch.__version__}; "
        f"autocast {str(dtype)[6:]}; channels_last"
    )
    rows = []
    ips, mem, _ = train_speed(big, B_big, device, dtype, False, W, R)
    rows.append(
        (
            f"train {big} SSD300, B={B_big}, eager",
            f"{ips:8.1f} img/s",
            mb(mem),
            NVIDIA["train"],
        )
    )
    numbers = dict(train_eager_img_s=ips, train_peak_mb=mem)
    if cuda:
        ips_c, mem_c, secs = train_speed(big, B_big, device, dtype, True, 3, R)
        rows.append(
            (
                f"train {big} SSD300, B={B_big}, compiled",
                f"{ips_c:8.1f} img/s",
                mb(mem_c),
                f"(compile + warm-up + timing {secs:.0f} s)",
            )
        )
        numbers.update(train_compiled_img_s=ips_c, train_compiled_peak_mb=mem_c)
    else:
        rows.append(
            (
                f"train {big}, compiled",
                "skipped",
                "",
                "CPU mode: inductor compiles for minutes here",
            )
        )
    ips, mem, _ = train_speed("mini", B_mini, device, dtype, False, W, R)
    rows.append((f"train mini, B={B_mini}", f"{ips:8.1f} img/s", mb(mem), ""))
    numbers.update(mini_train_img_s=ips)
    ips = inference_speed(big, B_inf, device, dtype, W, R)
    rows.append(
        (
            f"inference + Detect {big}, B={B_inf}",
            f"{ips:8.1f} img/s",
            "",
            NVIDIA["infer"],
        )
    )
    numbers.update(inference_img_s=ips)
    batched_ms, loop_ms = match_loss_speed(B_match, device, W, R)
    rows.append(
        (
            f"match_batch + loss, B={B_match}",
            f"{batched_ms:8.2f} ms",
            f"per-image loop {loop_ms:.2f} ms",
            f"{loop_ms / batched_ms:.1f}x faster batched",
        )
    )
    numbers.update(
        match_loss_ms=batched_ms,
        match_loop_ms=loop_ms,
        match_ratio=loop_ms / batched_ms,
    )
    passed, total, worst = golden_checks(device)
    rows.append(
        (
            f"golden checks on {device.type}",
            f"{passed}/{total} pass",
            "",
            "worst " + ", ".join(f"{k} {v:.1e}" for k, v in worst.items()),
        )
    )
    numbers.update(golden_passed=passed, golden_total=total)
    w = max(len(r[0]) for r in rows)
    print(f"{'what':<{w}}  {'ours':>14}  {'':<22}  for scale / notes")
    for r in rows:
        print(f"{r[0]:<{w}}  {r[1]:>14}  {r[2]:<22}  {r[3]}")
    total_s = time.perf_counter() - t_start
    print(f"total {total_s:.0f} s")
    if cuda and not a.no_record:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _results import record

        record(
            "gpu_check",
            dict(
                numbers,
                device=name,
                dtype=str(dtype),
                seconds=total_s,
                nvidia_a100_ssd300_train="663-724 img/s",
                nvidia_a100_ssd300_infer="1058 img/s",
            ),
        )
    return 0 if passed == total else 1


if __name__ == "__main__":
    sys.exit(main())
