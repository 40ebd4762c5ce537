"""Accuracy benchmark: every library method against the peers, on the same splits.

Run ``python benchmarks/accuracy.py --help``.  For each dataset, noise case and
seed, one :func:`sklearn_noisy.datasets.make_noisy_case` split (30% test, 10
trusted rows per class) is built and every entry below is fitted on it:

library methods
    every name in :func:`sklearn_noisy.methods.available_methods` (so a new
    method appears here without touching this file), with its defaults.
peers
    ``ce+trusted``      method="ce" with ``train_on_meta=True`` (noisy + trusted rows)
    ``trusted_only``    the same MLP trained on the trusted rows alone
    ``ce_finetune``     the fitted ``ce`` model fine-tuned on the trusted rows
    ``ce_early_stop``   the same MLP on 90% of the noisy rows + the trusted rows,
                        keeping the epoch most accurate on the other 10% of the
                        noisy rows (against their noisy labels)
    ``forward_T_oracle``forward correction with the *true* (realised) T (oracle)
    ``cleanlab_mlp``    cleanlab's ``CleanLearning`` around the same MLP
    ``cleanlab_logreg`` cleanlab's ``CleanLearning`` around ``LogisticRegression``
    ``true_labels``     method="ce" trained on the clean labels (ceiling, oracle)

``ce`` and ``glc`` are library methods and peers at once.  Reported per entry:
test accuracy (mean ± std over seeds), corrected-label accuracy on the noisy
rows, share of wrong labels fixed, share of right labels broken, fit time and
its ratio to ``ce``.  Nothing looks at the test set except the final score:
epochs and hyper-parameters are the defaults users get.

Each run also prints an overview per dataset (every library method's mean test
accuracy per case beside the best non-oracle peer and ``trusted_only``).  To
spread a long run over processes, give each its own seeds (``--first-seed``) or
datasets and write ``--json`` reports; ``--report A.json B.json`` then prints
the tables of their runs merged, fitting nothing.

``--quick`` runs one small configuration in well under a minute (used by the
tests so that this file cannot rot).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import subprocess
import sys
import time
import traceback
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_noisy import MetaLabelCorrectionClassifier
from sklearn_noisy.datasets import available_datasets, make_noisy_case
from sklearn_noisy.methods import GLC, available_methods, get_method
from sklearn_noisy.modules import MLP

CASES = [
    ("symmetric", 0.2),
    ("symmetric", 0.4),
    ("symmetric", 0.6),
    ("symmetric", 0.8),
    ("pair", 0.2),
    ("pair", 0.4),
    ("instance", 0.4),
]
PEERS = [
    "ce+trusted",
    "trusted_only",
    "ce_finetune",
    "ce_early_stop",
    "forward_T_oracle",
    "cleanlab_mlp",
    "cleanlab_logreg",
    "true_labels",
]
ORACLES = {"forward_T_oracle", "true_labels"}
# peers that need an optional package, and which one
OPTIONAL = {"cleanlab_mlp": "cleanlab", "cleanlab_logreg": "cleanlab"}


# --------------------------------------------------------------------- peers
class ForwardOracle(GLC):
    """Forward correction with a given T (an oracle: T is the true noise).

    GLC's second stage alone: the loss on noisy rows is ``-log (f(x) @ T)[y]``
    with the T passed in, the trusted rows get cross-entropy.  Not registered,
    so it never shows up in ``available_methods()``.
    """

    name = "forward_T_oracle"

    def __init__(self, T=None):
        self.T = T

    def fit_net(self, make_net, X, targets, meta_batches):
        net = make_net(self)
        net.initialize()
        net.meta_module_.T.copy_(torch.as_tensor(np.asarray(self.T), dtype=torch.float32))
        net.meta_module_.corrected.fill_(True)
        net.partial_fit(X, targets, meta_batches=meta_batches)
        return net


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """Plain cross-entropy training of the library's default MLP, as a sklearn classifier.

    The same network, optimizer (Adam), learning rate and batch size as
    ``MetaLabelCorrectionClassifier``'s defaults, written as a small torch loop so
    that cleanlab can clone it and the peers can fine-tune it.
    """

    def __init__(
        self, hidden_layer_sizes=(256, 256), max_epochs=50, batch_size=64, lr=1e-3, random_state=0
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.random_state = random_state

    def fit(self, X, y, sample_weight=None):
        X = np.asarray(X, dtype=np.float32)
        self.classes_, y_enc = np.unique(y, return_inverse=True)
        self._fit_new(X, y_enc, sample_weight)
        return self

    def _fit_new(self, X, y_enc, sample_weight, on_epoch=None):
        """A fresh network (seeded by ``random_state``) trained for ``max_epochs``."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.random_state))
            self.module_ = MLP(X.shape[1], len(self.classes_), tuple(self.hidden_layer_sizes))
            self._train(X, y_enc, self.max_epochs, self.lr, sample_weight, on_epoch)

    def fine_tune(self, X, y, epochs, lr):
        """Continue training on ``(X, y)`` (labels from ``classes_``)."""
        y_enc = np.searchsorted(self.classes_, y)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.random_state) + 1)
            self._train(np.asarray(X, dtype=np.float32), y_enc, epochs, lr, None)
        return self

    def _train(self, X, y, epochs, lr, sample_weight, on_epoch=None):
        X = torch.as_tensor(X)
        y = torch.as_tensor(y, dtype=torch.int64)
        w = None if sample_weight is None else torch.as_tensor(sample_weight, dtype=torch.float32)
        opt = torch.optim.Adam(self.module_.parameters(), lr=lr)
        self.module_.train()
        for _ in range(epochs):
            perm = torch.randperm(len(y))
            for start in range(0, len(y), self.batch_size):
                sel = perm[start : start + self.batch_size]
                loss = F.cross_entropy(self.module_(X[sel]), y[sel], reduction="none")
                loss = loss.mean() if w is None else (loss * w[sel]).sum() / w[sel].sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if on_epoch is not None:
                self.module_.eval()
                on_epoch()
                self.module_.train()
        self.module_.eval()

    def predict_proba(self, X):
        with torch.no_grad():
            logits = self.module_(torch.as_tensor(np.asarray(X, dtype=np.float32)))
        return logits.double().softmax(1).numpy()

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(1)]


