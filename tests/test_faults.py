"""Issue 12, item 4: faults on purpose. SIGKILL a training subprocess at random moments
(also in the middle of a checkpoint write), resume it, and compare with a run never
killed; fill the disk during a checkpoint write. The full-size run (>= 25 kills) is
`python benchmarks/fault_injection.py`."""

import errno
import importlib.util
from pathlib import Path

import pytest
import torch

import ssdbook.checkpoint as C
from ssdbook.checkpoint import NoSpaceError, load_checkpoint
from ssdbook.runfolder import read_log

ROOT = Path(__file__).resolve().parents[1]


def driver():
    spec = importlib.util.spec_from_file_location(
        "fault_injection", ROOT / "benchmarks" / "fault_injection.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path):
    r = driver().main(
        [
            "--kills",
            "3",
            "--iterations",
            "4",
            "--per-round",
            "3",
            "--seed",
            "1",
            "--workdir",
            str(tmp_path),
            "--no-record",
        ]
    )
    assert (
        r["kills"] == 3
        and r["identical_kills"] == 3
        and r["identical_runs"] == r["runs"]
    ), r["summary"]
    assert r["checkpoints_lost"] == 0, r["events"]
    assert {e["mode"] for e in r["events"]} == {"anytime", "mid-write"}
    # nothing of the killed writes is left once the run has finished (cleaned at the
    # next start)
    for run in tmp_path.glob("round*"):
        assert not [
            p.name for p in run.iterdir() if p.name.startswith(".") and ".tmp" in p.name
        ]


def test_disk_full_during_a_checkpoint_keeps_the_previous_and_resumes(
    tmp_path, monkeypatch
):
    from ssdbook.train import shapes_recipe, train

    kw = dict(
        root=str(tmp_path / "data"),
        n_train=6,
        n_test=2,
        iterations=3,
        batch_size=2,
        warmup=1,
        log_every=1,
        checkpoint_every=1,
        progress=False,
        num_workers=0,
        device="cpu",
        threads=1,
    )
    straight = train(shapes_recipe(out=str(tmp_path / "a"), **kw))
    writes, real = [], C._write_bytes

    def fill_at_third(
        f, data
    ):  # last.pth and ssd_mini_000001.pth go through; then the disk is full
        writes.extend([f.name] if ".pth" in f.name else [])
        if len(writes) == 3:
            f.write(bytes(data)[:4096])
            raise OSError(errno.ENOSPC, "No space left on device")
        real(f, data)

    monkeypatch.setattr(C, "_write_bytes", fill_at_third)
    with pytest.raises(NoSpaceError, match=r"^no space left writing .*last.pth") as e:
        train(shapes_recipe(out=str(tmp_path / "b"), **kw))
    assert "\n" not in str(e.value)
    monkeypatch.setattr(C, "_write_bytes", real)
    assert (
        load_checkpoint(tmp_path / "b" / "last.pth")["iteration"] == 1
    )  # the previous one, intact
    assert not [
        p for p in (tmp_path / "b").iterdir() if ".tmp" in p.name
    ]  # the partial write is gone
    resumed = train(shapes_recipe(out=str(tmp_path / "b"), resume="auto", **kw))
    for k, v in straight["net"].state_dict().items():
        assert torch.equal(v, resumed["net"].state_dict()[k]), k
    assert [r["iteration"] for r in read_log(tmp_path / "b" / "log.csv")] == [1, 2, 3]


def test_overwrite_and_concurrent_detect(tmp_path):
    """Issue 21 items 2, 3 (21.7): training again into a finished run's folder is
    refused and touches nothing; with overwrite only the new run's files are left; two
    detects into one folder and a detect killed half-way always leave one complete
    result set."""
    r = driver().main(
        [
            "--kills",
            "0",
            "--iterations",
            "3",
            "--workdir",
            str(tmp_path),
            "--no-record",
            "--cases",
            "overwrite,detect",
        ]
    )
    assert r["overwrite"]["ok"], r["overwrite"]
    assert r["concurrent_detect"]["ok"], r["concurrent_detect"]
