"""List what would scroll sideways in the book, without building it: lines over 88
characters in a notebook's code cells, in its text outputs, and in the code blocks of
its markdown (the book's column shows about 90 characters of code at a 1280-px window).

    python tools/wide_lines.py nbs/10_detect.ipynb nbs/10a_evaluate.ipynb
    python tools/wide_lines.py            # every notebook of the book, a count each

Exit status 1 when any line is too wide. `tools/screenshot_book.py` measures the
rendered pages themselves; this is the quick check while editing.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 88
FENCE = re.compile(r"^\s*(`{3,}|~{3,})(.*)$")


def _text_outputs(cell):
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            yield "".join(out["text"])
        elif "data" in out:
            data = out["data"]
            if "text/html" in data or "image/png" in data:
                continue  # a table or a figure: laid out by the browser
            if "text/plain" in data:
                yield "".join(data["text/plain"])


def _md_code_lines(src: str):
    "Lines inside markdown code blocks (a directive such as `{admonition}` is prose)."
    stack = []  # (fence, holds code) of the open blocks
    for line in src.split("\n"):
        m = FENCE.match(line)
        if m and stack and m.group(1) == stack[-1][0] and not m.group(2).strip():
            stack.pop()
            continue
        if m:
            info = m.group(2).strip()
            code = not info.startswith("{") or info.startswith(("{code", "{literal"))
            stack.append((m.group(1), code))
            continue
        if stack and stack[-1][1]:
            yield line


def wide_lines(path: Path) -> list[tuple[str, str, str]]:
    "(cell id, where, line) for every line over WIDTH in `path`."
    nb = json.loads(path.read_text(encoding="utf-8"))
    found = []
    for cell in nb["cells"]:
        cid = cell.get("id", "?")
        src = "".join(cell["source"])
        if cell["cell_type"] == "code":
            found += [(cid, "code", l) for l in src.split("\n") if len(l) > WIDTH]
            for text in _text_outputs(cell):
                found += [
                    (cid, "output", l) for l in text.split("\n") if len(l) > WIDTH
                ]
        elif cell["cell_type"] == "markdown":
            found += [
                (cid, "markdown code", l) for l in _md_code_lines(src) if len(l) > WIDTH
            ]
    return found


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted((ROOT / "nbs").glob("*.ipynb"))
    total = 0
    for p in paths:
        found = wide_lines(p)
        total += len(found)
        if argv:
            for cid, where, line in found:
                print(f"{p.name} {cid} {where} ({len(line)}): {line[:120]}")
        elif found:
            print(f"{len(found):4d}  {p.name}")
    print(f"{total} lines over {WIDTH} characters")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
