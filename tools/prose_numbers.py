"""No typed measurement in prose: list the numbers in the book's markdown that look
measured and are not glued.

    # every page: one line per offender, a count per page
    python tools/prose_numbers.py
    python tools/prose_numbers.py nbs/07_loss.ipynb --summary

A measured number (mAP, AP, a time, a speed ratio, a share, a count that a run produced)
belongs in the prose only through MyST-NB's glue: `glue("name", value, display=False)`
in a code cell, then {glue:text}`name:.3f` in the markdown; it then changes when the run
changes. This scanner reads every markdown cell of every notebook in `_toc.yml` (and the
markdown appendices) and flags, outside code (fenced or inline), maths ($...$) and glue
roles:

* decimals (`0.963`, `1.7`), except section/equation/table/version numbers (`section
  2.2`, `eq. 4`) and the terms of a written-out derivation (`9.5/9.375 = 1.013`);
* times (`445 s`, `4.8 ms`, `11 min`), percentages (`67 %`), ratios (`2.7×`, `3x
  faster`);
* counts next to words a run counts: objects, detections, positives, negatives, boxes,
  duplicates.

Not flagged: the constants in ALLOWED (300, 8732, 0.5, 38×38, 21, ...: the model's and
the paper's settings), and a number in a sentence that quotes the paper or another
source (it says "paper", "Table", "Liu et al.", "Lin et al.", "reported"): the paper's
values quoted as the paper's. Exit status 1 when anything is flagged.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Constants of the model, the data and the paper's settings: never measurements.
ALLOWED = {
    # image size, priors, classes, batch, maps
    "300",
    "512",
    "8732",
    "24564",
    "24,564",
    "21",
    "81",
    "20",
    "80",
    "7",
    "6",
    "15",
    "38",
    "19",
    "10",
    "5",
    "3",
    "1",
    "2",
    "4",
    "0",
    "100",
    "1000",
    # thresholds and settings (IoU, NMS, confidence, variances, scales, ratios)
    "0.5",
    "0.45",
    "0.01",
    "0.1",
    "0.2",
    "0.3",
    "0.7",
    "0.9",
    "0.99",
    "0.6",
    "1.7",
    "0.37",
    "0.54",
    "0.71",
    "0.88",
    "1.0",
    "0.0",
    "2.0",
    "0.05",
    "0.25",
    "0.75",
    "0.95",
    "1.5",
    "3.0",
}
# A sentence with one of these quotes a source: its numbers are the source's, not ours.
QUOTING = re.compile(
    r"\b(paper|Table \d|table \d|Liu et al|Lin et al|reported|the reference's numbers)",
    re.I,
)

DECIMAL = re.compile(r"(?<![\w.\-/])(\d+\.\d+)(?![\w.]*\d)")
# A bare `h` needs a space before it: "10h" glued to its number is a chapter's name
# (10h: the
# explorer), a constant; a time in hours is written "2 h" or "2 hours" and is still
# flagged.
TIME = re.compile(
    r"(?<![\w.])(\d+(?:[.,]\d+)?)(?:\s?(ms|s|sec|seconds?|min|minutes?|hours?)|\s(h))\b"
)
PERCENT = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s?%")
RATIO = re.compile(
    r"(?<![\w.])(\d+\.\d+\s?(?:×|x)|\d+\s?(?:×|x)\s+(?:faster|slower))(?=\s|$|[),.;:])(?!\s*\d)"
)
COUNT = re.compile(
    r"(?<![\w.])(\d[\d,]*)\s+(?:(?!px\b|pixels?\b)[a-z]+\s+)?(objects|detections|positives|negatives"
    r"|boxes|duplicates|true positives|false positives)\b"
)
# `9.5/9.375 = 1.013`: a derivation, not a run
ARITHMETIC = re.compile(r"[=×·*/+−]\s*$|^\s*[=×·*/+−]")
NUMBERED = re.compile(
    r"(?:§|\b(?:section|sections|sec\.|eq\.|equation|equations|table|tables|figure|fig\.|chapter|"
    r"chapters|version|v|python|torch|torchvision|nbdev|jupyter-book|step|steps))\s*$",
    re.I,
)

# What is stripped before scanning: it is code, maths, a glue role, a link target or a
# directive line.
STRIP = [
    re.compile(
        r"^(`{3,}|~{3,})[^\n]*\n(?:.*?\n)?\1\s*$", re.S | re.M
    ),  # fenced blocks (code)
    re.compile(r"\$\$.*?\$\$", re.S),  # display maths
    re.compile(r"(?<!\\)\$[^$\n]+\$"),  # inline maths
    re.compile(r"\{glue(?::\w+)?\}`[^`]*`"),  # glue roles
    re.compile(r"\{\w+\}`[^`]*`"),  # other roles ({doc}, {ref})
    re.compile(r"`[^`\n]+`"),  # inline code
    re.compile(r"\]\([^)]*\)"),  # link targets
    re.compile(r"<!--.*?-->", re.S),  # comments
    re.compile(r"^:\w+:.*$", re.M),  # directive options
]


def markdown_cells(path: Path) -> list[tuple[int, str]]:
    if path.suffix == ".md":
        return [(0, path.read_text())]
    nb = json.loads(path.read_text())
    out = []
    for i, c in enumerate(nb["cells"]):
        if c["cell_type"] == "markdown":
            src = c["source"]
            out.append((i, "".join(src) if isinstance(src, list) else src))
    return out


def _blank(m: re.Match) -> str:
    return re.sub(r"[^\n]", " ", m.group(0))  # keep offsets and line numbers


def prose(text: str) -> str:
    for pat in STRIP:
        text = pat.sub(_blank, text)
    return text


def _sentence(text: str, pos: int) -> str:
    start = (
        max(
            text.rfind(". ", 0, pos),
            text.rfind("\n\n", 0, pos),
            text.rfind("\n*", 0, pos),
        )
        + 1
    )
    ends = [e for e in (text.find(". ", pos), text.find("\n\n", pos)) if e != -1]
    return text[start : min(ends) if ends else len(text)]


def offenders(text: str) -> list[tuple[str, str]]:
    """(number as written, the line it is on) for each suspicious number of one markdown
    text."""
    clean = prose(text)
    found = {}
    for kind, pat in (
        ("count", COUNT),
        ("time", TIME),
        ("percent", PERCENT),
        ("ratio", RATIO),
        ("decimal", DECIMAL),
    ):
        for m in pat.finditer(clean):
            number = m.group(1)
            if any(
                a <= m.start() < b for a, b in found
            ):  # already reported as part of another match
                continue
            if kind in ("decimal", "count") and number.replace(",", "") in {
                a.replace(",", "") for a in ALLOWED
            }:
                continue
            if kind == "decimal" and NUMBERED.search(
                clean[max(0, m.start() - 20) : m.start()]
            ):
                continue
            if kind == "decimal" and (
                ARITHMETIC.search(clean[max(0, m.start() - 3) : m.start()])
                or ARITHMETIC.search(clean[m.end() : m.end() + 3])
            ):
                continue
            if QUOTING.search(_sentence(clean, m.start())):
                continue
            line = text[text.rfind("\n", 0, m.start()) + 1 :]
            found[(m.start(), m.end())] = (
                m.group(0).strip(),
                line.split("\n", 1)[0].strip(),
            )
    return [found[k] for k in sorted(found)]


def pages() -> list[Path]:
    files = re.findall(
        r"^\s*(?:root|-\s*file):\s*(\S+)", (ROOT / "_toc.yml").read_text(), re.M
    )
    out = []
    for f in files:
        for ext in (".ipynb", ".md"):
            if (ROOT / (f + ext)).exists():
                out.append(ROOT / (f + ext))
    return out


def scan(paths) -> dict[Path, list[tuple[int, str, str]]]:
    return {
        p: [
            (i, num, line)
            for i, text in markdown_cells(p)
            for num, line in offenders(text)
        ]
        for p in paths
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "pages", nargs="*", type=Path, help="default: every page of _toc.yml"
    )
    ap.add_argument("--summary", action="store_true", help="only the count per page")
    args = ap.parse_args(argv)
    result = scan([p.resolve() for p in args.pages] or pages())
    total = 0
    for p, found in result.items():
        total += len(found)
        if not found:
            continue
        print(f"{p.relative_to(ROOT)}: {len(found)}")
        if not args.summary:
            for cell, num, line in found:
                print(f"    cell {cell}: {num!r} in: {line[:110]}")
    print(
        f"{total} typed numbers that look measured, on "
        f"{sum(1 for f in result.values() if f)} pages"
    )
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
