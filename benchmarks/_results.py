"""One source for every measured number: benchmarks/results.json.

Every benchmark script (and the main job, `python -m ssdbook demo`) records what it
measured here with `record(name, numbers)`. README.md's results table is rendered from
this file (tools/render_readme.py) and the chapters read it, so prose and measurement
never drift apart.

    # scripts in benchmarks/:
    import sys; sys.path.insert(0, str(Path(__file__).parent))
    from _results import record
    record("bench_match",
           {"ssdbook_ms": 12.3, "baseline_ms": 25.7, "ratio": 2.1, "what": "..."})

Each entry gets the date, the machine (CPU count, torch version, device) and the command
that produced it. The file is rewritten atomically (temp file + os.replace) under an
exclusive lock, so two scripts recording at the same time lose nothing.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.json"

__all__ = ["RESULTS", "record", "load", "machine"]


def machine() -> str:
    """A short description of where a number was measured."""
    try:
        import torch

        dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
        cap = torch.backends.cpu.get_cpu_capability()  # AVX2 on most readers' CPUs
        bf16 = (
            "native bf16" if torch.cpu._is_avx512_bf16_supported() else "no native bf16"
        )
        fp32 = ", fp32 forced" if os.environ.get("SSDBOOK_FP32") == "1" else ""
        tv = (
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"CPU capability {cap}, {bf16}{fp32}"
        )
    except Exception:  # torch missing: still describe the host
        dev, tv = "CPU", "no torch"
    return f"{dev}, {os.cpu_count()} cores, {platform.machine()}, {tv}"


def load(path: Path | str = RESULTS) -> dict:
    """The recorded results ({} when nothing was recorded yet)."""
    path = Path(path)
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def _locked(path: Path):
    import fcntl

    fh = open(path.with_suffix(".lock"), "w")
    fcntl.flock(fh, fcntl.LOCK_EX)
    return fh


def record(
    name: str, numbers: dict, path: Path | str = RESULTS, command: str | None = None
) -> dict:
    """Store `numbers` (JSON-serialisable) under `name`, replacing the previous entry of
    that name."""
    path = Path(path)
    entry = dict(numbers)
    entry.setdefault(
        "measured", _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    )
    entry.setdefault("machine", machine())
    entry.setdefault(
        "command", command or " ".join([Path(sys.argv[0]).name] + sys.argv[1:])
    )
    lock = _locked(path)
    try:
        data = load(path)
        data[name] = entry
        text = json.dumps(dict(sorted(data.items())), indent=2, sort_keys=False) + "\n"
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".results.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        lock.close()
    return entry
