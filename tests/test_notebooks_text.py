"""Notebooks as text without loss: every chapter goes to jupytext's percent format and
back unchanged.

The edit loop of DEVELOPING.md is `jupytext --to py:percent nbs/X.ipynb -o /tmp/X.py`,
edit, then `jupytext --update --to ipynb /tmp/X.py -o nbs/X.ipynb`. The text alone must
carry every cell boundary, cell type, source and cell tag (the hide-input folds,
remove-cell glue cells); `--update` restores the outputs, execution counts and the rest
of the metadata from the notebook. Both are checked here.
"""

import json
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupytext.combine import combine_inputs_with_outputs

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(ROOT.glob("nbs/*.ipynb"))
FMT = "py:percent"
# metadata jupytext leaves out of the text on purpose (the notebook keeps it, `--update`
# restores it)
TEXT_FILTERED = {
    "execution",
    "ExecuteTime",
    "collapsed",
    "scrolled",
    "autoscroll",
    "deletable",
    "editable",
    "jupyter",
    "trusted",
}


def _text_round_trip(nb):
    return jupytext.reads(jupytext.writes(nb, fmt=FMT), fmt=FMT)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_text_keeps_cells_sources_and_tags(path):
    nb = nbformat.read(path, as_version=4)
    back = _text_round_trip(nb)
    assert len(back.cells) == len(nb.cells), (
        f"{path.name}: {len(nb.cells)} cells became {len(back.cells)}"
    )
    for i, (a, b) in enumerate(zip(nb.cells, back.cells)):
        where = f"{path.name}, cell {i}"
        assert a.cell_type == b.cell_type, (
            f"{where}: {a.cell_type} became {b.cell_type}"
        )
        assert a.source == b.source, f"{where}: the source changed"
        kept = {k: v for k, v in a.metadata.items() if k not in TEXT_FILTERED}
        assert b.metadata == kept, f"{where}: metadata {kept} became {dict(b.metadata)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_update_from_text_gives_the_notebook_back(path):
    """`jupytext --update`: the text's cells plus the notebook's outputs = the notebook,
    byte for byte."""
    nb = nbformat.read(path, as_version=4)
    back = combine_inputs_with_outputs(_text_round_trip(nb), nb, fmt=FMT)
    # the CLI does not write it into an unpaired .ipynb
    back.metadata.pop("jupytext", None)
    assert json.loads(nbformat.writes(back)) == json.loads(nbformat.writes(nb)), (
        f"{path.name} changed"
    )


def test_update_cli_keeps_outputs_and_tags(tmp_path):
    """The command line itself, on a small notebook with outputs, tags and a glue
    cell."""
    import subprocess
    import sys

    nb = nbformat.v4.new_notebook(
        metadata={
            "kernelspec": {
                "name": "python3",
                "display_name": "Python 3",
                "language": "python",
            }
        }
    )
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title\n\nSome *text*."),
        nbformat.v4.new_code_cell(
            "print(1)",
            execution_count=1,
            metadata={"tags": ["hide-input"]},
            outputs=[nbformat.v4.new_output("stream", name="stdout", text="1\n")],
        ),
        nbformat.v4.new_code_cell(
            "# NBVAL_CHECK_OUTPUT\nx = 2",
            execution_count=2,
            metadata={"tags": ["remove-cell"]},
        ),
    ]
    for i, c in enumerate(nb.cells):
        c["id"] = f"c{i}"
    ipynb, text = tmp_path / "x.ipynb", tmp_path / "x.py"
    nbformat.write(nb, ipynb)
    exe = Path(sys.executable).with_name("jupytext")
    subprocess.run(
        [str(exe), "--to", FMT, str(ipynb), "-o", str(text)],
        check=True,
        capture_output=True,
    )
    text.write_text(text.read_text().replace("Some *text*.", "Some *edited* text."))
    subprocess.run(
        [str(exe), "--update", "--to", "ipynb", str(text), "-o", str(ipynb)],
        check=True,
        capture_output=True,
    )
    new = nbformat.read(ipynb, as_version=4)
    assert new.cells[0].source == "# Title\n\nSome *edited* text."
    assert [c.metadata.get("tags") for c in new.cells] == [
        None,
        ["hide-input"],
        ["remove-cell"],
    ]
    assert (
        new.cells[1].outputs == nb.cells[1].outputs
        and new.cells[1].execution_count == 1
    )
