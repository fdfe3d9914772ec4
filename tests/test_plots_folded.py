"""Plotting code is folded (issue 20): a code cell that draws and that does not define
exported code carries the tag `hide-input` (or `remove-input`/`remove-cell`), so the
page shows the picture and folds the code that draws it.

The rule is `tools/folded_plots.py`, the one `tools/screenshot_book.py` counts on the
built pages with: it reads each cell as the book's filter (`_ext/ssdbook_book.py`) shows
it, so a `#| code-fold: true` counts as folded exactly when the filter folds it."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from folded_plots import filter_notebook, unfolded_plot_cells  # noqa: E402


# Flagged by the one rule when it replaced the test's own (which took `#| code-fold:
# true` for folded); the fix (tag the cell hide-input) is asked of their owners in
# /work/requests/h5.md. The lead removes an entry once its notebook is fixed.
PENDING = {}  # notebook -> cell still to fold (xfail until its owner fixes it)
NOTEBOOKS = [
    pytest.param(
        p.name,
        marks=pytest.mark.xfail(
            reason=f"{PENDING[p.name]} carries `#| code-fold: true`, which the book "
            "ignores: tag it hide-input (requests/h5.md)",
            strict=False,
        ),
    )
    if p.name in PENDING
    else p.name
    for p in sorted((ROOT / "nbs").glob("*.ipynb"))
]


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_plotting_cells_are_folded(nb):
    found = unfolded_plot_cells(ROOT / "nbs" / nb)
    assert not found, (
        f"{nb}: plotting cells shown in full (tag them hide-input): "
        + "; ".join(f"cell {i} (id {cid}): {line}" for i, cid, line in found)
    )


def test_the_rule_sees_what_the_page_shows():
    """Tags fold, `#| code-fold: true` folds when the book's filter folds it, `#| hide`
    cells and exported definitions are not counted, an image output counts as
    drawing."""
    import json
    import tempfile

    def cell(src, tags=(), outputs=()):
        meta = {"tags": list(tags)} if tags else {}
        return dict(
            cell_type="code", id=f"c{len(cells)}", source=src, metadata=meta,
            outputs=list(outputs), execution_count=1,
        )  # fmt: skip

    png = {"output_type": "display_data", "data": {"image/png": "", "text/plain": ""}}
    cells = []
    cells.append(cell("fig, ax = plt.subplots()"))  # 0: drawn, shown
    cells.append(cell("#| code-fold: true\nplt.plot([1, 2])"))  # 1: as the filter says
    cells.append(cell("plt.plot([1, 2])", tags=["hide-input"]))  # folded
    cells.append(cell("#| hide\nplt.plot([1, 2])"))  # not on the page
    cells.append(cell("#| export\ndef show(ax):\n    ax.imshow(x)"))  # library
    cells.append(cell("picture(x)", outputs=[png]))  # 5: an image output
    cells.append(cell('print("ax.imshow(")'))  # only in a string
    cells.append(cell("plt.rcParams['figure.dpi'] = 100"))  # set-up, no drawing
    nb = dict(cells=cells, metadata={}, nbformat=4, nbformat_minor=5)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.ipynb"
        path.write_text(json.dumps(nb))
        shown = filter_notebook(dict(nb, cells=[cells[1]]))["cells"][0]
        code_fold_folds = "hide-input" in shown["metadata"].get("tags", [])
        expected = [0, 5] if code_fold_folds else [0, 1, 5]
        assert [i for i, _, _ in unfolded_plot_cells(path)] == expected
