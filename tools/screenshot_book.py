"""Look at the book as a reader does: a full-page screenshot of every page at a 1280-px
window, and a table of what a reader would trip over.

    # reads _build/html (make book builds it)
    python tools/screenshot_book.py
    # builds it first: jupyter-book build . -n --keep-going
    python tools/screenshot_book.py --build
    # only these pages
    python tools/screenshot_book.py nbs/07_loss

For every page of `_toc.yml` it saves `_build/screens/<page>.png` and counts

* code / output blocks that scroll sideways (an element of the page whose `scrollWidth`
  exceeds its `clientWidth`: a reader must scroll to see the end of its lines);
* warnings shown on the page (stderr outputs, and the word "Warning" in any output);
* plotting cells shown unfolded, by the rule of `tools/folded_plots.py` (the one
  `tests/test_plots_folded.py` checks): a cell that draws (`plt.`, `fig.`, `ax.`, an
  image output...), is shown, is not tagged `hide-input` and exports no library code.
  It reads the page's notebook through the book's filter, so it counts what the page
  shows; a markdown page counts 0.

The table is printed and written to `_build/screens/report.json`. Exit status 1 when any
count is not 0. Needs Chromium (`apt-get install -y chromium`) and the `playwright`
Python package (its own browser download is not used: `tools/headless_chromium.py`
starts the system's Chromium).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from folded_plots import unfolded_plot_cells  # noqa: E402
from headless_chromium import INSTALL_HINT, chromium_path, launch_chromium  # noqa: E402

# Runs in the page: scrolling blocks and warnings, with a short sample of each for the
# report (the unfolded plotting cells are counted from the notebook: folded_plots.py).
PROBE = r"""
() => {
  const main = document.querySelector('main') || document.body;
  const where = el => el.closest('.cell_output') ? 'output'
                    : el.closest('.cell_input') ? 'code' : 'prose';
  const scroll = {code: [], output: [], prose: []};
  for (const el of main.querySelectorAll('*')) {
    const ox = getComputedStyle(el).overflowX;
    const wider = el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0;
    if ((ox === 'auto' || ox === 'scroll') && wider) {
      if (el.closest('.bd-sidebar, .bd-toc, nav')) continue;
      // one block counts once: skip an element whose scrolling ancestor was counted
      let p = el.parentElement, inner = false;
      while (p && p !== main) {
        if (p.__counted) { inner = true; break; }
        p = p.parentElement;
      }
      if (inner) continue;
      el.__counted = true;
      const lines = (el.innerText || '').split('\n');
      const text = lines.sort((a, b) => b.length - a.length)[0] || '';
      scroll[where(el)].push(
        {width: el.scrollWidth, visible: el.clientWidth, line: text.slice(0, 120)});
    }
  }
  const warnings = [];
  const stderr = '.cell_output .stderr, .cell_output .output.stderr';
  for (const el of main.querySelectorAll(stderr)) {
    warnings.push('stderr: ' + (el.innerText || '').trim().slice(0, 160));
  }
  for (const el of main.querySelectorAll('.cell_output')) {
    if (el.querySelector('.stderr')) continue;
    const m = (el.innerText || '').match(/[^\n]*\b\w*Warning\b[^\n]*/);
    if (m) warnings.push(m[0].trim().slice(0, 160));
  }
  // how many characters of code fit in a code block of this page
  let charsFit = null;
  const pre = main.querySelector('.cell_input pre, div.highlight pre');
  if (pre) {
    const probe = document.createElement('span');
    probe.textContent = '0'.repeat(100);
    pre.appendChild(probe);
    const cs = getComputedStyle(pre);
    const padding = parseFloat(cs.paddingLeft) + parseFloat(cs.paddingRight);
    const inner = pre.clientWidth - padding;
    charsFit = Math.floor(inner / (probe.getBoundingClientRect().width / 100));
    probe.remove();
  }
  return {scroll, warnings, width: main.clientWidth, chars_fit: charsFit};
}
"""


def toc_pages() -> list[str]:
    return re.findall(
        r"^\s*(?:root|-\s*file):\s*(\S+)", (ROOT / "_toc.yml").read_text(), re.M
    )


def build(out: Path) -> None:
    exe = next(
        (
            p
            for p in (
                Path(sys.executable).with_name("jupyter-book"),
                ROOT / ".venv" / "bin" / "jupyter-book",
            )
            if p.exists()
        ),
        shutil.which("jupyter-book") or "jupyter-book",
    )
    r = subprocess.run(
        [str(exe), "build", str(ROOT), "-n", "--keep-going", "--path-output", str(out)],
        capture_output=True,
        text=True,
    )
    warnings = [l for l in (r.stdout + r.stderr).splitlines() if "WARNING" in l]
    print(f"jupyter-book build: exit {r.returncode}, {len(warnings)} warnings")
    for w in warnings[:20]:
        print("   ", w[:200])


def unfolded_plots(name: str) -> list[str]:
    "The plotting cells page `name` shows unfolded (tools/folded_plots.py's rule)."
    nb = ROOT / f"{name}.ipynb"
    if not nb.exists():
        return []
    return [f"cell {i} (id {cid}): {line}" for i, cid, line in unfolded_plot_cells(nb)]


def shoot(html: Path, pages: list[str], out: Path, width: int) -> dict:
    from playwright.sync_api import sync_playwright

    if chromium_path() is None:
        sys.exit(f"screenshot_book: no Chromium found: {INSTALL_HINT}")
    out.mkdir(parents=True, exist_ok=True)
    report = {}
    with sync_playwright() as p:
        browser = launch_chromium(p, "--hide-scrollbars")
        page = browser.new_page(viewport={"width": width, "height": 900})
        for name in pages:
            f = html / f"{name}.html"
            if not f.exists():
                report[name] = {"missing": True}
                continue
            page.goto(f.as_uri(), wait_until="load")
            page.wait_for_timeout(300)  # MathJax and fonts
            shot = out / (name.replace("/", "__") + ".png")
            page.screenshot(path=str(shot), full_page=True)
            r = page.evaluate(PROBE)
            r["plotting"] = unfolded_plots(name)
            r["screenshot"] = (
                str(shot.relative_to(ROOT)) if shot.is_relative_to(ROOT) else str(shot)
            )
            report[name] = r
        browser.close()
    return report


def table(report: dict) -> tuple[str, int]:
    rows = [
        "| page | code scrolls | output scrolls | prose scrolls | warnings | unfolded "
        "plots |",
        "|---|---|---|---|---|---|",
    ]
    bad = 0
    tot = [0, 0, 0, 0, 0]
    for name, r in report.items():
        if r.get("missing"):
            rows.append(f"| {name} | page missing | | | | |")
            bad += 1
            continue
        c = [
            len(r["scroll"]["code"]),
            len(r["scroll"]["output"]),
            len(r["scroll"]["prose"]),
            len(r["warnings"]),
            len(r["plotting"]),
        ]
        tot = [a + b for a, b in zip(tot, c)]
        bad += sum(c)
        rows.append(f"| {name} | " + " | ".join(map(str, c)) + " |")
    rows.append("| **total** | " + " | ".join(f"**{t}**" for t in tot) + " |")
    return "\n".join(rows), bad


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "pages", nargs="*", help="pages as in _toc.yml (nbs/07_loss); default: all"
    )
    ap.add_argument(
        "--build",
        action="store_true",
        help="build the HTML first (execute off, as _config.yml)",
    )
    ap.add_argument("--html", type=Path, default=ROOT / "_build" / "html")
    ap.add_argument("--out", type=Path, default=ROOT / "_build" / "screens")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument(
        "--details", action="store_true", help="print what each count found"
    )
    args = ap.parse_args(argv)
    if args.build:
        build(args.html.parent.parent)
    if not args.html.exists():
        sys.exit(
            f"screenshot_book: no built book at {args.html}: run `make book` or pass "
            "--build"
        )
    pages = [
        p.removesuffix(".ipynb").removesuffix(".md") for p in args.pages
    ] or toc_pages()
    report = shoot(args.html, pages, args.out, args.width)
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    text, bad = table(report)
    print(text)
    if args.details:
        for name, r in report.items():
            for kind, items in r.get("scroll", {}).items():
                for it in items:
                    print(
                        f"{name}: {kind} block {it['width']} px in {it['visible']} px: "
                        f"{it['line']}"
                    )
            for w in r.get("warnings", []):
                print(f"{name}: warning: {w}")
            for pl in r.get("plotting", []):
                print(f"{name}: unfolded plot: {pl}")
    fits = sorted({r["chars_fit"] for r in report.values() if r.get("chars_fit")})
    if fits:
        print(
            f"characters of code that fit in a code block at {args.width} px: "
            f"{fits[0]}-{fits[-1]}"
        )
    print(f"screenshots in {args.out}; report {args.out / 'report.json'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