class EarlyStoppedMLP(MLPClassifier):
    """:class:`MLPClassifier` that keeps its best epoch on a held-out split.

    ``fit(X, y, X_val, y_val)`` scores the network on ``(X_val, y_val)`` after
    every epoch (accuracy) and restores the weights of the best one
    (``best_epoch_``, counted from 1).  With noisy validation labels this is
    the usual early-stopping baseline: for noise that leaves the true class the
    most likely label, accuracy on noisy labels ranks models as clean accuracy
    does.
    """

    def fit(self, X, y, X_val, y_val):
        X = np.asarray(X, dtype=np.float32)
        self.classes_, y_enc = np.unique(y, return_inverse=True)
        X_val = torch.as_tensor(np.asarray(X_val, dtype=np.float32))
        y_val = np.searchsorted(self.classes_, y_val)
        best = {"acc": -1.0, "state": None, "epoch": 0, "seen": 0}

        def score():
            best["seen"] += 1
            with torch.no_grad():
                acc = float((self.module_(X_val).argmax(1).numpy() == y_val).mean())
            if acc > best["acc"]:
                state = copy.deepcopy(self.module_.state_dict())
                best.update(acc=acc, state=state, epoch=best["seen"])

        self._fit_new(X, y_enc, None, on_epoch=score)
        self.module_.load_state_dict(best["state"])
        self.best_epoch_ = best["epoch"]
        return self


def _mlp_from_fitted(clf, settings, seed):
    """An :class:`MLPClassifier` holding a copy of a fitted classifier's network."""
    peer = MLPClassifier(max_epochs=settings["epochs"], random_state=seed)
    peer.classes_ = clf.classes_
    peer.module_ = copy.deepcopy(clf.net_.module_).cpu()
    return peer


def _library(method, settings, seed, **params):
    return MetaLabelCorrectionClassifier(
        method=method,
        max_epochs=settings["epochs"],
        device=settings["device"],
        random_state=seed,
        **params,
    )


