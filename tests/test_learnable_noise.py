"""The learnable-noise check, and the response of mlc, mslc and tmlc: a longer warm-up.

(``mslg``'s and ``mfrw``'s own responses are tested in their files.)"""

from __future__ import annotations

import numpy as np
import pytest

from sklearn_noisy import MetaLabelCorrectionClassifier
from sklearn_noisy._engine import TrainInfo
from sklearn_noisy.datasets import make_noisy_case
from sklearn_noisy.methods import MLC, MSLC, TMLC
from sklearn_noisy.methods._base import learnable_noise_check
from tests.conftest import assert_check_reads_the_first_epoch

METHODS = {"mlc": MLC, "mslc": MSLC, "tmlc": TMLC}


def _fit(method, case, **kw):
    kw = {"random_state": 0, "device": "cpu", **kw}
    clf = MetaLabelCorrectionClassifier(method=method, **kw)
    return clf.fit(case.X, case.y_noisy, X_meta=case.X_meta, y_meta=case.y_meta)


def _same_fit(a, b, X):
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    np.testing.assert_array_equal(a.corrected_proba_, b.corrected_proba_)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_learnable_noise_lengthens_the_default_warm_up(name, linear_noise):
    """mnist1d's instance noise: the check fires after the first epoch, and the fixed
    default warm-up becomes 60% of max_epochs -- the very fit of that warm-up given
    by hand."""
    clf = _fit(name, linear_noise, max_epochs=10)
    check = clf.learnable_noise_check_
    assert_check_reads_the_first_epoch(check, clf, linear_noise)
    assert check["learnable"] and check["corrects_less"] and check["longer_warmup"]
    assert clf.warmup_epochs_ == 6
    by_hand = _fit(
        METHODS[name](learnable_noise=False), linear_noise, max_epochs=10, warmup_epochs=6
    )
    assert by_hand.learnable_noise_check_ is None
    _same_fit(clf, by_hand, linear_noise.X_test)
    # the usual warm-up is another fit
    usual = _fit(METHODS[name](learnable_noise=False), linear_noise, max_epochs=10)
    assert usual.warmup_epochs_ < 6
    assert not np.array_equal(usual.corrected_proba_, clf.corrected_proba_)


def test_a_given_or_ended_warm_up_is_left_as_it_was(linear_noise):
    given = _fit("mlc", linear_noise, max_epochs=10, warmup_epochs=2)
    check = given.learnable_noise_check_
    assert check["corrects_less"] and not check["longer_warmup"]
    assert given.warmup_epochs_ == 2
    # 10% of 4 epochs rounds to no warm-up: the meta steps began in the first
    # epoch, and they are not paused
    ended = _fit("mlc", linear_noise, max_epochs=4)
    assert ended.learnable_noise_check_["corrects_less"]
    assert not ended.learnable_noise_check_["longer_warmup"] and ended.warmup_epochs_ == 0


def test_trusted_rows_better_keeps_the_corrections(linear_noise, monkeypatch):
    """Where the fit's trusted-set check found the trusted rows the better model, the
    labels may have far to move: the check is recorded, nothing changes."""
    monkeypatch.setattr(TrainInfo, "trusted_rows_better", property(lambda self: True))
    kept = _fit("tmlc", linear_noise, max_epochs=10)
    check = kept.learnable_noise_check_
    assert check["learnable"] and not check["corrects_less"] and not check["longer_warmup"]
    off = _fit(TMLC(learnable_noise=False), linear_noise, max_epochs=10)
    assert kept.warmup_epochs_ == off.warmup_epochs_ == 1
    _same_fit(kept, off, linear_noise.X_test)


def test_trusted_rows_better_reads_the_rule_of_pretraining():
    def info(label_accuracy, trusted_accuracy):
        return TrainInfo(
            n_samples=1,
            n_classes=2,
            y=None,
            trusted=None,
            n_features=1,
            label_accuracy=label_accuracy,
            trusted_accuracy=trusted_accuracy,
        )

    assert info(0.55, 0.8).trusted_rows_better  # mnist-like: trusted rows ahead
    assert not info(0.98, 0.25).trusted_rows_better  # mnist1d: a weak model of them
    assert not info(None, 0.8).trusted_rows_better  # no estimate
    assert not info(None, None).trusted_rows_better  # no check ran


@pytest.mark.parametrize("name", sorted(METHODS))
def test_no_learnable_noise_leaves_the_fit_as_it_was(name, sym40):
    """Symmetric noise: the network agrees with the given labels less often than it
    is right, the check does not fire, and the fit is that of no check."""
    checked = _fit(name, sym40, max_epochs=6, pretrain_epochs=0)
    unchecked = _fit(METHODS[name](learnable_noise=False), sym40, max_epochs=6, pretrain_epochs=0)
    check = checked.learnable_noise_check_
    assert_check_reads_the_first_epoch(check, checked, sym40)
    assert check["given_label_log_proba"] < check["trusted_label_log_proba"]
    assert not check["learnable"] and not check["corrects_less"]
    assert unchecked.learnable_noise_check_ is None
    _same_fit(checked, unchecked, sym40.X)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_learnable_noise_is_validated(name, sym40):
    with pytest.raises(ValueError, match="learnable_noise must be 'auto' or False"):
        _fit(METHODS[name](learnable_noise="yes"), sym40, max_epochs=2)


