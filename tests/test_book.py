"""The book: builds offline with warnings as errors, every page is in it, readers never
see tool markers, every chapter page has a Colab badge, folded plotting code has its
toggle, and README's generated regions are current."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "_ext"))
sys.path.insert(0, str(ROOT / "tools"))

import render_readme  # noqa: E402
import ssdbook_book  # noqa: E402


def _toc_files():
    return render_readme.toc_files(ROOT / "_toc.yml")


def _notebooks():
    return sorted(ROOT.glob("nbs/*.ipynb"))


# ------------------------------------------------------------------ the table of
# contents
def test_toc_lists_every_notebook_and_appendix():
    listed = {f for f in _toc_files()}
    present = {
        str(p.relative_to(ROOT).with_suffix("")) for p in ROOT.glob("nbs/*.ipynb")
    }
    present |= {
        str(p.relative_to(ROOT).with_suffix("")) for p in ROOT.glob("nbs/appendix_*.md")
    }
    assert listed == present, (
        f"in _toc.yml only: {sorted(listed - present)}; not in _toc.yml: "
        f"{sorted(present - listed)}"
    )


def test_toc_is_in_file_name_order():
    """Chapter numbers in the file names (00, 00a, 01, ... 12, then appendices) follow
    the book's order."""
    files = [Path(f).name for f in _toc_files()]
    chapters = [f for f in files if not f.startswith("appendix")]
    assert chapters == sorted(chapters), chapters
    assert files[len(chapters) :] == [f for f in files if f.startswith("appendix")], (
        "appendices come last"
    )


# ------------------------------------------------------------------ the build-time
# filter (no build needed)
def _nb(*cells):
    return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def _code(src, outputs=(), tags=None):
    md = {"tags": list(tags)} if tags else {}
    return {
        "cell_type": "code",
        "source": src,
        "outputs": list(outputs),
        "metadata": md,
        "execution_count": 1,
    }


def _md(src):
    return {"cell_type": "markdown", "source": src, "metadata": {}}


COLAB_CELL = (
    '# Colab only: install ssdbook (this cell does nothing anywhere else).\nimport '
    'sys\n'
    'if "google.colab" in sys.modules:\n    %pip install -q "ssdbook @ '
    'git+https://github.com/x/y"'
)
OUT = {"output_type": "stream", "name": "stdout", "text": "(15, 8732, 4)\n"}


def test_filter_drops_markers_default_exp_hide_and_the_colab_cell():
    nb = _nb(
        _md("# Chapter 4: encoding\n\nIntro."),
        _code(COLAB_CELL),
        _code("#| default_exp encoding"),
        _code("#| export\nimport torch\n\ndef f(x):\n    return x"),
        _code(
            "# NBVAL_CHECK_OUTPUT\nprint(loc.shape)  # NBVAL_ in a comment stays", [OUT]
        ),
        _code("#| hide\nsecret = 1"),
        _code("#| export\n", [OUT]),
        _md("#| not code: stays"),
    )
    out = ssdbook_book.filter_notebook(
        nb, "https://colab.research.google.com/github/a/b/blob/main/nbs/x.ipynb"
    )
    srcs = [c["source"] for c in out["cells"]]
    assert srcs[0].splitlines()[:3] == [
        "# Chapter 4: encoding",
        "",
        "[![Open In Colab](../_static/colab-badge.svg)]"
        "(https://colab.research.google.com/github/a/b/blob/main/nbs/x.ipynb)",
    ]
    assert srcs[1:] == [
        "import torch\n\ndef f(x):\n    return x",
        "print(loc.shape)  # NBVAL_ in a comment stays",
        "",
        "#| not code: stays",
    ]
    assert out["cells"][3]["metadata"]["tags"] == ["remove-input"] and out["cells"][3][
        "outputs"
    ] == [OUT]
    assert nb["cells"][2]["source"] == "#| default_exp encoding", (
        "the input notebook is not changed"
    )


def test_filter_reads_directives_like_nbdev():
    """Directives only at the top of a cell (`#|export` and `# | export` too); a `#|`
    later in the code stays."""
    code, names = ssdbook_book.clean_code(
        "# NBVAL_CHECK_OUTPUT\n#|export\n# | eval: false\nx = 1\n#| not a directive"
    )
    assert code == "x = 1\n#| not a directive" and names == {"export", "eval"}


def test_filter_keeps_tags_and_handles_list_sources():
    nb = _nb(
        _md(["# Title\n", "text"]),
        _code(["#| export\n", "x = 1\n"], tags=["hide-input"]),
    )
    out = ssdbook_book.filter_notebook(nb, None)
    # no badge without a repository URL
    assert "".join(out["cells"][0]["source"]) == "# Title\ntext"
    assert out["cells"][1]["source"] == "x = 1" and out["cells"][1]["metadata"][
        "tags"
    ] == ["hide-input"]


def test_colab_url_from_repository():
    class Config:
        html_theme_options = {
            "repository_url": "https://github.com/ssdbook/ssdbook",
            "repository_branch": "main",
        }

    assert (
        ssdbook_book.colab_url_for(Config, "nbs/02_priors")
        == "https://colab.research.google.com/github/ssdbook/ssdbook/blob/main/nbs/02_priors.ipynb"
    )