def _fit_method(name, case, settings, seed, cache):
    """Fit one library method or peer.

    Returns ``(test_pred, corrected_labels, seconds)``, and for the library's
    classifier also ``{"epochs_run": n_iter_, "best_epoch": best_epoch_,
    "warmup_epochs": warmup_epochs_, "averaged_epochs": averaged_epochs_,
    "pretrain_epochs": pretrain_epochs_, "pretrain_check": pretrain_check_,
    "warmup_check": warmup_check_, "init_check": init_check_, "first_label": first_label_
    (``mslc``'s, else None), "learnable_noise_check": learnable_noise_check_ (the
    paper methods', else None), "method_params": ...}`` (the fitted method
    object's parameters).
    """
    meta = {"X_meta": case.X_meta, "y_meta": case.y_meta}
    start = time.perf_counter()
    if name in settings["methods"] or name in ("ce+trusted", "true_labels", "forward_T_oracle"):
        params = {}
        if name in settings["methods"] and name not in ("ce", "glc"):
            params["meta_every"] = settings["meta_every"]
        if name in settings["methods"]:
            params.update(settings.get("params", {}))
        method_params = {
            k[len("method__") :]: params.pop(k) for k in list(params) if k.startswith("method__")
        }
        if name == "ce+trusted":
            method, params = "ce", {"train_on_meta": True}
        elif name == "forward_T_oracle":
            method = ForwardOracle(T=case.T)
        else:
            method = "ce" if name == "true_labels" else name
        if method_params:  # --set method__<param>=...: for the methods that have it
            method = get_method(method)
            method.set_params(
                **{k: v for k, v in method_params.items() if k in method.get_params()}
            )
        y = case.y_true if name == "true_labels" else case.y_noisy
        clf = _library(method, settings, seed, **params)
        if name == "true_labels":
            clf.set_params(train_on_meta=True)
        clf.fit(case.X, y, **meta)
        elapsed = time.perf_counter() - start
        if name == "ce":
            cache["ce"] = (clf, elapsed)
        epochs = {
            "epochs_run": clf.n_iter_,
            "best_epoch": clf.best_epoch_,
            "warmup_epochs": clf.warmup_epochs_,
            "averaged_epochs": clf.averaged_epochs_,
            "pretrain_epochs": clf.pretrain_epochs_,
            "pretrain_check": clf.pretrain_check_,
            "warmup_check": clf.warmup_check_,
            "init_check": clf.init_check_,
            "first_label": getattr(clf, "first_label_", None),
            "learnable_noise_check": getattr(clf, "learnable_noise_check_", None),
            "method_params": {
                k: v
                for k, v in clf.method_.get_params().items()
                if v is None or isinstance(v, (bool, int, float, str))
            },
        }
        return clf.predict(case.X_test), clf.corrected_labels_, elapsed, epochs
    if name == "trusted_only":
        clf = MLPClassifier(max_epochs=settings["trusted_epochs"], random_state=seed)
        clf.fit(case.X_meta, case.y_meta)
        elapsed = time.perf_counter() - start
        return clf.predict(case.X_test), clf.predict(case.X), elapsed
    if name == "ce_early_stop":
        rows = np.arange(len(case.y_noisy))
        fit_rows, val_rows = train_test_split(
            rows, test_size=0.1, stratify=case.y_noisy, random_state=seed
        )
        clf = EarlyStoppedMLP(max_epochs=settings["epochs"], random_state=seed)
        clf.fit(
            np.concatenate([case.X[fit_rows], case.X_meta]),
            np.concatenate([case.y_noisy[fit_rows], case.y_meta]),
            case.X[val_rows],
            case.y_noisy[val_rows],
        )
        elapsed = time.perf_counter() - start
        return clf.predict(case.X_test), clf.predict(case.X), elapsed
    if name == "ce_finetune":
        if "ce" not in cache:  # ce was not requested: fit it here
            _fit_method("ce", case, settings, seed, cache)
            start = time.perf_counter()
        ce_clf, ce_time = cache["ce"]
        clf = _mlp_from_fitted(ce_clf, settings, seed)
        clf.fine_tune(
            case.X_meta, case.y_meta, settings["trusted_epochs"], settings["finetune_lr"]
        )
        elapsed = time.perf_counter() - start + ce_time
        return clf.predict(case.X_test), clf.predict(case.X), elapsed
    if name.startswith("cleanlab_"):
        from cleanlab.classification import CleanLearning

        if name == "cleanlab_mlp":
            base = MLPClassifier(max_epochs=settings["epochs"], random_state=seed)
        else:
            base = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        # cleanlab has no notion of a trusted set: the trusted rows join the training set
        X_all, y_all, _ = case.all_rows()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cl = CleanLearning(clf=base, seed=seed, cv_n_folds=settings["cv_folds"])
            cl.fit(X_all, y_all)
        elapsed = time.perf_counter() - start
        issues = cl.label_issues_df.iloc[: len(case.X)]
        corrected = np.where(
            issues["is_label_issue"].to_numpy(),
            issues["predicted_label"].to_numpy(),
            issues["given_label"].to_numpy(),
        )
        return cl.predict(case.X_test), corrected, elapsed
    raise ValueError(f"unknown method or peer {name!r}")


def _metrics(case, test_pred, corrected, elapsed):
    wrong = case.y_noisy != case.y_true
    fixed = np.asarray(corrected) == case.y_true
    return {
        "test_accuracy": float((np.asarray(test_pred) == case.y_test).mean()),
        "corrected_label_accuracy": float(fixed.mean()),
        "wrong_labels_fixed": float(fixed[wrong].mean()) if wrong.any() else float("nan"),
        "right_labels_broken": float((~fixed[~wrong]).mean()) if (~wrong).any() else 0.0,
        "fit_time_s": float(elapsed),
    }


def _kind(name, methods):
    if name in ORACLES:
        return "oracle"
    return "library" if name in methods else "peer"


