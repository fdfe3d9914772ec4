"""The slimmed golden data shipped in the package is the reference's full file, bit for
bit."""

import os
from pathlib import Path

import pytest
import torch

from ssdbook.reference import GOLDEN_FILE, load_golden

ROOT = Path(__file__).resolve().parents[1]
FULL = (
    Path(os.environ.get("SSDBOOK_REFERENCE", ROOT.parent / "shared" / "reference"))
    / "ssd_pytorch_golden.pt"
)


def _equal(a, b, where="golden"):
    assert type(a) is type(b), f"{where}: {type(a)} vs {type(b)}"
    if isinstance(a, torch.Tensor):
        assert (
            a.dtype == b.dtype
            and a.shape == b.shape
            and torch.equal(a, b)
            or (
                a.is_floating_point()
                and torch.equal(a.isnan(), b.isnan())
                and torch.equal(a.nan_to_num(), b.nan_to_num())
            )
        ), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), f"{where}: keys {sorted(set(a) ^ set(b))}"
        for k in a:
            _equal(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _equal(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and a != a:
        assert b != b, where  # NaN == NaN
    else:
        assert a == b, where


def test_slim_file_is_small_and_ships_in_the_package():
    assert GOLDEN_FILE.exists() and GOLDEN_FILE.stat().st_size <= 8 * 2**20


def test_rebuilding_calls_no_torch_rng_or_softmax(monkeypatch):
    """The inputs come from integers and IEEE-exact arithmetic, never from CPU-dependent
    torch kernels."""

    def refuse(*args, **kwargs):
        raise AssertionError(
            "load_golden must not depend on torch's vectorised randn/softmax"
        )

    for name in ("randn", "softmax", "manual_seed"):
        monkeypatch.setattr(torch, name, refuse)
    g = load_golden.__wrapped__()
    assert g["loss_cases"][2]["conf_data"].shape == (15, 8732, 21)


def test_portable_elementary_functions_are_accurate():
    """log, sin, cos and exp from + - * / agree with the platform's libm to ~1 float64
    ulp."""
    import math

    import numpy as np

    from ssdbook.reference import _exp, _log, _sincos

    x = np.linspace(2.0**-24, 1.0, 10001)
    assert max(abs(a - math.log(v)) for a, v in zip(_log(x), x)) < 1e-15
    t = np.linspace(0.0, 2 * math.pi, 10001)
    s, c = _sincos(t)
    assert max(abs(a - math.sin(v)) for a, v in zip(s, t)) < 1e-15
    assert max(abs(a - math.cos(v)) for a, v in zip(c, t)) < 1e-15
    z = np.linspace(-80.0, 0.0, 10001)
    assert max(abs(a / math.exp(v) - 1) for a, v in zip(_exp(z), z)) < 1e-15


def test_damaged_correction_is_one_line_error(tmp_path):
    raw = torch.load(GOLDEN_FILE, weights_only=True)
    import lzma

    import numpy as np

    rec = raw["loss_cases"][0]["inputs_recipe"]
    d = np.frombuffer(
        lzma.decompress(rec["correction"].numpy().tobytes()), np.int8
    ).copy()
    d[5] += 1
    rec["correction"] = torch.frombuffer(
        bytearray(lzma.compress(d.tobytes())), dtype=torch.uint8
    )
    torch.save(raw, tmp_path / "bad.pt")
    with pytest.raises(
        RuntimeError, match="batch1 loc_data is not the reference's input"
    ):
        load_golden.__wrapped__(tmp_path / "bad.pt")


def test_loading_leaves_the_global_rng_alone():
    load_golden.cache_clear()
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    load_golden()
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.skipif(
    not FULL.exists(),
    reason="the full reference file is not beside the repository (not needed)",
)
def test_slim_equals_full_reference_file():
    full = torch.load(FULL, weights_only=True)
    slim = {k: v for k, v in load_golden().items() if k != "slim"}
    _equal(slim, full)


def test_slim_tool_reproduces_the_shipped_file(tmp_path):
    if not FULL.exists():
        pytest.skip("the full reference file is not beside the repository (not needed)")
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "slim_golden", ROOT / "tools" / "slim_golden.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(FULL, tmp_path / "slim.pt")
    _equal(
        torch.load(tmp_path / "slim.pt", weights_only=True),
        torch.load(GOLDEN_FILE, weights_only=True),
    )
