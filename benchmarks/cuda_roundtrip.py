"""A model fitted on a CUDA GPU, pickled, loaded and used on a machine without one.

CI runs on CPU only, so this is the one check of what a user does when they
train on a GPU box and predict on a laptop.  Two halves, run on two machines:

``python benchmarks/cuda_roundtrip.py write models.pkl.gz``
    (on the GPU machine) fits every library method on digits with
    ``device="cuda"`` and pickles them with the probabilities each gave there.
``python benchmarks/cuda_roundtrip.py check models.pkl.gz``
    (on a machine without CUDA) loads the pickle, and checks that every model
    predicts on CPU, its network and per-sample tables on CPU, with the same
    probabilities (up to float32 rounding between the two devices).

``--device cpu`` on ``write`` runs the first half on CPU (for trying the script
where there is no GPU).  ``benchmarks/gpu_check.sh`` calls ``write``.
"""

from __future__ import annotations

import argparse
import gzip
import pickle
import sys

import numpy as np
import torch

from sklearn_noisy import MetaLabelCorrectionClassifier
from sklearn_noisy.datasets import make_noisy_case
from sklearn_noisy.methods import available_methods


def write(path, device):
    case = make_noisy_case("digits", kind="symmetric", rate=0.4, seed=0)
    models = {}
    for method in available_methods():
        clf = MetaLabelCorrectionClassifier(
            method=method, max_epochs=4, warmup_epochs=1, device=device, random_state=0
        )
        clf.fit(case.X, case.y_noisy, X_meta=case.X_meta, y_meta=case.y_meta)
        fitted_on = next(clf.net_.module_.parameters()).device.type
        models[method] = (clf, clf.predict_proba(case.X_test), fitted_on)
        print(f"{method:<6} fitted on {fitted_on}")
    with gzip.open(path, "wb") as fh:
        pickle.dump({"X_test": case.X_test, "models": models}, fh)


def _devices(clf):
    """Device types of every tensor the fitted net holds."""
    net = clf.net_
    tensors = list(net.module_.state_dict().values())
    if getattr(net, "meta_module_", None) is not None:
        tensors += list(net.meta_module_.state_dict().values())
    return {t.device.type for t in tensors}


def check(path):
    with gzip.open(path, "rb") as fh:
        saved = pickle.load(fh)
    failures = 0
    for method, (clf, proba_there, fitted_on) in saved["models"].items():
        proba = clf.predict_proba(saved["X_test"])
        gap = float(np.abs(proba - proba_there).max())
        devices = _devices(clf)
        ok = devices == {"cpu"} and gap < 1e-4
        failures += not ok
        print(
            f"{method:<6} fitted on {fitted_on}, loaded on {sorted(devices)}, "
            f"max |proba - proba there| {gap:.1e}: {'ok' if ok else 'FAILED'}"
        )
    return failures


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python benchmarks/cuda_roundtrip.py")
    parser.add_argument("step", choices=["write", "check"])
    parser.add_argument("path")
    parser.add_argument("--device", default="cuda", help="write: where to fit")
    args = parser.parse_args(argv)
    if args.step == "write":
        write(args.path, args.device)
        return 0
    if torch.cuda.is_available():
        print("note: CUDA is available here, so this does not show a CPU-only load")
    return 1 if check(args.path) else 0


if __name__ == "__main__":
    sys.exit(main())
