"""Benchmark: batched matching (`match_batch`) vs a per-image loop over `match`, in the
same run.

    python benchmarks/bench_match.py [--batch 32] [--objects 3] [--repeats 30]
                                     [--device cpu|cuda] [--threads N]

A batch of B images with 1..2*objects-1 objects each (mean about `objects`) is matched
against the 8732 SSD300-VOC priors. Both matchers give bit-identical results (checked
here); the script prints the median time of each, the ratio, and the device, and records
them in benchmarks/results.json (`bench_match` for the CPU, `bench_match_cuda` for a
GPU). Both sides get the same warm-up and the same repeats. Runs on CUDA too when it is
available (or with --device cuda). Timings on a shared machine are noisy: the two
methods are interleaved round-robin so that noise hits both, and on the CPU the script
also reports process CPU time, which other jobs on the machine disturb much less than
wall-clock time (with --threads 1 it is the single thread's work).
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from ssdbook.matching import match, match_batch
from ssdbook.priors import PriorBox

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import record  # noqa: E402


def make_priors(device):
    return PriorBox().forward().to(device)


def make_targets(batch, objects, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    targets = []
    for _ in range(batch):
        n = int(torch.randint(1, 2 * objects, (1,), generator=g))
        xy = torch.rand(n, 2, generator=g) * 0.7
        wh = 0.05 + torch.rand(n, 2, generator=g) * 0.5
        box = torch.cat([xy, (xy + wh).clamp(max=1.0)], 1)
        targets.append(
            torch.cat([box, torch.randint(0, 20, (n, 1), generator=g).float()], 1).to(
                device
            )
        )
    return targets


def loop_match(targets, priors, threshold=0.5, variances=(0.1, 0.2)):
    B, P = len(targets), priors.shape[0]
    loc_t = torch.empty(B, P, 4, device=priors.device)
    conf_t = torch.empty(B, P, dtype=torch.long, device=priors.device)
    for i, t in enumerate(targets):
        match(threshold, t[:, :4], priors, variances, t[:, 4], loc_t, conf_t, i)
    return loc_t, conf_t


def timed(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, time.process_time() - c0


def bench(device, batch, objects, repeats, warmup=5):
    priors = make_priors(device)
    targets = make_targets(batch, objects, device)
    lb, cb = match_batch(targets, priors)
    ll, cl = loop_match(targets, priors)
    assert torch.equal(cb, cl) and torch.equal(lb, ll), (
        "batched and loop matchers disagree"
    )
    methods = {
        "loop over match": lambda: loop_match(targets, priors),
        "match_batch": lambda: match_batch(targets, priors),
    }
    times = {k: [] for k in methods}
    with torch.no_grad():
        for _ in range(warmup):
            for fn in methods.values():
                fn()
        for _ in range(repeats):
            for k, fn in methods.items():
                times[k].append(timed(fn, device))
    n_obj = sum(t.shape[0] for t in targets)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)"
    )
    print(
        f"device {device} [{name}]: B={batch}, "
        f"{n_obj} objects ({n_obj / batch:.2f}/image), "
        f"P={priors.shape[0]}, {repeats} repeats, median ms"
    )
    clocks = ["wall"] if device.type == "cuda" else ["wall", "cpu"]
    print(
        f"  {'clock':6s}{'loop over match':>17s}{'match_batch':>13s}{'speed-up':>10s}"
    )
    result = dict(
        device=name,
        batch=batch,
        objects_per_image=round(n_obj / batch, 2),
        priors=priors.shape[0],
        warmup=warmup,
        repeats=repeats,
    )
    for c, clock in enumerate(clocks):
        loop, batched = (
            statistics.median(t[c] for t in times[k]) * 1e3 for k in methods
        )
        print(f"  {clock:6s}{loop:14.2f} ms{batched:10.2f} ms{loop / batched:9.1f}x")
        result.update(
            {
                f"loop_{clock}_ms": round(loop, 2),
                f"batched_{clock}_ms": round(batched, 2),
                f"ratio_{clock}": round(loop / batched, 2),
            }
        )
    # the headline ratio: CPU time on the CPU (least disturbed by other jobs),
    # wall-clock time on a GPU
    result["ratio"] = result["ratio_cpu" if device.type == "cpu" else "ratio_wall"]
    record("bench_match" if device.type == "cpu" else "bench_match_cuda", result)
    return result["ratio"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--objects", type=int, default=3)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    p.add_argument(
        "--threads", type=int, default=0, help="torch.set_num_threads (0 = leave as is)"
    )
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    devices = ["cpu", "cuda"] if a.device == "all" else [a.device]
    for d in devices:
        if d == "cuda" and not torch.cuda.is_available():
            print("cuda: not available, skipped")
            continue
        bench(torch.device(d), a.batch, a.objects, a.repeats)


if __name__ == "__main__":
    main()
