"""Tests of ssdbook.shapes (chapter 1c): the walkthrough batch and the shapes set on
disk."""

import os

import torch

from ssdbook.data import SHAPES_CLASSES
from ssdbook.shapes import walkthrough_batch


def test_walkthrough_batch_contract():
    images, targets = walkthrough_batch()
    assert images.shape == (15, 3, 300, 300) and images.dtype == torch.float32
    assert 0 <= images.min() and images.max() <= 1
    assert len(targets) == 15 and all(
        t.dtype == torch.float32 and t.dim() == 2 and t.shape[1] == 5 for t in targets
    )
    assert any(len(t) == 0 for t in targets)
    boxes = torch.cat(targets)
    assert (
        (boxes[:, :2] >= 0) & (boxes[:, 2:4] <= 1) & (boxes[:, 2:4] > boxes[:, :2])
    ).all()
    labels = boxes[:, 4]
    assert (
        torch.equal(labels, labels.round())
        and labels.min() >= 0
        and labels.max() < len(SHAPES_CLASSES)
    )
    scale = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sqrt() * 300
    assert (scale < 30).sum() >= 2 and (
        scale > 150
    ).sum() >= 2  # small and large objects


def test_walkthrough_batch_is_deterministic():
    a, ta = walkthrough_batch()
    b, tb = walkthrough_batch()
    assert torch.equal(a, b) and all(torch.equal(x, y) for x, y in zip(ta, tb))
    c, _ = walkthrough_batch(n=3, seed=1)
    assert c.shape == (3, 3, 300, 300) and not torch.equal(c, a[:3])
    assert torch.equal(walkthrough_batch(n=4)[0], a[:4])


# ---------------------------------------------------------------- the shapes set on
# disk
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ssdbook.data import read_classes
from ssdbook.dataset import VOCDetection
from ssdbook.voc import check_dataset
from ssdbook.shapes import SHAPES_VERSION, make_shapes_voc, shapes_set

N_TRAIN, N_TEST = 40, 10


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    make_shapes_voc(root, n_train=N_TRAIN, n_test=N_TEST, seed=0)
    return root


def _files(d):
    return {
        p.relative_to(d): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()
    }


def test_generator_is_deterministic(tmp_path):
    a = _files(make_shapes_voc(tmp_path / "a", n_train=12, n_test=4, seed=7))
    b = _files(make_shapes_voc(tmp_path / "b", n_train=12, n_test=4, seed=7))
    assert (
        a == b and len(a) == 2 * 16 + 3 + 1 + 1 + 2
    )  # jpg+xml, 3 image sets, stamp, classes, 2 COCO
    c = _files(make_shapes_voc(tmp_path / "c", n_train=12, n_test=4, seed=8))
    assert sum(a[k] != c[k] for k in a if k.suffix == ".jpg") == 16
    # image j depends only on (seed, split, j): a larger set starts with the same images
    d = _files(make_shapes_voc(tmp_path / "d", n_train=5, n_test=2, seed=7))
    assert all(
        d[k] == a[k] for k in d if k.parent.name in ("JPEGImages", "Annotations")
    )


def test_walkthrough_batch_is_the_first_training_images(shapes_root):
    images, targets = walkthrough_batch()
    ds = VOCDetection(shapes_root, [("shapes", "train")])
    for j in range(15):
        image, target = ds[j]
        assert torch.allclose(target, targets[j], atol=1e-6)
        assert (
            image - images[j]
        ).abs().mean() < 10 / 255  # JPEG (quality 92) changes a few levels


def test_set_carries_classes_and_stamp(shapes_root):
    out = shapes_root / "VOCshapes"
    assert read_classes(out / "classes.txt") == SHAPES_CLASSES
    stamp = json.loads((out / "shapes.json").read_text())
    assert (
        stamp["version"] == SHAPES_VERSION
        and stamp["n_train"] == N_TRAIN
        and stamp["seed"] == 0
    )
    assert (
        VOCDetection(shapes_root, [("shapes", "train")]).classes == SHAPES_CLASSES
    )  # read from classes.txt
    coco = json.loads((out / "annotations" / "instances_test.json").read_text())
    assert len(coco["images"]) == N_TEST and [
        c["name"] for c in coco["categories"]
    ] == list(SHAPES_CLASSES)


def test_make_shapes_voc_reuses_and_never_clobbers(tmp_path):
    out = make_shapes_voc(tmp_path, n_train=3, n_test=1)
    jpg = out / "JPEGImages" / "train000000.jpg"
    mtime = jpg.stat().st_mtime_ns
    assert (
        make_shapes_voc(tmp_path, n_train=3, n_test=1) == out
        and jpg.stat().st_mtime_ns == mtime
    )
    with pytest.raises(
        ValueError,
        match=r"holds another shapes set "
        r"\(version \d+, seed 0, 3 train \+ 1 test.*overwrite=True",
    ):
        make_shapes_voc(tmp_path, n_train=2, n_test=1)
    assert jpg.stat().st_mtime_ns == mtime  # left alone
    make_shapes_voc(tmp_path, n_train=2, n_test=1, overwrite=True)
    assert sorted(p.name for p in (out / "JPEGImages").iterdir()) == [
        "test000000.jpg",
        "train000000.jpg",
        "train000001.jpg",
    ]
    assert not [
        p for p in tmp_path.iterdir() if p.name.startswith(".")
    ]  # no temporary or old folders left
    user = tmp_path / "user"
    (user / "VOCshapes").mkdir(parents=True)
    (user / "VOCshapes" / "mine.txt").write_text("precious")
    for overwrite in (False, True):
        with pytest.raises(
            ValueError, match="was not made by make_shapes_voc; it is left alone"
        ):
            make_shapes_voc(user, n_train=2, n_test=1, overwrite=overwrite)
    assert (user / "VOCshapes" / "mine.txt").read_text() == "precious"


