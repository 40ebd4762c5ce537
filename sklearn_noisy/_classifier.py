"""MetaLabelCorrectionClassifier: parameters, validation, label encoding, dispatch."""

from __future__ import annotations

import copy
import inspect
import math
import numbers
import warnings

import numpy as np
import scipy.sparse as sp
import torch
from sklearn import config_context
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.exceptions import DataConversionWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, validate_data
from skorch.callbacks import Callback, LRScheduler, ProgressBar
from skorch.dataset import Dataset
from skorch.helper import predefined_split
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR

from ._engine import (
    AutoWarmup,
    BatchLoader,
    BiLevelNet,
    HeldOutEarlyStopping,
    MetaBatches,
    TailAveraging,
    TrainInfo,
    encode_targets,
)
from ._pretrain_check import (
    AUTO_PRETRAIN_EPOCHS,
    CHECK_EPOCHS,
    check_reason,
    label_estimate_reason,
    trusted_rows_predict_better,
    trusted_set_check,
)
from .methods import MetaMethod, available_methods, get_method
from .methods._base import HEAVY_NOISE_BELOW
from .modules import MLP

__all__ = ["MetaLabelCorrectionClassifier", "NoTrustedSetWarning", "MetaSetWarning"]


class NoTrustedSetWarning(UserWarning):
    """Fit ran without a trusted set (``meta_fallback="noisy_subset"``)."""


class MetaSetWarning(UserWarning):
    """The trusted set does not cover every class of ``y``."""


# Sparse input is densified up to this many entries (400 MB of float32).
MAX_DENSE_ENTRIES = 100_000_000
# warmup_epochs="auto": warm-up epochs without a better trusted-set accuracy
AUTO_WARMUP_PATIENCE = 5
VALID_BATCH_SIZE = 1024  # the least batch of the net's prediction and validation loader


def _densify(X, name):
    """Dense copy of a sparse ``X`` (with a warning), or ``X`` unchanged."""
    if not sp.issparse(X):
        return X
    n_entries = X.shape[0] * X.shape[1]
    if n_entries > MAX_DENSE_ENTRIES:
        raise TypeError(
            f"{name} is a sparse matrix of shape {X.shape}; the networks take dense input "
            f"and {n_entries:,} entries are too many to densify (limit "
            f"{MAX_DENSE_ENTRIES:,}). Reduce its dimension first, e.g. with TruncatedSVD."
        )
    warnings.warn(
        f"{name} is a sparse matrix; it is converted to a dense array (the networks "
        "take dense input).",
        DataConversionWarning,
        stacklevel=3,
    )
    return X.toarray()


def _trusted_better(check):
    """The decision of ``pretrain_epochs="auto"`` from a trusted-set ``check``'s
    findings: the trusted rows alone estimated to predict better than the labels
    are right."""
    return trusted_rows_predict_better(
        check_estimate=check["estimated_label_accuracy"],
        trusted_accuracy=check["trusted_cv_accuracy"],
    )


