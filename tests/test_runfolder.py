"""Chapter 9c: the run folder (ssdbook.runfolder): one run per folder (RunLock), a log
that survives kills."""

import errno
import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest

import ssdbook.checkpoint as C
from ssdbook.checkpoint import NoSpaceError, clean_temp_files
from ssdbook.runfolder import (
    RunLock,
    RunLockedError,
    append_log_row,
    read_log,
    truncate_log,
)


def one_line(e):
    s = str(e.value)
    assert "\n" not in s, s
    return s


def test_temp_files_of_killed_writes_are_cleaned(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    (tmp_path / f".last.pth.tmp{dead}").write_bytes(b"half")
    (tmp_path / f".last.pth.tmp{os.getpid()}").write_bytes(b"mine, in flight")
    (tmp_path / "notes.tmp123").write_text(
        "not ours"
    )  # other patterns are never touched
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / f".x.pth.tmp{dead}").write_bytes(b"other folder")
    gone = clean_temp_files(tmp_path)
    assert [p.name for p in gone] == [f".last.pth.tmp{dead}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f".last.pth.tmp{os.getpid()}",
        "notes.tmp123",
        "sub",
    ]
    with RunLock(tmp_path):  # under the lock: every temp file of ours
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            ".ssdbook.lock",
            "notes.tmp123",
            "sub",
        ]
    assert (tmp_path / "sub" / f".x.pth.tmp{dead}").exists()


LOCK_HOLDER = textwrap.dedent("""
    import sys, time
    from ssdbook.runfolder import RunLock
    with RunLock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(60)
""")


def test_run_lock_refuses_a_second_run_and_takes_over_a_stale_one(tmp_path, caplog):
    p = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout.readline().strip() == "locked"
        with pytest.raises(
            RunLockedError, match=rf"in use by another run: pid {p.pid} on"
        ) as e:
            RunLock(tmp_path).acquire()
        one_line(e)
    finally:
        p.kill()  # SIGKILL: no cleanup, the lock file stays
        p.wait()
    assert f"pid={p.pid}" in (tmp_path / ".ssdbook.lock").read_text()
    with caplog.at_level(logging.WARNING, "ssdbook.runfolder"):
        with RunLock(tmp_path) as lock:
            assert lock.previous["pid"] == str(p.pid)
            assert f"pid={os.getpid()}" in lock.path.read_text()
            with pytest.raises(
                RunLockedError, match=f"pid {os.getpid()}"
            ):  # also within one process
                RunLock(tmp_path).acquire()
    assert f"taking over the stale lock of pid {p.pid}" in caplog.text
    assert not (tmp_path / ".ssdbook.lock").exists()  # released
    with pytest.raises(ZeroDivisionError):
        with RunLock(tmp_path):
            1 / 0
    with RunLock(tmp_path) as again:  # released on the exception too
        assert again.previous == {}


def test_log_rows_torn_rows_and_truncation(tmp_path):
    path = tmp_path / "log.csv"
    rows = [
        dict(
            iteration=i,
            loss_l=0.5 / i,
            loss_c=1.0,
            loss=1.5,
            lr=1e-3,
            img_s=10.0,
            elapsed_s=i,
            cpu_s=i,
            skipped=0,
        )
        for i in (1, 2, 3)
    ]
    for r in rows:
        append_log_row(path, r)
    assert read_log(path) == [
        dict(r, elapsed_s=float(r["elapsed_s"]), cpu_s=float(r["cpu_s"])) for r in rows
    ]
    with open(path, "a") as f:
        f.write("4,0.12")  # a kill in the middle of a row
    assert [r["iteration"] for r in read_log(path)] == [1, 2, 3]
    assert [r["iteration"] for r in read_log(path, upto=2)] == [1, 2]
    append_log_row(
        path, dict(rows[0], iteration=5)
    )  # the torn row is closed off, then skipped
    assert [r["iteration"] for r in read_log(path)] == [1, 2, 3, 5]
    # resume at 2: rows after 2 dropped, then the resumed run appends 3: never a
    # duplicate
    assert [r["iteration"] for r in truncate_log(path, 2)] == [1, 2]
    append_log_row(path, rows[2])
    lines = path.read_text().splitlines()
    assert [l.split(",")[0] for l in lines] == ["iteration", "1", "2", "3"]
    assert (
        truncate_log(tmp_path / "fresh.csv", 0) == []
        and read_log(tmp_path / "fresh.csv") == []
    )
    assert (tmp_path / "fresh.csv").read_text().startswith("iteration,loss_l")
    assert read_log(tmp_path / "missing.csv") == []


