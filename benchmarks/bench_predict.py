"""Inference throughput: `ssdbook.inference.Detector.predict` vs torchvision's SSDlite,
same images, same run.

Both read the same JPEG files from disk with the same reader (decode included), run
batches of 16 on the CPU and post-process (decode + per-class NMS) with the same
thresholds: score > 0.01, top 200 candidates per class, NMS IoU 0.45, at most 100
detections per image, 7 classes (6 + background). ssdbook: the `mini` SSD300 (a
checkpoint with --checkpoint, else random weights); torchvision:
`ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None)`, the CPU-friendly
SSD a user would pick, random weights (no download). Both get the same warm-up and
repeats, interleaved, and default (contiguous) memory format; the median pass counts.
Also the per-image latency at batch 1. Records `bench_predict` in
benchmarks/results.json.

    python benchmarks/bench_predict.py [--images 64] [--repeats 3]
                                       [--checkpoint runs/demo/last.pth]
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import record  # noqa: E402

from ssdbook.checkpoint import checkpoint_state, save_checkpoint  # noqa: E402
from ssdbook.data import SHAPES_CLASSES  # noqa: E402
from ssdbook.voc import read_image  # noqa: E402
from ssdbook.inference import Detector  # noqa: E402
from ssdbook.model import build_ssd  # noqa: E402
from ssdbook.shapes import make_shapes_voc  # noqa: E402

SCORE, TOP_K, NMS, MAX_DET, BATCH = 0.01, 200, 0.45, 100, 16


def ssdbook_side(checkpoint, tmp):
    if checkpoint is None:
        torch.manual_seed(0)
        net = build_ssd("train", num_classes=len(SHAPES_CLASSES) + 1, base="mini")
        checkpoint = save_checkpoint(
            tmp / "random_mini.pth",
            checkpoint_state(net, iteration=0, classes=SHAPES_CLASSES),
        )
    det = Detector.from_checkpoint(
        checkpoint,
        device="cpu",
        score_thresh=SCORE,
        max_detections=MAX_DET,
        top_k=TOP_K,
        nms_thresh=NMS,
    )
    return lambda files: det.predict(files, batch_size=len(files))


def torchvision_side():
    torch.manual_seed(0)
    model = torchvision.models.detection.ssdlite320_mobilenet_v3_large(
        weights=None,
        weights_backbone=None,
        num_classes=len(SHAPES_CLASSES) + 1,
        score_thresh=SCORE,
        topk_candidates=TOP_K,
        nms_thresh=NMS,
        detections_per_img=MAX_DET,
    ).eval()

    @torch.inference_mode()
    def run(files):
        return model([read_image(f) for f in files])

    return run


def passes(run, files, batch):
    "Seconds for one pass over `files` in batches of `batch`; detections per image."
    t0, n = time.perf_counter(), 0
    for i in range(0, len(files), batch):
        out = run(files[i : i + batch])
        n += sum(len(d["scores"]) for d in out)
    return time.perf_counter() - t0, n / len(files)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--checkpoint",
        default=None,
        help="an ssdbook mini checkpoint (default: random weights)",
    )
    ap.add_argument("--record", default="yes", choices=("yes", "no"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_predict-"))
    root = make_shapes_voc(tmp / "data", n_train=1, n_test=args.images)
    files = sorted((root / "JPEGImages").glob("test*.jpg"))
    sides = {
        "ssdbook": ssdbook_side(args.checkpoint, tmp),
        "torchvision": torchvision_side(),
    }
    for run in sides.values():  # the same warm-up for both
        passes(run, files[: 2 * BATCH], BATCH)
    times, dets = {k: [] for k in sides}, {}
    for _ in range(args.repeats):  # interleaved: both see the same machine load
        for name, run in sides.items():
            t, dets[name] = passes(run, files, BATCH)
            times[name].append(t)
    lat = {k: [] for k in sides}
    for _ in range(args.repeats):
        for name, run in sides.items():
            lat[name].append(passes(run, files[:BATCH], 1)[0] / BATCH)
    img_s = {k: len(files) / statistics.median(v) for k, v in times.items()}
    ms = {k: 1000 * statistics.median(v) for k, v in lat.items()}
    ratio, lat_ratio = (
        img_s["ssdbook"] / img_s["torchvision"],
        ms["torchvision"] / ms["ssdbook"],
    )
    for k in sides:
        print(
            f"{k:>12s}: {img_s[k]:7.1f} img/s at batch {BATCH} "
            f"({dets[k]:.0f} detections/image), "
            f"{ms[k]:6.1f} ms/image at batch 1"
        )
    print(
        f"ratio (ssdbook / torchvision throughput): {ratio:.2f}x; "
        f"latency ratio (torchvision / ssdbook): {lat_ratio:.2f}x"
    )
    if args.record == "yes":
        record(
            "bench_predict",
            dict(
                ssdbook_img_s=round(img_s["ssdbook"], 1),
                torchvision_img_s=round(img_s["torchvision"], 1),
                ratio=round(ratio, 2),
                ssdbook_latency_ms=round(ms["ssdbook"], 1),
                torchvision_latency_ms=round(ms["torchvision"], 1),
                latency_ratio=round(lat_ratio, 2),
                detections_per_image=dict(
                    ssdbook=round(dets["ssdbook"], 1),
                    torchvision=round(dets["torchvision"], 1),
                ),
                images=len(files),
                batch=BATCH,
                repeats=args.repeats,
                weights="checkpoint" if args.checkpoint else "random",
                what="Detector.predict (mini SSD300, files from disk, decode + NMS) "
                "vs torchvision ssdlite320_mobilenet_v3_large, CPU, batches of 16; "
                "latency at batch 1",
            ),
        )


if __name__ == "__main__":
    main()
