"""Sphinx extension: show each chapter as a reader needs it, without touching the notebooks.

The notebooks in `nbs/` are also the source of the `ssdbook` package and of the notebook tests, so they carry
lines for tools, not for readers: nbdev's `#| export` / `#| default_exp …` / `#| hide` directives, nbval's
`# NBVAL_CHECK_OUTPUT` markers, and the Colab install cell. At build time, when Sphinx has read a notebook's
JSON and before myst-nb parses it (the `source-read` event), this extension

* removes every nbdev/Quarto directive line (`#| …`) and every nbval marker line (`# NBVAL_…`) from code cells;
* drops a cell entirely when it is `#| hide`, or when nothing but directives/markers is left and it has no output
  (the `#| default_exp module` cell); a cell left with outputs only keeps its outputs;
* drops the Colab install cell (it does nothing outside Colab) and puts an "Open in Colab" badge under the
  chapter's title instead.

`filter_notebook(nb, colab_url)` is the pure function that does it; `tests/test_book.py` checks the built HTML.
"""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath

DIRECTIVE = re.compile(
    r"^\s*#\s*\|"
)  # nbdev 2 / Quarto cell directives: `#| export`, `#| default_exp x`, `#| hide`
NBVAL = re.compile(
    r"^\s*#\s*NBVAL_[A-Z_]+\b.*$"
)  # `# NBVAL_CHECK_OUTPUT`, `# NBVAL_SKIP`, `# NBVAL_IGNORE_OUTPUT`
BADGE_ALT = "Open In Colab"
BADGE_IMG = "../_static/colab-badge.svg"  # relative to nbs/, shipped with the book (no image from the web)


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def is_colab_install_cell(cell) -> bool:
    """The chapter's second cell: installs ssdbook when it runs on Colab, nothing elsewhere."""
    src = _source(cell)
    return (
        cell.get("cell_type") == "code" and "google.colab" in src and "install" in src
    )


def clean_code(src: str) -> tuple[str, set]:
    """`src` without its directive lines and nbval marker lines, and the set of directive names it had
    (`export`, `hide`, ...). Directives count only in the cell's leading lines, as nbdev reads them; nbval
    markers are whole-line comments anywhere in the cell, as nbval reads them."""
    kept, names, header = [], set(), True
    for line in src.splitlines():
        if header and DIRECTIVE.match(line):
            words = line.split("|", 1)[1].split()
            if words:
                names.add(words[0].rstrip(":"))
            continue
        if NBVAL.match(line):
            continue
        if line.strip():
            header = False
        kept.append(line)
    while kept and not kept[0].strip():
        kept.pop(0)
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept), names


def badge_markdown(colab_url: str) -> str:
    return f"[![{BADGE_ALT}]({BADGE_IMG})]({colab_url})"


def add_badge(cell, colab_url: str) -> None:
    """Put the badge on its own line right under the first `# title` of a markdown cell (or on top)."""
    lines = _source(cell).splitlines()
    at = next((i + 1 for i, l in enumerate(lines) if l.startswith("# ")), 0)
    lines[at:at] = ["", badge_markdown(colab_url), ""]
    cell["source"] = "\n".join(lines)


def filter_notebook(nb: dict, colab_url: str | None = None) -> dict:
    """The notebook as the book shows it (a new dict; `nb` is not changed)."""
    nb = json.loads(json.dumps(nb))
    cells = []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            cells.append(cell)
            continue
        if is_colab_install_cell(cell):
            continue
        code, names = clean_code(_source(cell))
        if "hide" in names:
            continue
        if "code-fold" in names:  # nbdev's `#| code-fold: true`: the book's fold
            tags = cell.setdefault("metadata", {}).setdefault("tags", [])
            if "hide-input" not in tags:
                tags.append("hide-input")
        if not code.strip():
            if not cell.get("outputs"):
                continue
            tags = cell.setdefault("metadata", {}).setdefault("tags", [])
            if "remove-input" not in tags:
                tags.append("remove-input")
        cell["source"] = code
        cells.append(cell)
    nb["cells"] = cells
    if colab_url:
        first_md = next((c for c in cells if c.get("cell_type") == "markdown"), None)
        if first_md is not None:
            add_badge(first_md, colab_url)
    return nb


def colab_url_for(config, docname: str) -> str | None:
    """`https://colab.research.google.com/github/OWNER/REPO/blob/BRANCH/nbs/X.ipynb` from the book's repository."""
    opts = getattr(config, "html_theme_options", {}) or {}
    repo = (opts.get("repository_url") or "").rstrip("/")
    if not repo.startswith("https://github.com/"):
        return None
    branch = opts.get("repository_branch") or "main"
    path = opts.get("path_to_docs", "").strip("/")
    nb_path = (
        str(PurePosixPath(path, docname + ".ipynb")) if path else docname + ".ipynb"
    )
    return f"https://colab.research.google.com/github/{repo[len('https://github.com/') :]}/blob/{branch}/{nb_path}"


def _on_source_read(app, docname, source):
    if not str(app.env.doc2path(docname)).endswith(".ipynb"):
        return
    nb = json.loads(source[0])
    source[0] = json.dumps(filter_notebook(nb, colab_url_for(app.config, docname)))


def setup(app):
    app.connect("source-read", _on_source_read)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
