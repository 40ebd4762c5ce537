"""The method protocol, the registry, and helpers shared by methods.

A method is a small :class:`~sklearn.base.BaseEstimator` holding its own
hyper-parameters (tunable as ``method__<param>``) and the logic particular to
it.  The engine (:class:`sklearn_noisy._engine.BiLevelNet`) calls these hooks:

``build(net, info)``
    Return an :class:`torch.nn.Module` with the method's meta parameters and
    per-sample tables (sized ``info.n_samples`` rows), or ``None``.  The net
    registers it as ``meta_module_``: it moves to the net's device, pickles with
    the net, and its trainable parameters get the meta optimizer.
``train_loss(net, forward, X, y, idx, virtual)``
    Per-sample training loss of a batch and the batch logits.  ``forward`` is the
    network at the live or the look-ahead parameters; ``idx`` are row indices
    into per-sample tables; ``virtual`` tells the look-ahead step from the real
    one.  The loss must depend on the meta parameters for the meta gradient to
    reach them.
``meta_loss(net, logits, y)``
    Loss on a trusted batch at the look-ahead parameters (cross-entropy, plus
    ``meta_penalty(net)``: 0 by default, a saturation penalty for the methods
    whose meta parameters end in a sigmoid).
``meta_update(net, meta_loss)``
    Turn the meta loss into a meta-parameter update (meta optimizer step).
``correct(net, proba, y, idx)``
    Corrected label distribution of noisy rows given the model's probabilities.
``after_step``, ``on_epoch_begin``, ``on_epoch_end``
    Per-step and per-epoch bookkeeping (per-sample tables).
``warmup_ended(net, predict)``
    With ``warmup_epochs="auto"``, called once the warm-up has ended and its
    best model is restored; ``predict()`` gives that model's probabilities of
    every training row (computed on demand).
``pretrained(net, predict)``
    Called once after the pre-training on the trusted set (``pretrain_epochs``),
    before the first epoch; ``predict()`` as for ``warmup_ended``, from the
    pre-trained model.
``fit_net(make_net, X, targets, meta_batches)``
    The training schedule; one run of the engine by default.
``transition_matrix(net, corrected_proba, y)`` and ``fitted_attributes(net)``
    What the classifier exposes after fit.

The actual step of a batch sees the very logits (and backbone features) the
virtual step computed; :func:`remember` and :func:`recall` let a method keep
what it derived from them in the virtual step (``tmlc``'s noise perception)
for the actual step, through ``net.step_cache``, which the engine empties at
every step.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, clone

__all__ = [
    "MetaMethod",
    "register",
    "get_method",
    "available_methods",
    "meta_gradient",
    "remember",
    "recall",
    "saturation_excess",
    "learnable_noise_check",
    "first_epoch_noise_check",
    "validate_learnable_noise",
]

#: The share of right labels, as the trusted-set check estimates it with chance
#: coincidences removed (its ``chance_corrected_estimate``), below which a method
#: takes its start and settings for heavy noise (``mslc``'s first soft label from
#: the pre-trained model, ``mlc``'s uniform T, ``heavy_noise_settings``).  Our
#: choice: it lies between those estimates at the benchmark's 80% symmetric
#: noise (0.15-0.21 on the three datasets) and at its 60% (0.29-0.42).  Until
#: stop 29 the cut was 0.3 on the check's ``r / a``, which reads 0.42-0.47 at
#: ``mnist1d``'s 80%, where the trusted rows give a weak model
#: (``benchmarks/HISTORY.md``, "Stop 29: heavy noise read from the
#: chance-corrected estimate").
HEAVY_NOISE_BELOW = 0.25

#: The first epoch's agreement with the given labels must exceed its accuracy on
#: the trusted rows by at least this much, or its mean log-probability of the given
#: labels that of the trusted rows' labels by this much in nats, and by
#: ``LEARNABLE_NOISE_Z`` standard errors, for :func:`learnable_noise_check` to
#: find the noise learnable.
LEARNABLE_NOISE_MARGIN = 0.05
LEARNABLE_NOISE_Z = 1.645  # a one-sided test at 5%

#: Where the noise is learnable, a method's fixed default warm-up is lengthened
#: to this share of ``max_epochs`` (:meth:`MetaMethod.learnable_noise_response`;
#: stop 32's choice for ``mslg``, the same for ``mlc``, ``mslc`` and ``tmlc``).
LEARNABLE_NOISE_WARMUP_FRACTION = 0.6

_REGISTRY: dict[str, type] = {}


def register(cls):
    """Class decorator adding a method to the registry under ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


