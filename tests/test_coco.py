"""Tests of ssdbook.coco (chapter 1d): COCO-format data with the (image, target) contract of chapter 1."""
import json

import pytest
import torch
from PIL import Image

from ssdbook.coco import COCODetection, voc_to_coco
from ssdbook.data import SHAPES_CLASSES, check_targets
from ssdbook.dataset import VOCDetection
from ssdbook.shapes import shapes_set


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return shapes_set(tmp_path_factory.mktemp("cache"), n_train=20, n_test=6, seed=0)


TOY = {"images": [{"id": 10, "file_name": "a.jpg", "width": 200, "height": 100},
                  {"id": 11, "file_name": "b.png", "width": 120, "height": 160},
                  {"id": 12, "file_name": "c.jpg", "width": 64, "height": 64}],
       "categories": [{"id": 7, "name": "ball"}, {"id": 3, "name": "box"}],
       "annotations": [{"id": 1, "image_id": 10, "category_id": 3, "bbox": [20, 10, 50, 40], "iscrowd": 0},
                       {"id": 2, "image_id": 10, "category_id": 7, "bbox": [100, 0, 100, 100], "iscrowd": 1},
                       {"id": 3, "image_id": 11, "category_id": 7, "bbox": [30, 40, 60, 60]}]}


@pytest.fixture
def toy(tmp_path):
    for name, size in (("a.jpg", (200, 100)), ("b.png", (120, 160)), ("c.jpg", (64, 64))):
        Image.new("RGB", size).save(tmp_path / name)
    (tmp_path / "toy.json").write_text(json.dumps(TOY))
    return tmp_path


def _write(tmp_path, change):
    d = json.loads(json.dumps(TOY))
    change(d)
    (tmp_path / "bad.json").write_text(json.dumps(d))
    return tmp_path / "bad.json"


def test_same_targets_as_voc(shapes):
    root = shapes / "VOCshapes"
    for split in ("train", "test"):
        coco = COCODetection(root / "JPEGImages", root / "annotations" / f"instances_{split}.json")
        voc = VOCDetection(shapes, [("shapes", split)])
        assert len(coco) == len(voc) and coco.classes == voc.classes == SHAPES_CLASSES
        for i in range(len(coco)):
            (a, ta), (b, tb) = coco[i], voc[i]
            assert torch.equal(a, b) and torch.allclose(ta, tb, atol=1e-6)
            pa, pb = coco.pull_anno(i), voc.pull_anno(i)
            assert pa["id"] == pb["id"] and torch.allclose(pa["boxes"], pb["boxes"])
            assert torch.equal(pa["labels"], pb["labels"]) and torch.equal(pa["difficult"], pb["difficult"])
        check_targets([coco[i][1] for i in range(len(coco))], num_classes=len(SHAPES_CLASSES) + 1)


def test_voc_to_coco_matches_the_shapes_json_and_loads_in_pycocotools(shapes, tmp_path):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    out = voc_to_coco(shapes, ("shapes", "test"), tmp_path / "test.json")
    assert json.loads(out.read_text()) == json.loads((shapes / "VOCshapes/annotations/instances_test.json").read_text())
    api = COCO(str(out))
    assert len(api.getImgIds()) == 6 and [c["name"] for c in api.loadCats(api.getCatIds())] == list(SHAPES_CLASSES)


def test_toy_labels_crowd_and_empty(toy):
    ds = COCODetection(toy, toy / "toy.json")
    assert ds.classes == ("ball", "box") and len(ds) == 3
    image, target = ds[0]
    assert image.shape == (3, 100, 200)
    assert torch.allclose(target, torch.tensor([[0.1, 0.1, 0.35, 0.5, 1.0]]))     # the crowd region is not a target
    anno = ds.pull_anno(0)
    assert anno["difficult"].tolist() == [False, True] and anno["boxes"].tolist() == [[20, 10, 70, 50], [100, 0, 200, 100]]
    assert anno["image_id"] == 10 and anno["filename"] == "a.jpg"
    assert ds[1][0].shape == (3, 160, 120) and ds[1][1][0, 4] == 0
    assert ds[2][1].shape == (0, 5) and ds.pull_anno(2)["boxes"].shape == (0, 4)
    by_name = COCODetection(toy, toy / "toy.json", classes=["box", "ball"])
    assert by_name[0][1][0, 4] == 0 and by_name[1][1][0, 4] == 1


