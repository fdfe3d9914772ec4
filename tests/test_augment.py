"""Tests of ssdbook.augment (chapter 8): the SSD training augmentation on
torchvision.transforms.v2."""

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torchvision import tv_tensors
from torchvision.ops import box_iou
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from ssdbook.augment import (
    REFERENCE_CROP_OPTIONS,
    RandomColorDistort,
    SSDAugmentation,
    SSDRandomIoUCrop,
    check_sample,
    color_affine,
    from_sample,
    hue_matrix,
    to_sample,
)
from ssdbook.data import IMAGENET_MEAN, IMAGENET_STD, BaseTransform

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def samples(draw, max_objects=6):
    """A random (image, target) pair of the contract: small image, 0..max_objects valid
    boxes in fractions."""
    h, w = draw(st.integers(16, 96)), draw(st.integers(16, 96))
    n = draw(st.integers(0, max_objects))
    rows = []
    for _ in range(n):
        x1, x2 = sorted(
            draw(st.lists(st.floats(0, 1), min_size=2, max_size=2, unique=True))
        )
        y1, y2 = sorted(
            draw(st.lists(st.floats(0, 1), min_size=2, max_size=2, unique=True))
        )
        if x2 - x1 < 1e-3 or y2 - y1 < 1e-3:
            continue
        rows.append([x1, y1, x2, y2, draw(st.integers(0, 19))])
    target = torch.tensor(rows, dtype=torch.float32).reshape(-1, 5)
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    return torch.rand(3, h, w, generator=g), target, seed


def assert_valid(image, target, in_target, size=300):
    assert image.shape == (3, size, size) and image.dtype == torch.float32
    assert torch.isfinite(image).all()
    assert target.dtype == torch.float32 and target.ndim == 2 and target.shape[1] == 5
    assert len(target) <= len(in_target)
    boxes = target[:, :4]
    assert (boxes >= 0).all() and (boxes <= 1).all(), boxes
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all(), (
        boxes
    )
    # at least one output pixel wide and high (SanitizeBoundingBoxes min_size=1)
    assert ((boxes[:, 2:] - boxes[:, :2]) * size >= 1 - 1e-4).all(), boxes
    # labels: a sub-multiset of the input labels
    for label in target[:, 4].unique():
        assert (target[:, 4] == label).sum() <= (in_target[:, 4] == label).sum()


VARIANTS = {
    "default": dict(),
    "reference": dict(crop_options=REFERENCE_CROP_OPTIONS, crop_rule="centre"),
    "all-rule": dict(crop_rule="all"),
    "torchvision-photometric": dict(photometric="torchvision"),
    "light": dict(photometric=False, expand=False),
    "small": dict(size=64),
}


@pytest.mark.parametrize("name", list(VARIANTS))
@SETTINGS
@given(sample=samples())
def test_output_is_valid(name, sample):
    image, target, seed = sample
    kw = VARIANTS[name]
    aug = SSDAugmentation(**kw)
    torch.manual_seed(seed)
    out_image, out_target = aug(image, target)
    assert_valid(out_image, out_target, target, size=kw.get("size", 300))


@SETTINGS
@given(sample=samples())
def test_every_step_keeps_boxes_valid(sample):
    image, target, seed = sample
    torch.manual_seed(seed)
    trace = SSDAugmentation().trace(image, target)
    assert [n for n, *_ in trace] == [
        "input",
        "photometric",
        "zoom out",
        "IoU crop",
        "flip",
        "resize",
    ]
    for name, im, t in trace:
        assert im.shape[0] == 3 and (im >= 0).all() and (im <= 1).all(), name
        assert len(t) <= len(target)
        assert (t[:, :4] >= 0).all() and (t[:, :4] <= 1).all(), name
        assert (t[:, 2] > t[:, 0]).all() and (t[:, 3] > t[:, 1]).all(), name


@SETTINGS
@given(sample=samples(max_objects=4))
def test_deterministic_under_manual_seed(sample):
    image, target, seed = sample
    aug = SSDAugmentation()
    torch.manual_seed(seed)
    a = aug(image, target)
    torch.manual_seed(seed)
    b = aug(image, target)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_empty_target_gives_empty_target():
    aug = SSDAugmentation()
    torch.manual_seed(0)
    for empty in (torch.zeros(0, 5), torch.zeros(0)):
        for _ in range(20):
            image, target = aug(torch.rand(3, 40, 50), empty)
            assert image.shape == (3, 300, 300) and target.shape == (0, 5)


