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
import sys
from pathlib import Path

import pytest

os.environ.setdefault("SSDBOOK_QUICK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

# Under pytest-xdist (`make test` runs `pytest -n 2`), the workers share the cores: each worker and the notebook
# kernels it starts get cores / workers threads, so two processes do not fight for both cores with two
# threads each (measured: 2.5x slower on a 2-core CPU). Set before torch is imported.
if os.environ.get("PYTEST_XDIST_WORKER"):
    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    os.environ.setdefault(
        "OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _workers))
    )


def _reads_golden(path: Path, cache: dict) -> bool:
    if path not in cache:
        cache[path] = path.name == "test_reference.py" or (
            path.suffix == ".ipynb"
            and "load_golden" in path.read_text(encoding="utf-8")
        )
    return cache[path]


# The files that took longest in a `pytest -n 2 --dist loadfile --durations` run (h1, 2026-12-07, by CPU seconds
# and wall): started first, so that no worker is left alone with a long file at the end (longest first).
SLOW_FIRST = (
    "12_own_data.ipynb",
    "test_faults.py",
    "test_train.py",
    "test_explore.py",
    "test_ablation.py",
    "test_augment.py",
    "test_cli_errors.py",
    "test_model.py",
    "11_cli.ipynb",
    "09c_run_folder.ipynb",
    "test_evaluate.py",
    "test_book.py",
    "09d_training_loop.ipynb",
    "test_matching.py",
    "test_cli.py",
)


def pytest_collection_modifyitems(config, items):
    cache = {}
    for item in items:
        if "golden" in getattr(item, "fixturenames", ()) or _reads_golden(
            Path(str(item.fspath)), cache
        ):
            item.add_marker(pytest.mark.golden)
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(
        key=lambda item: rank.get(Path(str(item.fspath)).name, len(rank))
    )  # stable: cells stay in order
    if (
        os.environ.get("PYTEST_XDIST_WORKER") and "torch" in sys.modules
    ):  # a test module may have set its own
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