def available_methods() -> list[str]:
    """Names accepted by ``MetaLabelCorrectionClassifier(method=...)``."""
    return sorted(_REGISTRY)


def get_method(method) -> MetaMethod:
    """A fresh method object from a name or a (cloned) method object."""
    if isinstance(method, str):
        if method not in _REGISTRY:
            raise ValueError(
                f"Unknown method={method!r}; choose one of {available_methods()} "
                "or pass a method object."
            )
        return _REGISTRY[method]()
    if isinstance(method, MetaMethod):
        return clone(method)
    raise TypeError(
        f"method must be a string or a MetaMethod instance, got {type(method).__name__}."
    )


def estimate_transition_matrix(corrected_proba, y, n_classes) -> np.ndarray:
    """Row-stochastic T from corrected (soft) labels and noisy labels.

    ``T[i, j] = sum_n q[n, i] [y_n = j] / sum_n q[n, i]``: among the samples the
    correction assigns to true class ``i``, the share labelled ``j``.  A class
    that received no mass gets an identity row.
    """
    q = np.asarray(corrected_proba, dtype=np.float64)
    onehot = np.eye(n_classes)[np.asarray(y)]
    counts = q.T @ onehot
    mass = counts.sum(1, keepdims=True)
    T = np.where(mass > 0, counts / np.where(mass > 0, mass, 1.0), np.eye(n_classes))
    return T


def forward_corrected_nll(logits, log_T, y):
    """Per-sample ``-log (softmax(logits) @ T)[y]``, computed in log space.

    ``log_T`` is the elementwise log of a row-stochastic T (row = true class);
    ``logsumexp_i(log p_i + log T[i, y])`` is exact and never takes a log of 0.
    """
    log_p = F.log_softmax(logits, dim=1)
    # row n of log_T.T[y] is column y_n of log_T: the same values as log_T[:, y].T,
    # gathered as rows (contiguous), several times faster with many classes
    return -torch.logsumexp(log_p + log_T.T[y], dim=1)


def posterior_given_noisy(proba, T, y):
    """``q[n] ∝ proba[n] * T[:, y_n]`` with a guard for all-zero rows."""
    q = proba * T.T[y]  # row n: column y_n of T (see forward_corrected_nll)
    s = q.sum(1, keepdim=True)
    return torch.where(s > 0, q / s.clamp_min(1e-12), proba)


def meta_gradient(meta_loss, params):
    """Gradient of the meta loss w.r.t. ``params`` (``None`` where unused).

    The graph is kept: it runs through the virtual step's forward pass of the
    training batch, which the engine's actual step reuses.
    """
    return torch.autograd.grad(meta_loss, params, allow_unused=True, retain_graph=True)


def saturation_excess(z, margin):
    """Per-element squared excess of the logits ``z`` over ``[-margin, margin]``.

    Zero inside the range, growing outside it.  Methods whose meta parameters
    end in a sigmoid (``tmlc``'s decoder, ``mfrw``'s advisor) add a multiple of
    it to the meta loss: once the one-step meta-gradient has driven a logit far
    into the sigmoid's flat end, the sigmoid passes almost no gradient back and
    the meta parameters freeze there; this term pulls them back.
    """
    return (z.abs() - margin).clamp_min(0.0).pow(2)


def _z(diff, var_a, n_a, var_b, n_b):
    se = float(np.sqrt(var_a / n_a + var_b / n_b))
    return diff / se if se > 0 else (np.inf if diff > 0 else 0.0)


