"""Root pytest configuration, shared by tests/ and the nbval run of nbs/.

Notebooks check `SSDBOOK_QUICK`: under the test run they use small budgets (iterations, images) so
the whole suite stays fast. The committed outputs come from full runs (`make run-nbs`).
nbval starts each notebook's kernel from this process, so the variable reaches the kernels.

Every test that reads the reference's golden data is marked `golden` (registered in pytest.ini): the tests that
use the `golden` fixture (directly or through another fixture), tests/test_reference.py, and every cell of a
notebook that calls `load_golden`. `pytest -m golden` selects them; `.ci/run` runs them again under other CPU
capabilities (`ATEN_CPU_CAPABILITY=avx2`, `=default`) to prove they do not depend on the CPU's vector unit.
"""

import os
from pathlib import Path

import pytest

os.environ.setdefault("SSDBOOK_QUICK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


def _reads_golden(path: Path, cache: dict) -> bool:
    if path not in cache:
        cache[path] = path.name == "test_reference.py" or (
            path.suffix == ".ipynb"
            and "load_golden" in path.read_text(encoding="utf-8")
        )
    return cache[path]


def pytest_collection_modifyitems(config, items):
    cache = {}
    for item in items:
        if "golden" in getattr(item, "fixturenames", ()) or _reads_golden(
            Path(str(item.fspath)), cache
        ):
            item.add_marker(pytest.mark.golden)
