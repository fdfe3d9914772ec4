"""Tests of ssdbook.coco (chapter 1d): COCO-format data with the (image, target)
contract of chapter 1."""

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


TOY = {
    "images": [
        {"id": 10, "file_name": "a.jpg", "width": 200, "height": 100},
        {"id": 11, "file_name": "b.png", "width": 120, "height": 160},
        {"id": 12, "file_name": "c.jpg", "width": 64, "height": 64},
    ],
    "categories": [{"id": 7, "name": "ball"}, {"id": 3, "name": "box"}],
    "annotations": [
        {
            "id": 1,
            "image_id": 10,
            "category_id": 3,
            "bbox": [20, 10, 50, 40],
            "iscrowd": 0,
        },
        {
            "id": 2,
            "image_id": 10,
            "category_id": 7,
            "bbox": [100, 0, 100, 100],
            "iscrowd": 1,
        },
        {"id": 3, "image_id": 11, "category_id": 7, "bbox": [30, 40, 60, 60]},
    ],
}


@pytest.fixture
def toy(tmp_path):
    for name, size in (
        ("a.jpg", (200, 100)),
        ("b.png", (120, 160)),
        ("c.jpg", (64, 64)),
    ):
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
        coco = COCODetection(
            root / "JPEGImages", root / "annotations" / f"instances_{split}.json"
        )
        voc = VOCDetection(shapes, [("shapes", split)])
        assert len(coco) == len(voc) and coco.classes == voc.classes == SHAPES_CLASSES
        for i in range(len(coco)):
            (a, ta), (b, tb) = coco[i], voc[i]
            assert torch.equal(a, b) and torch.allclose(ta, tb, atol=1e-6)
            pa, pb = coco.pull_anno(i), voc.pull_anno(i)
            assert pa["id"] == pb["id"] and torch.allclose(pa["boxes"], pb["boxes"])
            assert torch.equal(pa["labels"], pb["labels"]) and torch.equal(
                pa["difficult"], pb["difficult"]
            )
        check_targets(
            [coco[i][1] for i in range(len(coco))], num_classes=len(SHAPES_CLASSES) + 1
        )


def test_voc_to_coco_matches_the_shapes_json_and_loads_in_pycocotools(shapes, tmp_path):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO

    out = voc_to_coco(shapes, ("shapes", "test"), tmp_path / "test.json")
    assert json.loads(out.read_text()) == json.loads(
        (shapes / "VOCshapes/annotations/instances_test.json").read_text()
    )
    api = COCO(str(out))
    assert len(api.getImgIds()) == 6 and [
        c["name"] for c in api.loadCats(api.getCatIds())
    ] == list(SHAPES_CLASSES)


def test_toy_labels_crowd_and_empty(toy):
    ds = COCODetection(toy, toy / "toy.json")
    assert (
        ds.classes == ("box", "ball") and len(ds) == 3
    )  # id order (3, 7), not list order
    image, target = ds[0]
    assert image.shape == (3, 100, 200)
    assert torch.allclose(
        target, torch.tensor([[0.1, 0.1, 0.35, 0.5, 0.0]])
    )  # the crowd region is not a target
    anno = ds.pull_anno(0)
    assert anno["difficult"].tolist() == [False, True] and anno["boxes"].tolist() == [
        [20, 10, 70, 50],
        [100, 0, 200, 100],
    ]
    assert anno["image_id"] == 10 and anno["filename"] == "a.jpg"
    assert ds[1][0].shape == (3, 160, 120) and ds[1][1][0, 4] == 1
    assert ds[2][1].shape == (0, 5) and ds.pull_anno(2)["boxes"].shape == (0, 4)
    by_name = COCODetection(toy, toy / "toy.json", classes=["ball", "box"])
    assert by_name[0][1][0, 4] == 1 and by_name[1][1][0, 4] == 0


