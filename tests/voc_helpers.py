"""Shared by tests/test_data.py, test_voc.py and test_dataset.py: a small shapes set and
hand-made VOC folders."""

import re
import shutil

import pytest
import torch

from ssdbook.data import SHAPES_CLASSES, write_classes
from ssdbook.dataset import VOCDetection
from ssdbook.shapes import make_shapes_voc
from ssdbook.voc import write_voc_xml

N_TRAIN, N_TEST = 60, 10


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    make_shapes_voc(root, n_train=N_TRAIN, n_test=N_TEST, seed=0)
    return root


@pytest.fixture(scope="module")
def train_set(shapes_root):
    return VOCDetection(shapes_root, [("shapes", "train")], classes=SHAPES_CLASSES)


def obj_xml(name, box, difficult=0):
    coords = "".join(
        f"<{k}>{v}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box)
    )
    return (
        f"<object><name>{name}</name><difficult>{difficult}</difficult>"
        f"<bndbox>{coords}</bndbox></object>"
    )


def anno_xml(*objects, width=300, height=300):
    return (
        f"<annotation><size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
        f"{''.join(objects)}</annotation>"
    )


def small_copy(shapes_root, tmp_path, n=4):
    "A private copy of the first n training images of the shapes set, to break."
    src, dst = shapes_root / "VOCshapes", tmp_path / "VOCshapes"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (dst / sub).mkdir(parents=True)
    ids = [f"train{j:06d}" for j in range(n)]
    for i in ids:
        shutil.copy(src / "JPEGImages" / f"{i}.jpg", dst / "JPEGImages")
        shutil.copy(src / "Annotations" / f"{i}.xml", dst / "Annotations")
    (dst / "ImageSets/Main/train.txt").write_text("\n".join(ids) + "\n")
    return tmp_path, dst, ids


def toy_set(
    tmp_path, classes=("box", "ball"), write_list=True, ext=".jpg", filename=True
):
    base = tmp_path / "VOCtoy"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    if write_list:
        write_classes(base / "classes.txt", classes)
    from PIL import Image

    Image.new("RGB", (64, 48), (200, 10, 10)).save(base / "JPEGImages" / f"a{ext}")
    anno = dict(
        id="a",
        filename=f"a{ext}" if filename else None,
        width=64,
        height=48,
        boxes=torch.tensor([[4.0, 4.0, 30.0, 40.0]]),
        labels=torch.tensor([1]),
    )
    write_voc_xml(base / "Annotations" / "a.xml", anno, classes)
    if not filename:
        xml = (base / "Annotations" / "a.xml").read_text()
        (base / "Annotations" / "a.xml").write_text(
            re.sub(r"\s*<filename>.*</filename>", "", xml)
        )
    (base / "ImageSets/Main/train.txt").write_text("a\n")
    return base
