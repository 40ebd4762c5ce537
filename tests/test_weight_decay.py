"""The ``weight_decay`` parameter: per-method defaults, the optimizer, the virtual step."""

import numpy as np
import pytest
import torch
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_noisy import MetaLabelCorrectionClassifier


def _fit(case, method, **kw):
    kw = {"max_epochs": 2, "warmup_epochs": 0, **kw}
    clf = MetaLabelCorrectionClassifier(method=method, random_state=0, device="cpu", **kw)
    return clf.fit(case.X, case.y_noisy, X_meta=case.X_meta, y_meta=case.y_meta)


def _decay(clf):
    return [g.get("weight_decay", 0.0) for g in clf.net_.optimizer_.param_groups]


@pytest.mark.parametrize(
    "method, expected",
    [("ce", 0.0), ("glc", 5e-4), ("mlc", 5e-4), ("mslc", 0.0), ("mfrw", 0.0)],
)
def test_default_weight_decay_is_the_methods(pair40, method, expected):
    clf = _fit(pair40, method)
    assert _decay(clf) == [expected]
    if getattr(clf.net_, "meta_optimizer_", None) is not None:  # meta parameters: none
        assert all(g["weight_decay"] == 0 for g in clf.net_.meta_optimizer_.param_groups)


def test_weight_decay_argument_and_optimizer_params(pair40):
    assert _decay(_fit(pair40, "mlc", weight_decay=0.0)) == [0.0]
    assert _decay(_fit(pair40, "mslc", weight_decay=1e-3)) == [1e-3]
    assert _decay(_fit(pair40, "mlc", optimizer_params={"weight_decay": 2e-3})) == [2e-3]
    with pytest.raises(ValueError, match="weight_decay is given twice"):
        _fit(pair40, "mlc", weight_decay=1e-3, optimizer_params={"weight_decay": 1e-3})
    with pytest.raises(InvalidParameterError, match="'weight_decay' parameter"):
        _fit(pair40, "mlc", weight_decay=-1.0)


def test_weight_decay_shrinks_the_network(pair40):
    def norm(clf):
        return sum(float(p.detach().pow(2).sum()) for p in clf.net_.module_.parameters())

    free = _fit(pair40, "mlc", weight_decay=0.0, max_epochs=5)
    decayed = _fit(pair40, "mlc", weight_decay=0.05, max_epochs=5)
    assert norm(decayed) < 0.8 * norm(free)


def test_the_virtual_step_applies_the_decay(pair40, monkeypatch):
    """The look-ahead point of each meta step moves with the decay, as the real step does."""
    import sklearn_noisy._engine as engine

    seen = []
    real = engine._lookahead

    def spy(optimizer, param, grad):
        out, moments = real(optimizer, param, grad)
        seen.append(float((out - param).detach().abs().sum()))
        return out, moments

    monkeypatch.setattr(engine, "_lookahead", spy)
    _fit(pair40, "mlc", weight_decay=0.0, max_epochs=1)
    free, seen[:] = list(seen), []
    _fit(pair40, "mlc", weight_decay=10.0, max_epochs=1)
    assert len(seen) == len(free) > 0
    # the first meta step sees the same parameters and gradients in both fits,
    # so only the decay term separates the two look-ahead steps
    assert seen[0] > free[0] * 1.01
    assert np.isfinite(seen).all()


class _PlainSGD(torch.optim.Optimizer):
    """An optimizer without a ``weight_decay`` argument."""

    def __init__(self, params, lr=0.01):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])


def test_method_default_skips_an_optimizer_without_weight_decay(pair40):
    clf = _fit(pair40, "mlc", optimizer=_PlainSGD)
    assert "weight_decay" not in clf.net_.optimizer_.param_groups[0]
    with pytest.raises(TypeError, match="weight_decay"):  # asked for: the optimizer says no
        _fit(pair40, "mlc", optimizer=_PlainSGD, weight_decay=1e-3)