# -------------------------------------------------------------------- the run
def run(settings, progress=print):
    """Fit every entry on every case; return the report dict."""
    where = machine()  # before the fits: the commit the code was loaded from
    names = list(settings["methods"]) + [
        p for p in settings["peers"] if p not in settings["methods"]
    ]
    runs, skipped = [], {}
    for peer, package in OPTIONAL.items():
        if peer in names:
            try:
                __import__(package)
            except ImportError:
                skipped[peer] = f"needs {package} (pip install {package})"
    names = [n for n in names if n not in skipped]
    for peer, why in skipped.items():
        progress(f"skipping {peer}: {why}")
    _warm_up(settings)
    for dataset in settings["datasets"]:
        for kind, rate in settings["cases"]:
            for seed in settings["seeds"]:
                case = make_noisy_case(
                    dataset, kind=kind, rate=rate, meta_per_class=settings["meta_per_class"],
                    seed=seed, imbalance=settings.get("imbalance"),
                )  # fmt: skip
                progress(
                    f"{dataset} {kind} {rate} seed {seed}: {len(case.X)} noisy rows "
                    f"({1 - case.noisy_accuracy:.0%} wrong), {len(case.X_meta)} trusted, "
                    f"{len(case.X_test)} test"
                )
                cache = {}
                for name in names:
                    row = {
                        "dataset": dataset,
                        "noise": kind,
                        "rate": rate,
                        "seed": seed,
                        "method": name,
                        "kind": _kind(name, settings["methods"]),
                        "noisy_label_accuracy": case.noisy_accuracy,
                    }
                    try:
                        pred, corrected, elapsed, *extra = _fit_method(
                            name, case, settings, seed, cache
                        )
                        row.update(_metrics(case, pred, corrected, elapsed))
                        # library fits: epochs, method parameters
                        row.update(extra[0] if extra else {})
                        progress(
                            f"  {name:<18} test {row['test_accuracy']:.3f}  "
                            f"{row['fit_time_s']:6.1f}s"
                        )
                    except Exception as exc:  # a broken method must not sink the whole run
                        row["error"] = f"{type(exc).__name__}: {exc}"
                        progress(f"  {name:<18} FAILED {row['error']}")
                        traceback.print_exc(file=sys.stderr)
                    runs.append(row)
    summary = summarise(runs)
    return {
        "machine": where,
        "settings": {k: v for k, v in settings.items()},
        "skipped": skipped,
        "runs": runs,
        "summary": summary,
        "goals": goals(summary, settings["methods"]),
    }


def _warm_up(settings):
    """One tiny untimed fit, so that one-off start-up costs (lazy imports, thread
    pools, CUDA context) are not charged to the first timed entry."""
    case = make_noisy_case("digits", kind="symmetric", rate=0.2, seed=0)
    _library("ce", {**settings, "epochs": 1}, 0).fit(
        case.X[:256], case.y_noisy[:256], X_meta=case.X_meta, y_meta=case.y_meta
    )


def machine():
    return {
        "platform": platform.platform(),
        "processor": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "git": _git_state(),
    }


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_state():
    """Commit of the checkout holding the imported library, ``+dirty`` with local changes.

    Read from the library's own directory, not this script's: a run of another
    checkout's library (``PYTHONPATH=<worktree>``) records that checkout.
    """
    import sklearn_noisy

    root = os.path.dirname(os.path.dirname(os.path.abspath(sklearn_noisy.__file__)))
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "sklearn_noisy"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return None
    return (commit + ("+dirty" if dirty else "")) or None


def _same_library(a, b):
    """Whether commits ``a`` and ``b`` hold the same ``sklearn_noisy/`` (a run of
    the benchmark after a commit that touched only the scripts still merges)."""
    if a == b:
        return True
    if not a or not b or a.endswith("+dirty") or b.endswith("+dirty"):
        return False
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        diff = subprocess.run(
            ["git", "diff", "--quiet", a, b, "--", "sklearn_noisy"], cwd=root, capture_output=True
        )
    except OSError:
        return False
    return diff.returncode == 0


def summarise(runs):
    """Mean (± std for test accuracy) over seeds per dataset, case and entry."""
    groups = {}
    for r in runs:
        groups.setdefault((r["dataset"], r["noise"], r["rate"], r["method"]), []).append(r)
    summary = []
    for (dataset, kind, rate, name), rows in groups.items():
        ok = [r for r in rows if "error" not in r]
        s = {"dataset": dataset, "noise": kind, "rate": rate, "method": name}
        s["kind"] = rows[0]["kind"]
        s["n_seeds"] = len(ok)
        if len(ok) < len(rows):
            s["errors"] = [r["error"] for r in rows if "error" in r]
        if ok:
            acc = np.array([r["test_accuracy"] for r in ok])
            s["test_accuracy_mean"] = float(acc.mean())
            s["test_accuracy_std"] = float(acc.std())
            for key in (
                "corrected_label_accuracy",
                "wrong_labels_fixed",
                "right_labels_broken",
                "fit_time_s",
            ):
                s[key] = float(np.mean([r[key] for r in ok]))
        summary.append(s)
    for s in summary:  # ratios against ce on the same case
        ce = next(
            (
                t
                for t in summary
                if t["method"] == "ce"
                and (t["dataset"], t["noise"], t["rate"]) == (s["dataset"], s["noise"], s["rate"])
                and "fit_time_s" in t
            ),
            None,
        )
        if ce is not None and "fit_time_s" in s:
            s["time_vs_ce"] = s["fit_time_s"] / ce["fit_time_s"]
            s["acc_minus_ce"] = s["test_accuracy_mean"] - ce["test_accuracy_mean"]
    return summary


