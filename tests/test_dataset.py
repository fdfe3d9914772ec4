"""Tests of ssdbook.dataset (chapter 1b): VOCDetection on the shapes set and hand-made
folders, download_voc, bad input."""

import re
import shutil

import pytest
import torch

from ssdbook.data import (
    SHAPES_CLASSES,
    VOC_CLASSES,
    BaseTransform,
    detection_collate,
    write_classes,
)
from ssdbook.dataset import VOCDetection, download_voc
from ssdbook.voc import check_dataset, find_image
from voc_helpers import anno_xml, obj_xml, shapes_root, small_copy, toy_set, train_set  # noqa: F401  (fixtures)


def test_collated_batch_of_15(train_set):
    ds = VOCDetection(
        train_set.root,
        [("shapes", "train")],
        transform=BaseTransform(),
        classes=SHAPES_CLASSES,
    )
    loader = torch.utils.data.DataLoader(
        ds, batch_size=15, collate_fn=detection_collate
    )
    images, targets = next(iter(loader))
    assert images.shape == (15, 3, 300, 300) and images.dtype == torch.float32
    assert isinstance(targets, list) and len(targets) == 15
    for t in targets:
        assert (
            t.dtype == torch.float32
            and t.dim() == 2
            and t.shape[1] == 5
            and len(t) <= 6
        )
        assert (t[:, :4] >= 0).all() and (t[:, :4] <= 1).all()
        assert (t[:, 2] > t[:, 0]).all() and (t[:, 3] > t[:, 1]).all()
        labels = t[:, 4]
        assert (
            torch.equal(labels, labels.round())
            and ((labels >= 0) & (labels < len(SHAPES_CLASSES))).all()
        )


def test_item_without_transform(train_set):
    image, target = train_set[0]
    anno = train_set.pull_anno(0)
    assert (
        image.shape == (3, 300, 300)
        and image.dtype == torch.float32
        and 0 <= image.min() <= image.max() <= 1
    )
    assert torch.allclose(target[:, :4] * 300, anno["boxes"]) and torch.equal(
        target[:, 4].long(), anno["labels"]
    )
    assert anno["labels"].dtype == torch.int64 and anno["difficult"].dtype == torch.bool


def test_keep_difficult(shapes_root, tmp_path):
    root, dst, ids = small_copy(shapes_root, tmp_path, n=1)
    (dst / "Annotations" / f"{ids[0]}.xml").write_text(
        anno_xml(
            obj_xml("star", (10, 10, 50, 50)),
            obj_xml("ring", (60, 60, 90, 90), difficult=1),
        )
    )
    ds = VOCDetection(root, [("shapes", "train")], classes=SHAPES_CLASSES)
    assert ds[0][1].shape == (1, 5) and ds[0][1][0, 4] == SHAPES_CLASSES.index("star")
    assert ds.pull_anno(0)["difficult"].tolist() == [False, True]
    ds = VOCDetection(
        root, [("shapes", "train")], classes=SHAPES_CLASSES, keep_difficult=True
    )
    assert ds[0][1].shape == (2, 5)


BAD_ANNOTATIONS = {
    "malformed": ("<annotation><size><width>300", r"malformed XML"),
    "xmax_le_xmin": (
        anno_xml(
            obj_xml("star", (10, 10, 50, 50)), obj_xml("circle", (60, 10, 60, 50))
        ),
        r"object 1 \('circle'\): xmax 60 <= xmin 60",
    ),
    "ymax_le_ymin": (
        anno_xml(obj_xml("square", (10, 80, 50, 40))),
        r"object 0 \('square'\): ymax 40 <= ymin 80",
    ),
    "outside_right": (
        anno_xml(obj_xml("ring", (200, 10, 301, 50))),
        r"object 0 \('ring'\): box .* outside the 300x300",
    ),
    "outside_negative": (
        anno_xml(obj_xml("ring", (-5, 10, 30, 50))),
        r"object 0 \('ring'\): box .* outside",
    ),
    "outside_bottom": (
        anno_xml(obj_xml("cross", (10, 10, 30, 500))),
        r"object 0 \('cross'\): box .* outside",
    ),
    "unknown_class": (
        anno_xml(obj_xml("hexagon", (10, 10, 50, 50))),
        r"object 0 \('hexagon'\): class 'hexagon' is not in the class list",
    ),
    "no_bndbox_value": (
        anno_xml("<object><name>star</name><bndbox><xmin>1</xmin></bndbox></object>"),
        r"object 0 \('star'\): <bndbox> needs numeric",
    ),
    "no_size": (
        "<annotation><object><name>star</name></object></annotation>",
        r"<size> needs positive",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_ANNOTATIONS))
