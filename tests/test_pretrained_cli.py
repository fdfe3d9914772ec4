"""Issue 21.6: `ssdbook train --base vgg16 --pretrained coco` starts from torchvision's
COCO-trained SSD300 (chapter 3a), offline with `--pretrained-weights PATH`; the run
records `priors='coco_torchvision'` (chapter 2), so resume, eval, detect and export
rebuild the network's own priors. No download: torchvision's network with random
weights stands in for the COCO-trained one."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ssdbook.checkpoint import build_model, load_checkpoint, load_model
from ssdbook.config import TrainConfig, shapes_recipe
from ssdbook.pretrained import pretrained_ssd300, torchvision_priors
from ssdbook.priors import CONFIGS, PriorBox
from ssdbook.shapes import make_shapes_voc

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tv_weights(tmp_path_factory):
    from torchvision.models.detection import ssd300_vgg16

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tv") / "ssd300_vgg16.pth"
    torch.save(ssd300_vgg16(weights=None, weights_backbone=None).state_dict(), path)
    return path


def test_the_torchvision_priors_are_a_named_config():
    assert CONFIGS["coco_torchvision"] == torchvision_priors()
    assert PriorBox(CONFIGS["coco_torchvision"]).forward().shape == (8732, 4)


def test_build_model_loads_the_whole_detector(tv_weights):
    torch.manual_seed(1)
    net = build_model("vgg16", 4, "train", "coco", "coco_torchvision", 0.0, tv_weights)
    torch.manual_seed(1)
    ref = pretrained_ssd300(4, tv_weights)
    a, b = net.state_dict(), ref.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert net.cfg["name"] == "coco_torchvision"


def test_a_download_that_fails_is_one_line(monkeypatch):
    from torchvision.models.detection import SSD300_VGG16_Weights

    def offline(self, *a, **k):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(SSD300_VGG16_Weights, "get_state_dict", offline)
    with pytest.raises(ValueError) as e:
        build_model("vgg16", 4, "train", "coco", "coco_torchvision")
    msg = str(e.value)
    assert "\n" not in msg and "--pretrained-weights" in msg and "download" in msg


@pytest.mark.parametrize(
    "kw, words",
    [
        (dict(base="mini", pretrained="coco", priors="coco_torchvision"), "vgg16"),
        (dict(base="vgg16", pretrained="coco", priors="voc"), "coco_torchvision"),
        (dict(base="vgg16", pretrained_weights="x.pth"), "pretrained='coco'"),
        (
            dict(
                base="vgg16",
                pretrained="coco",
                priors="coco_torchvision",
                pretrained_weights="no/such.pth",
            ),
            "no such file",
        ),
    ],
)
def test_bad_combinations_name_the_field(kw, words):
    with pytest.raises(ValueError) as e:
        shapes_recipe(**kw)
    assert words in str(e.value) and "TrainConfig.pretrained" in str(e.value)


def _cli(*argv, cwd):
    return subprocess.run(
        [sys.executable, "-m", "ssdbook", *map(str, argv)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_train_resume_eval_from_torchvision_weights(tv_weights, tmp_path):
    """The command a Colab user runs, offline: train 1 iteration, resume to 2, evaluate;
    the checkpoint carries torchvision's priors; --base mini is a one-line error."""
    root = tmp_path / "shapes"
    make_shapes_voc(root, n_train=4, n_test=2, seed=0)
    common = ["--data", "shapes", "--root", root, "--n-train", 4, "--n-test", 2]
    common += ["--batch-size", 1, "--warmup", 0, "--progress", "no"]
    common += ["--num-workers", 0, "--checkpoint-every", 1]
    run = tmp_path / "run"
    argv = ["train", *common, "--base", "vgg16", "--pretrained", "coco"]
    argv += ["--pretrained-weights", tv_weights, "--out", run]
    r = _cli(*argv, "--iterations", 1, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    ck = load_checkpoint(run / "last.pth")
    assert ck["prior_cfg"]["name"] == "coco_torchvision"
    assert ck["config"]["priors"] == "coco_torchvision"
    r = _cli(*argv, "--iterations", 2, "--resume", "auto", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert load_checkpoint(run / "last.pth")["iteration"] == 2
    net, _ = load_model(run / "last.pth")
    assert torch.equal(
        net.priors, PriorBox(CONFIGS["coco_torchvision"]).forward().to(net.priors)
    )
    r = _cli(
        "train", *common, "--pretrained", "coco", "--out", tmp_path / "r2", cwd=tmp_path
    )
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "vgg16" in r.stderr
