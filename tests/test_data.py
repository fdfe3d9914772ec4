"""Tests of ssdbook.data (chapter 1): VOC reading, the shapes set, collate, transforms, bad input."""
import re
import shutil

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from ssdbook.data import (IMAGENET_MEAN, IMAGENET_STD, SHAPES_CLASSES, VOC_CLASSES, BaseTransform, VOCDetection,
                          anno_to_target, check_classes, check_dataset, check_targets, denormalize, detection_collate,
                          download_voc, draw_boxes, find_image, normalize, parse_voc_xml, read_classes, read_image,
                          show_batch, to_float_image, write_classes, write_coco_json, write_voc_xml)
from ssdbook.shapes import make_shapes_voc

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
    coords = "".join(f"<{k}>{v}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box))
    return f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox>{coords}</bndbox></object>"


def anno_xml(*objects, width=300, height=300):
    return (f"<annotation><size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
            f"{''.join(objects)}</annotation>")


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


# ---------------------------------------------------------------- a batch
def test_collated_batch_of_15(train_set):
    ds = VOCDetection(train_set.root, [("shapes", "train")], transform=BaseTransform(), classes=SHAPES_CLASSES)
    loader = torch.utils.data.DataLoader(ds, batch_size=15, collate_fn=detection_collate)
    images, targets = next(iter(loader))
    assert images.shape == (15, 3, 300, 300) and images.dtype == torch.float32
    assert isinstance(targets, list) and len(targets) == 15
    for t in targets:
        assert t.dtype == torch.float32 and t.dim() == 2 and t.shape[1] == 5 and len(t) <= 6
        assert (t[:, :4] >= 0).all() and (t[:, :4] <= 1).all()
        assert (t[:, 2] > t[:, 0]).all() and (t[:, 3] > t[:, 1]).all()
        labels = t[:, 4]
        assert torch.equal(labels, labels.round()) and ((labels >= 0) & (labels < len(SHAPES_CLASSES))).all()


def test_item_without_transform(train_set):
    image, target = train_set[0]
    anno = train_set.pull_anno(0)
    assert image.shape == (3, 300, 300) and image.dtype == torch.float32 and 0 <= image.min() <= image.max() <= 1
    assert torch.allclose(target[:, :4] * 300, anno["boxes"]) and torch.equal(target[:, 4].long(), anno["labels"])
    assert anno["labels"].dtype == torch.int64 and anno["difficult"].dtype == torch.bool


def test_collate_edge_cases():
    imgs = [torch.rand(3, 8, 8) for _ in range(3)]
    images, targets = detection_collate([(imgs[0], torch.zeros(0, 5)), (imgs[1], np.zeros((0,))),
                                         (imgs[2], np.array([[0.1, 0.1, 0.5, 0.5, 3]]))])
    assert images.shape == (3, 3, 8, 8) and [tuple(t.shape) for t in targets] == [(0, 5), (0, 5), (1, 5)]
    assert all(t.dtype == torch.float32 for t in targets)
    with pytest.raises(ValueError, match="image 1 has shape"):
        detection_collate([(imgs[0], torch.zeros(0, 5)), (torch.rand(3, 9, 8), torch.zeros(0, 5))])
    with pytest.raises(ValueError, match=r"image 0: a target must be a \(num_objects, 5\) tensor .* got shape \(2, 4\)"):
        detection_collate([(imgs[0], torch.zeros(2, 4))])
    with pytest.raises(ValueError, match="empty batch"):
        detection_collate([])


# ---------------------------------------------------------------- XML round trip
def test_xml_round_trip(tmp_path):
    g = torch.Generator().manual_seed(0)
    for k in range(20):
        w, h = int(torch.randint(50, 600, (1,), generator=g)), int(torch.randint(50, 600, (1,), generator=g))
        n = int(torch.randint(0, 5, (1,), generator=g))
        x = torch.randint(0, w, (n, 2), generator=g).sort(1).values
        y = torch.randint(0, h, (n, 2), generator=g).sort(1).values
        x[:, 1] = torch.maximum(x[:, 1], x[:, 0] + 1).clamp(max=w - 1)
        x[:, 0] = torch.minimum(x[:, 0], x[:, 1] - 1)
        y[:, 1] = torch.maximum(y[:, 1], y[:, 0] + 1).clamp(max=h - 1)
        y[:, 0] = torch.minimum(y[:, 0], y[:, 1] - 1)
        anno = dict(id="a", width=w, height=h, boxes=torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], 1).float(),
                    labels=torch.randint(0, 20, (n,), generator=g), difficult=torch.rand(n, generator=g) < 0.3)
        write_voc_xml(tmp_path / "a.xml", anno)
        back, problems = parse_voc_xml(tmp_path / "a.xml")
        assert problems == []
        for key in ("boxes", "labels", "difficult"):
            assert torch.equal(back[key], anno[key]), key
        assert (back["id"], back["width"], back["height"]) == ("a", w, h)
        # XML -> target -> XML: the target (fractions) gives the same file back
        target = anno_to_target(back)
        anno2 = dict(id="a", width=w, height=h, boxes=target[:, :4] * torch.tensor([w, h, w, h]),
                     labels=target[:, 4].long(), difficult=back["difficult"])
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
    (tmp_path / "x.xml").write_text(anno_xml(obj_xml("dog", (1, 1, 300, 150)), width=300, height=150))
    anno, problems = parse_voc_xml(tmp_path / "x.xml")
    assert problems == [] and anno["boxes"].tolist() == [[0, 0, 299, 149]] and anno["labels"].tolist() == [11]
    # real VOC has a few non-integer coordinates; they are read as floats
    (tmp_path / "y.xml").write_text(anno_xml(obj_xml("Person", (10.5, 20, 40.5, 60))))
    anno, problems = parse_voc_xml(tmp_path / "y.xml")
    assert problems == [] and anno["boxes"].tolist() == [[9.5, 19, 39.5, 59]] and anno["labels"].tolist() == [14]


