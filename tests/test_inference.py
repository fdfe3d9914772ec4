"""Chapter 10b: Detector (inputs of every kind, batching, pixels, thresholds, bad
input), ap_by_size, detection_grid."""

import numpy as np
import pytest
import torch
from PIL import Image

from ssdbook.checkpoint import checkpoint_state, save_checkpoint
from ssdbook.data import BaseTransform, SHAPES_CLASSES
from ssdbook.voc import read_image
from ssdbook.detect import Detect
from ssdbook.inference import (
    Detector,
    ap_by_size,
    as_image,
    detection_grid,
    image_files,
    open_image,
)
from ssdbook.model import build_ssd
from ssdbook.shapes import make_shapes_voc


def make_checkpoint(path, classes=SHAPES_CLASSES, seed=0):
    """A mini SSD with random weights and sharpened class heads (distinct, confident
    scores), as a checkpoint."""
    torch.manual_seed(seed)
    net = build_ssd("train", num_classes=len(classes) + 1, base="mini")
    with torch.no_grad():
        for conv in net.conf:
            conv.weight.mul_(30)
    save_checkpoint(
        path, checkpoint_state(net, iteration=1, classes=list(classes), config={})
    )
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inference")
    ck = make_checkpoint(tmp / "ck.pth")
    root = make_shapes_voc(tmp / "data", n_train=1, n_test=10)
    files = sorted((root / "JPEGImages").glob("test*.jpg"))
    return tmp, ck, files, Detector.from_checkpoint(ck, device="cpu", score_thresh=0.2)


def manual(det, image):
    """The pipeline written out for one image: BaseTransform, raw heads, Detect,
    fractions -> pixels."""
    x = BaseTransform(300)(image)[0][None]
    with torch.no_grad():
        loc, conf, priors = det.net.raw(x)
        out = Detect(det.net.num_classes, conf_thresh=det.score_thresh)(
            loc, conf.softmax(-1), priors
        )
    d = Detect.to_list(
        out, max_per_image=det.max_detections, score_thresh=det.score_thresh
    )[0]
    H, W = image.shape[-2:]
    wh = torch.tensor([W, H, W, H], dtype=torch.float32)
    return torch.minimum((d["boxes"] * wh).clamp(min=0), wh), d["scores"], d["labels"]


def test_classes_come_from_the_checkpoint(setup):
    _, _, _, det = setup
    assert det.classes == SHAPES_CLASSES and "6 classes" in repr(det)


def test_predict_equals_the_pipeline_written_out(setup):
    _, _, files, det = setup
    results = det.predict(files[:4])
    assert [r["source"] for r in results] == [str(f) for f in files[:4]]
    n = 0
    for f, r in zip(files[:4], results):
        boxes, scores, labels = manual(det, read_image(f))
        assert torch.equal(r["labels"], labels) and torch.allclose(
            r["scores"], scores, atol=1e-6
        )
        assert torch.allclose(r["boxes"], boxes, atol=1e-3)
        assert r["names"] == [SHAPES_CLASSES[l] for l in labels.tolist()] and r[
            "size"
        ] == (300, 300)
        n += len(scores)
    assert n > 0


def test_every_kind_of_input_gives_the_same_detections(setup, tmp_path):
    _, _, files, det = setup
    img = read_image(files[0])
    png = tmp_path / "a.png"
    Image.open(files[0]).save(png)
    u8 = (img * 255).round().to(torch.uint8)
    inputs = [
        files[0],
        str(files[0]),
        Image.open(files[0]),
        img,
        img[None],
        np.asarray(Image.open(files[0])),
        u8,
    ]
    results = [det.predict(x) for x in inputs]
    assert all(len(r) == 1 for r in results)
    ref = results[0][0]
    for r in results[1:]:
        assert torch.equal(r[0]["labels"], ref["labels"])
        assert torch.allclose(
            r[0]["boxes"], ref["boxes"], atol=0.05
        ) and torch.allclose(r[0]["scores"], ref["scores"], atol=1e-3)
    assert (
        len(det.predict(png)) == 1 and len(det.predict(tmp_path)) == 1
    )  # a PNG; a folder
    assert (
        len(det.predict(str(files[0].parent / "test00000[0-3].jpg"))) == 4
    )  # a glob pattern
    assert (
        len(det([files[0], [img, img], torch.stack([img, img])])) == 5
    )  # nested lists, a batch


def test_batched_equals_one_at_a_time_and_sizes_are_mixed(setup):
    _, _, files, det = setup
    imgs = [read_image(f) for f in files[:3]]
    imgs.append(
        torch.nn.functional.interpolate(
            imgs[0][None], size=(180, 420), mode="bilinear"
        )[0]
    )
    together = det.predict(imgs, batch_size=3)
    for im, r in zip(imgs, together):
        one = det.predict(im)[0]
        assert torch.equal(r["labels"], one["labels"]) and torch.allclose(
            r["boxes"], one["boxes"], atol=1e-3
        )
        h, w = im.shape[-2:]
        assert r["size"] == (h, w)
        assert (
            (r["boxes"] >= 0).all()
            and (r["boxes"][:, 0::2] <= w).all()
            and (r["boxes"][:, 1::2] <= h).all()
        )


