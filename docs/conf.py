"""Sphinx configuration of the sklearn_noisy documentation."""

import os
import warnings

import sklearn_noisy

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the build never reaches the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

project = "sklearn_noisy"
author = "sklearn_noisy developers"
copyright = "sklearn_noisy developers"
release = version = sklearn_noisy.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py"]
html_theme = "pydata_sphinx_theme"
html_title = f"sklearn_noisy {version}"
html_theme_options = {"navigation_with_keys": False}
html_static_path = []

autosummary_generate = True
autodoc_default_options = {
    "members": True,
    "inherited-members": False,
    # metadata-routing setters that scikit-learn generates on every estimator
    "exclude-members": ",".join(
        f"set_{verb}_request"
        for verb in ("fit", "score", "split", "predict", "predict_proba", "transform")
    ),
}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
default_role = "literal"
# intersphinx would need the network; cross-references to other projects stay text
nitpicky = False

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"notebooks",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "backreferences_dir": "generated/backreferences",
    "doc_module": ("sklearn_noisy",),
    "reference_url": {"sklearn_noisy": None},
    "remove_config_comments": True,
    "matplotlib_animations": False,
}

# Third-party libraries warn at import or fit time (tqdm, torch, skorch);
# those warnings are printed by the gallery, not turned into build errors.
warnings.filterwarnings("ignore", category=UserWarning, module="matplotlib")