def test_keep_difficult(shapes_root, tmp_path):
    root, dst, ids = small_copy(shapes_root, tmp_path, n=1)
    (dst / "Annotations" / f"{ids[0]}.xml").write_text(
        anno_xml(obj_xml("star", (10, 10, 50, 50)), obj_xml("ring", (60, 60, 90, 90), difficult=1)))
    ds = VOCDetection(root, [("shapes", "train")], classes=SHAPES_CLASSES)
    assert ds[0][1].shape == (1, 5) and ds[0][1][0, 4] == SHAPES_CLASSES.index("star")
    assert ds.pull_anno(0)["difficult"].tolist() == [False, True]
    ds = VOCDetection(root, [("shapes", "train")], classes=SHAPES_CLASSES, keep_difficult=True)
    assert ds[0][1].shape == (2, 5)


# ---------------------------------------------------------------- bad input
BAD_ANNOTATIONS = {
    "malformed": ("<annotation><size><width>300", r"malformed XML"),
    "xmax_le_xmin": (anno_xml(obj_xml("star", (10, 10, 50, 50)), obj_xml("circle", (60, 10, 60, 50))),
                     r"object 1 \('circle'\): xmax 60 <= xmin 60"),
    "ymax_le_ymin": (anno_xml(obj_xml("square", (10, 80, 50, 40))), r"object 0 \('square'\): ymax 40 <= ymin 80"),
    "outside_right": (anno_xml(obj_xml("ring", (200, 10, 301, 50))), r"object 0 \('ring'\): box .* outside the 300x300"),
    "outside_negative": (anno_xml(obj_xml("ring", (-5, 10, 30, 50))), r"object 0 \('ring'\): box .* outside"),
    "outside_bottom": (anno_xml(obj_xml("cross", (10, 10, 30, 500))), r"object 0 \('cross'\): box .* outside"),
    "unknown_class": (anno_xml(obj_xml("hexagon", (10, 10, 50, 50))), r"object 0 \('hexagon'\): class 'hexagon' is not in the class list"),
    "no_bndbox_value": (anno_xml("<object><name>star</name><bndbox><xmin>1</xmin></bndbox></object>"),
                        r"object 0 \('star'\): <bndbox> needs numeric"),
    "no_size": ("<annotation><object><name>star</name></object></annotation>", r"<size> needs positive"),
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
    with pytest.raises(ValueError, match=re.escape(f"{ids[1]}.jpg") + ": image file is missing"):
        ds[1]
    with pytest.raises(ValueError, match=re.escape(f"{ids[2]}.xml") + ": annotation file is missing"):
        ds[2]


def test_corrupt_image_and_size_mismatch(shapes_root, tmp_path):
    root, dst, ids = small_copy(shapes_root, tmp_path, n=2)
    (dst / "JPEGImages" / f"{ids[0]}.jpg").write_bytes(b"not a jpeg")
    (dst / "Annotations" / f"{ids[1]}.xml").write_text(anno_xml(width=320, height=240))
    ds = VOCDetection(root, [("shapes", "train")], classes=SHAPES_CLASSES)
    with pytest.raises(ValueError, match=re.escape(f"{ids[0]}.jpg") + ": cannot decode image"):
        ds[0]
    with pytest.raises(ValueError, match=re.escape(f"{ids[1]}.jpg") + r": image is 300x300 but its annotation says 320x240"):
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


def test_check_dataset_reports_everything_at_once(shapes_root, tmp_path):
    root, dst, ids = small_copy(shapes_root, tmp_path, n=4)
    ann = dst / "Annotations"
    (ann / f"{ids[0]}.xml").write_text("<annotation>")
    (dst / "JPEGImages" / f"{ids[1]}.jpg").unlink()
    (ann / f"{ids[2]}.xml").write_text(anno_xml(obj_xml("hexagon", (1, 1, 9, 9)), obj_xml("star", (5, 5, 4, 9)),
                                               obj_xml("ring", (5, 5, 9, 900))))
    (ann / f"{ids[3]}.xml").write_text(anno_xml())  # no objects: valid
    with open(dst / "ImageSets/Main/train.txt", "a") as f:
        f.write(f"{ids[3]}\n")
    problems = check_dataset(root, [("shapes", "train"), ("shapes", "test")], SHAPES_CLASSES)
    expected = [f"{ids[0]}.xml: malformed XML", f"{ids[1]}.jpg: image file is missing", "'hexagon'): class 'hexagon' is not in",
                "'star'): xmax 4 <= xmin 5", "'ring'): box", f"id {ids[3]} is listed twice", "test.txt: image set file is missing"]
    assert len(problems) == len(expected)
    for e in expected:
        assert sum(e in p for p in problems) == 1, (e, problems)
    with pytest.raises(ValueError, match=r"7 problem\(s\)") as info:
        check_dataset(root, [("shapes", "train"), ("shapes", "test")], SHAPES_CLASSES, strict=True)
    assert all(p in str(info.value) for p in problems)
    assert check_dataset(root, [("shapes", "train")], SHAPES_CLASSES, check_images=False) != []


def test_check_dataset_clean(shapes_root):
    assert check_dataset(shapes_root, [("shapes", "train"), ("shapes", "test"), ("shapes", "trainval")],
                         SHAPES_CLASSES) == []


def test_empty_images(shapes_root, train_set):
    empty = [i for i in range(len(train_set)) if len(train_set.pull_anno(i)["labels"]) == 0]
    assert empty, "the set should contain images without objects"
    i = empty[0]
    anno = train_set.pull_anno(i)
    assert anno["boxes"].shape == (0, 4) and anno["labels"].shape == (0,) and anno["difficult"].shape == (0,)
    image, target = train_set[i]
    assert image.shape == (3, 300, 300) and target.shape == (0, 5) and target.dtype == torch.float32
    ds = VOCDetection(shapes_root, [("shapes", "train")], transform=BaseTransform(), classes=SHAPES_CLASSES)
    images, targets = detection_collate([ds[i], ds[i]])
    assert images.shape == (2, 3, 300, 300) and [tuple(t.shape) for t in targets] == [(0, 5), (0, 5)]


# ---------------------------------------------------------------- transforms and pictures
def test_base_transform_matches_torchvision():
    from torchvision.transforms import v2
    x = torch.rand(3, 200, 400)
    y, t = BaseTransform(300)(x, "target")
    ref = v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)(v2.Resize((300, 300), antialias=True)(x))
    assert t == "target" and y.shape == (3, 300, 300) and torch.allclose(y, ref, atol=1e-4)
    assert torch.allclose(denormalize(BaseTransform(200)(x[:, :, :200])[0]), x[:, :, :200], atol=1e-5)
    u8 = (x * 255).round().to(torch.uint8)
    assert torch.allclose(BaseTransform()(u8)[0], BaseTransform()(u8.float() / 255)[0])
    assert BaseTransform(64)(torch.rand(2, 3, 50, 70))[0].shape == (2, 3, 64, 64)
    with pytest.raises(ValueError, match="expects an image"):
        BaseTransform()(torch.rand(300, 300))


