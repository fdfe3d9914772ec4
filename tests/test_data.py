"""Tests of ssdbook.data (chapter 1): the target contract, classes.txt, pixel helpers,
BaseTransform, collate, pictures."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from ssdbook.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    SHAPES_CLASSES,
    VOC_CLASSES,
    BaseTransform,
    check_classes,
    check_targets,
    denormalize,
    detection_collate,
    draw_boxes,
    normalize,
    read_classes,
    show_batch,
    to_float_image,
    write_classes,
)
from voc_helpers import shapes_root, train_set  # noqa: F401  (fixtures)


def test_collate_edge_cases():
    imgs = [torch.rand(3, 8, 8) for _ in range(3)]
    images, targets = detection_collate(
        [
            (imgs[0], torch.zeros(0, 5)),
            (imgs[1], np.zeros((0,))),
            (imgs[2], np.array([[0.1, 0.1, 0.5, 0.5, 3]])),
        ]
    )
    assert images.shape == (3, 3, 8, 8) and [tuple(t.shape) for t in targets] == [
        (0, 5),
        (0, 5),
        (1, 5),
    ]
    assert all(t.dtype == torch.float32 for t in targets)
    with pytest.raises(ValueError, match="image 1 has shape"):
        detection_collate(
            [(imgs[0], torch.zeros(0, 5)), (torch.rand(3, 9, 8), torch.zeros(0, 5))]
        )
    with pytest.raises(
        ValueError,
        match=r"image 0: a target must be a \(num_objects, 5\) tensor "
        r".* got shape \(2, 4\)",
    ):
        detection_collate([(imgs[0], torch.zeros(2, 4))])
    with pytest.raises(ValueError, match="empty batch"):
        detection_collate([])


def test_base_transform_matches_torchvision():
    from torchvision.transforms import v2

    x = torch.rand(3, 200, 400)
    y, t = BaseTransform(300)(x, "target")
    ref = v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)(
        v2.Resize((300, 300), antialias=True)(x)
    )
    assert (
        t == "target" and y.shape == (3, 300, 300) and torch.allclose(y, ref, atol=1e-4)
    )
    assert torch.allclose(
        denormalize(BaseTransform(200)(x[:, :, :200])[0]), x[:, :, :200], atol=1e-5
    )
    u8 = (x * 255).round().to(torch.uint8)
    assert torch.allclose(BaseTransform()(u8)[0], BaseTransform()(u8.float() / 255)[0])
    assert BaseTransform(64)(torch.rand(2, 3, 50, 70))[0].shape == (2, 3, 64, 64)
    with pytest.raises(ValueError, match="expects an image"):
        BaseTransform()(torch.rand(300, 300))


def test_pictures(train_set):
    items = [train_set[i] for i in range(6)]
    images, targets = detection_collate([BaseTransform()(im, t) for im, t in items])
    fig = show_batch(
        images,
        targets,
        SHAPES_CLASSES,
        ncols=3,
        predictions=[
            {"boxes": t[:, :4], "labels": t[:, 4], "scores": torch.ones(len(t))}
            for t in targets
        ],
    )
    assert fig._suptitle.get_text() == "images (6, 3, 300, 300)"
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [f"targets[{i}] {tuple(t.shape)}" for i, t in enumerate(targets)]
    assert sum(len(ax.patches) for ax in fig.axes) == 2 * sum(len(t) for t in targets)
    plt.close(fig)
    fig, ax = plt.subplots()
    draw_boxes(
        ax,
        items[0][0],
        torch.tensor([[10.0, 20.0, 100.0, 200.0]]),
        [3],
        SHAPES_CLASSES,
        [0.9],
    )
    assert ax.texts[0].get_text() == "star 0.90" and ax.patches[0].get_width() == 90
    with pytest.raises(ValueError, match="image=None"):
        draw_boxes(plt.subplots()[1], None, torch.zeros(0, 4))
    plt.close("all")


def test_constants():
    assert (
        len(VOC_CLASSES) == 20
        and VOC_CLASSES[14] == "person"
        and len(set(VOC_CLASSES)) == 20
    )
    assert len(SHAPES_CLASSES) == len(set(SHAPES_CLASSES)) >= 5
    assert len(IMAGENET_MEAN) == len(IMAGENET_STD) == 3


def test_image_helpers():
    u8 = torch.randint(0, 256, (2, 3, 5, 7), dtype=torch.uint8)
    x = to_float_image(u8)
    assert x.dtype == torch.float32 and torch.equal(x * 255, u8.float())
    assert torch.equal(to_float_image(x), x)
    hwc = u8[0].permute(1, 2, 0).numpy()  # a decoded image: numpy (H, W, 3) uint8
    chw = to_float_image(hwc.transpose(2, 0, 1))
    assert chw.is_contiguous() and chw.dtype == torch.float32 and torch.equal(chw, x[0])
    n = normalize(x)
    mean, std = (
        torch.tensor(IMAGENET_MEAN).view(3, 1, 1),
        torch.tensor(IMAGENET_STD).view(3, 1, 1),
    )
    assert torch.allclose(n[1], (x[1] - mean) / std) and torch.allclose(
        normalize(x[0]), n[0]
    )
    assert torch.allclose(denormalize(n), x, atol=1e-6) and torch.allclose(
        denormalize(n[0]), x[0], atol=1e-6
    )
    assert torch.allclose(normalize(u8), n)
    with pytest.raises(ValueError, match=r"expected an image \(3, H, W\) or a batch"):
        normalize(torch.rand(4, 5, 5))


def test_classes_file_round_trip_and_errors(tmp_path):
    p = write_classes(tmp_path / "classes.txt", ["box", "ball"])
    assert p.read_text() == "box\nball\n" and read_classes(p) == ("box", "ball")
    (tmp_path / "trailing.txt").write_text("box\nball\n\n\n")
    assert read_classes(tmp_path / "trailing.txt") == ("box", "ball")
    (tmp_path / "windows.txt").write_bytes(
        "box\r\nball\r\n".encode("utf-8-sig")
    )  # BOM + CRLF
    assert read_classes(tmp_path / "windows.txt") == ("box", "ball")
    cases = {
        "dup.txt": ("box\nball\nBox\n", r"dup.txt: class 3 'Box' repeats class 1"),
        "empty_line.txt": ("box\n\nball\n", r"empty_line.txt: class 2 is ''"),
        "empty.txt": ("", r"empty.txt: the class list is empty"),
    }
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


def _t(*rows):
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 5)


@pytest.mark.parametrize(
    "targets, pattern",
    [
        (
            [_t([30, 60, 150, 180, 2])],
            r"image 0, box 0 .* look like pixels"
            r".*divide x by the image width and y by its height",
        ),
        (
            [_t([0.1, 0.1, 0.5, 0.5, 1]), _t([0.1, 0.2, 0.5, 0.6, -0.5])],
            r"image 1, box 0 .*label -0.5, which is not a whole number",
        ),
        ([_t([0.1, 0.2, 0.5, 0.6, 2.7])], r"label 2.7, which is not a whole number"),
        (
            [
                torch.zeros(0, 5),
                _t([0.1, 0.1, 0.5, 0.5, 1], [0.1, 0.2, 0.5, 0.6, float("nan")]),
            ],
            r"image 1, box 1 .* has label NaN",
        ),
        ([_t([0.1, 0.2, 0.5, 0.6, float("inf")])], r"has an infinite label"),
        ([_t([0.1, 0.2, 0.5, 0.6, -1])], r"has a negative label -1"),
        ([_t([0.1, float("nan"), 0.5, 0.6, 1])], r"coordinate that is not finite"),
        ([_t([0.1, 0.2, float("inf"), 0.6, 1])], r"coordinate that is not finite"),
        ([_t([-0.7, 0.2, 0.5, 0.6, 1])], r"coordinate below -0.5"),
        ([_t([0.1, 0.2, 1.6, 0.6, 1])], r"look like pixels"),
        ([_t([0.5, 0.2, 0.5, 0.6, 1])], r"degenerate \(width 0, height 0.4"),
        ([_t([0.1, 0.7, 0.5, 0.6, 1])], r"degenerate"),
        (
            [torch.zeros(2, 4)],
            r"image 0: a target must be a \(num_objects, 5\) tensor "
            r".* got shape \(2, 4\)",
        ),
        ([torch.zeros(5)], r"got shape \(5,\)"),
        ([torch.zeros(1, 2, 5)], r"got shape \(1, 2, 5\)"),
    ],
)
def test_check_targets_names_each_mistake(targets, pattern):
    with pytest.raises(ValueError, match=pattern) as info:
        check_targets(targets)
    assert "\n" not in str(info.value)


def test_check_targets_accepts_valid_and_empty():
    check_targets([])
    check_targets([torch.zeros(0, 5), torch.zeros(0), np.zeros((0, 5))])
    check_targets(
        [
            _t([0.0, 0.0, 1.0, 1.0, 0]),
            torch.zeros(0, 5),
            _t([-0.005, 0.2, 1.005, 0.6, 5]),
        ],
        num_classes=7,
    )
    check_targets(_t([0.1, 0.2, 0.5, 0.6, 3]))  # one (n, 5) tensor
    check_targets([_t([0.1, 0.2, 0.5, 0.6, 3]).double()], num_classes=5)
    check_targets([torch.tensor([[0, 0, 1, 1, 2]])])  # integer dtype
    with pytest.raises(
        ValueError,
        match=r"label 6, too large for num_classes=7 "
        r"\(background included: labels are 0 .. 5\)",
    ):
        check_targets([_t([0.1, 0.2, 0.5, 0.6, 6])], num_classes=7)
    with pytest.raises(ValueError, match=r"^a.jpg, box 1"):
        check_targets(
            [_t([0.1, 0.2, 0.5, 0.6, 1], [0.1, 0.2, 0.5, 0.6, 1.5])], names=["a.jpg"]
        )


def test_check_targets_is_batched(monkeypatch):
    """A big valid batch is checked with tensor operations only: no per-box Python work,
    no .tolist()/.item()."""
    import ssdbook.data as data

    g = torch.Generator().manual_seed(0)
    xy = torch.rand(64, 50, 2, generator=g) * 0.5
    targets = list(
        torch.cat(
            [
                xy,
                xy + 0.1 + torch.rand(64, 50, 2, generator=g) * 0.3,
                torch.randint(0, 20, (64, 50, 1), generator=g).float(),
            ],
            -1,
        )
    )
    monkeypatch.setattr(
        data, "_problem", lambda *a: pytest.fail("per-box work on valid targets")
    )
    monkeypatch.setattr(
        torch.Tensor, "tolist", lambda self: pytest.fail("tolist on valid targets")
    )
    monkeypatch.setattr(
        torch.Tensor, "item", lambda self: pytest.fail("item on valid targets")
    )
    check_targets(targets, num_classes=21)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_check_targets_one_host_sync_on_cuda():
    import warnings

    targets = [
        _t([0.1, 0.2, 0.5, 0.6, 1], [0.2, 0.2, 0.9, 0.9, 3]).cuda(),
        torch.zeros(0, 5, device="cuda"),
    ]
    check_targets(targets, num_classes=5)  # warm-up
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
