"""``pretrain_epochs``: the network is trained on the trusted set alone before the
noisy rows, so that training on them starts from a model of the clean rows."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError
from skorch.callbacks import Callback

from sklearn_noisy import MetaLabelCorrectionClassifier, NoTrustedSetWarning
from sklearn_noisy._engine import MetaBatches
from sklearn_noisy._pretrain_check import (
    AUTO_PRETRAIN_EPOCHS,
    chance_corrected_estimate,
    trusted_set_check,
)
from sklearn_noisy.datasets import make_noisy_case
from sklearn_noisy.methods._base import HEAVY_NOISE_BELOW
from sklearn_noisy.modules import MLP
from tests.conftest import assert_check_said_no, make_case


class _FirstEpochProbe(Callback):
    """What the network and its optimizer are when the first epoch begins.

    ``trusted_acc_``: accuracy of the module on the trusted set; ``optimizer_steps_``:
    how many steps the main optimizer's state remembers.
    """

    def __init__(self, X_meta, y_meta):
        self.X_meta = X_meta
        self.y_meta = y_meta

    def on_epoch_begin(self, net, **kwargs):
        if len(net.history) != 1:
            return
        with torch.no_grad():
            logits = net.module_(torch.as_tensor(self.X_meta, dtype=torch.float32))
        self.trusted_acc_ = float((logits.argmax(1).numpy() == self.y_meta).mean())
        self.optimizer_steps_ = sum(int(s["step"]) for s in net.optimizer_.state.values())


def _fit(case, probe=False, **params):
    params.setdefault("max_epochs", 3)
    params.setdefault("random_state", 0)
    if probe:
        params["callbacks"] = [_FirstEpochProbe(case.X_meta, case.y_meta)]
    clf = MetaLabelCorrectionClassifier(device="cpu", **params)
    return clf.fit(case.X, case.y_noisy, X_meta=case.X_meta, y_meta=case.y_meta)


def _probe(clf):
    return next(cb for _, cb in clf.net_.callbacks_ if isinstance(cb, _FirstEpochProbe))


def test_mfrw_pretrained_starts_its_meta_steps_at_once(sym40):
    clf = _fit(sym40, method="mfrw", max_epochs=10, pretrain_epochs=200)
    assert clf.pretrain_epochs_ == 200
    assert len(clf.pretrain_loss_curve_) == 200
    # the trusted rows are learned: the loss falls by orders of magnitude
    assert clf.pretrain_loss_curve_[-1] < 0.05 * clf.pretrain_loss_curve_[0]
    assert clf.warmup_epochs_ == 0
    assert "meta_loss" in clf.history_[0]


def test_without_pretraining_mfrw_keeps_the_papers_schedule(sym40):
    clf = _fit(sym40, method="mfrw", max_epochs=10, pretrain_epochs=0)
    assert clf.pretrain_epochs_ == 0 and clf.pretrain_loss_curve_ == []
    assert clf.pretrain_check_ is None
    assert clf.warmup_epochs_ == 1  # warmup_fraction 0.1 of 10 epochs
    assert "meta_loss" not in clf.history_[0]


@pytest.mark.parametrize("method", ["mlc", "mfrw"])
def test_the_first_epoch_starts_from_a_model_of_the_trusted_rows(sym40, method):
    """Pre-trained, the network knows the trusted rows when the noisy epochs begin,
    and the main optimizer starts them with no memory of the pre-training."""
    pre = _probe(_fit(sym40, probe=True, method=method, pretrain_epochs=50))
    plain = _probe(_fit(sym40, probe=True, method=method, pretrain_epochs=0))
    assert pre.trusted_acc_ > 0.95
    assert plain.trusted_acc_ < 0.3
    assert pre.optimizer_steps_ == plain.optimizer_steps_ == 0


def test_only_methods_that_say_so_drop_their_warm_up(sym40):
    clf = _fit(sym40, method="mlc", max_epochs=10, pretrain_epochs=20)
    assert clf.pretrain_epochs_ == 20
    assert clf.warmup_epochs_ == 1  # mlc keeps its warm-up
    clf = _fit(sym40, method="mfrw", max_epochs=10, pretrain_epochs=20, warmup_epochs=3)
    assert clf.warmup_epochs_ == 3  # an explicit warm-up is kept


def test_pretraining_leaves_the_meta_batches_as_they_were():
    rng = np.random.RandomState(0)
    X, y = rng.normal(size=(30, 4)), np.arange(30) % 3
    a, b = MetaBatches(X, y, 8, "cpu", seed=5), MetaBatches(X, y, 8, "cpu", seed=5)
    epochs = list(a.epochs(3, 7))
    assert len(epochs) == 3
    for batches in epochs:  # each pass holds every row once, batches of 7 and a rest
        assert [len(yb) for _, yb in batches] == [7, 7, 7, 7, 2]
        assert sorted(torch.cat([yb for _, yb in batches]).tolist()) == sorted(y.tolist())
    assert not torch.equal(epochs[0][0][1], epochs[1][0][1])  # reshuffled
    for _ in range(5):
        (Xa, ya), (Xb, yb) = next(a), next(b)
        assert torch.equal(Xa, Xb) and torch.equal(ya, yb)


def test_meta_batches_keep_each_row_with_its_label():
    """Every meta batch (endless, and the pre-training's passes) holds whole trusted
    rows with their own labels, no row twice within one pass over the set."""
    X = np.arange(30 * 4, dtype=np.float64).reshape(30, 4)
    y = np.arange(30)  # the label names the row
    rows = torch.as_tensor(X, dtype=torch.float32)
    meta = MetaBatches(X, y, 8, "cpu", seed=1)
    for _ in range(2):  # two passes: three full batches of 8 each (6 rows left out)
        seen = []
        for _ in range(3):
            Xb, yb = next(meta)
            assert Xb.shape == (8, 4) and yb.dtype == torch.int64
            assert torch.equal(Xb, rows[yb])
            seen += yb.tolist()
        assert len(set(seen)) == 24
    for batches in meta.epochs(2, 7):
        for Xb, yb in batches:
            assert torch.equal(Xb, rows[yb])


def test_pretraining_helps_mfrw_at_heavy_noise(sym80):
    """Digits at 80% symmetric noise: the trusted model is a far better start than
    one trained on labels 80% wrong (seed 0, 20 epochs: 0.928 against 0.848)."""
    pre = _fit(sym80, method="mfrw", max_epochs=20, pretrain_epochs=200)
    plain = _fit(sym80, method="mfrw", max_epochs=20, pretrain_epochs=0)
    acc_pre = (pre.predict(sym80.X_test) == sym80.y_test).mean()
    acc_plain = (plain.predict(sym80.X_test) == sym80.y_test).mean()
    assert acc_pre > acc_plain + 0.04
    assert acc_pre > 0.9


@pytest.mark.parametrize("method", ["ce", "glc", "mlc", "mslg", "tmlc"])
def test_pretraining_is_off_by_default_for_most_methods(sym40, method):
    clf = _fit(sym40, method=method, max_epochs=1)
    assert clf.pretrain_epochs_ == 0 and clf.pretrain_loss_curve_ == []
    assert clf.pretrain_check_ is None


@pytest.mark.parametrize("method", ["mfrw", "mslc"])
def test_mfrw_and_mslc_check_by_default(sym80, method):
    """Digits at 80% symmetric noise: the trusted rows alone (about 0.9 right on
    held-out trusted rows) beat labels 20% right, so both pre-train."""
    clf = _fit(sym80, method=method, max_epochs=1)
    check = clf.pretrain_check_
    assert check["pretrain"] and check["n_splits"] == 5
    assert check["trusted_cv_accuracy"] > 0.8
    assert abs(check["estimated_label_accuracy"] - sym80.noisy_accuracy) < 0.05
    assert clf.pretrain_epochs_ == AUTO_PRETRAIN_EPOCHS


def test_auto_fits_as_the_epochs_it_decides_on(sym80):
    """The check draws on a random state of its own: the fit is the one its
    decision names, to the bit."""
    auto = _fit(sym80, method="mfrw", max_epochs=2, pretrain_epochs="auto")
    # a given number runs no check, so it takes no heavy-noise setting: give them too
    assert auto.heavy_noise_
    fixed = _fit(
        sym80,
        method="mfrw",
        max_epochs=2,
        pretrain_epochs=AUTO_PRETRAIN_EPOCHS,
        **auto.heavy_noise_,
    )
    np.testing.assert_array_equal(
        auto.predict_proba(sym80.X_test), fixed.predict_proba(sym80.X_test)
    )
    assert auto.warmup_epochs_ == fixed.warmup_epochs_ == 0
    loaded = pickle.loads(pickle.dumps(auto))
    assert loaded.pretrain_check_ == auto.pretrain_check_
    assert clone(auto).get_params()["pretrain_epochs"] == "auto"


def test_auto_does_not_pretrain_where_the_labels_beat_the_trusted_rows(weak_trusted):
    """Three trusted rows per class make a weak model; labels 90% right beat it,
    so mfrw's default leaves the network as it was: the fit is the one without
    pre-training, warm-up included."""
    case = weak_trusted
    auto = _fit(case, method="mfrw", max_epochs=10)
    plain = _fit(case, method="mfrw", max_epochs=10, pretrain_epochs=0)
    check = auto.pretrain_check_
    assert_check_said_no(check, "pretrain")
    assert "no pre-training" in check["reason"]
    assert auto.pretrain_epochs_ == 0 and auto.warmup_epochs_ == plain.warmup_epochs_ == 1
    np.testing.assert_array_equal(
        auto.predict_proba(case.X_test), plain.predict_proba(case.X_test)
    )


def _check(case, **kwargs):
    kwargs.setdefault("max_rows", 10_000)
    return trusted_set_check(
        lambda: MLP(case.X.shape[1], 10),
        lambda params: torch.optim.Adam(params, lr=1e-3),
        case.X_meta,
        case.y_meta,
        case.X,
        case.y_noisy,
        epochs=50,
        batch_size=64,
        device="cpu",
        seed=0,
        **kwargs,
    )


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.8])
def test_the_check_estimates_the_share_of_right_labels(rate):
    case = make_case("symmetric", rate)
    check = _check(case)
    assert abs(check["estimated_label_accuracy"] - case.noisy_accuracy) < 0.05
    assert check["trusted_cv_accuracy"] > 0.8
    assert check["pretrain"] == (check["estimated_label_accuracy"] < check["trusted_cv_accuracy"])


def test_the_check_leaves_the_random_state_and_the_arrays_alone(sym40):
    before = [a.copy() for a in (sym40.X_meta, sym40.y_meta, sym40.X, sym40.y_noisy)]
    state = torch.get_rng_state()
    full = _check(sym40)
    assert torch.equal(torch.get_rng_state(), state)
    for a, b in zip(before, (sym40.X_meta, sym40.y_meta, sym40.X, sym40.y_noisy)):
        np.testing.assert_array_equal(a, b)
    assert _check(sym40) == full  # seeded: the same figures again
    sampled = _check(sym40, max_rows=400)  # scores a random 400 of the 1157 noisy rows
    assert sampled["noisy_label_agreement"] != full["noisy_label_agreement"]
    assert abs(sampled["estimated_label_accuracy"] - full["estimated_label_accuracy"]) < 0.08


def test_the_check_needs_two_trusted_rows_of_each_class(sym40):
    y_meta = sym40.y_meta.copy()
    lone = np.flatnonzero(y_meta == 3)[1:]
    keep = np.setdiff1d(np.arange(len(y_meta)), lone)  # class 3 keeps one trusted row
    case = copy.copy(sym40)
    case.X_meta, case.y_meta = sym40.X_meta[keep], y_meta[keep]
    check = _check(case)
    assert not check["pretrain"] and check["n_splits"] == 0
    assert "single trusted row" in check["reason"]


def test_a_method_default_applies_only_where_the_trusted_rows_are_trained_on(sym40, monkeypatch):
    from sklearn_noisy.methods import MFRW

    monkeypatch.setattr(MFRW, "default_pretrain_epochs", 7)
    assert _fit(sym40, method="mfrw", max_epochs=1).pretrain_epochs_ == 7
    assert _fit(sym40, method="mfrw", max_epochs=1, train_on_meta=False).pretrain_epochs_ == 0
    assert _fit(sym40, method="mfrw", max_epochs=1, warmup_epochs="auto").pretrain_epochs_ == 0
    no_trusted = MetaLabelCorrectionClassifier(
        method="mfrw", max_epochs=1, meta_fallback="noisy_subset", random_state=0
    )
    with pytest.warns(NoTrustedSetWarning):  # the meta set is noisy rows: not pre-trained on
        assert no_trusted.fit(sym40.X, sym40.y_noisy).pretrain_epochs_ == 0
    # asked for explicitly, it runs even where the trusted rows are not trained on
    clf = _fit(sym40, method="mfrw", max_epochs=1, train_on_meta=False, pretrain_epochs=5)
    assert clf.pretrain_epochs_ == 5


def test_glc_pretrains_its_second_stage_only(sym40):
    """glc's first stage estimates T from predictions on the trusted set: it must
    not have trained on it, so T is the same with and without pre-training."""
    pre = _fit(sym40, method="glc", pretrain_epochs=30)
    plain = _fit(sym40, method="glc", pretrain_epochs=0)
    np.testing.assert_array_equal(pre.net_.meta_module_.T, plain.net_.meta_module_.T)
    assert pre.pretrain_epochs_ == 30
    assert not np.array_equal(pre.predict_proba(sym40.X_test), plain.predict_proba(sym40.X_test))


@pytest.mark.parametrize("pretrain", [10, "auto"])
def test_auto_warmup_with_explicit_pretraining_is_an_error(sym40, pretrain):
    with pytest.raises(ValueError, match=f"pretrain_epochs={pretrain!r} cannot be combined"):
        _fit(sym40, method="mlc", warmup_epochs="auto", pretrain_epochs=pretrain)


@pytest.mark.parametrize("bad", [-1, 2.5, "200", "Auto"])
def test_bad_pretrain_epochs_is_refused_by_name(sym40, bad):
    with pytest.raises(InvalidParameterError, match="pretrain_epochs"):
        _fit(sym40, method="mfrw", pretrain_epochs=bad)


def test_a_seeded_fit_with_pretraining_is_reproducible_and_pickles(sym40):
    a = _fit(sym40, method="mfrw", max_epochs=2, pretrain_epochs=10)
    b = _fit(sym40, method="mfrw", max_epochs=2, pretrain_epochs=10)
    np.testing.assert_array_equal(a.predict_proba(sym40.X_test), b.predict_proba(sym40.X_test))
    assert a.pretrain_loss_curve_ == b.pretrain_loss_curve_
    loaded = pickle.loads(pickle.dumps(a))
    assert loaded.pretrain_loss_curve_ == a.pretrain_loss_curve_
    np.testing.assert_array_equal(loaded.predict(sym40.X_test), a.predict(sym40.X_test))
    assert clone(a).get_params()["pretrain_epochs"] == 10


def test_verbose_reports_the_pretraining(sym40, capsys):
    _fit(sym40, method="mfrw", max_epochs=1, pretrain_epochs=4, verbose=1)
    assert "pre-trained on the 100 trusted rows for 4 epochs" in capsys.readouterr().out
    _fit(sym40, method="mfrw", max_epochs=1, pretrain_epochs="auto", verbose=1)
    out = capsys.readouterr().out
    assert "pretrain_epochs='auto': the trusted rows alone predict" in out
    assert "pre-trained on the 100 trusted rows for 200 epochs" in out


@pytest.mark.parametrize(
    "a, c, k", [(0.9, 0.2, 10), (0.26, 0.2, 10), (0.26, 0.8, 10), (0.6, 0.5, 3)]
)
def test_the_corrected_estimate_removes_chance_coincidences(a, c, k):
    """Fold networks right on a share ``a`` of rows, labels right on ``c``, mistakes
    and wrong labels spread evenly over the other classes: the agreement is
    ``a c + (1 - a)(1 - c) / (K - 1)``; ``r / a`` reads high, the corrected
    estimate reads ``c``."""
    r = a * c + (1 - a) * (1 - c) / (k - 1)
    assert chance_corrected_estimate(a, r, k) == pytest.approx(c)
    assert r / a > c
    assert chance_corrected_estimate(1.0, 0.3, k) == pytest.approx(0.3)  # no mistakes
    assert chance_corrected_estimate(1.0 / k, r, k) is None  # no better than chance
    assert chance_corrected_estimate(a, 0.0, k) == 0.0  # clipped, never negative


@pytest.mark.parametrize("rate", [0.2, 0.8])
def test_the_corrected_estimate_marks_heavy_noise_where_the_trusted_model_is_weak(rate):
    """mnist1d: its 100 trusted rows give a weak model (about a quarter right).
    At 80% symmetric noise ``r / a`` reads far above the true share (above 0.3,
    the cut on it until stop 29), the corrected estimate near it, below the cut;
    at 20% both read above the cut.  Neither says pre-train at 20%."""
    case = make_noisy_case("mnist1d", kind="symmetric", rate=rate, seed=0)
    check = _check(case)
    assert check["trusted_cv_accuracy"] < 0.35
    corrected = check["chance_corrected_estimate"]
    if rate == 0.8:
        assert check["estimated_label_accuracy"] > 0.3 > HEAVY_NOISE_BELOW > corrected
        assert abs(corrected - case.noisy_accuracy) < 0.07
    else:
        assert corrected > 0.5 and check["estimated_label_accuracy"] > 0.5
        assert not check["pretrain"]
