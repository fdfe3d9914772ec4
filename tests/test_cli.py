"""Chapter 11: the command line (`python -m ssdbook`, console script `ssdbook`). Tiny budgets only."""
import subprocess
import sys
from pathlib import Path

import pytest

from ssdbook.cli import build_parser, config_from_args, main
from ssdbook.train import TrainConfig, load_checkpoint, shapes_recipe, voc_recipe

ROOT = Path(__file__).resolve().parents[1]


def test_python_m_ssdbook_help():
    r = subprocess.run([sys.executable, "-m", "ssdbook", "--help"], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    for cmd in ("train", "eval", "detect", "make-shapes", "demo"):
        assert cmd in r.stdout


@pytest.mark.parametrize("cmd", ["train", "eval", "detect", "make-shapes", "demo"])
def test_subcommand_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "usage: ssdbook " + cmd in out
    if cmd == "train":   # every TrainConfig field is an option, with its default shown
        for name in TrainConfig.__dataclass_fields__:
            assert "--" + name.replace("_", "-") in out, name
        assert "shapes: mini; voc: vgg16" in out and "120000" in out


def test_train_options_override_the_recipe():
    p = build_parser()
    cfg = config_from_args(p.parse_args(["train", "--data", "voc", "--root", "/x", "--lr", "0.01", "--steps",
                                         "10,20", "--cache", "yes", "--image-sets", "2007:trainval"]))
    assert cfg == voc_recipe(root="/x", lr=0.01, steps=(10, 20), cache=True, image_sets=(("2007", "trainval"),))
    assert config_from_args(p.parse_args(["train"])) == shapes_recipe()
    with pytest.raises(SystemExit):
        p.parse_args(["train", "--optimizer", "adam"])


def test_bad_input_is_a_clear_error(tmp_path, capsys):
    assert main(["eval", "--checkpoint", str(tmp_path / "nope.pth")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    "`ssdbook demo --quick`: the whole main job on a tiny budget."
    tmp = tmp_path_factory.mktemp("demo")
    r = subprocess.run([sys.executable, "-m", "ssdbook", "demo", "--quick", "--root", str(tmp / "data"),
                        "--out", str(tmp / "run"), "--progress", "no"], capture_output=True, text=True,
                       cwd=tmp, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return tmp, r.stdout


def test_demo_end_to_end(demo_run):
    tmp, out = demo_run
    assert "mAP@0.5 (VOC07) =" in out
    for name in ("circle", "square", "triangle"):
        assert name in out                      # per-class APs are printed
    assert (tmp / "run" / "detections.png").stat().st_size > 1000
    assert (tmp / "run" / "loss.png").exists() and (tmp / "run" / "log.csv").exists()
    ck = load_checkpoint(tmp / "run" / "last.pth")
    assert ck["base"] == "mini" and ck["iteration"] == 3


def test_eval_and_detect_from_the_demo_checkpoint(demo_run, capsys):
    tmp, _ = demo_run
    ck = str(tmp / "run" / "last.pth")
    assert main(["eval", "--checkpoint", ck, "--root", str(tmp / "data"), "--progress", "no"]) == 0
    assert "mAP" in capsys.readouterr().out
    img = next((tmp / "data" / "VOCshapes" / "JPEGImages").glob("test*.jpg"))
    assert main(["detect", str(img), "--checkpoint", ck, "--out", str(tmp / "det"), "--score-thresh", "0.0"]) == 0
    assert (tmp / "det" / f"{img.stem}_detections.png").exists()
    assert "detections ->" in capsys.readouterr().out


def test_make_shapes(tmp_path, capsys):
    assert main(["make-shapes", "--root", str(tmp_path), "--n-train", "3", "--n-test", "2"]) == 0
    main_dir = tmp_path / "VOCshapes" / "ImageSets" / "Main"
    assert len((main_dir / "train.txt").read_text().split()) == 3
    assert len((main_dir / "test.txt").read_text().split()) == 2