def test_box_tolerance_clips(toy):
    path = _write(
        toy, lambda d: d["annotations"][0].update(bbox=[150.5, -0.6, 50.3, 40])
    )
    anno = COCODetection(toy, path).pull_anno(0)
    assert torch.allclose(
        anno["boxes"][0], torch.tensor([150.5, 0.0, 200.0, 39.4])
    )  # clipped to the image


BAD = {
    "unknown category": (
        lambda d: d["annotations"][0].update(category_id=99),
        r"bad.json: annotation 1 has category_id 99, which is not in 'categories'",
    ),
    "unknown image": (
        lambda d: d["annotations"][2].update(image_id=42),
        r"bad.json: annotation 3 refers to image_id 42, which is not in 'images'",
    ),
    "outside": (
        lambda d: d["annotations"][2].update(bbox=[100, 120, 60, 60]),
        r"bad.json: annotation 3 has a bbox outside its image: "
        r"\[x, y, w, h\] = \[100.0, 120.0, 60.0, 60.0\], image 120x160",
    ),
    "negative": (
        lambda d: d["annotations"][2].update(bbox=[-5, 0, 10, 10]),
        r"annotation 3 has a bbox outside its image",
    ),
    "no area": (
        lambda d: d["annotations"][0].update(bbox=[20, 10, 0, 40]),
        r"annotation 1 has a bbox that is not finite or has no area",
    ),
    "nan": (
        lambda d: d["annotations"][0].update(bbox=[20, 10, float("nan"), 40]),
        r"annotation 1 has a bbox that is not finite",
    ),
    "short bbox": (
        lambda d: d["annotations"][1].update(bbox=[20, 10]),
        r"annotation 2 needs a bbox of four numbers",
    ),
    "no bbox": (
        lambda d: d["annotations"][1].pop("bbox"),
        r"annotation 2 needs a bbox of four numbers",
    ),
    "duplicate class": (
        lambda d: d["categories"].append({"id": 8, "name": "Ball"}),
        r"bad.json categories: class 3 'Ball' repeats class 2",
    ),
    "image size": (
        lambda d: d["images"][1].pop("width"),
        r"bad.json: images\[1\].width is null; it must be a number",
    ),
    "duplicate image": (
        lambda d: d["images"][1].update(id=10),
        r"bad.json: image id 10 is listed twice",
    ),
    # issue 21 item 8: a duplicate category id relabelled objects silently
    "duplicate category id": (
        lambda d: d["categories"].append({"id": 3, "name": "crate"}),
        r"bad.json: category id 3 is listed twice",
    ),
    # issue 21 item 16: malformed fields were TypeError / AttributeError tracebacks
    "list id": (
        lambda d: d["images"][0].update(id=[10]),
        r"bad.json: images\[0\].id is \[10\]; it must be an integer or a string",
    ),
    "int in annotations": (
        lambda d: d["annotations"].__setitem__(1, 5),
        r"bad.json: annotations\[1\] is 5, not an object",
    ),
    "string in images": (
        lambda d: d["images"].__setitem__(2, "c.jpg"),
        r"bad.json: images\[2\] is \"c.jpg\", not an object",
    ),
    "int file_name": (
        lambda d: d["images"][0].update(file_name=5),
        r"images\[0\].file_name is 5; it must be a file name",
    ),
    "list category_id": (
        lambda d: d["annotations"][0].update(category_id=[3]),
        r"annotations\[0\].category_id is \[3\]",
    ),
    "dict image_id": (
        lambda d: d["annotations"][0].update(image_id={"a": 1}),
        r"annotations\[0\].image_id is \{",
    ),
    "int name": (
        lambda d: d["categories"][0].update(name=7),
        r"categories\[0\].name is 7; it must be a class name",
    ),
    "bool id": (lambda d: d["images"][0].update(id=True), r"images\[0\].id is true"),
    "inf width": (
        lambda d: d["images"][0].update(width=float("inf")),
        r"images\[0\] \(id 10\) needs a positive width and height",
    ),
    "string iscrowd": (
        lambda d: d["annotations"][0].update(iscrowd="yes"),
        r"annotation 1 has iscrowd \"yes\"; it must be 0 or 1",
    ),
    "annotations not a list": (
        lambda d: d.update(annotations={"id": 1}),
        r"needs the lists 'images' and 'categories'",
    ),
    "no images": (
        lambda d: d.pop("images"),
        r"bad.json: a COCO instances file needs the lists 'images' and 'categories'",
    ),
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
    with pytest.raises(
        ValueError,
        match=r"toy.json: annotation 2 has category 'ball' \(id 7\), "
        r"which is not in the class list",
    ):
        COCODetection(toy, toy / "toy.json", classes=["box"])
    ds = COCODetection(toy, toy / "toy.json")
    Image.new("RGB", (10, 10)).save(toy / "a.jpg")
    with pytest.raises(
        ValueError, match=r"a.jpg: image is 10x10 but toy.json says 200x100"
    ):
        ds[0]
    (toy / "b.png").unlink()
    with pytest.raises(ValueError, match=r"b.png: image file is missing"):
        ds[1]


def test_string_image_ids_work(toy):
    "Ids may be strings (some converters write them); they are matched exactly."
    d = json.loads(json.dumps(TOY))
    for im in d["images"]:
        im["id"] = f"img{im['id']}"
    for a in d["annotations"]:
        a["image_id"] = f"img{a['image_id']}"
    (toy / "s.json").write_text(json.dumps(d))
    ds = COCODetection(toy, toy / "s.json")
    assert ds.pull_anno(0)["image_id"] == "img10" and len(ds[1][1]) == 1


def test_category_ids_out_of_order(toy):
    """Issue 21 item 18: COCO classes follow the category ids (11, 3, 7 -> labels of 3,
    7, 11), not the list order."""
    d = json.loads(json.dumps(TOY))
    d["categories"] = [
        {"id": 11, "name": "cup"},
        {"id": 3, "name": "box"},
        {"id": 7, "name": "ball"},
    ]
    (toy / "o.json").write_text(json.dumps(d))
    ds = COCODetection(toy, toy / "o.json")
    assert ds.classes == ("box", "ball", "cup")
    assert ds[0][1][:, 4].tolist() == [0.0] and ds[1][1][:, 4].tolist() == [1.0]


def test_a_set_without_objects(toy):
    """Issue 21 item 9: no annotations at all, or only crowd regions: one line from
    require_objects and check_coco."""
    from ssdbook.coco import check_coco

    for name, change, why in (
        ("none.json", lambda d: d.pop("annotations"), "no annotations"),
        (
            "crowd.json",
            lambda d: [a.update(iscrowd=1) for a in d["annotations"]],
            "every annotation is iscrowd: 1, a crowd region",
        ),
    ):
        d = json.loads(json.dumps(TOY))
        change(d)
        (toy / name).write_text(json.dumps(d))
        ds = COCODetection(
            toy, toy / name
        )  # reading it is fine (a test set may be unlabelled)
        with pytest.raises(
            ValueError, match=rf"{name}: none of its 3 images has an object \({why}\)"
        ) as info:
            ds.require_objects()
        assert "\n" not in str(info.value)
        assert check_coco(toy / name, toy) == [str(info.value)]
    assert COCODetection(toy, toy / "toy.json").require_objects() is not None
    assert check_coco(toy / "toy.json", toy) == []


def test_check_coco_lists_image_problems(toy):
    from ssdbook.coco import check_coco

    (toy / "b.png").unlink()
    Image.new("RGB", (10, 10)).save(toy / "a.jpg")
    problems = check_coco(toy / "toy.json", toy, workers=2)
    assert (
        len(problems) == 2
        and "a.jpg: image is 10x10 but toy.json says 200x100" in problems[0]
    )
    assert "b.png: image file is missing" in problems[1]
    assert check_coco(toy / "toy.json", toy, check_images=False) == []
    assert check_coco(toy / "nope.json", toy) == [
        f"{toy / 'nope.json'}: annotation file is missing"
    ]
