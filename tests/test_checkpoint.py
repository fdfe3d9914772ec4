"""Chapter 9b: checkpoints you can trust (ssdbook.checkpoint): atomic writes, corrupt
files, resume discovery, rebuilding and fine-tuning models. The run folder (lock,
log.csv) is chapter 9c: tests/test_runfolder.py."""

import errno
import logging
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ssdbook.checkpoint as C
from ssdbook.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    NoSpaceError,
    check_compatible,
    checkpoint_state,
    find_resume,
    load_checkpoint,
    load_for_finetuning,
    load_model,
    resolve_resume,
    rng_state,
    save_checkpoint,
    set_rng_state,
    write_checkpoints,
)
from ssdbook.model import build_ssd

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["circle", "square", "triangle"]


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return build_ssd("train", num_classes=len(CLASSES) + 1, base="mini")


def state_of(net, it=3, **kw):
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    return checkpoint_state(
        net,
        opt,
        iteration=it,
        classes=CLASSES,
        config=dict(base="mini", seed=0, batch_size=2),
        **kw,
    )


def test_state_has_everything_and_round_trips(net, tmp_path):
    st = state_of(net)
    p = save_checkpoint(tmp_path / "c.pth", st)
    assert [q.name for q in tmp_path.iterdir()] == ["c.pth"]  # no temp file left behind
    ck = load_checkpoint(p)
    assert (
        ck["format_version"] == FORMAT_VERSION
        and ck["base"] == "mini"
        and ck["classes"] == CLASSES
    )
    assert ck["num_classes"] == 4 and ck["prior_cfg"]["feature_maps"] == [
        38,
        19,
        10,
        5,
        3,
        1,
    ]
    assert (
        ck["iteration"] == 3 and "sampler" not in ck
    )  # the data stream's state is the iteration
    assert all(torch.equal(ck["model"][k], v) for k, v in net.state_dict().items())
    # keyword form (what ssdbook 0.1 called) still works
    assert (
        load_checkpoint(save_checkpoint(tmp_path / "k.pth", iteration=7))["iteration"]
        == 7
    )


class Wrapper(torch.nn.Module):
    "Stands for DistributedDataParallel (`.module`) and torch.compile (`._orig_mod`)."

    def __init__(self, net, attr):
        super().__init__()
        setattr(self, attr, net)


def test_state_unwraps_ddp_and_compile(net):
    for attr in ("module", "_orig_mod"):
        st = checkpoint_state(
            Wrapper(Wrapper(net, attr), "module"), iteration=1, classes=CLASSES
        )
        assert st["model"].keys() == net.state_dict().keys() and st["base"] == "mini"


def test_rng_round_trip(tmp_path):
    p = save_checkpoint(tmp_path / "r.pth", rng=rng_state())
    a = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(load_checkpoint(p)["rng"])
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and (a[1] == b[1]).all() and a[2] == b[2]


def one_line(e):
    s = str(e.value)
    assert "\n" not in s, s
    return s


def test_bad_files_are_one_line_errors_naming_the_file(net, tmp_path):
    good = save_checkpoint(tmp_path / "good.pth", state_of(net))
    with pytest.raises(
        CheckpointError, match="checkpoint not found: .*missing.pth"
    ) as e:
        load_checkpoint(tmp_path / "missing.pth")
    assert isinstance(e.value, FileNotFoundError)
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(
        CheckpointError, match=r"corrupt checkpoint .*empty.pth: empty file"
    ) as e:
        load_checkpoint(tmp_path / "empty.pth")
    one_line(e)
    data = good.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 100):
        (tmp_path / "cut.pth").write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=r"corrupt checkpoint .*cut.pth") as e:
            load_checkpoint(tmp_path / "cut.pth")
        one_line(e)
    with pytest.raises(CheckpointError, match=r"README.md is not a checkpoint") as e:
        load_checkpoint(ROOT / "README.md")
    one_line(e)
    torch.save(net.state_dict(), tmp_path / "sd.pth")
    with pytest.raises(
        CheckpointError,
        match=r"sd.pth is not an ssdbook checkpoint: a plain state_dict",
    ) as e:
        load_checkpoint(tmp_path / "sd.pth")
    one_line(e)
    torch.save(dict(format_version=FORMAT_VERSION + 1, model={}), tmp_path / "new.pth")
    with pytest.raises(
        CheckpointError,
        match=rf"new.pth has checkpoint format {FORMAT_VERSION + 1}, newer",
    ):
        load_checkpoint(tmp_path / "new.pth")
    torch.save(
        dict(model={}, when=Path("x")), tmp_path / "objects.pth"
    )  # pickled Python objects
    with pytest.raises(
        CheckpointError, match=r"objects.pth holds Python objects besides tensors"
    ):
        load_checkpoint(tmp_path / "objects.pth")
    with pytest.raises(CheckpointError, match="is a folder"):
        load_checkpoint(tmp_path)
    # a checkpoint of ssdbook 0.1 (no format_version) still loads
    torch.save(
        dict(model=net.state_dict(), iteration=1, base="mini"), tmp_path / "v1.pth"
    )
    assert load_checkpoint(tmp_path / "v1.pth").get("format_version", 1) == 1


def test_checkpoints_with_the_old_sampler_entry_still_load(net, tmp_path):
    """Format 2 files written before the unused `sampler` entry was dropped: they load
    and rebuild as before."""
    p = save_checkpoint(
        tmp_path / "old.pth", state_of(net), sampler=dict(seed=0, position=6)
    )
    assert load_checkpoint(p)["sampler"] == dict(seed=0, position=6)
    m, ck = load_model(p, device="cpu")
    assert ck["iteration"] == 3 and m.num_classes == 4


