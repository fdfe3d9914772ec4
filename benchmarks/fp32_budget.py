"""The main job's recipe at the reader's budget (issue 19.2): what one change to
`shapes_recipe()` is worth when the run must fit about six minutes of a 2-core AVX2 CPU
in fp32, i.e. about 1,100 x 16 images instead of the recipe's 3,200 x 16.

    python benchmarks/fp32_budget.py                       # every candidate, seed 0
    python benchmarks/fp32_budget.py baseline "lr 2e-3"    # some of them
    python benchmarks/fp32_budget.py --list                # what each candidate changes

Every candidate is `shapes_recipe()` (designed priors, focal loss, AdamW, cosine) in
fp32 (`amp='off'`), seed 0, trained on the shapes set's 2,000 training images and scored
(VOC07 mAP, and AP of the objects under 25 px) on its 500 test images; one thing is
changed: the schedule, the batch, the augmentation, the network or the loss. The base
is the recipe as it was before issue 19 (`object_weight=0`); the winner, one weight per
object (chapter 6's `object_weights`), is now part of `shapes_recipe()`. The patchify
network is defined here, not in the library: it was tried and not kept. One run at a
time per process, `--threads` torch threads (default 1: two candidates can share a
2-core machine; their mAPs are comparable, their timings only roughly). Each finished
run is written to benchmarks/fp32_budget_runs.json at once (atomic rewrite); a
candidate already there is skipped unless `--again`.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
RUNS = HERE / "fp32_budget_runs.json"
# ~ six minutes of 2 AVX2 cores in fp32; every positive weighs 1 (the old recipe)
BUDGET = dict(iterations=1100, warmup=50, object_weight=0.0)


# -- candidate networks (same six source maps, same 8732 priors) --------------------
def separable(cin, cout):
    "Depthwise 3x3 -> BN -> ReLU -> pointwise 1x1 -> BN -> ReLU."
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, 1, 1, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def patchify_mini(num_classes, cfg, width=16):
    """`MiniSSD` with a ConvNeXt-style 4x4 stride-4 stem (300 -> 75) and one 3x3 conv
    at 75x75, instead of the stride-2 stem at 150x150 and the stride-2 stage."""
    from ssdbook.model import MiniSSD, conv_bn_relu

    net = MiniSSD("train", num_classes, cfg, width)
    w = width
    net.base[0] = nn.Sequential(conv_bn_relu(3, 2 * w, kernel=4, stride=4, padding=0))
    net.base[1] = nn.Sequential(conv_bn_relu(2 * w, 2 * w))
    return net


@dataclass
class Candidate:
    what: str
    config: dict = field(default_factory=dict)  # TrainConfig fields over BUDGET
    augment: dict = field(default_factory=dict)  # batch_augment options
    net: object = None  # (num_classes, prior cfg) -> network
    ema: float = 0.0  # also score an EMA of the weights with this decay


CANDIDATES = {
    "baseline": Candidate("shapes_recipe() at 1,100 x 16 (light augmentation)"),
    "no augmentation": Candidate("augment='none'", dict(augment="none")),
    "zoom in only": Candidate(
        "light augmentation, zoom range 1.0-1.6 (no zoom-out)",
        augment=dict(zoom_range=(1.0, 1.6)),
    ),
    "lr 2e-3": Candidate("peak lr 2e-3 instead of 3e-3", dict(lr=2e-3)),
    "lr 6e-3": Candidate("peak lr 6e-3", dict(lr=6e-3), ema=0.995),
    "batch 8": Candidate(
        "batch 8 x 2,200 iterations (same images)",
        dict(batch_size=8, iterations=2200, warmup=100),
        ema=0.998,
    ),
    "batch 32": Candidate(
        "batch 32 x 550 iterations (same images)",
        dict(batch_size=32, iterations=550, warmup=25),
    ),
    "patchify stem": Candidate("4x4 stride-4 stem, no 150x150 map", net=patchify_mini),
    "object weights 1": Candidate(
        "each object's positives share one weight (object_weight=1)",
        dict(object_weight=1.0),
    ),
    "object weights 0.5": Candidate(
        "positives weigh k^-0.5, k their object's positives (object_weight=0.5)",
        dict(object_weight=0.5),
    ),
}


def run_candidate(
    name: str, seed: int = 0, threads: int = 1, root=None, budget=None, out=None
) -> dict:
    """Train and score one candidate (at `budget`, default `BUDGET`, into `out`);
    returns a JSON-ready row."""
    from ssdbook.ablation import count_macs, shapes_data
    from ssdbook.config import pick_device, shapes_recipe
    from ssdbook.evaluate import ap_by_size, evaluate_model
    from ssdbook.mining import init_background_bias
    from ssdbook.priors import CONFIGS
    from ssdbook.train import Run

    c = CANDIDATES[name]
    torch.set_num_threads(threads)
    cfg = shapes_recipe(
        **{
            **(BUDGET if budget is None else budget),
            **c.config,
            "amp": "off",
            "device": "cpu",
            "progress": False,
            "seed": seed,
            "threads": threads,
            "overwrite": True,
            "checkpoint_every": 100_000,
            "out": out or f"runs/fp32_budget/{name.replace(' ', '_')}-seed{seed}",
        }
    )
    train_set, test_set, classes = shapes_data(cfg.n_train, cfg.n_test, root)
    n = len(classes) + 1
    net = None
    if c.net is not None:
        torch.manual_seed(cfg.seed)
        net = init_background_bias(c.net(n, CONFIGS[cfg.priors]))  # as build_model
    t0 = time.perf_counter()
    run = Run(cfg, 0, 1, pick_device("cpu"), net=net, dataset=train_set,
              classes=classes)  # fmt: skip
    run.augment_options = dict(c.augment)
    ema = None
    if c.ema:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(
            run.net, multi_avg_fn=get_ema_multi_avg_fn(c.ema), use_buffers=True
        )
        run.opt.register_step_post_hook(lambda *a: ema.update_parameters(run.net))
    out = run.loop()
    t1 = time.perf_counter()
    scores = {}
    for tag, m in [("net", out["net"])] + ([("ema", ema.module)] if ema else []):
        r = evaluate_model(m.eval(), test_set, classes=classes, return_detections=True)
        s = ap_by_size(r["detections"], r["annotations"], classes)
        scores[tag] = dict(map=float(r["map"]), small=s["0-25 px"][1])
    row = dict(
        candidate=name,
        what=c.what,
        seed=seed,
        map=scores["net"]["map"],
        small_ap=scores["net"]["small"],
        iterations=cfg.iterations,
        batch_size=cfg.batch_size,
        train_seconds=round(t1 - t0, 1),
        img_s=round(out["img_s"], 1),
        threads=threads,
        params=sum(p.numel() for p in out["net"].parameters()),
        macs=count_macs(out["net"]),
    )
    if ema:
        row["ema"] = dict(decay=c.ema, **scores["ema"])
    return row


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("names", nargs="*", help="candidates (default: all)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--again", action="store_true", help="re-run recorded candidates")
    p.add_argument("--list", action="store_true")
    a = p.parse_args(argv)
    if unknown := [x for x in a.names if x not in CANDIDATES]:
        p.error(f"unknown candidate {unknown[0]!r}; one of {sorted(CANDIDATES)}")
    if a.list:
        for k, c in CANDIDATES.items():
            print(f"{k:<20} {c.what}")
        return
    sys.path.insert(0, str(HERE))
    from _results import machine

    for name in a.names or list(CANDIDATES):
        done = json.loads(RUNS.read_text())["runs"] if RUNS.exists() else []
        if not a.again and any(
            (r["candidate"], r["seed"]) == (name, a.seed) for r in done
        ):
            print(f"{name}: recorded, skipped (--again re-runs it)")
            continue
        row = dict(run_candidate(name, a.seed, a.threads), machine=machine())
        print(json.dumps(row))
        with open(RUNS.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two processes append safely
            runs = json.loads(RUNS.read_text())["runs"] if RUNS.exists() else []
            runs = [
                r for r in runs if (r["candidate"], r["seed"]) != (name, a.seed)
            ] + [row]
            tmp = RUNS.with_suffix(".tmp")
            tmp.write_text(json.dumps(dict(budget=BUDGET, runs=runs), indent=1) + "\n")
            tmp.replace(RUNS)


if __name__ == "__main__":
    main()