def learnable_noise_check(noisy, trusted):
    """Whether the network learns the given labels sooner than the true ones.

    From the first epoch of training, before each batch's step (so every row is
    predicted by a network that has not yet trained on it in this fit).
    ``noisy`` and ``trusted`` are mappings for the noisy rows (against their
    given labels) and the trusted rows (against their true labels): ``n``, the
    number of rows; ``hits``, the share whose prediction equals the label;
    ``log_proba`` and ``log_proba_sq``, the mean log-probability the network
    gave the label and the mean of its square.

    Under class-conditional noise a network that learns the true labels fits
    the given labels *less* well than the true ones: with symmetric noise at
    rate ``r`` over ``C`` classes and accuracy ``acc`` its agreement with them
    is ``(1 - r) acc + r (1 - acc) / (C - 1)``, below ``acc`` wherever
    ``acc > 1/C``, and a flipped label is one it gives little probability.
    Fitting them *better* says that the wrong labels follow a pattern in the
    features that the network picks up before the true labels
    (``benchmarks/README.md``, "What the labels are at instance noise": on
    ``mnist1d``'s instance noise the flipped labels are a linear model's
    predictions), and that corrections built on the network's own predictions
    are then moved by that pattern.

    Two views of "better", either of which calls the noise learnable: the
    share of hits (``given_label_agreement`` against ``trusted_accuracy``,
    each a binomial proportion) and the mean log-probability of the label
    (``given_label_log_proba`` against ``trusted_label_log_proba``), each
    higher by more than ``LEARNABLE_NOISE_MARGIN`` (a share, resp. nats) and
    by more than ``LEARNABLE_NOISE_Z`` standard errors of the difference
    (``z_agreement``, ``z_log_proba``).  The log-probability weighs a label
    the network finds unlikely far more than one it nearly predicts, which
    separates the two kinds of noise better: over 150 first epochs of
    ``mnist1d``'s instance noise (five methods, 30 seeds) the hits' test
    fires on 136 and the log-probability's on 149; on the benchmark's other
    cases (``mnist1d`` seeds 0-11, digits and MNIST seeds 0-2 and 9-11) the
    log-probability's on none and the hits' on one (digits instance 0.4,
    seed 9, z 1.74).  The hits keep their vote for data whose classes are
    less balanced than the trusted set: an early network favours the large
    classes, so it hits the noisy rows' labels more often than the balanced
    trusted rows' (the log-probability, which a flipped row's unlikely label
    pulls down, less so at 40% noise), and there correcting less is what the
    fits need (``benchmarks/HISTORY.md``, "Stop 45: the learnable-noise
    check on log-probabilities too").

    Returns a dict with the six figures above and ``learnable``; ``None``
    when either group has no rows.
    """
    n_a, n_t = int(noisy["n"]), int(trusted["n"])
    if not n_a or not n_t:
        return None
    a, t = float(noisy["hits"]), float(trusted["hits"])
    z_hits = _z(a - t, a * (1.0 - a), n_a, t * (1.0 - t), n_t)
    lp_a, lp_t = float(noisy["log_proba"]), float(trusted["log_proba"])

    def variance(group, mean, n):  # of the log-probabilities, from the two means
        return max(float(group["log_proba_sq"]) - mean**2, 0.0) * n / max(n - 1, 1)

    z_lp = _z(lp_a - lp_t, variance(noisy, lp_a, n_a), n_a, variance(trusted, lp_t, n_t), n_t)
    margin, cut = LEARNABLE_NOISE_MARGIN, LEARNABLE_NOISE_Z
    return {
        "given_label_agreement": a,
        "trusted_accuracy": t,
        "z_agreement": float(z_hits),
        "given_label_log_proba": lp_a,
        "trusted_label_log_proba": lp_t,
        "z_log_proba": float(z_lp),
        "learnable": bool(
            (a - t > margin and z_hits > cut) or (lp_a - lp_t > margin and z_lp > cut)
        ),
    }


def first_epoch_noise_check(net):
    """:func:`learnable_noise_check` on the first epoch's figures, as the second begins.

    Called by :meth:`MetaMethod.check_noise_pattern`.  When the second epoch
    begins (and only then) the first epoch's history row holds the figures
    the engine counted; an epoch predicts every training row once, so the
    counts are the table's.  ``None`` at any other epoch, where nothing was
    counted (no trusted rows in the training batches, or a pre-training), or
    where either count is zero.
    """
    if len(net.history) != 2:
        return None
    row = net.history[-2]
    groups = {}
    for group in ("given", "trusted"):
        keys = (f"{group}_label_agreement", f"{group}_label_log_proba")
        if any(key not in row for key in keys):
            return None
        groups[group] = {
            "hits": row[keys[0]],
            "log_proba": row[keys[1]],
            "log_proba_sq": row[keys[1] + "_sq"],
        }
    n_trusted = int(net.train_info.trusted.sum())
    groups["given"]["n"] = int(net.train_info.n_samples) - n_trusted
    groups["trusted"]["n"] = n_trusted
    return learnable_noise_check(groups["given"], groups["trusted"])


