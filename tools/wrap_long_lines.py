"""Wrap the comments and docstrings that run past the book's column (88 characters).

    python tools/wrap_long_lines.py nbs tests tools benchmarks   # rewrite in place

`ruff format` keeps code inside 88 columns but never touches comments, docstrings or
long strings. This tool handles the first two, which are prose:

- a full-line comment is refilled into as many `# ` lines as it needs;
- a comment after code that pushes the line past 88 moves onto its own line(s) above;
- a docstring paragraph holding a long line is refilled (a list item keeps its hanging
  indent); a one-line docstring that is too long becomes a triple-quoted block.

Long strings in code (error messages, f-strings) are left to a person: where to cut an
error message is a choice. Notebooks are read and written as JSON with the same layout
Jupyter uses (indent 1), so only the `source` of code cells changes; then
`ruff format` and `make export` (the package is generated from the notebooks).
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import re
import sys
import textwrap
import tokenize
from pathlib import Path

WIDTH = 88
LIST_ITEM = re.compile(r"^(\s*)([-*+] |\d+[.)] )")


def fill(text: str, indent: str, hanging: str, width: int = WIDTH) -> list[str]:
    "Refill one paragraph: first line after `indent`, the rest after `hanging`."
    return textwrap.wrap(
        text,
        width=width,
        initial_indent=indent,
        subsequent_indent=hanging,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [indent.rstrip()]


def _paragraphs(lines: list[str]):
    "Split docstring body lines into (start, end) runs that can be refilled together."
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        indent = len(line) - len(line.lstrip())
        j = i + 1
        while j < len(lines):
            nxt = lines[j]
            if not nxt.strip() or LIST_ITEM.match(nxt):
                break
            if len(nxt) - len(nxt.lstrip()) < indent:
                break
            j += 1
        yield i, j
        i = j


def _refill_block(lines: list[str], first_prefix_len: int) -> list[str]:
    """Refill the paragraphs of `lines` that hold a line over WIDTH. `lines[0]` is
    printed after `first_prefix_len` characters (the opening quotes)."""
    out = list(lines)
    body = [l for l in lines[1:] if l.strip()]
    base = min((len(l) - len(l.lstrip()) for l in body), default=0)
    for start, end in reversed(list(_paragraphs(lines))):
        para = lines[start:end]
        if start > 0 and len(para[0]) - len(para[0].lstrip()) > base:
            continue  # an indented block (a command, code): never refilled
        widths = [
            len(l) + (first_prefix_len if start + k == 0 else 0)
            for k, l in enumerate(para)
        ]
        if max(widths) <= WIDTH:
            continue
        if any(l.lstrip().startswith((">>>", "|", "```")) for l in para):
            continue  # code, a table: never refilled
        first = para[0]
        indent = first[: len(first) - len(first.lstrip())]
        m = LIST_ITEM.match(first)
        hanging = indent + " " * len(m.group(2)) if m else indent
        if len(para) > 1:
            rest = para[1]
            hanging = max(hanging, rest[: len(rest) - len(rest.lstrip())], key=len)
        text = " ".join(l.strip() for l in para)
        width = WIDTH - (first_prefix_len if start == 0 else 0)
        new = fill(text, indent, hanging, width)
        if start == 0 and len(new) > 1:  # later lines are not shifted by the quotes
            tail = fill(" ".join(l.strip() for l in new[1:]), hanging, hanging)
            new = new[:1] + tail
        out[start:end] = new
    return out


def wrap_docstring(src_lines: list[str], node: ast.Constant) -> None:
    "Rewrite, in `src_lines`, the docstring `node` so no line passes WIDTH."
    a, b = node.lineno - 1, node.end_lineno - 1
    if all(len(src_lines[k]) <= WIDTH for k in range(a, b + 1)):
        return
    head = src_lines[a]
    m = re.match(r'^(\s*)([rRuU]?)("""|\'\'\'|"|\')', head)
    tail = src_lines[b]
    if not m or not tail.rstrip().endswith(m.group(3)):
        return
    indent, prefix, q = m.groups()
    if len(q) == 1:  # "one line": becomes a triple-quoted block
        if a != b:
            return
        body = tail.strip()[len(prefix) + 1 : -1]
        if '"""' in body or body.endswith('"') or "\\\n" in body:
            return
        q = '"""'
        text_lines = [body]
    else:
        joined = "\n".join(src_lines[a : b + 1]).strip()
        body = joined[len(prefix) + 3 : -3]
        text_lines = body.split("\n")
    new_body = _refill_block(text_lines, first_prefix_len=len(indent) + len(prefix) + 3)
    # continuation lines without indentation (a one-line docstring's) get the def's
    new_body = [new_body[0]] + [
        (l if l.startswith(indent) or not l.strip() else indent + l.lstrip())
        for l in new_body[1:]
    ]
    lines = [indent + prefix + q + new_body[0]] + new_body[1:]
    if len(lines[-1]) + 3 > WIDTH:
        lines.append(indent + q)
    else:
        lines[-1] += q
    src_lines[a : b + 1] = lines


def docstring_nodes(tree: ast.AST):
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        for stmt in body:  # the docstring and any bare string used as prose
            if (
                isinstance(stmt, ast.Expr)
                and isinstance(stmt.value, ast.Constant)
                and isinstance(stmt.value.value, str)
            ):
                yield stmt.value


