"""The notebooks are the source: exporting them must reproduce the committed package
exactly (up to `ruff format`, which `make export` runs after nbdev_export: see
tests/test_style.py)."""

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_export_matches_committed_package(tmp_path):
    for name in ("settings.ini", "setup.py", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(
        ROOT / "nbs",
        tmp_path / "nbs",
        ignore=shutil.ignore_patterns(".ipynb_checkpoints"),
    )
    (tmp_path / "ssdbook").mkdir()
    shutil.copy(ROOT / "ssdbook" / "__init__.py", tmp_path / "ssdbook" / "__init__.py")
    exe = Path(sys.executable).with_name("nbdev_export")
    subprocess.run([str(exe)], cwd=tmp_path, check=True, capture_output=True, text=True)
    ours = {p.name for p in (ROOT / "ssdbook").glob("*.py")}
    fresh = {p.name for p in (tmp_path / "ssdbook").glob("*.py")}
    assert ours == fresh, (
        f"modules differ: only committed {sorted(ours - fresh)}, only exported "
        f"{sorted(fresh - ours)}"
    )
    committed = tmp_path / "committed"
    shutil.copytree(
        ROOT / "ssdbook",
        committed,
        ignore=shutil.ignore_patterns("__pycache__", "reference_data"),
    )
    ruff = Path(sys.executable).with_name("ruff")
    for folder in (committed, tmp_path / "ssdbook"):  # the same formatter on both sides
        subprocess.run(
            [
                str(ruff),
                "format",
                "--no-cache",
                "--quiet",
                "--config",
                str(ROOT / "pyproject.toml"),
                str(folder),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    stale = [
        n
        for n in sorted(ours)
        if not filecmp.cmp(committed / n, tmp_path / "ssdbook" / n, shallow=False)
    ]
    assert not stale, f"ssdbook/ is out of sync with nbs/ (run `make export`): {stale}"
