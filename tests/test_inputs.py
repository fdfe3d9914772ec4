"""Every input read as its owner means it (issue 21, items 6, 7, 9, 10, 18, 19): phone
photos with an EXIF orientation, 16-bit / float / transparent / palette / CMYK images,
NaN boxes, sets without a single object, image ids with spaces, a classes.txt that is
not UTF-8, and boxes slightly outside the image (same match and loss as the reference).
Every image is built here; nothing is downloaded."""

import numpy as np
import pytest
import torch
from PIL import Image

from ssdbook.data import check_targets, read_classes, write_classes
from ssdbook.dataset import VOCDetection, read_item
from ssdbook.voc import (
    check_dataset,
    parse_voc_xml,
    pil_to_float,
    read_image,
    read_image_ids,
    write_voc_xml,
)
from voc_helpers import anno_xml, obj_xml


# ------------------------------------------------------------------ helpers
def _scene(w=60, h=40):
    """An RGB image whose orientation is visible: a red block at the top left, a blue
    one at the bottom right."""
    a = np.full((h, w, 3), 200, np.uint8)
    a[: h // 4, : w // 4] = (255, 0, 0)
    a[-h // 4 :, -w // 4 :] = (0, 0, 255)
    return Image.fromarray(a)


def _phone_jpeg(path, orientation=6, w=60, h=40):
    """A JPEG stored as `w x h` pixels with an EXIF orientation tag, as phones write
    portrait photos."""
    img = _scene(w, h)
    exif = img.getexif()
    exif[0x0112] = orientation
    img.save(path, quality=95, exif=exif)
    return img


def _voc_folder(root, images, boxes=None, classes=("box", "ball")):
    """A VOC folder `root/VOCt` with split `train`: `images` maps id -> (PIL image or
    None, annotated (w, h), objects). Objects are `(name, (x1, y1, x2, y2))` in VOC's
    1-based pixels."""
    base = root / "VOCt"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    write_classes(base / "classes.txt", classes)
    for img_id, (img, (w, h), objects) in images.items():
        if img is not None:
            img.save(base / "JPEGImages" / f"{img_id}.png")
        (base / "Annotations" / f"{img_id}.xml").write_text(
            anno_xml(*(obj_xml(n, b) for n, b in objects), width=w, height=h)
        )
    (base / "ImageSets/Main/train.txt").write_text("".join(f"{i}\n" for i in images))
    return base


# ------------------------------------------------------------------ item 6: EXIF
# orientation
@pytest.mark.parametrize(
    "orientation, turn",
    [
        (6, Image.Transpose.ROTATE_270),
        (8, Image.Transpose.ROTATE_90),
        (3, Image.Transpose.ROTATE_180),
    ],
)
def test_read_image_applies_exif_orientation(tmp_path, orientation, turn):
    stored = _phone_jpeg(tmp_path / "p.jpg", orientation)
    image = read_image(tmp_path / "p.jpg")
    upright = (
        np.asarray(stored.transpose(turn), dtype=np.float32) / 255
    )  # what a photo viewer shows
    assert image.shape == (3, *upright.shape[:2])
    assert (
        np.abs(image.permute(1, 2, 0).numpy() - upright).mean() < 0.02
    )  # JPEG noise only
    with Image.open(tmp_path / "p.jpg") as im:  # a PIL image the caller opened
        assert (
            torch.equal(pil_to_float(im), image) and im.size == stored.size
        )  # ... is not changed


def test_check_dataset_and_items_name_exif(tmp_path):
    base = tmp_path / "VOCt"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (base / sub).mkdir(parents=True)
    write_classes(base / "classes.txt", ["box"])
    _phone_jpeg(base / "JPEGImages" / "upright.jpg")  # stored 60x40, shown 40x60
    _phone_jpeg(base / "JPEGImages" / "sideways.jpg")
    box = [obj_xml("box", (5, 5, 30, 20))]
    (base / "Annotations/upright.xml").write_text(
        anno_xml(*box, width=40, height=60)
    )  # annotated as shown
    (base / "Annotations/sideways.xml").write_text(
        anno_xml(*box, width=60, height=40)
    )  # annotated as stored
    (base / "ImageSets/Main/train.txt").write_text("upright\nsideways\n")
    problems = check_dataset(tmp_path, [("t", "train")])
    assert (
        len(problems) == 1
        and "sideways.jpg: its EXIF orientation 6 turns the stored 60x40 pixels "
        "to 40x60"
        in problems[0]
    )
    assert "\n" not in problems[0]
    ds = VOCDetection(tmp_path, [("t", "train")])
    image, target = ds[0]
    assert image.shape == (3, 60, 40) and torch.allclose(
        target[0, :4], torch.tensor([4 / 40, 4 / 60, 29 / 40, 19 / 60])
    )
    with pytest.raises(ValueError, match="sideways.jpg: its EXIF orientation 6 turns"):
        ds[1]
    anno = dict(
        width=60,
        height=40,
        boxes=torch.zeros(0, 4),
        labels=torch.zeros(0, dtype=torch.int64),
        difficult=torch.zeros(0, dtype=torch.bool),
    )
    with pytest.raises(
        ValueError, match="EXIF orientation 6 .* but x.json says 60x40"
    ):  # the COCO reader too
        read_item(base / "JPEGImages" / "sideways.jpg", anno, source="x.json")


# ------------------------------------------------------------------ item 7: bit depths
# and modes
def test_16_bit_and_float_images_are_scaled(tmp_path):
    ramp = np.linspace(0, 65535, 32 * 48).reshape(32, 48).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")  # I;16 when read back
    x = read_image(tmp_path / "deep.png")
    assert x.shape == (3, 32, 48) and torch.allclose(
        x[1], torch.from_numpy(ramp / 65535.0).float(), atol=1e-6
    )
    assert 0.45 < x.mean() < 0.55  # not all white, not all black
    as_int = Image.fromarray(ramp.astype(np.int32))  # mode I (older PILs, TIFF)
    assert as_int.mode == "I" and torch.allclose(pil_to_float(as_int), x)
    small = Image.fromarray(
        (np.arange(256, dtype=np.int32).reshape(16, 16))
    )  # mode I holding 8-bit values
    assert torch.allclose(
        pil_to_float(small)[0], torch.arange(256).reshape(16, 16) / 255.0
    )
    unit = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(unit).save(tmp_path / "unit.tif")  # mode F in [0, 1]
    assert torch.allclose(read_image(tmp_path / "unit.tif")[2], torch.from_numpy(unit))
    assert torch.allclose(
        pil_to_float(Image.fromarray(unit * 65535))[0],
        torch.from_numpy(unit),
        atol=1e-6,
    )


def test_alpha_palette_and_cmyk(tmp_path):
    rgba = np.zeros((10, 20, 4), np.uint8)
    rgba[:, :10] = (255, 0, 0, 255)  # opaque red | transparent black
    Image.fromarray(rgba).save(tmp_path / "a.png")
    x = read_image(tmp_path / "a.png")
    assert torch.equal(x[:, 0, 0], torch.tensor([1.0, 0, 0])) and torch.equal(
        x[:, 0, 15], torch.ones(3)
    )
    la = Image.fromarray(
        np.stack([np.full((4, 4), 0, np.uint8), np.full((4, 4), 0, np.uint8)], -1), "LA"
    )
    assert torch.equal(
        pil_to_float(la), torch.ones(3, 4, 4)
    )  # transparent grey -> white
    p = Image.fromarray(rgba[..., :3]).convert("P")
    p.info["transparency"] = 0
    p.save(tmp_path / "p.png", transparency=int(np.asarray(p)[0, 15]))
    y = read_image(tmp_path / "p.png")
    assert torch.equal(y[:, 0, 15], torch.ones(3)) and torch.equal(
        y[:, 0, 0], torch.tensor([1.0, 0, 0])
    )
    Image.fromarray(rgba[..., :3]).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    z = read_image(tmp_path / "c.jpg")
    assert (
        z.shape == (3, 10, 20)
        and z[0, 5, 3] > 0.9
        and z[1, 5, 3] < 0.1
        and z[:, 5, 16].max() < 0.1
    )
    assert torch.equal(
        read_image(tmp_path / "a.png"), pil_to_float(Image.open(tmp_path / "a.png"))
    )


# ------------------------------------------------------------------ item 10: NaN and
# inf coordinates
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_nan_coordinates_name_file_and_object(tmp_path, value):
    base = _voc_folder(
        tmp_path,
        {
            "a": (
                _scene(),
                (60, 40),
                [("box", (2, 2, 20, 20)), ("ball", (value, 3, 30, 30))],
            )
        },
    )
    anno, problems = parse_voc_xml(base / "Annotations/a.xml", ("box", "ball"))
    assert len(problems) == 1 and "a.xml: object 1 ('ball'): <bndbox>" in problems[0]
    assert "is not four finite numbers" in problems[0] and len(anno["labels"]) == 1
    assert check_dataset(tmp_path, [("t", "train")]) == problems
    with pytest.raises(ValueError, match=r"a.xml: object 1 \('ball'\)"):
        VOCDetection(tmp_path, [("t", "train")])[0]


def test_infinite_size_is_a_problem_not_a_traceback(tmp_path):
    (tmp_path / "a.xml").write_text(
        "<annotation><size><width>inf</width><height>40</height></size></annotation>"
    )
    assert parse_voc_xml(tmp_path / "a.xml", ["box"])[1] == [
        f"{tmp_path / 'a.xml'}: <size> needs positive <width> and <height>"
    ]


# ------------------------------------------------------------------ item 9: a set
# without a single object
def test_a_set_without_objects_is_an_error(tmp_path):
    _voc_folder(
        tmp_path, {"a": (_scene(), (60, 40), []), "b": (_scene(), (60, 40), [])}
    )
    problems = check_dataset(tmp_path, [("t", "train")])
    assert len(problems) == 1 and problems[0].endswith(
        "train.txt: none of its 2 images has an object (nothing to train on or score)"
    )
    ds = VOCDetection(
        tmp_path, [("t", "train")]
    )  # reading it is fine: an image may have no objects
    assert ds[0][1].shape == (0, 5)
    with pytest.raises(
        ValueError, match=r"none of the 2 images of \[\('t', 'train'\)\] has an object"
    ) as info:
        ds.require_objects()
    assert "\n" not in str(info.value)


def test_one_image_without_objects_is_fine_and_difficult_only_is_not(tmp_path):
    base = _voc_folder(
        tmp_path,
        {
            "a": (_scene(), (60, 40), []),
            "b": (_scene(), (60, 40), [("box", (2, 2, 20, 20))]),
        },
    )
    assert check_dataset(tmp_path, [("t", "train")]) == []
    assert VOCDetection(tmp_path, [("t", "train")]).require_objects() is not None
    (base / "Annotations/b.xml").write_text(
        anno_xml(obj_xml("box", (2, 2, 20, 20), difficult=1), width=60, height=40)
    )
    with pytest.raises(
        ValueError, match=r"has an object \(difficult ones do not count"
    ):
        VOCDetection(tmp_path, [("t", "train")]).require_objects()
    assert (
        VOCDetection(tmp_path, [("t", "train")], keep_difficult=True).require_objects()
        is not None
    )


# ------------------------------------------------------------------ item 18: ids with
# spaces, classes.txt encoding
def test_image_ids_with_spaces(tmp_path):
    base = _voc_folder(
        tmp_path,
        {
            "my photo": (_scene(), (60, 40), [("box", (2, 2, 20, 20))]),
            "photo 1": (_scene(), (60, 40), [("ball", (2, 2, 20, 20))]),
            "plain": (_scene(), (60, 40), [("box", (2, 2, 20, 20))]),
        },
    )
    list_file = base / "ImageSets/Main/train.txt"
    assert read_image_ids(list_file, "t", tmp_path) == [
        "my photo",
        "photo 1",
        "plain",
    ]  # nothing cut
    assert check_dataset(tmp_path, [("t", "train")]) == []
    ds = VOCDetection(tmp_path, [("t", "train")])
    assert [ds[i][1][0, 4].item() for i in range(3)] == [0, 1, 0]
    (base / "ImageSets/Main/box_train.txt").write_text(
        "plain  1\nphoto 1 -1\n"
    )  # VOC's per-class files
    assert read_image_ids(base / "ImageSets/Main/box_train.txt", "t", tmp_path) == [
        "plain",
        "photo 1",
    ]
    (base / "ImageSets/Main/bad.txt").write_text("no such id\n")
    problems = check_dataset(tmp_path, [("t", "bad")])
    assert any("no such id.xml: annotation file is missing" in p for p in problems)


def test_classes_txt_that_is_not_utf8(tmp_path):
    (tmp_path / "classes.txt").write_text("box\nball\n", encoding="utf-16")
    with pytest.raises(
        ValueError, match=r"classes.txt: not UTF-8 text .*save it as UTF-8"
    ) as info:
        read_classes(tmp_path / "classes.txt")
    assert "\n" not in str(info.value) and str(tmp_path) in str(info.value)
    (tmp_path / "bom.txt").write_text("box\nball\n", encoding="utf-8-sig")
    assert read_classes(tmp_path / "bom.txt") == ("box", "ball")


# ------------------------------------------------------------------ item 19: boxes
# slightly outside the image
def _reference_match(truths, labels, priors, threshold=0.5, variances=(0.1, 0.2)):
    """ssd.pytorch's `match` + `encode` for one image, written out with torchvision's
    box_iou."""
    from torchvision.ops import box_iou

    pf = torch.cat(
        [priors[:, :2] - priors[:, 2:] / 2, priors[:, :2] + priors[:, 2:] / 2], 1
    )
    overlaps = box_iou(truths, pf)  # (M, P)
    best_prior_idx = overlaps.max(1).indices
    best_truth_overlap, best_truth_idx = overlaps.max(0)
    best_truth_overlap.index_fill_(0, best_prior_idx, 2)
    for j in range(best_prior_idx.size(0)):
        best_truth_idx[best_prior_idx[j]] = j
    matches = truths[best_truth_idx]
    conf = labels[best_truth_idx].long() + 1
    conf[best_truth_overlap < threshold] = 0
    g_cxcy = ((matches[:, :2] + matches[:, 2:]) / 2 - priors[:, :2]) / (
        variances[0] * priors[:, 2:]
    )
    g_wh = torch.log((matches[:, 2:] - matches[:, :2]) / priors[:, 2:]) / variances[1]
    return torch.cat([g_cxcy, g_wh], 1), conf


def _reference_loss(loc, conf, priors, targets, negpos_ratio=3):
    "ssd.pytorch's MultiBoxLoss.forward, image by image."
    import torch.nn.functional as F

    B, P, C = conf.shape
    loc_t, conf_t = torch.zeros(B, P, 4), torch.zeros(B, P, dtype=torch.long)
    for b, t in enumerate(targets):
        loc_t[b], conf_t[b] = _reference_match(t[:, :4], t[:, 4], priors)
    pos = conf_t > 0
    loss_l = F.smooth_l1_loss(loc[pos], loc_t[pos], reduction="sum")
    batch_conf = conf.reshape(-1, C)
    loss_c = (
        torch.logsumexp(batch_conf, 1) - batch_conf.gather(1, conf_t.view(-1, 1))[:, 0]
    )
    loss_c = loss_c.view(B, P).masked_fill(pos, 0)
    idx_rank = loss_c.sort(1, descending=True)[1].sort(1)[1]
    num_neg = torch.clamp(negpos_ratio * pos.long().sum(1, keepdim=True), max=P - 1)
    neg = idx_rank < num_neg
    keep = pos | neg
    loss_c = F.cross_entropy(conf[keep], conf_t[keep], reduction="sum")
    n = pos.sum()
    return loss_l / n, loss_c / n, loc_t, conf_t


def test_slightly_outside_boxes_match_and_lose_as_in_the_reference():
    from ssdbook.loss import MultiBoxLoss
    from ssdbook.matching import match_batch
    from ssdbook.priors import PriorBox, voc

    priors = PriorBox(voc).forward()
    targets = [
        torch.tensor([[-0.03, 0.10, 0.40, 0.62, 3.0], [0.55, -0.02, 1.02, 0.48, 7.0]]),
        torch.tensor([[0.20, 0.30, 1.04, 1.01, 0.0]]),
        torch.tensor([[-0.45, -0.40, 0.30, 0.35, 5.0], [0.70, 0.70, 1.45, 1.48, 1.0]]),
    ]
    check_targets(targets, num_classes=21)  # accepted (it said "they look like pixels")
    loc_t, conf_t = match_batch(targets, priors)
    torch.manual_seed(0)
    loc, conf = torch.randn(3, len(priors), 4), torch.randn(3, len(priors), 21)
    ref_l, ref_c, ref_loc_t, ref_conf_t = _reference_loss(loc, conf, priors, targets)
    assert torch.equal(conf_t, ref_conf_t) and torch.allclose(
        loc_t, ref_loc_t, atol=1e-5
    )
    loss_l, loss_c = MultiBoxLoss(21)((loc, conf, priors), targets)
    assert torch.allclose(loss_l, ref_l, rtol=1e-5) and torch.allclose(
        loss_c, ref_c, rtol=1e-5
    )
    with pytest.raises(
        ValueError, match="look like pixels"
    ):  # clearly pixels are still caught
        check_targets([torch.tensor([[30.0, 60.0, 150.0, 180.0, 2.0]])])
    with pytest.raises(ValueError, match="below -0.5"):
        check_targets([torch.tensor([[-0.6, 0.1, 0.5, 0.5, 2.0]])])


def test_draw_boxes_shows_a_pil_phone_photo_upright(tmp_path):
    """Pictures: a PIL image handed to draw_boxes is drawn as a viewer shows it (EXIF
    orientation applied)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ssdbook.data import draw_boxes

    _phone_jpeg(tmp_path / "p.jpg", 6, w=60, h=40)
    fig, ax = plt.subplots()
    with Image.open(tmp_path / "p.jpg") as im:
        draw_boxes(ax, im, torch.tensor([[0.1, 0.1, 0.5, 0.5]]))
    assert ax.images[-1].get_array().shape[:2] == (60, 40)
    plt.close(fig)


def test_an_image_set_file_that_is_not_utf8(tmp_path):
    base = _voc_folder(tmp_path, {"a": (_scene(), (60, 40), [("box", (2, 2, 20, 20))])})
    (base / "ImageSets/Main/train.txt").write_text("a\n", encoding="utf-16")
    problems = check_dataset(tmp_path, [("t", "train")])
    assert len(problems) == 1 and "train.txt: not UTF-8 text" in problems[0]
    with pytest.raises(ValueError, match="train.txt: not UTF-8 text"):
        VOCDetection(tmp_path, [("t", "train")])


def test_exif_orientation_on_16_bit_and_rgba(tmp_path):
    """The turn and the scaling compose: a 16-bit PNG and an RGBA PNG with an EXIF
    orientation are read upright."""
    deep = Image.fromarray((np.arange(40 * 60).reshape(40, 60) * 20).astype(np.uint16))
    exif = deep.getexif()
    exif[0x0112] = 6
    deep.save(tmp_path / "d.png", exif=exif)
    x = read_image(tmp_path / "d.png")
    assert x.shape == (3, 60, 40) and abs(x.max().item() - 2399 * 20 / 65535) < 1e-6
    clear = Image.fromarray(np.zeros((40, 60, 4), np.uint8), "RGBA")
    exif = clear.getexif()
    exif[0x0112] = 8
    clear.save(tmp_path / "c.png", exif=exif)
    assert torch.equal(read_image(tmp_path / "c.png"), torch.ones(3, 60, 40))
