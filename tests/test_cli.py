"""Chapters 10e and 11: the commands and the command line (`python -m ssdbook`, console
script `ssdbook`). Tiny budgets only."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ssdbook.checkpoint import load_checkpoint
from ssdbook.cli import build_parser, main
from ssdbook.commands import detect_options, one_line
from ssdbook.config import TrainConfig, config_from_args, shapes_recipe, voc_recipe
from ssdbook.data import write_classes

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("train", "eval", "detect", "export", "make-shapes", "demo")


def test_python_m_ssdbook_help():
    r = subprocess.run(
        [sys.executable, "-m", "ssdbook", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    for cmd in COMMANDS:
        assert cmd in r.stdout


@pytest.mark.parametrize("cmd", COMMANDS)
def test_subcommand_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "usage: ssdbook " + cmd in out
    if cmd == "train":  # every TrainConfig field is an option, with its default shown
        for name in TrainConfig.__dataclass_fields__:
            assert "--" + name.replace("_", "-") in out, name
        assert "shapes: 'mini'; voc: 'vgg16'" in out and "120000" in out
        assert "--classes" in out and "--finetune" in out and "coco" in out


def test_train_options_override_the_recipe():
    p = build_parser()
    cfg = config_from_args(
        p.parse_args(
            [
                "train",
                "--data",
                "voc",
                "--root",
                "/x",
                "--lr",
                "0.01",
                "--steps",
                "10,20",
                "--cache",
                "yes",
                "--image-sets",
                "2007:trainval",
            ]
        )
    )
    assert cfg == voc_recipe(
        root="/x",
        lr=0.01,
        steps=(10, 20),
        cache=True,
        image_sets=(("2007", "trainval"),),
    )
    assert config_from_args(p.parse_args(["train"])) == shapes_recipe()


def test_detect_thresholds_default_to_detect_s_own():
    args = build_parser().parse_args(["eval", "--checkpoint", "x.pth"])
    assert detect_options(args) == {}  # nothing retyped: Detect's defaults apply
    args = build_parser().parse_args(
        ["eval", "--checkpoint", "x.pth", "--top-k", "50", "--nms-thresh", "0.5"]
    )
    assert detect_options(args) == dict(top_k=50, nms_thresh=0.5)


def test_one_line_reduces_a_worker_traceback():
    e = ValueError(
        "Caught ValueError in DataLoader worker process 0.\n"
        "Original Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\n'
        '    raise ValueError("a.jpg: image file is missing")\n'
        "ValueError: a.jpg: image file is missing\n"
    )
    assert one_line(e) == "a.jpg: image file is missing"
    assert one_line(ValueError("two\nlines")) == "two lines"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    "`ssdbook demo --quick`: the whole main job on a tiny budget."
    tmp = tmp_path_factory.mktemp("demo")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "ssdbook",
            "demo",
            "--quick",
            "--root",
            str(tmp / "data"),
            "--out",
            str(tmp / "run"),
            "--progress",
            "no",
        ],
        capture_output=True,
        text=True,
        cwd=tmp,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return tmp, r.stdout


def test_demo_end_to_end(demo_run):
    tmp, out = demo_run
    assert "mAP@0.5 (VOC07) =" in out and "by object size:" in out
    for name in ("circle", "square", "triangle"):
        assert name in out  # per-class APs are printed
    assert (tmp / "run" / "detections.png").stat().st_size > 1000
    assert (tmp / "run" / "loss.png").exists() and (tmp / "run" / "log.csv").exists()
    ck = load_checkpoint(tmp / "run" / "last.pth")
    assert ck["base"] == "mini" and ck["iteration"] == 3
    sets = list(
        (tmp / "data").glob("shapes-v*/VOCshapes")
    )  # the seed-named folder, nothing else
    assert len(sets) == 1 and [p.name for p in (tmp / "data").iterdir()] == [
        sets[0].parent.name
    ]


def test_eval_detect_export_from_the_demo_checkpoint(demo_run, capsys, tmp_path):
    tmp, _ = demo_run
    ck = str(tmp / "run" / "last.pth")
    assert main(["eval", "--checkpoint", ck, "--progress", "no"]) == 0
    assert "mAP" in capsys.readouterr().out
    assert (
        main(
            [
                "eval",
                "--checkpoint",
                ck,
                "--progress",
                "no",
                "--metric",
                "area",
                "--top-k",
                "50",
            ]
        )
        == 0
    )
    images = next((tmp / "data").rglob("JPEGImages"))
    folder = tmp_path / "photos"
    folder.mkdir()
    for f in sorted(images.glob("test*.jpg"))[:2]:
        (folder / f.name).write_bytes(f.read_bytes())
    Image = pytest.importorskip("PIL.Image")
    Image.open(folder / "test000000.jpg").resize((200, 120)).save(folder / "small.png")
    out = tmp_path / "det"
    assert (
        main(
            [
                "detect",
                str(folder),
                str(images / "test00000[67].jpg"),
                "--checkpoint",
                ck,
                "--out",
                str(out),
                "--score-thresh",
                "0.0",
                "--max-detections",
                "5",
            ]
        )
        == 0
    )
    stdout = capsys.readouterr().out
    assert "5 images, 25 detections" in stdout
    records = json.loads((out / "detections.json").read_text())
    assert len(records) == 5 and all(len(r["detections"]) == 5 for r in records)
    small = [r for r in records if r["image"].endswith("small.png")][0]
    assert (small["width"], small["height"]) == (200, 120)
    assert all(
        0 <= d["box"][0] <= d["box"][2] <= 200
        and 0 <= d["box"][1] <= d["box"][3] <= 120
        for d in small["detections"]
    )
    rows = list(csv.DictReader(open(out / "detections.csv")))
    assert len(rows) == 25 and set(rows[0]) == {
        "image",
        "width",
        "height",
        "class",
        "label",
        "score",
        "x1",
        "y1",
        "x2",
        "y2",
    }
    assert {r["class"] for r in rows} <= {
        "circle",
        "square",
        "triangle",
        "star",
        "cross",
        "ring",
    }
    assert len(list(out.glob("*_detections.png"))) == 5
    assert (
        main(
            [
                "export",
                "--checkpoint",
                ck,
                "--format",
                "torchscript",
                "--out",
                str(tmp_path / "m.pt"),
            ]
        )
        == 0
    )
    assert (tmp_path / "m.pt").stat().st_size > 1e6


def test_detect_skips_bad_files_and_exits_3(demo_run, capsys, tmp_path):
    tmp, _ = demo_run
    img = next((tmp / "data").rglob("test000000.jpg"))
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    status = main(
        [
            "detect",
            str(img),
            str(bad),
            str(tmp_path / "gone.png"),
            "--checkpoint",
            str(tmp / "run/last.pth"),
            "--out",
            str(tmp_path / "out"),
            "--pictures",
            "no",
        ]
    )
    cap = capsys.readouterr()
    assert (
        status == 3
    )  # issue 21: "some inputs skipped, outputs written" is not a usage error
    err = cap.err.strip().splitlines()
    assert any("bad.jpg" in l for l in err) and any("gone.png" in l for l in err)
    assert err[-1].startswith("ssdbook detect: 2 of 3 inputs could not be read")
    assert len(json.loads((tmp_path / "out/detections.json").read_text())) == 1


def test_class_lists_must_agree(demo_run, capsys, tmp_path):
    tmp, _ = demo_run
    ck = str(tmp / "run" / "last.pth")
    assert (
        main(
            [
                "eval",
                "--checkpoint",
                ck,
                "--classes",
                "circle,square",
                "--progress",
                "no",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert (
        "--classes lists classes circle, square but checkpoint" in err and "ring" in err
    )
    # a VOC-format folder whose classes.txt disagrees with the checkpoint
    root = tmp_path / "toy"
    (root / "VOC2007" / "ImageSets" / "Main").mkdir(parents=True)
    write_classes(root / "VOC2007" / "classes.txt", ["box", "ball"])
    assert (
        main(
            [
                "eval",
                "--checkpoint",
                ck,
                "--data",
                "voc",
                "--root",
                str(root),
                "--progress",
                "no",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert "box, ball" in err and "circle" in err and len(err.splitlines()) == 1


def test_make_shapes(tmp_path, capsys):
    assert (
        main(
            ["make-shapes", "--root", str(tmp_path), "--n-train", "3", "--n-test", "2"]
        )
        == 0
    )
    (folder,) = tmp_path.glob("shapes-v*-seed0-3+2-*")
    main_dir = folder / "VOCshapes" / "ImageSets" / "Main"
    assert len((main_dir / "train.txt").read_text().split()) == 3
    assert len((main_dir / "test.txt").read_text().split()) == 2
    assert str(folder) in capsys.readouterr().out


def _toy_voc(root, n=6):
    """A tiny VOC-format set of our own: classes box, ball; PNG and JPEG images of two
    sizes; train = test = all."""
    from PIL import Image, ImageDraw
    import torch
    from ssdbook.voc import write_voc_xml

    base = root / "VOC2007"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (base / sub).mkdir(parents=True)
    write_classes(base / "classes.txt", ["box", "ball"])
    for j in range(n):
        W, H = (320, 240) if j % 2 else (300, 300)
        img = Image.new("RGB", (W, H), (90 + 10 * j, 120, 140))
        d = ImageDraw.Draw(img)
        d.rectangle([20, 30, 120, 110], fill=(200, 60, 60))
        d.ellipse([150, 100, 230, 180], fill=(60, 60, 200))
        name = f"im{j}.{'png' if j % 2 else 'jpg'}"
        img.save(base / "JPEGImages" / name)
        write_voc_xml(
            base / "Annotations" / f"im{j}.xml",
            dict(
                id=f"im{j}",
                filename=name,
                width=W,
                height=H,
                boxes=torch.tensor([[20.0, 30, 120, 110], [150, 100, 230, 180]]),
                labels=torch.tensor([0, 1]),
                difficult=torch.zeros(2, dtype=torch.bool),
            ),
            ["box", "ball"],
            folder="VOC2007",
        )
    ids = "".join(f"im{j}\n" for j in range(n))
    (base / "ImageSets/Main/train.txt").write_text(ids)
    (base / "ImageSets/Main/test.txt").write_text(ids)
    return root


TINY = [
    "--base",
    "mini",
    "--pretrained",
    "",
    "--iterations",
    "2",
    "--batch-size",
    "2",
    "--warmup",
    "1",
    "--checkpoint-every",
    "2",
    "--progress",
    "no",
    "--num-workers",
    "0",
]


def test_own_voc_data_finetuned_with_new_classes(demo_run, tmp_path, capsys):
    tmp, _ = demo_run
    toy = _toy_voc(tmp_path / "toy")
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--data",
                "voc",
                "--root",
                str(toy),
                "--image-sets",
                "2007:train",
                *TINY,
                "--finetune",
                str(tmp / "run/last.pth"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "new class heads" in capsys.readouterr().out
    ck = load_checkpoint(out / "last.pth")
    assert ck["classes"] == ["box", "ball"] and ck["num_classes"] == 3
    assert (
        ck["model"]["conf.0.weight"].shape[0] == 4 * 3
    )  # 4 priors per location x 3 classes
    assert (
        main(
            [
                "eval",
                "--checkpoint",
                str(out / "last.pth"),
                "--image-set",
                "2007:test",
                "--progress",
                "no",
            ]
        )
        == 0
    )
    assert "box" in capsys.readouterr().out


def test_own_coco_data(tmp_path, capsys):
    from ssdbook.coco import voc_to_coco

    toy = _toy_voc(tmp_path / "toy")
    ann = voc_to_coco(toy, ("2007", "train"), tmp_path / "train.json")
    images = toy / "VOC2007" / "JPEGImages"
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--data",
                "coco",
                "--root",
                str(images),
                "--annotations",
                str(ann),
                *TINY,
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert load_checkpoint(out / "last.pth")["classes"] == ["box", "ball"]
    capsys.readouterr()
    for metric in ("voc07", "coco"):
        assert (
            main(
                [
                    "eval",
                    "--checkpoint",
                    str(out / "last.pth"),
                    "--data",
                    "coco",
                    "--root",
                    str(images),
                    "--annotations",
                    str(ann),
                    "--metric",
                    metric,
                    "--progress",
                    "no",
                ]
            )
            == 0
        )
        assert f"({metric})" in capsys.readouterr().out


def _shapes_coco(tmp_path):
    """A tiny shapes set (chapter 1c) read through its COCO JSON files: (images folder,
    train JSON, test JSON)."""
    from ssdbook.shapes import shapes_set

    voc = shapes_set(tmp_path / "data", n_train=4, n_test=2) / "VOCshapes"
    return (
        voc / "JPEGImages",
        voc / "annotations" / "instances_train.json",
        voc / "annotations" / "instances_test.json",
    )


def test_train_coco_records_coco(tmp_path, capsys):
    images, train_json, test_json = _shapes_coco(tmp_path)
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--data",
                "coco",
                "--root",
                str(images),
                "--annotations",
                str(train_json),
                *TINY,
                "--out",
                str(out),
            ]
        )
        == 0
    )
    ck = load_checkpoint(out / "last.pth")
    assert ck["config"]["data"] == "coco" and ck["config"]["image_sets"] == []
    assert ck["classes"] == ["circle", "square", "triangle", "star", "cross", "ring"]
    capsys.readouterr()
    # eval reads the recorded kind of data: a COCO run asks for its test JSON, then
    # evaluates without --data
    assert (
        main(["eval", "--checkpoint", str(out / "last.pth"), "--progress", "no"]) == 2
    )
    assert "--data coco needs --annotations" in capsys.readouterr().err
    assert (
        main(
            [
                "eval",
                "--checkpoint",
                str(out / "last.pth"),
                "--root",
                str(images),
                "--annotations",
                str(test_json),
                "--progress",
                "no",
            ]
        )
        == 0
    )
    assert "2 test images (coco)" in capsys.readouterr().out


def test_finetune_builds_the_configured_priors(demo_run, tmp_path, capsys):
    from ssdbook.priors import CONFIGS

    tmp, _ = demo_run
    images, train_json, _ = _shapes_coco(tmp_path)
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--data",
                "coco",
                "--root",
                str(images),
                "--annotations",
                str(train_json),
                *TINY,
                "--finetune",
                str(tmp / "run/last.pth"),
                "--priors",
                "voc",
                "--focal-gamma",
                "0",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "same classes, all weights kept" in capsys.readouterr().out
    ck = load_checkpoint(out / "last.pth")
    assert (
        load_checkpoint(tmp / "run/last.pth")["prior_cfg"] == CONFIGS["shapes"]
    )  # the source's priors (demo) ...
    assert ck["prior_cfg"] == CONFIGS["voc"]  # ... are not the run's
    assert ck["config"]["priors"] == "voc" and ck["config"]["focal_gamma"] == 0.0