def goals(summary, methods):
    """The issue's goals per case, evaluated on mean test accuracy."""
    paper = [m for m in methods if m not in ("ce", "glc")]
    out = []
    cases = dict.fromkeys((s["dataset"], s["noise"], s["rate"]) for s in summary)
    for key in cases:  # in the order they were run
        rows = {
            s["method"]: s
            for s in summary
            if (s["dataset"], s["noise"], s["rate"]) == key and "test_accuracy_mean" in s
        }
        acc = {name: s["test_accuracy_mean"] for name, s in rows.items()}
        lib = {m: acc[m] for m in methods if m in acc}
        peers = {n: a for n, a in acc.items() if rows[n]["kind"] == "peer"}
        g = {"dataset": key[0], "noise": key[1], "rate": key[2]}
        if lib:
            best = max(lib, key=lib.get)
            g["best_library"] = best
            g["best_library_acc"] = lib[best]
        if peers:
            best_peer = max(peers, key=peers.get)
            g["best_peer"] = best_peer
            g["best_peer_acc"] = peers[best_peer]
        if lib and peers:
            g["best_library_beats_peers"] = lib[best] > peers[best_peer]
        if key[2] >= 0.4 and "ce" in acc:
            g["paper_methods_not_beating_ce"] = [
                m for m in paper if m in acc and acc[m] <= acc["ce"]
            ]
        if key[2] >= 0.6 and "trusted_only" in acc:
            g["below_trusted_only"] = [m for m in lib if lib[m] < acc["trusted_only"]]
        out.append(g)
    return out


# --------------------------------------------------------------------- output
def _overview(report) -> list[str]:
    """One table per dataset: mean test accuracy of every library method per case,
    beside the best non-oracle peer and the trusted-only model."""
    methods = report["settings"]["methods"]
    acc = {
        (s["dataset"], s["noise"], s["rate"], s["method"]): s["test_accuracy_mean"]
        for s in report["summary"]
        if "test_accuracy_mean" in s
    }
    goal = {(g["dataset"], g["noise"], g["rate"]): g for g in report["goals"]}
    lines = []
    for dataset in dict.fromkeys(g["dataset"] for g in report["goals"]):
        keys = [k for k in goal if k[0] == dataset]
        shown = [m for m in methods if any(k + (m,) in acc for k in keys)]
        seeds = {s["n_seeds"] for s in report["summary"] if s["dataset"] == dataset}
        n_seeds = "/".join(str(n) for n in sorted(seeds))
        lines += [
            f"### {dataset}: test accuracy, mean over {n_seeds} seeds",
            "",
            "| case | " + " | ".join(shown) + " | best non-oracle peer | trusted_only | goal |",
            "|---" * (len(shown) + 4) + "|",
        ]
        for key in keys:
            g = goal[key]
            cells = []
            for m in shown:
                a = acc.get(key + (m,))
                text = "" if a is None else f"{a:.3f}"
                cells.append(f"**{text}**" if m == g.get("best_library") else text)
            peer = f"{g['best_peer']} {g['best_peer_acc']:.3f}" if "best_peer" in g else ""
            trusted = acc.get(key + ("trusted_only",))
            met = g.get("best_library_beats_peers")
            lines.append(
                f"| {key[1]} {key[2]} | " + " | ".join(cells) + f" | {peer} | "
                + ("" if trusted is None else f"{trusted:.3f}")
                + f" | {'' if met is None else ('met' if met else 'NOT met')} |"
            )  # fmt: skip
        lines += [
            "",
            "Bold: the best library method of the case; goal: whether it beats every "
            "non-oracle peer (the goal lines below give the rest).",
            "",
        ]
    return lines


def _vs_ce(summary, key, spec):
    """A summary entry's comparison with ``ce`` (``key``) formatted by ``spec``, or
    "-" where the run has no ``ce`` to compare with (``--methods`` without it)."""
    value = summary.get(key)
    if value is None or not math.isfinite(value):
        return "-"
    return format(value, spec)


