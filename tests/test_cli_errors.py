"""Issue 12 item 6: a user's mistake anywhere in the command line is ONE line on stderr,
exit status 2, no traceback.

The table runs `main(argv)` in this process (fast); a few cases also run as `python -m
ssdbook` subprocesses. Every case is cheap: it fails before any data is generated or any
model is trained."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from ssdbook.cli import main
from ssdbook.data import write_classes

from test_inference import make_checkpoint

ROOT = Path(__file__).resolve().parents[1]
README = str(ROOT / "README.md")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A tiny VOC-format set of our own (classes box, ball), a checkpoint trained on
    other classes, files."""
    tmp = tmp_path_factory.mktemp("cli_errors")
    toy = tmp / "toy"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (toy / "VOC2007" / sub).mkdir(parents=True)
    write_classes(toy / "VOC2007" / "classes.txt", ["box", "ball"])
    Image.new("RGB", (64, 48), "gray").save(toy / "VOC2007" / "JPEGImages" / "a.jpg")
    (toy / "VOC2007" / "Annotations" / "a.xml").write_text(
        "<annotation><filename>a.jpg</filename><size><width>64</width><height>48</height><depth>3</depth></size>"
        "<object><name>box</name><difficult>0</difficult><bndbox><xmin>5</xmin><ymin>5</ymin><xmax>30</xmax>"
        "<ymax>30</ymax></bndbox></object></annotation>"
    )
    (toy / "VOC2007" / "ImageSets" / "Main" / "train.txt").write_text("a\n")
    xml = (
        (toy / "VOC2007" / "Annotations" / "a.xml")
        .read_text()
        .replace("a.jpg", "b.jpg")
    )
    (toy / "VOC2007" / "Annotations" / "b.xml").write_text(
        xml
    )  # b.jpg itself is missing
    (toy / "VOC2007" / "ImageSets" / "Main" / "broken.txt").write_text("a\nb\n")
    ck = make_checkpoint(
        tmp / "ck.pth"
    )  # shapes classes, config {}: no data of its own
    (tmp / "empty.pth").write_bytes(b"")
    (tmp / "truncated.pth").write_bytes(Path(ck).read_bytes()[:5000])
    torch.save({"weight": torch.zeros(2)}, tmp / "state_dict.pth")
    (tmp / "emptydir").mkdir()
    (tmp / "classes_dup.txt").write_text("box\nball\nbox\n")
    (tmp / "classes_utf16.txt").write_text("box\nball\n", encoding="utf-16")
    img = toy / "VOC2007" / "JPEGImages" / "a.jpg"
    return dict(tmp=str(tmp), toy=str(toy), ck=str(ck), img=str(img))


VOC_MINI = [
    "--data",
    "voc",
    "--root",
    "{toy}",
    "--image-sets",
    "2007:train",
    "--base",
    "mini",
    "--pretrained",
    "",
    "--out",
    "{tmp}/run",
    "--progress",
    "no",
]
NO_GPU = pytest.mark.skipif(
    torch.cuda.is_available(), reason="needs a machine without a CUDA GPU"
)

