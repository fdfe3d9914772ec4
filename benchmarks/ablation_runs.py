"""Run the ablation grid of chapter 10c and record every run in
benchmarks/ablation_results.json.

    python benchmarks/ablation_runs.py          # whole grid, seed 0, ABLATION_BUDGET
    python benchmarks/ablation_runs.py --variants full "no augmentation" --seeds 0 1
    python benchmarks/ablation_runs.py --speed  # the width table (params, MACs, img/s)
    python benchmarks/ablation_runs.py --main "designed priors"  # main job's budget

One run at a time, `--threads` torch threads (default 1: the machine is shared). Each
finished run is written to the results file at once, so an interrupted grid keeps what
it measured; runs already in the file are skipped unless `--again`. A run is always
measured afresh: `runs/ablation/<row>-seed<seed>` is overwritten (`overwrite=True`),
never resumed.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "ablation_results.json"
MAIN_BUDGET = dict(
    iterations=1800,
    batch_size=16,
    warmup=100,
    n_train=2000,
    n_test=500,
    log_every=100,
    checkpoint_every=300,
)


def speed_table(
    widths=(8, 12, 16), batch_size: int = 16, rounds: int = 3, num_classes: int = 7
) -> list[dict]:
    """Parameters, MACs per image, training and inference images/s of the mini base at
    each width, on this CPU. The widths are timed in turns (round-robin, `rounds` times;
    the median kept), so a change of machine load hits them all alike: compare them with
    each other, not with numbers measured elsewhere."""
    from ssdbook.ablation import count_macs
    from ssdbook.loss import MultiBoxLoss
    from ssdbook.model import MiniSSD

    nets = {
        w: MiniSSD('train', num_classes, width=w).to(memory_format=torch.channels_last)
        for w in widths
    }
    crit = MultiBoxLoss(num_classes)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, 3, 300, 300, generator=g).contiguous(
        memory_format=torch.channels_last
    )
    xy = torch.rand(batch_size, 2, generator=g) * 0.6
    targets = [torch.tensor([[a, b, a + 0.3, b + 0.3, 1.0]]) for a, b in xy.tolist()]
    opts = {w: torch.optim.AdamW(n.parameters(), 1e-4) for w, n in nets.items()}
    times = {w: dict(train=[], infer=[]) for w in widths}
    for _ in range(rounds + 1):  # the first round warms up (not kept)
        for w, net in nets.items():
            net.train()
            t = time.perf_counter()
            loss_l, loss_c = crit(net(x), targets)
            opts[w].zero_grad()
            (loss_l + loss_c).backward()
            opts[w].step()
            times[w]["train"].append(time.perf_counter() - t)
            net.eval()
            t = time.perf_counter()
            with torch.no_grad():
                net.raw(x)
            times[w]["infer"].append(time.perf_counter() - t)
    med = lambda v: sorted(v[1:])[len(v[1:]) // 2]
    return [
        dict(
            width=w,
            params=sum(p.numel() for p in net.parameters()),
            macs=count_macs(net),
            train_img_s=round(batch_size / med(times[w]["train"]), 2),
            infer_img_s=round(batch_size / med(times[w]["infer"]), 2),
            threads=torch.get_num_threads(),
        )
        for w, net in nets.items()
    ]


def machine() -> str:
    return (
        f"{platform.machine()}, {torch.get_num_threads()} torch thread(s), "
        f"torch {torch.__version__}"
    )


def main(argv=None):
    import ssdbook.ablation as A

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--variants",
        nargs="*",
        default=list(A.VARIANTS),
        help="rows to run (default: all)",
    )
    p.add_argument("--seeds", nargs="*", type=int, default=[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--iterations", type=int, default=None, help="override the budget's iterations"
    )
    p.add_argument(
        "--main", action="store_true", help="run at the main job's budget (1800 x 16)"
    )
    p.add_argument(
        "--speed",
        action="store_true",
        help="measure the width table instead of training",
    )
    p.add_argument(
        "--again", action="store_true", help="rerun rows already in the results file"
    )
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.speed:
        rows = speed_table()
        res = A.load_results(args.out)
        res["speed"] = dict(
            rows=rows,
            machine=machine(),
            when=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        )
        tmp = Path(args.out).with_name(f".{Path(args.out).name}.tmp")
        tmp.write_text(json.dumps(res, indent=1))
        tmp.replace(args.out)  # atomic: an interrupted write leaves the old file
        print(json.dumps(rows, indent=1))
        return
    budget = dict(MAIN_BUDGET if args.main else A.ABLATION_BUDGET)
    if args.iterations:
        budget["iterations"] = args.iterations
    done = {
        (r["variant"], r["seed"], r["iterations"], r["batch_size"])
        for r in A.load_results(args.out)["runs"]
    }
    for seed in args.seeds:
        for name in args.variants:
            A.get_variant(name)
            if (
                name,
                seed,
                budget["iterations"],
                budget["batch_size"],
            ) in done and not args.again:
                print(f"skip {name} seed {seed}: already recorded", flush=True)
                continue
            t = time.perf_counter()
            # A row not yet recorded (or --again) is measured afresh: a run left in its
            # folder
            # by an earlier or interrupted grid is replaced, never resumed (a resumed
            # run's
            # train_seconds would time only its last part).
            row = A.run_variant(
                name, seed, budget, threads=args.threads, overwrite=True
            )
            row["wall_seconds"] = round(time.perf_counter() - t, 1)
            row["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            A.record_run(
                args.out,
                row,
                machine=machine(),
                budget=A.ABLATION_BUDGET,
                main_budget=MAIN_BUDGET,
            )
            print(
                f"{name:22s} seed {seed}  mAP {row['map']:.4f}  "
                + "  ".join(f"{k} {m:.3f}" for k, (n, m) in row["ap_by_size"].items())
                + f"  train {row['train_seconds']:.0f} s"
                + f"  eval {row['eval_seconds']:.0f} s",
                flush=True,
            )


if __name__ == "__main__":
    sys.exit(main())
