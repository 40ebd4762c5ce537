"""``mlc``: Meta Loss Correction (Wang et al.), a transition matrix learned by meta-gradient."""

from __future__ import annotations

import math

import torch
from torch import nn

from ._base import MetaMethod, forward_corrected_nll, posterior_given_noisy, register


class _TransitionLogits(nn.Module):
    """T = softmax(W) row-wise; W is the meta parameter."""

    def __init__(self, n_classes, init_diagonal):
        super().__init__()
        off = (1.0 - init_diagonal) / max(n_classes - 1, 1)
        w = torch.full((n_classes, n_classes), math.log(max(off, 1e-6)))
        w.fill_diagonal_(math.log(init_diagonal))
        self.weight = nn.Parameter(w)

    def log_T(self):
        return torch.log_softmax(self.weight, dim=1)


@register
class MLC(MetaMethod):
    """Meta Loss Correction: learn the noise transition matrix T by meta-gradient.

    The classifier is trained with the forward-corrected loss
    ``-log (f(x) @ T)[y_noisy]``; T is the meta parameter, updated each step by
    the gradient of the trusted-set loss of the look-ahead network (the paper's
    Virtual-Train / Meta-Train / Actual-Train, Algorithm 1).

    Choices where the paper and its reference code leave room:

    * T is kept across iterations (the paper), not reset every step (the
      reference code).
    * T is parameterised row-wise as ``softmax(W)`` (row = true class, rows sum
      to 1) instead of the paper's clip-and-normalise (Eq. 9-10); the softmax
      is smooth, cannot produce an all-zero row, and stays row-stochastic.
    * The corrected loss is computed in log space (``logsumexp``), never taking
      the log of a vanishing probability.
    * T starts at ``init_diagonal`` on the diagonal and the rest spread evenly.
    * The learned T is ``transition_matrix_``; ``corrected_proba_[n]`` is the
      posterior ``f(x_n) * T[:, y_n]`` normalised.

    Parameters
    ----------
    init_diagonal : float, default=0.5
        Initial diagonal of T.
    warmup_fraction : float, default=0.1
        Share of ``max_epochs`` trained with plain cross-entropy before meta
        steps start, when the classifier's ``warmup_epochs`` is ``None``.
    """

    name = "mlc"
    uses_meta_step = True
    learns_transition_matrix = True

    def __init__(self, init_diagonal=0.5, warmup_fraction=0.1):
        self.init_diagonal = init_diagonal
        self.warmup_fraction = warmup_fraction

    def default_warmup(self, max_epochs):
        return int(round(self.warmup_fraction * max_epochs))

    def build(self, net, info):
        return _TransitionLogits(info.n_classes, self.init_diagonal)

    def train_loss(self, net, forward, X, y, idx, *, virtual):
        logits = forward(X)
        log_T = net.meta_module_.log_T()
        if not virtual:
            log_T = log_T.detach()
        return forward_corrected_nll(logits, log_T, y), logits

    def correct(self, net, proba, y, idx):
        return posterior_given_noisy(proba, net.meta_module_.log_T().exp(), y)

    def transition_matrix(self, net, corrected_proba, y):
        with torch.no_grad():
            return net.meta_module_.log_T().exp().cpu().double().numpy()
