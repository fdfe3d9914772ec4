"""Issue 19.4: a run picks its CPU threads from the cores other work leaves free
(`auto_threads`, chapter 9), keeps that count on resume (bit-identical resume), and
`--threads N` overrides both."""

import os

import pytest
import torch

import ssdbook.pipeline as config
from ssdbook.checkpoint import load_checkpoint
from ssdbook.shapes import make_shapes_voc
from ssdbook.train import shapes_recipe, train, use_threads


@pytest.fixture
def keep_threads():
    n = torch.get_num_threads()
    yield n
    torch.set_num_threads(n)


def _cpus():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1


def test_busy_cores_is_a_share_of_the_cores():
    assert 0.0 <= config.busy_cores(0.05) <= max(_cpus(), os.cpu_count() or 1) + 0.01


@pytest.mark.parametrize("busy", [0.0, 0.6, 1.4, 64.0])
def test_auto_threads_leaves_the_busy_cores(monkeypatch, keep_threads, busy):
    monkeypatch.setattr(config, "busy_cores", lambda interval=0.2: busy)
    torch.set_num_threads(max(_cpus(), 1))
    want = max(1, min(torch.get_num_threads(), _cpus() - round(busy)))
    assert config.auto_threads() == want


def test_auto_never_raises_the_count_a_user_set(monkeypatch, keep_threads):
    monkeypatch.setattr(config, "busy_cores", lambda interval=0.2: 0.0)
    torch.set_num_threads(1)
    assert config.auto_threads() == 1


def test_given_then_resumed_then_auto(monkeypatch, keep_threads):
    monkeypatch.setattr("ssdbook.train.auto_threads", lambda: 1)
    assert use_threads(3) == 3 == torch.get_num_threads()
    assert use_threads(0, {"threads": 2}) == 2 == torch.get_num_threads()
    assert use_threads(0, {}) == 1 == torch.get_num_threads()


def test_the_checkpoint_records_the_count(tmp_path, keep_threads):
    make_shapes_voc(tmp_path / "d", n_train=4, n_test=2, seed=0)
    kw = dict(root=str(tmp_path / "d"), n_train=4, n_test=2, batch_size=2)
    kw.update(iterations=1, warmup=0, progress=False, num_workers=0, threads=1)
    run = train(shapes_recipe(out=str(tmp_path / "r"), **kw))
    assert run["threads"] == 1
    assert load_checkpoint(tmp_path / "r" / "last.pth")["threads"] == 1