def test_pictures(train_set):
    items = [train_set[i] for i in range(6)]
    images, targets = detection_collate([BaseTransform()(im, t) for im, t in items])
    fig = show_batch(images, targets, SHAPES_CLASSES, ncols=3,
                     predictions=[{"boxes": t[:, :4], "labels": t[:, 4], "scores": torch.ones(len(t))} for t in targets])
    assert fig._suptitle.get_text() == "images (6, 3, 300, 300)"
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [f"targets[{i}] {tuple(t.shape)}" for i, t in enumerate(targets)]
    assert sum(len(ax.patches) for ax in fig.axes) == 2 * sum(len(t) for t in targets)
    plt.close(fig)
    fig, ax = plt.subplots()
    draw_boxes(ax, items[0][0], torch.tensor([[10., 20., 100., 200.]]), [3], SHAPES_CLASSES, [0.9])
    assert ax.texts[0].get_text() == "star 0.90" and ax.patches[0].get_width() == 90
    with pytest.raises(ValueError, match="image=None"):
        draw_boxes(plt.subplots()[1], None, torch.zeros(0, 4))
    plt.close("all")


def test_constants():
    assert len(VOC_CLASSES) == 20 and VOC_CLASSES[14] == "person" and len(set(VOC_CLASSES)) == 20
    assert len(SHAPES_CLASSES) == len(set(SHAPES_CLASSES)) >= 5
    assert len(IMAGENET_MEAN) == len(IMAGENET_STD) == 3


