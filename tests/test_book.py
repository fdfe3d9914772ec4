"""The book builds offline with warnings as errors, every chapter is a page, maths is served locally."""
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part["chapters"]]
    return files


def test_toc_lists_every_notebook():
    listed = {f + ".ipynb" for f in _toc_files()}
    present = {str(p.relative_to(ROOT)) for p in (ROOT / "nbs").glob("*.ipynb")}
    assert listed == present


def test_book_builds_offline_with_warnings_as_errors(tmp_path):
    exe = Path(sys.executable).with_name("jupyter-book")
    r = subprocess.run([str(exe), "build", str(ROOT), "-W", "-n", "--keep-going", "--path-output", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    html = tmp_path / "_build" / "html"
    for f in _toc_files():
        page = html / (f + ".html")
        assert page.exists(), page
        text = page.read_text()
        assert "mathjax/tex-svg.js" in text, f"{page.name}: MathJax is not served locally"
        assert "cdn.jsdelivr.net/npm/mathjax" not in text, f"{page.name}: MathJax from a CDN"
        if f != _toc_files()[0]:
            assert "colab.research.google.com" in text, f"{page.name}: no Colab launch button"
    assert (html / "_static" / "mathjax" / "tex-svg.js").exists()