def test_generator_arguments_checked(tmp_path):
    with pytest.raises(ValueError, match="n_train"):
        make_shapes_voc(tmp_path, n_train=-1)
    with pytest.raises(ValueError, match="min_size"):
        shapes_set(tmp_path, min_size=5)
    assert not any(tmp_path.iterdir())


def test_shapes_set_one_folder_per_seed(tmp_path):
    a = shapes_set(tmp_path, n_train=4, n_test=2, seed=0)
    b = shapes_set(tmp_path, n_train=4, n_test=2, seed=1)
    assert (
        a.name == f"shapes-v{SHAPES_VERSION}-seed0-4+2-300px"
        and b.name == f"shapes-v{SHAPES_VERSION}-seed1-4+2-300px"
    )
    assert shapes_set(tmp_path, n_train=4, n_test=2, seed=0) == a
    assert (
        len(VOCDetection(a, [("shapes", "train")])) == 4
        and check_dataset(b, [("shapes", "test")]) == []
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([a.name, b.name])
    (tmp_path / f"shapes-v{SHAPES_VERSION}-seed5-4+2-300px" / "half").mkdir(
        parents=True
    )
    with pytest.raises(
        ValueError, match="exists but is not a complete shapes set.*left alone"
    ):
        shapes_set(tmp_path, n_train=4, n_test=2, seed=5)


def test_stale_temporary_folders_are_cleaned(tmp_path):
    import socket

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
    )
    pid = int(dead.stdout)
    dest = f"shapes-v{SHAPES_VERSION}-seed0-2+1-300px"
    stale = tmp_path / f".{dest}.tmp-{socket.gethostname()}-{pid}-deadbeef"
    (stale / "VOCshapes").mkdir(parents=True)
    old = tmp_path / f".{dest}.old-{socket.gethostname()}-{pid}-deadbeef"
    old.mkdir()
    alive = tmp_path / f".{dest}.tmp-{socket.gethostname()}-{os.getpid()}-0000cafe"
    alive.mkdir()
    other_host = tmp_path / f".{dest}.tmp-some-other-host-{pid}-0000beef"
    other_host.mkdir()
    shapes_set(tmp_path, n_train=2, n_test=1, seed=0)
    assert (
        not stale.exists()
        and not old.exists()
        and alive.exists()
        and other_host.exists()
    )


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    import ssdbook.shapes as shapes

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shapes, "write_coco_json", boom)
    with pytest.raises(OSError, match="No space left"):
        shapes_set(tmp_path, n_train=2, n_test=1, seed=0)
    assert list(tmp_path.iterdir()) == []


_GENERATE = """
import sys, time
from ssdbook.shapes import shapes_set
from ssdbook.dataset import VOCDetection
root, seed = sys.argv[1], int(sys.argv[2])
p = shapes_set(root, n_train=30, n_test=5, seed=seed)
ds = VOCDetection(p, [("shapes", "train"), ("shapes", "test")])
for i in range(len(ds)):
    ds[i]
print(p)
"""


@pytest.mark.parametrize("seeds", [(0, 1), (2, 2)])
def test_concurrent_generation_in_two_processes(tmp_path, seeds):
    """Two processes generate at the same time: different seeds both finish; the same
    seed ends with one intact folder that both use; no temporary folder is left behind.
    """
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _GENERATE, str(tmp_path), str(s)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for s in seeds
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in outs]
    paths = [Path(o.strip()) for o, _ in outs]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({p.name for p in paths})
    for p in set(paths):
        assert check_dataset(p, [("shapes", "train"), ("shapes", "test")]) == []
    if seeds[0] == seeds[1]:
        assert paths[0] == paths[1]


def test_objects_whose_boxes_touch_differ_in_colour(monkeypatch):
    """Version 4's contrast rule: no object is drawn over a touching one of nearly the
    same colour (it would hide)."""
    import numpy as np
    import ssdbook.shapes as S

    drawn = []
    monkeypatch.setattr(
        S, "_draw_shape", lambda draw, kind, box, colour: drawn.append((box, colour))
    )
    pairs = 0
    for j in range(200):
        drawn.clear()
        S._make_shapes_image(np.random.default_rng([0, 1, j]), 300, 15, 0.9)
        for k, (box, colour) in enumerate(drawn):
            for other, c in drawn[:k]:
                if S._boxes_touch(box, other):
                    pairs += 1
                    assert np.linalg.norm(np.subtract(colour, c)) >= S.MIN_CONTRAST, (
                        j,
                        k,
                    )
    assert pairs > 50  # the rule was exercised


def test_contrast_rule_keeps_boxes_labels_and_other_pixels():
    """The rule makes no random draws: with it off (version 3) the boxes are the same
    and only re-coloured objects differ."""
    import numpy as np
    import ssdbook.shapes as S

    new, objects = S._make_shapes_image(
        np.random.default_rng([0, 1, 287]), 300, 15, 0.9
    )
    saved, S.MIN_CONTRAST = S.MIN_CONTRAST, 0
    try:
        old, old_objects = S._make_shapes_image(
            np.random.default_rng([0, 1, 287]), 300, 15, 0.9
        )
    finally:
        S.MIN_CONTRAST = saved
    assert objects == old_objects
    changed = np.abs(new.astype(int) - old.astype(int)).sum(-1) > 0
    inside = np.zeros_like(changed)
    for k in (2, 3):
        x0, y0, x1, y1 = objects[k][0]
        inside[y0 : y1 + 1, x0 : x1 + 1] = True
    assert changed.any() and not (changed & ~inside).any()