def test_a_resized_image_gives_scaled_boxes(setup):
    """The same picture at twice the size: the best detections come back at twice the
    coordinates."""
    _, _, files, det = setup
    img = read_image(files[1])
    big = torch.nn.functional.interpolate(
        img[None], scale_factor=2, mode="bilinear", antialias=True
    )[0]
    a, b = det.predict([img, big])
    assert b["size"] == (600, 600) and len(a["boxes"]) >= 5
    for box, label in zip(
        a["boxes"][:5], a["labels"][:5]
    ):  # resampling changes the scores a little
        same = b["labels"] == label
        assert same.any() and (b["boxes"][same] / 2 - box).abs().amax(1).min() < 3.0


def test_thresholds(setup):
    tmp, ck, files, _ = setup
    loose = Detector.from_checkpoint(
        ck, device="cpu", score_thresh=0.0, max_detections=7
    )
    r = loose.predict(files[:2])
    assert all(len(d["scores"]) == 7 for d in r)
    assert all((d["scores"][:-1] >= d["scores"][1:]).all() for d in r)  # best first
    strict = Detector.from_checkpoint(ck, device="cpu", score_thresh=0.9)
    assert all((d["scores"] > 0.9).all() for d in strict.predict(files[:2]))
    for bad in (
        dict(score_thresh=float("nan")),
        dict(score_thresh=1.5),
        dict(max_detections=0),
        dict(batch_size=0),
    ):
        with pytest.raises(ValueError):
            Detector.from_checkpoint(ck, device="cpu", **bad)


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.rand(3, 20, 20) * 255, "divide by 255"),
        (torch.full((3, 8, 8), float("nan")), "in [0, 1]"),
        (torch.rand(4, 20, 20), "(3, H, W)"),
        (torch.zeros(3, 5, 5, dtype=torch.int64), "uint8 or float"),
        (np.zeros((5, 5)), "NumPy image"),
        (42, "got int"),
        ("/nonexistent/x.jpg", "no such file"),
    ],
)
def test_bad_inputs_are_one_line_errors(setup, bad, message):
    det = setup[3]
    with pytest.raises(ValueError) as e:
        det.predict(bad)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_unreadable_file_and_empty_folder(setup, tmp_path):
    _, _, files, det = setup
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(files[0].read_bytes()[:200])  # a truncated JPEG
    with pytest.warns(UserWarning, match="skipped"):
        res = det.predict(broken)
    assert (
        list(res) == []
        and res.skipped[0][0] == str(broken)
        and "broken.jpg" in res.skipped[0][1]
    )
    with pytest.raises(ValueError, match="broken.jpg"):
        det.predict(broken, strict=True)
    out = list(det.predict_files([files[0], broken, files[1]], with_images=True))
    assert [p for p, _, _ in out] == [files[0], broken, files[1]]
    assert isinstance(out[1][1], ValueError) and out[1][2] is None
    assert isinstance(out[0][1], dict) and out[0][2].shape == (3, 300, 300)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        det.predict(tmp_path / "empty")
    found, problems = image_files(
        [tmp_path / "empty", str(tmp_path / "*.png"), files[0]]
    )
    assert found == [files[0]] and len(problems) == 2


def test_class_count_must_match_the_network(setup):
    net = setup[3].net
    with pytest.raises(ValueError, match="3 class names"):
        Detector(net, ["a", "b", "c"])


def test_ap_by_size_counts_every_object_once():
    torch.manual_seed(0)
    annos, dets = [], []
    for i in range(6):
        xy = torch.rand(4, 2) * 200
        wh = torch.tensor([10.0, 30.0, 70.0, 150.0])[:, None].expand(4, 2)
        boxes = torch.cat([xy, xy + wh], 1)
        labels = torch.randint(0, 3, (4,))
        annos.append(
            dict(
                boxes=boxes,
                labels=labels,
                difficult=torch.zeros(4, dtype=torch.bool),
                width=400,
                height=400,
            )
        )
        dets.append(
            dict(boxes=boxes.clone(), scores=torch.rand(4) + 0.1, labels=labels.clone())
        )
    r = ap_by_size(dets, annos, ["a", "b", "c"])
    assert list(r) == ["0-25 px", "25-50 px", "50-100 px", ">= 100 px"]
    assert sum(n for n, _ in r.values()) == 24 and all(n == 6 for n, _ in r.values())
    assert all(
        m == pytest.approx(1.0) for _, m in r.values()
    )  # perfect detections in every band


