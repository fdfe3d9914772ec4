"""Chapter 9: the training loop (ssdbook.train). Tiny budgets: a few iterations of the mini base at B=2."""
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ssdbook.data import IMAGENET_MEAN, IMAGENET_STD, make_shapes_voc
from ssdbook.train import (LRSchedule, NonFiniteLossError, StreamSampler, TrainConfig, batch_augment,
                           load_checkpoint, make_loader, normalize_batch, rng_state, save_checkpoint,
                           set_rng_state, shapes_recipe, train, voc_recipe)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    make_shapes_voc(root, n_train=10, n_test=4, seed=0)
    return root


def tiny(root, out, **kw):
    base = dict(root=str(root), out=str(out), n_train=10, n_test=4, iterations=4, batch_size=2, warmup=2,
                log_every=1, checkpoint_every=2, progress=False, num_workers=0, device="cpu")
    base.update(kw)
    return shapes_recipe(**base)


def test_config_validates():
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="adam")
    with pytest.raises(ValueError, match="iterations"):
        TrainConfig(iterations=0)
    assert TrainConfig.from_dict(voc_recipe().to_dict()) == voc_recipe()
    v = voc_recipe()
    assert (v.iterations, v.batch_size, v.lr, v.steps, v.momentum, v.weight_decay) == (
        120_000, 32, 1e-3, (80_000, 100_000), 0.9, 5e-4)


def test_lr_schedule():
    f = LRSchedule(1000, "step", steps=(600, 800), gamma=0.1, warmup=100, warmup_factor=1 / 3)
    assert f(0) == pytest.approx(1 / 3) and f(50) == pytest.approx(2 / 3) and f(100) == 1
    assert f(599) == 1 and f(600) == pytest.approx(0.1) and f(800) == pytest.approx(0.01)
    c = LRSchedule(1000, "cosine", warmup=100, warmup_factor=0.0)
    assert c(0) == 0 and c(100) == 1 and c(550) == pytest.approx(0.5) and c(1000) == pytest.approx(0)


def test_stream_sampler_is_resumable_and_splits_ranks():
    full = list(StreamSampler(7, 3, seed=5, start=0, stop=10))
    resumed = list(StreamSampler(7, 3, seed=5, start=4, stop=10))
    assert resumed == full[4:]
    # every epoch is a permutation of the data
    idx = [i for b in full for i, _ in b]
    assert sorted(idx[:7]) == list(range(7)) and sorted(idx[7:14]) == list(range(7))
    # two ranks with 3 each = one process with 6, in order
    one = list(StreamSampler(7, 6, seed=5, start=0, stop=3))
    r0 = list(StreamSampler(7, 3, seed=5, start=0, stop=3, rank=0, world_size=2))
    r1 = list(StreamSampler(7, 3, seed=5, start=0, stop=3, rank=1, world_size=2))
    assert [a + b for a, b in zip(r0, r1)] == one


def test_batch_augment_keeps_boxes_valid():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, 3, 300, 300), dtype=torch.uint8)
    targets = [torch.tensor([[0.1, 0.2, 0.5, 0.6, 1.0], [0.6, 0.6, 0.9, 0.95, 3.0]]) for _ in range(5)]
    targets.append(torch.zeros(0, 5))   # an image with no objects is valid
    x, t = batch_augment(images, targets, g, IMAGENET_MEAN, IMAGENET_STD)
    assert x.shape == (6, 3, 300, 300) and x.dtype == torch.float32 and torch.isfinite(x).all()
    assert len(t) == 6 and t[5].shape == (0, 5)
    for b in t[:5]:
        assert len(b) >= 1
        assert (b[:, :4] >= 0).all() and (b[:, :4] <= 1).all()
        assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()
        assert set(b[:, 4].tolist()) <= {1.0, 3.0}


def test_batch_augment_flip_moves_the_object():
    img = torch.zeros(1, 3, 300, 300, dtype=torch.uint8)
    img[:, :, 30:90, 15:75] = 255                      # a white square at x 15..75, y 30..90
    tgt = [torch.tensor([[15 / 300, 30 / 300, 75 / 300, 90 / 300, 0.0]])]
    for seed in range(4):
        x, t = batch_augment(img, tgt, torch.Generator().manual_seed(seed), (0, 0, 0), (1, 1, 1),
                             flip=1.0, photometric=0.0, zoom=0.0)
        assert torch.allclose(t[0][0, :4], torch.tensor([225, 30, 285, 90]) / 300)
        assert x[0, 0, 60, 250] == 1 and x[0, 0, 60, 40] == 0
    # no augmentation at all == plain normalisation
    x, t = batch_augment(img, tgt, torch.Generator().manual_seed(0), IMAGENET_MEAN, IMAGENET_STD,
                         flip=0.0, photometric=0.0, zoom=0.0)
    assert torch.equal(x, normalize_batch(img, IMAGENET_MEAN, IMAGENET_STD)) and torch.equal(t[0], tgt[0])


def test_checkpoint_is_atomic_and_rng_round_trips(tmp_path):
    import random
    import numpy as np
    state = rng_state()
    a = (torch.rand(3), np.random.rand(3), random.random())
    p = save_checkpoint(tmp_path / "c.pth", rng=state, iteration=7)
    assert [q.name for q in tmp_path.iterdir()] == ["c.pth"]      # no temporary file left behind
    ck = load_checkpoint(p)                                        # weights_only=True load
    set_rng_state(ck["rng"])
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and (a[1] == b[1]).all() and a[2] == b[2] and ck["iteration"] == 7
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pth")