def test_box_tolerance_clips(toy):
    path = _write(toy, lambda d: d["annotations"][0].update(bbox=[150.5, -0.6, 50.3, 40]))
    anno = COCODetection(toy, path).pull_anno(0)
    assert torch.allclose(anno["boxes"][0], torch.tensor([150.5, 0.0, 200.0, 39.4]))   # clipped to the image


BAD = {
    "unknown category": (lambda d: d["annotations"][0].update(category_id=99),
                         r"bad.json: annotation 1 has category_id 99, which is not in 'categories'"),
    "unknown image": (lambda d: d["annotations"][2].update(image_id=42),
                      r"bad.json: annotation 3 refers to image_id 42, which is not in 'images'"),
    "outside": (lambda d: d["annotations"][2].update(bbox=[100, 120, 60, 60]),
                r"bad.json: annotation 3 has a bbox outside its image: \[x, y, w, h\] = \[100.0, 120.0, 60.0, 60.0\], image 120x160"),
    "negative": (lambda d: d["annotations"][2].update(bbox=[-5, 0, 10, 10]), r"annotation 3 has a bbox outside its image"),
    "no area": (lambda d: d["annotations"][0].update(bbox=[20, 10, 0, 40]), r"annotation 1 has a bbox that is not finite or has no area"),
    "nan": (lambda d: d["annotations"][0].update(bbox=[20, 10, float("nan"), 40]), r"annotation 1 has a bbox that is not finite"),
    "short bbox": (lambda d: d["annotations"][1].update(bbox=[20, 10]), r"annotation 2 needs a bbox of four numbers"),
    "no bbox": (lambda d: d["annotations"][1].pop("bbox"), r"annotation 2 needs a bbox of four numbers"),
    "duplicate class": (lambda d: d["categories"].append({"id": 8, "name": "Ball"}), r"bad.json categories: class 3 'Ball' repeats class 1"),
    "image size": (lambda d: d["images"][1].pop("width"), r"bad.json: image 11 needs an id, a file_name and a positive width"),
    "duplicate image": (lambda d: d["images"][1].update(id=10), r"bad.json: image ids are not unique"),
    "no images": (lambda d: d.pop("images"), r"bad.json: a COCO instances file needs the lists 'images' and 'categories'"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_json_is_one_line(toy, case):
    change, pattern = BAD[case]
    with pytest.raises(ValueError, match=pattern) as info:
        COCODetection(toy, _write(toy, change))
    assert "\n" not in str(info.value)


def test_bad_files_and_class_lists(toy):
    with pytest.raises(ValueError, match=r"missing.json: annotation file is missing"):
        COCODetection(toy, toy / "missing.json")
    (toy / "broken.json").write_text('{"images": [')
    with pytest.raises(ValueError, match=r"broken.json: not valid JSON"):
        COCODetection(toy, toy / "broken.json")
    with pytest.raises(ValueError, match=r"toy.json: annotation 2 has category 'ball' \(id 7\), which is not in the class list"):
        COCODetection(toy, toy / "toy.json", classes=["box"])
    ds = COCODetection(toy, toy / "toy.json")
    Image.new("RGB", (10, 10)).save(toy / "a.jpg")
    with pytest.raises(ValueError, match=r"a.jpg: image is 10x10 but toy.json says 200x100"):
        ds[0]
    (toy / "b.png").unlink()
    with pytest.raises(ValueError, match=r"b.png: image file is missing"):
        ds[1]
