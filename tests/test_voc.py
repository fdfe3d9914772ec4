"""Tests of ssdbook.voc (chapter 1a): VOC XML read/write, COCO JSON writer, image files,
the toy folder, check_dataset."""

import json
import re

import numpy as np
import pytest
import torch

from ssdbook.data import SHAPES_CLASSES, read_classes
from ssdbook.voc import (
    anno_to_target,
    as_image_sets,
    check_dataset,
    folder_classes,
    make_toy_voc,
    parse_voc_xml,
    read_image,
    read_image_ids,
    write_coco_json,
    write_voc_xml,
)
from voc_helpers import anno_xml, obj_xml, shapes_root, small_copy, toy_set  # noqa: F401  (fixtures)


def test_xml_round_trip(tmp_path):
    g = torch.Generator().manual_seed(0)
    for k in range(20):
        w, h = (
            int(torch.randint(50, 600, (1,), generator=g)),
            int(torch.randint(50, 600, (1,), generator=g)),
        )
        n = int(torch.randint(0, 5, (1,), generator=g))
        x = torch.randint(0, w, (n, 2), generator=g).sort(1).values
        y = torch.randint(0, h, (n, 2), generator=g).sort(1).values
        x[:, 1] = torch.maximum(x[:, 1], x[:, 0] + 1).clamp(max=w - 1)
        x[:, 0] = torch.minimum(x[:, 0], x[:, 1] - 1)
        y[:, 1] = torch.maximum(y[:, 1], y[:, 0] + 1).clamp(max=h - 1)
        y[:, 0] = torch.minimum(y[:, 0], y[:, 1] - 1)
        anno = dict(
            id="a",
            width=w,
            height=h,
            boxes=torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], 1).float(),
            labels=torch.randint(0, 20, (n,), generator=g),
            difficult=torch.rand(n, generator=g) < 0.3,
        )
        write_voc_xml(tmp_path / "a.xml", anno)
        back, problems = parse_voc_xml(tmp_path / "a.xml")
        assert problems == []
        for key in ("boxes", "labels", "difficult"):
            assert torch.equal(back[key], anno[key]), key
        assert (back["id"], back["width"], back["height"]) == ("a", w, h)
        # XML -> target -> XML: the target (fractions) gives the same file back
        target = anno_to_target(back)
        anno2 = dict(
            id="a",
            width=w,
            height=h,
            boxes=target[:, :4] * torch.tensor([w, h, w, h]),
            labels=target[:, 4].long(),
            difficult=back["difficult"],
        )
        write_voc_xml(tmp_path / "b.xml", anno2)
        assert (tmp_path / "a.xml").read_text() == (tmp_path / "b.xml").read_text()


def test_generated_xml_round_trip(shapes_root, tmp_path):
    ann = shapes_root / "VOCshapes" / "Annotations"
    for xml in sorted(ann.glob("*.xml"))[:10]:
        anno, problems = parse_voc_xml(xml, SHAPES_CLASSES)
        assert problems == []
        write_voc_xml(tmp_path / xml.name, anno, SHAPES_CLASSES, folder="VOCshapes")
        assert (tmp_path / xml.name).read_text() == xml.read_text()


def test_voc_pixel_convention(tmp_path):
    (tmp_path / "x.xml").write_text(
        anno_xml(obj_xml("dog", (1, 1, 300, 150)), width=300, height=150)
    )
    anno, problems = parse_voc_xml(tmp_path / "x.xml")
    assert (
        problems == []
        and anno["boxes"].tolist() == [[0, 0, 299, 149]]
        and anno["labels"].tolist() == [11]
    )
    # real VOC has a few non-integer coordinates; they are read as floats
    (tmp_path / "y.xml").write_text(anno_xml(obj_xml("Person", (10.5, 20, 40.5, 60))))
    anno, problems = parse_voc_xml(tmp_path / "y.xml")
    assert (
        problems == []
        and anno["boxes"].tolist() == [[9.5, 19, 39.5, 59]]
        and anno["labels"].tolist() == [14]
    )


def test_check_dataset_reports_everything_at_once(shapes_root, tmp_path):
    root, dst, ids = small_copy(shapes_root, tmp_path, n=4)
    ann = dst / "Annotations"
    (ann / f"{ids[0]}.xml").write_text("<annotation>")
    (dst / "JPEGImages" / f"{ids[1]}.jpg").unlink()
    (ann / f"{ids[2]}.xml").write_text(
        anno_xml(
            obj_xml("hexagon", (1, 1, 9, 9)),
            obj_xml("star", (5, 5, 4, 9)),
            obj_xml("ring", (5, 5, 9, 900)),
        )
    )
    (ann / f"{ids[3]}.xml").write_text(anno_xml())  # no objects: valid
    with open(dst / "ImageSets/Main/train.txt", "a") as f:
        f.write(f"{ids[3]}\n")
    problems = check_dataset(
        root, [("shapes", "train"), ("shapes", "test")], SHAPES_CLASSES
    )
    expected = [
        f"{ids[0]}.xml: malformed XML",
        f"{ids[1]}.jpg: image file is missing",
        "'hexagon'): class 'hexagon' is not in",
        "'star'): xmax 4 <= xmin 5",
        "'ring'): box",
        f"id {ids[3]} is listed twice",
        "test.txt: image set file is missing",
    ]
    assert len(problems) == len(expected)
    for e in expected:
        assert sum(e in p for p in problems) == 1, (e, problems)
    with pytest.raises(ValueError, match=r"7 problem\(s\)") as info:
        check_dataset(
            root, [("shapes", "train"), ("shapes", "test")], SHAPES_CLASSES, strict=True
        )
    assert all(p in str(info.value) for p in problems)
    assert (
        check_dataset(root, [("shapes", "train")], SHAPES_CLASSES, check_images=False)
        != []
    )


