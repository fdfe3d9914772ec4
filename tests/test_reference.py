"""The slimmed golden data shipped in the package is the reference's full file, bit for bit."""
import os
from pathlib import Path

import pytest
import torch

from ssdbook.reference import GOLDEN_FILE, load_golden

ROOT = Path(__file__).resolve().parents[1]
FULL = Path(os.environ.get("SSDBOOK_REFERENCE", ROOT.parent / "shared" / "reference")) / "ssd_pytorch_golden.pt"


def _equal(a, b, where="golden"):
    assert type(a) is type(b), f"{where}: {type(a)} vs {type(b)}"
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b) or (
            a.is_floating_point() and torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), f"{where}: keys {sorted(set(a) ^ set(b))}"
        for k in a:
            _equal(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _equal(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and a != a:
        assert b != b, where          # NaN == NaN
    else:
        assert a == b, where


def test_slim_file_is_small_and_ships_in_the_package():
    assert GOLDEN_FILE.exists() and GOLDEN_FILE.stat().st_size <= 8 * 2**20


def test_loading_leaves_the_global_rng_alone():
    load_golden.cache_clear()
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    load_golden()
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.skipif(not FULL.exists(), reason="the full reference file is not beside the repository (not needed)")
def test_slim_equals_full_reference_file():
    full = torch.load(FULL, weights_only=True)
    slim = {k: v for k, v in load_golden().items() if k != "slim"}
    _equal(slim, full)


def test_slim_tool_reproduces_the_shipped_file(tmp_path):
    if not FULL.exists():
        pytest.skip("the full reference file is not beside the repository (not needed)")
    import importlib.util
    spec = importlib.util.spec_from_file_location("slim_golden", ROOT / "tools" / "slim_golden.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(FULL, tmp_path / "slim.pt")
    _equal(torch.load(tmp_path / "slim.pt", weights_only=True), torch.load(GOLDEN_FILE, weights_only=True))
