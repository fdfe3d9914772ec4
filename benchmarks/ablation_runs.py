"""Run the ablation grid of chapter 10c and record every run in benchmarks/ablation_results.json.

    python benchmarks/ablation_runs.py                         # the whole grid, seed 0, ABLATION_BUDGET
    python benchmarks/ablation_runs.py --variants full "no augmentation" --seeds 0 1
    python benchmarks/ablation_runs.py --speed                 # the width table (params, MACs, img/s)
    python benchmarks/ablation_runs.py --main "designed priors"   # one row at the main job's budget (1800 x 16)

One run at a time, `--threads` torch threads (default 1: the machine is shared). Each finished run is written to
the results file at once, so an interrupted grid keeps what it measured; runs already in the file are skipped
unless `--again`.
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
MAIN_BUDGET = dict(iterations=1800, batch_size=16, warmup=100, n_train=2000, n_test=500, log_every=100,
                   checkpoint_every=300)


def machine() -> str:
    return f"{platform.machine()}, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}"


def main(argv=None):
    import ssdbook.ablation as A
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variants", nargs="*", default=list(A.VARIANTS), help="rows to run (default: all)")
    p.add_argument("--seeds", nargs="*", type=int, default=[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--iterations", type=int, default=None, help="override the budget's iterations")
    p.add_argument("--main", action="store_true", help="run at the main job's budget (1800 x 16)")
    p.add_argument("--speed", action="store_true", help="measure the width table instead of training")
    p.add_argument("--again", action="store_true", help="rerun rows already in the results file")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.speed:
        rows = A.speed_table()
        res = A.load_results(args.out)
        res["speed"] = dict(rows=rows, machine=machine(), when=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
        Path(args.out).write_text(json.dumps(res, indent=1))
        print(json.dumps(rows, indent=1))
        return
    budget = dict(MAIN_BUDGET if args.main else A.ABLATION_BUDGET)
    if args.iterations:
        budget["iterations"] = args.iterations
    done = {(r["variant"], r["seed"], r["iterations"], r["batch_size"]) for r in A.load_results(args.out)["runs"]}
    for seed in args.seeds:
        for name in args.variants:
            A.get_variant(name)
            if (name, seed, budget["iterations"], budget["batch_size"]) in done and not args.again:
                print(f"skip {name} seed {seed}: already recorded", flush=True)
                continue
            t = time.perf_counter()
            row = A.run_variant(name, seed, budget, threads=args.threads)
            row["wall_seconds"] = round(time.perf_counter() - t, 1)
            row["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            A.record_run(args.out, row, machine=machine(), budget=A.ABLATION_BUDGET, main_budget=MAIN_BUDGET)
            print(f"{name:22s} seed {seed}  mAP {row['map']:.4f}  " +
                  "  ".join(f"{k} {m:.3f}" for k, (n, m) in row["ap_by_size"].items()) +
                  f"  train {row['train_seconds']:.0f} s  eval {row['eval_seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
