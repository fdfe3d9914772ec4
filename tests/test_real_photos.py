"""The real-photo set of tests/real_photos.py (issue 21's end-to-end data) reads cleanly
through every reader: phone photos upright, the 16-bit PNG scaled, VOC and COCO
(category ids 11, 3, 7) giving the same targets."""

import pytest
import torch

pytest.importorskip("skimage")
from real_photos import CLASSES, build, new_photos  # noqa: E402

from ssdbook.coco import COCODetection, check_coco  # noqa: E402
from ssdbook.dataset import VOCDetection  # noqa: E402
from ssdbook.voc import check_dataset, read_image  # noqa: E402


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    return build(tmp_path_factory.mktemp("real"), n_train=14, n_test=6, seed=0)


def test_the_set_is_clean_in_both_formats(real):
    assert check_dataset(real, [("2007", "train"), ("2007", "test")]) == []
    base = real / "VOC2007"
    for split in ("train", "test"):
        assert (
            check_coco(
                base / "annotations" / f"instances_{split}.json", base / "JPEGImages"
            )
            == []
        )
        voc = VOCDetection(real, [("2007", split)]).require_objects()
        coco = COCODetection(
            base / "JPEGImages", base / "annotations" / f"instances_{split}.json"
        ).require_objects()
        assert (
            voc.classes == coco.classes == CLASSES
        )  # COCO: id order 3, 7, 11, not 11, 3, 7
        for i in range(len(voc)):
            (a, ta), (b, tb) = voc[i], coco[i]
            assert (
                torch.equal(a, b)
                and torch.allclose(ta[:, 4], tb[:, 4])
                and torch.allclose(ta, tb, atol=0.01)
            )


def test_every_file_style_is_there_and_read_right(real):
    files = {p.name: p for p in (real / "VOC2007/JPEGImages").iterdir()}
    suffixes = {p.suffix for p in files.values()}
    assert {".jpg", ".png", ".JPG"} <= suffixes
    from PIL import Image

    modes, turned = set(), []
    for name, p in files.items():
        with Image.open(p) as im:
            modes.add(im.mode)
            if im.getexif().get(0x0112, 1) != 1:
                turned.append((p, im.size))
    assert {"RGB", "L", "RGBA", "I;16"} <= modes and len(turned) >= 2
    for p, (w, h) in turned:  # stored sideways, read upright
        assert read_image(p).shape == (3, w, h)
    deep = read_image(files["train_004.png"])
    assert 0.1 < deep.mean() < 0.9 and deep.std() > 0.05  # not all white, not all black
    assert len(list(new_photos(real / "new").iterdir())) == 4