def test_image_set_lines_with_flags(shapes_root, tmp_path):
    root, dst, ids = small_copy(shapes_root, tmp_path, n=2)
    (dst / "ImageSets/Main/star_train.txt").write_text(f"{ids[0]}  1\n{ids[1]} -1\n\n")  # VOC per-class file format
    ds = VOCDetection(root, ("shapes", "star_train"), classes=SHAPES_CLASSES)
    assert [i for _, i in ds.ids] == ids


def test_download_voc_layout_without_network(tmp_path, monkeypatch):
    """download_voc unpacks VOCdevkit/VOC2007 from both 2007 archives into root/VOC2007 (network faked)."""
    import torchvision.datasets.utils as tv_utils
    calls = []

    def fake_download(url, download_root, filename=None, md5=None, remove_finished=False):
        calls.append(filename)
        split = "test" if "test" in filename else "trainval"
        main = tmp_path.joinpath(download_root, "VOCdevkit", "VOC2007", "ImageSets", "Main")
        main.mkdir(parents=True)
        (main / f"{split}.txt").write_text("000001\n")
        (main.parent.parent / "Annotations").mkdir()
        (main.parent.parent / "Annotations" / f"{split}.xml").write_text("<annotation/>")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", fake_download)
    download_voc(tmp_path, years=("2007",))
    assert calls == ["VOCtrainval_06-Nov-2007.tar", "VOCtest_06-Nov-2007.tar"]
    main = tmp_path / "VOC2007" / "ImageSets" / "Main"
    assert sorted(p.name for p in main.iterdir()) == ["test.txt", "trainval.txt"]
    assert sorted(p.name for p in (tmp_path / "VOC2007" / "Annotations").iterdir()) == ["test.xml", "trainval.xml"]
    assert not (tmp_path / ".voc_download").exists()
    download_voc(tmp_path, years=("2007",))  # already there: nothing fetched
    assert len(calls) == 2
    ds = VOCDetection(tmp_path, [("2007", "test")], download=True)  # opt-in, but nothing missing
    assert len(ds) == 1 and len(calls) == 2


