"""``mlc``'s T starts at the share of right labels estimated from the trusted set
(``init_diagonal="auto"``, the default), at most 0.5, and uniform where fewer than
30% of the labels are estimated right."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

from sklearn_noisy import MetaLabelCorrectionClassifier
from sklearn_noisy.methods import MLC
from sklearn_noisy.methods.mlc import UNIFORM_BELOW
from tests.conftest import watch_trusted_set_check

EPOCHS = 6


def _fit(case, method="mlc", y_meta=None, X_meta=None, **kw):
    clf = MetaLabelCorrectionClassifier(
        method=method, random_state=0, device="cpu", **{"max_epochs": EPOCHS, **kw}
    )
    X_meta = case.X_meta if X_meta is None else X_meta
    y_meta = case.y_meta if y_meta is None else y_meta
    return clf.fit(case.X, case.y_noisy, X_meta=X_meta, y_meta=y_meta)


def _same_fit(a, b, case):
    np.testing.assert_array_equal(a.predict_proba(case.X_test), b.predict_proba(case.X_test))
    np.testing.assert_array_equal(a.transition_matrix_, b.transition_matrix_)


def test_at_heavy_noise_T_starts_uniform(sym80):
    """Labels 20% right: the check estimates about that, below the cut, and the
    default fit is, to the bit, the fit with a uniform T (1/10) given."""
    default = _fit(sym80)
    check = default.init_check_
    estimate = check["estimated_label_accuracy"]
    assert abs(estimate - sym80.noisy_accuracy) < 0.05
    assert check["chance_corrected_estimate"] < UNIFORM_BELOW
    assert default.init_diagonal_ == pytest.approx(0.1)
    assert "pretrain" not in check and "auto_warmup" not in check
    assert check["reason"].startswith(f"the given labels are estimated {estimate:.3f} right")
    # a given start runs no check, and so takes no heavy-noise setting: give them
    given = _fit(sym80, method=MLC(init_diagonal=0.1), **default.heavy_noise_)
    assert given.init_check_ is None and given.heavy_noise_ == {}
    _same_fit(default, given, sym80)
    # and neither the fit of T started at the estimate nor at the fixed 0.5
    for other in (estimate, 0.5):
        fit = _fit(sym80, method=MLC(init_diagonal=other))
        assert not np.array_equal(fit.transition_matrix_, default.transition_matrix_)
    loaded = pickle.loads(pickle.dumps(default))
    assert loaded.init_check_ == check and loaded.init_diagonal_ == default.init_diagonal_


def test_between_the_cut_and_one_half_T_starts_at_the_estimate(sym80, monkeypatch):
    """An estimate of 0.4 (as at 60% noise): T starts at it, the fit is, to the bit,
    the one with 0.4 given."""
    watch_trusted_set_check(monkeypatch, estimate=0.4)
    default = _fit(sym80, max_epochs=3)
    assert default.init_diagonal_ == 0.4
    _same_fit(default, _fit(sym80, method=MLC(init_diagonal=0.4), max_epochs=3), sym80)


@pytest.mark.parametrize(
    "estimate, start", [(UNIFORM_BELOW - 0.01, 0.1), (UNIFORM_BELOW, UNIFORM_BELOW)]
)
def test_the_cut_sits_on_the_estimate(sym80, monkeypatch, estimate, start):
    watch_trusted_set_check(monkeypatch, estimate=estimate)
    assert _fit(sym80, max_epochs=1).init_diagonal_ == pytest.approx(start)


def test_the_cut_with_three_classes_leaves_no_gap():
    """With K = 3 a uniform T (1/3) is above the cut: the start rises smoothly."""
    mlc = MLC()
    starts = [mlc.initial_diagonal(3, c) for c in (0.1, 0.29, 0.31, 0.34, 0.4, 0.7)]
    np.testing.assert_allclose(starts, [1 / 3, 1 / 3, 1 / 3, 0.34, 0.4, 0.5])


def test_where_the_labels_are_mostly_right_T_starts_at_one_half(pair40):
    default = _fit(pair40, max_epochs=3)
    assert default.init_check_["estimated_label_accuracy"] > 0.5
    assert default.init_diagonal_ == 0.5
    _same_fit(default, _fit(pair40, method=MLC(init_diagonal=0.5), max_epochs=3), pair40)


def test_the_start_is_never_below_uniform(sym80, monkeypatch):
    watch_trusted_set_check(monkeypatch, estimate=0.01)
    clf = _fit(sym80, max_epochs=1)
    assert clf.init_diagonal_ == pytest.approx(0.1)  # 1 / 10 classes: T uniform


def test_without_an_estimate_T_starts_at_one_half(sym40):
    """A class with a single trusted row: the check cannot cross-validate."""
    y_meta = sym40.y_meta
    keep = np.setdiff1d(np.arange(len(y_meta)), np.flatnonzero(y_meta == 3)[1:])
    clf = _fit(sym40, X_meta=sym40.X_meta[keep], y_meta=y_meta[keep], max_epochs=1)
    assert clf.init_check_["estimated_label_accuracy"] is None
    assert "single trusted row" in clf.init_check_["reason"]
    assert clf.init_diagonal_ == 0.5


def test_the_pretraining_checks_findings_are_taken(sym80, monkeypatch):
    """mlc with pretrain_epochs="auto": one check decides both."""
    calls = watch_trusted_set_check(monkeypatch)
    clf = _fit(sym80, max_epochs=1, pretrain_epochs="auto")
    assert len(calls) == 1
    assert clf.pretrain_check_["pretrain"] and clf.pretrain_epochs_ > 0
    same = ("trusted_cv_accuracy", "noisy_label_agreement", "estimated_label_accuracy")
    assert [clf.init_check_[k] for k in same] == [clf.pretrain_check_[k] for k in same]
    assert clf.pretrain_check_["chance_corrected_estimate"] < UNIFORM_BELOW
    assert clf.init_diagonal_ == pytest.approx(0.1)  # labels 20% right: T uniform


def test_no_check_with_two_classes(sym80, monkeypatch):
    """Two classes: the start is 1/2 whatever the estimate, so the check is skipped,
    and the fit is the one with 0.5 given, to the bit."""
    calls = watch_trusted_set_check(monkeypatch)
    two = dataclasses.replace(sym80, y_noisy=sym80.y_noisy % 2, y_meta=sym80.y_meta % 2)
    default = _fit(two, max_epochs=2)
    assert calls == [] and default.init_check_ is None and default.init_diagonal_ == 0.5
    _same_fit(default, _fit(two, method=MLC(init_diagonal=0.5), max_epochs=2), two)


def test_no_check_for_a_given_start_or_another_method(sym80):
    given = _fit(sym80, method=MLC(init_diagonal=0.7), max_epochs=1)
    assert given.init_check_ is None and given.heavy_noise_ == {}
    for method in ["glc", "ce"]:  # tmlc runs it for its sharpening (see test_tmlc)
        assert _fit(sym80, method=method, max_epochs=1).init_check_ is None


@pytest.mark.parametrize("bad", [0, 0.0, -0.2, 1.5, "uniform", True, None])
def test_a_bad_init_diagonal_is_an_error_naming_it(sym40, bad):
    with pytest.raises(ValueError, match="init_diagonal"):
        _fit(sym40, method=MLC(init_diagonal=bad), max_epochs=1)
