"""Kept for old commands only: `python tools/nbtext.py run nbs/X.ipynb` = `python
tools/run_book.py nbs/X.ipynb`.

Notebooks as text are jupytext's job now (lossless: cell boundaries, tags and metadata
survive):

    jupytext --to py:percent nbs/X.ipynb -o /tmp/X.py      # notebook -> text
    jupytext --update --to ipynb /tmp/X.py -o nbs/X.ipynb  # back, outputs kept

Executing a chapter in place with full budgets (and stamping it) is tools/run_book.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

JUPYTEXT = {
    "to-text": "jupytext --to py:percent NOTEBOOK -o TEXT",
    "to-nb": "jupytext --update --to ipynb TEXT -o NOTEBOOK",
}

if __name__ == "__main__":
    cmd, *args = sys.argv[1:] or ["help"]
    if cmd == "run":
        import run_book

        sys.exit(run_book.main(args))
    if cmd in JUPYTEXT:
        sys.exit(f"nbtext {cmd} is gone (it dropped cell tags): use `{JUPYTEXT[cmd]}`")
    sys.exit(__doc__)
