"""The virtual step mirrors the real optimizer's step (weight decay included)."""

import pytest
import torch

from sklearn_noisy._engine import (
    _adam_from_lookahead_ok,
    _adam_step_from_lookahead,
    _lookahead,
    _Step,
)

OPTIMIZERS = [
    (torch.optim.SGD, {}),
    (torch.optim.SGD, {"weight_decay": 0.1}),
    # beta1 = 0: no first moment, so Adam's step is the preconditioned gradient
    (torch.optim.Adam, {"betas": (0.0, 0.999)}),
    (torch.optim.Adam, {"betas": (0.0, 0.999), "weight_decay": 0.1}),
    (torch.optim.AdamW, {"betas": (0.0, 0.999), "weight_decay": 0.1}),
    (torch.optim.RMSprop, {"weight_decay": 0.1}),
]


@pytest.mark.parametrize("optimizer, kwargs", OPTIMIZERS)
def test_lookahead_equals_the_real_step(optimizer, kwargs):
    torch.manual_seed(0)
    param = torch.nn.Parameter(torch.randn(5, 3))
    opt = optimizer([param], lr=0.05, **kwargs)
    param.grad = torch.randn(5, 3)
    opt.step()  # a real step first, so that Adam / RMSprop have their state
    grad = torch.randn(5, 3)
    predicted = _lookahead(opt, param, grad)[0].detach()
    param.grad = grad
    opt.step()
    torch.testing.assert_close(predicted, param.detach(), rtol=1e-5, atol=1e-6)


def test_lookahead_without_decay_is_unchanged_by_the_decay_code():
    """With no weight decay the step is the one before decay was mirrored: lr * scale * g."""
    torch.manual_seed(0)
    param = torch.nn.Parameter(torch.randn(4))
    opt = torch.optim.SGD([param], lr=0.1)
    grad = torch.randn(4)
    assert torch.equal(_lookahead(opt, param, grad)[0], param - 0.1 * grad)


def test_lookahead_keeps_the_graph_through_the_gradient_only():
    meta = torch.tensor(2.0, requires_grad=True)
    param = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([param], lr=0.1, weight_decay=0.5)
    moved, _ = _lookahead(opt, param, meta * torch.ones(3))
    (d_meta,) = torch.autograd.grad(moved.sum(), meta)
    # d/d meta of sum(param - lr * (meta + decay * param)) = -lr * 3
    assert d_meta.item() == pytest.approx(-0.3)


def test_step_function_matches_addcmul_to_the_bit_value_and_gradient():
    """The look-ahead's own autograd Function gives addcmul's value and gradient exactly."""
    torch.manual_seed(0)
    start = torch.randn(64, 32)
    scale = torch.rand(64, 32)
    out_grad = torch.randn(64, 32)
    g1 = torch.randn(64, 32, requires_grad=True)
    g2 = g1.detach().clone().requires_grad_(True)
    ours = _Step.apply(start, g1, scale.mul(-1.0))
    reference = torch.addcmul(start, g2, scale, value=-1.0)
    assert torch.equal(ours, reference)
    (d_ours,) = torch.autograd.grad(ours, g1, out_grad)
    (d_ref,) = torch.autograd.grad(reference, g2, out_grad)
    assert torch.equal(d_ours, d_ref)


def test_lookahead_adds_the_decay_the_way_the_optimizer_does():
    """Plain SGD with decay: the look-ahead's gradient is ``grad.add(param, alpha=decay)``."""
    torch.manual_seed(0)
    param = torch.nn.Parameter(torch.randn(200))
    opt = torch.optim.SGD([param], lr=0.1, weight_decay=0.3)
    grad = torch.randn(200)
    expected = param.detach() - 0.1 * grad.add(param.detach(), alpha=0.3)
    assert torch.equal(_lookahead(opt, param, grad)[0].detach(), expected)


ADAMS = [
    (torch.optim.Adam, {}),
    (torch.optim.Adam, {"weight_decay": 0.1}),
    (torch.optim.AdamW, {"weight_decay": 0.1}),
]