def test_truncating_the_log_on_a_full_disk_names_the_log(tmp_path, monkeypatch):
    def full(f, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(C, "_write_bytes", full)
    with pytest.raises(NoSpaceError, match="log.csv"):
        truncate_log(tmp_path / "log.csv", 0)


def test_run_lock_without_flock_warns_and_runs(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(
        sys.modules, "fcntl", None
    )  # as on Windows: `import fcntl` fails
    with caplog.at_level(logging.WARNING, "ssdbook.runfolder"):
        with RunLock(tmp_path):
            pass
    assert (
        "no file locks on this platform" in caplog.text
        and not (tmp_path / RunLock.NAME).exists()
    )


# ---------------------------------------------------------------- issue 21
def test_a_column_added_by_hand_never_loses_rows(tmp_path, caplog):
    """Item 4: a hand-added column, then a resume: the rows stay (a backup keeps the
    whole file), one warning."""
    path = tmp_path / "log.csv"
    for i in range(1, 21):
        append_log_row(
            path, dict(iteration=i, loss_l=1.0, loss_c=2.0, loss=3.0, lr=1e-3)
        )
    lines = path.read_text().splitlines()
    edited = [lines[0] + ",note"] + [
        l + (",looks good" if k == 3 else "") for k, l in enumerate(lines[1:])
    ]
    path.write_text("\n".join(edited) + "\n")
    assert [r["iteration"] for r in read_log(path)] == list(range(1, 21))
    assert read_log(path)[3]["note"] == "looks good"
    with caplog.at_level(logging.WARNING, "ssdbook.runfolder"):
        kept = truncate_log(path, 20)
    assert [r["iteration"] for r in kept] == list(range(1, 21))
    assert [r["iteration"] for r in read_log(path)] == list(range(1, 21))
    warnings = [r.getMessage() for r in caplog.records]
    assert (
        len(warnings) == 1
        and "columns note added by hand" in warnings[0]
        and "log.csv.1.bak" in warnings[0]
    )
    assert (tmp_path / "log.csv.1.bak").read_text() == "\n".join(edited) + "\n"
    append_log_row(path, dict(iteration=21, loss=1.0))
    assert read_log(path)[-1]["iteration"] == 21 and path.read_text().startswith(
        "iteration,loss_l,"
    )


def test_prepare_out_refuses_or_replaces_only_the_run(tmp_path):
    """Item 2: a folder holding a run: a one-line error naming the three ways out;
    overwrite removes only run files."""
    import torch
    from ssdbook.runfolder import prepare_out

    assert prepare_out(tmp_path / "new") == [] and prepare_out(tmp_path) == []
    append_log_row(tmp_path / "log.csv", dict(iteration=1, loss=1.0))
    torch.save(dict(format_version=2, model={}, iteration=7), tmp_path / "last.pth")
    torch.save(
        dict(format_version=2, model={}, iteration=7), tmp_path / "ssd_mini_000007.pth"
    )
    (tmp_path / "loss.png").write_bytes(b"png")
    (tmp_path / "mine.txt").write_text("user's")
    with pytest.raises(ValueError) as e:
        prepare_out(tmp_path)
    assert "last.pth at iteration 7" in one_line(e) and all(
        w in str(e.value) for w in ("--resume auto", "new --out", "--overwrite")
    )
    assert prepare_out(tmp_path, resume="auto") == []
    gone = prepare_out(tmp_path, overwrite=True)
    assert sorted(p.name for p in gone) == [
        "last.pth",
        "log.csv",
        "loss.png",
        "ssd_mini_000007.pth",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


def test_result_folder_is_all_or_nothing_and_locked(tmp_path):
    """Item 3: results replace the previous ones complete or not at all; a second
    command is refused meanwhile."""
    from ssdbook.runfolder import ResultFolder

    out = tmp_path / "det"

    def run(names, fail=False):
        with ResultFolder(out, marker="detections.json") as stage:
            for n in names:
                (stage / n).write_text(n)
            if fail:
                raise OSError("boom")
            (stage / "detections.json").write_text(json.dumps(names))

    run(["a.png", "b.png"])
    (out / "notes.txt").write_text("user's")
    with pytest.raises(OSError):
        run(["c.png"], fail=True)
    visible = lambda: sorted(
        p.name for p in out.iterdir() if not p.name.startswith(".")
    )
    assert visible() == ["a.png", "b.png", "detections.json", "notes.txt"]
    with ResultFolder(out, marker="detections.json"):
        with pytest.raises(RunLockedError, match="in use by another run"):
            run(["x.png"])
    run(["c.png"])
    assert visible() == ["c.png", "detections.json", "notes.txt"]
    assert json.loads((out / "detections.json").read_text()) == ["c.png"]
    # a command killed mid-way leaves its staging folder; the next one removes it
    (out / ".results.tmp999999").mkdir()
    run(["d.png"])
    assert not list(out.glob(".results.tmp*")) and visible() == [
        "d.png",
        "detections.json",
        "notes.txt",
    ]