# ---------------------------------------------------------------- the one target validator
def _t(*rows):
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 5)


@pytest.mark.parametrize("targets, pattern", [
    ([_t([30, 60, 150, 180, 2])], r"image 0, box 0 .* look like pixels.*divide x by the image width and y by its height"),
    ([_t([0.1, 0.1, 0.5, 0.5, 1]), _t([0.1, 0.2, 0.5, 0.6, -0.5])], r"image 1, box 0 .*label -0.5, which is not a whole number"),
    ([_t([0.1, 0.2, 0.5, 0.6, 2.7])], r"label 2.7, which is not a whole number"),
    ([torch.zeros(0, 5), _t([0.1, 0.1, 0.5, 0.5, 1], [0.1, 0.2, 0.5, 0.6, float("nan")])], r"image 1, box 1 .* has label NaN"),
    ([_t([0.1, 0.2, 0.5, 0.6, float("inf")])], r"has an infinite label"),
    ([_t([0.1, 0.2, 0.5, 0.6, -1])], r"has a negative label -1"),
    ([_t([0.1, float("nan"), 0.5, 0.6, 1])], r"coordinate that is not finite"),
    ([_t([0.1, 0.2, float("inf"), 0.6, 1])], r"coordinate that is not finite"),
    ([_t([-0.2, 0.2, 0.5, 0.6, 1])], r"coordinate below 0"),
    ([_t([0.5, 0.2, 0.5, 0.6, 1])], r"degenerate \(width 0, height 0.4"),
    ([_t([0.1, 0.7, 0.5, 0.6, 1])], r"degenerate"),
    ([torch.zeros(2, 4)], r"image 0: a target must be a \(num_objects, 5\) tensor .* got shape \(2, 4\)"),
    ([torch.zeros(5)], r"got shape \(5,\)"),
    ([torch.zeros(1, 2, 5)], r"got shape \(1, 2, 5\)"),
])
def test_check_targets_names_each_mistake(targets, pattern):
    with pytest.raises(ValueError, match=pattern) as info:
        check_targets(targets)
    assert "\n" not in str(info.value)


def test_check_targets_accepts_valid_and_empty():
    check_targets([])
    check_targets([torch.zeros(0, 5), torch.zeros(0), np.zeros((0, 5))])
    check_targets([_t([0.0, 0.0, 1.0, 1.0, 0]), torch.zeros(0, 5), _t([-0.005, 0.2, 1.005, 0.6, 5])], num_classes=7)
    check_targets(_t([0.1, 0.2, 0.5, 0.6, 3]))                                   # one (n, 5) tensor
    check_targets([_t([0.1, 0.2, 0.5, 0.6, 3]).double()], num_classes=5)
    check_targets([torch.tensor([[0, 0, 1, 1, 2]])])                               # integer dtype
    with pytest.raises(ValueError, match=r"label 6, too large for num_classes=7 \(background included: labels are 0 .. 5\)"):
        check_targets([_t([0.1, 0.2, 0.5, 0.6, 6])], num_classes=7)
    with pytest.raises(ValueError, match=r"^a.jpg, box 1"):
        check_targets([_t([0.1, 0.2, 0.5, 0.6, 1], [0.1, 0.2, 0.5, 0.6, 1.5])], names=["a.jpg"])