def format_table(report) -> str:
    lines = []
    carried = _carried_over(report)
    if carried:
        here = report["machine"].get("processor")
        lines.append(f"Library commit {report['machine']['git']}, fitted on {here}.")
        lines += [
            f"Carried over from the runs at {c['commit']}"
            + (f" on {c['processor']}" if c.get("processor") != here else "")
            + f": {', '.join(c['entries'])}."
            for c in carried
        ]
        if any(c.get("processor") != here for c in carried):
            lines.append(
                "Fit times from two machines: compare an entry's time with `ce`'s only "
                "where both ran on one machine (`benchmarks/speed.py` measures speed)."
            )
        lines.append("")
    params = report["settings"].get("params")
    if params:
        given = ", ".join(f"{k}={v!r}" for k, v in params.items())
        lines += [f"Library methods fitted with {given} (peers unchanged).", ""]
    imbalance = report["settings"].get("imbalance")
    if imbalance is not None:
        lines += [
            f"Classes thinned geometrically: the k-th keeps {imbalance:g}**k of its rows "
            f"(at least {4 * report['settings']['meta_per_class']}); the trusted set "
            "stays balanced.",
            "",
        ]
    lines += _overview(report)
    order = {n: i for i, n in enumerate(report["settings"]["methods"] + PEERS)}
    cases = []
    for s in report["summary"]:
        key = (s["dataset"], s["noise"], s["rate"])
        if key not in cases:
            cases.append(key)
    for key in cases:
        rows = [s for s in report["summary"] if (s["dataset"], s["noise"], s["rate"]) == key]
        rows.sort(key=lambda s: order.get(s["method"], 99))
        noisy = next(
            (
                r["noisy_label_accuracy"]
                for r in report["runs"]
                if (r["dataset"], r["noise"], r["rate"]) == key
            ),
            float("nan"),
        )
        lines += [
            f"### {key[0]}, {key[1]} {key[2]} (training labels {noisy:.0%} right, "
            f"{rows[0]['n_seeds'] if rows else 0} seeds)",
            "",
            "| method | kind | test acc | Δ vs ce | corrected-label acc | wrong fixed "
            "| right broken | fit time (s) | time / ce |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for s in rows:
            if "test_accuracy_mean" not in s:
                lines.append(f"| {s['method']} | {s['kind']} | failed: {s['errors'][0]} |")
                continue
            lines.append(
                f"| {s['method']} | {s['kind']} | {s['test_accuracy_mean']:.3f} ± "
                f"{s['test_accuracy_std']:.3f} | {_vs_ce(s, 'acc_minus_ce', '+.3f')} | "
                f"{s['corrected_label_accuracy']:.3f} | {s['wrong_labels_fixed']:.3f} | "
                f"{s['right_labels_broken']:.3f} | {s['fit_time_s']:.1f} | "
                f"{_vs_ce(s, 'time_vs_ce', '.2f')} |"
            )
        lines.append("")
    lines += ["### Goals", ""]
    for g in report["goals"]:
        case = f"{g['dataset']} {g['noise']} {g['rate']}"
        text = (
            f"- {case}: best library method {g.get('best_library')} "
            f"({g.get('best_library_acc', float('nan')):.3f})"
        )
        if "best_peer" in g:
            text += (
                f" vs best non-oracle peer {g['best_peer']} ({g['best_peer_acc']:.3f}): "
                f"{'met' if g.get('best_library_beats_peers') else 'NOT met'}"
            )
        else:
            text += " (no peers run)"
        if "paper_methods_not_beating_ce" in g:
            bad = g["paper_methods_not_beating_ce"]
            text += "; paper methods beat ce: " + ("all" if not bad else f"not {', '.join(bad)}")
        if g.get("below_trusted_only"):
            text += f"; below trusted_only: {', '.join(g['below_trusted_only'])}"
        lines.append(text)
    if report["skipped"]:
        lines.append("")
        lines += [f"- skipped {k}: {v}" for k, v in report["skipped"].items()]
    return "\n".join(lines)


# settings that reports must share for their runs to be merged into one table
MERGE_SETTINGS = (
    "epochs",
    "trusted_epochs",
    "finetune_lr",
    "cv_folds",
    "meta_every",
    "params",
    "meta_per_class",
    "imbalance",
    "device",
    "quick",
)


def _dataset_rank(name):
    """Merged tables list the datasets in the order of ``--datasets``' help, then others."""
    known = ("digits", "mnist", "mnist1d")
    return known.index(name) if name in known else len(known)


def _union(lists):
    return list(dict.fromkeys(item for items in lists for item in items))


def _check_settings(first, report, first_name, name):
    for key in MERGE_SETTINGS:
        if report["settings"].get(key) != first["settings"].get(key):
            raise ValueError(
                f"{name} was run with {key}={report['settings'].get(key)!r} and "
                f"{first_name} with {key}={first['settings'].get(key)!r}: their runs do "
                "not belong in one table."
            )


def merge_reports(reports, names, earlier=(), earlier_names=()):
    """One report from the runs of several (e.g. seeds or datasets run in separate
    processes), summarised and judged anew.

    The reports must come from commits with the same ``sklearn_noisy/`` and share
    the settings in ``MERGE_SETTINGS``; an entry fitted twice on the same case and
    seed is refused.  The merged report names every commit in ``machine["git"]``.

    ``earlier`` reports (merged among themselves by the same rules) may come from
    another library commit: they contribute the entries (methods or peers) that
    ``reports`` did not fit at all, on their cases and seeds -- after a change
    that moved some entries, the others need not be fitted again.  Which entries
    came from which commit is kept in ``settings["carried_over"]`` and printed
    above the tables.  That the carried entries are unaffected by the change is
    for the caller to know (check it by fitting them once at the new commit).
    An earlier report may itself be such a merge: its own carried entries keep
    the commit they came from.
    """
    if earlier:
        old = merge_reports(list(earlier), list(earlier_names))
        new = merge_reports(reports, names)
        _check_settings(new, old, names[0], earlier_names[0])
        return _carry_over(new, old, names[0], earlier_names[0])
    first = reports[0]
    for report, name in zip(reports[1:], names[1:]):
        _check_settings(first, report, names[0], name)
        if not _same_library(report["machine"].get("git"), first["machine"].get("git")):
            raise ValueError(
                f"{name} comes from library commit {report['machine'].get('git')} and "
                f"{names[0]} from {first['machine'].get('git')}, whose sklearn_noisy/ "
                "differ (or cannot be compared): their runs do not belong in one table."
            )
    return _merge(reports, names)


def _carried_over(report):
    """A report's carried-over entries: a list of ``{"commit", "entries", "commands"}``."""
    return report["settings"].get("carried_over", [])


def _carry_over(new, old, new_name, old_name):
    """``new``'s runs plus those of ``old``'s entries that ``new`` did not fit,
    each carried entry labelled with the commit it was fitted at."""
    fitted = {run["method"] for run in new["runs"]}
    carried = [m for m in _union([[r["method"] for r in old["runs"]]]) if m not in fitted]
    older = _carried_over(old)
    own = [m for m in carried if not any(m in o["entries"] for o in older)]
    provenance = []
    processor = old["machine"].get("processor")
    if own:
        commands = old["settings"]["commands"]
        provenance.append(
            {
                "commit": old["machine"]["git"],
                "processor": processor,
                "entries": own,
                "commands": commands,
            }
        )
    for o in older:
        still = [m for m in o["entries"] if m in carried]
        if still:
            # merges written before the processor was recorded: the earlier
            # report's own machine is the one its carried entries ran on
            provenance.append({"processor": processor, **o, "entries": still})
    old["runs"] = [r for r in old["runs"] if r["method"] in carried]
    old["settings"]["methods"] = [m for m in old["settings"]["methods"] if m in carried]
    old["settings"]["peers"] = [p for p in old["settings"]["peers"] if p in carried]
    old["skipped"] = {k: v for k, v in old["skipped"].items() if k in carried}
    merged = _merge([new, old], [new_name, old_name])
    merged["machine"]["git"] = new["machine"]["git"]
    merged["settings"]["carried_over"] = provenance
    merged["settings"]["commands"] = new["settings"]["commands"]
    return merged


def _merge(reports, names):
    """The runs of ``reports`` in one report (checked by the caller)."""
    first = reports[0]
    methods = sorted(set(_union(r["settings"]["methods"] for r in reports)))
    peers = [p for p in PEERS if any(p in r["settings"]["peers"] for r in reports)]
    runs, seen = [], {}
    for report, name in zip(reports, names):
        for run in report["runs"]:
            key = (run["dataset"], run["noise"], run["rate"], run["seed"], run["method"])
            if key in seen:
                raise ValueError(
                    f"{name} and {seen[key]} both fitted {key[4]} on {key[0]} {key[1]} "
                    f"{key[2]} seed {key[3]}."
                )
            seen[key] = name
            runs.append({**run, "kind": _kind(run["method"], methods)})
    settings = {
        **first["settings"],
        "datasets": sorted(_union(r["settings"]["datasets"] for r in reports), key=_dataset_rank),
        "cases": _union([tuple(c) for c in r["settings"]["cases"]] for r in reports),
        "seeds": sorted(set(_union(r["settings"]["seeds"] for r in reports))),
        "methods": methods,
        "peers": peers,
        "commands": _union(
            r["settings"].get("commands", [r["settings"].get("command")]) for r in reports
        ),
    }
    runs.sort(key=lambda run: _dataset_rank(run["dataset"]))  # stable: cases keep their order
    fitted = {run["method"] for run in runs}
    skipped = {k: v for r in reports for k, v in r["skipped"].items() if k not in fitted}
    summary = summarise(runs)
    commits = _union([r["machine"].get("git")] for r in reports)
    return {
        "machine": {**first["machine"], "git": " ".join(str(c) for c in commits)},
        "settings": settings,
        "skipped": skipped,
        "runs": runs,
        "summary": summary,
        "goals": goals(summary, methods),
    }


def _parse_cases(text):
    cases = []
    for item in text.split(","):
        kind, rate = item.split(":")
        cases.append((kind, float(rate)))
    return cases


def _parse_params(items, parser, methods=()):
    """``["early_stopping=true", "lookahead=head"]`` -> ``{"early_stopping": True, ...}``.

    ``method__<param>`` sets a parameter of the method object (e.g.
    ``method__embed_size=32``) for those of ``methods`` that have it; at least
    one must.
    """
    # set by the script itself (--epochs, --device, the case seed, the entry)
    fixed = {"method", "max_epochs", "device", "random_state"}
    allowed = set(MetaLabelCorrectionClassifier().get_params(deep=False)) - fixed
    params = {}
    for item in items:
        key, sep, text = item.partition("=")
        if key.startswith("method__"):
            name = key[len("method__") :]
            if not any(name in get_method(m).get_params() for m in methods):
                parser.error(f"--set {item!r}: none of the methods {list(methods)} has {name!r}")
        elif not sep or key not in allowed:
            parser.error(f"--set {item!r}: expected PARAM=VALUE, PARAM one of {sorted(allowed)}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text  # a plain string, e.g. lookahead=head
        params[key] = value
    return params


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python benchmarks/accuracy.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--datasets",
        default="digits",
        help="comma-separated names from sklearn_noisy.datasets.available_datasets(): "
        f"{','.join(available_datasets())} (the issue's cases: digits,mnist,mnist1d)",
    )
    parser.add_argument(
        "--cases",
        default=",".join(f"{k}:{r}" for k, r in CASES),
        help="comma-separated kind:rate (default: the issue's seven cases)",
    )
    parser.add_argument("--seeds", type=int, default=3, help="N seeds (0..N-1)")
    parser.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="start the seeds here: --first-seed 3 --seeds 2 runs seeds 3 and 4",
    )
    parser.add_argument("--methods", default=None, help="library methods (default: all)")
    parser.add_argument("--peers", default=",".join(PEERS), help="peers ('' for none)")
    parser.add_argument("--epochs", type=int, default=50, help="max_epochs (the default)")
    parser.add_argument(
        "--trusted-epochs", type=int, default=200, help="epochs on the trusted set (peers)"
    )
    parser.add_argument("--finetune-lr", type=float, default=1e-4)
    parser.add_argument("--cv-folds", type=int, default=5, help="cleanlab's cv_n_folds")
    parser.add_argument(
        "--meta-every",
        type=int,
        default=None,
        help="meta_every of meta methods (default: each method's own)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PARAM=VALUE",
        help="a MetaLabelCorrectionClassifier parameter for every library method "
        "(ce and glc included, peers not), e.g. --set early_stopping=true; "
        "method__<param> sets a method's own parameter for the methods that have it, "
        "e.g. --set method__embed_size=32; repeatable",
    )
    parser.add_argument("--meta-per-class", type=int, default=10)
    parser.add_argument(
        "--imbalance",
        type=float,
        default=None,
        metavar="R",
        help="thin the classes geometrically: the k-th keeps R**k of its rows, at least "
        "4 x --meta-per-class (make_noisy_case's imbalance); the trusted set stays "
        "balanced",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--json", default=None, help="write the report to this file")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="digits, symmetric 0.4, one seed, 2 epochs: a smoke run in well under a minute",
    )
    parser.add_argument(
        "--report",
        nargs="+",
        metavar="JSON",
        default=None,
        help="fit nothing: print the tables of these --json reports, their runs merged "
        "(e.g. seeds run in separate processes; same library commit and settings); "
        "--json writes the merged report",
    )
    parser.add_argument(
        "--earlier",
        nargs="+",
        metavar="JSON",
        default=None,
        help="with --report: reports of an earlier library commit whose entries the "
        "--report files did not fit are carried over (after a change that moved only "
        "some entries); the tables say which and from which commit",
    )
    args = parser.parse_args(argv)
    if args.earlier and not args.report:
        parser.error("--earlier goes with --report")
    if args.report:
        reports, earlier = _load(args.report), _load(args.earlier or [])
        try:
            report = merge_reports(reports, args.report, earlier, args.earlier or [])
        except ValueError as exc:
            parser.error(str(exc))
        return _output(report, args.json)
    if args.threads:
        torch.set_num_threads(args.threads)

    methods = args.methods.split(",") if args.methods else available_methods()
    settings = {
        "datasets": args.datasets.split(","),
        "cases": _parse_cases(args.cases),
        "seeds": list(range(args.first_seed, args.first_seed + args.seeds)),
        "methods": methods,
        "peers": [p for p in args.peers.split(",") if p],
        "epochs": args.epochs,
        "trusted_epochs": args.trusted_epochs,
        "finetune_lr": args.finetune_lr,
        "cv_folds": args.cv_folds,
        "meta_every": args.meta_every,
        "params": _parse_params(args.set, parser, methods),
        "meta_per_class": args.meta_per_class,
        "imbalance": args.imbalance,
        "device": args.device,
        "quick": args.quick,
    }
    if args.quick:
        settings.update(
            datasets=["digits"],
            cases=[("symmetric", 0.4)],
            seeds=[args.first_seed],
            epochs=2,
            trusted_epochs=5,
            cv_folds=2,
        )
    unknown = [p for p in settings["peers"] if p not in PEERS]
    if unknown:
        parser.error(f"unknown peers {unknown}; choose from {PEERS}")
    unknown = [d for d in settings["datasets"] if d not in available_datasets()]
    if unknown:
        parser.error(f"unknown datasets {unknown}; choose from {available_datasets()}")
    settings["command"] = " ".join(
        ["python benchmarks/accuracy.py", *(sys.argv[1:] if argv is None else argv)]
    )
    report = run(settings, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    return _output(report, args.json)


def _load(paths):
    """The JSON reports at ``paths``."""
    reports = []
    for path in paths:
        with open(path) as fh:
            reports.append(json.load(fh))
    return reports


def _output(report, json_path):
    """Print the report's tables; write it to ``json_path`` if given."""
    print(format_table(report))
    return write_report(report, json_path)


def write_report(report, json_path):
    """``report``, written to ``json_path`` as JSON first when a path is given."""
    if json_path:
        with open(json_path, "w") as fh:
            json.dump(report, fh, indent=2)
    return report


if __name__ == "__main__":
    main()