def test_objects_can_all_disappear():
    aug = SSDAugmentation(photometric=False, crop=False, flip=False)
    zoom = aug.steps[0][1]
    zoom.p, zoom.side_range = 1.0, (4.0, 4.0)
    tiny = torch.tensor(
        [[0.5, 0.5, 0.5067, 0.5067, 2.0]]
    )  # 2 px in 300 px, 0.5 px after 4x zoom-out
    image, target = aug(torch.rand(3, 300, 300), tiny)
    assert target.shape == (0, 5)


def test_uint8_image_equals_float_image():
    img = torch.randint(0, 256, (3, 30, 40), dtype=torch.uint8)
    target = torch.tensor([[0.1, 0.2, 0.6, 0.9, 4.0]])
    aug = SSDAugmentation()
    torch.manual_seed(3)
    a = aug(img, target)
    torch.manual_seed(3)
    b = aug(img.float() / 255, target)
    assert torch.allclose(a[0], b[0]) and torch.equal(a[1], b[1])


def test_no_augmentation_equals_base_transform():
    aug = SSDAugmentation(photometric=False, expand=False, crop=False, flip=False)
    image = torch.rand(3, 120, 90)
    target = torch.tensor([[0.1, 0.2, 0.6, 0.9, 4.0], [0.3, 0.3, 0.4, 0.5, 0.0]])
    out, t = aug(image, target)
    ref, _ = BaseTransform()(image, target)
    assert torch.allclose(out, ref, atol=1e-4)
    assert torch.allclose(t, target, atol=1e-6)


def test_flip_mirrors_boxes():
    aug = SSDAugmentation(photometric=False, expand=False, crop=False)
    aug.steps[0][1].p = 1.0
    image = torch.rand(3, 60, 80)
    target = torch.tensor([[0.1, 0.2, 0.3, 0.9, 4.0]])
    out, t = aug(image, target)
    assert torch.allclose(t[:, [0, 2]], 1 - target[:, [2, 0]], atol=1e-6)
    assert torch.allclose(t[:, [1, 3, 4]], target[:, [1, 3, 4]])
    ref, _ = BaseTransform()(image.flip(-1))
    assert torch.allclose(out, ref, atol=1e-4)


def test_zoom_out_fill_normalises_to_zero():
    aug = SSDAugmentation(photometric=False, crop=False, flip=False, size=100)
    zoom = aug.steps[0][1]
    zoom.p, zoom.side_range = 1.0, (3.0, 3.0)
    torch.manual_seed(0)
    image, target = aug(
        torch.rand(3, 50, 50), torch.tensor([[0.2, 0.2, 0.8, 0.8, 1.0]])
    )
    # the image covers a third of each side: outside the (padded) box region lies only
    # the fill
    x1, y1, x2, y2 = (target[0, :4] * 100).tolist()
    mask = torch.ones(100, 100, dtype=torch.bool)
    mask[max(0, int(y1 - 12)) : int(y2 + 13), max(0, int(x1 - 12)) : int(x2 + 13)] = (
        False
    )
    assert mask.sum() > 1000
    assert image[:, mask].abs().max() < 1e-5


# ---------------------------------------------------------------- the IoU crop sampler


def _crop_params(crop, image, target):
    sample = to_sample(image, target)
    return crop.make_params(
        [sample["image"], sample["boxes"], sample["labels"]]
    ), sample


