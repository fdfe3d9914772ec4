"""Fixtures shared by the tests: the reference golden data, shipped inside the package.

`ssdbook.reference.load_golden()` reads the slimmed golden file in
`ssdbook/reference_data/` (derived from the reference's full file by
`tools/slim_golden.py`), so the tests need nothing beside the repository.
"""

import json
from pathlib import Path

import pytest

from ssdbook.reference import load_golden

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def golden():
    """Priors, jaccard, match, loss and decode/NMS cases of the reference SSD (see
    nbs/00a_reference.ipynb)."""
    return load_golden()


@pytest.fixture(scope="session")
def voc_layout():
    """The reference SSD300-VOC state_dict layout (keys, shapes, parameter count)."""
    return json.loads(
        (ROOT / "ssdbook" / "reference_data" / "ssd300_voc_layout.json").read_text()
    )
