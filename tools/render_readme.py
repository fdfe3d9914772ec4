"""Fill README.md's generated regions from their one source, so README never drifts from
the repository.

    python tools/render_readme.py           # rewrite the regions of README.md in place
    python tools/render_readme.py --check   # exit 1 (and say which region) if stale

It also keeps the chapter list on the book's first page (`nbs/00_index.ipynb`, same
markers) true to `_toc.yml`.

Regions (HTML comments, invisible on GitHub):

* `<!-- results:start -->` … `<!-- results:end -->`: the measured numbers, from
  `benchmarks/results.json` (written by the benchmark scripts and the main job through
  `benchmarks/_results.py`; schema `{name: {"ratio": float, ...numbers..., "measured":
  str, "machine": str, "command": str}}`).
* `<!-- chapters:start -->` … `<!-- chapters:end -->`: the book's map, from `_toc.yml`
  (order) and each notebook's title (first `# ` heading) and `#| default_exp` (module).

`tests/test_book.py` asserts that README.md equals what this script renders.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "results.json"
TOC = ROOT / "_toc.yml"

# What each measurement compares, in words (an entry without one shows its "what" field,
# or its name).
DESCRIPTIONS = {
    "bench_match": "matching a batch to the 8732 priors: `match_batch` vs a loop over "
    "the reference's per-image `match`",
    "bench_match_cuda": "the same on a GPU",
    "bench_loss": "MultiBoxLoss forward (matching included) vs torchvision's SSD loss",
    "bench_loss_cuda": "the same on a GPU",
    "bench_evaluate": "VOC07 AP of a detection set vs a port of the VOC devkit's "
    "per-detection loop",
    "bench_train_step": "one SSD300-VGG16 training step vs torchvision's "
    "`ssd300_vgg16`",
    "demo": "the main job (`make main`): shapes set, train the mini SSD on the CPU, "
    "VOC07 mAP",
    "fault_injection": "training killed (SIGKILL) at random moments and resumed, "
    "against a run never killed",
    "main_job": "`make main` on this machine: shapes set, train the mini SSD, VOC07 "
    "mAP (bf16 where the CPU has it natively)",
    "main_job_avx2_fp32": "`make main` as a reader's AVX2 CPU runs it: fp32, AVX2 "
    "kernels (emulated), 2 threads, twice in a row",
}
_SKIP = {"ratio", "measured", "machine", "command", "what", "device", "summary"}
# The headline numbers shown beside the ratio: times and rates, not the configuration.
_SHOWN = re.compile(r"(_ms|_s|_seconds|img_s|images_per_s|_mb|_gb|map|mAP|ap)$")

# How a chapter is named in the maps (the notebook's own title otherwise).
TITLES = {"00_index": "The map: SSD's data flow with every shape"}


# ---------------------------------------------------------------- regions
def replace_region(text: str, name: str, body: str) -> str:
    """`text` with the lines between `<!-- name:start -->` and `<!-- name:end -->`
    replaced by `body`."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    i, j = text.find(start), text.find(end)
    if i < 0 or j < i:
        raise ValueError(f"README.md has no region {start} ... {end}")
    return text[: i + len(start)] + "\n" + body.rstrip("\n") + "\n" + text[j:]


def region(text: str, name: str) -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    i, j = text.find(start), text.find(end)
    if i < 0 or j < i:
        raise ValueError(f"README.md has no region {start} ... {end}")
    return text[i + len(start) : j].strip("\n")


# ---------------------------------------------------------------- results
def _fmt(v) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int) or float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:.4g}" if abs(v) < 1000 else f"{v:,.0f}"


def _numbers(e: dict) -> str:
    """The headline numbers of one entry: times, rates and secondary ratios. When a time
    was recorded on both clocks (`x_ms` / `x_wall_ms` and `x_cpu_ms`), only the CPU time
    is shown (less disturbed by other jobs)."""
    keys = [
        k
        for k, v in e.items()
        if k not in _SKIP
        and isinstance(v, (int, float))
        and not isinstance(v, bool)
        and (_SHOWN.search(k) or k.endswith("_ratio"))
    ]
    base = {k: tuple(w for w in k.split("_") if w not in ("cpu", "wall")) for k in keys}
    has_cpu = {base[k] for k in keys if "cpu" in k.split("_")}
    out, cpu_used = [], False
    for k in keys:
        words = list(base[k])
        if base[k] in has_cpu and "cpu" not in k.split("_"):
            continue  # the same number on the wall clock: CPU time shown instead
        if words and words[-1] == "ratio":
            out.append(f"{' '.join(words)} {e[k]:.2f}×")
            continue
        cpu_used |= "cpu" in k.split("_")
        unit = {"ms": " ms", "s": " s", "seconds": " s", "mb": " MB", "gb": " GB"}.get(
            words[-1]
        )
        if unit:
            words = words[:-1]
        out.append(f"{' '.join(words)} {_fmt(e[k])}{unit or ''}")
    return ", ".join(out) + (" (times: CPU time)" if cpu_used else "")