def lengthen_default_warmup(net, fraction=LEARNABLE_NOISE_WARMUP_FRACTION):
    """Lengthen the method's fixed default warm-up to ``fraction`` of ``max_epochs``.

    Only a warm-up that is the method's fixed default
    (``TrainInfo.default_warmup``) and has not ended: where the meta steps have
    begun, a pause in them would not be a longer warm-up.  Returns whether the
    warm-up was lengthened.
    """
    if not net.train_info.default_warmup or int(net.warmup_epochs) < net.epoch_:
        return False
    longer = int(round(fraction * net.max_epochs))
    if longer <= int(net.warmup_epochs):
        return False
    net.warmup_epochs = longer
    return True


def validate_learnable_noise(value):
    """Refuse a ``learnable_noise`` parameter other than ``"auto"`` or ``False``."""
    if isinstance(value, str) and value == "auto" or value is False:
        return
    raise ValueError(f"learnable_noise must be 'auto' or False; got {value!r}.")


def remember(net, key, anchor, value):
    """Keep ``value`` for the rest of this training step, tied to ``anchor``.

    The engine empties ``net.step_cache`` at every step.  A method stores what
    its virtual step computed from a tensor (``anchor``) and :func:`recall`
    returns it in the actual step when that step sees the *same* tensor object
    (the engine's actual step reuses the virtual step's forward pass, so the
    logits and features are those very objects).  Outside a step it is a no-op.
    """
    cache = getattr(net, "step_cache", None)
    if cache is not None:
        cache[key] = (anchor, value)
    return value


def recall(net, key, anchor):
    """The value :func:`remember` kept for ``anchor`` in this step, or ``None``."""
    hit = (getattr(net, "step_cache", None) or {}).get(key)
    return hit[1] if hit is not None and hit[0] is anchor else None