def wrap_comments(src: str) -> str:
    "Refill long full-line comments; move long trailing comments above their line."
    lines = src.split("\n")
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(src).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return src
    edits = []
    for t in toks:
        if t.type != tokenize.COMMENT:
            continue
        row, col = t.start
        line = lines[row - 1]
        if len(line) <= WIDTH or t.string.startswith(("#|", "#!", "# noqa", "# type:")):
            continue
        if "noqa" in t.string or "pragma" in t.string:
            continue
        text = t.string.lstrip("#").strip()
        code = line[:col].rstrip()
        indent = line[: len(line) - len(line.lstrip())]
        new = fill(text, indent + "# ", indent + "# ")
        edits.append((row - 1, new + ([code] if code else [])))
    for k, new in sorted(edits, reverse=True):
        lines[k : k + 1] = new
    return "\n".join(lines)


MAGIC = re.compile(r"^\s*[%!]")


def wrap_source(src: str) -> str:
    "Wrap one Python source (a file or a notebook cell)."
    lines = src.split("\n")
    # IPython magics and shell lines are not Python: ast sees `#` in their place.
    # Docstrings are only rewritten where the magics sit at the top of the cell
    # (`%%time`), so their line numbers never move.
    hidden = [k for k, l in enumerate(lines) if MAGIC.match(l)]
    if hidden == list(range(len(hidden))):
        saved = lines[: len(hidden)]
        lines[: len(hidden)] = ["#"] * len(hidden)
        try:
            tree = ast.parse("\n".join(lines))
        except SyntaxError:
            tree = None
        if tree is not None:
            for node in sorted(docstring_nodes(tree), key=lambda n: -n.lineno):
                wrap_docstring(lines, node)
        lines[: len(hidden)] = saved
    return split_strings(wrap_comments("\n".join(lines)))


STRING_LINE = re.compile(r'^(\s*)([rRfFbBuU]{0,2})("|\')(.*)\3(\s*[,)\]}]*\s*)$')


def _cut(body: str, fstring: bool, room: int) -> int | None:
    "Where to cut a string literal's `body`: after the last space that fits in `room`."
    depth, best, k = 0, None, 0
    while k < min(len(body), room):
        ch = body[k]
        if ch == "\\":
            k += 2
            continue
        if fstring and ch in "{}":
            if body[k : k + 2] in ("{{", "}}"):
                k += 2
                continue
            depth += 1 if ch == "{" else -1
        elif ch == " " and depth == 0 and k > 10:
            best = k + 1
        k += 1
    return best


def split_strings(src: str) -> str:
    """Split a string literal standing alone on a line inside brackets (an argument, an
    error message) into adjacent literals, each line within WIDTH."""
    lines = src.split("\n")
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(src).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return src
    inside = set()  # rows that are continuation lines of a bracketed expression
    depth = 0
    for t in toks:
        if t.type == tokenize.OP and t.string in "([{":
            depth += 1
        elif t.type == tokenize.OP and t.string in ")]}":
            depth -= 1
        elif t.type in (tokenize.STRING, getattr(tokenize, "FSTRING_START", -1)):
            if depth > 0:
                inside.add(t.start[0] - 1)
    out = []
    for k, line in enumerate(lines):
        m = STRING_LINE.match(line)
        if len(line) <= WIDTH or k not in inside or not m:
            out.append(line)
            continue
        indent, prefix, q, body, tail = m.groups()
        if q in body.replace("\\" + q, ""):
            out.append(line)  # two literals on the line already
            continue
        pieces = []
        while len(indent) + len(prefix) + len(body) + 2 > WIDTH:
            room = WIDTH - len(indent) - len(prefix) - 2
            cut = _cut(body, "f" in prefix.lower(), room)
            if cut is None:
                break
            pieces.append(body[:cut])
            body = body[cut:]
        pieces.append(body)
        for j, piece in enumerate(pieces):
            p = prefix
            if "f" in p.lower() and "{" not in piece.replace("{{", ""):
                p = p.replace("f", "").replace("F", "")
                piece = piece.replace("{{", "{").replace("}}", "}")
            end = tail if j == len(pieces) - 1 else ""
            out.append(f"{indent}{p}{q}{piece}{q}{end}")
    return "\n".join(out)


def wrap_notebook(path: Path) -> bool:
    text = path.read_text(encoding="utf-8")
    nb = json.loads(text)
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"])
        new = wrap_source(src)
        if new != src:
            cell["source"] = new.splitlines(keepends=True)
    out = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    if out != text:
        path.write_text(out, encoding="utf-8")
        return True
    return False


def wrap_file(path: Path) -> bool:
    text = path.read_text(encoding="utf-8")
    new = wrap_source(text)
    if new != text:
        path.write_text(new, encoding="utf-8")
        return True
    return False


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="+", type=Path)
    args = p.parse_args(argv)
    files = []
    for root in args.paths:
        found = sorted(root.rglob("*.py")) + sorted(root.rglob("*.ipynb"))
        files += (
            [root]
            if root.is_file()
            else [f for f in found if ".ipynb_checkpoints" not in f.parts]
        )
    changed = [
        f for f in files if (wrap_notebook(f) if f.suffix == ".ipynb" else wrap_file(f))
    ]
    print(f"{len(changed)} of {len(files)} files rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
