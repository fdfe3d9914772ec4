"""The package's front door (issue 21.5): `import ssdbook` is light and gives the public
API lazily."""

import subprocess
import sys

import pytest

import ssdbook


def _python(code: str) -> str:
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.strip()


def test_import_ssdbook_imports_no_torch():
    out = _python(
        "import sys, ssdbook; "
        "print('torch' in sys.modules, 'torchvision' in sys.modules, "
        "sorted(m for m in sys.modules if m.startswith('ssdbook.')))"
    )
    assert out == "False False []"


def test_public_names_resolve_to_their_modules():
    import importlib

    for module, names in ssdbook.API.items():
        mod = importlib.import_module(f"ssdbook.{module}")
        for name in names:
            assert getattr(ssdbook, name) is getattr(mod, name), (module, name)
    assert sorted(ssdbook.__all__) == sorted(
        n for names in ssdbook.API.values() for n in names
    )
    assert set(ssdbook.__all__) <= set(dir(ssdbook))


def test_named_api_of_the_issue():
    from ssdbook.inference import Detector
    from ssdbook.matching import jaccard, match

    assert (
        ssdbook.Detector is Detector
        and ssdbook.jaccard is jaccard
        and ssdbook.match is match
    )
    for name in (
        "build_ssd",
        "MultiBoxLoss",
        "PriorBox",
        "encode",
        "decode",
        "Detect",
        "VOCDetection",
    ):
        assert callable(getattr(ssdbook, name))
    assert (
        ssdbook.detect.__name__ == "ssdbook.detect"
    )  # modules too, without importing them first
    assert isinstance(ssdbook.__version__, str)


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Detektor'"):
        ssdbook.Detektor
    assert not hasattr(ssdbook, "nothing_here")


def test_star_import_in_a_fresh_interpreter():
    out = _python(
        "from ssdbook import *; print(Detector.__module__, build_ssd.__module__)"
    )
    assert out == "ssdbook.inference ssdbook.model"