def test_detection_grid_writes_a_picture(setup, tmp_path):
    _, _, files, det = setup
    imgs = [read_image(f) for f in files[:3]]
    p = detection_grid(imgs, det.predict(imgs), det.classes, tmp_path / "grid.png")
    assert p.stat().st_size > 1000
    assert as_image(Image.open(p)).shape[0] == 3


# ---------------------------------------------------------------- issue 21: items 13,
# 15, 17
@pytest.mark.parametrize("bs", [-1, 0, 2.5, True, "4"])
def test_impossible_batch_size_is_refused(setup, bs):
    _, _, files, det = setup
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1") as e:
        det.predict(files[:2], batch_size=bs)
    assert "\n" not in str(e.value)


def test_one_corrupt_file_does_not_fail_a_folder(setup, tmp_path):
    """Skip and report (`.skipped`, one warning), or raise with strict=True keeping the
    results made so far."""
    _, _, files, det = setup
    for k, f in enumerate(files[:3]):
        (tmp_path / f"img{k}.jpg").write_bytes(f.read_bytes())
    (tmp_path / "img1.jpg").write_bytes(b"not a jpeg at all")
    with pytest.warns(UserWarning, match="1 file"):
        res = det.predict(tmp_path, batch_size=2)
    assert [r["source"] for r in res] == [
        str(tmp_path / "img0.jpg"),
        str(tmp_path / "img2.jpg"),
    ]
    assert res.skipped == [(str(tmp_path / "img1.jpg"), res.skipped[0][1])]
    assert "img1.jpg" in res.skipped[0][1] and "\n" not in res.skipped[0][1]
    whole = det.predict([tmp_path / "img0.jpg", tmp_path / "img2.jpg"])
    for a, b in zip(res, whole):
        assert torch.equal(a["boxes"], b["boxes"]) and torch.equal(
            a["scores"], b["scores"]
        )
    with pytest.raises(ValueError, match="img1.jpg") as e:
        det.predict(tmp_path, strict=True)
    assert [r["source"] for r in e.value.results] == [str(tmp_path / "img0.jpg")]
    assert det.predict(files[:2]).skipped == []


def write_big_png(path, w, h):
    """A 1-bit PNG of w x h black pixels written row by row (a few kB, whatever its
    size)."""
    import struct
    import zlib

    def chunk(tag, data):
        return (
            struct.pack(">I", len(data))
            + tag
            + data
            + struct.pack(">I", zlib.crc32(tag + data))
        )

    z, row = zlib.compressobj(9), b"\x00" * (1 + (w + 7) // 8)
    idat = b"".join(z.compress(row) for _ in range(h)) + z.flush()
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0))
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )
    return path


def test_huge_png_is_refused_before_decoding(tmp_path):
    """12000 x 12000 (144 Mpx): refused from the header, in a fresh process whose peak
    memory barely moves."""
    import subprocess
    import sys

    big = write_big_png(tmp_path / "big.png", 12000, 12000)
    small = tmp_path / "small.png"
    Image.new("RGB", (320, 240), "gray").save(small)
    code = f"""
import resource, warnings
from ssdbook.inference import Detector
from ssdbook.model import build_ssd
det = Detector(build_ssd('train', num_classes=3, base='mini'), ['a', 'b'])
det.predict({str(small)!r})  # warm up: the network's own memory
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with warnings.catch_warnings(record=True):
    res = det.predict([{str(big)!r}, {str(small)!r}])
print(len(res)); print(res.skipped[0][1])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-2000:]
    count, reason, grew_kb = r.stdout.strip().split("\n")
    assert (
        count == "1"
        and "big.png: image is 12000x12000 (144 Mpx), more than max_pixels" in reason
    )
    assert int(grew_kb) < 50_000, f"peak memory grew by {int(grew_kb) / 1024:.0f} MB"


def test_large_jpeg_is_decoded_smaller_and_boxes_are_in_its_pixels(setup, tmp_path):
    _, ck, _, _ = setup
    path = tmp_path / "wide.jpg"
    Image.new("RGB", (1600, 1200), (90, 160, 200)).save(path)
    image, size = open_image(path, max_pixels=500_000)
    assert size == (1200, 1600) and tuple(image.shape) == (
        3,
        600,
        800,
    )  # 1/2: DCT scaling
    full, size_full = open_image(path)
    assert size_full == (1200, 1600) and tuple(full.shape) == (3, 1200, 1600)
    det = Detector.from_checkpoint(
        ck, device="cpu", score_thresh=0.0, max_pixels=500_000
    )
    (r,) = det.predict(path)
    assert (
        r["size"] == (1200, 1600) and r["boxes"][:, 2].max() > 800
    )  # pixels of the file
    with pytest.raises(ValueError, match="more than max_pixels=100"):
        open_image(path, max_pixels=100)  # even 1/8 is too big
    png = tmp_path / "wide.png"
    Image.new("RGB", (1600, 1200)).save(png)
    with pytest.raises(ValueError, match="wide.png: image is 1600x1200"):
        open_image(png, max_pixels=500_000)
