"""Early stopping on held-out noisy rows (``early_stopping=True``)."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_noisy import MetaLabelCorrectionClassifier
from tests.conftest import interrupt_fits_after, make_case


@pytest.fixture(scope="module")
def sym60():
    return make_case("symmetric", 0.6)


def _fit(case, **kw):
    clf = MetaLabelCorrectionClassifier(random_state=0, **kw)
    return clf.fit(case.X, case.y_noisy, X_meta=case.X_meta, y_meta=case.y_meta)


@pytest.fixture(scope="module")
def ce_stopped(sym60):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # stopping early is not an interruption
        return _fit(sym60, method="ce", early_stopping=True)


def test_ce_stops_before_memorising_the_noise(sym60, ce_stopped):
    """At 60% symmetric noise plain ce memorises the flips; stopping keeps it better."""
    plain = _fit(sym60, method="ce")
    assert ce_stopped.n_iter_ < plain.n_iter_ == 50
    assert ce_stopped.n_iter_ == ce_stopped.best_epoch_ + 10  # n_iter_no_change
    assert ce_stopped.score(sym60.X_test, sym60.y_test) > plain.score(sym60.X_test, sym60.y_test)
    assert np.mean(ce_stopped.corrected_labels_ == sym60.y_true) > np.mean(
        plain.corrected_labels_ == sym60.y_true
    )


def test_the_best_epoch_weights_are_restored(sym60, ce_stopped):
    clf = ce_stopped
    held = clf.validation_mask_
    acc = np.mean(clf.predict(sym60.X[held]) == sym60.y_noisy[held])
    assert acc == pytest.approx(clf.best_validation_score_, abs=1e-6)
    scores = clf.history_[:, "valid_acc"]
    assert clf.best_validation_score_ == pytest.approx(max(scores))
    # the last epoch is worse than the best (else nothing would have stopped it)
    assert scores[-1] < clf.best_validation_score_
    # among epochs tying the best score, the last one is kept
    assert clf.best_epoch_ == 1 + max(i for i, s in enumerate(scores) if s == max(scores))


def test_held_out_rows_are_stratified_and_not_trained(sym60, ce_stopped):
    clf = ce_stopped
    held = clf.validation_mask_
    assert held.shape == (len(sym60.y_noisy),) and held.dtype == bool
    for c in np.unique(sym60.y_noisy):
        members = sym60.y_noisy == c
        assert held[members].sum() == int(np.floor(0.1 * members.sum()))
    assert clf.net_.train_info.n_samples == len(sym60.y_noisy) - held.sum()  # ce: no trusted


def test_warmup_epochs_are_not_candidates(sym60):
    clf = _fit(sym60, method="mlc", early_stopping=True, warmup_epochs=8, max_epochs=30)
    assert clf.best_epoch_ > 8
    assert clf.n_iter_ >= 8 + 10
    # the warm-up epochs are scored all the same
    assert len(clf.history_[:, "valid_acc"]) == clf.n_iter_


@pytest.mark.parametrize("method", ["mlc", "mslc", "mslg", "tmlc", "mfrw", "glc"])
def test_every_method_corrects_its_held_out_rows(sym60, method):
    clf = _fit(sym60, method=method, early_stopping=True, max_epochs=25)
    held = clf.validation_mask_
    assert clf.corrected_proba_.shape == (len(sym60.y_noisy), 10)
    np.testing.assert_allclose(clf.corrected_proba_.sum(1), 1.0, atol=1e-9)
    # better than the given labels on the rows the method never trained on
    right_after = np.mean(clf.corrected_labels_[held] == sym60.y_true[held])
    right_before = np.mean(sym60.y_noisy[held] == sym60.y_true[held])
    assert right_after > right_before + 0.3
    np.testing.assert_allclose(clf.transition_matrix_.sum(1), 1.0, atol=1e-6)
    for name in ("alpha_", "beta_", "advisor_weight_"):  # per-sample tables: NaN there
        if hasattr(clf, name):
            value = getattr(clf, name)
            assert np.isnan(value[held]).all() and not np.isnan(value[~held]).any()


def test_table_methods_correct_held_out_rows_by_the_fitted_T(sym60):
    clf = _fit(sym60, method="mslc", early_stopping=True, max_epochs=25)
    held = clf.validation_mask_
    proba = clf.predict_proba(sym60.X[held])
    y = np.searchsorted(clf.classes_, sym60.y_noisy[held])
    q = proba * clf.transition_matrix_[:, y].T
    np.testing.assert_allclose(clf.corrected_proba_[held], q / q.sum(1, keepdims=True), atol=1e-6)


def test_meta_mask_holds_out_noisy_rows_only(sym60):
    X = np.concatenate([sym60.X, sym60.X_meta])
    y = np.concatenate([sym60.y_noisy, sym60.y_meta])
    mask = np.r_[np.zeros(len(sym60.y_noisy), bool), np.ones(len(sym60.y_meta), bool)]
    clf = MetaLabelCorrectionClassifier(
        method="mlc", early_stopping=True, max_epochs=15, random_state=0
    ).fit(X, y, meta_mask=mask)
    assert not (clf.validation_mask_ & mask).any()
    assert clf.validation_mask_.sum() > 0
    np.testing.assert_array_equal(clf.corrected_labels_[mask], sym60.y_meta)


def test_without_early_stopping_nothing_is_held_out(sym60):
    clf = _fit(sym60, method="ce", max_epochs=3)
    assert clf.best_epoch_ is None and clf.validation_mask_ is None
    assert "valid_acc" not in clf.history_[-1]


def test_a_fit_that_never_leaves_the_warm_up_keeps_its_last_epoch(sym60):
    clf = _fit(sym60, method="mlc", early_stopping=True, max_epochs=3, warmup_epochs=3)
    assert clf.best_epoch_ is None and clf.best_validation_score_ is None
    assert clf.n_iter_ == 3 and clf.validation_mask_.sum() > 0
    held = clf.validation_mask_
    last = clf.history_[-1, "valid_acc"]
    assert np.mean(clf.predict(sym60.X[held]) == sym60.y_noisy[held]) == pytest.approx(last)


def test_reproducible_and_picklable(sym60, ce_stopped):
    again = _fit(sym60, method="ce", early_stopping=True)
    np.testing.assert_array_equal(again.validation_mask_, ce_stopped.validation_mask_)
    assert again.best_epoch_ == ce_stopped.best_epoch_
    np.testing.assert_array_equal(
        again.predict_proba(sym60.X_test), ce_stopped.predict_proba(sym60.X_test)
    )
    loaded = pickle.loads(pickle.dumps(ce_stopped))
    np.testing.assert_array_equal(
        loaded.predict_proba(sym60.X_test), ce_stopped.predict_proba(sym60.X_test)
    )


def test_a_pickled_model_carries_no_copy_of_the_held_out_rows(sym60, ce_stopped):
    plain = _fit(sym60, method="ce", max_epochs=ce_stopped.n_iter_)
    held_bytes = sym60.X[ce_stopped.validation_mask_].astype(np.float32).nbytes
    extra = len(pickle.dumps(ce_stopped)) - len(pickle.dumps(plain))
    assert extra < held_bytes / 4  # a few history columns and the mask, not the rows


def test_validation_fraction_too_small_for_the_data_is_refused(sym60):
    with pytest.raises(ValueError, match="validation_fraction"):
        _fit(sym60, method="ce", early_stopping=True, validation_fraction=0.001, max_epochs=2)


@pytest.mark.parametrize(
    "kw", [{"validation_fraction": 0.0}, {"validation_fraction": 1.0}, {"n_iter_no_change": 0}]
)
def test_bad_early_stopping_parameters_are_refused(sym60, kw):
    name = next(iter(kw))
    with pytest.raises(InvalidParameterError, match=name):
        _fit(sym60, method="ce", early_stopping=True, **kw)


def test_user_interrupt_is_still_reported(sym60, monkeypatch):
    """A KeyboardInterrupt from the user still warns (early stopping raises one too)."""
    interrupt_fits_after(monkeypatch, 3)
    with pytest.warns(UserWarning, match="interrupted"):
        clf = _fit(sym60, method="ce", early_stopping=True)
    assert clf.n_iter_ == 2


def test_verbose_logs_the_held_out_score_and_the_stop(sym60, capsys):
    clf = _fit(sym60, method="ce", early_stopping=True, n_iter_no_change=3, verbose=1)
    shown = capsys.readouterr()
    printed = shown.out + shown.err
    assert "valid_acc" in printed  # a column of the epoch log
    assert clf.n_iter_ < 50 and "Stopping since valid_acc has not improved" in printed