def test_bad_annotation_raises(case, shapes_root, tmp_path):
    text, pattern = BAD_ANNOTATIONS[case]
    root, dst, ids = small_copy(shapes_root, tmp_path, n=2)
    (dst / "Annotations" / f"{ids[1]}.xml").write_text(text)
    ds = VOCDetection(root, [("shapes", "train")], classes=SHAPES_CLASSES)
    ds[0]  # the untouched image still loads
    with pytest.raises(ValueError, match=re.escape(f"{ids[1]}.xml") + ".*" + pattern):
        ds[1]
    with pytest.raises(ValueError, match=pattern):
        ds.pull_anno(1)
    problems = check_dataset(root, [("shapes", "train")], SHAPES_CLASSES)
    assert len(problems) == 1 and ids[1] in problems[0]


def test_missing_image_and_annotation(shapes_root, tmp_path):
    root, dst, ids = small_copy(shapes_root, tmp_path, n=3)
    (dst / "JPEGImages" / f"{ids[1]}.jpg").unlink()
    (dst / "Annotations" / f"{ids[2]}.xml").unlink()
    ds = VOCDetection(root, [("shapes", "train")], classes=SHAPES_CLASSES)
    with pytest.raises(
        ValueError, match=re.escape(f"{ids[1]}.jpg") + ": image file is missing"
    ):
        ds[1]
    with pytest.raises(
        ValueError, match=re.escape(f"{ids[2]}.xml") + ": annotation file is missing"
    ):
        ds[2]


def test_corrupt_image_and_size_mismatch(shapes_root, tmp_path):
    root, dst, ids = small_copy(shapes_root, tmp_path, n=2)
    (dst / "JPEGImages" / f"{ids[0]}.jpg").write_bytes(b"not a jpeg")
    (dst / "Annotations" / f"{ids[1]}.xml").write_text(anno_xml(width=320, height=240))
    ds = VOCDetection(root, [("shapes", "train")], classes=SHAPES_CLASSES)
    with pytest.raises(
        ValueError, match=re.escape(f"{ids[0]}.jpg") + ": cannot decode image"
    ):
        ds[0]
    with pytest.raises(
        ValueError,
        match=re.escape(f"{ids[1]}.jpg")
        + r": image is 300x300 but its annotation says 320x240",
    ):
        ds[1]
    problems = check_dataset(root, [("shapes", "train")], SHAPES_CLASSES)
    assert len(problems) == 2


def test_missing_image_set_never_downloads(tmp_path):
    with pytest.raises(ValueError, match="download=True"):
        VOCDetection(tmp_path, [("2007", "trainval")])
    with pytest.raises(ValueError, match="make_shapes_voc"):
        VOCDetection(tmp_path, [("shapes", "train")], classes=SHAPES_CLASSES)
    with pytest.raises(ValueError, match="known years"):
        download_voc(tmp_path, years=("1999",))


def test_empty_images(shapes_root, train_set):
    empty = [
        i for i in range(len(train_set)) if len(train_set.pull_anno(i)["labels"]) == 0
    ]
    assert empty, "the set should contain images without objects"
    i = empty[0]
    anno = train_set.pull_anno(i)
    assert (
        anno["boxes"].shape == (0, 4)
        and anno["labels"].shape == (0,)
        and anno["difficult"].shape == (0,)
    )
    image, target = train_set[i]
    assert (
        image.shape == (3, 300, 300)
        and target.shape == (0, 5)
        and target.dtype == torch.float32
    )
    ds = VOCDetection(
        shapes_root,
        [("shapes", "train")],
        transform=BaseTransform(),
        classes=SHAPES_CLASSES,
    )
    images, targets = detection_collate([ds[i], ds[i]])
    assert images.shape == (2, 3, 300, 300) and [tuple(t.shape) for t in targets] == [
        (0, 5),
        (0, 5),
    ]