def test_loader_batches_do_not_depend_on_workers(shapes):
    from ssdbook.train import build_train_set
    cfg = tiny(shapes, "unused", augment="ssd", iterations=2)
    ds, _ = build_train_set(cfg)
    b0 = list(make_loader(ds, cfg, start=0))
    b2 = list(make_loader(ds, TrainConfig.from_dict(dict(cfg.to_dict(), num_workers=2)), start=0))
    b1 = list(make_loader(ds, cfg, start=1))
    for (x, t), (y, u) in zip(b0, b2):
        assert torch.equal(x, y) and all(torch.equal(p, q) for p, q in zip(t, u))
    assert torch.equal(b1[0][0], b0[1][0])


def _same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("path", ["cache+light", "ssd"])
def test_resume_gives_the_same_weights(shapes, tmp_path, path):
    "2 iterations straight == 1 iteration, stop, resume, 1 more: bit-identical weights and optimiser state."
    kw = dict(cache=True, augment="light") if path == "cache+light" else dict(cache=False, augment="ssd")
    straight = train(tiny(shapes, tmp_path / "a", iterations=2, **kw))
    first = train(tiny(shapes, tmp_path / "b", iterations=2, stop_at=1, **kw))
    assert first["iteration"] == 1
    second = train(tiny(shapes, tmp_path / "b", iterations=2, resume="auto", **kw))
    assert second["iteration"] == 2
    _same_state(straight["net"].state_dict(), second["net"].state_dict())
    a, b = load_checkpoint(tmp_path / "a" / "last.pth"), load_checkpoint(tmp_path / "b" / "last.pth")
    assert a["iteration"] == b["iteration"] == 2
    _same_state(a["optimizer"]["state"][0], b["optimizer"]["state"][0])
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 2
    # the log continues rather than restarting
    rows = (tmp_path / "b" / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["iteration", "1", "2"]
    assert (tmp_path / "b" / "loss.png").exists()
    # resuming a finished run trains nothing and returns the same network
    again = train(tiny(shapes, tmp_path / "b", iterations=2, resume="auto", **kw))
    assert again["iteration"] == 2 and len(again["history"]) == 2
    _same_state(again["net"].state_dict(), second["net"].state_dict())


class NaNAt:
    "A loss that turns NaN at the n-th call (1-based)."
    def __init__(self, crit, n):
        self.crit, self.n, self.calls = crit, n, 0

    def __call__(self, predictions, targets):
        self.calls += 1
        l, c = self.crit(predictions, targets)
        return (l * float("nan"), c) if self.calls == self.n else (l, c)


def test_nonfinite_loss_stops_naming_the_iteration(shapes, tmp_path):
    from ssdbook.loss import MultiBoxLoss
    crit = NaNAt(MultiBoxLoss(7, 0.5, True, 0, True, 3, 0.5, False), 3)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at iteration 3 .*loss_l=nan"):
        train(tiny(shapes, tmp_path / "s"), criterion=crit)


def test_nonfinite_loss_skip_counts(shapes, tmp_path):
    from ssdbook.loss import MultiBoxLoss
    crit = NaNAt(MultiBoxLoss(7, 0.5, True, 0, True, 3, 0.5, False), 2)
    r = train(tiny(shapes, tmp_path / "k", iterations=3, on_nonfinite="skip"), criterion=crit)
    assert r["skipped"] == 1 and r["iteration"] == 3
    assert all(torch.isfinite(p).all() for p in r["net"].parameters())
    assert load_checkpoint(tmp_path / "k" / "last.pth")["skipped"] == 1


def test_ddp_two_processes_gloo(shapes, tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "ssdbook",
           "train", "--data", "shapes", "--root", str(shapes), "--n-train", "10", "--n-test", "4",
           "--out", str(out), "--iterations", "2", "--batch-size", "4", "--warmup", "1", "--log-every", "1",
           "--checkpoint-every", "2", "--num-workers", "0", "--device", "cpu", "--progress", "no", "--threads", "1"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ck = load_checkpoint(out / "last.pth")
    assert ck["iteration"] == 2 and ck["world_size"] == 2
    assert "trained 2 iterations" in r.stdout


def test_device_and_mixed_precision_choice(monkeypatch):
    """The GPU path is chosen automatically: CUDA when present; bf16 autocast where the GPU supports it,
    else fp16 (which train() pairs with a GradScaler); plain fp32 on the CPU. (No GPU here: CUDA is faked.)"""
    from ssdbook.train import amp_dtype, pick_device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto") == torch.device("cuda")
    assert pick_device("cpu") == torch.device("cpu")
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert amp_dtype(cuda) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert amp_dtype(cuda) is torch.float16
    assert amp_dtype(cuda, "fp16") is torch.float16
    assert amp_dtype(cuda, "off") is None
    assert amp_dtype(torch.device("cpu")) is None
    with pytest.warns(UserWarning, match="ignored"):
        assert amp_dtype(torch.device("cpu"), "bf16") is None
