"""Edit chapter notebooks as plain text, then run them.

The notebooks in nbs/ are the source of the book and of the package. This helper only makes them
easier to write: a notebook is written as "percent" text (the jupytext convention) and turned into
a .ipynb; the text file is a scratch copy and is not committed.

    python tools/nbtext.py to-text nbs/04_jaccard_match.ipynb /tmp/04.py   # notebook -> text
    python tools/nbtext.py to-nb /tmp/04.py nbs/04_jaccard_match.ipynb     # text -> notebook (no outputs)
    python tools/nbtext.py run nbs/04_jaccard_match.ipynb                 # execute in place, keep outputs

Text format: a line `# %%` starts a code cell, `# %% [markdown]` a markdown cell whose lines start
with `# ` (or are a bare `#`).
"""
import re
import sys
from pathlib import Path

import nbformat

KERNEL = {"display_name": "Python 3", "language": "python", "name": "python3"}
_HDR = re.compile(r"^# %%(?:\s*\[(markdown|md)\])?\s*$")


def text_to_cells(text):
    cells, kind, lines = [], None, []

    def flush():
        if kind is None:
            return
        body = list(lines)
        while body and not body[-1].strip():
            body.pop()
        while body and not body[0].strip():
            body.pop(0)
        if kind == "markdown":
            body = [l[2:] if l.startswith("# ") else l[1:] if l.startswith("#") else l for l in body]
            cells.append(nbformat.v4.new_markdown_cell("\n".join(body)))
        elif body:
            cells.append(nbformat.v4.new_code_cell("\n".join(body)))

    for line in text.splitlines():
        m = _HDR.match(line)
        if m:
            flush()
            kind, lines = ("markdown" if m.group(1) else "code"), []
        elif kind is not None:
            lines.append(line)
    flush()
    return cells


def to_nb(src, dst):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = KERNEL
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = text_to_cells(Path(src).read_text())
    for i, c in enumerate(nb.cells):  # stable, readable ids keep diffs small
        c["id"] = f"c{i:03d}"
    nbformat.write(nb, dst)


def to_text(src, dst):
    nb = nbformat.read(src, as_version=4)
    out = []
    for c in nb.cells:
        if c.cell_type == "markdown":
            out.append("# %% [markdown]")
            out += [("# " + l) if l else "#" for l in c.source.splitlines()]
        else:
            out.append("# %%")
            out += c.source.splitlines()
        out.append("")
    Path(dst).write_text("\n".join(out))


def run(path, timeout=1800):
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(Path(path).parent)}}).execute()
    nbformat.write(nb, path)


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"to-nb": to_nb, "to-text": to_text, "run": run}[cmd](*args)
