"""No typed measurement in prose (issue 20.2): a number a run produced reaches the
markdown only through MyST-NB's glue, so it changes when the run changes. `python
tools/prose_numbers.py` lists the offenders."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import prose_numbers  # noqa: E402


def _flagged(text):
    return [n for n, _ in prose_numbers.offenders(text)]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The main job reached mAP 0.963 in the end.", ["0.963"]),
        ("Training took 445 s on two cores.", ["445 s"]),
        ("and 4.8 ms per image", ["4.8 ms"]),
        ("502 of 749 blocks (67 %) scroll", ["67 %"]),
        ("it found 12 objects and 16 detections", ["12 objects", "16 detections"]),
        ("the colour matrix is 2.7× faster", ["2.7×"]),
        ("it trained for 2 h and 3 hours", ["2 h", "3 hours"]),
    ],
)
def test_measured_numbers_are_found(text, expected):
    assert _flagged(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "The mAP is {glue:text}`map:.3f` after {glue:text}`secs:.0f` s.",  # glued
        "`loss_c = 19.2353` and\n```python\nprint(0.963)\n```\n",  # code
        "$p_t = 0.25$ and $$x = 1.5$$",  # maths
        "section 2.2, eq. 4, Table 6, §4.1 and version 2.14.1",  # numbered things
        "IoU 0.5, 8732 priors, 300 × 300 pixels, 38×38 map, 21 classes",  # constants
        "The paper reports 74.3 mAP for SSD300 (Table 1).",  # the paper quoted
        "the centre falls at 9.5/9.375 = 1.013 of the image",  # a derivation
        "a canvas up to 4× the side, 30–60 px boxes",  # settings, sizes
        "| 10h | chapter 10h's page",  # a chapter's name, not ten hours
    ],
)
def test_constants_code_glue_and_quotes_pass(text):
    assert _flagged(text) == []


def test_no_typed_measurement_in_the_book():
    found = prose_numbers.scan(prose_numbers.pages())
    bad = {p.relative_to(ROOT): f for p, f in found.items() if f}
    assert not bad, (
        f"{sum(map(len, bad.values()))} typed numbers that look measured:\n"
        + "\n".join(
            f"  {p}: " + "; ".join(repr(n) for _, n, _ in f[:6]) for p, f in bad.items()
        )
    )


# every page of the book: each one is at 0 (tools/prose_numbers.py), and stays there
CLEAN = [
    "nbs/00_index.ipynb",
    "nbs/00a_reference.ipynb",
    "nbs/00b_package.ipynb",
    "nbs/01_data.ipynb",
    "nbs/01a_voc.ipynb",
    "nbs/01b_dataset.ipynb",
    "nbs/01c_shapes.ipynb",
    "nbs/01d_coco.ipynb",
    "nbs/02_priors.ipynb",
    "nbs/03_model.ipynb",
    "nbs/03a_pretrained.ipynb",
    "nbs/04_encode.ipynb",
    "nbs/05_jaccard_match.ipynb",
    "nbs/06_hard_negatives.ipynb",
    "nbs/07_loss.ipynb",
    "nbs/08_augmentation.ipynb",
    "nbs/09_training.ipynb",
    "nbs/09a_input_pipeline.ipynb",
    "nbs/09b_checkpoints.ipynb",
    "nbs/09c_run_folder.ipynb",
    "nbs/09d_training_loop.ipynb",
    "nbs/10_detect.ipynb",
    "nbs/10a_evaluate.ipynb",
    "nbs/10b_inference.ipynb",
    "nbs/10c_ablations.ipynb",
    "nbs/10d_export.ipynb",
    "nbs/10e_commands.ipynb",
    "nbs/10f_explore_core.ipynb",
    "nbs/10g_explore_pictures.ipynb",
    "nbs/10h_explore.ipynb",
    "nbs/11_cli.ipynb",
    "nbs/11a_main.ipynb",
    "nbs/12_own_data.ipynb",
    "nbs/appendix_faq.md",
    "nbs/appendix_quirks.md",
]


@pytest.mark.parametrize("page", CLEAN)
def test_pages_already_clean_stay_clean(page):
    found = prose_numbers.scan([ROOT / page])[ROOT / page]
    assert not found, f"{page}: typed numbers in prose: " + "; ".join(
        f"cell {c}: {n!r}" for c, n, _ in found
    )