@pytest.mark.parametrize("rule", ["any", "all", "centre"])
@pytest.mark.parametrize("min_iou", [0.1, 0.5, 0.9])
@settings(max_examples=20, deadline=None, database=None)
@given(sample=samples(max_objects=4))
def test_crop_respects_min_iou(rule, min_iou, sample):
    image, target, seed = sample
    torch.manual_seed(seed)
    crop = SSDRandomIoUCrop(sampler_options=[min_iou], rule=rule, max_draws=3)
    params, s = _crop_params(crop, image, target)
    if not params:  # gave up after max_draws: whole image (always allowed)
        return
    h, w = image.shape[-2:]
    top, left, ph, pw = params["top"], params["left"], params["height"], params["width"]
    assert 0 <= left and left + pw <= w and 0 <= top and top + ph <= h
    assert 0.3 * w - 1 <= pw <= w and 0.3 * h - 1 <= ph <= h
    assert 0.5 <= pw / ph <= 2.0
    patch = torch.tensor([[left, top, left + pw, top + ph]], dtype=torch.float32)
    boxes = s["boxes"].as_subclass(torch.Tensor)
    if len(boxes) == 0:
        return
    inside = params["is_within_crop_area"]
    assert inside.any()
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    assert torch.equal(
        inside, (cx > left) & (cx < left + pw) & (cy > top) & (cy < top + ph)
    )
    iou = box_iou(patch, boxes)[0]
    if rule == "any":
        assert (iou[inside] >= min_iou - 1e-6).any()
    elif rule == "all":
        assert (iou >= min_iou - 1e-6).all()
    # "centre" (the reference port as it runs): no IoU constraint, one centre inside
    # (checked above)


def test_reference_rule_applies_no_iou_constraint():
    """ssd.pytorch's `if overlap.min() < min_iou and max_iou < overlap.max()` never
    fires (max_iou = inf): with rule='centre' a 0.9 mode still accepts patches whose IoU
    with every object is far below 0.9."""
    image, target = (
        torch.rand(3, 100, 100),
        torch.tensor([[0.0, 0.0, 1.0, 1.0, 1.0]]),
    )  # one object = image
    torch.manual_seed(0)
    low = 0
    for _ in range(30):
        params, s = _crop_params(
            SSDRandomIoUCrop(sampler_options=[0.9], rule="centre", max_draws=1),
            image,
            target,
        )
        if params:
            patch = torch.tensor(
                [
                    [
                        params["left"],
                        params["top"],
                        params["left"] + params["width"],
                        params["top"] + params["height"],
                    ]
                ],
                dtype=torch.float32,
            )
            low += (
                float(box_iou(patch, s["boxes"].as_subclass(torch.Tensor))[0, 0]) < 0.5
            )
    assert low > 5


def test_crop_whole_image_option_is_identity():
    crop = v2.Compose(
        [SSDRandomIoUCrop(sampler_options=[1.0]), v2.SanitizeBoundingBoxes()]
    )
    image, target = torch.rand(3, 40, 50), torch.tensor([[0.1, 0.2, 0.6, 0.9, 4.0]])
    out = from_sample(crop(to_sample(image, target)))
    assert torch.equal(out[0], image) and torch.allclose(out[1], target)


def test_crop_takes_patches_of_empty_images_unlike_torchvision():
    image, empty = torch.rand(3, 60, 60), torch.zeros(0, 5)
    torch.manual_seed(0)
    sample = to_sample(image, empty)
    ours = sum(
        SSDRandomIoUCrop()(sample)["image"].shape != image.shape for _ in range(40)
    )
    theirs = sum(
        v2.RandomIoUCrop()(sample)["image"].shape != image.shape for _ in range(40)
    )
    assert theirs == 0 and ours > 20


def test_crop_rejects_bad_arguments():
    with pytest.raises(ValueError, match="rule"):
        SSDRandomIoUCrop(rule="most")
    with pytest.raises(ValueError, match="min_scale"):
        SSDRandomIoUCrop(min_scale=1.5)
    with pytest.raises(ValueError, match="min_scale"):
        SSDRandomIoUCrop(min_scale=0.0)


# ---------------------------------------------------------------- the colour matrix


@pytest.mark.parametrize("contrast_before", [True, False])
def test_color_affine_matches_torchvision_linear_ops(contrast_before):
    x = 0.35 + 0.3 * torch.rand(
        3, 32, 48
    )  # mid-range: no clamping inside torchvision's chain
    A, b = color_affine(
        x.reshape(3, -1).mean(1),
        brightness=1.1,
        contrast=0.8,
        saturation=1.2,
        contrast_before=contrast_before,
        permutation=torch.tensor([2, 0, 1]),
    )
    ours = (A @ x.reshape(3, -1) + b[:, None]).reshape(x.shape)
    y = F.adjust_brightness(x, 1.1)
    y = F.adjust_contrast(y, 0.8) if contrast_before else y
    y = F.adjust_saturation(y, 1.2)
    y = y if contrast_before else F.adjust_contrast(y, 0.8)
    y = F.permute_channels(y, [2, 0, 1])
    assert torch.allclose(ours, y, atol=1e-5)


