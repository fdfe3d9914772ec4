"""Readable at the book's width: the code is formatted by ruff (line length 88,
pyproject.toml [tool.ruff]) in the chapters, the package, the tools, the benchmarks and
the tests, and passes a minimal lint selection.

Fix: `ruff format nbs ssdbook tools benchmarks tests`, then `make export` (nbdev_export
writes the modules from the notebooks, long `__all__` lines included, and `make export`
formats them after it).
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["nbs", "ssdbook", "tools", "benchmarks", "tests"]
RUFF = str(Path(sys.executable).with_name("ruff"))


def _ruff(*args):
    return subprocess.run(
        [RUFF, *args, "--no-cache", *PATHS], cwd=ROOT, capture_output=True, text=True
    )


def _files(out):
    "The files named in ruff's report (`  --> path:line:col` under each finding)."
    return sorted(set(re.findall(r"^\s*--> (\S+?\.(?:py|ipynb))(?::|$)", out, re.M)))


def test_code_is_formatted():
    r = _ruff("format", "--check")
    files = _files(r.stdout + r.stderr)
    summary = (r.stdout + r.stderr).strip().splitlines()[-1:]
    assert r.returncode == 0, (
        f"{summary}: run `ruff format` (see the module docstring): "
        + ", ".join(files[:40])
        + ("..." if len(files) > 40 else "")
    )


def test_lint_minimal_selection():
    r = _ruff("check", "--output-format", "concise")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


def test_code_lines_fit_the_page():
    """No line over 88 characters, so no code block of the book scrolls sideways
    (E501)."""
    r = _ruff("check", "--select", "E501", "--output-format", "concise")
    long_lines = [l for l in r.stdout.splitlines() if "E501" in l]
    assert not long_lines, (
        f"{len(long_lines)} lines over 88 characters, e.g.\n"
        + "\n".join(long_lines[:20])
    )


def test_pages_fit_the_book_width():
    """Nothing on a page scrolls sideways: tools/wide_lines.py (code cells, text outputs
    and markdown code blocks, 88 characters) finds 0 lines in every notebook."""
    sys.path.insert(0, str(ROOT / "tools"))
    from wide_lines import WIDTH, wide_lines

    found = {
        p.name: lines
        for p in sorted((ROOT / "nbs").glob("*.ipynb"))
        if (lines := wide_lines(p))
    }
    assert not found, (
        f"{sum(map(len, found.values()))} lines over {WIDTH} characters "
        "(python tools/wide_lines.py NOTEBOOK lists them): "
        + ", ".join(f"{nb} {len(lines)}" for nb, lines in found.items())
    )