def test_image_set_lines_with_flags(shapes_root, tmp_path):
    root, dst, ids = small_copy(shapes_root, tmp_path, n=2)
    (dst / "ImageSets/Main/star_train.txt").write_text(
        f"{ids[0]}  1\n{ids[1]} -1\n\n"
    )  # VOC per-class file format
    ds = VOCDetection(root, ("shapes", "star_train"), classes=SHAPES_CLASSES)
    assert [i for _, i in ds.ids] == ids


def test_download_voc_layout_without_network(tmp_path, monkeypatch):
    """download_voc unpacks VOCdevkit/VOC2007 from both 2007 archives into root/VOC2007
    (network faked)."""
    import torchvision.datasets.utils as tv_utils

    calls = []

    def fake_download(
        url, download_root, filename=None, md5=None, remove_finished=False
    ):
        calls.append(filename)
        split = "test" if "test" in filename else "trainval"
        main = tmp_path.joinpath(
            download_root, "VOCdevkit", "VOC2007", "ImageSets", "Main"
        )
        main.mkdir(parents=True)
        (main / f"{split}.txt").write_text("000001\n")
        (main.parent.parent / "Annotations").mkdir()
        (main.parent.parent / "Annotations" / f"{split}.xml").write_text(
            "<annotation/>"
        )

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", fake_download)
    download_voc(tmp_path, years=("2007",))
    assert calls == ["VOCtrainval_06-Nov-2007.tar", "VOCtest_06-Nov-2007.tar"]
    main = tmp_path / "VOC2007" / "ImageSets" / "Main"
    assert sorted(p.name for p in main.iterdir()) == ["test.txt", "trainval.txt"]
    assert sorted(p.name for p in (tmp_path / "VOC2007" / "Annotations").iterdir()) == [
        "test.xml",
        "trainval.xml",
    ]
    assert not (tmp_path / ".voc_download").exists()
    download_voc(tmp_path, years=("2007",))  # already there: nothing fetched
    assert len(calls) == 2
    ds = VOCDetection(
        tmp_path, [("2007", "test")], download=True
    )  # opt-in, but nothing missing
    assert len(ds) == 1 and len(calls) == 2


def test_voc_reads_classes_txt(tmp_path):
    toy_set(tmp_path)
    ds = VOCDetection(tmp_path, [("toy", "train")])
    assert ds.classes == ("box", "ball") and ds[0][1][0, 4] == 1
    # an explicit list wins; a class of the XML missing from it is one line naming the
    # file and the object
    with pytest.raises(
        ValueError,
        match=r"a.xml: object 0 \('ball'\): "
        r"class 'ball' is not in the class list \(box, cup\)",
    ):
        VOCDetection(tmp_path, [("toy", "train")], classes=["box", "cup"])[0]
    # a bad classes.txt is reported when the data set is made
    (tmp_path / "VOCtoy" / "classes.txt").write_text("box\nbox\n")
    with pytest.raises(ValueError, match=r"classes.txt: class 2 'box' repeats class 1"):
        VOCDetection(tmp_path, [("toy", "train")])
    problems = check_dataset(tmp_path, [("toy", "train")])
    assert len(problems) == 1 and "repeats class 1" in problems[0]


def test_voc_without_classes_txt_uses_voc_classes(tmp_path):
    toy_set(tmp_path, classes=VOC_CLASSES, write_list=False)
    ds = VOCDetection(tmp_path, [("toy", "train")])
    assert ds.classes == VOC_CLASSES and ds[0][1][0, 4] == 1


