"""Chapter 9d: the training loop (ssdbook.train). Tiny budgets: a few iterations of the
mini base at B=2."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ssdbook.checkpoint import load_checkpoint
from ssdbook.shapes import make_shapes_voc
from ssdbook.train import LRSchedule, NonFiniteLossError, shapes_recipe, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    make_shapes_voc(root, n_train=10, n_test=4, seed=0)
    return root


def tiny(root, out, **kw):
    base = dict(
        root=str(root),
        out=str(out),
        n_train=10,
        n_test=4,
        iterations=4,
        batch_size=2,
        warmup=2,
        log_every=1,
        checkpoint_every=2,
        progress=False,
        num_workers=0,
    )
    base.update(kw)
    return shapes_recipe(**base)


def test_reexports_for_readers():
    """ssdbook.train keeps the names readers and tests import from it (now defined in
    config/pipeline/checkpoint)."""
    import ssdbook.train as t

    for name in (
        "TrainConfig",
        "shapes_recipe",
        "voc_recipe",
        "train",
        "pick_device",
        "amp_dtype",
        "save_checkpoint",
        "load_checkpoint",
        "read_log",
        "plot_log",
        "build_train_set",
        "build_test_set",
        "make_loader",
        "StreamSampler",
        "CachedDataset",
        "batch_augment",
        "build_model",
        "LRSchedule",
    ):
        assert hasattr(t, name), name
    assert not hasattr(t, "unwrap")


def test_lr_schedule():
    f = LRSchedule(
        1000, "step", steps=(600, 800), gamma=0.1, warmup=100, warmup_factor=1 / 3
    )
    assert (
        f(0) == pytest.approx(1 / 3) and f(50) == pytest.approx(2 / 3) and f(100) == 1
    )
    assert (
        f(599) == 1 and f(600) == pytest.approx(0.1) and f(800) == pytest.approx(0.01)
    )
    c = LRSchedule(1000, "cosine", warmup=100, warmup_factor=0.0)
    assert (
        c(0) == 0
        and c(100) == 1
        and c(550) == pytest.approx(0.5)
        and c(1000) == pytest.approx(0)
    )


def _same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("path", ["cache+light", "ssd"])
def test_resume_gives_the_same_weights(shapes, tmp_path, path):
    """2 iterations straight == 1 iteration, stop, resume, 1 more: bit-identical weights
    and optimiser state."""
    kw = (
        dict(cache=True, augment="light")
        if path == "cache+light"
        else dict(cache=False, augment="ssd")
    )
    straight = train(tiny(shapes, tmp_path / "a", iterations=2, **kw))
    first = train(tiny(shapes, tmp_path / "b", iterations=2, stop_at=1, **kw))
    assert first["iteration"] == 1
    second = train(tiny(shapes, tmp_path / "b", iterations=2, resume="auto", **kw))
    assert second["iteration"] == 2
    _same_state(straight["net"].state_dict(), second["net"].state_dict())
    a, b = (
        load_checkpoint(tmp_path / "a" / "last.pth"),
        load_checkpoint(tmp_path / "b" / "last.pth"),
    )
    assert a["iteration"] == b["iteration"] == 2
    _same_state(a["optimizer"]["state"][0], b["optimizer"]["state"][0])
    assert (
        b["config"]
        == tiny(shapes, tmp_path / "b", iterations=2, resume="auto", **kw).to_dict()
    )
    rows = (
        (tmp_path / "b" / "log.csv").read_text().splitlines()
    )  # the log continues, no duplicates
    assert [r.split(",")[0] for r in rows] == ["iteration", "1", "2"]
    assert (tmp_path / "b" / "loss.png").exists()
    again = train(
        tiny(shapes, tmp_path / "b", iterations=2, resume="auto", **kw)
    )  # finished: trains nothing
    assert again["iteration"] == 2 and len(again["history"]) == 2
    _same_state(again["net"].state_dict(), second["net"].state_dict())


def test_extending_iterations_keeps_learning(shapes, tmp_path):
    """Issue 12: a 30-iteration cosine run resumed with iterations=45 trains 31-45 at lr
    > 0 (the schedule is rebuilt from the new config, not restored from the old one),
    the weights change, and the checkpoint records it."""
    kw = dict(log_every=5, checkpoint_every=15, warmup=5)
    first = train(tiny(shapes, tmp_path / "r", iterations=30, **kw))
    first_cfg_lr = tiny(shapes, tmp_path / "r").lr
    assert (
        first["history"][-1]["lr"] < 0.01 * first_cfg_lr
    )  # the cosine has reached its end
    more = train(tiny(shapes, tmp_path / "r", iterations=45, resume="auto", **kw))
    lrs = [r["lr"] for r in more["history"] if r["iteration"] > 30]
    assert len(lrs) == 3 and all(lr > 0 for lr in lrs[:-1])
    assert any(
        not torch.equal(a, b)
        for a, b in zip(
            first["net"].state_dict().values(), more["net"].state_dict().values()
        )
    )
    ck = load_checkpoint(tmp_path / "r" / "last.pth")
    assert ck["iteration"] == 45 and ck["config"]["iterations"] == 45
    assert ck["resumes"] == [dict(iteration=30, changes=dict(iterations=[30, 45]))]
    assert [int(r["iteration"]) for r in more["history"]] == list(
        range(5, 50, 5)
    )  # log continued, no duplicates


def test_changed_hyper_parameter_on_resume_is_refused(shapes, tmp_path):
    train(tiny(shapes, tmp_path / "h", iterations=2))
    with pytest.raises(
        ValueError,
        match=r"cannot resume .*last\.pth with lr=0\.01: "
        r"the run was trained with lr=0\.003",
    ):
        train(tiny(shapes, tmp_path / "h", iterations=4, lr=0.01, resume="auto"))
    with pytest.raises(ValueError, match="batch_size=4"):
        train(tiny(shapes, tmp_path / "h", iterations=4, batch_size=4, resume="auto"))
    ok = train(
        tiny(shapes, tmp_path / "h", iterations=3, resume="auto", log_every=3)
    )  # machine/bookkeeping: fine
    assert ok["iteration"] == 3


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

    crit = NaNAt(MultiBoxLoss(7), 3)
    with pytest.raises(
        NonFiniteLossError, match=r"non-finite loss at iteration 3 .*loss_l=nan"
    ):
        train(tiny(shapes, tmp_path / "s"), criterion=crit)


def test_nan_watch_checks_late_but_never_checkpoints_nan(shapes, tmp_path):
    """The finiteness is looked at every check_every steps (no host sync per step) and
    before every checkpoint: a NaN at iteration 3 of 8 with checkpoints at 2, 4, ...
    stops at the check of iteration 4, names iteration 3, and the newest checkpoint is
    the clean one of iteration 2."""
    from ssdbook.loss import MultiBoxLoss

    crit = NaNAt(MultiBoxLoss(7), 3)
    with pytest.raises(
        NonFiniteLossError,
        match=r"iteration 3 .*Last clean checkpoint: .*ssd_mini_000002\.pth",
    ):
        train(
            tiny(
                shapes,
                tmp_path / "w",
                iterations=8,
                log_every=8,
                check_every=8,
                checkpoint_every=2,
            ),
            criterion=crit,
        )
    assert crit.calls == 4  # it ran one step past the NaN, then checked
    ck = load_checkpoint(tmp_path / "w" / "last.pth")
    assert ck["iteration"] == 2 and all(
        torch.isfinite(v).all() for v in ck["model"].values()
    )


def test_nonfinite_loss_skip_counts(shapes, tmp_path):
    from ssdbook.loss import MultiBoxLoss

    crit = NaNAt(MultiBoxLoss(7), 2)
    r = train(
        tiny(shapes, tmp_path / "k", iterations=3, on_nonfinite="skip"), criterion=crit
    )
    assert r["skipped"] == 1 and r["iteration"] == 3
    assert all(torch.isfinite(p).all() for p in r["net"].parameters())
    assert load_checkpoint(tmp_path / "k" / "last.pth")["skipped"] == 1


def test_result_reports_speed_and_memory(shapes, tmp_path):
    r = train(tiny(shapes, tmp_path / "m", iterations=2))
    assert r["img_s"] > 0 and r["peak_memory_mb"] > 0 and r["checkpoint"].exists()


def test_ddp_two_processes_gloo(shapes, tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "ssdbook",
        "train",
        "--data",
        "shapes",
        "--root",
        str(shapes),
        "--n-train",
        "10",
        "--n-test",
        "4",
        "--out",
        str(out),
        "--iterations",
        "2",
        "--batch-size",
        "4",
        "--warmup",
        "1",
        "--log-every",
        "1",
        "--checkpoint-every",
        "2",
        "--num-workers",
        "0",
        "--device",
        "cpu",
        "--progress",
        "no",
        "--threads",
        "1",
    ]
    r = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ck = load_checkpoint(out / "last.pth")
    assert ck["iteration"] == 2 and ck["world_size"] == 2
    assert "trained 2 iterations" in r.stdout


def test_shapes_priors_and_focal_loss_travel_with_the_checkpoint(shapes, tmp_path):
    """priors='shapes', focal_gamma=2: the net, the loss and the checkpoint follow;
    load_model and Detector rebuild them."""
    from ssdbook.checkpoint import load_model
    from ssdbook.inference import Detector
    from ssdbook.priors import CONFIGS, PriorBox

    r = train(
        tiny(shapes, tmp_path / "s", iterations=2, priors="shapes", focal_gamma=2.0)
    )
    want = PriorBox(CONFIGS["shapes"]).forward()
    assert not torch.equal(want, PriorBox(CONFIGS["voc"]).forward())
    assert torch.equal(r["net"].priors.cpu(), want)
    ck = load_checkpoint(r["checkpoint"])
    assert ck["prior_cfg"] == CONFIGS["shapes"]
    assert (ck["config"]["priors"], ck["config"]["focal_gamma"]) == ("shapes", 2.0)
    net, _ = load_model(r["checkpoint"], device="cpu")
    assert torch.equal(net.priors, want) and net.cfg == CONFIGS["shapes"]
    assert torch.equal(
        Detector.from_checkpoint(r["checkpoint"], device="cpu").net.priors, want
    )
    with pytest.raises(ValueError, match="priors"):  # a resume keeps the priors
        train(
            tiny(
                shapes,
                tmp_path / "s",
                iterations=4,
                priors="voc",
                focal_gamma=2.0,
                resume="auto",
            )
        )


def test_build_model_and_criterion_follow_the_config(shapes, tmp_path):
    from ssdbook.config import pick_device
    from ssdbook.train import Run, build_model

    net = build_model("mini", 7, priors="shapes", focal_gamma=2.0)
    assert net.cfg["name"] == "shapes" and len(net.priors) == 8732
    with torch.no_grad():
        assert (
            net.raw(torch.zeros(1, 3, 300, 300))[1].softmax(-1)[..., 0].mean() > 0.9
        )  # p(background) start
    torch.manual_seed(0)
    plain = build_model("mini", 7)
    assert plain.cfg["name"] == "VOC" and not torch.equal(
        plain.conf[0].bias, net.conf[0].bias
    )
    run = Run(
        tiny(shapes, tmp_path / "r", focal_gamma=1.5, priors="voc"),
        0,
        1,
        pick_device("cpu"),
    )
    assert run.criterion.focal_gamma == 1.5 and run.net.cfg["name"] == "VOC"


# ---------------------------------------------------------------- issue 21: run
# folders, signals, batch sizes
def test_a_folder_holding_a_run_needs_resume_or_overwrite(shapes, tmp_path):
    """Item 2: train into a finished run's folder without resume: refused (one line),
    nothing touched."""
    out = tmp_path / "run"
    train(tiny(shapes, out, iterations=4))
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(
        ValueError,
        match=r"already holds a training run \(last.pth at iteration 4\).*--resume auto"
        r".*new --out.*--overwrite",
    ) as e:
        train(tiny(shapes, out, iterations=2, warmup=1))
    assert "\n" not in str(e.value)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    (out / "notes.txt").write_text("mine")
    r = train(
        tiny(shapes, out, iterations=2, warmup=1, overwrite=True, keep_checkpoints=0)
    )  # a clean new run
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "last.pth",
        "log.csv",
        "loss.png",
        "notes.txt",
        "ssd_mini_000002.pth",
    ], names
    assert r["iteration"] == 2 and [x["iteration"] for x in r["history"]] == [1, 2]


def test_warmup_as_long_as_the_run_warns(shapes, tmp_path):
    "Item 11: warm-up >= iterations is legal but a warning."
    with pytest.warns(UserWarning, match=r"warmup=5 >= iterations=3"):
        train(tiny(shapes, tmp_path / "w", iterations=3, warmup=5))


def test_impossible_batch_sizes_are_refused_before_anything_is_allocated(
    shapes, tmp_path
):
    """Item 15: a batch larger than the data set, or one that cannot fit the memory: one
    line, at once."""
    with pytest.raises(
        ValueError, match=r"--batch-size 100000 is larger than the 10 training images"
    ):
        train(tiny(shapes, tmp_path / "b", batch_size=100_000))
    from ssdbook.pipeline import check_batch_size

    with pytest.raises(ValueError, match=r"--batch-size 20000000 needs about \d+ GB"):
        check_batch_size(shapes_recipe(batch_size=20_000_000), n_images=10**9)
    check_batch_size(
        shapes_recipe(batch_size=16), n_images=16
    )  # a feasible batch passes


SIGTERM_CHILD = r"""
import sys
from ssdbook.runfolder import TrainingInterrupted
from ssdbook.train import shapes_recipe, train
import ssdbook.train as T
real = T.Run.log_row
# tell the parent when step 2 is logged, then go slowly
def log_row(self, done, lr, bar):
    real(self, done, lr, bar)
    if done == 2:
        print("ready", flush=True)
    import time; time.sleep(0.2)
