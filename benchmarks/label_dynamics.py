"""What the given labels are, and what a method does to them, epoch by epoch.

Run ``python benchmarks/label_dynamics.py --help``.  For each dataset, noise
case and seed of the accuracy benchmark (the same splits, from
:func:`sklearn_noisy.datasets.make_noisy_case`), it reports:

* **The labels.**  The share of the noisy rows' given labels that are right,
  and how they relate to a linear model: the logistic regression that the
  ``"instance"`` noise model fits on the clean labels (standardised features,
  :func:`sklearn_noisy.noise.make_noisy_labels`), fitted here the same way on
  the same rows, with its accuracy on them and the share of given labels that
  equal its predictions.  Where that model is poor, instance noise writes its
  predictions into the labels, a function that a network may learn sooner than
  the true one.
* **The network.**  After the first epoch and after the last, the share of the
  noisy rows on which the network's prediction equals the given label and the
  true label.
* **The corrections.**  The method's corrected labels (what ``corrected_labels_``
  would be at that epoch: the method's ``correct`` on the network's
  predictions) against the true labels, at the end of the first epoch with a
  meta step and of the last, and the look-ahead network's accuracy on the
  trusted batches in those epochs (``meta_acc``: near 1 when the trusted rows
  are memorised).
* The test accuracy of the fit (the defaults users get; the test set is read
  only after the fit).

The per-epoch figures are in the ``--json`` report; ``--report A.json B.json``
prints the table of runs spread over processes, fitting nothing (and with
``--json`` writes them as one report).  ``--quick`` runs one small
configuration in a few seconds (used by the tests).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import Callback
from threadpoolctl import threadpool_limits

from sklearn_noisy import MetaLabelCorrectionClassifier
from sklearn_noisy.datasets import make_noisy_case

# benchmarks/accuracy.py, beside this script, also when this file is imported by path
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from accuracy import _parse_cases, machine, write_report  # noqa: E402


def linear_labels(case):
    """The noise model's logistic regression on the noisy rows, fitted on their true labels.

    Returns its accuracy on those rows and the share of given labels equal to its
    predictions.
    """
    with threadpool_limits(limits=1, user_api="blas"):  # as the noise model fits it
        Xs = StandardScaler().fit_transform(case.X)
        pred = LogisticRegression(max_iter=1000).fit(Xs, case.y_true).predict(Xs)
    return float(np.mean(pred == case.y_true)), float(np.mean(pred == case.y_noisy))


class _EpochRecord(Callback):
    """At each epoch's end: the network's and the method's view of the noisy rows.

    The noisy rows are the first ``len(case.y_noisy)`` rows of the training set
    (the trusted rows are given as ``X_meta``), so their places in the method's
    per-sample tables are ``0 .. n - 1``.  The prediction runs under a forked
    RNG state (``predict_logits``): the fit is the one users get.
    """

    def __init__(self, case):
        self.case = case

    def initialize(self):
        self.records_ = []
        return self

    def on_epoch_end(self, net, **kwargs):
        case = self.case
        logits = net.predict_logits(case.X.astype(np.float32), device=net.device)
        with torch.no_grad():
            proba = logits.softmax(1)
            y = torch.as_tensor(case.y_noisy, device=net.device)
            idx = torch.arange(len(y), device=net.device)
            corrected = net.method.correct(net, proba, y, idx).argmax(1).cpu().numpy()
        pred = logits.argmax(1).cpu().numpy()
        row = net.history[-1]
        self.records_.append(
            {
                "epoch": len(net.history),
                "fits_given": float(np.mean(pred == case.y_noisy)),
                "fits_true": float(np.mean(pred == case.y_true)),
                "corrected_label_accuracy": float(np.mean(corrected == case.y_true)),
                "meta_acc": float(row["meta_acc"]) if "meta_acc" in row else None,
            }
        )


def run_one(dataset, kind, rate, seed, settings):
    case = make_noisy_case(dataset, kind=kind, rate=rate, seed=seed)
    if not np.array_equal(np.unique(case.y_meta), np.arange(len(np.unique(case.y_meta)))):
        raise ValueError(f"{dataset}: labels must be 0 .. C-1 for the per-epoch corrections.")
    linear_acc, given_is_linear = linear_labels(case)
    clf = MetaLabelCorrectionClassifier(
        method=settings["method"],
        max_epochs=settings["epochs"],
        device=settings["device"],
        random_state=seed,
        callbacks=[_EpochRecord(case)],
    )
    start = time.perf_counter()
    clf.fit(case.X, case.y_noisy, X_meta=case.X_meta, y_meta=case.y_meta)
    elapsed = time.perf_counter() - start
    # the fit runs on a copy of the callback: its records are the fitted net's
    (epochs,) = [cb.records_ for _, cb in clf.net_.callbacks_ if isinstance(cb, _EpochRecord)]
    meta = [e for e in epochs if e["meta_acc"] is not None]
    first_meta = meta[0] if meta else None
    return {
        "dataset": dataset,
        "noise": kind,
        "rate": rate,
        "seed": seed,
        "method": settings["method"],
        "noisy_label_accuracy": float(np.mean(case.y_noisy == case.y_true)),
        "linear_model_accuracy": linear_acc,
        "given_equal_linear": given_is_linear,
        "first_epoch": epochs[0],
        "last_epoch": epochs[-1],
        "first_meta_epoch": first_meta,
        # the fitted model's (after its tail averaging, where the method averages)
        "corrected_label_accuracy": float(np.mean(clf.corrected_labels_ == case.y_true)),
        "test_accuracy": float(clf.score(case.X_test, case.y_test)),
        "fit_time_s": elapsed,
        "epochs": epochs,
    }


# the table's columns after the case and its seeds: a field of a run, or of one of
# its epochs (``first_meta_epoch`` is None for a method without meta steps)
_COLUMNS = (
    ("labels right", [("noisy_label_accuracy",)]),
    ("linear model right", [("linear_model_accuracy",)]),
    ("labels = linear model", [("given_equal_linear",)]),
    ("epoch 1: fits given / true", [("first_epoch", "fits_given"), ("first_epoch", "fits_true")]),
    ("last epoch: fits given / true", [("last_epoch", "fits_given"), ("last_epoch", "fits_true")]),
    (
        "corrected right: first meta epoch -> last",
        [
            ("first_meta_epoch", "corrected_label_accuracy"),
            ("last_epoch", "corrected_label_accuracy"),
        ],
    ),
    ("meta_acc: first -> last", [("first_meta_epoch", "meta_acc"), ("last_epoch", "meta_acc")]),
    ("test", [("test_accuracy",)]),
)


def _mean(runs, path):
    """Mean over ``runs`` of the field at ``path``, ``"-"`` where no run has it."""
    values = []
    for run in runs:
        value = run
        for key in path:
            value = None if value is None else value[key]
        if value is not None:
            values.append(value)
    return f"{np.mean(values):.3f}" if values else "-"


def table(runs):
    """One markdown row per dataset, case and method: means over the seeds."""
    names = [name for name, _ in _COLUMNS]
    lines = ["| case | seeds | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 2)]
    groups = {}
    for run in runs:
        key = (run["dataset"], run["noise"], run["rate"], run["method"])
        groups.setdefault(key, []).append(run)
    for (dataset, kind, rate, method), group in groups.items():
        cells = [f"{dataset} {kind} {rate:g}, {method}", str(len(group))]
        for name, paths in _COLUMNS:
            sep = " -> " if "->" in name else " / "
            cells.append(sep.join(_mean(group, path) for path in paths))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="mnist1d,mnist,digits")
    parser.add_argument("--cases", default="instance:0.4", help="kind:rate,...")
    parser.add_argument("--method", default="mslg", help="a library method")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=50, help="the classifier's max_epochs")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--json", default=None, help="write the report here")
    parser.add_argument("--quick", action="store_true", help="digits, one seed, 4 epochs")
    parser.add_argument(
        "--report", nargs="+", default=None, help="print the table of these reports' runs"
    )
    args = parser.parse_args(argv)
    if args.report:  # runs spread over processes: one table, nothing fitted
        reports = []
        for path in args.report:
            with open(path) as fh:
                reports.append(json.load(fh))
        runs = [run for report in reports for run in report["runs"]]
        print(table(runs))
        merged = {
            "machine": reports[0]["machine"],
            "settings": [report["settings"] for report in reports],
            "runs": runs,
        }
        return write_report(merged, args.json)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.datasets, args.seeds, args.epochs = "digits", 1, 4
    settings = {"method": args.method, "epochs": args.epochs, "device": args.device}
    runs = []
    for dataset in args.datasets.split(","):
        for kind, rate in _parse_cases(args.cases):
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                run = run_one(dataset, kind, rate, seed, settings)
                runs.append(run)
                last = run["last_epoch"]
                print(
                    f"{dataset} {kind} {rate:g} seed {seed}: labels = linear model "
                    f"{run['given_equal_linear']:.3f}, corrected right "
                    f"{last['corrected_label_accuracy']:.3f}, test "
                    f"{run['test_accuracy']:.3f} ({run['fit_time_s']:.1f}s)",
                    flush=True,
                )
    print()
    print(table(runs))
    report = {"machine": machine(), "settings": {**settings, "cases": args.cases}, "runs": runs}
    return write_report(report, args.json)


if __name__ == "__main__":
    main()
