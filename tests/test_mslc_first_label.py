"""mslc's first soft label: the pre-trained model's posterior where most labels are wrong."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from sklearn_noisy import MetaLabelCorrectionClassifier
from sklearn_noisy.methods import MSLC
from sklearn_noisy.methods.mslc import POSTERIOR_BELOW, _label_posterior
from tests.conftest import watch_trusted_set_check


class _FirstSoftLabels(Callback):
    """The soft labels the correction starts from, read as its first epoch begins."""

    def on_epoch_begin(self, net, **kwargs):
        if len(net.history) == net.warmup_epochs + 1:
            self.soft_ = net.meta_module_.soft.clone()


def _fit(case, first_label="auto", **kw):
    """A short mslc fit (10 warm-up epochs, one corrected), with its first soft labels."""
    kw = {"max_epochs": 11, "warmup_epochs": 10, "random_state": 0, "device": "cpu", **kw}
    clf = MetaLabelCorrectionClassifier(
        method=MSLC(first_label=first_label), callbacks=[_FirstSoftLabels()], **kw
    ).fit(case.X, case.y_noisy, X_meta=case.X_meta, y_meta=case.y_meta)
    probe = next(cb for _, cb in clf.net_.callbacks_ if isinstance(cb, _FirstSoftLabels))
    return clf, probe.soft_[: len(case.y_noisy)].argmax(1).numpy()


def test_posterior_is_bayes_rule_under_symmetric_noise():
    proba = torch.tensor([[0.1] * 10, [0.99] + [0.01 / 9] * 9, [0.5, 0.5] + [0.0] * 8])
    y = torch.tensor([3, 1, 1])
    post = _label_posterior(proba, y, 0.8)
    torch.testing.assert_close(post.sum(1), torch.ones(3))
    # a uniform model: the label decides; likelihood ratio 0.8 / (0.2 / 9) = 36
    assert post[0].argmax() == 3 and post[0, 3] == pytest.approx(36 / 45)
    # the model's 0.99 against the label's 0.01 / 9 outweighs a ratio of 36
    assert post[1].argmax() == 0
    assert post[2].argmax() == 1 and post[2, 1] == pytest.approx(36 / 37)
    # labels right no more often than chance say nothing: the model's own probabilities
    torch.testing.assert_close(_label_posterior(proba, y, 0.05), proba)


def test_at_heavy_noise_the_correction_starts_from_the_pretrained_model(sym80):
    """Digits, 80% symmetric noise: the check pre-trains and estimates about 20% right
    labels, and the first soft labels are the pre-trained model's posterior, far more
    often right than the warm-up's average prediction, trained on those labels."""
    auto, first = _fit(sym80)
    warmup, first_warmup = _fit(sym80, first_label="warmup")
    check = auto.pretrain_check_
    assert check["pretrain"] and check["chance_corrected_estimate"] < POSTERIOR_BELOW
    assert auto.first_label_ == "posterior" and warmup.first_label_ == "warmup"
    right = (first == sym80.y_true).mean()
    assert right > sym80.noisy_accuracy + 0.5
    assert right > (first_warmup == sym80.y_true).mean() + 0.04  # measured 0.907 vs 0.835
    # the rest of the fit follows from that start
    assert not np.array_equal(auto.predict_proba(sym80.X_test), warmup.predict_proba(sym80.X_test))


def test_where_most_labels_are_right_the_start_is_the_warmup_average(sym40):
    """Digits, 40% noise: an estimate above the cut, and the default fits as
    ``first_label="warmup"`` to the bit."""
    auto, first = _fit(sym40)
    warmup, first_warmup = _fit(sym40, first_label="warmup")
    assert auto.pretrain_check_["chance_corrected_estimate"] >= POSTERIOR_BELOW
    assert auto.first_label_ == "warmup"
    np.testing.assert_array_equal(first, first_warmup)
    np.testing.assert_array_equal(
        auto.predict_proba(sym40.X_test), warmup.predict_proba(sym40.X_test)
    )


@pytest.mark.parametrize(
    "estimate, expected", [(POSTERIOR_BELOW - 0.01, "posterior"), (POSTERIOR_BELOW, "warmup")]
)
def test_the_cut_is_on_the_checks_estimate(sym40, monkeypatch, estimate, expected):
    watch_trusted_set_check(monkeypatch, estimate=estimate)
    clf, _ = _fit(sym40, max_epochs=1, warmup_epochs=0)
    assert clf.net_.train_info.label_accuracy == estimate
    assert clf.first_label_ == expected


@pytest.mark.parametrize("pretrain_epochs", [0, 20])
def test_without_the_check_the_start_is_the_warmup_average(sym80, pretrain_epochs):
    """No pre-training, or a given number of its epochs (no check, so no estimate of
    the share of right labels): ``"auto"`` starts from the warm-up average."""
    auto, first = _fit(sym80, pretrain_epochs=pretrain_epochs)
    warmup, first_warmup = _fit(sym80, pretrain_epochs=pretrain_epochs, first_label="warmup")
    assert auto.pretrain_check_ is None and auto.net_.train_info.label_accuracy is None
    assert auto.first_label_ == "warmup"
    np.testing.assert_array_equal(first, first_warmup)
    np.testing.assert_array_equal(
        auto.predict_proba(sym80.X_test), warmup.predict_proba(sym80.X_test)
    )


def test_a_posterior_started_fit_survives_pickling(sym40, monkeypatch):
    watch_trusted_set_check(monkeypatch, estimate=0.2)
    clf, _ = _fit(sym40, max_epochs=3, warmup_epochs=1)
    assert clf.first_label_ == "posterior"
    loaded = pickle.loads(pickle.dumps(clf))
    assert loaded.first_label_ == "posterior"
    np.testing.assert_array_equal(
        loaded.predict_proba(sym40.X_test), clf.predict_proba(sym40.X_test)
    )


@pytest.mark.parametrize("bad", ["trusted", "", None, True])
def test_invalid_first_label_raises(sym40, bad):
    clf = MetaLabelCorrectionClassifier(method=MSLC(first_label=bad), max_epochs=1)
    with pytest.raises(ValueError, match="first_label"):
        clf.fit(sym40.X, sym40.y_noisy, X_meta=sym40.X_meta, y_meta=sym40.y_meta)