T.Run.log_row = log_row
try:
    train(shapes_recipe(root=sys.argv[1], out=sys.argv[2], n_train=10, n_test=4,
                        iterations=200, batch_size=2, warmup=2, log_every=1,
                        checkpoint_every=100, progress=False, num_workers=0,
                        device="cpu", threads=1))
except TrainingInterrupted as e:
    print(e, flush=True)
    sys.exit(128 + e.signum)
"""


def test_sigterm_saves_a_checkpoint_of_the_current_step_and_releases_the_lock(
    shapes, tmp_path
):
    """Item 17: SIGTERM during training: the step finishes, a checkpoint of it is
    written, the lock goes."""
    import signal

    out = tmp_path / "term"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.Popen(
        [sys.executable, "-c", SIGTERM_CHILD, str(shapes), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert p.stdout.readline().strip() == "ready", p.stderr.read()
    p.send_signal(signal.SIGTERM)
    said, err = p.communicate(timeout=120)
    assert p.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM after iteration" in said and "--resume auto" in said, (
        said
    )
    it = load_checkpoint(out / "last.pth")["iteration"]
    assert 2 <= it < 100 and str(it) in said  # not a scheduled checkpoint (every 100)
    assert not (out / ".ssdbook.lock").exists()
    r = train(
        tiny(
            shapes,
            out,
            iterations=200,
            stop_at=it + 1,
            resume="auto",
            checkpoint_every=100,
        )
    )
    assert r["iteration"] == it + 1
