"""Fixtures shared by the tests: the reference golden data in ../shared/reference/."""
import json
import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("SSDBOOK_REFERENCE", ROOT.parent / "shared" / "reference"))


def _require(path: Path) -> Path:
    if not path.exists():
        msg = (f"reference data not found: {path}. The golden data of the reference PyTorch SSD lives in "
               f"../shared/reference/ beside the repository (or set SSDBOOK_REFERENCE).")
        if os.environ.get("SSDBOOK_ALLOW_MISSING_REFERENCE") == "1":
            pytest.skip(msg)
        pytest.fail(msg)
    return path


@pytest.fixture(scope="session")
def golden():
    """The whole golden file: priors, jaccard, match, loss and decode/NMS cases (see its README)."""
    return torch.load(_require(REFERENCE / "ssd_pytorch_golden.pt"), weights_only=True)


@pytest.fixture(scope="session")
def voc_layout():
    """The reference SSD300-VOC state_dict layout (keys, shapes, parameter count)."""
    return json.loads(_require(REFERENCE / "ssd300_voc_layout.json").read_text())