# --- the check itself


def _sums(groups):
    """(3, n_classes) count, sum and sum of squares from per-class arrays of values."""
    return np.array([[len(v), np.sum(v), np.sum(np.square(v))] for v in groups]).T


def _values(mean, n, spread=0.5, seed=0):
    """``n`` values of mean exactly ``mean`` and standard deviation about ``spread``."""
    v = np.random.RandomState(seed).normal(0.0, spread, n)
    return v - v.mean() + mean


def test_check_compares_log_probabilities_class_by_class():
    # symmetric noise: the flipped rows' given labels are unlikely, so the noisy
    # rows' mean log-probability is below the trusted rows' in every class
    noisy = _sums([_values(-2.2, 340, seed=c) for c in range(10)])
    trusted = _sums([_values(-2.0, 10, seed=10 + c) for c in range(10)])
    check = learnable_noise_check(noisy, trusted)
    assert check["given_label_log_proba"] == pytest.approx(-2.2)
    assert check["trusted_label_log_proba"] == pytest.approx(-2.0)
    assert check["z"] < 0 and not check["learnable"]
    # the given labels better fitted by 0.15 nats: the z by hand, from the pooled
    # within-class variances of the two groups
    noisy = _sums([_values(-1.75, 340, seed=c) for c in range(10)])
    check = learnable_noise_check(noisy, trusted)
    pooled = [np.sum(s[2] - s[1] ** 2 / s[0]) / np.sum(s[0] - 1) for s in (noisy, trusted)]
    se = np.sqrt(10 * (1 / 10) ** 2 * (pooled[0] / 340 + pooled[1] / 10))  # 10 classes
    assert check["z"] == pytest.approx(0.25 / se)
    assert check["z"] > 1.645 and check["learnable"]


def test_check_weighs_the_classes_as_the_trusted_set_does():
    """Imbalanced data: an early network favours the large class, so the noisy rows
    (mostly of it) are better fitted than a class-balanced trusted set under any
    noise.  Class by class the given labels are the less likely: not learnable."""
    noisy = _sums([_values(-0.5, 3000), _values(-2.6, 300, seed=1)])
    trusted = _sums([_values(-0.4, 10, seed=2), _values(-2.5, 10, seed=3)])
    pooled_noisy = noisy[1].sum() / noisy[0].sum()
    pooled_trusted = trusted[1].sum() / trusted[0].sum()
    assert pooled_noisy > pooled_trusted + 0.5  # what a pooled comparison would see
    check = learnable_noise_check(noisy, trusted)
    assert check["given_label_log_proba"] == pytest.approx((-0.5 - 2.6) / 2)
    assert check["z"] < 0 and not check["learnable"]


def test_check_needs_the_margin_and_the_z_cut():
    trusted = _sums([_values(-2.0, 10, seed=10 + c) for c in range(10)])
    # significant but below the margin of 0.05 nats
    many = _sums([_values(-1.97, 10**5, seed=c) for c in range(10)])
    big_trusted = _sums([_values(-2.0, 10**4, seed=10 + c) for c in range(10)])
    check = learnable_noise_check(many, big_trusted)
    assert check["z"] > 5 and not check["learnable"]
    # above the margin but within the noise of two trusted rows per class
    few = _sums([_values(-2.0, 2, spread=1.0, seed=10 + c) for c in range(10)])
    check = learnable_noise_check(_sums([_values(-1.9, 340, seed=c) for c in range(10)]), few)
    assert 0 < check["z"] < 1.645 and not check["learnable"]
    # a class without noisy rows is left out; no class on both sides gives None
    noisy = _sums([_values(-1.5, 340), np.array([])])
    assert learnable_noise_check(noisy, trusted[:, :2])["given_label_log_proba"] == -1.5
    assert learnable_noise_check(_sums([[], [-1.0, -2.0]]), _sums([[-1.0, -2.0], []])) is None
    # one trusted row in all: no variance
    assert learnable_noise_check(noisy, _sums([[-1.0], []])) is None
    # one trusted row per class: the variance about the group's mean stands in
    both = _sums([_values(-1.5, 340), _values(-1.5, 340, seed=1)])
    check = learnable_noise_check(both, _sums([[-1.0], [-3.0]]))
    assert check["trusted_label_log_proba"] == pytest.approx(-2.0) and np.isfinite(check["z"])


def test_imbalanced_classes_with_symmetric_noise_do_not_fire():
    """mnist1d with classes kept at 0.7**k of their size and 20% symmetric noise: the
    first epoch's network agrees with the given labels far more often than it is right
    on the class-balanced trusted set (the shares a pooled check compared until stop
    45), but class by class the given labels are the less likely ones."""
    case = make_noisy_case("mnist1d", kind="symmetric", rate=0.2, seed=0, imbalance=0.7)
    X_before, y_before = case.X.copy(), case.y_noisy.copy()
    clf = _fit("mlc", case, max_epochs=2)
    check = clf.learnable_noise_check_
    assert_check_reads_the_first_epoch(check, clf, case)
    assert check["given_label_agreement"] > check["trusted_accuracy"] + 0.1
    assert check["z"] < 0 and not check["learnable"] and not check["corrects_less"]
    np.testing.assert_array_equal(case.X, X_before)
    np.testing.assert_array_equal(case.y_noisy, y_before)
