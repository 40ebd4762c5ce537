"""The virtual step mirrors the real optimizer's step (weight decay included)."""

import pytest
import torch

from sklearn_noisy._engine import _lookahead, _Step

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
    predicted = _lookahead(opt, param, grad).detach()
    param.grad = grad
    opt.step()
    torch.testing.assert_close(predicted, param.detach(), rtol=1e-5, atol=1e-6)


def test_lookahead_without_decay_is_unchanged_by_the_decay_code():
    """With no weight decay the step is the one before decay was mirrored: lr * scale * g."""
    torch.manual_seed(0)
    param = torch.nn.Parameter(torch.randn(4))
    opt = torch.optim.SGD([param], lr=0.1)
    grad = torch.randn(4)
    assert torch.equal(_lookahead(opt, param, grad), param - 0.1 * grad)


def test_lookahead_keeps_the_graph_through_the_gradient_only():
    meta = torch.tensor(2.0, requires_grad=True)
    param = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([param], lr=0.1, weight_decay=0.5)
    moved = _lookahead(opt, param, meta * torch.ones(3))
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
    assert torch.equal(_lookahead(opt, param, grad).detach(), expected)