class MetaMethod(BaseEstimator):
    """Base class of the methods; the defaults are plain cross-entropy training.

    Attributes
    ----------
    name : str
        Registry name.
    uses_meta_step : bool
        Whether the engine runs the virtual and meta steps.
    train_on_meta : bool
        Default for the classifier's ``train_on_meta="auto"``: whether trusted
        rows are also trained on (with cross-entropy).  ``True`` for the paper
        methods although the papers use the trusted set in the meta step only:
        a method that leaves the clean rows out of training wastes them, and
        ends below a model trained on the trusted rows alone at high noise.
        Measured on digits (seed 0, defaults, test accuracy without -> with):
        symmetric 0.8: mlc 0.50 -> 0.88, mslc 0.45 -> 0.92, mfrw 0.39 -> 0.65,
        mslg 0.92 -> 0.93; pair 0.4: mslc 0.83 -> 0.95, mfrw 0.76 -> 0.96;
        instance 0.4: mlc 0.82 -> 0.89, mslg 0.90 -> 0.92; no case lost more
        than 0.01.  ``ce`` keeps ``False``: it is the plain-training baseline.
    requires_trusted_rows : bool
        Whether the method trains on the trusted rows whatever ``train_on_meta``.
    learns_transition_matrix : bool
        Whether ``transition_matrix_`` is learned (else estimated from corrected
        vs noisy labels).
    per_sample_correction : bool
        Whether :meth:`correct` reads per-sample tables, so it cannot correct a
        row the method never trained on (see :meth:`correct_held_out`).
    actual_loss_only_logged : bool
        Whether the method's training loss, evaluated again by an actual step
        that takes the virtual step's gradient (``reuse_virtual_grad``), would
        only be logged: no per-sample table of the method is written from it.
        The engine then skips that evaluation and logs the virtual step's loss,
        the one whose gradient the step applies, and passes the virtual step's
        logits to :meth:`after_step` and :meth:`correct`.  ``True`` for ``mlc``,
        ``mslg`` and ``mfrw`` (which writes its table of advisor weights in
        the virtual step too); ``False`` here and for ``mslc`` and ``tmlc``,
        whose actual step writes per-sample tables from the updated meta
        parameters.
    training_runs : int
        How many times :meth:`fit_net` trains a network for ``max_epochs``
        (``history_`` shows the last run).
    default_meta_lr, default_meta_every, default_reuse_virtual_grad, default_weight_decay
        What the classifier's ``meta_lr``, ``meta_every``,
        ``reuse_virtual_grad`` and ``weight_decay`` resolve to when they are
        ``None``.
    default_average
        What the classifier's ``average`` resolves to when it is ``None`` and
        ``early_stopping`` is off: 0.2 here, 0.5 for ``glc`` and ``mfrw``, 0
        for ``ce``.
    default_lr_schedule
        What the classifier's ``lr_schedule`` resolves to when it is ``None``
        and no ``LRScheduler`` is among its ``callbacks``: ``"constant"``
        here, ``"cosine"`` for ``mslc``.
    default_pretrain_epochs
        What the classifier's ``pretrain_epochs`` resolves to when it is
        ``None`` (epochs on the trusted set alone before the noisy rows, or
        ``"auto"``, which checks first whether the trusted rows alone beat the
        given labels; see the classifier): 0 here, ``"auto"`` for ``mfrw`` and
        ``mslc``.
    pretraining_replaces_warmup : bool
        Whether the method's default warm-up is dropped when the network is
        pre-trained on the trusted set (the classifier's ``warmup_epochs=None``
        then resolves to 0): ``True`` for ``mfrw`` and ``tmlc``.
    default_warmup_check : bool
        Whether the classifier's ``warmup_epochs=None`` runs the trusted-set
        check of ``pretrain_epochs="auto"`` and makes the warm-up ``"auto"``
        where it says that the trusted rows alone predict better than the
        labels are right (the method's fixed warm-up otherwise): ``True`` for
        ``mslg``.
    checks_noise_pattern : bool
        Whether the engine counts, over the first epoch, how well the
        network's predictions (before each batch's step) fit the noisy rows'
        given labels and the trusted rows' labels, and records in that
        epoch's history row the shares of hits (``given_label_agreement``,
        ``trusted_label_agreement``) and the mean log-probabilities of the
        labels (``given_label_log_proba``, ``trusted_label_log_proba``, and
        the means of their squares, ``..._sq``) for
        :func:`learnable_noise_check`, which :meth:`check_noise_pattern`
        runs as the second epoch begins.  Not
        after a pre-training, which has trained on the trusted rows.  ``True``
        for the five paper methods, each with a ``learnable_noise`` parameter
        (``"auto"`` or ``False``) and its own
        :meth:`learnable_noise_response`: ``mlc``, ``mslc`` and ``tmlc`` a
        longer warm-up, ``mslg`` that and smaller label steps, ``mfrw`` a
        slower advisor.
    heavy_noise_settings : dict
        What the classifier's settings left at ``None`` resolve to instead of
        the defaults above where the trusted-set check estimates fewer than
        ``HEAVY_NOISE_BELOW`` of the labels right (keys among ``lr``,
        ``pretrain_epochs``, whose ``"auto"`` then takes the decision of that
        check, ``lr_schedule``, ``weight_decay``, ``meta_every`` and
        ``reuse_virtual_grad``).  The
        estimate is that of the check the fit runs anyway (for
        ``uses_label_estimate``, the pre-training or the warm-up); a fit that
        runs none takes no such setting.  The classifier reports the settings
        taken in ``heavy_noise_``.  Empty here (no regime of its own at heavy
        noise); ``mlc``'s, ``mfrw``'s and ``tmlc``'s are in their documentation.
    heavy_noise_leans_on_trusted_model : bool
        Whether the method's start and settings for heavy noise build on a model
        of the trusted rows (pre-training on them, a T that lets only them
        pull), so that they are taken only where the check also estimates that
        model better than the labels (the condition of ``pretrain_epochs="auto"``):
        ``True`` for ``mlc`` and ``mslc``.  Where the trusted rows give a weak
        model (``mnist1d``) such a start costs: ``mlc`` at ``mnist1d``'s 80%
        symmetric noise, seeds 0-2, 0.271 with its usual start and settings,
        0.245 with its heavy-noise ones, 0.220 with them but no pre-training.
    """

    name = "base"
    uses_meta_step = False
    train_on_meta = False
    requires_trusted_rows = False
    learns_transition_matrix = False
    per_sample_correction = False
    actual_loss_only_logged = False
    training_runs = 1

    # --- defaults the classifier asks for
    default_meta_lr = 1e-2
    default_meta_every = 1
    default_reuse_virtual_grad = False
    default_weight_decay = 0.0
    default_average = 0.2  # every method but ce; see the classifier's average
    default_lr_schedule = "constant"
    default_pretrain_epochs = 0
    pretraining_replaces_warmup = False
    default_warmup_check = False
    checks_noise_pattern = False
    heavy_noise_settings: Mapping = MappingProxyType({})
    heavy_noise_leans_on_trusted_model = False

    #: Optimizer steps per epoch on the data where :meth:`default_warmup`'s share
    #: of ``max_epochs`` was chosen, for a method whose fixed warm-up is shortened
    #: where an epoch takes more steps (:meth:`fixed_warmup`); ``None``: never.
    warmup_reference_steps: int | None = None

    def default_warmup(self, max_epochs: int) -> int:
        return 0

    def fixed_warmup(self, max_epochs: int, steps_per_epoch: int) -> int:
        """The fixed warm-up of a fit whose epochs take ``steps_per_epoch`` steps.

        :meth:`default_warmup`, shortened in proportion where an epoch takes
        more optimizer steps than ``warmup_reference_steps`` (larger data, or
        a smaller batch), but to no fewer than one epoch: the warm-up keeps
        the optimizer steps it had where its share was chosen, while
        memorising the flipped labels takes passes over their rows (see
        ``MSLG``).  Where an epoch takes no more steps, :meth:`default_warmup`.
        """
        epochs = int(self.default_warmup(max_epochs))
        ref = self.warmup_reference_steps
        if ref is None or epochs == 0 or steps_per_epoch <= ref:
            return epochs
        return max(1, int(round(epochs * ref / steps_per_epoch)))

    def uses_label_estimate(self, n_classes: int) -> bool:
        """Whether :meth:`build` needs ``info.label_accuracy`` for ``n_classes`` classes.

        When True the classifier runs the trusted-set check of
        ``pretrain_epochs="auto"`` before the fit (or takes its findings, when
        that check ran already) and passes its estimate of the share of right
        labels (and its other findings: ``TrainInfo``); its findings are the
        classifier's ``init_check_``.  False by default; ``mlc`` with
        ``init_diagonal="auto"`` and ``tmlc`` with ``min_proba_weight="auto"``,
        each with more than two classes.
        """
        return False

    # --- engine hooks
    def build(self, net, info):
        return None

    def train_loss(self, net, forward, X, y, idx, *, virtual):
        logits = forward(X)
        return F.cross_entropy(logits, y, reduction="none"), logits

    def can_reuse_virtual_grad(self) -> bool:
        """Whether the actual step may take the virtual step's gradient.

        True when the virtual step's training loss is the actual step's loss up
        to the meta update (the classifier's ``reuse_virtual_grad``); a method
        whose actual loss adds terms returns False for that configuration.
        """
        return True

    def trusted_weight(self, net) -> float:
        return 1.0

    def meta_loss(self, net, logits, y):
        """Cross-entropy of the look-ahead network on the meta batch, plus
        :meth:`meta_penalty`.  The mean is weighted by class where the
        classifier's ``meta_class_weight_`` is set (``TrainInfo.meta_class_weight``)."""
        info = net.train_info
        weight = None if info is None else info.meta_class_weight
        return F.cross_entropy(logits, y, weight=weight) + self.meta_penalty(net)

    def meta_penalty(self, net):
        """Extra term of the meta loss on the meta parameters (0 by default)."""
        return 0.0

    def meta_update(self, net, meta_loss):
        params = [p for p in net.meta_module_.parameters() if p.requires_grad]
        grads = meta_gradient(meta_loss, params)
        for p, g in zip(params, grads):
            p.grad = torch.zeros_like(p) if g is None else g
        net.meta_optimizer_.step()
        net.meta_optimizer_.zero_grad(set_to_none=True)

    def after_step(self, net, logits, y, idx):
        pass

    def on_epoch_begin(self, net):
        self.check_noise_pattern(net)

    # --- learnable noise (checks_noise_pattern)
    def check_noise_pattern(self, net):
        """Stop 43's check, and this method's response, as the second epoch begins.

        For a method with ``checks_noise_pattern`` and ``learnable_noise="auto"``
        (its parameter): :func:`first_epoch_noise_check` on the first epoch's
        figures; where it finds the noise learnable and
        :meth:`keeps_correcting` does not hold, the check's ``corrects_less``
        is set and :meth:`learnable_noise_response` makes the method correct
        less.  The check, with what the response recorded, is kept as
        ``net.noise_check_`` (the classifier's ``learnable_noise_check_``).
        A method that overrides :meth:`on_epoch_begin` calls this first.
        """
        if not self.checks_noise_pattern or getattr(self, "learnable_noise", False) != "auto":
            return
        check = first_epoch_noise_check(net)
        if check is None:
            return
        check["corrects_less"] = check["learnable"] and not self.keeps_correcting(net)
        self.learnable_noise_response(net, check)
        net.noise_check_ = check

    def keeps_correcting(self, net) -> bool:
        """Whether the fit keeps its corrections where the noise is learnable.

        Where this fit's trusted-set check found the trusted rows alone to
        predict better than the labels are right
        (``TrainInfo.trusted_rows_better``): the trusted rows are then a good
        reference, and the labels may have far to move.
        """
        return bool(net.train_info.trusted_rows_better)

    def learnable_noise_response(self, net, check):
        """Correct less where ``check["corrects_less"]``; record it in ``check``.

        Here: a fixed default warm-up (not one the classifier was given, nor
        the automatic one) that has not ended is lengthened to
        ``LEARNABLE_NOISE_WARMUP_FRACTION`` of ``max_epochs``
        (:func:`lengthen_default_warmup`); ``check["longer_warmup"]`` says
        whether it was.
        """
        check["longer_warmup"] = bool(check["corrects_less"] and lengthen_default_warmup(net))

    def warmup_ended(self, net, predict):
        """State built from the restored warm-up model (``warmup_epochs="auto"``).

        ``predict()`` returns that model's probabilities of every row of the
        training table, in row order, on the net's device.  Nothing by default.
        """

    def pretrained(self, net, predict):
        """State built from the model pre-trained on the trusted set.

        Called once, before the first epoch, when the fit pre-trained; ``predict()``
        returns that model's probabilities of every row of the training table, in
        row order, on the net's device.  Nothing by default.
        """

    def on_epoch_end(self, net):
        pass

    def correct(self, net, proba, y, idx):
        return proba

    def correct_held_out(self, net, proba, y, T):
        """Corrected label distribution of noisy rows held out of training.

        With the classifier's ``early_stopping`` some noisy rows only score the
        epochs, so a method's per-sample tables hold nothing for them.  A method
        whose :meth:`correct` needs no table corrects them the same way as the
        others; one with ``per_sample_correction`` gives the posterior of the
        true class under the fitted transition matrix ``T`` (a tensor on the
        net's device), ``q ∝ proba * T[:, y]``.
        """
        if self.per_sample_correction:
            return posterior_given_noisy(proba, T.to(proba.dtype), y)
        return self.correct(net, proba, y, None)

    # --- schedule
    def fit_net(self, make_net, X, targets, meta_batches):
        net = make_net(self)
        net.initialize()
        net.partial_fit(X, targets, meta_batches=meta_batches)
        return net

    # --- fitted attributes
    def transition_matrix(self, net, corrected_proba, y):
        return estimate_transition_matrix(corrected_proba, y, net.train_info.n_classes)

    def fitted_attributes(self, net, rows) -> dict:
        """Extra fitted attributes (per-sample values for ``rows`` of the table).

        Here ``learnable_noise_check_`` for a method with ``checks_noise_pattern``
        (``None`` where the check did not run); a method that adds its own
        extends this dict.
        """
        if not self.checks_noise_pattern:
            return {}
        check = getattr(net, "noise_check_", None)
        return {"learnable_noise_check_": None if check is None else dict(check)}