def test_hue_matrix_turns_like_hsv_and_keeps_grey():
    assert torch.allclose(hue_matrix(0.0), torch.eye(3), atol=1e-6)
    assert torch.allclose(hue_matrix(1.0), torch.eye(3), atol=1e-5)
    grey = torch.full((3,), 0.4)
    assert torch.allclose(hue_matrix(0.07) @ grey, grey, atol=1e-5)
    red = torch.tensor([0.8, 0.3, 0.2])
    for h in (0.03, -0.03):
        ours, theirs = hue_matrix(h) @ red, F.adjust_hue(red.view(3, 1, 1), h).flatten()
        assert torch.sign(ours[1] - red[1]) == torch.sign(
            theirs[1] - red[1]
        )  # same direction on the wheel
        assert (ours - theirs).abs().max() < 0.15  # not the same map: documented


def test_random_color_distort_leaves_boxes_and_stays_in_range():
    image, target = torch.rand(3, 30, 30), torch.tensor([[0.1, 0.2, 0.6, 0.9, 4.0]])
    t = RandomColorDistort(p=1.0)
    torch.manual_seed(0)
    for _ in range(10):
        out = t(to_sample(image, target))
        assert torch.equal(
            out["boxes"].as_subclass(torch.Tensor),
            to_sample(image, target)["boxes"].as_subclass(torch.Tensor),
        )
        assert isinstance(out["image"], tv_tensors.Image)
        assert out["image"].min() >= 0 and out["image"].max() <= 1


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "image, target, match",
    [
        (torch.rand(1, 30, 30), torch.zeros(0, 5), "3, H, W"),
        (torch.rand(30, 30), torch.zeros(0, 5), "3, H, W"),
        (torch.ones(3, 30, 30, dtype=torch.int32), torch.zeros(0, 5), "float"),
        (torch.rand(3, 30, 30), torch.zeros(2, 4), r"\(num_objects, 5\)"),
        (
            torch.rand(3, 30, 30),
            torch.tensor([[0.5, 0.1, 0.4, 0.6, 1.0]]),
            "box 0 .* is degenerate",
        ),
        (
            torch.rand(3, 30, 30),
            torch.tensor([[0.1, 0.1, 0.4, 0.6, 1.0], [0.1, 0.1, 0.4, math.nan, 1.0]]),
            "box 1 .* not finite",
        ),
        (
            torch.rand(3, 30, 30),
            torch.tensor([[3.0, 4.0, 20.0, 25.0, 1.0]]),
            "look like pixels",
        ),
        (
            torch.rand(3, 30, 30),
            torch.tensor([[0.1, 0.1, 0.4, 0.6, -1.0]]),
            "negative label",
        ),
        (torch.rand(3, 30, 30), torch.tensor([[0.1, 0.1, 0.4, 0.6, 1.5]]), "label"),
    ],
)
def test_bad_input_is_a_clear_value_error(image, target, match):
    with pytest.raises(ValueError, match=match):
        SSDAugmentation()(image, target)


def test_small_overshoot_is_clamped():
    image, target = check_sample(
        torch.rand(3, 10, 10), torch.tensor([[-0.005, 0.0, 1.004, 0.5, 1.0]])
    )
    assert target[0, :4].tolist() == [0.0, 0.0, 1.0, 0.5]


def test_bad_photometric_option():
    with pytest.raises(ValueError, match="photometric"):
        SSDAugmentation(photometric="strong")


def test_defaults_follow_the_contract():
    aug = SSDAugmentation()
    assert (
        aug.size == 300
        and aug.mean == tuple(IMAGENET_MEAN)
        and aug.std == tuple(IMAGENET_STD)
    )
    assert [n for n, _ in aug.steps] == [
        "photometric",
        "zoom out",
        "IoU crop",
        "flip",
        "resize",
    ]


