"""Shared fixtures: small noisy-label cases built from scikit-learn's digits."""

from __future__ import annotations

import pytest
import torch

from sklearn_noisy.datasets import NoisyCase, make_noisy_case

torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip)


def interrupt_fits_after(monkeypatch, epoch):
    """Make every fit raise KeyboardInterrupt, as a user's Ctrl-C would, at the end
    of epoch ``epoch`` (1-based), before the callbacks see that epoch."""
    from sklearn_noisy._engine import BiLevelNet

    original = BiLevelNet.on_epoch_end

    def interrupting(self, net, **kwargs):
        original(self, net, **kwargs)
        if len(self.history) == epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(BiLevelNet, "on_epoch_end", interrupting)


def watch_trusted_set_check(monkeypatch, estimate=None, trusted_accuracy=None):
    """Count the classifier's calls of the trusted-set check (the list returned gets
    one item per call); with ``estimate``, make each call report that share of right
    labels instead of its own (as both of its estimates), with ``trusted_accuracy``
    that cross-validated accuracy of the trusted rows alone."""
    import sklearn_noisy._classifier as classifier

    calls = []
    real = classifier.trusted_set_check

    def watched(*args, **kwargs):
        calls.append(1)
        found = real(*args, **kwargs)
        if trusted_accuracy is not None:
            found = {**found, "trusted_cv_accuracy": trusted_accuracy}
        if estimate is None:
            return found
        return {
            **found,
            "estimated_label_accuracy": estimate,
            "chance_corrected_estimate": estimate,
        }

    monkeypatch.setattr(classifier, "trusted_set_check", watched)
    return calls


def make_case(kind="symmetric", rate=0.4, per_class=10, seed=0) -> NoisyCase:
    """Digits scaled to [0, 1], 30% test split, ``per_class`` trusted rows per class."""
    return make_noisy_case("digits", kind=kind, rate=rate, meta_per_class=per_class, seed=seed)


@pytest.fixture(scope="session")
def pair40():
    return make_case("pair", 0.4)


@pytest.fixture(scope="session")
def sym40():
    return make_case("symmetric", 0.4)


@pytest.fixture(scope="session")
def sym80():
    return make_case("symmetric", 0.8)


@pytest.fixture(scope="session")
def weak_trusted():
    """Three trusted rows per class (a weak model of them) and labels 90% right: the
    trusted-set check of ``pretrain_epochs="auto"`` says no on it."""
    return make_case("symmetric", 0.1, per_class=3)


@pytest.fixture(scope="session")
def linear_noise():
    """mnist1d with instance noise: the flipped labels are a linear model's predictions,
    which the network learns before the true labels (benchmarks/README.md)."""
    from sklearn_noisy.datasets import make_noisy_case

    return make_noisy_case("mnist1d", kind="instance", rate=0.4, seed=0)


def assert_check_said_no(check, decision):
    """The trusted-set check on ``weak_trusted``: 3 folds, and the trusted rows'
    cross-validated accuracy below the estimated share of right labels."""
    assert check[decision] is False and check["n_splits"] == 3
    assert check["trusted_cv_accuracy"] < check["estimated_label_accuracy"]


def assert_check_reads_the_first_epoch(check, clf):
    """``learnable_noise_check_`` is the check of the first epoch's history row: its
    figures are that row's, and it says learnable exactly where the hits or the
    log-probabilities of the given labels pass the trusted rows' by the margin and
    the z cut."""
    from sklearn_noisy.methods._base import LEARNABLE_NOISE_MARGIN, LEARNABLE_NOISE_Z

    first = clf.history_[0]
    for key, name in (
        ("given_label_agreement", "given_label_agreement"),
        ("trusted_accuracy", "trusted_label_agreement"),
        ("given_label_log_proba", "given_label_log_proba"),
        ("trusted_label_log_proba", "trusted_label_log_proba"),
    ):
        assert check[key] == pytest.approx(first[name])
    hits = check["given_label_agreement"] - check["trusted_accuracy"]
    log_proba = check["given_label_log_proba"] - check["trusted_label_log_proba"]
    assert check["learnable"] == (
        (hits > LEARNABLE_NOISE_MARGIN and check["z_agreement"] > LEARNABLE_NOISE_Z)
        or (log_proba > LEARNABLE_NOISE_MARGIN and check["z_log_proba"] > LEARNABLE_NOISE_Z)
    )
    assert "given_label_log_proba" not in clf.history_[1]  # the first epoch only