CASES = [  # (argv, a word the message must contain)
    ([], "COMMAND"),
    (["frobnicate"], "invalid choice"),
    # train
    (["train", "--device", "gpu"], "not a device"),
    pytest.param(
        ["train", "--device", "cuda", "--root", "{tmp}/d"], "no CUDA GPU", marks=NO_GPU
    ),
    (["train", "--iterations", "-5"], ">= 1"),
    (["train", "--iterations", "ten"], "expected int"),
    (["train", "--optimizer", "adam"], "invalid choice"),
    (["train", "--lr", "0"], "> 0"),
    (["train", "--image-sets", "2007"], "YEAR:NAME"),
    (["train", "--cache", "maybe"], "yes or no"),
    (["train", "--base", "mini", "--pretrained", "download"], "needs base='vgg16'"),
    (["train", "--classes", "box,ball,box"], "repeats"),
    (["train", "--classes", "box,,ball"], "class 2"),
    (["train", "--classes-file", "{tmp}/nope.txt"], "missing"),
    (["train", "--classes-file", "{tmp}/classes_dup.txt"], "repeats"),
    (
        ["train", "--classes", "a", "--classes-file", "{tmp}/classes_dup.txt"],
        "not allowed with",
    ),
    (["train", "--classes", "box,ball", "--root", "{tmp}/d"], "shapes set"),
    (
        [
            "train",
            "--data",
            "voc",
            "--root",
            "/dev/null/x",
            "--base",
            "mini",
            "--pretrained",
            "",
        ],
        "no such folder",
    ),
    (
        [
            "train",
            "--data",
            "coco",
            "--root",
            "{toy}",
            "--base",
            "mini",
            "--pretrained",
            "",
        ],
        "--annotations",
    ),
    (["train", "--annotations", "{tmp}/x.json", *VOC_MINI], "--data coco"),
    (["train", *VOC_MINI, "--classes", "box,cat"], "box, ball"),
    (["train", *VOC_MINI[:5], "2007:bogus", *VOC_MINI[6:]], "bogus"),
    (["train", *VOC_MINI, "--finetune", README], "README.md"),
    (
        [
            "train",
            *VOC_MINI[:5],
            "2007:broken",
            *VOC_MINI[6:],
            "--iterations",
            "2",
            "--batch-size",
            "2",
            "--warmup",
            "1",
            "--num-workers",
            "1",
            "--augment",
            "none",
        ],
        "image file is missing",
    ),  # raised in a DataLoader worker
    (["train", *VOC_MINI, "--finetune", "{tmp}/empty.pth"], "empty"),
    (
        ["train", *VOC_MINI, "--batch-size", "100000"],
        "larger than the 1 training images",
    ),  # issue 21 item 15
    (
        [
            "train",
            *VOC_MINI[:5],
            "2007:train",
            "--classes-file",
            "{tmp}/classes_utf16.txt",
            *VOC_MINI[6:],
        ],
        "UTF-8",
    ),
    # eval
    (["eval"], "--checkpoint"),
    (["eval", "--checkpoint", README], "not a checkpoint"),
    (["eval", "--checkpoint", "{tmp}/empty.pth"], "corrupt"),
    (["eval", "--checkpoint", "{tmp}/truncated.pth"], "corrupt"),
    (["eval", "--checkpoint", "{tmp}/state_dict.pth"], "state_dict"),
    (["eval", "--checkpoint", "{tmp}/nope.pth"], "not found"),
    (["eval", "--checkpoint", "{tmp}"], "folder"),
    (["eval", "--checkpoint", "{ck}", "--device", "gpu"], "not a device"),
    pytest.param(
        ["eval", "--checkpoint", "{ck}", "--device", "cuda"],
        "no CUDA GPU",
        marks=NO_GPU,
    ),
    (["eval", "--checkpoint", "{ck}", "--image-set", "bogus"], "YEAR:NAME"),
    (
        ["eval", "--checkpoint", "{ck}", "--data", "voc", "--root", "/dev/null/x"],
        "no such folder",
    ),
    (["eval", "--checkpoint", "{ck}", "--data", "voc", "--root", "{toy}"], "box, ball"),
    (["eval", "--checkpoint", "{ck}", "--classes", "box,ball"], "checkpoint"),
    (["eval", "--checkpoint", "{ck}", "--metric", "map"], "invalid choice"),
    (["eval", "--checkpoint", "{ck}", "--batch-size", "0"], ">= 1"),
    (["eval", "--checkpoint", "{ck}", "--nms-thresh", "2"], "nms_thresh"),
    (
        ["eval", "--checkpoint", "{ck}", "--data", "coco", "--root", "{toy}"],
        "--annotations",
    ),
    # detect
    (["detect", "--checkpoint", "{ck}"], "IMAGE"),
    (["detect", "{tmp}/missing.jpg", "--checkpoint", "{ck}"], "no such file"),
    (["detect", "{tmp}/emptydir", "--checkpoint", "{ck}"], "no image files"),
    (["detect", "{tmp}/nothing*.jpg", "--checkpoint", "{ck}"], "no file matches"),
    (["detect", "{img}", "--checkpoint", README], "not a checkpoint"),
    (
        ["detect", "{img}", "--checkpoint", "{ck}", "--score-thresh", "1.5"],
        "score_thresh",
    ),
    (["detect", "{img}", "--checkpoint", "{ck}", "--max-detections", "0"], ">= 1"),
    (
        ["detect", "{img}", "--checkpoint", "{ck}", "--classes", "box,ball"],
        "checkpoint",
    ),
    (
        ["detect", "{img}", "--checkpoint", "{ck}", "--out", "/dev/null/x"],
        "/dev/null/x",
    ),
    # export
    (["export", "--checkpoint", "{ck}", "--format", "tflite"], "invalid choice"),
    (["export", "--checkpoint", "{tmp}/nope.pth"], "not found"),
    (["export", "--checkpoint", "{ck}", "--nms", "--nms-thresh", "1.5"], "nms_thresh"),
    (["export", "--checkpoint", "{ck}", "--out", "/dev/null/x/m.onnx"], "/dev/null/x"),
    (
        ["export", "--checkpoint", "{ck}", "--out", "{ck}"],
        "is the checkpoint being exported",
    ),  # issue 21 item 1
    # check
    (["check", "--root", "{tmp}/emptydir"], "no split files"),
    (["check", "--root", "{toy}", "--data", "coco"], "--annotations"),
    # make-shapes, demo
    (["make-shapes", "--root", "{tmp}/s", "--n-train", "-1"], "n_train"),
    (
        ["make-shapes", "--root", "/dev/null/x", "--n-train", "1", "--n-test", "1"],
        "/dev/null/x",
    ),
    (
        ["demo", "--iterations", "0", "--root", "{tmp}/d", "--out", "{tmp}/demo"],
        "iterations",
    ),
    (["demo", "--lr", "-1", "--root", "{tmp}/d", "--out", "{tmp}/demo"], "lr"),
    (["demo", "--batch-size", "abc"], "invalid int"),
]