def test_root_classes_txt_and_disagreeing_lists(tmp_path):
    toy_set(tmp_path, write_list=False)
    write_classes(tmp_path / "classes.txt", ["box", "ball"])
    assert VOCDetection(tmp_path, [("toy", "train")]).classes == ("box", "ball")
    other = tmp_path / "VOCother"
    shutil.copytree(tmp_path / "VOCtoy", other)
    write_classes(other / "classes.txt", ["ball", "box"])
    with pytest.raises(
        ValueError,
        match=r"VOCother/classes.txt lists classes ball, box "
        r"but .*classes.txt lists box, ball",
    ):
        VOCDetection(tmp_path, [("toy", "train"), ("other", "train")])


@pytest.mark.parametrize(
    "ext, filename",
    [
        (".png", True),
        (".png", False),
        (".jpeg", False),
        (".bmp", True),
        (".JPG", False),
        (".tif", False),
        (".gif", False),
        (".webp", False),
    ],
)
def test_image_formats(tmp_path, ext, filename):
    toy_set(tmp_path, ext=ext, filename=filename)
    ds = VOCDetection(tmp_path, [("toy", "train")])
    assert ds.image_path(0).suffix == ext
    image, target = ds[0]
    assert image.shape == (3, 48, 64) and target.shape == (1, 5)
    assert check_dataset(tmp_path, [("toy", "train")]) == []


def test_xml_filename_wins(tmp_path):
    base = toy_set(tmp_path)
    from PIL import Image

    Image.new("RGB", (64, 48)).save(base / "JPEGImages" / "photo_a.png")
    xml = (
        (base / "Annotations" / "a.xml")
        .read_text()
        .replace("<filename>a.jpg", "<filename>photo_a.png")
    )
    (base / "Annotations" / "a.xml").write_text(xml)
    ds = VOCDetection(tmp_path, [("toy", "train")])
    assert (
        ds.image_path(0).name == "photo_a.png"
        and ds.pull_anno(0)["filename"] == "photo_a.png"
    )
    assert (
        find_image(base / "JPEGImages", "a", "gone.png").name == "a.jpg"
    )  # falls back to <id>.jpg
    with pytest.raises(
        ValueError,
        match=r"JPEGImages/gone.png: image file is missing \(also looked for b.jpeg",
    ):
        find_image(base / "JPEGImages", "b", "gone.png")


def test_image_sets_given_wrongly(tmp_path):
    toy_set(tmp_path)
    for wrong in (
        ["2007", "trainval"],
        "2007",
        [("2007",)],
        [("2007", "trainval", "x")],
    ):
        with pytest.raises(
            ValueError, match=r"image_sets must be a list of \(year, name\) pairs"
        ) as info:
            VOCDetection(tmp_path, wrong)
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=r"image_sets must be a list"):
        check_dataset(tmp_path, ["toy", "train"])
    assert (
        len(VOCDetection(tmp_path, ("toy", "train"))) == 1
    )  # one pair as a tuple is fine


def test_empty_image_set_is_an_error(tmp_path):
    base = toy_set(tmp_path)
    (base / "ImageSets/Main/empty.txt").write_text("\n\n")
    with pytest.raises(
        ValueError, match=r"ImageSets/Main/empty.txt: the image set is empty"
    ):
        VOCDetection(tmp_path, [("toy", "empty")])
    problems = check_dataset(tmp_path, [("toy", "train"), ("toy", "empty")])
    assert len(problems) == 1 and "empty.txt: the image set is empty" in problems[0]


def test_pull_anno_error_is_one_line(tmp_path):
    base = toy_set(tmp_path)
    (base / "Annotations" / "a.xml").write_text(
        anno_xml(
            obj_xml("box", (5, 5, 4, 9)),
            obj_xml("cup", (1, 1, 9, 9)),
            width=64,
            height=48,
        )
    )
    with pytest.raises(ValueError) as info:
        VOCDetection(tmp_path, [("toy", "train")])[0]
    assert "\n" not in str(
        info.value
    ) and "(and 1 more problem(s): run check_dataset)" in str(info.value)
