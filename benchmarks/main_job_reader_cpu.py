"""`make main` as most readers' CPUs run it (issue 19.3): the main job in fp32 on
torch's AVX2 kernels, two threads, run `--runs` times in a row, recorded in
benchmarks/results.json as `main_job_avx2_fp32` (every run's mAP and wall time, so
"same mAP twice" can be read off the file).

    python benchmarks/main_job_reader_cpu.py            # two runs
    python benchmarks/main_job_reader_cpu.py --runs 1

It re-executes itself with `ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2
SSDBOOK_FP32=1` (set before torch is imported: torch reads them once), so on a newer
CPU (AVX512, AMX, native bf16) it computes what an AVX2 machine without native bf16
computes. Emulation on a newer core is faster than a real AVX2 machine (the issue
measured 1.3-1.5x), so the times are a lower bound for such a machine. Each run trains
into its own folder under runs/ (`runs/reader_cpu/run<k>`), never into runs/demo.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
READER = dict(ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2", SSDBOOK_FP32="1")


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--runs", type=int, default=2, help="runs in a row (default 2)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--root", default="data", help="where the shapes set lives")
    p.add_argument("--no-record", action="store_true")
    a = p.parse_args(argv)
    if a.runs < 1 or a.threads < 1:
        p.error("--runs and --threads must be >= 1")
    if any(os.environ.get(k) != v for k, v in READER.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **READER})
    import torch

    from ssdbook.commands import demo

    runs = []
    for k in range(a.runs):
        t = time.perf_counter()
        r = demo(a.root, f"runs/reader_cpu/run{k + 1}", progress=False,
                 threads=a.threads)  # fmt: skip
        runs.append(
            dict(
                map=r["map"],
                seconds=round(time.perf_counter() - t, 1),
                train_seconds=round(r["train_seconds"], 1),
                eval_seconds=round(r["eval_seconds"], 1),
            )
        )
        print(f"run {k + 1}: mAP {r['map']:.4f} in {runs[-1]['seconds']:.0f} s")
    same = len({round(x["map"], 6) for x in runs}) == 1
    print(f"{len(runs)} runs, same mAP: {same}")
    if not a.no_record:
        sys.path.insert(0, str(HERE))
        from _results import record

        record(
            "main_job_avx2_fp32",
            dict(
                map=runs[-1]["map"],
                wall_seconds=max(x["seconds"] for x in runs),
                train_seconds=max(x["train_seconds"] for x in runs),
                runs=runs,
                same_map=same,
                iterations=r["iterations"],
                batch_size=r["batch_size"],
                cpu_capability=torch.backends.cpu.get_cpu_capability(),
                what="make main in fp32 on AVX2 kernels (emulated), 2 threads, "
                "run twice in a row",
            ),
            command="python benchmarks/main_job_reader_cpu.py",
        )


if __name__ == "__main__":
    main()