def test_every_chapter_starts_with_title_then_colab_cell():
    """The house convention the filter relies on: cell 0 is the title, cell 1 the Colab
    install cell."""
    for p in _notebooks():
        cells = json.loads(p.read_text())["cells"]
        src = lambda c: (
            "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        )
        assert cells[0]["cell_type"] == "markdown" and src(cells[0]).startswith("# "), (
            f"{p.name}: cell 0 is not a title"
        )
        assert ssdbook_book.is_colab_install_cell(cells[1]), (
            f"{p.name}: cell 1 is not the Colab install cell"
        )


def test_colab_cell_falls_back_to_an_uploaded_copy(tmp_path, monkeypatch, capsys):
    """The install cell of the map (the one every chapter carries), run as on Colab with
    a fake pip: when the install from GitHub fails it says how to install from a copy;
    with a zip uploaded it installs that."""
    import types
    import zipfile

    cell = json.loads((ROOT / "nbs" / "00_index.ipynb").read_text())["cells"][1]
    src = (
        "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    )
    content, log = tmp_path / "content", tmp_path / "pip.log"
    content.mkdir()
    assert 'content="/content"' in src
    src = src.replace('content="/content"', f'content="{content}"')
    fake = tmp_path / "python"
    fake.write_text(
        f'#!/bin/sh\necho "$@" >> "{log}"\necho "ERROR: no network" >&2\nexit '
        f'${{FAKE_PIP_RC:-1}}\n'
    )
    fake.chmod(0o755)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(sys, "executable", str(fake))
    monkeypatch.setattr(sys, "path", list(sys.path))

    exec(compile(src, "colab-cell", "exec"), {})  # no zip, GitHub fails
    out = capsys.readouterr().out
    assert (
        "ERROR: no network" in out and "Install it from a copy of the repository" in out
    )
    assert log.read_text().split() == [
        "-m",
        "pip",
        "install",
        "-q",
        "ssdbook",
        "@",
        "git+https://github.com/ssdbook/ssdbook",
    ]

    with zipfile.ZipFile(
        content / "ssdbook-main.zip", "w"
    ) as z:  # GitHub's "Download ZIP" layout
        z.writestr("ssdbook-main/settings.ini", "[DEFAULT]\n")
        z.writestr("ssdbook-main/ssdbook/__init__.py", "")
    monkeypatch.setenv("FAKE_PIP_RC", "0")
    exec(compile(src, "colab-cell", "exec"), {})
    src_dir = str(content / "ssdbook-src" / "ssdbook-main")
    assert log.read_text().splitlines()[-1] == f"-m pip install -q -e {src_dir}"
    assert sys.path[0] == src_dir and "installed from" in capsys.readouterr().out


# ------------------------------------------------------------------ the build
@pytest.fixture(scope="module")
def html(tmp_path_factory):
    out = tmp_path_factory.mktemp("book")
    exe = Path(sys.executable).with_name("jupyter-book")
    r = subprocess.run(
        [
            str(exe),
            "build",
            str(ROOT),
            "-W",
            "-n",
            "--keep-going",
            "--path-output",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    return out / "_build" / "html"


def _code_cells(text):
    """The source of every notebook code cell shown on a page (HTML tags stripped);
    fenced code in the prose (which may quote a directive on purpose) is not included.
    """
    blocks = re.findall(r'<div class="cell_input[^"]*">.*?<pre>(.*?)</pre>', text, re.S)
    return [re.sub(r"<[^>]+>", "", b) for b in blocks]


def test_book_builds_offline_with_warnings_as_errors(html):
    for f in _toc_files():
        page = html / (f + ".html")
        assert page.exists(), page
        text = page.read_text()
        assert "mathjax/tex-svg.js" in text, (
            f"{page.name}: MathJax is not served locally"
        )
        assert "cdn.jsdelivr.net/npm/mathjax" not in text, (
            f"{page.name}: MathJax from a CDN"
        )
        assert "ssdbook.css" in text, f"{page.name}: the book's stylesheet is missing"
    assert (html / "_static" / "mathjax" / "tex-svg.js").exists()


def test_readers_never_see_tool_markers(html):
    for f in _toc_files():
        page = html / (f + ".html")
        code = "\n".join(_code_cells(page.read_text()))
        for marker in (
            "#| export",
            "#| default_exp",
            "#| hide",
            "NBVAL_CHECK_OUTPUT",
            "# NBVAL_",
            "git+https://github.com/ssdbook",
        ):
            assert marker not in code, f"{page.name}: a code cell shows {marker!r}"
        assert not re.search(r"^\s*#\|", code, re.M), (
            f"{page.name}: a code cell shows an nbdev directive"
        )


def test_every_chapter_page_has_a_colab_badge(html):
    for f in _toc_files():
        if not (ROOT / (f + ".ipynb")).exists():
            continue
        text = (html / (f + ".html")).read_text()
        url = f"https://colab.research.google.com/github/ssdbook/ssdbook/blob/main/{f}.ipynb"
        assert f'href="{url}"><img alt="Open In Colab"' in text, (
            f"{f}: no Open in Colab badge"
        )


def test_folded_plotting_code_has_a_toggle(html):
    """Cells tagged hide-input render as a closed <details> with a "Show code"
    summary."""
    tagged = [
        p
        for p in _notebooks()
        if any(
            "hide-input" in c.get("metadata", {}).get("tags", [])
            for c in json.loads(p.read_text())["cells"]
        )
    ]
    assert tagged, "chapter 0 folds its drawing code"
    for p in tagged:
        text = (html / "nbs" / (p.stem + ".html")).read_text()
        assert re.search(
            r'<details class="[^"]*\bhide above-input\b[^"]*">\s*<summary', text
        ), f"{p.name}: no toggle"


def test_appendices_are_pages(html):
    for name in ("appendix_faq", "appendix_quirks"):
        text = (html / "nbs" / f"{name}.html").read_text()
        assert "<h1>" in text


# ------------------------------------------------------------------ README
def test_readme_regions_are_rendered_from_their_sources():
    """README's results table equals benchmarks/results.json and its chapter map equals
    _toc.yml + the notebooks; fix with `python tools/render_readme.py`."""
    text = (ROOT / "README.md").read_text()
    new = render_readme.render(text, render_readme.load_results())
    for name in ("results", "chapters"):
        assert render_readme.region(text, name) == render_readme.region(new, name), (
            f"README.md region {name!r} is stale: run python tools/render_readme.py"
        )
    old_map, new_map = render_readme.render_map()
    assert old_map == new_map, (
        "nbs/00_index.ipynb's chapter list is stale: run python tools/render_readme.py"
    )


def test_readme_has_no_hand_copied_numbers():
    """Measured numbers live only in the generated results region."""
    text = (ROOT / "README.md").read_text()
    i, j = text.index("<!-- results:start -->"), text.index("<!-- results:end -->")
    prose = text[:i] + text[j:]
    for pattern in (
        r"\d+\.\d+\s*×",
        r"\d+(\.\d+)?\s*ms\b",
        r"mAP\s*[=:]?\s*0\.\d",
        r"\d+ passed",
        r"\d+\s*(min|s)\b.*wall",
        r"images/s",
    ):
        assert not re.search(pattern, prose), (
            f"README prose quotes a measurement ({pattern}); put it in results.json"
        )


def test_readme_colab_badge():
    assert (
        "colab.research.google.com/github/ssdbook/ssdbook/blob/main/nbs/00_index.ipynb"
        in (ROOT / "README.md").read_text()
    )


def test_readme_example_runs():
    """The 'Using the library' block runs as written (the mini base keeps it quick)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Using the library") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    ns = {}
    exec(compile(code, "README.md", "exec"), ns)
    assert tuple(ns["loc"].shape) == (15, 8732, 4) and tuple(
        ns["detections"].shape
    ) == (15, 7, 200, 5)
    assert float(ns["loss_l"].detach()) > 0 and float(ns["loss_c"].detach()) > 0


def test_results_table_rendering():
    """One row per measurement: the headline ratio, CPU time where both clocks were
    recorded, no config numbers."""
    results = {
        "bench_x": {
            "ratio": 2.5,
            "loop_wall_ms": 10.0,
            "loop_cpu_ms": 9.0,
            "batched_cpu_ms": 3.6,
            "batched_wall_ms": 4.0,
            "batch": 32,
            "backward_cpu_ratio": 3.0,
            "backward_wall_ratio": 2.0,
            "what": "x vs y",
            "measured": "2026-12-02 07:00 UTC",
            "machine": "CPU, 2 cores",
        }
    }
    table = render_readme.render_results(results)
    row = next(l for l in table.splitlines() if l.startswith("| `bench_x`"))
    assert row == (
        "| `bench_x` | x vs y | 2.50× | loop 9 ms, batched 3.6 ms, backward ratio "
        "3.00× (times: CPU time) "
        "| 2026-12-02 07:00 UTC | CPU, 2 cores |"
    )
    assert "No measurement recorded yet" in render_readme.render_results({})
    text = "a\n<!-- results:start -->\nold\n<!-- results:end -->\nb\n"
    assert (
        render_readme.replace_region(text, "results", "new")
        == "a\n<!-- results:start -->\nnew\n<!-- results:end -->\nb\n"
    )
    with pytest.raises(ValueError, match="no region"):
        render_readme.replace_region("nothing", "results", "new")


def test_every_chapter_carries_the_same_install_cell():
    """One Colab install cell, copied into every chapter (each must run alone on
    Colab). Fix: `python tools/sync_install_cell.py`."""
    cell = lambda p: json.loads(p.read_text())["cells"][1]["source"]
    master = cell(ROOT / "nbs" / "00_index.ipynb")
    differ = [p.name for p in _notebooks() if cell(p) != master]
    assert not differ, f"install cell differs from 00_index's in {differ}"
