"""The explorer (chapters 10f, 10g): its core against the library's own functions, and
the app driven in a real browser (headless Chromium through Playwright).

The browser test starts the app on a free loopback port, refuses every request that is
not to it (the page must work offline), types a box, moves the IoU slider, clicks a kept
box, checks each number shown against `match_batch`, `MultiBoxLoss` and `Detect`, and
saves screenshots (into `$SSDBOOK_SCREENSHOTS` when set: the book's pictures are made
that way). It is skipped, with the reason, only where Chromium (found and started by
tools/headless_chromium.py) or Playwright is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ssdbook.detect import Detect, nms
from ssdbook.encoding import decode
from ssdbook.explore_core import (
    detect_view,
    explain,
    fate,
    layout_priors,
    load_network,
    match_view,
    network_outputs,
    parse_boxes,
    prior_cells,
    sample_image,
)
from ssdbook.explore_pictures import pick_prior
from ssdbook.loss import MultiBoxLoss
from ssdbook.matching import match_batch
from ssdbook.priors import CONFIGS, PriorBox

sys.path.append(str(Path(__file__).resolve().parents[1] / "tools"))
from headless_chromium import INSTALL_HINT, chromium_path, launch_chromium  # noqa: E402


@pytest.fixture(scope="module")
def net_and_image():
    det, _ = load_network()
    image, rows = sample_image("shapes test 3")
    return det, image, rows, network_outputs(det, image)


# ------------------------------------------------------------------ the pure core
@pytest.mark.parametrize("layout", ["voc", "coco", "shapes"])
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_match_view_counts_and_losses_are_the_librarys(
    net_and_image, layout, threshold
):
    det, image, rows, (loc, conf, _) = net_and_image
    target = parse_boxes(rows, image.shape[1:], conf.shape[-1])
    for neg_pos in (0, 3, 10):
        res = match_view(target, loc, conf, layout, threshold, neg_pos)
        priors = PriorBox(CONFIGS[layout]).forward()
        _, conf_t = match_batch([target], priors, threshold)
        crit = MultiBoxLoss(conf.shape[-1], overlap_thresh=threshold, neg_pos=neg_pos)
        loss_l, loss_c = crit((loc, conf, priors), [target])
        assert res["num_pos"] == int((conf_t > 0).sum()) == len(res["rows"])
        assert (res["loss_l"], res["loss_c"]) == (float(loss_l), float(loss_c))
        P, N = len(priors), res["num_pos"]
        assert res["num_neg"] == min(int(N * neg_pos), P - N)
        assert not (res["pos"] & res["neg"]).any()
        assert sum(lv[4] for lv in res["levels"]) == N
        assert sum(lv[6] for lv in res["levels"]) == res["num_neg"]


def test_forced_priors_are_each_objects_best(net_and_image):
    det, image, rows, (loc, conf, _) = net_and_image
    target = parse_boxes(rows, image.shape[1:], conf.shape[-1])
    res = match_view(
        target, loc, conf, "voc", threshold=0.99
    )  # only forced matches left
    _, _, d = match_batch([target], layout_priors("voc"), 0.99, return_details=True)
    assert sorted(res["forced"].tolist()) == sorted(
        set(d["best_prior_idx"][0].tolist())
    )
    assert res["num_pos"] == len(set(d["best_prior_idx"][0].tolist()))
    assert all(r[7] == "*" for r in res["rows"])


def test_loc_t_rows_are_the_encoded_offsets(net_and_image):
    det, image, rows, (loc, conf, _) = net_and_image
    target = parse_boxes(rows, image.shape[1:], conf.shape[-1])
    res = match_view(target, loc, conf, "shapes")
    loc_t, _ = match_batch([target], layout_priors("shapes"), 0.5)
    for r in res["rows"]:
        assert r[8:] == [round(v, 3) for v in loc_t[0, r[0]].tolist()]


def test_prior_cells_find_each_prior_on_its_map():
    for name in ("voc", "shapes", "ssd512"):
        cfg, pb = CONFIGS[name], PriorBox(CONFIGS[name])
        levels = [pb.level(k).float() for k in range(len(pb.feature_maps))]
        idx = torch.arange(len(pb))
        lv, i, j, a = prior_cells(cfg, idx)
        for q in torch.randint(0, len(pb), (200,)).tolist() + [0, len(pb) - 1]:
            f, A = pb.feature_maps[lv[q]], len(pb.level_shapes(int(lv[q])))
            row = levels[lv[q]][(int(i[q]) * f + int(j[q])) * A + int(a[q])]
            start = sum(len(x) for x in levels[: lv[q]])
            assert torch.equal(row, levels[lv[q]][q - start])


def test_an_image_without_objects_is_valid(net_and_image):
    det, image, rows, (loc, conf, _) = net_and_image
    res = match_view(parse_boxes("", image.shape[1:], 7), loc, conf, "voc")
    assert (res["num_pos"], res["num_neg"], res["loss_l"], res["loss_c"]) == (
        0,
        0,
        0.0,
        0.0,
    )


@pytest.mark.parametrize(
    "row, words",
    [
        ("10,10,5,20,0", "need 0 <= x1 < x2"),
        ("1,2,30,40,dog", "label 'dog'"),
        ("1,2,3", "expected x1,y1,x2,y2,label"),
        ("a,2,30,40", "numbers"),
        ("0,0,301,40,1", "x2 <= 300"),
        ("0,0,30,40,6", "label '6'"),
    ],
)
def test_a_bad_box_row_is_one_line_naming_it(row, words):
    classes = ("circle", "square", "triangle", "star", "cross", "ring")
    with pytest.raises(ValueError, match=re.escape(words)) as e:
        parse_boxes("0,0,10,10,circle  # fine\n\n" + row, (300, 300), 7, classes)
    assert str(e.value).startswith("box row 3: ") and "\n" not in str(e.value)


def test_sample_images_and_their_boxes():
    for name in ("shapes test 0", "astronaut", "chelsea", "coffee"):
        image, rows = sample_image(name)
        assert parse_boxes(rows, image.shape[1:], 7).shape[1] == 5
    with pytest.raises(ValueError, match="unknown sample image 'moon'"):
        sample_image("moon")


@pytest.mark.parametrize(
    "conf_thresh, nms_thresh, top_k",
    [(0.01, 0.45, 200), (0.145, 0.3, 20), (0.0, 0.9, 5)],
)
def test_detect_view_keeps_what_detect_keeps(
    net_and_image, conf_thresh, nms_thresh, top_k
):
    det, image, rows, (loc, conf, priors) = net_and_image
    res = detect_view(loc, conf, priors, conf_thresh, nms_thresh, top_k)
    out = Detect(
        conf.shape[-1], top_k=top_k, conf_thresh=conf_thresh, nms_thresh=nms_thresh
    )(loc, conf.softmax(-1), priors)[0]
    assert res["counts"]["kept"] == int((out[1:, :, 0] > 0).sum())
    assert torch.equal(res["boxes"], decode(loc, priors)[0])
    for c, pc in enumerate(res["per_class"]):
        boxes, scores = res["boxes"][pc["cands"]], res["probs"][pc["cands"], c + 1]
        keep = nms(boxes, scores, nms_thresh, top_k)  # chapter 10, by hand
        assert set(pc["cands"][keep].tolist()) == set(pc["cands"][pc["kept"]].tolist())
        rank = {q: r for r, q in enumerate(pc["cands"].tolist())}
        for q, by in zip(
            pc["cands"][~pc["kept"]].tolist(), pc["by"][~pc["kept"]].tolist()
        ):
            assert by in rank and rank[by] < rank[q] and pc["kept"][rank[by]]
            assert (
                "suppressed by prior %d" % by in fate(res, q)
                or int(res["probs"][q, 1:].argmax()) != c
            )


def test_explain_names_every_fate(net_and_image):
    det, image, rows, (loc, conf, priors) = net_and_image
    cfg = det.net.cfg
    res = detect_view(loc, conf, priors, 0.145, 0.45, 10)
    texts = [explain(res, q, cfg) for q in range(0, len(priors), 7)]
    for words in (
        "below conf_thresh",
        "cut by top_k",
        "**kept**",
        "suppressed by prior",
    ):
        assert any(words in t for t in texts), words
    q = res["kept"][0][2]
    x1, y1, x2, y2 = res["boxes"][q].tolist()
    assert pick_prior(res, ((x1 + x2) / 2, (y1 + y2) / 2)) == q
    with pytest.raises(ValueError, match="prior index"):
        explain(res, len(priors), cfg)


def test_boxes_are_decoded_with_the_networks_own_priors(tmp_path):
    from ssdbook.explore_pictures import Explorer

    ex = Explorer()
    ex.det, _ = load_network(priors="shapes")  # a network of other priors
    st, _ = ex.image("shapes test 3")
    res = ex.detect_res(st, 0.01, 0.45, 200)
    assert torch.equal(res["priors"], ex.det.net.priors)
    assert not torch.equal(res["priors"], layout_priors("voc"))


def test_a_checkpoint_brings_its_own_priors_and_classes(tmp_path):
    from ssdbook.checkpoint import CheckpointError, save_checkpoint
    from ssdbook.explore_pictures import Explorer
    from ssdbook.model import build_ssd

    net = build_ssd("train", num_classes=3, base="mini", cfg=CONFIGS["shapes"])
    path = save_checkpoint(
        tmp_path / "c.pth",
        model=net.state_dict(),
        base="mini",
        num_classes=3,
        size=300,
        prior_cfg=CONFIGS["shapes"],
        classes=["box", "ball"],
    )
    ex = Explorer(path)
    assert ex.classes == ["box", "ball"] and "checkpoint" in ex.label
    st, _ = ex.image("coffee")
    res = ex.detect_res(st, 0.01, 0.45, 50)
    assert torch.equal(res["priors"], layout_priors("shapes"))  # not PriorBox(voc)
    assert ex.match(st, "1,2,30,40,ball", "shapes")[1].startswith("N = ")
    assert "not 0..1 or a name" in ex.match(st, "1,2,30,40,cat", "shapes")[1]
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        Explorer(tmp_path / "missing.pth")


def test_importing_ssdbook_and_explore_does_not_import_gradio():
    code = (
        "import sys, ssdbook, ssdbook.explore, ssdbook.explore_pictures; "
        "assert 'gradio' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_explorer_answers_without_a_browser():
    from ssdbook.explore_pictures import Explorer

    ex = Explorer()
    st, rows = ex.image("chelsea")
    pic, nums, levels, positives = ex.match(st, rows, "coco", 0.5, 3)
    assert pic.size[0] == 480 and "N = **" in nums and len(levels) == 6
    assert ex.match(st, "1,2,3", "voc")[1].startswith("**box row 1")
    text, first = ex.corner(st, rows, None, (100, 200))
    assert text == rows and first is not None
    text, first = ex.corner(st, rows, first, (300, 300))
    assert first is None and text.count("\n") == rows.count("\n") + 1
    pic, nums, kept, why = ex.detect(st, 0.01, 0.45, 200, 4, -1)
    assert "kept by NMS" in nums and why.startswith("Click")
    q = kept[0][3]
    assert ex.detect(st, 0.01, 0.45, 200, 4, q)[3].startswith(f"prior **{q}**")


# ------------------------------------------------------------------ the app in a
# browser
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _numbers(text: str) -> dict:
    "The numbers of the matching tab's line: N, negatives, loss_l, loss_c."
    m = re.search(
        r"N = (\d+) positives, (\d+) hard negatives, loss_l ([\d.]+), loss_c ([\d.]+)",
        text,
    )
    assert m, text
    return dict(N=int(m[1]), neg=int(m[2]), loss_l=float(m[3]), loss_c=float(m[4]))


def _expected(det, image, rows, threshold):
    """What the library says for these rows: N (match_batch), negatives and losses
    (MultiBoxLoss)."""
    loc, conf, _ = network_outputs(det, image)
    target = parse_boxes(rows, image.shape[1:], conf.shape[-1], det.classes)
    # the network's own priors: voc when untrained, a checkpoint's own otherwise
    priors = det.net.priors.cpu()
    _, conf_t = match_batch([target], priors, threshold)
    crit = MultiBoxLoss(conf.shape[-1], overlap_thresh=threshold)
    loss_l, loss_c, _, neg = crit((loc, conf, priors), [target], return_masks=True)
    return dict(
        N=int((conf_t > 0).sum()),
        neg=int(neg.sum()),
        loss_l=round(float(loss_l), 4),
        loss_c=round(float(loss_c), 4),
    )


def _screenshot(page, path: Path) -> None:
    "A full-page PNG in 128 colours (a seventh of the bytes; the book commits these)."
    from PIL import Image

    page.screenshot(path=str(path), full_page=True)
    image = Image.open(path).convert("RGB")
    image.quantize(128, Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        path, optimize=True
    )


def _wait_text(page, selector, pattern, timeout=15_000):
    page.wait_for_function(
        "([s, p]) => { const e = document.querySelector(s); "
        "return e && new RegExp(p).test(e.innerText); }",
        arg=[selector, pattern],
        timeout=timeout,
    )
    return page.inner_text(selector)


@pytest.mark.skipif(
    chromium_path() is None,
    reason=f"no Chromium ({INSTALL_HINT}): the browser test needs a real browser",
)
def test_the_app_in_a_real_browser(tmp_path):
    pytest.importorskip(
        "gradio", reason="gradio is not installed (pip install ssdbook[app])"
    )
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed"
    )
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    from ssdbook.explore import launch

    t0 = time.perf_counter()
    checkpoint = os.environ.get("SSDBOOK_EXPLORE_CHECKPOINT") or None
    det, _ = load_network(checkpoint)
    image, rows = sample_image("shapes test 3")
    port = _free_port()  # what `ssdbook explore` runs, returning at once:
    app = launch(
        checkpoint, port=port, threads=None, prevent_thread_lock=True, quiet=True
    )
    outside, shots = [], Path(os.environ.get("SSDBOOK_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    try:
        with sync_api.sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            local = f"http://127.0.0.1:{port}"

            def route(r):  # offline: only the app's own server answers
                if r.request.url.startswith(local):
                    return r.continue_()
                outside.append(r.request.url)
                return r.abort()

            page.route("**/*", route)
            page.goto(local + "/")
            shown = _numbers(_wait_text(page, "#match-numbers", "N = "))
            assert shown == _expected(det, image, rows, 0.5)
            # type a box: the numbers follow
            new_rows = rows + "\n150,150,200,190,circle"
            page.fill("#boxes textarea", new_rows)
            text = _wait_text(page, "#match-numbers", r"\(7 objects")
            assert _numbers(text) == _expected(det, image, new_rows, 0.5)
            # move the IoU slider to 0.3
            slider = page.locator("#iou input[type=range]")
            slider.fill("0.3")
            text = _wait_text(
                page,
                "#match-numbers",
                f"N = {_expected(det, image, new_rows, 0.3)['N']} ",
            )
            assert _numbers(text) == _expected(det, image, new_rows, 0.3)
            _screenshot(page, shots / "match.png")
            # draw a box: two clicks on the picture, at its corners
            pic = page.locator("#match-pic img")
            size = pic.bounding_box()
            for fx, fy in ((0.55, 0.2), (0.75, 0.35)):
                pic.click(position={"x": fx * size["width"], "y": fy * size["height"]})
                page.wait_for_timeout(300)
            text = _wait_text(page, "#match-numbers", r"\(8 objects")
            drawn = page.input_value("#boxes textarea")
            assert drawn.startswith(new_rows + "\n") and drawn.count("\n") == 7
            assert _numbers(text) == _expected(det, image, drawn, 0.3)
            # detection: click the best kept box on the picture
            page.get_by_role("tab", name="Detection").click()
            _wait_text(page, "#det-numbers", "kept by NMS")
            loc, conf, priors = network_outputs(det, image)
            res = detect_view(
                loc, conf, priors, 0.01, 0.45, 200, tuple(det.net.cfg["variance"])
            )
            s, c, q = res["kept"][0]
            x1, y1, x2, y2 = res["boxes"][q].clamp(0, 1).tolist()
            img = page.locator("#det-pic img")
            scale = img.bounding_box()["width"] / img.evaluate("e => e.naturalWidth")
            H, W = image.shape[1:]
            side, top = 480 / max(H, W), 3 * 18 + 4  # chapter 10g's canvas
            img.click(
                position={
                    "x": (x1 + x2) / 2 * W * side * scale,
                    "y": (top + (y1 + y2) / 2 * H * side) * scale,
                }
            )
            why = _wait_text(page, "#why", r"prior \d+")
            picked = int(re.search(r"prior (\d+)", why)[1])
            assert picked == pick_prior(res, ((x1 + x2) / 2, (y1 + y2) / 2))
            assert "kept" in why
            pc = (
                int(res["probs"][picked, 1:].argmax()) + 1
            )  # Detect kept exactly that box
            out = Detect(conf.shape[-1])(loc, conf.softmax(-1), priors)[0, pc]
            row = torch.cat([res["probs"][picked, pc, None], res["boxes"][picked]])
            assert (out == row).all(1).any()
            _screenshot(page, shots / "detect.png")
            # a row of the kept boxes' table selects its prior
            second = res["kept"][1][2]
            page.locator("#kept [data-testid=cell-1-3]").click()
            assert f"prior {second}:" in _wait_text(page, "#why", f"prior {second}:")
            # an uploaded image: no boxes yet, which is valid
            photo = tmp_path / "photo.png"
            from PIL import Image

            Image.new("RGB", (200, 120), "teal").save(photo)
            page.locator("#upload input[type=file]").set_input_files(str(photo))
            page.get_by_role("tab", name="Priors and matching").click()
            text = _wait_text(page, "#match-numbers", r"\(0 objects")
            assert _numbers(text) == dict(N=0, neg=0, loss_l=0.0, loss_c=0.0)
            browser.close()
    finally:
        app.close()
    assert outside == [], f"the page tried to reach {outside}"
    assert time.perf_counter() - t0 < 60
