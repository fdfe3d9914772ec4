"""Benchmark: how fast the explorer (`ssdbook explore`, chapters 10f-10h) answers each
interaction.

    python benchmarks/bench_explore.py [--repeats 9] [--threads N] [--no-browser]

Two numbers per interaction, each the median of `--repeats` alternating changes (so no
answer is a cached one):

* core: the `Explorer` method the page calls (matching and mining, or the detection
  stages, and the picture), timed in Python;
* browser: the round trip in headless Chromium (the system's, through Playwright and
  tools/headless_chromium.py),
  from the change on the page (a slider moved, a box typed, a click) until the new
  numbers are shown. Clicks are mouse events at computed points: Playwright's
  `locator.click()` first waits for the element to be stable, which added 0.2-0.5 s here
  that no user waits for.

Interactions: typing a box row, the IoU slider, the negative-ratio slider, the layout,
the detection's conf_thresh slider, and a click on a kept box. The target is 0.5 s each
on a 2-core CPU. The untrained mini SSD answers (a checkpoint's network runs once per
image and is then cached, so the interactions cost the same). One torch thread, as
`launch` sets it (`--threads 2` to compare). Recorded as `bench_explore` in
benchmarks/results.json, with the CPU capability torch uses and the load average at the
time (a shared machine's timings are noisy; ratio = 0.5 s / the slowest browser median).
"""

import argparse
import os
import socket
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.append(str(Path(__file__).resolve().parents[1] / "tools"))
from _results import record  # noqa: E402
from headless_chromium import chromium_path, launch_chromium  # noqa: E402

TARGET_S = 0.5


def median_ms(fn, values, repeats):
    """Median wall time of `fn(v)` in ms, `v` cycling through `values` (the first: a
    warm-up)."""
    fn(values[0])
    times = []
    for k in range(1, repeats + 1):
        t = time.perf_counter()
        fn(values[k % len(values)])
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def core_times(ex, repeats):
    st, rows = ex.image("shapes test 3")
    ex.outputs(st)  # the network, once per image
    more = rows + "\n150,150,200,190,0"
    kept = ex.detect(st)[2]
    q = kept[0][3]
    return {
        "type_box_core_ms": median_ms(lambda r: ex.match(st, r), [rows, more], repeats),
        "iou_slider_core_ms": median_ms(
            lambda t: ex.match(st, rows, "voc", t), [0.3, 0.5, 0.7], repeats
        ),
        "ratio_slider_core_ms": median_ms(
            lambda n: ex.match(st, rows, "voc", 0.5, n), [1, 3, 10], repeats
        ),
        "layout_core_ms": median_ms(
            lambda lay: ex.match(st, rows, lay), ["voc", "shapes", "coco"], repeats
        ),
        "conf_slider_core_ms": median_ms(
            lambda c: ex.detect(st, c), [0.01, 0.1, 0.145], repeats
        ),
        "click_core_ms": median_ms(
            lambda p: ex.detect(st, 0.01, 0.45, 200, 4, p), [q, 0], repeats
        ),
        "new_image_core_ms": median_ms(
            lambda n: (ex.outs.clear(), ex.match(st, rows)), [0], max(3, repeats // 3)
        ),
    }


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def browser_times(repeats):
    "Round trips in headless Chromium: action -> new text in the page."
    from playwright.sync_api import sync_playwright

    from ssdbook.explore import launch

    port = _free_port()  # what `ssdbook explore` serves (threads: as set by --threads)
    app = launch(port=port, threads=None, prevent_thread_lock=True, quiet=True)
    out = {}
    try:
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_function(
                "document.querySelector('#match-numbers')"
                " && document.querySelector('#match-numbers')"
                ".innerText.includes('N =')",
                timeout=60_000,
            )
            rows = page.input_value("#boxes textarea")

            def timed(selector, act):
                def run(v):
                    before = page.inner_text(selector)
                    act(v)
                    page.wait_for_function(
                        "([s, b]) => document.querySelector(s).innerText != b",
                        arg=[selector, before],
                        timeout=20_000,
                    )

                return run

            def fill(sel):
                return lambda v: page.locator(sel).fill(str(v))

            out["type_box_browser_ms"] = median_ms(
                timed("#match-numbers", fill("#boxes textarea")),
                [rows + "\n150,150,200,190,0", rows],
                repeats,
            )
            out["iou_slider_browser_ms"] = median_ms(
                timed("#match-numbers", fill("#iou input[type=range]")),
                [0.3, 0.5, 0.7],
                repeats,
            )
            out["ratio_slider_browser_ms"] = median_ms(
                timed("#match-numbers", fill("#ratio input[type=range]")),
                [1, 3, 10],
                repeats,
            )

            def mouse(locator, fx=0.5, fy=0.5):
                "A click as a user's: at once (no Playwright actionability waits)."
                locator.scroll_into_view_if_needed()
                b = locator.bounding_box()
                page.mouse.click(b["x"] + fx * b["width"], b["y"] + fy * b["height"])

            out["layout_browser_ms"] = median_ms(
                timed(
                    "#match-numbers", lambda v: mouse(page.get_by_label(v, exact=True))
                ),
                ["shapes", "coco", "voc"],
                repeats,
            )
            page.get_by_role("tab", name="Detection").click()
            page.wait_for_function(
                "document.querySelector('#det-numbers').innerText.includes('kept')"
            )
            out["conf_slider_browser_ms"] = median_ms(
                timed("#det-numbers", fill("#conf input[type=range]")),
                [0.1, 0.01, 0.145],
                repeats,
            )
            page.locator("#conf input[type=range]").fill("0.01")
            page.wait_for_timeout(1000)
            img = page.locator("#det-pic img")

            def click(v):
                mouse(img, *v)

            out["click_browser_ms"] = median_ms(
                timed("#why", click), [(0.3, 0.3), (0.7, 0.6)], repeats
            )
            browser.close()
    finally:
        app.close()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: what launch sets)"
    )
    ap.add_argument("--no-browser", action="store_true", help="core timings only")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from ssdbook.explore_pictures import Explorer

    load = os.getloadavg()[0]
    numbers = core_times(Explorer(), args.repeats)
    if not args.no_browser and chromium_path() is not None:
        numbers.update(browser_times(args.repeats))
    slowest = max(
        v for k, v in numbers.items() if k.endswith("_ms") and not k.startswith("new")
    )
    numbers.update(
        ratio=TARGET_S * 1000 / slowest,
        target_ms=TARGET_S * 1000,
        repeats=args.repeats,
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        threads=torch.get_num_threads(),
        load_average=round(max(load, os.getloadavg()[0]), 2),
        what="explorer interactions (chapter 10h): median latency of each, "
        "Explorer call and browser round trip; ratio = 0.5 s target / slowest median",
    )
    for k, v in numbers.items():
        print(f"{k:26s} {v:.1f}" if isinstance(v, float) else f"{k:26s} {v}")
    record("bench_explore", numbers)


if __name__ == "__main__":
    main()