def test_check_targets_is_batched(monkeypatch):
    """A big valid batch is checked with tensor operations only: no per-box Python work, no .tolist()/.item()."""
    import ssdbook.data as data
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(64, 50, 2, generator=g) * 0.5
    targets = list(torch.cat([xy, xy + 0.1 + torch.rand(64, 50, 2, generator=g) * 0.3,
                              torch.randint(0, 20, (64, 50, 1), generator=g).float()], -1))
    monkeypatch.setattr(data, "_problem", lambda *a: pytest.fail("per-box work on valid targets"))
    monkeypatch.setattr(torch.Tensor, "tolist", lambda self: pytest.fail("tolist on valid targets"))
    monkeypatch.setattr(torch.Tensor, "item", lambda self: pytest.fail("item on valid targets"))
    check_targets(targets, num_classes=21)


# ---------------------------------------------------------------- image helpers
def test_image_helpers():
    u8 = torch.randint(0, 256, (2, 3, 5, 7), dtype=torch.uint8)
    x = to_float_image(u8)
    assert x.dtype == torch.float32 and torch.equal(x * 255, u8.float())
    assert torch.equal(to_float_image(x), x)
    hwc = u8[0].permute(1, 2, 0).numpy()                                  # a decoded image: numpy (H, W, 3) uint8
    chw = to_float_image(hwc.transpose(2, 0, 1))
    assert chw.is_contiguous() and chw.dtype == torch.float32 and torch.equal(chw, x[0])
    n = normalize(x)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    assert torch.allclose(n[1], (x[1] - mean) / std) and torch.allclose(normalize(x[0]), n[0])
    assert torch.allclose(denormalize(n), x, atol=1e-6) and torch.allclose(denormalize(n[0]), x[0], atol=1e-6)
    assert torch.allclose(normalize(u8), n)
    with pytest.raises(ValueError, match=r"expected an image \(3, H, W\) or a batch"):
        normalize(torch.rand(4, 5, 5))


# ---------------------------------------------------------------- classes travel with the data
def test_classes_file_round_trip_and_errors(tmp_path):
    p = write_classes(tmp_path / "classes.txt", ["box", "ball"])
    assert p.read_text() == "box\nball\n" and read_classes(p) == ("box", "ball")
    (tmp_path / "trailing.txt").write_text("box\nball\n\n\n")
    assert read_classes(tmp_path / "trailing.txt") == ("box", "ball")
    (tmp_path / "windows.txt").write_bytes("box\r\nball\r\n".encode("utf-8-sig"))          # BOM + CRLF
    assert read_classes(tmp_path / "windows.txt") == ("box", "ball")
    cases = {"dup.txt": ("box\nball\nBox\n", r"dup.txt: class 3 'Box' repeats class 1"),
             "empty_line.txt": ("box\n\nball\n", r"empty_line.txt: class 2 is ''"),
             "empty.txt": ("", r"empty.txt: the class list is empty")}
    for name, (text, pattern) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=pattern):
            read_classes(tmp_path / name)
    with pytest.raises(ValueError, match="missing.txt: class list file is missing"):
        read_classes(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="out.txt: class 2 is ' ball'"):
        write_classes(tmp_path / "out.txt", ["box", " ball"])
    assert not (tmp_path / "out.txt").exists()
    with pytest.raises(ValueError, match="got the string"):
        check_classes("box,ball")


def _toy_set(tmp_path, classes=("box", "ball"), write_list=True, ext=".jpg", filename=True):
    base = tmp_path / "VOCtoy"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    if write_list:
        write_classes(base / "classes.txt", classes)
    from PIL import Image
    Image.new("RGB", (64, 48), (200, 10, 10)).save(base / "JPEGImages" / f"a{ext}")
    anno = dict(id="a", filename=f"a{ext}" if filename else None, width=64, height=48,
                boxes=torch.tensor([[4., 4., 30., 40.]]), labels=torch.tensor([1]))
    write_voc_xml(base / "Annotations" / "a.xml", anno, classes)
    if not filename:
        xml = (base / "Annotations" / "a.xml").read_text()
        (base / "Annotations" / "a.xml").write_text(re.sub(r"\s*<filename>.*</filename>", "", xml))
    (base / "ImageSets/Main/train.txt").write_text("a\n")
    return base


