"""``tmlc``: TMLC-Net, a transferable meta label corrector (Li, 2024)."""

from __future__ import annotations

import copy
import math
import numbers
from types import MappingProxyType

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._base import MetaMethod, recall, register, remember, saturation_excess

__all__ = ["TMLC", "TMLCCorrector", "WEAK_TRUSTED_MODEL_BELOW", "noise_perception"]

_N_INPUTS = 4  # log1p(CNL), log1p(GNL), PE / log C, p(noisy label)
SATURATION_MARGIN = 6.0  # decoder logits beyond it sit where the squashes are (nearly) flat
#: ``min_proba_weight="auto"``: below this cross-validated accuracy of the trusted
#: rows alone (with heavy noise) the prediction is not sharpened (see :class:`TMLC`)
WEAK_TRUSTED_MODEL_BELOW = 0.5


def _is_auto(value):
    return isinstance(value, str) and value == "auto"


def noise_perception(logits, y, n_classes):
    """Normalised Noise Perception of a batch (Eq. 1-4), free of the class count.

    Returns ``(features, proba)``.  ``features`` has one row per sample:
    ``[log1p(CNL), log1p(GNL), PE / log C, p(noisy label)]`` where CNL is the
    loss over the mean loss of the batch's samples with the same noisy label
    (Eq. 1), GNL the loss over the batch mean loss (Eq. 2) and PE the
    prediction entropy (Eq. 3).  The noisy-label one-hot (Eq. 4) enters as its
    projection on the prediction here and class-wise in the decoder.
    """
    log_p = F.log_softmax(logits, dim=1)
    p = log_p.exp()
    loss = -log_p.gather(1, y[:, None])[:, 0]
    sums = torch.zeros(n_classes, dtype=loss.dtype, device=loss.device).index_add_(0, y, loss)
    counts = torch.bincount(y, minlength=n_classes).to(loss.dtype)
    class_mean = (sums / counts.clamp_min(1.0))[y]
    cnl = loss / class_mean.clamp_min(1e-8)
    gnl = loss / loss.mean().clamp_min(1e-8)
    entropy = -(p * log_p).sum(1) / math.log(n_classes)
    p_label = p.gather(1, y[:, None])[:, 0]
    feats = torch.stack([torch.log1p(cnl), torch.log1p(gnl), entropy, p_label], 1)
    return feats, p


