"""Plotting code is folded (issue 20): a code cell that draws (the rule of
tools/screenshot_book.py: `plt.`, `fig.`, `ax.`/`axes.`, `show_batch(`, `draw_boxes(`,
`.imshow(` outside strings, or an image in its output) and that does not define exported
code carries the tag `hide-input` (or `remove-input`/`remove-cell`, or `#| code-fold:
true`), so the page shows the picture and folds the code that draws it."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLOT = re.compile(
    r"\bplt\.(?!rcParams)\w|\b(fig|axes|ax|a0|a1)\.\w|\bshow_batch\(|\bdraw_boxes\(|\.imshow\("
)
FOLDED = {"hide-input", "remove-input", "remove-cell"}
# 00a is the reference's page, kept as its owner left it (its one figure: cell 19).
KNOWN = {}


def unfolded(path):
    out = []
    for i, c in enumerate(json.loads(path.read_text())["cells"]):
        if c["cell_type"] != "code":
            continue
        src = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        if (
            FOLDED & set(c.get("metadata", {}).get("tags", []))
            or "#| code-fold: true" in src
        ):
            continue
        if re.search(r"^#\|\s*export", src, re.M):  # a definition the library exports
            continue
        code = re.sub(r"\"[^\"\n]*\"|'[^'\n]*'", '""', src)
        image = any("image/png" in o.get("data", {}) for o in c.get("outputs", []))
        if PLOT.search(code) or image:
            out.append((i, src.strip().split("\n")[0][:80]))
    return out


@pytest.mark.parametrize("nb", sorted(p.name for p in (ROOT / "nbs").glob("*.ipynb")))
def test_plotting_cells_are_folded(nb):
    found = unfolded(ROOT / "nbs" / nb)
    assert len(found) <= KNOWN.get(nb, 0), (
        f"{nb}: plotting cells shown in full: "
        + "; ".join(f"cell {i}: {line}" for i, line in found)
    )
