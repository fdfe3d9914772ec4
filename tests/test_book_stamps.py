"""Every page of the book was executed by today's library: `tools/run_book.py` stamps
each notebook with the library commit it ran against, and a page is stale when a module
it imports (directly or through other modules) changed in a later commit. Fix: `make
book-run` (or `python tools/run_book.py nbs/X.ipynb` for one chapter). Same check from
the command line: `python tools/run_book.py --check`."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import run_book  # noqa: E402


def test_imports_are_found_in_notebook_code_and_modules():
    src = (
        "import torch\nfrom ssdbook.loss import MultiBoxLoss\nimport ssdbook.detect as "
        "d\n"
        "def f():\n    from ssdbook import voc\n    from .priors import "
        "PriorBox\n%matplotlib inline"
    )
    assert run_book.imports_of_source_lines(src) == {"loss", "detect", "voc", "priors"}


def test_a_page_depends_on_what_its_imports_import():
    graph = {
        "loss": {"matching", "mining"},
        "matching": {"encoding"},
        "mining": {"priors"},
        "encoding": set(),
        "priors": set(),
        "detect": set(),
    }
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "source": "#| default_exp detect\nfrom ssdbook.loss import x",
            }
        ]
    }
    assert run_book.page_modules(nb, graph) == {
        "loss",
        "matching",
        "mining",
        "encoding",
        "priors",
    }


def test_every_page_is_stamped_and_current():
    stale = run_book.check(run_book.toc_notebooks())
    assert not stale, (
        f"{len(stale)} pages were executed before a change to the library they use "
        "(run `make book-run`):\n" + "\n".join(f"  {p.name}: {why}" for p, why in stale)
    )


def test_pages_of_one_pass_carry_one_stamp():
    stamps = {}
    for p in run_book.toc_notebooks():
        s = json.loads(p.read_text()).get("metadata", {}).get("ssdbook")
        if s:
            stamps.setdefault(
                (s.get("library_commit"), s.get("library_dirty")), []
            ).append(p.name)
    assert len(stamps) <= 1, "pages stamped by different library states: " + "; ".join(
        f"{c[0][:8] if c[0] else None}{' dirty' if c[1] else ''}: {len(v)} pages"
        for c, v in stamps.items()
    )


def test_execute_runs_with_full_budgets_stamps_and_never_half_writes(
    tmp_path, monkeypatch
):
    import nbformat

    # as under pytest: the run must not inherit it
    monkeypatch.setenv("SSDBOOK_QUICK", "1")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import json, os\nprint(os.environ.get('SSDBOOK_QUICK'), "
            "json.loads(os.environ['SSDBOOK_BOOK_STAMP'])['library_commit'])"
        )
    ]
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    stamp = {
        "library_commit": "abc123",
        "library_dirty": False,
        "machine": {"cpu": "test"},
    }
    run_book.execute(path, stamp, timeout=120)
    out = nbformat.read(path, as_version=4)
    assert (
        out.cells[0].outputs[0]["text"] == "None abc123\n"
        and out.cells[0].execution_count == 1
    )
    assert out.metadata["ssdbook"] == stamp
    import os

    assert os.environ["SSDBOOK_QUICK"] == "1" and "SSDBOOK_BOOK_STAMP" not in os.environ

    out.cells.append(nbformat.v4.new_code_cell("raise ValueError('boom')"))
    nbformat.write(out, path)
    before = path.read_bytes()
    import pytest

    with pytest.raises(Exception, match="boom"):
        run_book.execute(path, {**stamp, "library_commit": "def456"}, timeout=120)
    assert path.read_bytes() == before, "a failed run leaves the notebook as it was"


def test_main_job_is_stale_when_missing_older_or_made_by_another_commit(
    tmp_path, monkeypatch
):
    import os

    ckpt, stamp = tmp_path / "last.pth", tmp_path / "book_stamp.json"
    monkeypatch.setattr(run_book, "MAIN_CKPT", ckpt)
    monkeypatch.setattr(run_book, "MAIN_STAMP", stamp)
    monkeypatch.setattr(run_book, "MAIN_OUT", tmp_path)
    assert "no checkpoint" in run_book.main_job_problem()
    ckpt.write_bytes(b"x")
    assert "no record" in run_book.main_job_problem()
    now = run_book.library_commit()
    stamp.write_text(json.dumps({**now, "version": run_book.package_version()}))
    assert run_book.main_job_problem() is None
    stamp.write_text(
        json.dumps(
            {**now, "library_commit": "0" * 40, "version": run_book.package_version()}
        )
    )
    assert "made by library commit 00000000" in run_book.main_job_problem()
    stamp.write_text(json.dumps({**now, "version": "0.0.0"}))
    assert "made by ssdbook 0.0.0" in run_book.main_job_problem()
    os.utime(ckpt, (0, 0))  # a checkpoint from 1970: older than every commit
    assert "older than commit" in run_book.main_job_problem()