def _stack_rows(parts, chunk_bytes=1 << 22):
    """The rows of each ``(array, rows)`` of ``parts``, one after the other, as one
    float32 array, without a copy of any part in its own dtype first.

    ``rows=None`` takes every row of its array.  Rows are read in blocks of at
    most ``chunk_bytes`` (4 MiB).
    """
    sizes = [len(a) if rows is None else len(rows) for a, rows in parts]
    out = np.empty((sum(sizes), parts[0][0].shape[1]), dtype=np.float32)
    at = 0
    for (array, rows), size in zip(parts, sizes):
        chunk = max(1, chunk_bytes // max(array.shape[1] * array.itemsize, 1))
        for start in range(0, size, chunk):
            stop = min(start + chunk, size)
            out[at + start : at + stop] = (
                array[start:stop] if rows is None else array[rows[start:stop]]
            )
        at += size
    return out


def _predict_rows(net, X, rows, batch_size, block_bytes=1 << 24):
    """The network's logits for ``X[rows]`` (every row for ``rows=None``), float32, on the CPU.

    Without ``rows`` the loader reads ``X`` batch by batch; with them the rows
    are taken in blocks of whole batches of at most ``block_bytes`` (16 MiB; the
    same batches as on ``X[rows]``, so the same logits to the bit), never all at
    once.  ``batch_size`` is the net's prediction batch.
    """
    if rows is None:
        return net.predict_logits(X)
    block = batch_size * max(1, block_bytes // max(batch_size * X.shape[1] * 4, 1))
    logits = None
    for start in range(0, len(rows), block):
        piece = net.predict_logits(_stack_rows([(X, rows[start : start + block])]))
        if logits is None:
            logits = piece.new_empty((len(rows), piece.shape[1]))
        logits[start : start + len(piece)] = piece
    return logits


def _resolve_device(device):
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(
            f"device={device!r} is not a torch device; use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        ) from exc
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but no CUDA GPU is available; "
            "use device='cpu' or device='auto'."
        )
    return device


class _ProgressBar(ProgressBar):
    """skorch's progress bar, drawn once more with its final postfix at epoch end.

    tqdm redraws at most every 0.1 s, so a short epoch could end without ever
    showing the running train and meta loss.
    """

    def on_epoch_end(self, net, **kwargs):
        pbar = getattr(self, "pbar_", None)
        if pbar is not None:
            pbar.refresh()
        super().on_epoch_end(net, **kwargs)


def _unnamed(item):
    """The callback of a ``callbacks`` item: ``item`` itself, or of a ``(name, callback)`` pair."""
    return item[1] if isinstance(item, tuple) else item


#: ``meta_class_weight="auto"`` weighs the meta loss by class where some class of
#: the trusted set is at least this many times as common among the labels as in
#: the trusted set, or this many times rarer.
META_CLASS_WEIGHT_AUTO_FACTOR = 2.0


def _class_shares_ratio(y_enc, y_t_enc, n_classes):
    """Each class's share among the labels over its share in the trusted set
    (``nan`` for a class without trusted rows)."""
    labels = np.bincount(y_enc, minlength=n_classes) / len(y_enc)
    counts = np.bincount(y_t_enc, minlength=n_classes)
    trusted = counts / counts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(counts > 0, labels / trusted, np.nan), trusted


#: The main optimizer's learning rate where ``lr`` is ``None`` (and no heavy-noise
#: setting of the method replaces it).
DEFAULT_LR = 1e-3


def _schedules_lr(user_callbacks):
    """Whether the user's ``callbacks`` hold a learning-rate scheduler of their own."""
    return any(isinstance(_unnamed(item), LRScheduler) for item in user_callbacks)


def _takes_argument(func, name):
    """Whether ``func`` (a function or class) accepts the keyword ``name``."""
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return True  # no signature to read: let the call itself decide
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


class MetaLabelCorrectionClassifier(ClassifierMixin, BaseEstimator):
    """Classifier trained on noisy labels, corrected with a small trusted set.

    One estimator in front of several meta-learning methods.  The training rows
    carry possibly wrong labels; a small *trusted* (meta) set carries clean
    labels and steers the correction.

    Parameters
    ----------
    method : str or MetaMethod, default="mlc"
        ``"ce"``, ``"glc"``, ``"mlc"``, ``"mslc"``, ``"mslg"``, ``"mfrw"`` or
        ``"tmlc"`` (see :func:`~sklearn_noisy.methods.available_methods`), or a
        method object such as
        ``sklearn_noisy.methods.MLC(init_diagonal=0.6)`` whose parameters are
        tunable as ``method__<param>``.
    module : torch.nn.Module class or instance, default=None
        The network.  ``None`` gives :class:`sklearn_noisy.modules.MLP`.  A class
        is instantiated with ``n_features`` and ``n_classes`` (when its
        ``__init__`` takes them) and ``module_params``; an instance is copied, never
        trained in place.
    hidden_layer_sizes : tuple of int, default=(256, 256)
        Hidden widths of the default MLP (ignored with a custom ``module``).
    module_params : dict, default=None
        Further keyword arguments for the module's constructor.
    max_epochs : int, default=50
        Passes over the training rows (warm-up epochs included).
    batch_size : int, default=64
        Training rows per optimisation step.
    lr : float, default=None
        Learning rate of the main optimizer (its starting rate with
        ``lr_schedule="cosine"``).  ``None``: 1e-3, or the method's rate at
        heavy noise (3e-4 for ``mfrw`` and ``mlc``, see ``heavy_noise_``).
    lr_schedule : {"constant", "cosine"} or None, default=None
        How the main optimizer's learning rate moves over the epochs.
        ``"constant"``: ``lr`` throughout.  ``"cosine"``: ``lr * (1 +
        cos(pi * e / max_epochs)) / 2`` in epoch ``e`` (0-based), from ``lr``
        in the first epoch down to nearly 0 in the last (torch's
        ``CosineAnnealingLR`` through skorch's ``LRScheduler``, stepped once
        per epoch, warm-up epochs included; each of ``glc``'s two stages runs
        its own).  ``None`` takes the method's default: ``"cosine"`` for
        ``mslc``, and for ``mlc`` and ``mfrw`` at heavy noise (see
        ``heavy_noise_``), ``"constant"`` otherwise (see ``benchmarks/HISTORY.md``,
        "A cosine learning-rate schedule": it costs ``mslg`` at high noise),
        or no schedule of the library's when ``callbacks``
        holds an ``LRScheduler`` (yours replaces it).  The look-ahead step
        follows the rate, as it reads the live one; the meta optimizer keeps
        ``meta_lr``.  ``history_`` records each epoch's rate as ``event_lr``.
    weight_decay : float, default=None
        L2 penalty of the main optimizer (its ``weight_decay`` argument; the
        meta parameters get none).  ``None`` uses the method's default:
        ``5e-4`` for ``mlc`` (2e-3 at heavy noise, see ``heavy_noise_``) and
        ``glc``, ``0`` for the others (see ``benchmarks/HISTORY.md``, "Weight
        decay").  The virtual step applies it
        as the real step does.  Exclusive with a ``weight_decay`` in
        ``optimizer_params``.  A method's default is not passed to an
        ``optimizer`` that takes no ``weight_decay`` argument.
    optimizer : torch optimizer class, default=torch.optim.Adam
        Optimizer of the network's parameters.  The virtual step uses its live
        learning rate and, for Adam-like optimizers, its second-moment estimate.
    optimizer_params : dict, default=None
        Further keyword arguments of the optimizer (``weight_decay``, ...).
    meta_lr : float, default=None
        Learning rate of the meta optimizer (Adam) of methods with a meta step;
        ``None`` takes the method's default (1e-2 unless its documentation says
        otherwise).
    meta_batch_size : int, default=None
        Trusted rows per meta step; ``None`` uses the whole trusted set up to 256
        rows (a trusted set is small, and a larger meta batch gives a less noisy
        meta gradient).
    meta_class_weight : {"auto", "labels"}, dict or None, default="auto"
        Weight of a trusted row of each class in the meta loss (the
        trusted-set loss that steers the correction), for methods with a meta
        step.  ``None``: every trusted row weighs the same (the papers); the
        meta loss then asks for a model of data distributed by class like the
        trusted set.  ``"labels"``: a trusted row of class ``k`` weighs
        ``p_y(k) / p_meta(k)``, the share of ``k`` among the labels ``y``
        over its share in the trusted set, so the meta loss asks for a model
        of data distributed like ``y``; a trusted set drawn per class (10 of
        each, say) from imbalanced data otherwise pulls the model towards the
        rare classes.  ``"auto"``: ``"labels"`` where some class of the
        trusted set is at least twice as common among the labels as in the
        trusted set, or at most half as common, ``None`` elsewhere (label
        noise alone moves the labels' class shares, by a factor of up to 1.43
        on the benchmark's balanced cases).  A dict maps classes to weights
        (a class left out weighs 1), as scikit-learn's ``class_weight``.  The
        weights used are in ``meta_class_weight_``.  Measured on imbalanced
        data (see the user guide, "Imbalanced classes and a balanced trusted
        set").
    meta_every : int, default=None
        Run the virtual/meta steps on every ``meta_every``-th batch only (a
        speed lever: the extra cost of the meta steps shrinks by about the
        factor ``meta_every``).  ``None`` uses the method's default: 1 (every
        batch, as in the papers) for ``mlc`` and ``mslg``; 2 for ``mslc``,
        ``tmlc`` and ``mfrw`` (1 for ``mfrw`` at heavy noise, see
        ``heavy_noise_``; see their documentation, and
        ``benchmarks/HISTORY.md``, "The ``meta_every`` lever on accuracy", for
        every method's accuracy at 1 and 2).
    lookahead : {"full", "head"}, default="full"
        Which parameters the virtual step moves.  ``"full"``: all of them (the
        papers).  ``"head"``: only the module's ``head``; the backbone stays
        put, so the look-ahead and its second-order terms touch only the last
        layer (a speed lever; needs a module with ``backbone``/``head``, like
        the default MLP).
    reuse_virtual_grad : bool, default=None
        Whether the actual step takes the gradient that the virtual step
        already computed instead of a second backward pass through the network
        (a speed lever: one backward pass saved per meta step, 10-17% of a
        meta epoch of the default MLP on CPU); with the default optimizer
        (a plain ``torch.optim.Adam``, or ``AdamW``) the actual step also takes
        the second moment and step size that the virtual step formed from the
        same gradient instead of Adam computing them again (about 6% more).
        The actual step then trains the
        classifier with the meta parameters as they were *before* this step's
        meta update (the papers use them after it); ``mslc``'s and ``tmlc``'s
        per-sample tables still use the updated ones, while ``mlc``, ``mslg``
        and ``mfrw`` log the loss the step trained on (and ``mfrw``'s table
        holds the advisor weights the step trained with).  Needs ``lookahead="full"``
        and a method whose virtual and actual losses are the same function of
        the meta parameters (not ``mslg`` with ``entropy_weight > 0``, nor
        ``mslc`` with ``target="hard"``).  ``None`` uses the method's default:
        ``True`` for ``mlc``, ``mslc`` and ``tmlc``, whose accuracy did not
        change, for ``mslg`` (without its entropy term, its default; it
        gained accuracy) and for ``mfrw`` but at heavy noise, where it lost
        accuracy (see ``heavy_noise_``); see each method and
        ``benchmarks/README.md``.
    warmup_epochs : int, "auto" or None, default=None
        Epochs of plain training before the meta steps start; ``None`` lets the
        method choose (see each method's documentation).  ``"auto"`` takes the
        method's choice as a cap and ends the warm-up when the model starts to
        memorise the noisy labels: the warm-up then trains on the noisy rows
        only, scores each epoch on the trusted set (``warmup_acc`` in
        ``history_``), stops after 5 epochs without a better score, restores
        the best warm-up epoch's network weights and starts the meta steps;
        the meta phase gets the epochs left.  Memorisation starts earlier on
        some data than on other (after about 4 epochs on MNIST at 80%
        symmetric noise, after 15 or more on ``mnist1d``), which a fixed share
        of ``max_epochs`` cannot follow.  Keeping the trusted rows out of the
        warm-up costs where the network learns slowly (see the user guide, "A
        warm-up that ends when memorisation starts"), so for most methods it
        is an option.  For ``mslg`` ``None`` decides: the check of
        ``pretrain_epochs="auto"`` runs on the trusted set (its findings in
        ``warmup_check_``), and the warm-up is ``"auto"`` where the trusted
        rows alone are estimated to predict better than the labels are right,
        the method's fixed one elsewhere.
    pretrain_epochs : int, "auto" or None, default=None
        Epochs of plain cross-entropy on the trusted set alone before training
        on the noisy rows begins (warm-up included): the network starts from a
        model of the clean rows instead of a random one.  The main optimizer
        is used, at ``lr`` and the batch size, and its state is reset
        afterwards; the trusted rows are then trained on as usual.  The cost is
        ``pretrain_epochs`` passes over the trusted set, small beside the
        noisy rows' epochs.  It helps where a model of the trusted rows alone
        is better than the noisy labels and costs where it is poor
        (``benchmarks/HISTORY.md``, "Pre-training on the trusted set": 200
        epochs took ``mslc`` from 0.682 to 0.760 and ``mfrw`` from 0.527 to
        0.748 on MNIST at 80% symmetric noise, where the trusted rows alone
        give 0.775, and cost both up to 0.08 on ``mnist1d``, where they give
        0.239).  ``"auto"`` decides from the training data: it estimates by
        k-fold cross-validation on the trusted set (at most 5 folds) how
        accurate a network of the trusted rows alone is (``a``), and from how
        often those fold networks agree with the given labels (``r``) how many
        of the labels are right (``r / a``), and pre-trains for 200 epochs
        where ``r / a < a`` (not at all otherwise; see
        ``pretrain_check_``).  On the benchmark's 63 fits it pre-trained on
        every digits and MNIST fit and on no ``mnist1d`` fit: ``mfrw`` +0.016
        and ``mslc`` +0.007 on average, -0.010 at worst ("Pre-training where
        it helps").  Its cost is the folds' training, 50 epochs each on four
        fifths of the trusted set, about 1.5 times the pre-training's.
        ``None`` takes the method's default: ``"auto"`` for ``mfrw`` and
        ``mslc`` (and for ``mlc`` and ``tmlc`` at heavy noise, see
        ``heavy_noise_``), 0 for the other methods.  ``mfrw`` and ``tmlc``
        drop their warm-up when pre-trained (``warmup_epochs=None``).
        Pre-training with ``warmup_epochs="auto"`` (which scores the warm-up
        on the trusted set) is an error, and a method's default then resolves
        to 0.  ``glc`` pre-trains its second
        stage only: its first stage estimates the noise from predictions on the
        trusted set, which must not have been trained on.  Each epoch's loss is
        in ``pretrain_loss_curve_``.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the noisy rows (stratified by their
        given label) and keep the epoch whose model agrees best with their
        *given* labels; stop after ``n_iter_no_change`` epochs without a better
        one and restore the best epoch's network weights (skorch's
        ``EarlyStopping``).  No clean data is used: when the noise does not
        depend on the sample and leaves each true class's given label the most
        common one (symmetric noise below ``1 - 1/n_classes``, pair noise below
        0.5), the most accurate model against the noisy labels is the most
        accurate against the true ones, in expectation; the held-out score is
        a weak signal at heavy pair or symmetric noise on small data, where it
        can stop a method too early (see the user guide).  Training on noisy
        labels ends by memorising them, so at high noise the best epoch comes
        well before ``max_epochs``.  Off by default: it costs on some of the
        benchmark's cases.
        Warm-up epochs are not candidates: the model kept is always one the
        method trained.  An epoch that ties the best held-out accuracy
        replaces it.  The held-out rows are not trained on; they still get
        ``corrected_labels_`` (see
        :meth:`~sklearn_noisy.methods.MetaMethod.correct_held_out`).
    validation_fraction : float, default=0.1
        Share of the noisy rows held out with ``early_stopping`` (at least one
        row per class that has 1/``validation_fraction`` rows or more).
    n_iter_no_change : int, default=10
        Epochs without a better held-out accuracy before ``early_stopping``
        stops training.
    average : float in [0, 1] or None, default=None
        Share of ``max_epochs`` at the end of training whose network weights
        are averaged (one snapshot per epoch, never from the warm-up); the
        fitted model is that average (``averaged_epochs_`` says of how many
        epochs).  ``0`` turns it off.  ``None`` takes the method's default:
        0.2 (the last 10 of 50 epochs), 0.5 for ``glc`` and ``mfrw``, and 0
        for ``ce``, the baseline, which keeps its last epoch; 0 with
        ``early_stopping``, which keeps one epoch's weights instead (a
        positive ``average`` with it is an error).  At a constant learning
        rate a network trained on noisy labels wanders from epoch to epoch,
        and its accuracy with it; the average sits in the middle of that walk
        instead of wherever the last epoch happened to end (see the user
        guide, "Averaging the last epochs").
    train_on_meta : bool or "auto", default="auto"
        Whether the trusted rows are trained on as well (with cross-entropy);
        ``"auto"`` takes the method's default: ``True`` for every method but
        ``ce`` (see :class:`sklearn_noisy.methods.MetaMethod`).
    meta_fallback : {"raise", "noisy_subset"}, default="raise"
        What ``fit`` does without a trusted set.  ``"raise"`` refuses, so a
        forgotten meta set cannot go unnoticed.  ``"noisy_subset"`` takes a
        stratified 10% of the (noisy) training rows as the meta set, with a
        :class:`NoTrustedSetWarning`: the correction then has no clean signal,
        so use it only to exercise the code (sklearn's common checks do).
    device : str, default="auto"
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling and meta batches through a private
        torch generator state; the global torch and numpy RNGs are left as they were.
    callbacks : list of skorch callbacks, default=None
        Further skorch callbacks for the net: :class:`skorch.callbacks.Callback`
        instances or ``(name, callback)`` pairs, e.g.
        ``[LRScheduler(policy=StepLR, step_size=20)]`` for another learning-rate
        schedule, or a ``Checkpoint``.  Each fit runs on deep copies, so the
        objects passed keep no state of a fit (``glc``'s two stages get a copy
        each); the fitted ones are in ``net_.callbacks_``.  They run after the
        library's own callbacks (early stopping, warm-up, averaging) and before
        the printed log.  An ``LRScheduler`` among them replaces the method's
        default schedule, and cannot be combined with
        ``lr_schedule="cosine"``, which is one.
    verbose : int, default=0
        0 is silent; 1 or more shows a progress bar per epoch with the running
        train and meta loss (skorch's ``ProgressBar``, tqdm; a notebook widget in
        Jupyter) and prints a line per epoch (skorch's ``PrintLog``).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels, in the original label space.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of str
        When ``X`` is a DataFrame with string column names.
    method_ : MetaMethod
        The method object used for the fit.
    net_ : skorch.NeuralNet
        The trained net (private; its ``module_`` is the torch module).
    corrected_proba_ : ndarray of shape (n_samples, n_classes)
        Corrected label distribution of each row of ``X`` (rows sum to 1).  With
        ``meta_mask``, trusted rows hold their own label.
    corrected_labels_ : ndarray of shape (n_samples,)
        ``classes_[argmax(corrected_proba_)]``, in the original label space.
    transition_matrix_ : ndarray of shape (n_classes, n_classes)
        ``T[i, j] = P(noisy = j | true = i)``, rows sum to 1.  Learned by
        ``mlc``/``glc``; estimated from ``corrected_proba_`` against the noisy
        labels by the other methods.
    history_ : skorch.History
        Per epoch: ``train_loss``, ``meta_loss``, ``meta_acc``,
        ``labels_changed`` (share of noisy rows whose corrected label differs
        from the given one), ``dur``; with ``early_stopping`` also
        ``valid_loss`` and ``valid_acc`` (cross-entropy and accuracy of the
        held-out noisy rows against their given labels); with
        ``warmup_epochs="auto"``, ``warmup_acc`` for each warm-up epoch
        (accuracy on the trusted set); ``averaged`` (``True``) on the epochs
        whose weights the model averages (see ``average``; a ``+`` in the
        ``verbose`` log).
    best_epoch_ : int or None
        With ``early_stopping``, the epoch (1-based) whose weights the model
        holds; ``None`` without it, or when no epoch after the warm-up ran
        (``warmup_epochs >= max_epochs``: the model is the last epoch's).
    best_validation_score_ : float or None
        With ``early_stopping``, that epoch's ``valid_acc``; ``None`` without it.
    validation_mask_ : ndarray of bool of shape (n_samples,) or None
        With ``early_stopping``, the rows of ``X`` held out of training.
    warmup_epochs_ : int
        Epochs of warm-up run before the meta steps started (at most
        ``max_epochs``; 0 for ``ce`` and ``glc``, which have none); with
        ``warmup_epochs="auto"`` the network the meta phase started from is
        that of the warm-up epoch with the best ``warmup_acc``.
    averaged_epochs_ : int
        Epochs whose weights the model averages (see ``average``); 0 when it
        holds the last epoch's weights.
    pretrain_epochs_ : int
        Epochs of pre-training on the trusted set that ran (``pretrain_epochs``
        resolved; 0: none).
    pretrain_loss_curve_ : list of float
        Mean cross-entropy of each of those epochs (empty without them).
    pretrain_check_ : dict or None
        With ``pretrain_epochs="auto"`` (given or the method's default), what
        its check measured: ``trusted_cv_accuracy`` (``a``),
        ``noisy_label_agreement`` (``r``), ``estimated_label_accuracy``
        (``r / a``), ``chance_corrected_estimate`` (the share of right labels
        with the chance coincidences of the check's networks with wrong
        labels removed, read by the cut of heavy noise), ``n_splits``,
        ``pretrain`` (the decision) and ``reason`` (a sentence).  ``None`` when
        no check ran.
    warmup_check_ : dict or None
        For a method whose ``warmup_epochs=None`` is decided by the same check
        (``mslg``): what it measured, as ``pretrain_check_``, with the decision
        as ``auto_warmup`` (``True``: the warm-up was ``"auto"``).  ``None``
        when no such check ran (``warmup_epochs`` given, another method, no
        trusted set, or pre-training).
    init_check_ : dict or None
        For a method that starts its meta parameters from the same check's
        estimate of the share of right labels (``mlc`` with its default
        ``init_diagonal="auto"``; the diagonal used is ``init_diagonal_``), or
        that chooses settings from it (``tmlc`` with its default
        ``min_proba_weight="auto"``: that floor, used in
        ``min_proba_weight_``, and its pre-training at heavy noise):
        what it measured, as ``pretrain_check_``, without a decision, and
        ``reason``.  Taken from ``pretrain_check_`` or ``warmup_check_`` when
        one of them ran.  ``None`` when no such check ran (nor with two
        classes, where ``mlc``'s start is 0.5 whatever the estimate and
        ``tmlc`` keeps its usual floor).
    heavy_noise_ : dict
        The settings this fit took for heavy noise: where the trusted-set
        check the fit runs anyway (``init_check_``, ``pretrain_check_`` or
        ``warmup_check_``) estimates fewer than 25% of the labels right (its
        ``chance_corrected_estimate``; for ``mlc`` also the trusted rows
        alone estimated better than the labels), the
        classifier's settings left at ``None`` (among ``lr``,
        ``pretrain_epochs``, ``lr_schedule``, ``weight_decay``, ``meta_every``
        and ``reuse_virtual_grad``) resolve to the method's
        ``heavy_noise_settings`` instead of its defaults: for ``mlc``
        pre-training (decided as by ``pretrain_epochs="auto"``), ``lr=3e-4``,
        a cosine schedule and ``weight_decay=2e-3``, for ``mfrw``
        ``lr=3e-4``, a cosine schedule, ``meta_every=1`` and
        ``reuse_virtual_grad=False``, for ``tmlc`` pre-training (decided as
        by ``pretrain_epochs="auto"``; each method's documentation gives the
        figures).
        ``{}`` elsewhere, for the other methods, with two classes, and in a
        fit that runs no check (``mlc`` with a given ``init_diagonal``,
        ``mfrw`` with a given ``pretrain_epochs``, ``tmlc`` with a given
        ``min_proba_weight`` or ``corrector``, no trusted set): no check
        runs for these settings alone.  A setting given to the classifier (or
        an ``LRScheduler`` among ``callbacks``, or a ``weight_decay`` in
        ``optimizer_params``) is never replaced.
    meta_class_weight_ : ndarray of shape (n_classes,) or None
        The weight of a trusted row of each class in the meta loss (see
        ``meta_class_weight``; from ``"labels"`` or ``"auto"``, a trusted row
        weighs 1 on average and a class without trusted rows 0); ``None``
        where every trusted row weighs the same, and for ``ce`` and ``glc``,
        which have no meta step.
    n_iter_ : int
        Epochs completed (fewer than ``max_epochs`` after a KeyboardInterrupt,
        which ``fit`` turns into a warning, keeping the model trained so far;
        ``glc`` interrupted in its first stage stays unfitted instead).

    Notes
    -----
    Each call to ``fit`` starts from freshly initialised weights (there is no
    warm start); a ``fit`` that raises leaves the estimator unfitted.

    ``random_state`` makes fits reproducible on CPU, in one process at a time:
    the seeded torch RNG state is forked around the fit, and fits running in
    parallel *threads* of one process share torch's global generator (dropout
    and shuffling draw from it), so run parallel searches in processes
    (joblib's default ``loky`` backend, or dask workers with processes).  On
    CUDA some kernels (scatter/index-add in per-sample tables, double
    backward) are not bit-for-bit deterministic.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_noisy import MetaLabelCorrectionClassifier
    >>> from sklearn_noisy.noise import make_noisy_labels
    >>> X, y = load_digits(return_X_y=True)
    >>> X = X / 16.0
    >>> y_noisy, T = make_noisy_labels(y[100:], kind="symmetric", rate=0.3, random_state=0)
    >>> clf = MetaLabelCorrectionClassifier(method="mlc", max_epochs=5, random_state=0)
    >>> clf = clf.fit(X[100:], y_noisy, X_meta=X[:100], y_meta=y[:100])
    >>> clf.transition_matrix_.shape
    (10, 10)
    """

    __metadata_request__fit = {"X_meta": True, "y_meta": True, "meta_mask": True}

    _parameter_constraints: dict = {
        "method": [StrOptions(set(available_methods())), MetaMethod],
        "module": [None, type, nn.Module],
        "hidden_layer_sizes": [tuple, list],
        "module_params": [None, dict],
        "max_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "lr": [Interval(numbers.Real, 0, None, closed="neither"), None],
        "lr_schedule": [None, StrOptions({"constant", "cosine"})],
        "weight_decay": [None, Interval(numbers.Real, 0, None, closed="left")],
        "optimizer": [type],
        "optimizer_params": [None, dict],
        "meta_lr": [None, Interval(numbers.Real, 0, None, closed="neither")],
        "meta_batch_size": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "meta_class_weight": [None, StrOptions({"auto", "labels"}), dict],
        "meta_every": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "lookahead": [StrOptions({"full", "head"})],
        "reuse_virtual_grad": ["boolean", None],
        "warmup_epochs": [
            None,
            Interval(numbers.Integral, 0, None, closed="left"),
            StrOptions({"auto"}),
        ],
        "pretrain_epochs": [
            None,
            StrOptions({"auto"}),
            Interval(numbers.Integral, 0, None, closed="left"),
        ],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
        "average": [None, Interval(numbers.Real, 0, 1, closed="both")],
        "train_on_meta": ["boolean", StrOptions({"auto"})],
        "meta_fallback": [StrOptions({"raise", "noisy_subset"})],
        "device": [str],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callbacks": [None, list, tuple],
    }

    def __init__(
        self,
        method="mlc",
        *,
        module=None,
        hidden_layer_sizes=(256, 256),
        module_params=None,
        max_epochs=50,
        batch_size=64,
        lr=None,
        lr_schedule=None,
        weight_decay=None,
        optimizer=torch.optim.Adam,
        optimizer_params=None,
        meta_lr=None,
        meta_batch_size=None,
        meta_class_weight="auto",
        meta_every=None,
        lookahead="full",
        reuse_virtual_grad=None,
        warmup_epochs=None,
        pretrain_epochs=None,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        average=None,
        train_on_meta="auto",
        meta_fallback="raise",
        device="auto",
        random_state=None,
        verbose=0,
        callbacks=None,
    ):
        self.method = method
        self.module = module
        self.hidden_layer_sizes = hidden_layer_sizes
        self.module_params = module_params
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.optimizer_params = optimizer_params
        self.meta_lr = meta_lr
        self.meta_batch_size = meta_batch_size
        self.meta_class_weight = meta_class_weight
        self.meta_every = meta_every
        self.lookahead = lookahead
        self.reuse_virtual_grad = reuse_virtual_grad
        self.warmup_epochs = warmup_epochs
        self.pretrain_epochs = pretrain_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.average = average
        self.train_on_meta = train_on_meta
        self.meta_fallback = meta_fallback
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks

    # ---------------------------------------------------------------- input
    def _validate_meta(self, X, y, X_meta, y_meta, meta_mask):
        """Split the input into noisy rows and trusted rows.

        Returns ``(X_noisy, y_noisy, X_trusted, y_trusted, noisy_rows)`` where
        ``noisy_rows`` maps the noisy rows back to rows of ``X`` (``None`` when
        ``X`` holds only noisy rows).  With ``meta_mask`` the rows of ``X`` are
        not copied here: ``X_noisy`` and ``X_trusted`` are ``None`` (``fit``
        gathers the rows it trains on, see :func:`_stack_rows`).
        """
        n = len(y)
        if meta_mask is not None and (X_meta is not None or y_meta is not None):
            raise ValueError(
                "Pass the trusted set either as X_meta/y_meta or as meta_mask, not both."
            )
        if (X_meta is None) != (y_meta is None):
            missing = "y_meta" if y_meta is None else "X_meta"
            raise ValueError(f"X_meta and y_meta go together; {missing} is missing.")

        if meta_mask is not None:
            mask = np.asarray(meta_mask)
            if mask.ndim != 1 or mask.shape[0] != n:
                raise ValueError(
                    f"meta_mask must be a 1-D boolean array of length {n} (one entry per "
                    f"row of X); got shape {mask.shape}."
                )
            if mask.dtype != bool:
                if mask.dtype.kind in "iu" and np.isin(mask, (0, 1)).all():
                    mask = mask.astype(bool)
                else:
                    raise ValueError(
                        f"meta_mask must be boolean (or 0/1 integers); got dtype {mask.dtype}."
                    )
            if not mask.any():
                raise ValueError("meta_mask marks no row as trusted.")
            if mask.all():
                raise ValueError("meta_mask marks every row as trusted; no noisy rows are left.")
            rows = np.flatnonzero(~mask)
            return None, y[~mask], None, y[mask], rows

        if X_meta is None:
            if self.meta_fallback == "raise":
                raise ValueError(
                    "No trusted set given: pass X_meta and y_meta (or meta_mask). "
                    "Set meta_fallback='noisy_subset' to fit without one (no clean signal)."
                )
            warnings.warn(
                "No trusted set given: a stratified 10% of the noisy rows is used as the "
                "meta set (meta_fallback='noisy_subset'); the correction has no clean signal.",
                NoTrustedSetWarning,
                stacklevel=3,
            )
            rng = np.random.RandomState(0)
            take = np.zeros(n, dtype=bool)
            for c in np.unique(y):
                members = np.flatnonzero(y == c)
                k = max(1, int(round(0.1 * len(members))))
                take[rng.choice(members, size=k, replace=False)] = True
            return X, y, X[take], y[take], None

        if hasattr(X_meta, "__len__") and len(X_meta) == n:
            raise ValueError(
                f"X_meta has as many rows as X ({n}). Cross-validation tools slice any fit "
                "parameter of len(X) per fold, so this trusted set would be cut silently. "
                "Use meta_mask with X holding both the noisy and the trusted rows instead."
            )
        try:
            X_meta = check_array(
                _densify(X_meta, "X_meta"), dtype=[np.float64, np.float32], input_name="X_meta"
            )
        except ValueError as exc:
            if "X_meta" in str(exc):
                raise
            raise ValueError(f"X_meta: {exc}") from exc
        try:  # feature count and names against X
            X_meta = validate_data(self, X_meta, reset=False, dtype=[np.float64, np.float32])
        except ValueError as exc:
            raise ValueError(f"X_meta does not match X: {exc}") from exc
        y_meta = check_array(y_meta, ensure_2d=False, dtype=None, ensure_all_finite=False)
        if y_meta.ndim != 1:
            raise ValueError(f"y_meta must be 1-D; got shape {y_meta.shape}.")
        if len(y_meta) != len(X_meta):
            raise ValueError(
                f"X_meta and y_meta have different lengths ({len(X_meta)} and {len(y_meta)})."
            )
        return X, y, X_meta, y_meta, None

    def _encode_trusted(self, y_trusted, n_classes):
        known = np.isin(y_trusted, self.classes_)
        if not known.all():
            extra = np.unique(y_trusted[~known])
            raise ValueError(
                f"y_meta has classes absent from y: {extra.tolist()}. The trusted set can "
                "only hold classes that the training labels have."
            )
        y_enc = np.searchsorted(self.classes_, y_trusted)
        missing = np.setdiff1d(np.arange(n_classes), y_enc)
        if len(missing) and self.meta_fallback != "noisy_subset":
            warnings.warn(
                f"The trusted set (y_meta) has no sample of classes "
                f"{self.classes_[missing].tolist()}; the meta loss cannot steer their "
                "correction. Add at least one trusted sample per class.",
                MetaSetWarning,
                stacklevel=3,
            )
        return y_enc

    # ------------------------------------------------------------ building
    def _make_module(self, n_features, n_classes):
        params = dict(self.module_params or {})
        if self.module is None:
            return MLP(
                n_features,
                n_classes,
                hidden_layer_sizes=tuple(self.hidden_layer_sizes),
                **params,
            )
        if isinstance(self.module, nn.Module):
            if params:
                raise ValueError("module_params apply to a module class, not an instance.")
            return copy.deepcopy(self.module)
        sig = inspect.signature(self.module)
        if "n_features" in sig.parameters:
            params.setdefault("n_features", n_features)
        if "n_classes" in sig.parameters:
            params.setdefault("n_classes", n_classes)
        return self.module(**params)

    # ----------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, X_meta=None, y_meta=None, meta_mask=None):
        """Fit on noisy ``(X, y)`` with a trusted set.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Possibly wrong labels.
        X_meta, y_meta : array-like, default=None
            The trusted set, with clean labels.
        meta_mask : array-like of bool, shape (n_samples,), default=None
            Marks the rows of ``X`` whose labels are trusted (the form that works
            with any sklearn tool).  Exclusive with ``X_meta``/``y_meta``.

        Returns
        -------
        self
        """
        for key in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, key)  # a refit starts from scratch
        try:
            self._fit(X, y, X_meta, y_meta, meta_mask)
        except BaseException:
            # never leave half-set fitted attributes behind
            for key in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
                delattr(self, key)
            raise
        return self

    def _resolve_optimizer_params(self, heavy_noise=None):
        """``optimizer_params`` with ``weight_decay`` (``None``: the method's default,
        or its setting for heavy noise in ``heavy_noise``)."""
        params = dict(self.optimizer_params or {})
        if "weight_decay" in params:
            if self.weight_decay is not None:
                raise ValueError(
                    "weight_decay is given twice: as the weight_decay argument and in "
                    "optimizer_params; give it once."
                )
            return params
        decay = self.weight_decay
        if decay is None:
            decay = (heavy_noise or {}).get("weight_decay", self.method_.default_weight_decay)
            if not _takes_argument(self.optimizer, "weight_decay"):
                decay = 0.0  # a custom optimizer without decay keeps working
        if decay:
            params["weight_decay"] = float(decay)
        return params

    def _resolve_meta_class_weight(self, y_enc, y_t_enc, n_classes):
        """``meta_class_weight_``: the meta loss's weight of a trusted row of each
        class, an array of ``n_classes`` floats, or ``None`` (every row the same).

        ``y_enc`` holds the encoded labels ``y`` as given (with ``meta_mask``,
        the trusted rows' too), ``y_t_enc`` the trusted set's.
        """
        option = self.meta_class_weight
        if isinstance(option, dict):
            index = {c: i for i, c in enumerate(self.classes_.tolist())}
            unknown = [key for key in option if key not in index]
            if unknown:
                raise ValueError(
                    f"meta_class_weight has classes absent from y: {unknown!r}; its keys "
                    f"must be among {self.classes_.tolist()!r}."
                )
            weight = np.ones(n_classes)
            for key, value in option.items():
                if not isinstance(value, numbers.Real) or not np.isfinite(value) or value <= 0:
                    raise ValueError(
                        f"meta_class_weight[{key!r}] must be a positive finite number; "
                        f"got {value!r}."
                    )
                weight[index[key]] = float(value)
        elif option is None:
            return None
        else:
            ratio, trusted = _class_shares_ratio(y_enc, y_t_enc, n_classes)
            spread = np.nanmax(np.abs(np.log(ratio)))
            if option == "auto" and spread < np.log(META_CLASS_WEIGHT_AUTO_FACTOR):
                return None
            # a class without trusted rows gets none; a trusted row weighs 1 on average
            weight = np.nan_to_num(ratio, nan=0.0)
            weight /= (trusted * weight).sum()
        return weight if self.method_.uses_meta_step else None

    def _resolve_lr(self, heavy_noise):
        """``lr`` for this fit (``None``: ``DEFAULT_LR``, or the method's rate at
        heavy noise in ``heavy_noise``)."""
        if self.lr is not None:
            return self.lr
        return heavy_noise.get("lr", DEFAULT_LR)

    def _resolve_average(self):
        if self.average is None:  # early stopping keeps one epoch's weights instead
            return 0.0 if self.early_stopping else self.method_.default_average
        if self.average and self.early_stopping:
            raise ValueError(
                f"average={self.average!r} cannot be combined with early_stopping=True, "
                "which keeps one epoch's weights; set average=0 (or None) or "
                "early_stopping=False."
            )
        return self.average

    def _resolve_reuse_virtual_grad(self):
        """``reuse_virtual_grad`` for this fit (``None``: the method's default)."""
        method = self.method_
        if self.reuse_virtual_grad is None:
            return bool(
                method.default_reuse_virtual_grad
                and self.lookahead == "full"
                and method.can_reuse_virtual_grad()
            )
        if self.reuse_virtual_grad and self.lookahead != "full":
            raise ValueError(
                "reuse_virtual_grad=True needs lookahead='full': a head-only look-ahead "
                "computes no gradient for the backbone."
            )
        if self.reuse_virtual_grad and not method.can_reuse_virtual_grad():
            raise ValueError(
                f"reuse_virtual_grad=True does not apply to {method!r}: its actual step's "
                "loss has terms the virtual step's loss lacks (see the method's "
                "documentation)."
            )
        return bool(self.reuse_virtual_grad)

    def _resolve_pretrain_epochs(self, train_on_meta, has_trusted_set):
        """``pretrain_epochs`` for this fit (``None``: the method's default)."""
        if self.pretrain_epochs is None:
            if not (train_on_meta and has_trusted_set) or self.warmup_epochs == "auto":
                return 0
            return self.method_.default_pretrain_epochs
        if self.pretrain_epochs and self.warmup_epochs == "auto":
            raise ValueError(
                f"pretrain_epochs={self.pretrain_epochs!r} cannot be combined with "
                "warmup_epochs='auto', which scores the warm-up on the trusted set: "
                "pre-trained on, it is no longer held out.  Set pretrain_epochs=0 (or "
                "None), or a number of warmup_epochs."
            )
        if self.pretrain_epochs == "auto":
            return "auto" if has_trusted_set else 0
        return int(self.pretrain_epochs)

    def _check_pretraining(self, X_t, y_t, X_noisy, y_noisy, n_classes, device, seed):
        """``pretrain_epochs="auto"``: pre-train for ``AUTO_PRETRAIN_EPOCHS`` or not at
        all, as :func:`~sklearn_noisy._pretrain_check.trusted_set_check` says."""
        check = self._trusted_set_check(X_t, y_t, X_noisy, y_noisy, n_classes, device, seed)
        if self.verbose:
            print(f"pretrain_epochs='auto': {check['reason']}")
        return check

    def _check_warmup(self, X_t, y_t, X_noisy, y_noisy, n_classes, device, seed):
        """The method's ``default_warmup_check``: an ``"auto"`` warm-up or the fixed
        one, as :func:`~sklearn_noisy._pretrain_check.trusted_set_check` says.  The
        pre-training check of this fit, when it ran (and said no), is the same
        check on the same data: its findings are taken, not measured again."""
        check = self._check_once(X_t, y_t, X_noisy, y_noisy, n_classes, device, seed)
        check["auto_warmup"] = check.pop("pretrain")
        check["reason"] = check_reason(
            check, ("warmup_epochs='auto'", "the method's fixed warm-up"), "auto_warmup"
        )
        if self.verbose:
            print(f"warmup_epochs=None: {check['reason']}")
        return check

    def _check_labels(self, X_t, y_t, X_noisy, y_noisy, n_classes, device, seed):
        """For a method that ``uses_label_estimate``: the check's measurements, taken
        from the pre-training or warm-up check of this fit when one ran."""
        check = self._check_once(X_t, y_t, X_noisy, y_noisy, n_classes, device, seed)
        check.pop("pretrain", None)
        check.pop("auto_warmup", None)
        check["reason"] = label_estimate_reason(check)
        if self.verbose:
            print(f"{self.method_.name}: {check['reason']}")
        return check

    def _check_once(self, *args):
        """A copy of the findings of this fit's trusted-set check: those of the check
        that ran already (for the pre-training or the warm-up: the same check on the
        same data, not measured again), else of a new one (:meth:`_trusted_set_check`
        with ``args``)."""
        return dict(self.pretrain_check_ or self.warmup_check_ or self._trusted_set_check(*args))

    def _trusted_set_check(self, X_t, y_t, X_noisy, y_noisy, n_classes, device, seed):
        """:func:`~sklearn_noisy._pretrain_check.trusted_set_check` with this fit's
        network, optimizer and batch size."""
        resolved = self._resolve_optimizer_params()
        return trusted_set_check(
            lambda: self._make_module(X_t.shape[1], n_classes),
            lambda params: self.optimizer(params, lr=self._resolve_lr({}), **resolved),
            X_t,
            y_t,
            X_noisy,
            y_noisy,
            epochs=CHECK_EPOCHS,
            batch_size=self.batch_size,
            device=device,
            seed=seed,
        )

    def _check_callbacks(self):
        """The user's ``callbacks`` as a list, each one checked (not copied yet)."""
        callbacks = list(self.callbacks or [])
        for i, item in enumerate(callbacks):
            if isinstance(item, tuple) and (len(item) != 2 or not isinstance(item[0], str)):
                raise ValueError(
                    f"callbacks[{i}] is a tuple {item!r}; a named callback is a "
                    "(name, callback) pair with a string name."
                )
            cb = _unnamed(item)
            if not isinstance(cb, Callback):
                what = f"the class {cb.__name__}" if isinstance(cb, type) else repr(cb)
                raise TypeError(
                    f"callbacks[{i}] is {what}; callbacks takes skorch callback "
                    "instances (skorch.callbacks.Callback) or (name, callback) pairs."
                )
            if self.lr_schedule == "cosine" and isinstance(cb, LRScheduler):
                raise ValueError(
                    f"callbacks[{i}] is an LRScheduler and lr_schedule={self.lr_schedule!r} "
                    "schedules the learning rate already; set lr_schedule='constant' "
                    "to use your own."
                )
        return callbacks

    def _resolve_lr_schedule(self, user_callbacks, heavy_noise):
        """``lr_schedule`` for this fit (``None``: the method's default, or its
        setting for heavy noise, unless the user's callbacks schedule the rate
        themselves)."""
        if self.lr_schedule is not None:
            return self.lr_schedule
        if _schedules_lr(user_callbacks):
            return "constant"
        return heavy_noise.get("lr_schedule", self.method_.default_lr_schedule)

    def _heavy_noise_candidates(self, n_classes, train_on_meta, user_callbacks):
        """The method's ``heavy_noise_settings`` that this fit may take: those of
        the settings left to the method (``None``), with three classes or more."""
        wanted = dict(self.method_.heavy_noise_settings)
        if not wanted or n_classes < 3:
            return {}
        left = {name for name in wanted if getattr(self, name) is None}
        if "weight_decay" in (self.optimizer_params or {}):
            left.discard("weight_decay")
        if _schedules_lr(user_callbacks):
            left.discard("lr_schedule")
        if not train_on_meta or self.warmup_epochs == "auto":
            left.discard("pretrain_epochs")
        return {name: value for name, value in wanted.items() if name in left}

    def _heavy_noise_found(self, check):
        """Whether the trusted-set ``check`` this fit ran (``None``: none ran) marks
        heavy noise for this method: its chance-corrected estimate of the share of
        right labels below ``HEAVY_NOISE_BELOW`` and, for a method whose heavy-noise
        start ``heavy_noise_leans_on_trusted_model``, the trusted rows alone
        estimated to predict better than the labels are right."""
        estimate = None if check is None else check.get("chance_corrected_estimate")
        if estimate is None or estimate >= HEAVY_NOISE_BELOW:
            return False
        return not self.method_.heavy_noise_leans_on_trusted_model or _trusted_better(check)

    @staticmethod
    def _heavy_noise(candidates, check, found):
        """``heavy_noise_``: the ``candidates`` where ``found`` (heavy noise, by
        :meth:`_heavy_noise_found`), ``pretrain_epochs="auto"`` decided by the
        ``check``; ``{}`` elsewhere."""
        if not candidates or not found:
            return {}
        settings = dict(candidates)
        if settings.get("pretrain_epochs") == "auto":
            settings["pretrain_epochs"] = AUTO_PRETRAIN_EPOCHS if _trusted_better(check) else 0
        return settings

    def _schedule_callbacks(self, lr_schedule):
        """The callbacks of ``lr_schedule`` (none for a constant rate)."""
        if lr_schedule == "cosine":
            return [("lr_schedule", LRScheduler(policy=CosineAnnealingLR, T_max=self.max_epochs))]
        return []

    def _fit(self, X, y, X_meta, y_meta, meta_mask):
        user_callbacks = self._check_callbacks()
        X, y = validate_data(
            self, _densify(X, "X"), y, dtype=[np.float64, np.float32], y_numeric=False
        )
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise ValueError(
                f"y has one class only ({self.classes_[0]!r}); a classifier needs at "
                "least 2 classes."
            )
        X_n, y_n, X_t, y_t, noisy_rows = self._validate_meta(X, y, X_meta, y_meta, meta_mask)
        y_n_enc = np.searchsorted(self.classes_, y_n)
        y_t_enc = self._encode_trusted(y_t, n_classes)

        self.method_ = get_method(self.method)
        self.meta_class_weight_ = self._resolve_meta_class_weight(
            np.searchsorted(self.classes_, y), y_t_enc, n_classes
        )
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        held = self._held_out_rows(y_n_enc, n_classes, seed)
        train_on_meta = (
            self.method_.train_on_meta if self.train_on_meta == "auto" else self.train_on_meta
        )
        train_on_meta = train_on_meta or self.method_.requires_trusted_rows
        # the noisy rows as (array, rows): X's rows with meta_mask (not taken from
        # X yet), else X_n itself; the training set below gathers its rows from
        # them into one float32 array, and everything else takes views or blocks
        if X_n is None:
            trusted_rows = np.setdiff1d(np.arange(len(y)), noisy_rows, assume_unique=True)
            noisy_source, trusted_part = (X, noisy_rows), (X, trusted_rows)
        else:
            noisy_source, trusted_part = (X_n, None), (X_t, None)

        def noisy_part(rows):  # rows: indices into the noisy rows
            array, source_rows = noisy_source
            return array, (rows if source_rows is None else source_rows[rows])

        if held is None:
            fit_rows, y_fit = np.arange(len(y_n_enc)), y_n_enc
            fit_part = noisy_source
        else:
            fit_rows = np.setdiff1d(np.arange(len(y_n_enc)), held)
            y_fit = y_n_enc[fit_rows]
            fit_part = noisy_part(fit_rows)
        has_trusted_set = X_meta is not None or meta_mask is not None
        pretrain = self._resolve_pretrain_epochs(train_on_meta, has_trusted_set)
        if train_on_meta:  # the fitted noisy rows then the trusted ones: one copy
            X_train = _stack_rows([fit_part, trusted_part])
            X_fit, X_t = X_train[: len(fit_rows)], X_train[len(fit_rows) :]
            y_train = np.concatenate([y_fit, y_t_enc])
            trusted = np.r_[np.zeros(len(y_fit), bool), np.ones(len(y_t_enc), bool)]
        else:
            if fit_part[1] is None and fit_part[0].dtype == np.float32:
                X_train = fit_part[0]  # X as given: read, never written
            else:
                X_train = _stack_rows([fit_part])
            X_fit, y_train = X_train, y_fit
            if X_t is None:  # meta_mask
                X_t = _stack_rows([trusted_part])
            trusted = np.zeros(len(y_fit), bool)

        reuse_virtual_grad = self._resolve_reuse_virtual_grad()
        average = self._resolve_average()
        device = _resolve_device(self.device)
        self.pretrain_check_ = None
        if pretrain == "auto":
            self.pretrain_check_ = self._check_pretraining(
                X_t, y_t_enc, X_fit, y_fit, n_classes, device, seed
            )
            pretrain = AUTO_PRETRAIN_EPOCHS if self.pretrain_check_["pretrain"] else 0
        auto_warmup = self.warmup_epochs == "auto"
        self.warmup_check_ = None
        if (
            self.warmup_epochs is None
            and self.method_.default_warmup_check
            and self.method_.uses_meta_step
            and not pretrain  # the auto warm-up scores on the trusted rows: held out
            and has_trusted_set
        ):
            self.warmup_check_ = self._check_warmup(
                X_t, y_t_enc, X_fit, y_fit, n_classes, device, seed
            )
            auto_warmup = self.warmup_check_["auto_warmup"]
        self.init_check_ = None
        if has_trusted_set and self.method_.uses_label_estimate(n_classes):
            self.init_check_ = self._check_labels(
                X_t, y_t_enc, X_fit, y_fit, n_classes, device, seed
            )
        # the one trusted-set check this fit ran, whichever asked for it (or None)
        fit_check = self.init_check_ or self.pretrain_check_ or self.warmup_check_
        heavy_noise = self._heavy_noise_found(fit_check)
        self.heavy_noise_ = self._heavy_noise(
            self._heavy_noise_candidates(n_classes, train_on_meta, user_callbacks),
            fit_check,
            heavy_noise,
        )
        if self.verbose and self.heavy_noise_:
            print(f"{self.method_.name}: heavy noise, {self.heavy_noise_}")
        pretrain = self.heavy_noise_.get("pretrain_epochs", pretrain)
        reuse_virtual_grad = self.heavy_noise_.get("reuse_virtual_grad", reuse_virtual_grad)
        lr_schedule = self._resolve_lr_schedule(user_callbacks, self.heavy_noise_)
        valid = None
        if held is not None:
            # skorch's validation loop scores the held-out rows each epoch
            valid = predefined_split(
                Dataset(
                    _stack_rows([noisy_part(held)]),
                    encode_targets(y_n_enc[held], np.zeros(len(held), bool)),
                )
            )
        if self.warmup_epochs is None or auto_warmup:  # the method's (auto: the cap)
            steps_per_epoch = math.ceil(len(y_train) / int(self.batch_size))
            warmup = self.method_.fixed_warmup(self.max_epochs, steps_per_epoch)
        else:
            warmup = self.warmup_epochs
        if self.warmup_epochs is None and pretrain and self.method_.pretraining_replaces_warmup:
            warmup = 0
        info = TrainInfo(
            n_samples=len(y_train),
            n_classes=n_classes,
            y=torch.as_tensor(y_train, dtype=torch.int64),
            trusted=torch.as_tensor(trusted),
            n_features=X.shape[1],
            label_accuracy=(fit_check or {}).get("estimated_label_accuracy"),
            heavy_noise=heavy_noise,
            trusted_accuracy=(fit_check or {}).get("trusted_cv_accuracy"),
            default_warmup=self.warmup_epochs is None and not auto_warmup and not pretrain,
            meta_class_weight=(
                None
                if self.meta_class_weight_ is None
                else torch.as_tensor(self.meta_class_weight_, dtype=torch.float32)
            ),
        )
        optimizer_params = {
            f"optimizer__{k}": v
            for k, v in self._resolve_optimizer_params(self.heavy_noise_).items()
        }

        def make_net(method):
            return BiLevelNet(
                module=self._make_module(X.shape[1], n_classes),
                criterion=nn.CrossEntropyLoss,
                optimizer=self.optimizer,
                lr=self._resolve_lr(self.heavy_noise_),
                max_epochs=self.max_epochs,
                batch_size=self.batch_size,
                iterator_train=BatchLoader,
                iterator_train__shuffle=True,
                iterator_valid=BatchLoader,
                iterator_valid__batch_size=max(self.batch_size, VALID_BATCH_SIZE),
                train_split=valid,
                device=device,
                verbose=self.verbose,
                callbacks=(
                    ([HeldOutEarlyStopping(self.n_iter_no_change)] if valid else [])
                    + ([AutoWarmup(AUTO_WARMUP_PATIENCE)] if auto_warmup else [])
                    + ([TailAveraging(average)] if average else [])
                    + self._schedule_callbacks(lr_schedule)
                    + copy.deepcopy(user_callbacks)  # a fit leaves the user's objects alone
                    + (
                        [_ProgressBar(postfix_keys=["train_loss", "meta_loss"])]
                        if self.verbose
                        else []
                    )
                ),
                method=method,
                train_info=copy.copy(info),
                warmup_epochs=warmup,
                meta_lr=self.method_.default_meta_lr if self.meta_lr is None else self.meta_lr,
                meta_every=(
                    self.heavy_noise_.get("meta_every", self.method_.default_meta_every)
                    if self.meta_every is None
                    else self.meta_every
                ),
                lookahead=self.lookahead,
                reuse_virtual_grad=reuse_virtual_grad,
                auto_warmup=auto_warmup,
                pretrain_epochs=pretrain,
                **optimizer_params,
            )

        fork_devices = [torch.device(device)] if str(device).startswith("cuda") else []
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(seed)
            meta_batches = MetaBatches(
                X_t.astype(np.float32),
                y_t_enc,
                self.meta_batch_size or 256,
                device,
                seed,
            )
            targets = encode_targets(y_train, trusted)
            with config_context(enable_metadata_routing=False):
                net = self.method_.fit_net(make_net, X_train, targets, meta_batches)
        # the training copy of X (X_fit and X_t may be views of it) goes before the
        # corrections below
        del X_train, X_fit, X_t, targets

        self._check_finite(net)
        if net.interrupted_:
            warnings.warn(
                f"fit was interrupted during epoch {len(net.history)} of {self.max_epochs}; "
                "the estimator holds the model as trained so far (n_iter_ counts the "
                "completed epochs).",
                UserWarning,
                stacklevel=3,
            )
        self.net_ = net
        self.history_ = net.history
        self.n_iter_ = sum("train_loss" in row for row in net.history)
        # a method without meta steps (ce, glc) has no warm-up to report
        uses_meta_step = self.method_.uses_meta_step
        self.warmup_epochs_ = min(int(net.warmup_epochs), self.n_iter_) if uses_meta_step else 0
        averaging = [cb for _, cb in net.callbacks_ if isinstance(cb, TailAveraging)]
        self.averaged_epochs_ = 0
        if averaging and not net.interrupted_:
            self.averaged_epochs_ = averaging[0].n_averaged_
        self.pretrain_loss_curve_ = list(net.pretrain_loss_curve_)
        self.pretrain_epochs_ = len(self.pretrain_loss_curve_)
        self._set_early_stopping_attributes(net, held, noisy_rows, len(y))
        logits = _predict_rows(net, *noisy_source, max(self.batch_size, VALID_BATCH_SIZE))
        self._set_corrections(net, logits, y_n_enc, y_t_enc, noisy_rows, len(y), fit_rows, held)

    def _held_out_rows(self, y_n_enc, n_classes, seed):
        """Noisy rows (indices into them) held out for early stopping, or None.

        Stratified by the given label: ``floor(validation_fraction * count)`` rows
        of each class, so every class keeps at least one training row.
        """
        if not self.early_stopping:
            return None
        rng = np.random.RandomState(seed)
        held = []
        for c in range(n_classes):
            members = np.flatnonzero(y_n_enc == c)
            k = int(np.floor(self.validation_fraction * len(members)))
            held.append(rng.choice(members, size=k, replace=False))
        held = np.sort(np.concatenate(held))
        if not len(held):
            raise ValueError(
                f"early_stopping: validation_fraction={self.validation_fraction} of "
                f"{len(y_n_enc)} noisy rows holds out no row (no class has "
                f"{int(np.ceil(1 / self.validation_fraction))} rows or more); raise "
                "validation_fraction or set early_stopping=False."
            )
        return held

    def _set_early_stopping_attributes(self, net, held, noisy_rows, n_rows):
        self.best_epoch_ = self.best_validation_score_ = self.validation_mask_ = None
        if held is None:
            return
        stopper = next(cb for _, cb in net.callbacks_ if isinstance(cb, HeldOutEarlyStopping))
        if stopper.best_model_weights_ is not None:
            self.best_epoch_ = int(stopper.best_epoch_)
            self.best_validation_score_ = float(net.history[self.best_epoch_ - 1, "valid_acc"])
        # the held-out rows were only needed for training: a pickled model does not
        # carry a copy of them (validation_mask_ says which rows they were)
        net.train_split = None
        self.validation_mask_ = np.zeros(n_rows, bool)
        self.validation_mask_[held if noisy_rows is None else noisy_rows[held]] = True

    def _set_corrections(self, net, logits, y_n_enc, y_t_enc, noisy_rows, n_rows, fit_rows, held):
        """The corrected labels and the fitted tables, from the network's ``logits``
        on the noisy rows (all of them, held-out ones included, in order)."""
        n_classes = len(self.classes_)
        rows = np.arange(len(fit_rows))  # the fitted noisy rows' places in the tables
        with torch.no_grad():
            proba = logits.softmax(1).to(net.device)
            y_dev = torch.as_tensor(y_n_enc, device=net.device)
            idx = torch.as_tensor(rows, device=net.device)
            p_fit, y_fit = proba, y_dev  # every noisy row was fitted: no copies
            if held is not None:
                fit_dev = torch.as_tensor(fit_rows, device=net.device)
                p_fit, y_fit = proba[fit_dev], y_dev[fit_dev]
            q_fit = self.method_.correct(net, p_fit, y_fit, idx)
            # a copy of its own (a method may return a table it keeps): divided in place
            q_fit = q_fit.to("cpu", torch.float64, copy=True).numpy()
        q_fit /= q_fit.sum(1, keepdims=True)
        self.transition_matrix_ = np.asarray(
            self.method_.transition_matrix(net, q_fit, y_n_enc[fit_rows]), dtype=np.float64
        )
        if held is None:  # every noisy row was fitted, in order
            q = q_fit
        else:
            q = np.zeros((len(y_n_enc), n_classes))
            q[fit_rows] = q_fit
        extra = self.method_.fitted_attributes(net, rows)
        if held is not None:
            with torch.no_grad():
                held_dev = torch.as_tensor(held, device=net.device)
                T = torch.as_tensor(self.transition_matrix_, device=net.device)
                q_held = self.method_.correct_held_out(net, proba[held_dev], y_dev[held_dev], T)
                q_held = q_held.double().cpu().numpy()
            q[held] = q_held / q_held.sum(1, keepdims=True)
            extra = self._spread(extra, len(rows), fit_rows, len(y_n_enc))
        if noisy_rows is not None:
            full = np.zeros((n_rows, n_classes))
            trusted_rows = np.setdiff1d(np.arange(n_rows), noisy_rows)
            full[trusted_rows, y_t_enc] = 1.0
            full[noisy_rows] = q
            q = full
            extra = self._spread(extra, len(y_n_enc), noisy_rows, n_rows)
        self.corrected_proba_ = q
        self.corrected_labels_ = self.classes_[q.argmax(1)]
        for key, value in extra.items():
            setattr(self, key, value)

    @staticmethod
    def _spread(extra, n_from, places, n_to):
        """Per-sample arrays of ``n_from`` rows put at ``places`` of ``n_to`` rows (NaN elsewhere).

        Other values (e.g. a fitted module) are kept as they are.
        """
        out = {}
        for key, value in extra.items():
            if isinstance(value, np.ndarray) and value.ndim and len(value) == n_from:
                spread = np.full((n_to, *value.shape[1:]), np.nan)
                spread[places] = value
                value = spread
            out[key] = value
        return out

    def _check_finite(self, net):
        # an interrupted epoch has no train_loss yet; it is not a divergence
        losses = [row["train_loss"] for row in net.history if "train_loss" in row]
        params_finite = all(torch.isfinite(p).all() for p in net.module_.parameters())
        meta_finite = all(torch.isfinite(p).all() for p in net.meta_module_.parameters())
        if not (params_finite and meta_finite and np.isfinite(losses).all()):
            raise FloatingPointError(
                "Training diverged (a loss or weight is not finite); lower lr "
                f"(now {net.lr}) or meta_lr (now {net.meta_lr})."
            )

    # ------------------------------------------------------------- predict
    def _logits(self, X):
        check_is_fitted(self)
        X = validate_data(self, _densify(X, "X"), reset=False, dtype=[np.float64, np.float32])
        logits = self.net_.predict_logits(X).double()  # float64 X is read batch by batch
        if not torch.isfinite(logits).all():
            raise FloatingPointError(
                "The network produced non-finite scores for some rows of X (inputs far "
                "outside the training range?); no probabilities are returned."
            )
        return logits

    def predict_proba(self, X):
        """Class probabilities for ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns ordered as ``classes_``; rows sum to 1.
        """
        return self._logits(X).softmax(1).numpy()

    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`, computed stably.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
        """
        return self._logits(X).log_softmax(1).numpy()

    def predict(self, X):
        """Predicted class of each row of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels in the original label space (``classes_``).
        """
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # densified, with a DataConversionWarning
        return tags
