"""The bi-level training engine.

:class:`BiLevelNet` is a skorch :class:`~skorch.NeuralNet` that overrides only
:meth:`train_step`.  One training step of a meta method is

1. **virtual step**: the training loss of the batch (which depends on the
   method's meta parameters) is differentiated with ``create_graph=True`` and
   the network parameters are moved one step, giving look-ahead parameters
   ``theta_hat(phi)`` as a differentiable function of the meta parameters
   ``phi``.  The step uses the live learning rate of the real optimizer; when
   that optimizer keeps a second-moment estimate (Adam, AdamW, RMSprop) the
   gradient is preconditioned by it so that the look-ahead moves about as far
   as the real step will (momentum is not applied).  The network is evaluated
   with :func:`torch.func.functional_call` on *copies* of its buffers, so
   BatchNorm running statistics are untouched by the virtual step.
2. **meta step**: the method's meta loss (cross-entropy on a batch of the
   trusted set by default) is evaluated at ``theta_hat`` and differentiated with
   respect to ``phi``; the meta optimizer takes a step.
3. **actual step**: the training loss is recomputed with the updated
   (detached) meta parameters and the real optimizer takes a step.  The
   network's forward pass of the batch is not run again: the virtual step ran
   it at the same (live) parameters, so its output and graph are reused (the
   meta gradient keeps that graph alive), which saves one forward pass per meta
   step at identical results.  Dropout therefore uses one mask for both steps.
   With ``reuse_virtual_grad`` the backward pass is not run again either: the
   real optimizer takes the virtual step's gradient, i.e. the gradient at the
   meta parameters before this step's meta update (one step old), and the
   loss is evaluated without a graph only for the method's per-sample tables.
   With that gradient a plain Adam or AdamW (the default optimizer) does not
   compute its step again either: the virtual step already updated its second
   moment with the same gradient and formed the per-element step size from it,
   so the actual step takes those (:func:`_adam_step_from_lookahead`; equal to
   Adam's own step up to rounding, about 6% of a meta epoch saved on the speed
   benchmark's case).

Before the first epoch, with ``pretrain_epochs``, the network is trained on
the trusted set alone (plain cross-entropy, :meth:`BiLevelNet._pretrain`), so
that training on the noisy rows starts from a model of the clean rows; the
method then sees that model's predictions (``MetaMethod.pretrained``).
During the first ``warmup_epochs`` epochs only the actual step runs.  With
``auto_warmup`` (the classifier's ``warmup_epochs="auto"``) the warm-up trains
on the noisy rows only and :class:`AutoWarmup` ends it early, from the trusted
set's accuracy.

Every :data:`FLUSH_DENORMALS_EVERY` (32) optimizer steps the denormal entries
of the parameters and of both optimizers' state (per-sample tables
excepted) are set to zero (:func:`flush_denormals`): weights fed by dead
units shrink into that range under weight decay, and on a CPU every product
with them is slow.

Everything particular to a method lives in a :class:`~sklearn_noisy.methods.
MetaMethod`: the engine asks it for the meta module (meta parameters and
per-sample tables, registered through :meth:`initialize_module` so that device
moves, train/eval mode and pickling come from skorch), the per-sample training
loss, and the correction of a batch.  Meta parameters are kept out of the main
optimizer and have their own optimizer, ``meta_optimizer_``.

Targets reach :meth:`train_step` as an ``(n, 3)`` integer tensor holding the
encoded label, the sample's row index (for per-sample tables) and a flag that
marks trusted rows that are trained on with plain cross-entropy.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping
from skorch.dataset import Dataset, unpack_data
from skorch.utils import to_device
from torch import nn
from torch.func import functional_call
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

from .methods._base import validate_learnable_noise
from .modules import has_backbone_head

__all__ = [
    "AutoWarmup",
    "BatchLoader",
    "BiLevelNet",
    "Forward",
    "HeldOutEarlyStopping",
    "MetaBatches",
    "TrainInfo",
]


@dataclass
class TrainInfo:
    """What a method needs to know about the training set when it builds state.

    Attributes
    ----------
    n_samples : int
        Rows in the training table (noisy rows, then trusted rows if they are
        trained on).
    n_classes : int
    y : torch.Tensor
        Encoded labels of those rows (noisy labels, then trusted labels), int64,
        on the net's device.
    trusted : torch.Tensor
        Boolean mask of the trusted rows among them.
    n_features : int
    label_accuracy : float or None
        The trusted-set check's estimate of the share of right labels among the
        noisy rows (``estimated_label_accuracy`` of
        :func:`~sklearn_noisy._pretrain_check.trusted_set_check`): from the check
        run for a method whose
        :meth:`~sklearn_noisy.methods.MetaMethod.uses_label_estimate`, else from
        the check of ``pretrain_epochs="auto"`` or of the warm-up when one ran;
        ``None`` when no check ran or it could not estimate.
    heavy_noise : bool
        Whether that check marks heavy noise for the method (its
        chance-corrected estimate below ``HEAVY_NOISE_BELOW``, and for a method
        whose heavy-noise start leans on the trusted rows' model, that model
        estimated better than the labels): the cut of ``mlc``'s uniform T and
        ``mslc``'s first soft label.
    trusted_accuracy : float or None
        That check's cross-validated accuracy of a network trained on the
        trusted rows alone (``trusted_cv_accuracy``); ``None`` when no check
        ran.  ``tmlc`` reads it with ``heavy_noise`` (its sharpening).
    default_warmup : bool
        Whether the warm-up is the method's fixed default: the classifier's
        ``warmup_epochs=None`` with neither the automatic warm-up nor a
        pre-training.  Only such a warm-up is lengthened where the noise is
        learnable (:meth:`~sklearn_noisy.methods.MetaMethod.learnable_noise_response`).
    meta_class_weight : torch.Tensor or None
        Weight of a trusted row of each class in the meta loss, float32, on the
        net's device (the classifier's ``meta_class_weight_``); ``None``: every
        trusted row weighs the same.
    """

    n_samples: int
    n_classes: int
    y: torch.Tensor
    trusted: torch.Tensor
    n_features: int
    label_accuracy: float | None = None
    heavy_noise: bool = False
    trusted_accuracy: float | None = None
    default_warmup: bool = False
    meta_class_weight: torch.Tensor | None = None

    @property
    def trusted_rows_better(self) -> bool:
        """Whether that check found the trusted rows alone to predict better than
        the labels are right (the rule of ``pretrain_epochs="auto"``); ``False``
        when no check ran."""
        from ._pretrain_check import trusted_rows_predict_better  # it imports this module

        if self.trusted_accuracy is None:
            return False
        return trusted_rows_predict_better(
            check_estimate=self.label_accuracy, trusted_accuracy=self.trusted_accuracy
        )


class MetaBatches:
    """Endless, reshuffled mini-batches of the trusted set.

    Built for one ``fit`` and passed to :meth:`BiLevelNet.fit` as a fit
    parameter, so it is never stored on the fitted net (it holds a generator and
    the meta data, neither of which belongs in a pickle).
    """

    def __init__(self, X, y, batch_size, device, seed):
        self.X = torch.as_tensor(X, dtype=torch.float32).to(device)
        self.y = torch.as_tensor(y, dtype=torch.int64).to(device)
        self.batch_size = min(int(batch_size), len(self.y))
        self.seed = int(seed)
        self._gen = torch.Generator().manual_seed(self.seed)
        self._iter = self._cycle()

    def epochs(self, n_epochs, batch_size):
        """``n_epochs`` passes over the trusted set, each a list of shuffled batches.

        Every row once per pass, the last batch of a pass possibly smaller.  The
        shuffles come from a generator of their own, so the endless meta batches
        are drawn as they would be without these passes.
        """
        gen = torch.Generator().manual_seed(self.seed + 1)
        n = len(self.y)
        for _ in range(int(n_epochs)):
            perm = torch.randperm(n, generator=gen).to(self.X.device)
            yield [
                self._take(sel)
                for sel in (perm[s : s + batch_size] for s in range(0, n, batch_size))
            ]

    def _cycle(self):
        n = len(self.y)
        while True:
            perm = torch.randperm(n, generator=self._gen).to(self.X.device)
            for start in range(0, n - self.batch_size + 1, self.batch_size):
                yield self._take(perm[start : start + self.batch_size])

    def _take(self, sel):
        # index_select: the same rows as X[sel], in under a third of the time on the CPU
        return self.X.index_select(0, sel), self.y.index_select(0, sel)

    def __next__(self):
        return next(self._iter)

    def __iter__(self):
        return self


def cross_entropy_pass(module, optimizer, batches):
    """One optimizer step of plain cross-entropy per ``(X, y)`` batch.

    The pre-training (:meth:`BiLevelNet._pretrain`) and the folds of its
    ``"auto"`` check (:mod:`sklearn_noisy._pretrain_check`) train this way.
    Returns the loss summed over the rows, a tensor (no host sync).
    """
    total = None
    for Xb, yb in batches:
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(module(Xb), yb)
        loss.backward()
        optimizer.step()
        part = loss.detach() * len(yb)
        total = part if total is None else total + part
    return total


#: Every this many optimizer steps the engine sets denormal entries of the
#: parameters and of the optimizers' state to zero (:func:`flush_denormals`).
FLUSH_DENORMALS_EVERY = 32


def flush_denormals(optimizers, table_rows=None):
    """Set the denormal entries of the optimizers' parameters and state to zero.

    A weight that only ever multiplies zeros (fed by a unit that no longer
    fires, or by an input column that is 0 in every row, such as MNIST's border
    pixels) gets no gradient but the weight decay's, and Adam divides that by a
    second moment remembered from when the weight had more: the weight shrinks
    geometrically, into the denormal range (below ``torch.finfo(dtype).tiny``,
    1.2e-38 in float32), and so does Adam's first moment of it, with or
    without weight decay.
    On a CPU every product with a denormal operand takes a slow path, so a layer
    with a few thousand such weights made whole epochs four to six times slower
    (the speed benchmark's embeddings case).  Zeroing them is what a CPU in
    flush-to-zero mode would do with them, without changing that mode for the
    caller's process; entries that are not denormal are left to the bit, so a
    fit in which no denormal arises is unchanged (NaN stays NaN, -0.0 stays
    -0.0).  Floating-point tensors of every dtype are visited, each against its
    own dtype's smallest normal; integer state (step counts) is not.  One flush
    of the default MLP for 784 features (270k weights, Adam) takes about 2 ms on
    one CPU thread, once every :data:`FLUSH_DENORMALS_EVERY` steps: about 1% of
    a plain step.

    A parameter whose first dimension is ``table_rows`` (a per-sample table,
    such as ``mslg``'s labels) is left alone, with its state: a step reads and
    writes a batch of its rows, not the whole of it, so its denormals cost
    little, and a pass over the whole table every few steps would cost more
    than the training's own work on it (a million rows).
    """
    with torch.no_grad():
        for optimizer in optimizers:
            for group in optimizer.param_groups:
                for param in group["params"]:
                    if table_rows is not None and param.ndim and len(param) == table_rows:
                        continue
                    tensors = [param, *optimizer.state.get(param, {}).values()]
                    for t in tensors:
                        if torch.is_tensor(t) and t.is_floating_point() and t.numel():
                            # times 1 or 0: the fewest passes, and zeros keep their sign
                            t.mul_(t.abs() >= torch.finfo(t.dtype).tiny)


class _Rows(torch.utils.data.Dataset):
    """A skorch :class:`~skorch.dataset.Dataset` read a whole batch of rows at a time.

    A float64 ``X`` is read as float32, batch by batch (the networks are
    float32): predicting on float64 input needs no float32 copy of all of it.
    """

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    @staticmethod
    def _take(array, rows):
        if isinstance(array, torch.Tensor):
            return array[torch.as_tensor(rows, device=array.device)]
        return torch.from_numpy(np.ascontiguousarray(array[rows]))

    def __getitem__(self, rows):
        d = self.dataset
        rows = np.asarray(rows)
        X = d.X
        if isinstance(X, np.ndarray) and X.dtype == np.float64:
            X = self._take(X, rows).float()  # the batch's float32 copy: not all of X
        else:
            X = self._take(X, rows)
        if d.y is None:  # skorch's placeholder target, one per row
            return X, torch.zeros(len(rows))
        return X, self._take(d.y, rows)


def _batchable(dataset):
    """Whether ``dataset`` is a plain skorch Dataset of arrays (rows can be sliced)."""
    arrays = (np.ndarray, torch.Tensor)
    return (
        type(dataset) is Dataset
        and isinstance(dataset.X, arrays)
        and (dataset.y is None or isinstance(dataset.y, arrays))
    )


class BatchLoader(DataLoader):
    """A :class:`~torch.utils.data.DataLoader` that indexes whole batches.

    skorch's default loader asks its Dataset for one row at a time and stacks
    the rows (``default_collate``); for the default MLP on CPU that was a
    fifth of a plain training epoch (``benchmarks/HISTORY.md``, "Speed:
    earlier rounds"), and most of
    a prediction's time.  This loader draws the same batches of row
    indices (the same ``RandomSampler`` or ``SequentialSampler`` in a
    ``BatchSampler``, drawing from the same random generators in the same
    order, so a seeded fit gives the same model to the bit) and reads each batch
    with one fancy-indexing call.  A dataset other than a skorch ``Dataset`` of
    arrays goes to the ordinary per-row loading.  Used as the net's
    ``iterator_train`` and ``iterator_valid``.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, **kwargs):
        custom = any(kwargs.get(k) is not None for k in ("collate_fn", "sampler", "batch_sampler"))
        if not _batchable(dataset) or custom:
            super().__init__(dataset, batch_size=batch_size, shuffle=shuffle, **kwargs)
            return
        generator = kwargs.pop("generator", None)
        drop_last = kwargs.pop("drop_last", False)
        rows = (
            RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        )
        super().__init__(
            _Rows(dataset),
            batch_size=None,
            sampler=BatchSampler(rows, batch_size, drop_last=drop_last),
            generator=generator,
            **kwargs,
        )


class Forward:
    """The network evaluated at given parameters (or at its live ones).

    ``Forward(module)`` calls the module itself; ``Forward(module, params,
    buffers)`` calls it functionally at ``params``.  ``features`` and ``head``
    give the two halves of a module with a backbone/head split.

    ``record=True`` keeps each output with its input; a later
    ``Forward(module, reuse=recorded)`` returns the recorded output when it is
    called again on the *same* input tensor (identity, not equality) instead of
    running the network again.  The engine uses this to let the actual step reuse
    the virtual step's forward pass of the training batch: that pass ran at the
    live parameters, so its output and graph are the ones the actual step would
    compute.  On a hit the recorded pass's buffers (BatchNorm running
    statistics, updated once on copies) are written back to the module, so the
    module sees exactly one update per batch, as without reuse.
    """

    def __init__(self, module, params=None, buffers=None, *, record=False, reuse=None):
        self.module = module
        self.params = params
        self.buffers = buffers
        self.record = record
        self.reuse = reuse
        self.outputs = []  # (kind, input, output) of recorded calls

    def _sub(self, prefix):
        if self.params is None:
            return None
        state = {**self.params, **self.buffers}
        n = len(prefix) + 1
        return {k[n:]: v for k, v in state.items() if k.startswith(prefix + ".")}

    def _recalled(self, kind, inp):
        """The recorded output of ``kind`` on ``inp``, buffers written back; else None."""
        if self.reuse is None:
            return None
        for k, x, out in self.reuse.outputs:
            if k == kind and x is inp:
                if kind != "head":  # a head may run twice per pass (mfrw): leave it live
                    self.reuse._write_back_buffers("" if kind == "call" else kind + ".")
                return out
        return None

    def write_back_recorded_buffers(self):
        """Write the buffers of every recorded pass back to the module.

        What an actual step that calls each recorded pass again would write
        back, for an actual step that calls none of them (see
        ``MetaMethod.actual_loss_only_logged``).  A head that ran twice on the
        recorded side (``mfrw``: its output on the features, then on the
        re-weighted features) brings both updates, as on a step without a
        meta step.
        """
        for kind in dict.fromkeys(kind for kind, _, _ in self.outputs):
            self._write_back_buffers("" if kind == "call" else kind + ".")

    def _write_back_buffers(self, prefix):
        if not self.buffers:
            return
        with torch.no_grad():
            for name, live in self.module.named_buffers():
                if name.startswith(prefix) and name in self.buffers:
                    live.copy_(self.buffers[name])

    def _run(self, kind, inp, compute):
        out = self._recalled(kind, inp)
        if out is None:
            out = compute()
            if self.record:
                self.outputs.append((kind, inp, out))
        return out

    def _apply(self, kind, inp):
        """Run the module (``kind="call"``) or its ``backbone``/``head`` on ``inp``."""
        sub = self.module if kind == "call" else getattr(self.module, kind)
        if self.params is None:
            return self._run(kind, inp, lambda: sub(inp))
        state = (self.params, self.buffers) if kind == "call" else self._sub(kind)
        return self._run(kind, inp, lambda: functional_call(sub, state, (inp,)))

    def __call__(self, X):
        return self._apply("call", X)

    def features(self, X):
        return self._apply("backbone", X)

    def head(self, f):
        return self._apply("head", f)


class HeldOutEarlyStopping(EarlyStopping):
    """skorch's ``EarlyStopping`` on ``valid_acc``, watching only the method's epochs.

    * Epochs of warm-up (plain training before a method's meta steps start) are
      neither candidates for the best epoch nor counted as misses: the restored
      model is always one the method trained, never a plain warm-up model.
    * An epoch that *ties* the best held-out accuracy becomes the new best (skorch
      keeps the first): on a flat curve the later model has seen more of the
      correction.
    * Stopping marks ``net.stopped_early_`` so that the net can tell it from a
      user's KeyboardInterrupt (skorch stops a fit by raising one).

    The best epoch's module weights are restored at the end of training
    (``load_best``); the method's meta module (learned T, per-sample tables)
    keeps its last state.
    """

    def __init__(self, patience):
        super().__init__(
            monitor="valid_acc",
            patience=patience,
            threshold=0.0,
            threshold_mode="abs",
            lower_is_better=False,
            load_best=True,
            sink=print,
        )

    def _is_score_improved(self, score):
        return score >= self.dynamic_threshold_

    def on_epoch_end(self, net, **kwargs):
        if net.method.uses_meta_step and not net.meta_active_:
            return
        try:
            super().on_epoch_end(net, **kwargs)
        except KeyboardInterrupt:
            net.stopped_early_ = True
            raise


class AutoWarmup(Callback):
    """Ends a method's warm-up when the model starts to memorise the noisy labels.

    Used with the classifier's ``warmup_epochs="auto"``.  The net's
    ``warmup_epochs`` is then a cap; during the warm-up the trusted rows are not
    trained on (the net's ``auto_warmup``), so the trusted set is clean data the
    model has not seen.  After each warm-up epoch the model's accuracy on the
    whole trusted set is recorded (``warmup_acc`` in the history).  Training on
    noisy labels first learns the patterns shared by the clean rows, then
    memorises the flipped labels, and clean accuracy falls; the warm-up ends
    when ``patience`` epochs in a row have not matched the best accuracy, or at
    the cap.  The best warm-up epoch's module weights are restored (an epoch
    that ties the best replaces it), the method may build its state from that
    model's predictions of the training rows
    (:meth:`~sklearn_noisy.methods.MetaMethod.warmup_ended`), and the meta
    steps start with the next epoch; the trusted rows are trained on from then
    on, as usual.  The meta phase thus gets the epochs the warm-up did not use.

    The trusted set decides only when the warm-up ends and which warm-up model
    the method starts from; no test data is involved.

    Attributes
    ----------
    best_epoch_ : int or None
        The warm-up epoch (1-based) whose weights the meta phase started from;
        ``None`` until the warm-up ended.
    """

    def __init__(self, patience=5):
        self.patience = patience

    def initialize(self):
        self.best_epoch_ = None
        self._best = (-1.0, None, None)  # (accuracy, epoch, module state)
        self._misses = 0
        return self

    def _trusted_accuracy(self, net):
        data = net._meta_data
        net._set_training(False)
        try:
            with torch.no_grad():
                hits = 0
                for start in range(0, len(data.y), 4096):
                    logits = net.module_(data.X[start : start + 4096])
                    hits += int((logits.argmax(1) == data.y[start : start + 4096]).sum())
        finally:
            net._set_training(True)
        return hits / len(data.y)

    def on_epoch_end(self, net, dataset_train=None, **kwargs):
        if self.best_epoch_ is not None or not net.auto_warmup:
            return
        epoch = net.epoch_ + 1  # epochs done
        if epoch > net.warmup_epochs or net._meta_data is None:
            return
        acc = self._trusted_accuracy(net)
        net.history.record("warmup_acc", acc)
        if acc >= self._best[0]:
            state = {k: v.detach().clone() for k, v in net.module_.state_dict().items()}
            self._best = (acc, epoch, state)
            self._misses = 0
        else:
            self._misses += 1
        if self._misses >= self.patience or epoch >= net.warmup_epochs:
            self.best_epoch_ = self._restore_best(net)
            net.warmup_epochs = epoch  # the meta steps start with the next epoch
            if dataset_train is not None and epoch < net.max_epochs:
                net.method.warmup_ended(
                    net, lambda: net.predict_logits(dataset_train, net.device).softmax(1)
                )

    def on_train_end(self, net, **kwargs):
        # training ended inside the warm-up (a cap beyond max_epochs): the model
        # is the best warm-up epoch's all the same; after a user's interrupt it
        # is the model as trained so far.  No copy of the weights is kept.
        if getattr(net, "interrupted_", False):
            self._best = (-1.0, None, None)
        elif self._best[2] is not None:
            self.best_epoch_ = self._restore_best(net)

    def _restore_best(self, net):
        """Load the best warm-up epoch's weights, drop the copy; return that epoch."""
        _, epoch, state = self._best
        self._best = (-1.0, None, None)
        net.module_.load_state_dict(state)
        return epoch


class TailAveraging(Callback):
    """Averages the module's weights over the last epochs of training.

    Used with the classifier's ``average``.  At the end of each epoch in the
    averaging window the module's state (weights and buffers) is added to a
    running mean; when training ends, the module is given that mean.  The
    window is the last ``ceil(fraction * max_epochs)`` epochs, and never
    reaches into the warm-up: only models the method trained are averaged.

    Why: at a constant learning rate the network trained on noisy labels
    moves from epoch to epoch, and its test accuracy with it (``tmlc`` on
    MNIST at symmetric 80%: between 0.73 and 0.79 over the last ten epochs);
    which of those models a fit returns is then luck.  The average of the
    last epochs' weights (stochastic weight averaging, Izmailov et al., 2018,
    with one snapshot per epoch) sits in the middle of that walk.

    Each epoch in the window is marked ``averaged=True`` in the history.

    Choices: one snapshot per epoch (per step would cost an update of every
    weight per batch); BatchNorm running statistics are averaged like the
    weights rather than recomputed on the training data; the method's meta
    module (learned T, per-sample tables) keeps its last state.  A fit
    interrupted by the user keeps the model as trained so far.

    Attributes
    ----------
    n_averaged_ : int
        Number of epochs whose weights were averaged.
    """

    def __init__(self, fraction):
        self.fraction = fraction

    def initialize(self):
        self.n_averaged_ = 0
        self._mean = None
        return self

    def first_epoch(self, net):
        """The first epoch (1-based) of the averaging window."""
        window = math.ceil(self.fraction * net.max_epochs)
        start = net.max_epochs - window + 1
        if net.method is not None and net.method.uses_meta_step:
            start = max(start, net.warmup_epochs + 1)
        return start

    def on_epoch_end(self, net, **kwargs):
        if net.epoch_ + 1 < self.first_epoch(net):
            return
        self.n_averaged_ += 1
        net.history.record("averaged", True)
        with torch.no_grad():
            state = net.module_.state_dict()
            if self._mean is None:
                self._mean = {k: v.detach().clone() for k, v in state.items()}
                return
            w = 1.0 / self.n_averaged_
            for k, v in state.items():
                if v.is_floating_point():
                    self._mean[k].lerp_(v, w)
                else:  # e.g. BatchNorm's batch counter: the last one
                    self._mean[k].copy_(v)

    def on_train_end(self, net, **kwargs):
        mean, self._mean = self._mean, None  # no copy of the weights is pickled
        if mean is not None and not getattr(net, "interrupted_", False):
            net.module_.load_state_dict(mean)


def _param_group(optimizer, param):
    """The optimizer's parameter group that holds ``param``."""
    if len(optimizer.param_groups) == 1:
        return optimizer.param_groups[0]
    return next(g for g in optimizer.param_groups if any(p is param for p in g["params"]))


class _Step(torch.autograd.Function):
    """``start + grad * neg_scale``, differentiable in ``start`` and ``grad``.

    The look-ahead step for a per-element step size (``neg_scale``, a constant
    of the meta parameters).  The same value as ``torch.addcmul(start, grad,
    scale, value=-1)`` to the bit, but its backward multiplies the incoming
    gradient by ``neg_scale`` in one pass, where autograd's ``addcmul``
    backward first forms ``scale * value``: one memory-bound pass over every
    parameter less per meta step (``benchmarks/HISTORY.md``, "The look-ahead
    step, one pass less").
    """

    @staticmethod
    def forward(ctx, start, grad, neg_scale):
        ctx.save_for_backward(neg_scale)
        return torch.addcmul(start, grad, neg_scale)

    @staticmethod
    def backward(ctx, out_grad):
        (neg_scale,) = ctx.saved_tensors
        d_start = out_grad if ctx.needs_input_grad[0] else None
        d_grad = out_grad * neg_scale if ctx.needs_input_grad[1] else None
        return d_start, d_grad, None


def _decoupled_decay(optimizer, group):
    """Whether the optimizer applies its weight decay to the weights (AdamW)."""
    return bool(group.get("decoupled_weight_decay", isinstance(optimizer, torch.optim.AdamW)))


def _lookahead(optimizer, param, grad):
    """``param`` after one virtual step on ``grad`` (graph kept through ``grad``).

    The step mirrors the real optimizer's: its weight decay (added to the
    gradient with the optimizer's own ``grad.add(param, alpha=decay)``, or
    applied to the weights first when it is decoupled, as in AdamW) and, for
    Adam-like optimizers, its diagonal preconditioner (:func:`_neg_step_size`).
    Momentum is left out.

    Returns the look-ahead parameter and a :class:`_AdamMoments` of the step
    (``None`` for optimizers without a second-moment estimate, and before the
    optimizer's first step).
    """
    group = _param_group(optimizer, param)
    lr, decay = group["lr"], group.get("weight_decay", 0.0)
    start = param
    if decay:
        if _decoupled_decay(optimizer, group):
            start = param * (1.0 - lr * decay)
        else:  # a constant of the meta parameters: no graph through it
            grad = torch.add(grad, param.detach(), alpha=decay)
    neg_scale, second_moment = _neg_step_size(optimizer.state.get(param), group, grad)
    moments = None
    if second_moment is not None and "exp_avg_sq" in optimizer.state[param]:
        moments = _AdamMoments(grad.detach(), second_moment, neg_scale)
    if torch.is_tensor(neg_scale):
        return _Step.apply(start, grad, neg_scale), moments
    return start + neg_scale * grad, moments


@dataclass
class _AdamMoments:
    """What the look-ahead computed of the real Adam step on the same gradient.

    ``grad``: the gradient with the (non-decoupled) weight decay added, as Adam
    adds it; ``exp_avg_sq``: the second-moment estimate updated with it;
    ``neg_scale``: minus the step size per element, ``-lr / (sqrt(v_hat) + eps)``.
    With ``reuse_virtual_grad`` the actual step takes the same gradient, so
    :func:`_adam_step_from_lookahead` takes these instead of computing them again.
    """

    grad: torch.Tensor
    exp_avg_sq: torch.Tensor
    neg_scale: torch.Tensor


def _adam_from_lookahead_ok(optimizer):
    """Whether :func:`_adam_step_from_lookahead` may stand in for ``optimizer.step()``.

    Plain ``torch.optim.Adam`` / ``AdamW`` (not a subclass, which may change the
    step) with the features it does not reproduce off (``amsgrad``,
    ``maximize``, ``capturable``, ``differentiable``, ``fused``), and no step
    hooks registered on the optimizer (they would be skipped).
    """
    if type(optimizer) not in (torch.optim.Adam, torch.optim.AdamW):
        return False
    if getattr(optimizer, "_optimizer_step_pre_hooks", None) or getattr(
        optimizer, "_optimizer_step_post_hooks", None
    ):
        return False
    flags = ("amsgrad", "maximize", "capturable", "differentiable", "fused")
    return all(
        not group.get(flag) and not torch.is_tensor(group["lr"])
        for group in optimizer.param_groups
        for flag in flags
    )


@torch.no_grad()
def _adam_step_from_lookahead(optimizer, steps):
    """The real Adam step, from the moments the look-ahead computed.

    ``steps``: ``(param, moments)`` pairs, the gradient of ``moments`` being
    the one the actual step takes (``reuse_virtual_grad``).  Updates the
    optimizer's state as its own ``step()`` would: the step count, the first
    moment (``lerp_``), the second moment (the look-ahead's, which is the same
    update of the same gradient), and the parameter by ``exp_avg / bias1``
    times the look-ahead's step size per element: three passes over each
    parameter where Adam's own step takes seven, the square root and division
    of its denominator among them.  Equal to Adam's step up to rounding (its
    denominator is ``sqrt(v) / sqrt(bias2) + eps``, the look-ahead's
    ``(sqrt(v) + eps * sqrt(bias2)) / sqrt(bias2)``).
    """
    for param, moments in steps:
        group = _param_group(optimizer, param)
        state = optimizer.state[param]
        beta1 = group["betas"][0]
        state["step"] += 1
        lr, decay = group["lr"], group["weight_decay"]
        if decay and _decoupled_decay(optimizer, group):
            param.mul_(1.0 - lr * decay)
        state["exp_avg"].lerp_(moments.grad, 1.0 - beta1)
        state["exp_avg_sq"] = moments.exp_avg_sq
        bias1 = 1.0 - beta1 ** float(state["step"])
        param.addcmul_(state["exp_avg"], moments.neg_scale, value=1.0 / bias1)


def _neg_step_size(state, group, grad):
    """Minus the per-element size of the look-ahead step: ``-lr``, or a tensor.

    ``state`` is the optimizer's state of the parameter (``None`` before its
    first step), ``group`` its parameter group.  Negated (exactly) so that the
    step is one multiply-add, ``param + grad * size``.

    For Adam-like optimizers (Adam, AdamW, RMSprop) this is ``lr`` times the
    diagonal preconditioner, ``lr / (sqrt(v_hat) + eps)``, with the second-moment
    estimate ``v_hat`` first updated with the current gradient, as the real step
    will do, so the look-ahead step is bounded the way Adam's is (an old, tiny
    estimate would blow it up).  Computed without a graph, in place where it can.

    Returns ``(neg_scale, second_moment)``: the updated (not bias-corrected)
    second-moment estimate, or ``None`` where there is none (``-lr``).
    """
    lr = group["lr"]
    if not state or ("exp_avg_sq" not in state and "square_avg" not in state):
        return -lr, None
    eps = group.get("eps", 1e-8)
    g = grad.detach()
    if "exp_avg_sq" in state:  # Adam / AdamW: v_hat = v / (1 - beta2^t)
        beta2 = group["betas"][1]
        root_bc = math.sqrt(1.0 - beta2 ** (float(state["step"]) + 1.0))
        v = state["exp_avg_sq"].mul(beta2).addcmul_(g, g, value=1.0 - beta2)
    else:  # RMSprop
        alpha = group["alpha"]
        root_bc = 1.0
        v = state["square_avg"].mul(alpha).addcmul_(g, g, value=1.0 - alpha)
    # lr / (sqrt(v / bc) + eps) == lr * sqrt(bc) / (sqrt(v) + eps * sqrt(bc))
    return v.sqrt().add_(eps * root_bc).reciprocal_().mul_(-(lr * root_bc)), v


class BiLevelNet(NeuralNet):
    """skorch net running the virtual / meta / actual step of a meta method.

    Parameters (beyond :class:`skorch.NeuralNet`)
    ----------------------------------------------
    method : MetaMethod
        The method (its logic; its state lives in ``meta_module_``).
    train_info : TrainInfo
        Facts about the training table the method builds its state from.
    warmup_epochs : int
        Epochs of plain training before meta steps start.
    meta_lr : float
        Learning rate of the meta optimizer.
    meta_optimizer : torch optimizer class
        Optimizer of the meta parameters.
    meta_every : int
        Run the virtual and meta steps on every ``meta_every``-th batch.
    lookahead : {"full", "head"}
        Which parameters the virtual step moves: all of them, or the head's
        only (the backbone stays put, so the look-ahead and its second-order
        terms cost a fraction; needs a module with a backbone/head split).
    reuse_virtual_grad : bool
        Let the actual step of a meta step take the virtual step's gradient
        instead of running a backward pass (with a full look-ahead only).
    auto_warmup : bool
        ``warmup_epochs`` is a cap that :class:`AutoWarmup` may shorten; the
        warm-up does not train on the trusted rows.
    pretrain_epochs : int
        Epochs of plain cross-entropy on the trusted set alone before the first
        epoch (:meth:`_pretrain`); 0: none.

    Attributes (beyond skorch's)
    ----------------------------
    pretrain_loss_curve_ : list of float
        Mean training loss of each pre-training epoch (empty without them).
    train_steps_ : int
        Optimizer steps of the training proper so far (not the pre-training's),
        counted on through ``partial_fit``; every
        :data:`FLUSH_DENORMALS_EVERY`-th runs :func:`flush_denormals`.
    """

    def __init__(
        self,
        module,
        *args,
        method=None,
        train_info=None,
        warmup_epochs=0,
        meta_lr=1e-2,
        meta_optimizer=torch.optim.Adam,
        meta_every=1,
        lookahead="full",
        reuse_virtual_grad=False,
        auto_warmup=False,
        pretrain_epochs=0,
        **kwargs,
    ):
        super().__init__(module, *args, **kwargs)
        self.method = method
        self.train_info = train_info
        self.warmup_epochs = warmup_epochs
        self.meta_lr = meta_lr
        self.meta_optimizer = meta_optimizer
        self.meta_every = meta_every
        self.lookahead = lookahead
        self.reuse_virtual_grad = reuse_virtual_grad
        self.auto_warmup = auto_warmup
        self.pretrain_epochs = pretrain_epochs

    # ------------------------------------------------------------------ setup
    def initialize_module(self):
        super().initialize_module()
        info = self.train_info
        if info is not None:
            info.y = info.y.to(self.device)
            info.trusted = info.trusted.to(self.device)
            if info.meta_class_weight is not None:
                info.meta_class_weight = info.meta_class_weight.to(self.device)
        if self.method is not None and self.method.checks_noise_pattern:
            # a method without the parameter runs no check (MetaMethod.check_noise_pattern)
            validate_learnable_noise(getattr(self.method, "learnable_noise", False))
        self.noise_check_ = None  # MetaMethod.check_noise_pattern's, once it ran
        meta = self.method.build(self, info) if self.method is not None else None
        self.meta_module_ = (meta if meta is not None else nn.Module()).to(self.device)
        self.has_trusted_rows_ = info is not None and bool(info.trusted.any())
        if self.lookahead == "head" and not has_backbone_head(self.module_):
            raise TypeError(
                "lookahead='head' needs a module with `backbone` and `head` sub-modules "
                f"(see sklearn_noisy.modules); {type(self.module_).__name__} has "
                "not both."
            )
        return self

    def get_all_learnable_params(self):
        # Only the classifier's parameters reach the main optimizer.
        yield from self.module_.named_parameters()

    def initialize_optimizer(self, *args, **kwargs):
        super().initialize_optimizer(*args, **kwargs)
        self.adam_from_lookahead_ = _adam_from_lookahead_ok(self.optimizer_)
        meta_params = [p for p in self.meta_module_.parameters() if p.requires_grad]
        self.meta_optimizer_ = (
            self.meta_optimizer(meta_params, lr=self.meta_lr) if meta_params else None
        )
        return self

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        # skorch's partial_fit swallows KeyboardInterrupt; remember that it happened
        self.interrupted_ = False
        self.stopped_early_ = False  # set by HeldOutEarlyStopping, which also interrupts
        # the trusted set, for AutoWarmup; never kept on the fitted net
        self._meta_data = fit_params.get("meta_batches")
        try:
            if not len(self.history):  # a fresh training, not a continued one
                self.pretrain_loss_curve_ = []
                self.train_steps_ = 0
                if self.pretrain_epochs and self._meta_data is not None:
                    self._pretrain(self._meta_data)
                    self.method.pretrained(
                        self, lambda: self.predict_logits(X, self.device).softmax(1)
                    )
            return super().fit_loop(X, y, epochs, **fit_params)
        except KeyboardInterrupt:
            self.interrupted_ = not self.stopped_early_
            raise
        finally:
            self._meta_data = None

    def _pretrain(self, meta):
        """Train the module on the trusted set alone for ``pretrain_epochs`` epochs.

        Plain cross-entropy, the net's ``batch_size``, and the net's own optimizer
        with its learning rate and weight decay; the optimizer's state (Adam's
        moments, its step count) is put back as it was afterwards, so the
        training proper starts with a fresh optimizer, as without pre-training.
        Each epoch's mean loss goes to ``pretrain_loss_curve_``.
        """
        optimizer = self.optimizer_
        saved = copy.deepcopy(optimizer.state_dict())
        self._set_training(True)
        batch_size = min(int(self.batch_size), len(meta.y))
        for batches in meta.epochs(self.pretrain_epochs, batch_size):
            total = cross_entropy_pass(self.module_, optimizer, batches)
            self.pretrain_loss_curve_.append(float(total) / len(meta.y))
        optimizer.zero_grad(set_to_none=True)
        optimizer.load_state_dict(saved)
        if self.verbose:
            print(
                f"pre-trained on the {len(meta.y)} trusted rows for {self.pretrain_epochs} "
                f"epochs (last loss {self.pretrain_loss_curve_[-1]:.4f})"
            )

    # ------------------------------------------------------------- per epoch
    @property
    def epoch_(self):
        """Index of the running epoch (0-based)."""
        return max(len(self.history) - 1, 0)

    @property
    def meta_active_(self):
        return (
            self.method is not None
            and self.method.uses_meta_step
            and self.epoch_ >= self.warmup_epochs
        )

    def on_epoch_begin(self, net, **kwargs):
        super().on_epoch_begin(net, **kwargs)
        self._epoch_sums = {}
        self.method.on_epoch_begin(self)

    def _accumulate(self, name, value, weight):
        """Add a mean ``value`` over ``weight`` rows to the epoch's ``name``."""
        self._accumulate_total(name, value * weight, weight)

    def _accumulate_total(self, name, total, weight):
        """Add a sum ``total`` over ``weight`` rows (numbers or tensors: no sync)."""
        old_total, old_weight = self._epoch_sums.get(name, (0.0, 0))
        self._epoch_sums[name] = (old_total + total, old_weight + weight)

    def on_epoch_end(self, net, **kwargs):
        self.method.on_epoch_end(self)
        for name, (total, weight) in self._epoch_sums.items():
            total, weight = (float(v.item() if torch.is_tensor(v) else v) for v in (total, weight))
            if weight:  # e.g. no noisy row in the epoch: nothing to record
                self.history.record(name, total / weight)
        super().on_epoch_end(net, **kwargs)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_epoch_sums", None)
        state.pop("step_cache", None)
        state.pop("_meta_data", None)
        info = state.get("train_info")
        if info is not None:
            # plain attributes are pickled as they are: keep CUDA tensors out, so a
            # model fitted on a GPU loads on a CPU-only machine
            weight = info.meta_class_weight
            state["train_info"] = dataclasses.replace(
                info,
                y=info.y.cpu(),
                trusted=info.trusted.cpu(),
                meta_class_weight=None if weight is None else weight.cpu(),
            )
        return state

    # ------------------------------------------------------------- the step
    def _batch_loss(self, forward, X, y, idx, trusted, virtual):
        """Mean training loss of a batch: the method's loss on noisy rows, CE on trusted."""
        per_sample, logits = self.method.train_loss(self, forward, X, y, idx, virtual=virtual)
        if self.has_trusted_rows_ and self.auto_warmup and self.epoch_ < self.warmup_epochs:
            # AutoWarmup scores the warm-up on the trusted rows: they are not trained on
            noisy = (~trusted).to(per_sample.dtype)
            return (per_sample * noisy).sum() / noisy.sum().clamp_min(1.0), logits
        if self.has_trusted_rows_:
            ce = F.cross_entropy(logits, y, reduction="none")
            w = self.method.trusted_weight(self)
            per_sample = torch.where(trusted, w * ce, per_sample)
        return per_sample.mean(), logits

    def _meta_step(self, X, y, idx, trusted, meta_batches):
        """Virtual and meta steps.

        Returns the recorded forward pass of the batch, the virtual step's
        loss and logits (detached) and, with ``reuse_virtual_grad``, its
        gradient as ``(param, grad, moments)`` triples (else ``None``).
        """
        module = self.module_
        params = dict(module.named_parameters())
        buffers = {k: b.clone() for k, b in module.named_buffers()}
        # the pass runs at the live parameters: a module without buffers (whose
        # statistics must be kept apart) runs itself, the same output and graph
        # as functional_call's without its cost (about 40 us a call on the CPU)
        if buffers:
            recorded = Forward(module, params, buffers, record=True)
        else:
            recorded = Forward(module, record=True)
        loss, logits = self._batch_loss(recorded, X, y, idx, trusted, virtual=True)
        head_only = self.lookahead == "head"
        names = [
            k
            for k, p in params.items()
            if p.requires_grad and (not head_only or k.startswith("head."))
        ]
        grads = torch.autograd.grad(
            loss, [params[k] for k in names], create_graph=True, allow_unused=True
        )
        lookahead = dict(params)
        moments = {}
        for k, g in zip(names, grads):
            if g is not None:
                lookahead[k], moments[k] = _lookahead(self.optimizer_, params[k], g)
        # the gradient for the actual step (see reuse_virtual_grad); the look-ahead
        # needs it for every parameter, so only a full look-ahead has it all
        reused = None
        if self.reuse_virtual_grad and not head_only:
            reused = [
                (params[k], g.detach(), moments[k]) for k, g in zip(names, grads) if g is not None
            ]
        Xm, ym = next(meta_batches)
        # the meta batch gets its own copies of the buffers: its statistics must not
        # reach the module when the actual step reuses the recorded pass
        meta_buffers = {k: b.clone() for k, b in module.named_buffers()}
        forward = Forward(module, lookahead, meta_buffers)
        if head_only:  # the backbone did not move: its features need no graph
            with torch.no_grad():
                features = forward.features(Xm)
            meta_logits = forward.head(features)
        else:
            meta_logits = forward(Xm)
        meta_loss = self.method.meta_loss(self, meta_logits, ym)
        self.method.meta_update(self, meta_loss)
        with torch.no_grad():
            acc = (meta_logits.argmax(1) == ym).float().mean()
        self._accumulate("meta_loss", meta_loss.detach(), len(ym))
        if self.verbose:  # the progress bar shows the running meta loss
            self.history.record_batch("meta_loss", meta_loss.item())
        self._accumulate("meta_acc", acc, len(ym))
        return recorded, (loss.detach(), logits.detach()), reused

    def train_step(self, batch, meta_batches=None, **fit_params):
        # values a method computes in the virtual step and reuses in the actual
        # step of the same batch (see MetaMethod); emptied at every step
        self.step_cache = {}
        try:
            return self._train_step(batch, meta_batches)
        finally:
            self.step_cache = {}

    def _train_step(self, batch, meta_batches):
        Xb, yb = unpack_data(batch)
        Xb = to_device(Xb, self.device)
        yb = to_device(yb, self.device)
        y, idx, trusted = yb[:, 0], yb[:, 1], yb[:, 2].bool()
        self._set_training(True)

        batch_number = len(self.history[-1]["batches"]) - 1
        meta_step = (
            self.meta_active_ and meta_batches is not None and batch_number % self.meta_every == 0
        )
        recorded, virtual, reused = (
            self._meta_step(Xb, y, idx, trusted, meta_batches) if meta_step else (None, None, None)
        )

        self.optimizer_.zero_grad(set_to_none=True)
        # the actual step reuses the virtual step's forward pass of this batch (same
        # parameters, so the same output and graph): one forward pass saved per step
        forward = Forward(self.module_, reuse=recorded)
        if reused is not None and self.method.actual_loss_only_logged:
            # the step trains on the virtual step's gradient: its loss is the one logged
            loss, logits = virtual
            recorded.write_back_recorded_buffers()
        else:
            # with a reused gradient the loss is still evaluated, without a graph:
            # for the method's per-sample tables and the logged loss
            with torch.set_grad_enabled(reused is None):
                loss, logits = self._batch_loss(forward, Xb, y, idx, trusted, virtual=False)
        if reused is None:
            loss.backward()
        else:
            for param, grad, _ in reused:
                param.grad = grad
            versions = [grad._version for _, grad, _ in reused]
        self.notify(
            "on_grad_computed",
            named_parameters=list(self.get_all_learnable_params()),
            batch=batch,
            training=True,
        )
        if reused is not None and self._adam_from_lookahead(reused, versions):
            _adam_step_from_lookahead(self.optimizer_, [(p, m) for p, _, m in reused])
        else:
            self.optimizer_.step()
        # a net fitted before this count existed, trained on with partial_fit
        self.train_steps_ = getattr(self, "train_steps_", 0) + 1
        if self.train_steps_ % FLUSH_DENORMALS_EVERY == 0:
            flush_denormals([self.optimizer_])  # the network's weights: every one
            if self.meta_optimizer_ is not None:  # the meta parameters: not the tables
                info = self.train_info
                rows = info.n_samples if info is not None else None
                flush_denormals([self.meta_optimizer_], table_rows=rows)

        with torch.no_grad():
            logits = logits.detach()
            self.method.after_step(self, logits, y, idx)
            # counts kept as tensors: no host-device sync on a step (a batch of
            # trusted rows only adds 0 of 0; the epoch's share is read at its end)
            noisy = ~trusted
            corrected = self.method.correct(self, logits.softmax(1), y, idx)
            changed = ((corrected.argmax(1) != y) & noisy).sum()
            self._accumulate_total("labels_changed", changed, noisy.sum())
            if self.epoch_ == 0 and self.method.checks_noise_pattern and not self.pretrain_epochs:
                # the batch's predictions before its step: see MetaMethod.checks_noise_pattern
                hit = logits.argmax(1) == y
                self._accumulate_total("given_label_agreement", (hit & noisy).sum(), noisy.sum())
                self._accumulate_total(
                    "trusted_label_agreement", (hit & trusted).sum(), trusted.sum()
                )
                if self.has_trusted_rows_:  # else nothing to compare with
                    self._count_label_log_proba(logits, y, noisy, trusted)
        return {"loss": loss.detach(), "y_pred": logits}

    def _count_label_log_proba(self, logits, y, noisy, trusted):
        """Add the batch's ``log p(label)`` to the epoch's means, and their squares.

        For the noisy rows (their given labels) and the trusted rows, recorded
        at the epoch's end as ``given_label_log_proba``,
        ``trusted_label_log_proba`` and the means of the squares (``..._sq``);
        see ``MetaMethod.checks_noise_pattern``.  Sums kept as tensors: no
        host-device sync on a step.
        """
        # float64 where the device has it: means of squares over many rows
        dtype = torch.float32 if logits.device.type == "mps" else torch.float64
        log_p = logits.to(dtype).log_softmax(1).gather(1, y[:, None])[:, 0]
        for name, rows in (("given", noisy), ("trusted", trusted)):
            kept = log_p * rows.to(dtype)
            n = rows.sum()
            self._accumulate_total(f"{name}_label_log_proba", kept.sum(), n)
            self._accumulate_total(f"{name}_label_log_proba_sq", (kept * log_p).sum(), n)

    def _adam_from_lookahead(self, reused, versions):
        """Whether the actual step may take the look-ahead's Adam moments.

        Only with a plain Adam / AdamW (:func:`_adam_from_lookahead_ok`), every
        parameter's moments at hand (not before the optimizer's first step), and
        the gradients left as they were by the ``on_grad_computed`` callbacks
        (a gradient clipped in place, or replaced, takes Adam's own step).
        """
        if not self.adam_from_lookahead_:
            return False
        return all(
            moments is not None and param.grad is grad and grad._version == version
            for (param, grad, moments), version in zip(reused, versions)
        )

    def validation_step(self, batch, **fit_params):
        """Held-out noisy rows: cross-entropy and accuracy against their given labels.

        Used with the classifier's ``early_stopping``; the accuracy is recorded
        per epoch as ``valid_acc`` (skorch records ``valid_loss``).
        """
        self._set_training(False)
        Xb, yb = unpack_data(batch)
        Xb = to_device(Xb, self.device)
        y = to_device(yb, self.device)[:, 0]
        with torch.no_grad():
            logits = self.infer(Xb)
            loss = F.cross_entropy(logits, y)
            self._accumulate("valid_acc", (logits.argmax(1) == y).float().mean(), len(y))
        return {"loss": loss, "y_pred": logits}

    # ------------------------------------------------------------ inference
    def predict_logits(self, X, device="cpu"):
        """Logits for ``X`` (eval mode, no gradient), as a float32 tensor on ``device``.

        Run under a forked RNG state: a DataLoader draws its base seed from the
        global torch generator, and predicting must not move the user's RNG
        (nor, during a fit, the shuffling of the next epochs).
        """
        with torch.random.fork_rng(devices=[]):
            return self.forward(X, training=False, device=device)


def encode_targets(y, trusted):
    """Pack labels, row indices and the trusted flag into the engine's target array."""
    n = len(y)
    return np.stack([np.asarray(y, dtype=np.int64), np.arange(n), trusted.astype(np.int64)], 1)
