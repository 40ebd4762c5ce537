"""mslg: Meta Soft Label Generation."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from sklearn_noisy import MetaLabelCorrectionClassifier
from sklearn_noisy.methods import MSLG
from tests.conftest import assert_check_reads_the_first_epoch


def _fit(method, case, **kw):
    kw = {"random_state": 0, "device": "cpu", **kw}
    clf = MetaLabelCorrectionClassifier(method=method, **kw)
    return clf.fit(case.X, case.y_noisy, X_meta=case.X_meta, y_meta=case.y_meta)


@pytest.fixture(scope="module")
def fitted(sym40):
    # classifier defaults (max_epochs=50): the regime where ce overfits the noise
    return _fit("mslg", sym40), _fit("ce", sym40)


def _initial_logits(clf, y_noisy):
    K = clf.method_.K
    return K * np.eye(len(clf.classes_))[np.searchsorted(clf.classes_, y_noisy)]


def _noisy_rows(clf):
    """Label logits of the noisy rows (the table's first rows; trusted rows follow)."""
    table = clf.net_.meta_module_.weight.detach()
    return table[: int((~clf.net_.train_info.trusted).sum())]


def test_corrected_labels_beat_noisy_labels(fitted, sym40):
    mslg, _ = fitted
    corrected = (mslg.corrected_labels_ == sym40.y_true).mean()
    assert corrected > sym40.noisy_accuracy + 0.05, (corrected, sym40.noisy_accuracy)
    q = mslg.corrected_proba_
    np.testing.assert_allclose(q.sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(q, torch.softmax(_noisy_rows(mslg).double(), 1).numpy(), atol=1e-6)


def test_beats_ce(fitted, sym40):
    mslg, ce = fitted
    acc_mslg = mslg.score(sym40.X_test, sym40.y_test)
    acc_ce = ce.score(sym40.X_test, sym40.y_test)
    assert acc_mslg > acc_ce + 0.02, (acc_mslg, acc_ce)


def test_label_logits_change_for_flipped_samples(fitted, sym40):
    mslg, _ = fitted
    W = _noisy_rows(mslg).numpy()
    moved = np.abs(W - _initial_logits(mslg, sym40.y_noisy)).sum(1)
    flipped = sym40.y_noisy != sym40.y_true
    assert moved[flipped].mean() > 1.0
    # a good share of the wrong labels are turned into the right ones
    fixed = (mslg.corrected_labels_ == sym40.y_true)[flipped].mean()
    assert fixed > 0.2, fixed


def test_beats_noisy_labels_and_ce_on_pair_noise(pair40):
    mslg = _fit("mslg", pair40, max_epochs=40)
    ce = _fit("ce", pair40, max_epochs=40)
    corrected = (mslg.corrected_labels_ == pair40.y_true).mean()
    assert corrected > pair40.noisy_accuracy + 0.1, (corrected, pair40.noisy_accuracy)
    assert mslg.score(pair40.X_test, pair40.y_test) > ce.score(pair40.X_test, pair40.y_test) + 0.1


def test_history_records_label_changes(fitted):
    mslg, _ = fitted
    changed = mslg.history_[:, "labels_changed"]
    warmup = mslg.net_.warmup_epochs
    # digits: the trusted rows can tell, so the warm-up is "auto", capped at
    # warmup_fraction=0.4 of max_epochs=50
    assert mslg.warmup_check_["auto_warmup"]
    assert warmup == mslg.warmup_epochs_ <= 20
    assert max(changed[:warmup]) == 0.0
    assert changed[-1] > 0.05
    T = mslg.transition_matrix_
    np.testing.assert_allclose(T.sum(1), 1.0, atol=1e-9)


def test_meta_update_is_a_plain_step_on_batch_rows_only(fitted):
    mslg, _ = fitted
    net = pickle.loads(pickle.dumps(mslg.net_))
    table = net.meta_module_.weight
    before = table.detach().clone()
    idx = torch.tensor([3, 17])
    loss = net.meta_module_.rows(idx, sparse=True).square().sum()
    mslg.method_.meta_update(net, loss)
    after = table.detach()
    others = torch.ones(len(before), dtype=torch.bool)
    others[idx] = False
    assert torch.equal(after[others], before[others])
    # a plain gradient step (2 * w per entry), scaled as a whole to max_step per row
    step = -mslg.method_.label_lr * 2 * before[idx]
    scale = min(1.0, mslg.method_.max_step / step.norm(dim=1).max().item())
    torch.testing.assert_close(after[idx], before[idx] + scale * step)
    # the meta optimizer (Adam) is never stepped: no state for the label logits
    assert len(mslg.net_.meta_optimizer_.state) == 0


def test_pickle_round_trip(fitted, sym40):
    mslg, _ = fitted
    loaded = pickle.loads(pickle.dumps(mslg))
    np.testing.assert_array_equal(
        loaded.predict_proba(sym40.X_test), mslg.predict_proba(sym40.X_test)
    )
    np.testing.assert_array_equal(loaded.corrected_proba_, mslg.corrected_proba_)


def test_meta_mask_form_matches_x_meta_form(sym40):
    kw = dict(max_epochs=4, warmup_epochs=1)
    a = _fit("mslg", sym40, **kw)
    X_all, y_all, mask = sym40.all_rows()
    b = MetaLabelCorrectionClassifier(method="mslg", random_state=0, device="cpu", **kw)
    b.fit(X_all, y_all, meta_mask=mask)
    np.testing.assert_allclose(b.predict_proba(sym40.X_test), a.predict_proba(sym40.X_test))
    np.testing.assert_allclose(b.corrected_proba_[~mask], a.corrected_proba_)
    assert (_noisy_rows(a).numpy() != _initial_logits(a, sym40.y_noisy)).any()


def test_method_params_are_tunable(sym40):
    clf = MetaLabelCorrectionClassifier(method=MSLG(), max_epochs=1, random_state=0)
    clf.set_params(method__K=3.0, warmup_epochs=1, device="cpu")
    clf.fit(sym40.X, sym40.y_noisy, X_meta=sym40.X_meta, y_meta=sym40.y_meta)
    np.testing.assert_allclose(_noisy_rows(clf).numpy(), _initial_logits(clf, sym40.y_noisy))
    assert clf.net_.meta_module_.weight.max().item() == 3.0


@pytest.mark.cuda
def test_fits_on_cuda(sym40):
    clf = _fit("mslg", sym40, max_epochs=4, warmup_epochs=1, device="cuda")
    assert clf.net_.meta_module_.weight.device.type == "cuda"
    proba = pickle.loads(pickle.dumps(clf)).predict_proba(sym40.X_test)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(clf.corrected_proba_.sum(1), 1.0, atol=1e-6)


# --- smaller label steps where the noise is learnable (learnable_noise="auto")


class _LabelSteps(Callback):
    """Largest move of any row's label logits at each training step."""

    def initialize(self):
        self.moves_, self.before_ = [], None
        return self

    def on_batch_begin(self, net, **kwargs):
        self.before_ = net.meta_module_.weight.detach().clone()

    def on_batch_end(self, net, **kwargs):
        move = (net.meta_module_.weight.detach() - self.before_).norm(dim=1).max()
        self.moves_.append(float(move))


def test_learnable_noise_caps_the_label_steps_and_lengthens_the_warm_up(linear_noise):
    clf = _fit("mslg", linear_noise, max_epochs=5, callbacks=[_LabelSteps()])
    (steps,) = [cb for _, cb in clf.net_.callbacks_ if isinstance(cb, _LabelSteps)]
    check = clf.learnable_noise_check_
    assert_check_reads_the_first_epoch(check, clf)
    assert check["learnable"] and check["corrects_less"]
    assert check["max_step"] == 1.0 and check["longer_warmup"]
    assert clf.warmup_epochs_ == 3  # 60% of 5 epochs instead of 40%
    # the label table moves in the meta epochs only, and never by more than 1.0 a step
    n_batches = len(clf.history_[0]["batches"])
    moves = np.array(steps.moves_)
    assert np.all(moves[: 3 * n_batches] == 0.0)
    assert moves[3 * n_batches :].max() == pytest.approx(1.0, abs=1e-5)
    # the user's cap below 1.0 is kept; a given warm-up is not lengthened
    low = _fit(MSLG(max_step=0.5), linear_noise, max_epochs=5)
    assert low.learnable_noise_check_["max_step"] == 0.5 and low.warmup_epochs_ == 3
    given = _fit("mslg", linear_noise, max_epochs=5, warmup_epochs=2)
    assert given.learnable_noise_check_["corrects_less"] and given.warmup_epochs_ == 2
    assert not given.learnable_noise_check_["longer_warmup"]
    # with the automatic warm-up the trusted rows are the better reference: no change
    auto = _fit("mslg", linear_noise, max_epochs=5, warmup_epochs="auto")
    assert auto.learnable_noise_check_["learnable"]
    assert not auto.learnable_noise_check_["corrects_less"]
    assert auto.learnable_noise_check_["max_step"] == 3.0
    off = _fit(MSLG(learnable_noise=False), linear_noise, max_epochs=5, warmup_epochs="auto")
    np.testing.assert_array_equal(auto.corrected_proba_, off.corrected_proba_)


def test_no_learnable_noise_leaves_the_fit_as_it_was(sym40):
    checked = _fit("mslg", sym40, max_epochs=6)
    unchecked = _fit(MSLG(learnable_noise=False), sym40, max_epochs=6)
    check = checked.learnable_noise_check_
    assert not check["learnable"] and not check["corrects_less"]
    assert check["max_step"] == 3.0 and not check["longer_warmup"]
    assert check["given_label_log_proba"] < check["trusted_label_log_proba"]
    assert unchecked.learnable_noise_check_ is None
    np.testing.assert_array_equal(checked.predict_proba(sym40.X), unchecked.predict_proba(sym40.X))
    np.testing.assert_array_equal(checked.corrected_proba_, unchecked.corrected_proba_)


def test_learnable_noise_check_needs_the_trusted_rows_in_the_first_epoch(linear_noise):
    apart = _fit("mslg", linear_noise, max_epochs=3, train_on_meta=False)
    assert apart.learnable_noise_check_ is None
    assert "trusted_label_log_proba" not in apart.history_[0]
    pretrained = _fit("mslg", linear_noise, max_epochs=3, pretrain_epochs=2)
    assert pretrained.learnable_noise_check_ is None
    assert "trusted_label_log_proba" not in pretrained.history_[0]


def test_learnable_noise_is_validated(sym40):
    with pytest.raises(ValueError, match="learnable_noise must be 'auto' or False"):
        _fit(MSLG(learnable_noise="yes"), sym40, max_epochs=2)