def test_voc_reads_classes_txt(tmp_path):
    _toy_set(tmp_path)
    ds = VOCDetection(tmp_path, [("toy", "train")])
    assert ds.classes == ("box", "ball") and ds[0][1][0, 4] == 1
    # an explicit list wins; a class of the XML missing from it is one line naming the file and the object
    with pytest.raises(ValueError, match=r"a.xml: object 0 \('ball'\): class 'ball' is not in the class list \(box, cup\)"):
        VOCDetection(tmp_path, [("toy", "train")], classes=["box", "cup"])[0]
    # a bad classes.txt is reported when the data set is made
    (tmp_path / "VOCtoy" / "classes.txt").write_text("box\nbox\n")
    with pytest.raises(ValueError, match=r"classes.txt: class 2 'box' repeats class 1"):
        VOCDetection(tmp_path, [("toy", "train")])
    problems = check_dataset(tmp_path, [("toy", "train")])
    assert len(problems) == 1 and "repeats class 1" in problems[0]


def test_voc_without_classes_txt_uses_voc_classes(tmp_path):
    _toy_set(tmp_path, classes=VOC_CLASSES, write_list=False)
    ds = VOCDetection(tmp_path, [("toy", "train")])
    assert ds.classes == VOC_CLASSES and ds[0][1][0, 4] == 1


def test_root_classes_txt_and_disagreeing_lists(tmp_path):
    _toy_set(tmp_path, write_list=False)
    write_classes(tmp_path / "classes.txt", ["box", "ball"])
    assert VOCDetection(tmp_path, [("toy", "train")]).classes == ("box", "ball")
    other = tmp_path / "VOCother"
    shutil.copytree(tmp_path / "VOCtoy", other)
    write_classes(other / "classes.txt", ["ball", "box"])
    with pytest.raises(ValueError, match=r"VOCother/classes.txt lists classes ball, box but .*classes.txt lists box, ball"):
        VOCDetection(tmp_path, [("toy", "train"), ("other", "train")])


@pytest.mark.parametrize("ext, filename", [(".png", True), (".png", False), (".jpeg", False), (".bmp", True),
                                           (".JPG", False), (".tif", False), (".gif", False), (".webp", False)])
def test_image_formats(tmp_path, ext, filename):
    _toy_set(tmp_path, ext=ext, filename=filename)
    ds = VOCDetection(tmp_path, [("toy", "train")])
    assert ds.image_path(0).suffix == ext
    image, target = ds[0]
    assert image.shape == (3, 48, 64) and target.shape == (1, 5)
    assert check_dataset(tmp_path, [("toy", "train")]) == []


def test_xml_filename_wins(tmp_path):
    base = _toy_set(tmp_path)
    from PIL import Image
    Image.new("RGB", (64, 48)).save(base / "JPEGImages" / "photo_a.png")
    xml = (base / "Annotations" / "a.xml").read_text().replace("<filename>a.jpg", "<filename>photo_a.png")
    (base / "Annotations" / "a.xml").write_text(xml)
    ds = VOCDetection(tmp_path, [("toy", "train")])
    assert ds.image_path(0).name == "photo_a.png" and ds.pull_anno(0)["filename"] == "photo_a.png"
    assert find_image(base / "JPEGImages", "a", "gone.png").name == "a.jpg"       # falls back to <id>.jpg
    with pytest.raises(ValueError, match=r"JPEGImages/gone.png: image file is missing \(also looked for b.jpeg"):
        find_image(base / "JPEGImages", "b", "gone.png")


# ---------------------------------------------------------------- issue 12: data sets fail in one line
def test_image_sets_given_wrongly(tmp_path):
    _toy_set(tmp_path)
    for wrong in (["2007", "trainval"], "2007", [("2007",)], [("2007", "trainval", "x")]):
        with pytest.raises(ValueError, match=r"image_sets must be a list of \(year, name\) pairs") as info:
            VOCDetection(tmp_path, wrong)
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=r"image_sets must be a list"):
        check_dataset(tmp_path, ["toy", "train"])
    assert len(VOCDetection(tmp_path, ("toy", "train"))) == 1                      # one pair as a tuple is fine