class TMLCCorrector(nn.Module):
    """The transferable part of TMLC-Net: an LSTM cell and the subclass decoder.

    It holds no per-sample state and nothing sized by the number of classes or
    features of a dataset, so a corrector fitted on one dataset corrects
    another (see :class:`TMLC`).

    * **Time-Series Encoding**: one LSTM step per sample and epoch,
      ``(h, c) <- LSTM(f_t, (h, c))``.  The cell is written with a linear layer
      and pointwise functions, not ``nn.LSTM``: the cuDNN LSTM kernel has no
      double backward, this cell is twice differentiable on every device.
    * **Subclass Decoding**: an MLP on ``h`` gives two per-sample weights
      ``0 <= a <= max_label_logit`` (trust in the noisy label; ``max_label_logit
      * sigmoid``, or a ``softplus`` with no cap) and ``b >= min_proba_weight``
      (trust in, and sharpening of, the model's prediction ``p``); the
      corrected distribution is ``softmax_k(a * onehot(y)_k + b * log p_k)``.
      The noisy-label one-hot enters class-wise, which is what makes the
      decoder apply to any number of classes ``C >= 2``; the output can only
      favour the noisy label or the classes the model already finds likely,
      never an unlikely class.  ``b >= 2`` makes "trust the prediction" mean
      *sharpen* it (a pseudo-label ``p^b``): with ``b = 1`` and ``a = 0`` the
      target equals ``p`` and the soft cross-entropy has zero gradient, a dead
      end the meta-gradient used to drive the corrector into (see
      :class:`TMLC`).  The cap on ``a`` keeps the opposite dead end out of
      reach: an unbounded ``a`` grew to 30-70 on some runs, the target became
      the noisy one-hot and the softmax saturated.

    Attributes
    ----------
    schedule : list of (float, dict)
        Snapshots ``(training progress in [0, 1), state_dict)`` taken while the
        corrector was meta-trained; a transferred corrector replays them at the
        same progress of the new training (Algorithm 2).  Empty for a new one.

    Parameters
    ----------
    hidden_size : int, default=64
        LSTM hidden units.
    decoder_size : int, default=64
        Hidden units of the decoder MLP.
    init_label_logit : float, default=4.0
        Initial ``a``: the decoder starts by trusting the noisy label.
    init_proba_weight : float, default=2.1
        Initial ``b`` (above ``min_proba_weight``).
    min_proba_weight : float, default=2.0
        Floor of ``b`` (at least 1; correctors pickled before it existed use 1).
    max_label_logit : float or None, default=6.0
        Cap of ``a``; ``None``: no cap (a ``softplus``, as correctors pickled
        before it existed).
    """

    def __init__(
        self,
        hidden_size=64,
        decoder_size=64,
        init_label_logit=4.0,
        init_proba_weight=2.1,
        min_proba_weight=2.0,
        max_label_logit=6.0,
    ):
        super().__init__()
        if max_label_logit is not None and not 0 < init_label_logit < max_label_logit:
            raise ValueError(
                "init_label_logit must lie in (0, max_label_logit); got "
                f"{init_label_logit!r} and {max_label_logit!r}."
            )
        if init_label_logit <= 0 or min_proba_weight < 1 or init_proba_weight <= min_proba_weight:
            raise ValueError(
                "init_label_logit must be > 0, min_proba_weight >= 1 and "
                "init_proba_weight > min_proba_weight; got "
                f"{init_label_logit!r}, {min_proba_weight!r} and {init_proba_weight!r}."
            )
        self.hidden_size = int(hidden_size)
        self.min_proba_weight = float(min_proba_weight)
        self.max_label_logit = None if max_label_logit is None else float(max_label_logit)
        self.gates = nn.Linear(_N_INPUTS + self.hidden_size, 4 * self.hidden_size)
        with torch.no_grad():  # forget-gate bias 1: remember by default
            self.gates.bias[self.hidden_size : 2 * self.hidden_size].fill_(1.0)
        self.decoder = nn.Sequential(
            nn.Linear(self.hidden_size, decoder_size), nn.ReLU(), nn.Linear(decoder_size, 2)
        )
        with torch.no_grad():  # start at a = init_label_logit, b = init_proba_weight
            self.decoder[-1].weight.zero_()
            start = torch.tensor(
                [float(init_label_logit), float(init_proba_weight) - self.min_proba_weight]
            )
            start = start.expm1().log()  # softplus inverse
            if self.max_label_logit is not None:  # sigmoid inverse
                start[0] = torch.logit(torch.tensor(init_label_logit / self.max_label_logit))
            self.decoder[-1].bias.copy_(start)
        self.schedule = []

    def step(self, feats, h, c):
        """One LSTM step: ``(h, c)`` after seeing ``feats`` (shape ``(n, 4)``)."""
        i, f, g, o = self.gates(torch.cat([feats, h], 1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c

    def weights(self, h):
        """Per-sample ``(a, b)``: weight of the noisy label (>= 0) and of log p (>= 1)."""
        return self.weights_from_logits(self.decoder(h))

    def weights_from_logits(self, z):
        """``(a, b)`` from the decoder's output logits ``z`` (shape ``(n, 2)``)."""
        za, zb = z.unbind(1)
        cap = getattr(self, "max_label_logit", None)
        a = F.softplus(za) if cap is None else cap * torch.sigmoid(za)
        return a, getattr(self, "min_proba_weight", 1.0) + F.softplus(zb)

    def saturation(self, z, margin=None):
        """Squared excess of the decoder logits ``z`` over ``[-margin, margin]``.

        Summed over the two logits and averaged over the rows: zero inside the
        range, growing outside it.  ``a``'s sigmoid is flat beyond it on both
        sides and ``b``'s softplus below it; above it ``b`` would sharpen the
        prediction ever harder.
        """
        margin = SATURATION_MARGIN if margin is None else margin
        return saturation_excess(z, margin).sum(1).mean()

    def decode(self, h, proba, y):
        """Corrected distribution ``(n, C)`` from hidden states, predictions, noisy labels."""
        return self.decode_from_logits(self.decoder(h), proba, y)

    def decode_from_logits(self, z, proba, y):
        """:meth:`decode` from the decoder's output logits ``z``."""
        a, b = self.weights_from_logits(z)
        onehot = F.one_hot(y, proba.shape[1]).to(proba.dtype)
        scores = a[:, None] * onehot + b[:, None] * proba.clamp_min(1e-6).log()
        return scores.softmax(1)

    def load_snapshot(self, progress):
        """Load the scheduled snapshot nearest to ``progress`` (no-op without one)."""
        if not self.schedule:
            return
        marks = np.array([p for p, _ in self.schedule])
        _, state = self.schedule[int(np.abs(marks - progress).argmin())]
        self.load_state_dict(state)


class _TMLCState(nn.Module):
    """The corrector and the per-sample LSTM state tables ``h`` and ``c``."""

    def __init__(self, corrector, n_samples):
        super().__init__()
        self.corrector = corrector
        size = corrector.hidden_size
        self.register_buffer("h", torch.zeros(n_samples, size))
        self.register_buffer("c", torch.zeros(n_samples, size))
        self.snapshots = []


@register
class TMLC(MetaMethod):
    """TMLC-Net: an LSTM over each sample's training dynamics corrects its label.

    Per sample and epoch, the Normalised Noise Perception features (category-
    and global-normalised loss, prediction entropy, the noisy label; see
    :func:`noise_perception`) feed one step of an LSTM whose state is kept per
    sample in tables of ``n_samples`` rows indexed by the row index the engine
    passes (never the position in the batch), so a step costs the same at
    every epoch.  The Subclass Decoder turns the hidden state, the model's
    prediction and the noisy label into a corrected distribution ``y_hat``
    (see :class:`TMLCCorrector`), and the classifier is trained with the soft
    cross-entropy ``-sum_k y_hat_k log p_k`` (Eq. 8).  During the warm-up the
    classifier trains on the noisy labels while the LSTM state already
    accumulates the dynamics.

    **How the corrector learns.**  The paper's query-set objective (a KL to
    smoothed *noisy* labels, Eq. 10-11) would only teach the corrector to copy
    its one-hot input.  The trusted set is the target instead, through the
    engine's look-ahead: the classifier's virtual step is taken on the
    corrector's output ``y_hat``, and the trusted-set loss of the look-ahead
    network is differentiated with respect to the corrector's parameters.  The
    LSTM inputs come from detached predictions and the previous state is
    detached (one-step truncated back-propagation through time), so the meta
    gradient needs only first derivatives through the LSTM; the cell is
    hand-written (no cuDNN kernel, which has no double backward), so the same
    code runs on CPU and GPU.

    **Transfer (Algorithm 2).**  After ``fit`` the classifier exposes
    ``corrector_``, a :class:`TMLCCorrector` on CPU carrying snapshots of the
    corrector taken during meta-training.  ``TMLC(corrector=fitted.corrector_)``
    applies a frozen copy to another dataset: no meta step runs (the
    classifier still asks for a trusted set unless
    ``meta_fallback="noisy_subset"``, and trains on its rows with
    cross-entropy under the default ``train_on_meta``; pass
    ``train_on_meta=False`` to use none of it), and at each epoch the snapshot taken at
    the same share of training is loaded (the paper's "subset of meta-learned
    TMLC-Nets Φ_s"), so the decoder always sees hidden states of the age it was
    trained on.  Rule for a different number of classes: none is needed; the
    corrector has no part sized by ``C`` (the one-hot enters the decoder
    class-wise, the entropy is divided by ``log C``), so it applies to any
    ``C >= 2``, any number of features and any module.

    Choices where the paper is silent: the LSTM input ``p(noisy label)`` and the
    ``log1p`` of the loss ratios; the decoder form ``softmax(a * onehot + b *
    log p)`` with an MLP giving ``(a, b)`` (stable: the paper's free C-way
    softmax head let the meta-gradient turn targets towards unlikely classes
    and collapse training in our trials, and it is tied to ``C``).

    **Defaults, and why** (digits, 10 trusted rows per class, seeds 0 and 1,
    ``random_state=0``; test accuracy, mean of the two seeds, one fit each;
    ``make_noisy_case("digits", kind, rate, meta_per_class=10, seed=s)``).
    With the earlier defaults (``b >= 1``, uncapped ``a``, trusted rows not
    trained on) the meta-gradient drove the corrector into one of two dead
    ends: ``a -> 0, b -> 1`` (the target is the
    model's own prediction, the noisy rows stop contributing any gradient and
    the model freezes where the warm-up left it: pair 40% 0.87, below the
    0.91 of a model trained on the trusted rows only), or ``a -> 30-70``
    (the target is the noisy one-hot: symmetric 60% seed 0 0.71, corrected
    labels no better than the noisy ones).

    * ``train_on_meta = True`` (class default; the classifier's
      ``train_on_meta`` overrides it): the trusted rows are also trained on with
      cross-entropy, as GLC does, so the model has a clean anchor and
      the prediction the decoder relies on keeps improving.  Alone, it lifts
      every case (pair 40% 0.87 -> 0.93, symmetric 60% 0.81 -> 0.93, 80%
      0.45 -> 0.92); the meta loss is then taken on rows also trained on (the
      meta accuracy reaches 1.0), which still ranks the corrector's choices.
    * ``min_proba_weight=2`` (with ``init_proba_weight=2.1``): "trust the
      prediction" becomes pseudo-labelling with the sharpened prediction
      instead of a zero-gradient target.  Together with the cap below, on top
      of the trusted anchor: symmetric 40% 0.937 -> 0.947, pair 40% 0.933 ->
      0.937, instance 40% 0.916 -> 0.922, symmetric 60%/80% unchanged (0.93,
      0.92).  Without the trusted anchor, sharpening confirms the warm-up
      model's mistakes (pair 40% seed 1: 0.57).
    * ``max_label_logit=6``: bounds the label weight (``e^6`` is about 400:
      the noisy label still wins unless the model finds another class about
      20 times likelier, ``b = 2`` squaring the ratio).  Uncapped, symmetric 80% seed
      1 ended at ``a`` near 28 (0.85; 0.41 with ``init_label_logit=2``);
      capped, 0.92.
    * ``saturation_penalty=0.1``: the meta loss gets ``0.1 *
      corrector.saturation(z)``, the squared excess of the decoder's output
      logits ``z = (za, zb)`` of the batch beyond +-6 (zero inside).  Without
      it the corrector could freeze: right after the warm-up the one-step
      meta-gradient often pushes ``a`` up, Adam drives ``za`` far into the flat
      end of the sigmoid (``a`` pinned at the cap), the gradient that should
      bring it back vanishes, and the model trains on the noisy labels for the
      rest of the fit.  Symmetric 80%, seeds 5-9: 0.81, 0.43, 0.83, 0.91, 0.40
      with the old defaults (seeds 0-9: mean 0.79); with the penalty the worst
      of ten seeds is 0.82 (mean 0.90).  The margin leaves ``a`` free in
      ``(0.015, 5.985)`` and ``b`` in ``(2.0, 8.0)``; a margin of 4 lost more
      on instance noise (10 seeds, ``meta_every=1``: 0.912 against 0.919).
    * **Meta step on every second batch** (the classifier's ``meta_every=None``
      resolves to 2; the paper updates the corrector at every step).  The LSTM
      state and the targets are still updated at every real step.  With the
      penalty above, on the seven digits cases (test accuracy against the old
      defaults, ``meta_every=1`` without the penalty, same seeds): symmetric
      20/40/60% and pair 20% (seeds 0-4) +0.011/+0.008/+0.013/+0.017;
      symmetric 80%, pair 40% and instance 40% (seeds 0-9) +0.107/+0.014/
      -0.008 (instance: 0.915 against 0.923; ``meta_every=1`` with the
      penalty: 0.919).  The meta step's extra cost
      halves (see ``benchmarks/README.md``).  Without the penalty
      ``meta_every=2`` froze the corrector more often (symmetric 80%: 0.58 on
      seed 1).  Pass ``meta_every=1`` for the paper's schedule.
    * **The actual step takes the virtual step's gradient** (the classifier's
      ``reuse_virtual_grad=None`` resolves to ``True``): the classifier trains
      on the targets of the corrector as it was before the step's meta update,
      saving one backward pass; the LSTM state and the logged correction still
      come from the updated corrector.  Digits, 7 noise cases, seeds 0-4 (0-9
      for symmetric 60% and instance 40%): test accuracy -0.001 on average,
      -0.003 at worst (symmetric 60%: 0.941 against 0.944).  Pass
      ``reuse_virtual_grad=False`` for the paper's order.
    * **No sharpening at heavy noise when the trusted rows alone give a weak
      model** (``min_proba_weight="auto"``: 2, as above, but 1 where the
      trusted-set check, run for this, estimates fewer than 25% of the labels
      right, the cut of the other methods' heavy-noise settings, *and*
      cross-validates a network of the trusted rows alone below
      ``WEAK_TRUSTED_MODEL_BELOW`` = 0.5; ``init_proba_weight=None`` is then
      1.1).  At such noise the labels teach the network little beyond what
      the trusted rows do, so its prediction is about as good as their model,
      and a pseudo-label ``p^2`` of a prediction that is wrong more often
      than right confirms its mistakes; with ``b >= 1`` the target stays the
      prediction itself where ``a`` is small.  On the benchmark it applies to
      ``mnist1d`` at 80% symmetric noise only (the trusted rows' model: 0.22-
      0.31 there, 0.70-0.92 on digits and MNIST, where heavy noise keeps
      ``b >= 2``): test accuracy over seeds 0-11, 0.209 with ``b >= 2``,
      0.251 with ``b >= 1``, higher on each of the twelve seeds, against
      0.237 for a model of the trusted rows alone (the default: 0.247,
      keeping ``b >= 2`` on the one seed whose check reads 0.250, at the
      cut of heavy noise).  Everywhere else on
      ``mnist1d`` ``b >= 1`` costs (20% symmetric noise -0.039, seeds 0-2),
      which is why the weak model alone does not decide it
      (``benchmarks/HISTORY.md``, "Stop 26: four probes where goals are
      unmet" and "Stop 33: ``tmlc`` unsharpened at heavy noise with a weak
      trusted model").  The check's findings are the classifier's
      ``init_check_``, the floor used its ``min_proba_weight_``.
    * **Pre-training at heavy noise** (``heavy_noise_settings``): where the
      same check estimates fewer than 25% of the labels right (the cut of
      the other methods' heavy-noise settings), the classifier's
      ``pretrain_epochs=None`` resolves to ``"auto"``: the network is first
      trained on the trusted rows alone (200 epochs) where the check says
      they predict better than the labels are right, and the warm-up is
      then dropped (``warmup_epochs=None`` resolves to 0), as ``mfrw`` does;
      the settings taken are in the classifier's ``heavy_noise_``.  The
      check is the one ``min_proba_weight="auto"`` runs: with a given floor
      none runs, and the usual defaults hold.  From a
      random start, five warm-up epochs on labels 80% wrong leave a model
      whose sharpened prediction the corrector then confirms; with few
      trusted rows the meta-gradient cannot pull it back.  Digits, 80%
      symmetric noise, three trusted rows per class, seeds 0-8 (0-5 chose
      it, 6-8 checked it): 0.662 before, 0.835 now, against 0.801 for a
      model of the trusted rows alone; pre-training that kept the warm-up
      gave 0.718.  With the benchmark's ten rows per class (symmetric 80%,
      seeds 0-2 and 9-11): MNIST 0.791 -> 0.803 and 0.764 -> 0.796, digits
      0.911 -> 0.914 and 0.918 -> 0.916 (and no more seeds stalled in a
      lower outcome: seeds 0-19 all at 0.88-0.95, 4-5 of them below 0.875
      before); ``mnist1d`` unchanged (the check does not pre-train there).
      MNIST with three rows per class, seeds 0-5: 0.647 -> 0.669 (the
      trusted rows alone 0.604; ``benchmarks/HISTORY.md``, "Stop 34:
      ``tmlc`` pre-trained at heavy noise").  Below heavy noise the default
      stays without pre-training: asked for there (``pretrain_epochs="auto"``,
      which pre-trained every digits and MNIST fit of the benchmark) it cost
      0.005 on average over the 21 cases, seeds 0-2, and up to 0.020 (MNIST
      pair noise): with labels mostly right, the warm-up on them is the
      better start (``benchmarks/HISTORY.md``, "Stop 35: ``tmlc``
      pre-trained below heavy noise too").  A pre-training asked for
      (``"auto"`` or a number of ``pretrain_epochs``) also drops the
      warm-up unless ``warmup_epochs`` is given.
    * **A longer warm-up where the noise is learnable** (``learnable_noise=
      "auto"``; our choice): the corrector reads the network's own
      predictions, so where the check after the first epoch
      (:meth:`~sklearn_noisy.methods.MetaMethod.check_noise_pattern`) finds
      that the network learns the given labels before the true ones, its
      targets would teach the wrong pattern; the fixed default warm-up then
      lasts 60% of ``max_epochs``.  Not after a pre-training, nor where the
      trusted-set check found the trusted rows the better model.
      ``mnist1d`` instance 0.4, 30 seeds: 0.382 against ``ce``'s 0.374
      (0.348 over seeds 0-17 before; ``benchmarks/HISTORY.md``, "Stop 44"
      and "Stop 45").
      What the check found is the classifier's ``learnable_noise_check_``.

    On these cases the fitted corrector mostly ends near ``a = 0``: the
    correction it learns is "train on the sharpened prediction, not on the
    noisy label", with a little more label weight on clean rows than on
    flipped ones on some runs; the LSTM features separate the rows less than
    the prediction does.  So a transferred corrector works with the trusted
    anchor: corrector meta-trained on symmetric 40% seed 0, applied to pair
    40% seed 1, test 0.954 (``ce`` 0.644, ``ce`` on noisy + trusted rows
    0.707), but with ``train_on_meta=False`` only 0.561
    (``benchmarks/tmlc_transfer.py``, current defaults).

    ``corrected_proba_`` is the decoder's output for every training row with
    the final model's prediction; ``transition_matrix_`` is estimated from it
    against the noisy labels.  Extra fitted attributes: ``corrector_`` and
    ``min_proba_weight_`` (the floor of ``b`` the corrector used).

    Parameters
    ----------
    corrector : TMLCCorrector, default=None
        A fitted corrector (``fitted.corrector_``) to apply without
        meta-training; ``None`` meta-learns a new one.
    hidden_size : int, default=64
        LSTM hidden units (ignored with ``corrector``).
    decoder_size : int, default=64
        Hidden units of the decoder MLP (ignored with ``corrector``).
    init_label_logit : float, default=4.0
        Initial weight ``a`` of the noisy label (ignored with ``corrector``).
    init_proba_weight : float or None, default=None
        Initial weight ``b`` of ``log p``, above ``min_proba_weight``; ``None``:
        the floor plus 0.1 (ignored with ``corrector``).
    min_proba_weight : float or "auto", default="auto"
        Floor of ``b``, at least 1: sharpening of the prediction; ``"auto"``: 2,
        or 1 at heavy noise with a weak model of the trusted rows (see above;
        ignored with ``corrector``).
    max_label_logit : float or None, default=6.0
        Cap of ``a`` (ignored with ``corrector``).
    warmup_fraction : float, default=0.1
        Share of ``max_epochs`` trained on the noisy labels before the
        corrector's targets are used, when the classifier's ``warmup_epochs``
        is ``None`` and the network is not pre-trained on the trusted set.
    n_snapshots : int, default=20
        Most corrector snapshots kept for transfer.
    saturation_penalty : float, default=0.1
        Weight of the penalty on decoder logits outside the squashes' live
        range, added to the meta loss (see above); 0 turns it off.
    learnable_noise : {"auto", False}, default="auto"
        ``"auto"``: a fixed default warm-up of 60% of ``max_epochs`` where
        the check after the first epoch finds the noise learnable (see
        above); ``False``: no check.

    Examples
    --------
    Fit on one noisy dataset, then reuse the corrector on another without a
    meta step:

    >>> from sklearn_noisy import MetaLabelCorrectionClassifier
    >>> from sklearn_noisy.datasets import make_noisy_case
    >>> from sklearn_noisy.methods import TMLC
    >>> source = make_noisy_case("digits", kind="symmetric", rate=0.4, seed=0)
    >>> fitted = MetaLabelCorrectionClassifier(method="tmlc", max_epochs=4, random_state=0)
    >>> fitted = fitted.fit(source.X, source.y_noisy, X_meta=source.X_meta,
    ...                     y_meta=source.y_meta)
    >>> target = make_noisy_case("digits", kind="pair", rate=0.4, seed=1)
    >>> reused = MetaLabelCorrectionClassifier(method=TMLC(corrector=fitted.corrector_),
    ...                                        max_epochs=4, random_state=0)
    >>> reused = reused.fit(target.X, target.y_noisy, X_meta=target.X_meta,
    ...                     y_meta=target.y_meta)
    >>> reused.corrected_labels_.shape
    (1157,)
    """

    name = "tmlc"
    train_on_meta = True
    per_sample_correction = True  # per-sample LSTM states
    default_meta_every = 2  # see "Meta step on every second batch" above
    default_reuse_virtual_grad = True  # see the classifier's reuse_virtual_grad
    pretraining_replaces_warmup = True  # see "Pre-training at heavy noise" above
    heavy_noise_settings = MappingProxyType({"pretrain_epochs": "auto"})  # likewise
    checks_noise_pattern = True  # see "A longer warm-up where the noise is learnable"

    def __init__(
        self,
        corrector=None,
        hidden_size=64,
        decoder_size=64,
        init_label_logit=4.0,
        init_proba_weight=None,
        min_proba_weight="auto",
        max_label_logit=6.0,
        warmup_fraction=0.1,
        n_snapshots=20,
        saturation_penalty=0.1,
        learnable_noise="auto",
    ):
        self.corrector = corrector
        self.hidden_size = hidden_size
        self.decoder_size = decoder_size
        self.init_label_logit = init_label_logit
        self.init_proba_weight = init_proba_weight
        self.min_proba_weight = min_proba_weight
        self.max_label_logit = max_label_logit
        self.warmup_fraction = warmup_fraction
        self.n_snapshots = n_snapshots
        self.saturation_penalty = saturation_penalty
        self.learnable_noise = learnable_noise

    @property
    def uses_meta_step(self):
        return self.corrector is None

    def default_warmup(self, max_epochs):
        return int(round(self.warmup_fraction * max_epochs))

    def uses_label_estimate(self, n_classes):
        # the check decides the floor of b (see "No sharpening at heavy noise"), and
        # the heavy-noise pre-training rides on it (no check runs for that alone)
        return self.corrector is None and _is_auto(self.min_proba_weight) and n_classes > 2

    def proba_weights(self, info):
        """``(init_proba_weight, min_proba_weight)`` for the training set ``info``."""
        floor = self.min_proba_weight
        if _is_auto(floor):
            weak = info.trusted_accuracy is not None and (
                info.trusted_accuracy < WEAK_TRUSTED_MODEL_BELOW
            )
            floor = 1.0 if info.heavy_noise and weak and info.n_classes > 2 else 2.0
        elif isinstance(floor, (bool, str)) or not isinstance(floor, numbers.Real):
            raise ValueError(f'min_proba_weight must be a number >= 1 or "auto"; got {floor!r}.')
        start = self.init_proba_weight
        return (float(floor) + 0.1 if start is None else start), float(floor)

    def build(self, net, info):
        if self.corrector is None:
            corrector = TMLCCorrector(
                self.hidden_size,
                self.decoder_size,
                self.init_label_logit,
                *self.proba_weights(info),
                self.max_label_logit,
            )
        elif isinstance(self.corrector, TMLCCorrector):
            corrector = copy.deepcopy(self.corrector)
            corrector.requires_grad_(False)
        else:
            raise TypeError(
                "TMLC(corrector=...) takes the `corrector_` of a classifier fitted with "
                f"method='tmlc' (a TMLCCorrector); got {type(self.corrector).__name__}."
            )
        return _TMLCState(corrector, info.n_samples)

    def _correcting(self, net):
        return net.epoch_ >= net.warmup_epochs

    def _progress(self, net):
        return net.epoch_ / max(int(net.max_epochs), 1)

    def on_epoch_begin(self, net):
        self.check_noise_pattern(net)
        if self.corrector is not None:
            net.meta_module_.corrector.load_snapshot(self._progress(net))

    def on_epoch_end(self, net):
        if self.corrector is not None:
            return
        epochs = max(int(net.max_epochs), 1)
        marks = np.unique(np.round(np.linspace(0, epochs - 1, min(epochs, self.n_snapshots))))
        if net.epoch_ in marks or net.epoch_ >= epochs - 1:
            state = net.meta_module_.corrector.state_dict()
            snapshot = {k: v.detach().cpu().clone() for k, v in state.items()}
            net.meta_module_.snapshots.append((self._progress(net), snapshot))

    def train_loss(self, net, forward, X, y, idx, *, virtual):
        logits = forward(X)
        state = net.meta_module_
        corrector = state.corrector
        # the actual step reuses the virtual step's logits: same features
        perception = recall(net, "perception", logits)
        if perception is None:
            with torch.no_grad():
                perception = noise_perception(logits.detach(), y, net.train_info.n_classes)
            remember(net, "perception", logits, perception)
        feats, proba = perception
        h_prev, c_prev = state.h[idx], state.c[idx]
        if not self._correcting(net):
            if not virtual:
                with torch.no_grad():
                    state.h[idx], state.c[idx] = corrector.step(feats, h_prev, c_prev)
            return F.cross_entropy(logits, y, reduction="none"), logits
        with torch.set_grad_enabled(virtual and torch.is_grad_enabled()):
            h, c = corrector.step(feats, h_prev, c_prev)
            z = corrector.decoder(h)
            target = corrector.decode_from_logits(z, proba, y)
        if virtual:  # for the saturation penalty of the meta loss
            remember(net, "decoder_logits", None, z)
        else:
            state.h[idx], state.c[idx] = h.detach(), c.detach()
            target = remember(net, "target", idx, target.detach())  # what correct() returns
        loss = -(target * F.log_softmax(logits, dim=1)).sum(1)
        return loss, logits

    def meta_penalty(self, net):
        z = recall(net, "decoder_logits", None)
        if z is None or not self.saturation_penalty:
            return 0.0
        return float(self.saturation_penalty) * net.meta_module_.corrector.saturation(z)

    def correct(self, net, proba, y, idx):
        target = recall(net, "target", idx)  # this step's actual target, if any
        if target is not None:
            return target
        return net.meta_module_.corrector.decode(net.meta_module_.h[idx], proba, y)

    def fitted_attributes(self, net, rows):
        state = net.meta_module_
        corrector = copy.deepcopy(state.corrector).cpu().eval()
        corrector.requires_grad_(False)
        if self.corrector is None:
            corrector.schedule = list(state.snapshots)
        return {
            **super().fitted_attributes(net, rows),
            "corrector_": corrector,
            "min_proba_weight_": corrector.min_proba_weight,
        }