def test_torchvision_floor_is_checked():
    """The override of make_params/transform needs torchvision >= 0.21; the module
    checks it at import (loudly)."""
    import ssdbook.augment as aug

    src = open(aug.__file__).read()
    assert (
        'hasattr(v2.Transform, "make_params")' in src and "torchvision >= 0.21" in src
    )
    assert (
        hasattr(v2.Transform, "make_params")
        and "make_params" in SSDRandomIoUCrop.__dict__
    )


# ---------------------------------------------------------------- the batched
# augmentation

from ssdbook.augment import apply_color, batch_augment, color_params, params_affine  # noqa: E402
from ssdbook.data import normalize  # noqa: E402


def test_batch_augment_keeps_boxes_valid():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, 3, 300, 300), dtype=torch.uint8)
    targets = [
        torch.tensor([[0.1, 0.2, 0.5, 0.6, 1.0], [0.6, 0.6, 0.9, 0.95, 3.0]])
        for _ in range(5)
    ]
    targets.append(torch.zeros(0, 5))  # an image with no objects is valid
    x, t = batch_augment(images, targets, g, IMAGENET_MEAN, IMAGENET_STD)
    assert (
        x.shape == (6, 3, 300, 300)
        and x.dtype == torch.float32
        and torch.isfinite(x).all()
    )
    assert len(t) == 6 and t[5].shape == (0, 5)
    for b in t[:5]:
        assert len(b) >= 1
        assert (b[:, :4] >= 0).all() and (b[:, :4] <= 1).all()
        assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()
        assert set(b[:, 4].tolist()) <= {1.0, 3.0}


def test_batch_augment_flip_moves_the_object():
    img = torch.zeros(1, 3, 300, 300, dtype=torch.uint8)
    img[:, :, 30:90, 15:75] = 255  # a white square at x 15..75, y 30..90
    tgt = [torch.tensor([[15 / 300, 30 / 300, 75 / 300, 90 / 300, 0.0]])]
    for seed in range(4):
        x, t = batch_augment(
            img,
            tgt,
            torch.Generator().manual_seed(seed),
            (0, 0, 0),
            (1, 1, 1),
            flip=1.0,
            photometric=0.0,
            zoom=0.0,
        )
        assert torch.allclose(t[0][0, :4], torch.tensor([225, 30, 285, 90]) / 300)
        assert x[0, 0, 60, 250] == 1 and x[0, 0, 60, 40] == 0
    # no augmentation at all == plain normalisation
    x, t = batch_augment(
        img,
        tgt,
        torch.Generator().manual_seed(0),
        IMAGENET_MEAN,
        IMAGENET_STD,
        flip=0.0,
        photometric=0.0,
        zoom=0.0,
    )
    assert torch.equal(x, normalize(img, IMAGENET_MEAN, IMAGENET_STD)) and torch.equal(
        t[0], tgt[0]
    )


def test_batch_augment_is_a_function_of_the_generator():
    images = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
    targets = [torch.tensor([[0.1, 0.1, 0.6, 0.7, 2.0]])] * 4
    a = batch_augment(images, targets, torch.Generator().manual_seed(5))
    b = batch_augment(images, targets, torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and all(
        torch.equal(p, q) for p, q in zip(a[1], b[1])
    )


def test_one_colour_implementation_for_image_and_batch():
    """The batched colour step and RandomColorDistort give the same pixels for the same
    parameters."""
    images = torch.rand(3, 3, 40, 50)
    distort = RandomColorDistort(p=1.0)
    g = torch.Generator().manual_seed(1)
    for i in range(3):
        params = color_params(distort, g)
        one = distort.transform(tv_tensors.Image(images[i]), params).as_subclass(
            torch.Tensor
        )
        A, b = params_affine(images[i : i + 1].mean((2, 3))[0], params)
        assert torch.equal(one, apply_color(images[i : i + 1], A[None], b[None])[0])
    # the draw follows the transform's own ranges
    d = RandomColorDistort(brightness=(0.9, 0.95), p=1.0)
    assert all(
        0.9 <= color_params(d, g)["brightness_factor"] <= 0.95 for _ in range(20)
    )