def render_results(results: dict) -> str:
    """A Markdown table of every recorded measurement, sorted by name."""
    if not results:
        return (
            "_No measurement recorded yet: run `make bench` (and `make main`) "
            "to fill `benchmarks/results.json`._"
        )
    rows = [
        "| measurement | what | ratio | numbers | measured | machine |",
        "|---|---|---|---|---|---|",
    ]
    for name in sorted(results):
        e = results[name]
        what = DESCRIPTIONS.get(name) or e.get("what") or name
        ratio = (
            f"{e['ratio']:.2f}×" if isinstance(e.get("ratio"), (int, float)) else "—"
        )
        numbers = "; ".join(x for x in (str(e.get("summary", "")), _numbers(e)) if x)
        cells = [
            f"`{name}`",
            what,
            ratio,
            numbers or "—",
            str(e.get("measured", "—")),
            str(e.get("machine", "—")),
        ]
        rows.append(
            "| "
            + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells)
            + " |"
        )
    return "\n".join(rows) + (
        "\n\nEach row: `python benchmarks/<name>.py` (`make main` for `demo`); "
        "a ratio above 1 means ssdbook is faster than the baseline measured in the "
        "same run."
    )


# ---------------------------------------------------------------- chapters
def toc_files(toc_path: Path = TOC) -> list[str]:
    """The book's pages in order, as paths without suffix (`nbs/02_priors`)."""
    toc = yaml.safe_load(toc_path.read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return files


def page_path(f: str, root: Path = ROOT) -> Path:
    for suffix in (".ipynb", ".md"):
        if (root / (f + suffix)).exists():
            return root / (f + suffix)
    raise FileNotFoundError(
        f"_toc.yml lists {f}, which is neither {f}.ipynb nor {f}.md"
    )


def notebook_info(path: Path) -> dict:
    """`title` (first `# ` heading, without "Chapter N:") and `module` (`#|
    default_exp`, or None)."""
    if path.suffix == ".md":
        lines, module = path.read_text().splitlines(), None
    else:
        nb = json.loads(path.read_text())
        src = [
            "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in nb["cells"]
        ]
        lines = [
            l
            for c, s in zip(nb["cells"], src)
            if c["cell_type"] == "markdown"
            for l in s.splitlines()
        ]
        module = next(
            (
                m.group(1)
                for s in src
                for m in [re.search(r"^\s*#\|\s*default_exp\s+(\S+)", s, re.M)]
                if m
            ),
            None,
        )
    heading = next((l[2:].strip() for l in lines if l.startswith("# ")), path.stem)
    m = re.match(r"(?:Chapter|Appendix)(?:\s+\w+)?\s*[:.—-]\s*(.*)", heading)
    title = TITLES.get(path.stem) or (m.group(1) if m else heading)
    return dict(title=title[:1].upper() + title[1:], module=module)


def chapter_number(stem: str) -> str:
    """`02_priors` -> `2`, `10a_evaluate` -> `10a`, `appendix_faq` -> `A`."""
    m = re.match(r"0*(\d+[a-z]?)_", stem)
    return m.group(1) if m else ""


def render_chapters(root: Path = ROOT, link=lambda p: p) -> str:
    rows = ["| chapter | notebook | module |", "|---|---|---|"]
    for f in toc_files(root / "_toc.yml"):
        p = page_path(f, root)
        info = notebook_info(p)
        num = chapter_number(p.stem)
        name = f"{num}. {info['title']}" if num else f"Appendix: {info['title']}"
        rel = str(p.relative_to(root))
        module = f"`ssdbook.{info['module']}`" if info["module"] else ""
        rows.append(f"| {name} | [`{rel}`]({link(rel)}) | {module} |")
    return "\n".join(rows)


def render_map_chapters(root: Path = ROOT) -> str:
    """The chapter list of the book's first page (nbs/00_index.ipynb): links relative to
    nbs/."""
    rows = ["| | chapter | module |", "|---|---|---|"]
    for f in toc_files(root / "_toc.yml")[1:]:
        p = page_path(f, root)
        info = notebook_info(p)
        num = chapter_number(p.stem) or "app."
        module = f"`ssdbook.{info['module']}`" if info["module"] else ""
        rows.append(f"| {num} | [{info['title']}]({p.name}) | {module} |")
    return "\n".join(rows)


# ---------------------------------------------------------------- main
MAP = ROOT / "nbs" / "00_index.ipynb"


def render(text: str, results: dict, root: Path = ROOT) -> str:
    text = replace_region(text, "results", render_results(results))
    return replace_region(text, "chapters", render_chapters(root))


def render_map(nb_path: Path = MAP, root: Path = ROOT) -> tuple[str, str]:
    """(current, rendered) text of the map notebook's markdown cell that holds the
    chapters region."""
    import nbformat

    nb = nbformat.read(nb_path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown" and "<!-- chapters:start -->" in cell.source:
            return cell.source, replace_region(
                cell.source, "chapters", render_map_chapters(root)
            )
    raise ValueError(
        f"{nb_path} has no markdown cell with "
        "<!-- chapters:start --> ... <!-- chapters:end -->"
    )


def write_map(nb_path: Path = MAP, root: Path = ROOT) -> bool:
    import nbformat

    old, new = render_map(nb_path, root)
    if old == new:
        return False
    nb = nbformat.read(nb_path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source == old:
            cell.source = new
    nbformat.write(nb, nb_path)
    return True


def load_results(path: Path = RESULTS) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if README.md is stale",
    )
    args = ap.parse_args(argv)
    old = README.read_text()
    new = render(old, load_results())
    if args.check:
        stale = [n for n in ("results", "chapters") if region(old, n) != region(new, n)]
        if render_map()[0] != render_map()[1]:
            stale.append("chapters of nbs/00_index.ipynb")
        if stale:
            print(
                f"README.md is stale in region(s) {', '.join(stale)}: "
                "run python tools/render_readme.py"
            )
            return 1
        return 0
    if new != old:
        README.write_text(new)
        print("README.md updated")
    if write_map():
        print("nbs/00_index.ipynb: chapter list updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
