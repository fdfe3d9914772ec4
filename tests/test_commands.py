"""Issue 21, the command-line half: nothing a user owns is overwritten, commands that
read data never write into it, one behaviour for skipped inputs, a quick `--help`,
`ssdbook check`, `ssdbook explore` without gradio."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from ssdbook.cli import main
from ssdbook.data import SHAPES_CLASSES
from ssdbook.voc import make_toy_voc

from test_inference import make_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def run(argv, capsys):
    try:
        status = main([str(a) for a in argv])
    except SystemExit as e:
        status = e.code
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def ck(tmp_path_factory):
    return make_checkpoint(
        tmp_path_factory.mktemp("ck") / "ck.pth"
    )  # the shapes classes


# ---------------------------------------------------------------- item 18: a quick
# --help, exit codes, check
def test_help_does_not_import_torch():
    code = (
        "import sys\nfrom ssdbook.cli import main\ntry:\n    main(['--help'])\nexcept "
        "SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if "
        "m.startswith(('torch', 'ssdbook')))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT
    )
    assert r.returncode == 0, r.stderr
    for name in (
        "train",
        "eval",
        "detect",
        "export",
        "check",
        "make-shapes",
        "demo",
        "explore",
    ):
        assert name in r.stdout
    text = " ".join(r.stdout.split())
    assert "exit status" in text and "3 `detect` skipped some" in text


def test_help_is_quick():
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "ssdbook", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert (
        r.returncode == 0 and time.perf_counter() - t0 < 2.0 * 3
    )  # < 2 s alone; slack for a busy machine


def test_check_command(tmp_path, capsys):
    root = make_toy_voc(tmp_path / "toy").parent  # VOCtoy, split 'train'
    status, out, err = run(["check", "--root", root], capsys)
    assert status == 0 and "no problems found" in out and "toy:train" in out, (out, err)
    xml = next((root / "VOCtoy" / "Annotations").glob("*.xml"))
    xml.write_text(
        xml.read_text().replace("<xmax>", "<xmax>9", 1)
    )  # a box far outside its image
    (root / "VOCtoy" / "JPEGImages" / f"{xml.stem}.jpg").unlink(missing_ok=True)
    for p in (root / "VOCtoy" / "JPEGImages").glob(f"{xml.stem}.*"):
        p.unlink()
    status, out, err = run(["check", "--root", root], capsys)
    lines = out.strip().splitlines()
    assert (
        status == 1
        and len(lines) >= 2
        and xml.stem in out
        and lines[-1].endswith("found")
    ), (out, err)
    status, out, err = run(["check", "--root", tmp_path / "nothing"], capsys)
    assert (
        status == 2 and len(err.strip().splitlines()) == 1 and "no split files" in err
    )
    status, out, err = run(["check", "--root", root, "--data", "coco"], capsys)
    assert status == 2 and "--annotations" in err


def test_check_coco(tmp_path, capsys):
    from ssdbook.shapes import make_shapes_voc

    voc = make_shapes_voc(tmp_path, n_train=3, n_test=1)
    status, out, err = run(
        [
            "check",
            "--data",
            "coco",
            "--root",
            voc / "JPEGImages",
            "--annotations",
            voc / "annotations" / "instances_train.json",
        ],
        capsys,
    )
    assert status == 0 and "no problems found" in out, (out, err)


def test_explore_without_gradio_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` fails
    monkeypatch.delitem(sys.modules, "ssdbook.explore", raising=False)
    status, out, err = run(["explore"], capsys)
    assert (
        status == 2
        and err.strip()
        == "ssdbook explore needs the app extra: pip install 'ssdbook[app]'"
    ), err


def test_explore_passes_its_options_to_launch(monkeypatch, capsys):
    import types

    seen = {}
    fake = types.ModuleType("ssdbook.explore")
    fake.launch = lambda **kw: seen.update(kw)
    monkeypatch.setitem(sys.modules, "ssdbook.explore", fake)
    assert run(["explore", "--checkpoint", "x.pth", "--port", "8000"], capsys)[0] == 0
    assert seen == dict(checkpoint="x.pth", host="127.0.0.1", port=8000)


# ---------------------------------------------------------------- items 3 and 17:
# detect
def test_detect_long_names_bad_inputs_exit_3_and_results_for_all(ck, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    long_name = "x" * 246 + ".png"  # 250 characters: + '_detections.png' > 255
    Image.new("RGB", (80, 60), "gray").save(photos / long_name)
    Image.new("RGB", (64, 48), "white").save(photos / "b.jpg")
    (photos / "broken.jpg").write_text("not a picture")
    status, out, err = run(
        ["detect", photos, "--checkpoint", ck, "--out", tmp_path / "det"], capsys
    )
    assert status == 3, err
    assert "broken.jpg" in err and err.strip().splitlines()[-1].startswith(
        "ssdbook detect: 1 of 3 inputs"
    ), err
    records = json.loads((tmp_path / "det" / "detections.json").read_text())
    assert sorted(Path(r["image"]).name for r in records) == sorted(
        ["b.jpg", long_name]
    )
    pictures = sorted(p.name for p in (tmp_path / "det").glob("*.png"))
    assert len(pictures) == 2 and all(len(p.encode()) <= 255 for p in pictures)
    assert {r["picture"] for r in records} == set(pictures)


def test_detect_folder_is_locked_and_replaced_whole(ck, tmp_path, capsys):
    from ssdbook.runfolder import RunLock

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a", "b", "c"):
        Image.new("RGB", (64, 48), "gray").save(photos / f"{name}.jpg")
    out = tmp_path / "det"
    assert run(["detect", photos, "--checkpoint", ck, "--out", out], capsys)[0] == 0
    with RunLock(out):  # another detect is writing there
        status, _, err = run(
            ["detect", photos / "a.jpg", "--checkpoint", ck, "--out", out], capsys
        )
    assert (
        status == 2
        and "in use by another run" in err
        and len(err.strip().splitlines()) == 1
    )
    assert (
        run(["detect", photos / "a.jpg", "--checkpoint", ck, "--out", out], capsys)[0]
        == 0
    )
    assert [
        Path(r["image"]).name for r in json.loads((out / "detections.json").read_text())
    ] == ["a.jpg"]
    assert sorted(p.name for p in out.glob("*.png")) == [
        "a_detections.png"
    ]  # b's and c's went with their JSON


# ---------------------------------------------------------------- item 5: data roots
# are read, never written
def test_eval_reads_a_shapes_root_and_never_writes_into_it(ck, tmp_path, capsys):
    status, out, _ = run(
        ["make-shapes", "--root", tmp_path / "data", "--n-train", "4", "--n-test", "3"],
        capsys,
    )
    root = Path(out.split("--root ")[-1].strip())  # the hint names the data root itself
    assert status == 0 and (root / "VOCshapes" / "shapes.json").is_file()
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    status, out, err = run(
        [
            "eval",
            "--checkpoint",
            ck,
            "--root",
            root,
            "--progress",
            "no",
            "--out",
            tmp_path / "ev",
        ],
        capsys,
    )
    assert status == 0, err
    assert (
        "3 test images" in out
        and sorted(p.relative_to(root) for p in root.rglob("*")) == before
    )
    res = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert res["images"] == 3 and "map" in res


def test_eval_class_mismatch_is_reported_before_any_generation(tmp_path, capsys):
    other = make_checkpoint(tmp_path / "other.pth", classes=["box", "ball"])
    status, _, err = run(
        [
            "eval",
            "--checkpoint",
            other,
            "--data",
            "shapes",
            "--root",
            tmp_path / "data",
        ],
        capsys,
    )
    assert status == 2 and "box, ball" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "data").exists()  # nothing generated


def test_train_on_the_root_make_shapes_names(tmp_path, capsys):
    status, out, _ = run(
        ["make-shapes", "--root", tmp_path / "data", "--n-train", "6", "--n-test", "2"],
        capsys,
    )
    root = Path(out.split("--root ")[-1].strip())
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    status, out, err = run(
        [
            "train",
            "--data",
            "shapes",
            "--root",
            root,
            "--out",
            tmp_path / "run",
            "--iterations",
            "1",
            "--batch-size",
            "2",
            "--progress",
            "no",
            "--num-workers",
            "0",
        ],
        capsys,
    )
    assert status == 0, err
    new = {p.relative_to(tmp_path) for p in tmp_path.rglob("*")} - set(before)
    assert all(p.parts[0] == "run" for p in new), sorted(
        new
    )  # no new shapes set anywhere
    from ssdbook.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "run" / "last.pth")["config"]["root"] == str(root)


# ---------------------------------------------------------------- items 2, 11, 12, 17:
# train's command line
def test_train_into_a_finished_run_then_overwrite(tmp_path, capsys):
    toy = make_toy_voc(tmp_path / "toy").parent
    argv = [
        "train",
        "--data",
        "voc",
        "--recipe",
        "small",
        "--root",
        toy,
        "--image-sets",
        "toy:train",
        "--iterations",
        "2",
        "--batch-size",
        "2",
        "--out",
        tmp_path / "run",
        "--progress",
        "no",
        "--num-workers",
        "0",
    ]
    assert run(argv, capsys)[0] == 0
    status, _, err = run(argv, capsys)
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert (
        "--resume auto" in err
        and "--overwrite" in err
        and "already holds a training run" in err
    )
    status, _, err = run(argv + ["--overwrite"], capsys)
    assert status == 0, err


def test_small_recipe_fits_its_warmup_and_warns_when_it_does_not(tmp_path, capsys):
    toy = make_toy_voc(tmp_path / "toy").parent
    argv = [
        "train",
        "--data",
        "voc",
        "--root",
        toy,
        "--image-sets",
        "toy:train",
        "--base",
        "mini",
        "--pretrained",
        "",
        "--iterations",
        "2",
        "--batch-size",
        "2",
        "--progress",
        "no",
        "--num-workers",
        "0",
    ]
    status, _, err = run(
        argv + ["--out", tmp_path / "voc"], capsys
    )  # the VOC recipe: warm-up 500
    assert (
        status == 0 and "ssdbook train: warning: warmup=500 >= iterations=2" in err
    ), err
    assert len([l for l in err.splitlines() if "warning" in l]) == 1
    status, _, err = run(
        argv + ["--recipe", "small", "--out", tmp_path / "small"], capsys
    )
    assert status == 0 and "warning" not in err, err
    from ssdbook.checkpoint import load_checkpoint

    cfg = load_checkpoint(tmp_path / "small" / "last.pth")["config"]
    assert cfg["warmup"] == 1 and cfg["base"] == "mini" and cfg["optimizer"] == "adamw"


def test_own_data_without_classes_txt_is_an_error(tmp_path, capsys):
    toy = make_toy_voc(tmp_path / "toy").parent
    (toy / "VOCtoy" / "classes.txt").unlink()
    argv = [
        "train",
        "--data",
        "voc",
        "--recipe",
        "small",
        "--root",
        toy,
        "--image-sets",
        "toy:train",
        "--out",
        tmp_path / "run",
    ]
    status, _, err = run(argv, capsys)
    assert status == 2 and len(err.strip().splitlines()) == 1, err
    assert "no class names" in err and "classes.txt" in err and "--classes" in err
    assert not (tmp_path / "run").exists()


def test_classes_txt_in_utf16_names_the_file(tmp_path, capsys):
    toy = make_toy_voc(tmp_path / "toy").parent
    (toy / "VOCtoy" / "classes.txt").write_text("box\nball\n", encoding="utf-16")
    status, _, err = run(
        [
            "train",
            "--data",
            "voc",
            "--recipe",
            "small",
            "--root",
            toy,
            "--image-sets",
            "toy:train",
            "--out",
            tmp_path / "run",
        ],
        capsys,
    )
    assert (
        status == 2
        and len(err.strip().splitlines()) == 1
        and "classes.txt" in err
        and "UTF-8" in err
    ), err


def test_batch_size_larger_than_the_data_is_refused(tmp_path, capsys):
    toy = make_toy_voc(tmp_path / "toy").parent
    status, _, err = run(
        [
            "train",
            "--data",
            "voc",
            "--recipe",
            "small",
            "--root",
            toy,
            "--image-sets",
            "toy:train",
            "--batch-size",
            "100000",
            "--out",
            tmp_path / "run",
            "--progress",
            "no",
        ],
        capsys,
    )
    assert (
        status == 2
        and "--batch-size 100000 is larger than the 6 training images" in err
    ), err
