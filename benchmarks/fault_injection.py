"""Fault injection: kill training with SIGKILL at random moments, resume, and compare
with a run never killed.

    # >= 25 kills (the note's number), a few minutes on a CPU
    python benchmarks/fault_injection.py
    python benchmarks/fault_injection.py --kills 5 --iterations 6

A tiny run (the mini base, batch 2, a handful of shapes images, a checkpoint *every*
iteration so that many kills land while a checkpoint is being written) is trained once
without interruption: the reference. Then, round after round, the same run is started in
a fresh folder with `resume='auto'` and killed (SIGKILL: no handler, no cleanup, like a
preempted machine), and started again, until it finishes on its own. Kills alternate
between 'anytime' (a random instant of the start-up or of a random step) and 'mid-write'
(0-5 ms after a checkpoint write has begun, i.e. its temp file exists). Each round's
final weights, optimiser state and log.csv are compared with the reference. After every
kill the folder is inspected: every checkpoint file left must load (none half-written),
and the newest intact one must never be older than one seen before the kill (nothing
lost). Temp files left by a kill mid-write are counted: that is how we know the kills
hit the writes.

Two more cases (issue 21): **overwrite** — the same training command again into the
folder of the finished reference run, without `--resume`: it must be refused and leave
every file as it was; with `overwrite=True` it must leave only the new run's files (no
old numbered checkpoint beside the new ones). **concurrent detect** — two `ssdbook
detect --out D` at once: one writes D, the other is refused (exit 2) and D's
`detections.json` lists exactly the pictures beside it; then a `detect` SIGKILLed
half-way: D still holds the previous complete result set.

Prints "N/N kills resumed bit-identical (R runs), 0 checkpoints lost" and records it in
benchmarks/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

_TMP = re.compile(r"^\..+\.tmp\d+$")  # ssdbook.checkpoint's temp files: .NAME.tmpPID
_CKPT_TMP = re.compile(r"^\..+\.pth\.tmp\d+$")  # ... of a checkpoint (not of log.csv)

CHILD = r"""
import json, sys
cfg = json.loads(sys.argv[1])
from ssdbook.train import shapes_recipe, train
config = shapes_recipe(**cfg)
print("ready", flush=True)
train(config)
"""


def tiny_config(root, out, iterations=8, seed=0) -> dict:
    """The overrides of `shapes_recipe` for a run of a few seconds: every iteration
    logged and checkpointed."""
    return dict(
        root=str(root),
        out=str(out),
        n_train=8,
        n_test=2,
        iterations=iterations,
        batch_size=2,
        warmup=2,
        log_every=1,
        checkpoint_every=1,
        keep_checkpoints=2,
        progress=False,
        num_workers=0,
        device="cpu",
        threads=1,
        seed=seed,
        resume="auto",
    )


def start(cfg: dict) -> subprocess.Popen:
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(ROOT),
    )


def wait_ready(p: subprocess.Popen, timeout=120.0) -> float:
    """Block until the child has imported everything (its 'ready' line); returns that
    moment."""
    line = p.stdout.readline()
    if line.strip() != "ready":
        p.kill()
        raise RuntimeError(
            f"child failed before training: {line}{p.stderr.read()[-2000:]}"
        )
    return time.perf_counter()


def finish(p: subprocess.Popen, timeout=600) -> None:
    out, err = p.communicate(timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(
            f"training exited with {p.returncode}: {err.strip().splitlines()[-1:]}"
        )


def inspect(out: Path) -> dict:
    """What a kill left behind: the intact checkpoints' iterations, damaged files, temp
    files of killed writes."""
    from ssdbook.checkpoint import CheckpointError, load_checkpoint

    intact, damaged = {}, []
    for p in sorted(out.glob("*.pth")):
        try:
            intact[p.name] = load_checkpoint(p, mmap=True)["iteration"]
        except CheckpointError as e:
            damaged.append(str(e))
    return dict(
        newest=max(intact.values(), default=0),
        damaged=damaged,
        temps=sorted(temp_files(out)),
        ckpt_temps=sorted(temp_files(out, _CKPT_TMP)),
    )


def same_run(a: Path, b: Path) -> list[str]:
    """Differences between two finished runs: weights, optimiser state, iteration, log
    rows (empty: identical)."""
    import torch
    from ssdbook.checkpoint import load_checkpoint
    from ssdbook.runfolder import read_log

    x, y = load_checkpoint(a / "last.pth"), load_checkpoint(b / "last.pth")
    diff = [k for k in x["model"] if not torch.equal(x["model"][k], y["model"][k])]
    for i, (s, t) in enumerate(
        zip(x["optimizer"]["state"].values(), y["optimizer"]["state"].values())
    ):
        diff += [
            f"optimizer[{i}].{k}"
            for k in s
            if torch.is_tensor(s[k]) and not torch.equal(s[k], t[k])
        ]
    if x["iteration"] != y["iteration"]:
        diff.append(f"iteration {x['iteration']} vs {y['iteration']}")
    its = [r["iteration"] for r in read_log(b / "log.csv")]
    if its != [r["iteration"] for r in read_log(a / "log.csv")]:
        diff.append(f"log.csv iterations {its}")
    return diff


def temp_files(out: Path, pattern=_TMP) -> set:
    try:
        return {e.name for e in os.scandir(out) if pattern.match(e.name)}
    except FileNotFoundError:
        return set()


def kill_mid_write(
    p: subprocess.Popen, out: Path, nth: int, rng: random.Random
) -> bool:
    """Watch `out` and SIGKILL `p` a random instant (0-5 ms) after its `nth` checkpoint
    write begins; False if it ended first."""
    seen, writing = 0, False
    while p.poll() is None:
        now = bool(temp_files(out, _CKPT_TMP))
        if now and not writing:
            seen += 1
            if seen >= nth:
                time.sleep(rng.uniform(0, 0.005))
                p.send_signal(signal.SIGKILL)
                p.communicate()
                return True
        writing = now
        time.sleep(0.0005)
    return False


def _kill(p: subprocess.Popen) -> bool:
    if p.poll() is not None:
        return False
    p.send_signal(signal.SIGKILL)
    p.communicate()
    return True


def kill_anytime(
    p: subprocess.Popen,
    out: Path,
    before: int,
    k: int,
    startup: float,
    step: float,
    rng: random.Random,
) -> bool:
    """SIGKILL `p` at a random instant of its k-th step after `before` (k = 0: of its
    start-up), whatever the load on the machine; False if it finished first."""
    from ssdbook.runfolder import read_log

    while (
        p.poll() is None
        and sum(r["iteration"] > before for r in read_log(out / "log.csv")) < k
    ):
        time.sleep(0.002)
    time.sleep(rng.uniform(0, startup if k == 0 else step))
    return _kill(p)


def run_round(
    cfg: dict, timing: tuple, rng: random.Random, max_kills: int, events: list, rnd: int
) -> int:
    """Start, kill, restart... until the run finishes by itself (or after `max_kills`
    kills); returns the kills.

    Kills alternate between 'anytime' (a random instant of start-up or of a random step:
    loading, caching, forward, backward, logging, writing) and 'mid-write' (0-5 ms after
    the n-th checkpoint write of this start begins). `timing` = (start-up seconds,
    seconds a step) of the uninterrupted run."""
    out, kills, best = Path(cfg["out"]), 0, 0
    while True:
        before = inspect(out)["newest"] if out.exists() else 0
        p = start(cfg)
        t0 = wait_ready(p)
        mode = "mid-write" if kills % 2 else "anytime"
        if (
            kills >= max_kills or before >= cfg["iterations"]
        ):  # enough, or nothing left to train
            killed = False
        elif mode == "anytime":
            killed = kill_anytime(
                p,
                out,
                before,
                rng.randint(0, cfg["iterations"] - before - 1),
                *timing,
                rng,
            )
        else:
            killed = kill_mid_write(
                p, out, rng.randint(1, max(1, 2 * (cfg["iterations"] - before))), rng
            )
        if not killed:
            finish(p)
            return kills
        kills += 1
        after = inspect(out)
        lost = int(after["newest"] < max(best, before)) + len(after["damaged"])
        best = max(best, after["newest"])
        events.append(
            dict(
                round=rnd,
                mode=mode,
                t=round(time.perf_counter() - t0, 3),
                resumed_from=before,
                reached=after["newest"],
                mid_write=bool(after["ckpt_temps"]),
                lost=lost,
                damaged=after["damaged"],
            )
        )


def _files(folder: Path) -> dict:
    "name -> bytes of the visible files of a folder (what a user sees)."
    return {
        p.name: p.read_bytes()
        for p in sorted(folder.iterdir())
        if p.is_file() and not p.name.startswith(".")
    }


def overwrite_case(work: Path, ref_out: Path, iterations: int) -> dict:
    """A finished run's folder, trained into again: refused without resume (nothing
    touched); replaced with overwrite."""
    before = _files(ref_out)
    cfg = tiny_config(work / "data", ref_out, iterations=2)
    p = start(dict(cfg, resume=""))
    wait_ready(p)
    _, err = p.communicate(timeout=600)
    last = (err.strip().splitlines() or [""])[-1]
    refused = (
        p.returncode != 0
        and "already holds a training run" in last
        and "--overwrite" in last
    )
    untouched = _files(ref_out) == before
    p = start(dict(cfg, resume="", overwrite=True))
    wait_ready(p)
    finish(p)
    from ssdbook.checkpoint import load_checkpoint, numbered_checkpoints

    left = [q.name for q in numbered_checkpoints(ref_out)]
    clean = load_checkpoint(ref_out / "last.pth")["iteration"] == 2 and left == [
        "ssd_mini_000002.pth",
        "ssd_mini_000001.pth",
    ]
    return dict(
        refused=refused,
        untouched=untouched,
        replaced_cleanly=clean,
        ok=refused and untouched and clean,
        error_line=last[-200:],
    )


def _detect(images, ck, out) -> subprocess.Popen:
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ssdbook",
            "detect",
            *map(str, images),
            "--checkpoint",
            str(ck),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--batch-size",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(ROOT),
    )


def _consistent(out: Path) -> bool:
    """detections.json lists exactly the pictures in the folder (no stale JSON beside
    other pictures)."""
    listed = {
        r.get("picture") for r in json.loads((out / "detections.json").read_text())
    }
    return listed == {p.name for p in out.glob("*_detections.png")}


def detect_case(work: Path, ck: Path) -> dict:
    """Two detects into one folder at once, then one killed half-way: the folder always
    holds one complete result set."""
    images = sorted((work / "data").rglob("*.jpg"))
    out = work / "detections"
    a, b = _detect(images, ck, out), _detect(images[:2], ck, out)
    (_, err_a), (_, err_b) = a.communicate(timeout=600), b.communicate(timeout=600)
    codes = sorted([a.returncode, b.returncode])
    loser = err_a if a.returncode else err_b
    concurrent_ok = (codes == [0, 2] and "in use by another run" in loser) or codes == [
        0,
        0,
    ]
    serialised = codes == [
        0,
        0,
    ]  # the two did not overlap (a busy machine): both wrote in turn
    consistent = _consistent(out)
    before = _files(out)
    p = _detect(images, ck, out)
    while p.poll() is None and "detections" not in (
        p.stdout.readline() or "detections"
    ):
        pass  # the first picture is written (into the staging folder)
    killed = _kill(p)
    kept = _files(out) == before and _consistent(out)
    q = _detect(
        images[:1], ck, out
    )  # the next detect cleans the killed one's staging folder
    q.communicate(timeout=600)
    clean = (
        q.returncode == 0 and not list(out.glob(".results.tmp*")) and _consistent(out)
    )
    return dict(
        concurrent_ok=concurrent_ok,
        serialised=serialised,
        consistent=consistent,
        killed=killed,
        previous_kept_after_kill=kept,
        next_run_clean=clean,
        ok=concurrent_ok and consistent and kept and clean,
    )


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--kills", type=int, default=25, help="at least this many kills in total"
    )
    ap.add_argument("--iterations", type=int, default=8, help="iterations of each run")
    ap.add_argument(
        "--per-round", type=int, default=6, help="at most this many kills in one run"
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill times")
    ap.add_argument(
        "--workdir",
        default="",
        help="keep the runs here (default: a temp folder, removed)",
    )
    ap.add_argument(
        "--no-record", action="store_true", help="do not write benchmarks/results.json"
    )
    ap.add_argument(
        "--cases",
        default="kills,overwrite,detect",
        help="which cases (default: all three)",
    )
    args = ap.parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="ssdbook-faults-"))
    rng, events, rounds = random.Random(args.seed), [], []
    try:
        ref = tiny_config(work / "data", work / "reference", args.iterations)
        p = start(ref)
        t0 = wait_ready(p)
        finish(p)
        duration = time.perf_counter() - t0
        from ssdbook.runfolder import read_log

        loop = read_log(work / "reference" / "log.csv")[-1]["elapsed_s"]
        timing = (duration - loop, loop / args.iterations)
        print(
            f"reference: {duration:.1f} s after imports: "
            f"{timing[0]:.1f} s start-up (data, model), "
            f"{timing[1]:.2f} s a step"
        )
        kills, cases = 0, set(args.cases.split(","))
        while kills < args.kills and "kills" in cases:
            cfg = dict(ref, out=str(work / f"round{len(rounds)}"))
            k = run_round(
                cfg,
                timing,
                rng,
                min(args.per_round, args.kills - kills),
                events,
                len(rounds),
            )
            diff = same_run(work / "reference", Path(cfg["out"]))
            rounds.append(dict(kills=k, identical=not diff, diff=diff[:5]))
            kills += k
            print(
                f"run {len(rounds)}: {k} kills, "
                + ("bit-identical" if not diff else "DIFFERS: " + ", ".join(diff[:5]))
            )
        extra = {}
        if "detect" in cases:
            extra["concurrent_detect"] = detect_case(
                work, work / "reference" / "last.pth"
            )
            print(f"concurrent detect: {extra['concurrent_detect']}")
        if "overwrite" in cases:
            extra["overwrite"] = overwrite_case(
                work, work / "reference", args.iterations
            )
            print(f"overwrite: {extra['overwrite']}")
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    ok = sum(r["kills"] for r in rounds if r["identical"])
    lost = sum(e["lost"] for e in events)
    mid = sum(e["mid_write"] for e in events)
    line = (
        f"{ok}/{kills} kills resumed bit-identical "
        f"({sum(r['identical'] for r in rounds)}/{len(rounds)} runs), "
        f"{lost} checkpoints lost; {mid} kills landed during a checkpoint write"
    )
    print(line)
    result = dict(
        kills=kills,
        identical_kills=ok,
        runs=len(rounds),
        identical_runs=sum(r["identical"] for r in rounds),
        checkpoints_lost=lost,
        mid_write_kills=mid,
        iterations=args.iterations,
        reference_seconds=round(duration, 2),
        summary=line,
        events=[
            {
                k: e[k]
                for k in (
                    "round",
                    "mode",
                    "t",
                    "resumed_from",
                    "reached",
                    "mid_write",
                    "lost",
                )
            }
            for e in events
        ],
        **extra,
    )
    if not args.no_record:
        sys.path.insert(0, str(HERE))
        from _results import record

        record("fault_injection", result)
    return result


if __name__ == "__main__":
    main()