def test_check_dataset_clean(shapes_root):
    assert (
        check_dataset(
            shapes_root,
            [("shapes", "train"), ("shapes", "test"), ("shapes", "trainval")],
            SHAPES_CLASSES,
        )
        == []
    )


def test_check_dataset_decodes_every_image(tmp_path):
    base = toy_set(tmp_path)
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(
        base / "JPEGImages" / "a.jpg", quality=95
    )
    data = (base / "JPEGImages" / "a.jpg").read_bytes()
    (base / "JPEGImages" / "a.jpg").write_bytes(
        data[: len(data) * 2 // 3]
    )  # truncated: the header is intact
    with Image.open(base / "JPEGImages" / "a.jpg") as im:
        assert im.size == (64, 48)  # a header-only check passes
    problems = check_dataset(tmp_path, [("toy", "train")])
    assert len(problems) == 1 and re.search(
        r"JPEGImages/a.jpg: cannot decode image \(.*truncated", problems[0]
    )
    with pytest.raises(ValueError, match=r"a.jpg: cannot decode image"):
        read_image(base / "JPEGImages" / "a.jpg")
    with pytest.raises(ValueError, match=r"1 problem\(s\)"):
        check_dataset(tmp_path, [("toy", "train")], strict=True)
    assert check_dataset(tmp_path, [("toy", "train")], workers=1) == problems


def test_write_coco_json(tmp_path):
    import json

    annos = [
        dict(
            id="a",
            width=64,
            height=48,
            boxes=torch.tensor([[4.0, 6.0, 30.0, 40.0], [0.0, 0.0, 63.0, 47.0]]),
            labels=torch.tensor([1, 0]),
            difficult=torch.tensor([False, True]),
        ),
        dict(
            id="b",
            filename="b.png",
            width=10,
            height=10,
            boxes=torch.zeros(0, 4),
            labels=torch.zeros(0, dtype=torch.int64),
        ),
    ]
    d = json.loads(
        write_coco_json(tmp_path / "x.json", annos, ["box", "ball"]).read_text()
    )
    assert d["categories"] == [{"id": 1, "name": "box"}, {"id": 2, "name": "ball"}]
    assert [i["file_name"] for i in d["images"]] == ["a.jpg", "b.png"]
    assert d["annotations"][0] == dict(
        id=1,
        image_id=1,
        category_id=2,
        bbox=[4.0, 6.0, 26.0, 34.0],
        area=884.0,
        iscrowd=0,
    )
    assert d["annotations"][1]["iscrowd"] == 1 and len(d["annotations"]) == 2
    with pytest.raises(ValueError, match="repeats"):
        write_coco_json(tmp_path / "y.json", annos, ["box", "box"])


def test_make_toy_voc_and_folder_helpers(tmp_path):
    base = make_toy_voc(tmp_path)
    assert base == tmp_path / "VOCtoy" and read_classes(base / "classes.txt") == (
        "box",
        "ball",
    )
    assert (
        folder_classes(tmp_path, ["toy"]) == ("box", "ball")
        and folder_classes(tmp_path, ["other"]) is None
    )
    ids = read_image_ids(base / "ImageSets/Main/train.txt", "toy", tmp_path)
    assert ids == [f"toy{i:03d}" for i in range(6)] and as_image_sets(
        ("toy", "train")
    ) == [("toy", "train")]
    annos = [
        parse_voc_xml(base / "Annotations" / f"{i}.xml", ("box", "ball")) for i in ids
    ]
    assert (
        all(problems == [] for _, problems in annos) and len(annos[2][0]["labels"]) == 0
    )
    assert (
        annos[1][0]["filename"] == "toy001.png"
        and (base / "JPEGImages/toy001.png").is_file()
    )
    assert check_dataset(tmp_path, [("toy", "train")]) == []
    image = read_image(base / "JPEGImages/toy000.jpg")
    assert image.shape == (3, annos[0][0]["height"], annos[0][0]["width"])
    assert (
        make_toy_voc(tmp_path / "again") / "Annotations/toy003.xml"
    ).read_text() == (base / "Annotations/toy003.xml").read_text()