@pytest.mark.parametrize("optimizer, kwargs", ADAMS)
def test_adam_step_from_the_lookahead_is_adams_own_step(optimizer, kwargs):
    """With the look-ahead's gradient reused, the step from its moments is Adam's step."""
    torch.manual_seed(0)
    ours = torch.nn.Parameter(torch.randn(40, 7))
    theirs = torch.nn.Parameter(ours.detach().clone())
    opt_ours = optimizer([ours], lr=0.05, **kwargs)
    opt_theirs = optimizer([theirs], lr=0.05, **kwargs)
    assert _adam_from_lookahead_ok(opt_ours)
    for step in range(6):
        grad = torch.randn(40, 7)
        _, moments = _lookahead(opt_ours, ours, grad)
        if step == 0:  # no second moment yet: the optimizer's own step
            assert moments is None
            ours.grad = grad
            opt_ours.step()
        else:
            _adam_step_from_lookahead(opt_ours, [(ours, moments)])
        theirs.grad = grad.clone()
        opt_theirs.step()
        torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=1e-5, atol=1e-7)
        mine, ref = opt_ours.state[ours], opt_theirs.state[theirs]
        assert float(mine["step"]) == float(ref["step"]) == step + 1
        torch.testing.assert_close(mine["exp_avg"], ref["exp_avg"], rtol=1e-6, atol=0)
        torch.testing.assert_close(mine["exp_avg_sq"], ref["exp_avg_sq"], rtol=1e-6, atol=0)


class _MyAdam(torch.optim.Adam):
    """A subclass, which may change the step."""


def test_adam_from_the_lookahead_only_for_the_step_it_reproduces():
    def make(opt, **kw):
        return opt([torch.nn.Parameter(torch.ones(2))], lr=0.1, **kw)

    assert _adam_from_lookahead_ok(make(torch.optim.Adam))
    assert _adam_from_lookahead_ok(make(torch.optim.AdamW, weight_decay=0.1))
    assert not _adam_from_lookahead_ok(make(torch.optim.Adam, amsgrad=True))
    assert not _adam_from_lookahead_ok(make(torch.optim.Adam, maximize=True))
    assert not _adam_from_lookahead_ok(make(torch.optim.RMSprop))
    assert not _adam_from_lookahead_ok(make(torch.optim.SGD))
    assert not _adam_from_lookahead_ok(make(_MyAdam))
    hooked = make(torch.optim.Adam)
    hooked.register_step_post_hook(lambda *a: None)
    assert not _adam_from_lookahead_ok(hooked)


def _count_steps(monkeypatch):
    import sklearn_noisy._engine as engine

    calls = {"lookahead": 0, "adam": 0}
    real_fast = engine._adam_step_from_lookahead
    real_step = torch.optim.Adam.step

    def fast(optimizer, steps):
        calls["lookahead"] += 1
        return real_fast(optimizer, steps)

    def step(self, *args, **kwargs):
        calls["adam"] += 1
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(engine, "_adam_step_from_lookahead", fast)
    monkeypatch.setattr(torch.optim.Adam, "step", step)
    return calls


def _fit_mlc(case, **kw):
    from sklearn_noisy import MetaLabelCorrectionClassifier
    from sklearn_noisy.methods import MLC

    clf = MetaLabelCorrectionClassifier(
        method=MLC(init_diagonal=0.5), max_epochs=2, warmup_epochs=0, random_state=0, **kw
    )
    return clf.fit(case.X, case.y_noisy, X_meta=case.X_meta, y_meta=case.y_meta)


def test_the_actual_step_takes_the_lookaheads_adam_moments(pair40, monkeypatch):
    calls = _count_steps(monkeypatch)
    clf = _fit_mlc(pair40)
    n_batches = sum(len(h["batches"]) for h in clf.net_.history)
    # Adam's own step: the first batch (no moments yet) and the meta optimizer's steps
    assert calls["lookahead"] == n_batches - 1
    assert calls["adam"] == 1 + n_batches
    assert clf.score(pair40.X_test, pair40.y_test) > 0.5


def test_a_gradient_changed_by_a_callback_takes_adams_own_step(pair40, monkeypatch):
    from skorch.callbacks import GradientNormClipping

    calls = _count_steps(monkeypatch)
    clf = _fit_mlc(pair40, callbacks=[GradientNormClipping(1e-3)])
    n_batches = sum(len(h["batches"]) for h in clf.net_.history)
    assert calls["lookahead"] == 0  # the clipped gradient is not the look-ahead's
    assert calls["adam"] == 2 * n_batches
