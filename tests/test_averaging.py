"""The ``average`` parameter: the fitted network is the mean of its last epochs."""

import pickle

import pytest
import torch
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_noisy import MetaLabelCorrectionClassifier
from sklearn_noisy.methods import MLC
from tests.conftest import interrupt_fits_after


def _fit(case, method="mlc", **kw):
    kw = {"max_epochs": 6, "warmup_epochs": 2, "random_state": 0, "device": "cpu", **kw}
    clf = MetaLabelCorrectionClassifier(method=method, **kw)
    return clf.fit(case.X, case.y_noisy, X_meta=case.X_meta, y_meta=case.y_meta)


def _weights(clf):
    return {k: v.detach().clone() for k, v in clf.net_.module_.state_dict().items()}


@pytest.mark.parametrize(
    "method, device",
    [
        ("mlc", "cpu"),
        ("ce", "cpu"),
        ("mslc", "cpu"),
        pytest.param("mlc", "cuda", marks=pytest.mark.cuda),
    ],
)
def test_the_model_is_the_mean_of_the_last_epochs(sym40, method, device, monkeypatch):
    """Averaging leaves training alone and returns the mean of the window's weights
    (on CUDA the running mean stays on the GPU, with the module)."""
    from sklearn_noisy._engine import BiLevelNet

    snapshots = []
    original = BiLevelNet.on_epoch_end

    def record(self, net, **kwargs):
        original(self, net, **kwargs)
        snapshots.append({k: v.detach().clone() for k, v in self.module_.state_dict().items()})

    monkeypatch.setattr(BiLevelNet, "on_epoch_end", record)
    plain = _fit(sym40, method, average=0, device=device)
    plain_epochs = snapshots[:]
    snapshots.clear()
    averaged = _fit(sym40, method, average=0.5, device=device)  # the last 3 of 6 epochs
    epochs = snapshots[:]  # recorded before the averaging callback saw each epoch
    assert plain.averaged_epochs_ == 0 and averaged.averaged_epochs_ == 3

    mean = {k: torch.stack([s[k] for s in epochs[3:]]).mean(0) for k in epochs[-1]}
    got = _weights(averaged)
    assert all(v.device.type == device for v in got.values())
    for k, v in mean.items():
        torch.testing.assert_close(got[k], v, rtol=1e-5, atol=1e-6)
    # the model really differs from its last epoch's; the plain fit keeps its last
    assert any(not torch.equal(got[k], epochs[-1][k]) for k in got)
    last = _weights(plain)
    for k, v in last.items():
        torch.testing.assert_close(v, plain_epochs[-1][k], rtol=0, atol=0)
    if device == "cpu":  # CUDA's double backward is not bit-reproducible
        # training itself was the same: the same weights and losses, epoch by epoch
        for a, b in zip(plain_epochs, epochs):
            assert all(torch.equal(a[k], b[k]) for k in a)
        assert plain.history_[:, "train_loss"] == averaged.history_[:, "train_loss"]
        # and the predictions come from the averaged weights
        X = sym40.X_test
        assert (averaged.predict_proba(X) != plain.predict_proba(X)).any()


def test_the_window_never_reaches_into_the_warmup(sym40):
    assert _fit(sym40, "mlc", average=1.0).averaged_epochs_ == 4  # 6 epochs, 2 of warm-up
    assert _fit(sym40, "mlc", average=0.1).averaged_epochs_ == 1  # ceil(0.6)
    assert _fit(sym40, "ce", average=1.0).averaged_epochs_ == 6  # ce has no warm-up
    assert _fit(sym40, "mlc", average=1.0, warmup_epochs=6).averaged_epochs_ == 0


def test_an_auto_warmup_moves_the_window_with_it(sym40):
    """With warmup_epochs="auto" the window starts after the warm-up that actually ran."""
    method = MLC(warmup_fraction=0.5)  # a cap of 6 epochs
    clf = _fit(sym40, method, average=1.0, warmup_epochs="auto", max_epochs=12)
    assert 1 <= clf.warmup_epochs_ <= 6
    assert clf.averaged_epochs_ == clf.n_iter_ - clf.warmup_epochs_


def test_averaging_with_batch_norm_keeps_running_statistics_finite(sym40):
    clf = _fit(sym40, "mlc", average=0.5, module_params={"batch_norm": True})
    state = clf.net_.module_.state_dict()
    stats = [v for k, v in state.items() if "running_" in k]
    assert stats and all(torch.isfinite(v).all() for v in stats)
    assert (clf.predict(sym40.X_test) == sym40.y_test).mean() > 0.5


def test_no_copy_of_the_weights_is_pickled(sym40):
    clf = _fit(sym40, "mlc", average=0.5)
    callback = next(cb for _, cb in clf.net_.callbacks_ if hasattr(cb, "n_averaged_"))
    assert callback._mean is None
    again = pickle.loads(pickle.dumps(clf))
    assert (again.predict_proba(sym40.X_test) == clf.predict_proba(sym40.X_test)).all()


def test_an_interrupted_fit_keeps_the_model_trained_so_far(sym40, monkeypatch):
    interrupt_fits_after(monkeypatch, 5)
    with pytest.warns(UserWarning, match="interrupted"):
        clf = _fit(sym40, "mlc", average=0.5)
    assert clf.n_iter_ == 4 and clf.averaged_epochs_ == 0


def test_bad_average_is_refused_by_name(sym40):
    with pytest.raises(InvalidParameterError, match="'average' parameter"):
        _fit(sym40, "mlc", average=1.5)
    with pytest.raises(ValueError, match="average=0.5 .*early_stopping"):
        _fit(sym40, "mlc", average=0.5, early_stopping=True)


def test_defaults_average_every_method_but_ce(sym40):
    """0.2 of max_epochs for most correcting methods, 0.5 for glc and mfrw; ce, the
    baseline, keeps its last epoch."""
    for method in ["mlc", "mslg"]:
        assert _fit(sym40, method, max_epochs=10).averaged_epochs_ == 2
    for method in ["glc", "mfrw"]:  # mfrw: its warm-up of 2 epochs is outside
        assert _fit(sym40, method, max_epochs=10).averaged_epochs_ == 5
    assert _fit(sym40, "ce", max_epochs=10).averaged_epochs_ == 0
    # with early stopping the default is off: it keeps one epoch's weights instead
    stopped = _fit(sym40, "mlc", early_stopping=True, max_epochs=10)
    assert stopped.averaged_epochs_ == 0 and stopped.best_epoch_ is not None
