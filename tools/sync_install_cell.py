"""Give every chapter the same Colab install cell: the one of nbs/00_index.ipynb (cell
1).

    python tools/sync_install_cell.py          # rewrite the chapters whose cell differs

Each chapter carries the cell so that it runs alone on Colab; the book hides it
(_ext/ssdbook_book.py). tests/test_book.py checks that all copies are equal.
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    master = json.loads((ROOT / "nbs" / "00_index.ipynb").read_text(encoding="utf-8"))
    source = master["cells"][1]["source"]
    changed = []
    for path in sorted((ROOT / "nbs").glob("*.ipynb")):
        text = path.read_text(encoding="utf-8")
        nb = json.loads(text)
        if nb["cells"][1]["source"] != source:
            nb["cells"][1]["source"] = source
            path.write_text(
                json.dumps(nb, indent=1, ensure_ascii=False) + "\n", "utf-8"
            )
            changed.append(path.name)
    print(f"{len(changed)} chapters updated: {', '.join(changed) or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
