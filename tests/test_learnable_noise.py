"""The learnable-noise check of mlc, mslc and tmlc: a longer warm-up where it fires.

(``mslg``'s and ``mfrw``'s own responses are tested in their files.)"""

from __future__ import annotations

import numpy as np
import pytest

from sklearn_noisy import MetaLabelCorrectionClassifier
from sklearn_noisy._engine import TrainInfo
from sklearn_noisy.methods import MLC, MSLC, TMLC

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
    first = clf.history_[0]
    assert check["given_label_agreement"] == pytest.approx(first["given_label_agreement"])
    assert check["trusted_accuracy"] == pytest.approx(first["trusted_label_agreement"])
    assert check["given_label_agreement"] > check["trusted_accuracy"] + 0.05
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
    assert check["given_label_agreement"] < check["trusted_accuracy"]
    assert not check["learnable"] and not check["corrects_less"]
    assert unchecked.learnable_noise_check_ is None
    _same_fit(checked, unchecked, sym40.X)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_learnable_noise_is_validated(name, sym40):
    with pytest.raises(ValueError, match="learnable_noise must be 'auto' or False"):
        _fit(METHODS[name](learnable_noise="yes"), sym40, max_epochs=2)
