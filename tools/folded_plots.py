"""Which plotting cells a page shows unfolded: the one rule of
`tests/test_plots_folded.py` and `tools/screenshot_book.py`.

A code cell *draws* when its code (strings blanked) calls `plt.` (not `plt.rcParams`),
`fig.`, `ax.`/`axes.`/`a0.`/`a1.`, `show_batch(`, `draw_boxes(`, `.imshow(`, or when an
output of it is an image. The rule reads the cell as the book shows it, through the
book's own filter (`_ext/ssdbook_book.py`: the Colab cell and `#| hide` cells are
dropped, directive lines removed), so it agrees with the page:

* folded: the cell carries the tag `hide-input` (a closed "Show code" toggle),
  `remove-input` or `remove-cell`, as the filtered notebook has it (a `#| code-fold:
  true` cell counts as folded when the filter turns it into `hide-input`);
* not counted: a cell that defines code the library exports (`#| export`): that code is
  the chapter's subject, shown in full.

A cell that draws, is shown and is neither is "unfolded". Only `nbs/*.ipynb` pages have
cells; a markdown page has none.

    python tools/folded_plots.py                     # every notebook
    python tools/folded_plots.py nbs/01a_voc.ipynb   # only these
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "_ext") not in sys.path:
    sys.path.insert(0, str(ROOT / "_ext"))
from ssdbook_book import clean_code, filter_notebook  # noqa: E402

PLOT = re.compile(
    r"\bplt\.(?!rcParams)\w|\b(fig|axes|ax|a0|a1)\.\w"
    r"|\bshow_batch\(|\bdraw_boxes\(|\.imshow\("
)
FOLDED = {"hide-input", "remove-input", "remove-cell"}
STRINGS = re.compile(r"\"[^\"\n]*\"|'[^'\n]*'")


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def draws(code: str, outputs=()) -> bool:
    "Whether a cell with this code (directives removed) and these outputs draws."
    image = any(
        k.startswith("image/") for o in outputs for k in o.get("data", {}) or {}
    )
    return bool(PLOT.search(STRINGS.sub('""', code))) or image


def unfolded_plot_cells(path: Path) -> list[tuple[int, str, str]]:
    """(index in the notebook, cell id, first shown line) of every plotting cell that
    the page of `path` shows unfolded."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    index = {id(c): i for i, c in enumerate(nb["cells"])}
    for c in nb["cells"]:  # the filter copies the cells: keep each one's place
        c.setdefault("metadata", {})["_folded_plots_index"] = index[id(c)]
    found = []
    for cell in filter_notebook(nb)["cells"]:
        if cell.get("cell_type") != "code":
            continue
        meta = cell.get("metadata", {})
        i = meta["_folded_plots_index"]
        _, names = clean_code(_source(nb["cells"][i]))
        if any(n.startswith("export") for n in names):
            continue  # library code: the chapter's subject
        if FOLDED & set(meta.get("tags", [])):
            continue
        code = _source(cell)
        if draws(code, cell.get("outputs", [])):
            line = code.strip().split("\n")[0][:80]
            found.append((i, cell.get("id", "?"), line))
    return found


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted((ROOT / "nbs").glob("*.ipynb"))
    total = 0
    for p in paths:
        for i, cid, line in unfolded_plot_cells(p):
            print(f"{p.name} cell {i} (id {cid}): {line}")
            total += 1
    print(f"{total} plotting cells shown unfolded")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