def _fill(argv, env):
    return [a.format(**env) for a in argv]


def _check(status, err, word):
    lines = [l for l in err.splitlines() if l.strip()]
    assert status == 2, (status, err)
    assert "Traceback" not in err, err
    assert len(lines) >= 1 and lines[-1].startswith("ssdbook"), err
    assert word in lines[-1], (word, err)
    return lines


@pytest.mark.parametrize(
    "argv, word", CASES, ids=lambda v: " ".join(v)[:50] if isinstance(v, list) else None
)
def test_one_line_error(argv, word, env, capsys):
    try:
        status = main(_fill(argv, env))
    except SystemExit as e:  # argparse
        status = e.code
    err = capsys.readouterr().err
    lines = _check(status, err, word)
    if (
        "inputs" not in word
    ):  # detect names each skipped input, then sums up in one line
        assert len(lines) == 1, err


def test_at_least_thirty_cases():
    assert len(CASES) >= 30


@pytest.mark.parametrize(
    "argv, word",
    [
        (["train", "--device", "gpu"], "not a device"),
        (["eval", "--checkpoint", README], "not a checkpoint"),
        (["detect", "{tmp}/missing.jpg", "--checkpoint", "{ck}"], "no such file"),
    ],
)
def test_one_line_error_subprocess(argv, word, env):
    r = subprocess.run(
        [sys.executable, "-m", "ssdbook", *_fill(argv, env)],
        capture_output=True,
        text=True,
        cwd=env["tmp"],
        timeout=300,
    )
    assert len(_check(r.returncode, r.stderr, word)) == 1, r.stderr