def test_empty_image_set_is_an_error(tmp_path):
    base = _toy_set(tmp_path)
    (base / "ImageSets/Main/empty.txt").write_text("\n\n")
    with pytest.raises(ValueError, match=r"ImageSets/Main/empty.txt: the image set is empty"):
        VOCDetection(tmp_path, [("toy", "empty")])
    problems = check_dataset(tmp_path, [("toy", "train"), ("toy", "empty")])
    assert len(problems) == 1 and "empty.txt: the image set is empty" in problems[0]


def test_check_dataset_decodes_every_image(tmp_path):
    base = _toy_set(tmp_path)
    from PIL import Image
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(base / "JPEGImages" / "a.jpg", quality=95)
    data = (base / "JPEGImages" / "a.jpg").read_bytes()
    (base / "JPEGImages" / "a.jpg").write_bytes(data[: len(data) * 2 // 3])       # truncated: the header is intact
    with Image.open(base / "JPEGImages" / "a.jpg") as im:
        assert im.size == (64, 48)                                                  # a header-only check passes
    problems = check_dataset(tmp_path, [("toy", "train")])
    assert len(problems) == 1 and re.search(r"JPEGImages/a.jpg: cannot decode image \(.*truncated", problems[0])
    with pytest.raises(ValueError, match=r"a.jpg: cannot decode image"):
        read_image(base / "JPEGImages" / "a.jpg")
    with pytest.raises(ValueError, match=r"1 problem\(s\)"):
        check_dataset(tmp_path, [("toy", "train")], strict=True)
    assert check_dataset(tmp_path, [("toy", "train")], workers=1) == problems


def test_pull_anno_error_is_one_line(tmp_path):
    base = _toy_set(tmp_path)
    (base / "Annotations" / "a.xml").write_text(anno_xml(obj_xml("box", (5, 5, 4, 9)), obj_xml("cup", (1, 1, 9, 9)),
                                                         width=64, height=48))
    with pytest.raises(ValueError) as info:
        VOCDetection(tmp_path, [("toy", "train")])[0]
    assert "\n" not in str(info.value) and "(and 1 more problem(s): run check_dataset)" in str(info.value)


# ---------------------------------------------------------------- COCO writer
def test_write_coco_json(tmp_path):
    import json
    annos = [dict(id="a", width=64, height=48, boxes=torch.tensor([[4., 6., 30., 40.], [0., 0., 63., 47.]]),
                  labels=torch.tensor([1, 0]), difficult=torch.tensor([False, True])),
             dict(id="b", filename="b.png", width=10, height=10, boxes=torch.zeros(0, 4),
                  labels=torch.zeros(0, dtype=torch.int64))]
    d = json.loads(write_coco_json(tmp_path / "x.json", annos, ["box", "ball"]).read_text())
    assert d["categories"] == [{"id": 1, "name": "box"}, {"id": 2, "name": "ball"}]
    assert [i["file_name"] for i in d["images"]] == ["a.jpg", "b.png"]
    assert d["annotations"][0] == dict(id=1, image_id=1, category_id=2, bbox=[4.0, 6.0, 26.0, 34.0], area=884.0, iscrowd=0)
    assert d["annotations"][1]["iscrowd"] == 1 and len(d["annotations"]) == 2
    with pytest.raises(ValueError, match="repeats"):
        write_coco_json(tmp_path / "y.json", annos, ["box", "box"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_check_targets_one_host_sync_on_cuda():
    import warnings
    targets = [_t([0.1, 0.2, 0.5, 0.6, 1], [0.2, 0.2, 0.9, 0.9, 3]).cuda(), torch.zeros(0, 5, device="cuda")]
    check_targets(targets, num_classes=5)                                   # warm-up
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_targets(targets, num_classes=5)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert len([w for w in caught if "synchroniz" in str(w.message)]) == 1
    with pytest.raises(ValueError, match="image 0, box 1 .* look like pixels"):
        check_targets([_t([0.1, 0.2, 0.5, 0.6, 1], [20, 20, 90, 90, 3]).cuda()])