def test_disk_full_names_the_file_and_keeps_the_previous(net, tmp_path, monkeypatch):
    p = save_checkpoint(tmp_path / "last.pth", state_of(net, it=1))
    before = p.read_bytes()

    def full(f, data):
        f.write(bytes(data)[:1000])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(C, "_write_bytes", full)
    with pytest.raises(NoSpaceError, match=r"^no space left writing .*last.pth") as e:
        save_checkpoint(p, state_of(net, it=2))
    one_line(e)
    assert isinstance(e.value, OSError) and isinstance(e.value, ValueError)
    assert p.read_bytes() == before and load_checkpoint(p)["iteration"] == 1
    assert [q.name for q in tmp_path.iterdir()] == [
        "last.pth"
    ]  # the partial temp file is gone


def test_write_checkpoints_and_find_resume(net, tmp_path, caplog):
    assert find_resume(tmp_path) is None and resolve_resume("", tmp_path) is None
    for it in (1, 2, 3):
        write_checkpoints(tmp_path, state_of(net, it=it), keep=2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["last.pth", "ssd_mini_000002.pth", "ssd_mini_000003.pth"]
    assert (
        find_resume(tmp_path)
        == tmp_path / "last.pth"
        == resolve_resume("auto", tmp_path)
    )
    # last.pth truncated: the newest numbered checkpoint that loads, and one log line
    # saying so
    data = (tmp_path / "last.pth").read_bytes()
    (tmp_path / "last.pth").write_bytes(data[: len(data) // 3])
    (tmp_path / "ssd_mini_000003.pth").write_bytes(b"")
    with caplog.at_level(logging.WARNING, "ssdbook.checkpoint"):
        assert find_resume(tmp_path) == tmp_path / "ssd_mini_000002.pth"
    assert "resuming from" in caplog.text and "corrupt checkpoint" in caplog.text
    (tmp_path / "ssd_mini_000002.pth").unlink()
    with pytest.raises(CheckpointError, match="no intact checkpoint in"):
        find_resume(tmp_path)
    assert (
        resolve_resume(str(tmp_path / "nope.pth"), tmp_path) == tmp_path / "nope.pth"
    )  # load_checkpoint names it


def test_kill_during_first_last_write_does_not_lose_a_complete_checkpoint(
    net, tmp_path
):
    """Only a numbered checkpoint is complete (last.pth missing or half written): resume
    from it, not from 0."""
    save_checkpoint(tmp_path / "ssd_mini_000001.pth", state_of(net, it=1))
    (tmp_path / f".last.pth.tmp{os.getpid() + 1}").write_bytes(b"PK\x03\x04 half")
    assert find_resume(tmp_path) == tmp_path / "ssd_mini_000001.pth"


def test_compatibility_errors_name_both_sides(net):
    ck = state_of(net)
    check_compatible(
        ck, base="mini", classes=CLASSES, num_classes=4, prior_cfg=dict(net.cfg)
    )
    with pytest.raises(
        CheckpointError,
        match=r"x.pth was trained on classes \['a', 'b'\], this run has "
        r"\['circle', 'square', 'triangle'\]",
    ) as e:
        check_compatible(dict(ck, classes=["a", "b"]), classes=CLASSES, name="x.pth")
    one_line(e)
    with pytest.raises(
        CheckpointError, match=r"is a 'mini' SSD, this run builds base 'vgg16'"
    ):
        check_compatible(ck, base="vgg16")
    with pytest.raises(
        CheckpointError, match=r"has 4 classes \(background included\), this run 21"
    ):
        check_compatible(ck, num_classes=21)
    with pytest.raises(CheckpointError, match=r"other priors: min_sizes"):
        check_compatible(ck, prior_cfg=dict(net.cfg, min_sizes=[1, 2, 3, 4, 5, 6]))


def test_load_model_rebuilds_the_network(net, tmp_path):
    p = save_checkpoint(tmp_path / "c.pth", state_of(net))
    m, ck = load_model(p, device="cpu")
    assert (
        ck["classes"] == CLASSES
        and m.num_classes == 4
        and not m.training
        and m.phase == "train"
    )
    x = torch.rand(1, 3, 300, 300)
    net.eval()
    assert torch.equal(m(x)[1], net(x)[1])
    assert load_model(p, device="cpu", phase="test")[0].phase == "test"
    torch.save(
        dict(format_version=FORMAT_VERSION, iteration=1), tmp_path / "nomodel.pth"
    )
    with pytest.raises(
        CheckpointError, match="nomodel.pth has no model, base, num_classes entries"
    ):
        load_model(tmp_path / "nomodel.pth", device="cpu")


def test_fine_tuning_keeps_all_but_the_class_heads(net, tmp_path):
    p = save_checkpoint(tmp_path / "c.pth", state_of(net))
    torch.manual_seed(1)
    other = build_ssd("train", num_classes=8, base="mini")
    init = {k: v.clone() for k, v in other.state_dict().items()}
    fresh = load_for_finetuning(other, p)
    assert fresh == [f"conf.{i}.{w}" for i in range(6) for w in ("weight", "bias")]
    sd = other.state_dict()
    for k, v in net.state_dict().items():
        assert torch.equal(sd[k], init[k] if k in fresh else v), k
    with pytest.raises(
        CheckpointError, match=r"c.pth is a 'mini' SSD, the network is 'vgg16'"
    ):
        load_for_finetuning(build_ssd("train", num_classes=8, base="vgg16"), p)
    bad = dict(net.state_dict())
    bad["loc.0.weight"] = bad["loc.0.weight"][:1]
    with pytest.raises(
        CheckpointError, match=r"beyond its class heads: loc.0.weight \(1,"
    ):
        load_for_finetuning(other, bad)
