"""A training step on a shared CPU: torch's default thread count against
`auto_threads()` (chapter 9), alone and beside other busy processes.

    python benchmarks/bench_contention.py              # 2 busy processes beside it
    python benchmarks/bench_contention.py --busy 1 --repeats 9

The step is the main job's (chapter 9d's `train_step`: the mini SSD, the shapes priors,
focal loss, AdamW, a batch of 16, the recipe's precision). It is timed alone, then again
while `--busy` processes spin (`while True: pass`): once with as many torch threads as
the machine has cores (torch's default), once with the count `auto_threads()` picks at
that moment. Each contender is timed in turns (a, b, a, b, ...; median of `--repeats`).
The slowdown of each is its step time beside the busy processes divided by its step
time alone; the ratio is default / auto beside the busy processes (> 1: auto is
faster). Results go to benchmarks/results.json (`bench_contention`).
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def step_fn(batch_size: int = 16):
    "One training step of the main job's recipe, on a fixed synthetic batch."
    from ssdbook.checkpoint import build_model
    from ssdbook.config import amp_dtype, shapes_recipe
    from ssdbook.loss import MultiBoxLoss
    from ssdbook.train import make_optimizer, train_step

    cfg = shapes_recipe(batch_size=batch_size)
    torch.manual_seed(0)
    net = build_model("mini", 7, "train", "", cfg.priors, cfg.focal_gamma)
    net = net.to(memory_format=torch.channels_last)
    crit = MultiBoxLoss(7, focal_gamma=cfg.focal_gamma)
    opt = make_optimizer(net, cfg)
    dtype = amp_dtype(torch.device("cpu"), cfg.amp)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch_size, 3, 300, 300, generator=g)
    x = x.contiguous(memory_format=torch.channels_last)
    xy = torch.rand(batch_size, 2, generator=g) * 0.6
    boxes = torch.cat([xy, xy + 0.1 + 0.3 * torch.rand(batch_size, 2, generator=g)], 1)
    labels = torch.randint(0, 6, (batch_size, 1), generator=g).float()
    targets = list(torch.cat([boxes, labels], 1)[:, None])

    def step():
        train_step(net, crit, opt, scaler, x, targets, dtype)

    return step, cfg.amp


def timed(step, threads: dict, warmup: int, repeats: int) -> dict:
    """Median step time (s) for each thread count in `threads`, measured in turns
    (bench_train_step's `interleaved`, each contender setting its count first)."""
    from bench_train_step import interleaved

    def with_threads(n):
        def run():
            torch.set_num_threads(n)
            step()

        return run

    steps = {k: with_threads(n) for k, n in threads.items()}
    return interleaved(steps, torch.device("cpu"), warmup, repeats)


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--busy", type=int, default=2, help="busy processes beside it")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-record", action="store_true")
    a = p.parse_args(argv)
    from ssdbook.pipeline import auto_threads, busy_cores

    default = torch.get_num_threads()
    step, amp = step_fn()
    alone_auto = auto_threads()
    alone = timed(step, dict(default=default, auto=alone_auto), a.warmup, a.repeats)
    spin = [sys.executable, "-c", "while True: pass"]
    hogs = [subprocess.Popen(spin) for _ in range(a.busy)]
    try:
        time.sleep(1.0)
        torch.set_num_threads(default)
        seen, busy_auto = busy_cores(), auto_threads()
        busy = timed(step, dict(default=default, auto=busy_auto), a.warmup, a.repeats)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    torch.set_num_threads(default)  # the machine's record names torch's default
    res = dict(
        what="the main job's training step (mini SSD, B=16) alone and beside busy "
        "processes: torch's default threads vs auto_threads(); ratio = default / auto "
        "beside them",
        busy_processes=a.busy,
        busy_cores_seen=round(seen, 2),
        threads_default=default,
        threads_auto_alone=alone_auto,
        threads_auto_busy=busy_auto,
        amp=amp,
        batch_size=16,
        **{f"alone_{k}_ms": round(1000 * v, 1) for k, v in alone.items()},
        **{f"busy_{k}_ms": round(1000 * v, 1) for k, v in busy.items()},
        slowdown_default=round(busy["default"] / alone["default"], 2),
        slowdown_auto=round(busy["auto"] / alone["auto"], 2),
        ratio=round(busy["default"] / busy["auto"], 2),
    )
    for k, v in res.items():
        print(f"{k:<20} {v}")
    if not a.no_record:
        from _results import record

        record("bench_contention", res)
    return res


if __name__ == "__main__":
    main()
