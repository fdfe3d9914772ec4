"""Chapter 10b: export to ONNX (run with onnxruntime) and TorchScript; outputs equal
PyTorch's to 1e-4 on shapes test images, with and without NMS. Nothing is downloaded."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ssdbook.voc import read_image
from ssdbook.detect import Detect
from ssdbook.export import ExportModel, export
from ssdbook.inference import Detector
from ssdbook.shapes import make_shapes_voc

from test_inference import make_checkpoint

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    ck = make_checkpoint(tmp / "ck.pth")
    root = make_shapes_voc(tmp / "data", n_train=1, n_test=6)
    images = torch.stack(
        [read_image(f) for f in sorted((root / "JPEGImages").glob("test*.jpg"))]
    )  # (6, 3, 300, 300)
    det = Detector.from_checkpoint(ck, device="cpu")
    files = {
        (fmt, nms): export(ck, tmp / f"m_{nms}.{fmt}", fmt, nms=nms)
        for fmt in ("onnx", "torchscript")
        for nms in (False, True)
    }
    return det, images, files


def run(files, fmt, nms, images):
    f = files[(fmt, nms)]
    if fmt == "onnx":
        sess = ort.InferenceSession(str(f), providers=["CPUExecutionProvider"])
        return [torch.from_numpy(o) for o in sess.run(None, {"images": images.numpy()})]
    with torch.no_grad():
        return list(torch.jit.load(str(f))(images))


def reference(det, images):
    "Detect's detections per image (fractions), the library path."
    m = ExportModel(det.net)
    with torch.no_grad():
        loc, conf, priors = det.net.raw((images - m.mean) / m.std)
        return Detect.to_list(
            Detect(det.net.num_classes)(loc, conf.softmax(-1), priors)
        )


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_boxes_and_scores_equal_pytorch(setup, fmt):
    det, images, files = setup
    with torch.no_grad():
        want_boxes, want_scores = ExportModel(det.net)(images)
    for batch in (images, images[:1], images[2:5]):  # the batch size is free
        boxes, scores = run(files, fmt, False, batch)
        n = len(batch)
        assert boxes.shape == (n, 8732, 4) and scores.shape == (n, 8732, 7)
        k = {6: slice(0, 6), 1: slice(0, 1), 3: slice(2, 5)}[n]
        assert (boxes - want_boxes[k]).abs().max() <= 1e-4
        assert (scores - want_scores[k]).abs().max() <= 1e-4
    assert torch.allclose(scores.sum(-1), torch.ones(3, 8732), atol=1e-5)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_nms_keeps_what_detect_keeps(setup, fmt):
    det, images, files = setup
    boxes, scores, labels, image = run(files, fmt, True, images)
    want = reference(det, images)
    assert len(scores) == sum(len(w["scores"]) for w in want) > 0
    assert (scores[:-1] >= scores[1:]).all()  # best first over the batch
    for k, w in enumerate(want):
        sel = image == k
        got = sorted(
            zip(scores[sel].tolist(), labels[sel].tolist(), boxes[sel].tolist()),
            key=lambda t: (-t[0], t[1], t[2]),
        )
        exp = sorted(
            zip(
                w["scores"].tolist(),
                w["labels"].tolist(),
                w["boxes"].clamp(0, 1).tolist(),
            ),  # clipped: item 14
            key=lambda t: (-t[0], t[1], t[2]),
        )
        for (s, l, b), (s2, l2, b2) in zip(got, exp):
            assert (
                l == l2
                and abs(s - s2) <= 1e-4
                and np.abs(np.subtract(b, b2)).max() <= 1e-4
            )


def test_classes_ride_along(setup):
    det, _, files = setup
    meta = (
        ort.InferenceSession(str(files[("onnx", False)]))
        .get_modelmeta()
        .custom_metadata_map
    )
    assert json.loads(meta["classes"]) == list(det.classes)
    extra = {"classes.json": ""}
    torch.jit.load(str(files[("torchscript", False)]), _extra_files=extra)
    assert json.loads(extra["classes.json"]) == list(det.classes)


def test_bad_format_and_no_partial_file(setup, tmp_path, monkeypatch):
    det = setup[0]
    with pytest.raises(ValueError, match="onnx, torchscript"):
        export(det, tmp_path / "m.tflite", "tflite")
    import ssdbook.export as inf

    def boom(model, path, *a):
        path.write_bytes(b"half a model")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(inf, "_write_export", boom)
    with pytest.raises(OSError):
        export(det, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_export_thresholds_are_validated(setup, tmp_path):
    with pytest.raises(ValueError):
        export(setup[0], tmp_path / "m.onnx", nms=True, nms_thresh=2.0)


def test_nms_graph_with_no_detection_above_the_threshold():
    """A detector that finds nothing (an untrained focal-loss net: p(background) 0.99
    everywhere) gives empty outputs."""
    from ssdbook.export import ExportModel
    from ssdbook.train import build_model

    torch.manual_seed(0)
    net = build_model("mini", 7, priors="shapes", focal_gamma=2.0).eval()
    with torch.no_grad():
        outputs = ExportModel(net, nms=True)(torch.rand(2, 3, 300, 300))
    assert all(len(o) == 0 for o in outputs)


# ---------------------------------------------------------------- issue 21 items 1 and
# 14
def test_nms_boxes_are_clipped_to_the_image():
    """Item 14: with --nms the kept boxes lie in [0, 1] (they used to reach -10.6 px
    past the border)."""
    from ssdbook.export import ExportModel
    from ssdbook.train import build_model

    torch.manual_seed(0)
    net = build_model("mini", 3).eval()
    raw = net.raw
    net.raw = lambda x: (lambda loc, conf, priors: (loc + 4.0, conf, priors))(
        *raw(x)
    )  # every box pushed off
    with torch.no_grad():
        boxes = ExportModel(net, nms=True, conf_thresh=0.0)(torch.rand(1, 3, 300, 300))[
            0
        ]
    assert len(boxes) > 0 and boxes.min() >= 0 and boxes.max() <= 1


def test_export_never_replaces_its_checkpoint(tmp_path, capsys):
    """Item 1: `export --checkpoint model.pt --format torchscript` (or --out = the
    checkpoint) keeps the checkpoint."""
    from ssdbook.cli import main
    from test_inference import make_checkpoint

    ck = Path(make_checkpoint(tmp_path / "model.pt"))
    before = ck.read_bytes()
    with pytest.raises(ValueError, match="is the checkpoint being exported"):
        export(ck, ck, "torchscript")
    (tmp_path / "link.pt").symlink_to(ck)
    with pytest.raises(ValueError, match="is the checkpoint being exported"):
        export(ck, tmp_path / "link.pt", "onnx")
    assert main(["export", "--checkpoint", str(ck), "--out", str(ck)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is the checkpoint being exported" in err, err
    assert (
        main(["export", "--checkpoint", str(ck), "--format", "torchscript"]) == 0
    )  # the default name
    assert (tmp_path / "model_torchscript.pt").is_file() and ck.read_bytes() == before
