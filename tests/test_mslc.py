"""mslc: Meta Soft Label Corrector."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from sklearn_noisy import MetaLabelCorrectionClassifier
from sklearn_noisy.methods import MSLC


def _fit(method, case, **kw):
    kw = {"random_state": 0, "device": "cpu", **kw}
    clf = MetaLabelCorrectionClassifier(method=method, **kw)
    return clf.fit(case.X, case.y_noisy, X_meta=case.X_meta, y_meta=case.y_meta)


@pytest.fixture(scope="module")
def fitted(sym40):
    # classifier defaults (max_epochs=50): the regime where ce overfits the noise
    return _fit("mslc", sym40), _fit("ce", sym40)


def test_corrected_labels_beat_noisy_labels(fitted, sym40):
    mslc, _ = fitted
    corrected = (mslc.corrected_labels_ == sym40.y_true).mean()
    assert corrected > sym40.noisy_accuracy + 0.2, (corrected, sym40.noisy_accuracy)
    q = mslc.corrected_proba_
    assert q.shape == (len(sym40.y_noisy), 10)
    np.testing.assert_allclose(q.sum(1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(mslc.corrected_labels_, mslc.classes_[q.argmax(1)])


def test_beats_ce(fitted, sym40):
    mslc, ce = fitted
    acc_mslc = mslc.score(sym40.X_test, sym40.y_test)
    acc_ce = ce.score(sym40.X_test, sym40.y_test)
    assert acc_mslc > acc_ce + 0.02, (acc_mslc, acc_ce)


def test_alpha_higher_on_clean_than_flipped(fitted, sym40):
    mslc, _ = fitted
    clean = sym40.y_noisy == sym40.y_true
    for name in ("alpha_", "beta_"):
        v = getattr(mslc, name)
        assert v.shape == (len(sym40.y_noisy),)
        assert np.isfinite(v).all() and ((v >= 0) & (v <= 1)).all()
    assert mslc.alpha_[clean].mean() > mslc.alpha_[~clean].mean()
    assert roc_auc_score(clean, mslc.alpha_) > 0.8


def test_transition_matrix_estimated(fitted, sym40):
    mslc, _ = fitted
    T = mslc.transition_matrix_
    np.testing.assert_allclose(T.sum(1), 1.0, atol=1e-9)
    assert np.abs(T - sym40.T).max() < 0.2


def test_history_records_meta_and_label_changes(fitted):
    mslc, _ = fitted
    changed = mslc.history_[:, "labels_changed"]
    warmup = mslc.net_.warmup_epochs
    assert warmup == 10  # default warmup_fraction=0.2 of max_epochs=50
    assert max(changed[:warmup]) == 0.0  # plain training on the given labels
    assert changed[-1] > 0.2
    assert np.isfinite(mslc.history_[-1, "meta_loss"])


def test_meta_parameters_change_only_after_warmup(sym40):
    # same seed, same initial coefficient networks; only one of them gets meta steps
    frozen = _fit("mslc", sym40, max_epochs=3, warmup_epochs=3)
    meta = _fit("mslc", sym40, max_epochs=3, warmup_epochs=1)
    before = frozen.net_.meta_module_.alpha_net.state_dict()
    after = meta.net_.meta_module_.alpha_net.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert np.isnan(frozen.alpha_).all()  # no meta step ran
    assert np.isfinite(meta.alpha_).all()
    assert not any(
        p is q
        for p in meta.net_.meta_module_.parameters()
        for q in meta.net_.optimizer_.param_groups[0]["params"]
    )


@pytest.mark.parametrize("meta_every, expected_every", [(None, 2), (1, 1), (3, 3)])
def test_meta_step_on_every_second_batch_by_default(sym40, meta_every, expected_every):
    """mslc's default meta_every is 2: alpha/beta get half as many updates as batches."""
    clf = _fit("mslc", sym40, max_epochs=2, warmup_epochs=0, batch_size=64, meta_every=meta_every)
    assert clf.net_.meta_every == expected_every
    per_epoch = [len(row["batches"]) for row in clf.history_]
    expected = sum(-(-n // expected_every) for n in per_epoch)
    param = next(clf.net_.meta_module_.alpha_net.parameters())
    assert int(clf.net_.meta_optimizer_.state[param]["step"]) == expected
    # the soft labels are recomputed at every real step, not only at meta steps:
    # every noisy row has left its one-hot label
    assert (clf.corrected_proba_.max(1) < 1.0).mean() > 0.99


def test_other_methods_meta_step_on_every_batch_by_default(sym40):
    clf = _fit("mlc", sym40, max_epochs=1)
    assert clf.net_.meta_every == 1


def test_pickle_round_trip(fitted, sym40):
    mslc, _ = fitted
    loaded = pickle.loads(pickle.dumps(mslc))
    np.testing.assert_array_equal(
        loaded.predict_proba(sym40.X_test), mslc.predict_proba(sym40.X_test)
    )
    np.testing.assert_array_equal(loaded.alpha_, mslc.alpha_)
    np.testing.assert_array_equal(
        loaded.net_.meta_module_.soft.numpy(), mslc.net_.meta_module_.soft.numpy()
    )


def test_meta_mask_form_matches_x_meta_form(sym40):
    kw = dict(max_epochs=4, warmup_epochs=1)
    a = _fit("mslc", sym40, **kw)
    X_all, y_all, mask = sym40.all_rows()
    b = MetaLabelCorrectionClassifier(method="mslc", random_state=0, device="cpu", **kw)
    b.fit(X_all, y_all, meta_mask=mask)
    np.testing.assert_allclose(b.predict_proba(sym40.X_test), a.predict_proba(sym40.X_test))
    np.testing.assert_allclose(b.corrected_proba_[~mask], a.corrected_proba_)
    np.testing.assert_array_equal(b.alpha_[~mask], a.alpha_)
    assert np.isnan(b.alpha_[mask]).all()


def test_method_params_are_tunable(sym40):
    clf = MetaLabelCorrectionClassifier(method=MSLC(), max_epochs=2, random_state=0)
    clf.set_params(method__hidden_size=7, method__target="hard", warmup_epochs=1, device="cpu")
    clf.fit(sym40.X, sym40.y_noisy, X_meta=sym40.X_meta, y_meta=sym40.y_meta)
    assert clf.net_.meta_module_.alpha_net[0].out_features == 7
    # the hard target trains on argmax of the soft label, which is still stored soft
    assert (clf.corrected_proba_.max(1) < 1.0).any()


def test_invalid_target_raises(sym40):
    clf = MetaLabelCorrectionClassifier(method=MSLC(target="both"), max_epochs=1)
    with pytest.raises(ValueError, match="target"):
        clf.fit(sym40.X, sym40.y_noisy, X_meta=sym40.X_meta, y_meta=sym40.y_meta)


@pytest.mark.cuda
def test_fits_on_cuda(sym40):
    clf = _fit("mslc", sym40, max_epochs=4, warmup_epochs=1, device="cuda")
    assert clf.net_.meta_module_.soft.device.type == "cuda"
    assert np.isfinite(clf.alpha_).all()
    proba = pickle.loads(pickle.dumps(clf)).predict_proba(sym40.X_test)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)
