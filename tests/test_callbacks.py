"""``lr_schedule`` and ``callbacks``: the learning rate follows the schedule, the
look-ahead with it, and the user's skorch callbacks run on copies."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback, LRScheduler
from torch.optim.lr_scheduler import StepLR

from sklearn_noisy import MetaLabelCorrectionClassifier, _engine


def _fit(case, **params):
    params.setdefault("max_epochs", 4)
    params.setdefault("random_state", 0)
    clf = MetaLabelCorrectionClassifier(device="cpu", **params)
    return clf.fit(case.X, case.y_noisy, X_meta=case.X_meta, y_meta=case.y_meta)


def _cosine(lr, epoch, total):
    return lr * (1 + math.cos(math.pi * epoch / total)) / 2


class _EpochCounter(Callback):
    """Counts the epochs it saw (a fitted attribute, ``n_epochs_``)."""

    def initialize(self):
        self.n_epochs_ = 0
        return self

    def on_epoch_end(self, net, **kwargs):
        self.n_epochs_ += 1


@pytest.mark.parametrize("method", ["mlc", "glc"])
def test_cosine_schedule_sets_each_epochs_rate(sym40, method):
    clf = _fit(sym40, method=method, lr=2e-3, max_epochs=5, lr_schedule="cosine")
    expected = [_cosine(2e-3, e, 5) for e in range(5)]
    np.testing.assert_allclose(clf.history_[:, "event_lr"], expected, rtol=1e-12)
    # the optimizer ends at the rate after the last epoch: cos(pi) -> 0
    assert clf.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    # the meta optimizer is not scheduled
    if clf.net_.meta_optimizer_ is not None:
        assert clf.net_.meta_optimizer_.param_groups[0]["lr"] == clf.net_.meta_lr


def test_constant_schedule_records_no_rate_and_differs_from_cosine(sym40):
    constant = _fit(sym40, method="mslc", max_epochs=3, lr_schedule="constant")
    cosine = _fit(sym40, method="mslc", max_epochs=3, lr_schedule="cosine")
    assert "event_lr" not in constant.history_[-1]
    # the rate falls after the first epoch, and the fitted weights move with it
    w_c = constant.net_.module_.state_dict()
    w_s = cosine.net_.module_.state_dict()
    assert any(not torch.equal(w_c[k], w_s[k]) for k in w_c)


@pytest.mark.parametrize("method", ["ce", "glc", "mlc", "mslc", "mslg", "mfrw", "tmlc"])
def test_default_schedule_is_the_methods(sym40, method):
    clf = _fit(sym40, method=method, max_epochs=2)
    expected = clf.method_.default_lr_schedule
    assert expected == ("cosine" if method == "mslc" else "constant")
    if expected == "cosine":
        np.testing.assert_allclose(clf.history_[:, "event_lr"], [1e-3, 5e-4], rtol=1e-12)
    else:
        assert "event_lr" not in clf.history_[-1]


def test_users_scheduler_replaces_the_methods_default(sym40):
    schedule = LRScheduler(policy=StepLR, step_size=1, gamma=0.1)
    clf = _fit(sym40, method="mslc", max_epochs=3, callbacks=[schedule])
    np.testing.assert_allclose(clf.history_[:, "event_lr"], [1e-3, 1e-4, 1e-5], rtol=1e-9)
    schedulers = [cb for _, cb in clf.net_.callbacks_ if isinstance(cb, LRScheduler)]
    assert len(schedulers) == 1  # the method's cosine schedule was not added


def test_lookahead_reads_the_scheduled_rate(sym40, monkeypatch):
    seen = []
    original = _engine._neg_step_size

    def spy(state, group, grad):
        seen.append(group["lr"])
        return original(state, group, grad)

    monkeypatch.setattr(_engine, "_neg_step_size", spy)
    _fit(sym40, method="mlc", max_epochs=3, warmup_epochs=0, lr_schedule="cosine")
    rates = sorted(set(seen), reverse=True)
    np.testing.assert_allclose(rates, [_cosine(1e-3, e, 3) for e in range(3)], rtol=1e-12)


def test_user_callbacks_run_on_copies(sym40):
    counter = _EpochCounter()
    schedule = LRScheduler(policy=StepLR, step_size=2, gamma=0.5)
    clf = _fit(sym40, method="tmlc", max_epochs=5, callbacks=[schedule, ("count", counter)])
    np.testing.assert_allclose(clf.history_[:, "event_lr"], [1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4])
    fitted = dict(clf.net_.callbacks_)
    assert fitted["count"].n_epochs_ == 5 and fitted["count"] is not counter
    # the objects passed hold no state of the fit
    assert not hasattr(counter, "n_epochs_")
    assert not hasattr(schedule, "lr_scheduler_")
    assert clf.callbacks[1][1] is counter  # the parameter itself is left as given


def test_glc_stages_get_a_copy_each(sym40):
    clf = _fit(sym40, method="glc", max_epochs=3, callbacks=[("count", _EpochCounter())])
    assert dict(clf.net_.callbacks_)["count"].n_epochs_ == 3  # stage 2's copy only


def test_cosine_model_pickles_and_clones(sym40):
    from sklearn.base import clone

    clf = _fit(sym40, method="mlc", max_epochs=2, lr_schedule="cosine")
    again = pickle.loads(pickle.dumps(clf))
    X_test = sym40.X_test
    np.testing.assert_array_equal(again.predict_proba(X_test), clf.predict_proba(X_test))
    schedule = LRScheduler(policy=StepLR, step_size=3)
    twin = clone(MetaLabelCorrectionClassifier(callbacks=[schedule]))
    assert twin.callbacks[0].step_size == 3


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"callbacks": ["print"]}, TypeError, r"callbacks\[0\] is 'print'"),
        ({"callbacks": [_EpochCounter]}, TypeError, r"callbacks\[0\] is the class _EpochCounter"),
        ({"callbacks": [("a", "b", "c")]}, ValueError, r"callbacks\[0\] is a tuple"),
        ({"callbacks": [(1, _EpochCounter())]}, ValueError, r"string name"),
        (
            {"callbacks": [LRScheduler(policy=StepLR, step_size=2)], "lr_schedule": "cosine"},
            ValueError,
            r"LRScheduler and lr_schedule='cosine'",
        ),
        ({"lr_schedule": "linear"}, ValueError, r"lr_schedule"),
        ({"callbacks": "counter"}, ValueError, r"callbacks"),
    ],
)
def test_bad_callbacks_are_refused_by_name(sym40, params, error, match):
    with pytest.raises(error, match=match):
        _fit(sym40, method="ce", max_epochs=1, **params)


def test_schedules_and_callback_lists_are_tunable(pair40):
    from sklearn.model_selection import GridSearchCV

    from sklearn_noisy import TrustedKFold

    X_all, y_all, mask = pair40.all_rows()
    step = LRScheduler(policy=StepLR, step_size=1, gamma=0.5)
    clf = MetaLabelCorrectionClassifier(method="mlc", max_epochs=2, random_state=0, device="cpu")
    grid = GridSearchCV(
        clf,
        {"lr_schedule": ["constant", "cosine"], "callbacks": [None]},
        cv=TrustedKFold(2),
    )
    grid.fit(X_all, y_all, groups=mask, meta_mask=mask)
    assert list(grid.cv_results_["param_lr_schedule"]) == ["constant", "cosine"]
    # a callback list as a grid value: each candidate fits with its own copy
    grid = GridSearchCV(clf, {"callbacks": [None, [step]]}, cv=TrustedKFold(2), refit=False)
    grid.fit(X_all, y_all, groups=mask, meta_mask=mask)
    assert not hasattr(step, "lr_scheduler_")
    best = clf.set_params(callbacks=[step]).fit(X_all, y_all, meta_mask=mask)
    np.testing.assert_allclose(best.history_[:, "event_lr"], [1e-3, 5e-4])
