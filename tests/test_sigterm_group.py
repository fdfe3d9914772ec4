"""Issue 21.17: a job scheduler (or `kill -- -PGID`) sends SIGTERM to the whole process
group, DataLoader workers included. Training must save and stop as on Ctrl-C: exit 143,
one line naming the checkpoint, a checkpoint of the last step, no traceback. Before the
fix the workers died first and the main process failed on its next batch."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ssdbook.checkpoint import load_checkpoint
from ssdbook.shapes import make_shapes_voc


@pytest.mark.skipif(os.name != "posix", reason="process groups are POSIX")
def test_sigterm_to_the_group_saves_and_stops(tmp_path):
    root = tmp_path / "shapes"
    make_shapes_voc(root, n_train=16, n_test=2, seed=0)
    run = tmp_path / "run"
    argv = [sys.executable, "-m", "ssdbook", "train", "--data", "shapes"]
    argv += ["--root", str(root), "--n-train", "16", "--n-test", "2"]
    argv += ["--iterations", "100000", "--batch-size", "2", "--num-workers", "2"]
    argv += ["--cache", "no", "--augment", "ssd", "--progress", "no"]
    argv += ["--log-every", "1", "--checkpoint-every", "100000", "--out", str(run)]
    p = subprocess.Popen(
        argv,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as under a scheduler
    )
    log = run / "log.csv"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and p.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 3:
            break
        time.sleep(0.5)
    assert p.poll() is None, p.communicate()[1][-2000:]
    os.killpg(p.pid, signal.SIGTERM)  # the main process and its workers
    out, err = p.communicate(timeout=120)
    assert p.returncode == 143, err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    lines = [l for l in err.strip().splitlines() if "stopped by SIGTERM" in l]
    assert len(lines) == 1 and "--resume auto" in lines[0], err[-2000:]
    ck = load_checkpoint(Path(run) / "last.pth")
    assert ck["iteration"] >= 2
