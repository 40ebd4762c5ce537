"""``pretrain_epochs="auto"``: pre-train on the trusted set only where that set alone
is estimated to give a better model than the given labels are.

Pre-training (``BiLevelNet._pretrain``) starts the training on the noisy rows from
a model of the trusted rows.  That helps where such a model is better than the
noisy labels it will be trained on next, and costs where it is poor (a hundred
rows of a hard dataset): ``benchmarks/HISTORY.md``, "Pre-training on the trusted
set".  The check below compares the two from the training data alone:

* ``a``: the accuracy of a network trained on the trusted rows alone, estimated by
  stratified k-fold cross-validation on the trusted set (at most 5 folds; the
  folds' networks are trained as the pre-training trains, same optimizer and
  batch size, but for ``CHECK_EPOCHS`` = 50 epochs: the cross-validated accuracy
  levels off by then on digits, MNIST and mnist1d, 0.90, 0.79 and 0.27 at 50
  epochs against 0.90, 0.79 and 0.28 at 200, seed 0, and the decisions on the
  benchmarks' 63 fits are the same as with 200);
* ``r``: how often those fold networks agree with the given labels of the noisy
  rows (at most ``max_rows`` of them, drawn at random).

If the fold networks' mistakes rarely coincide with a label's, ``r`` is about ``a``
times the share of right labels, so ``r / a`` estimates that share.  The check
says "pre-train" when ``r / a < a``: the trusted rows alone are estimated to
predict better than the labels are right.  Where the fold networks are weak the
coincidences are not rare (for symmetric noise over K classes they add about
``(1 - a)(1 - c) / (K - 1)`` to ``r``), so ``r / a`` overestimates the share of
right labels and the check leans to not pre-training, the safe side: a weak
trusted model is the case where pre-training costs.  The check is our choice;
none of the five papers pre-trains.

For the cut of heavy noise (``HEAVY_NOISE_BELOW``) the check also reports the
share with those coincidences removed, solving
``r = a c + (1 - a)(1 - c) / (K - 1)`` for ``c``:
``c = (r (K - 1) - (1 - a)) / (a K - 1)``, clipped to ``[0, 1]``
(``chance_corrected_estimate``; ``None`` where ``a <= 1 / K``).  It is ``r / a``
where ``a`` is 1 and lies below it wherever ``r < a``.  On the benchmark's 63
checks it reads 0.15-0.21 at 80% symmetric noise on all three datasets (true
0.20-0.21) and 0.29 or more on every other case, where ``r / a`` reads
0.42-0.47 at ``mnist1d``'s 80% (its trusted rows give a weak model, ``a``
about 0.26) and cannot tell it from the other cases.  It assumes that the
mistakes and the wrong labels spread evenly over the other classes, so it is
off where they do not (``mnist1d``: 0.59-0.67 at 20% symmetric noise, 0.86-0.99
under instance noise, for 0.80 and 0.60 right): a cut at heavy noise, not a
measurement (``benchmarks/HISTORY.md``, "Stop 29: heavy noise read from the
chance-corrected estimate").
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold

from ._engine import cross_entropy_pass

__all__ = [
    "AUTO_PRETRAIN_EPOCHS",
    "CHECK_EPOCHS",
    "chance_corrected_estimate",
    "check_reason",
    "label_estimate_reason",
    "trusted_rows_predict_better",
    "trusted_set_check",
]

#: Epochs ``pretrain_epochs="auto"`` pre-trains for when its check says so (as
#: many as the benchmarks' ``trusted_only`` peer trains).
AUTO_PRETRAIN_EPOCHS = 200
#: Epochs each fold's network of the check is trained for.
CHECK_EPOCHS = 50
_MAX_FOLDS = 5
_TOO_FEW = "a class has a single trusted row, too few to cross-validate: "
_PREDICT_BATCH = 4096


def trusted_set_check(
    make_module,
    make_optimizer,
    X_trusted,
    y_trusted,
    X_noisy,
    y_noisy,
    *,
    epochs,
    batch_size,
    device,
    seed,
    max_rows=10_000,
):
    """Whether to pre-train on the trusted set: the check of the module docstring.

    Parameters
    ----------
    make_module : callable
        ``make_module()`` returns a new, untrained network (one is built and
        copied into each fold, so that all folds start from the same weights).
    make_optimizer : callable
        ``make_optimizer(parameters)`` returns the optimizer to train it with.
    X_trusted, y_trusted : ndarray
        The trusted rows and their (encoded) labels.
    X_noisy, y_noisy : ndarray
        The noisy rows and their given (encoded) labels.
    epochs, batch_size : int
        How each fold's network is trained.
    device : str or torch.device
    seed : int
        Folds, shuffles, the rows scored and the networks' initial weights come
        from it; the global torch random state is left as it was.
    max_rows : int
        At most this many noisy rows are scored.

    Returns
    -------
    dict
        ``trusted_cv_accuracy`` (``a``), ``noisy_label_agreement`` (``r``),
        ``estimated_label_accuracy`` (``r / a``; ``None`` when ``a`` is 0),
        ``chance_corrected_estimate`` (module docstring), ``n_splits``,
        ``pretrain`` (bool) and ``reason`` (a sentence).
    """
    y_trusted = np.asarray(y_trusted)
    counts = np.bincount(y_trusted)
    counts = counts[counts > 0]
    n_splits = int(min(_MAX_FOLDS, counts.min()))
    if n_splits < 2:
        check = {
            "trusted_cv_accuracy": None,
            "noisy_label_agreement": None,
            "estimated_label_accuracy": None,
            "chance_corrected_estimate": None,
            "n_splits": 0,
            "pretrain": False,
        }
        return {**check, "reason": check_reason(check)}
    rng = np.random.RandomState(seed)
    rows = np.arange(len(y_noisy))
    if len(rows) > max_rows:
        rows = np.sort(rng.choice(rows, max_rows, replace=False))
    Xt = torch.tensor(np.asarray(X_trusted, dtype=np.float32), device=device)  # a copy
    yt = torch.as_tensor(y_trusted, dtype=torch.int64, device=device)
    Xn = torch.as_tensor(np.asarray(X_noisy[rows], dtype=np.float32), device=device)
    yn = torch.as_tensor(np.asarray(y_noisy)[rows], dtype=torch.int64, device=device)
    folds = StratifiedKFold(n_splits, shuffle=True, random_state=rng)

    right = agree = 0
    fork_devices = [torch.device(device)] if str(device).startswith("cuda") else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        start = make_module().to(device)
        shuffles = torch.Generator().manual_seed(seed)
        for train, held in folds.split(np.zeros(len(y_trusted)), y_trusted):
            module = copy.deepcopy(start)
            _train(module, make_optimizer, Xt, yt, train, epochs, batch_size, shuffles)
            right += int((_predict(module, Xt[held]) == yt[held]).sum())
            agree += int((_predict(module, Xn) == yn).sum())
    a = right / len(y_trusted)
    r = agree / (n_splits * len(rows))
    estimate = r / a if a > 0 else None
    check = {
        "trusted_cv_accuracy": a,
        "noisy_label_agreement": r,
        "estimated_label_accuracy": estimate,
        "chance_corrected_estimate": chance_corrected_estimate(a, r, len(counts)),
        "n_splits": n_splits,
        "pretrain": trusted_rows_predict_better(check_estimate=estimate, trusted_accuracy=a),
    }
    return {**check, "reason": check_reason(check)}


def chance_corrected_estimate(a, r, n_classes):
    """The share of right labels from the fold networks' accuracy ``a`` and their
    agreement ``r`` with the given labels over ``n_classes`` classes, chance
    coincidences removed (module docstring); ``None`` where ``a <= 1 / n_classes``."""
    k = int(n_classes)
    if a * k <= 1.0:
        return None
    return float(min(1.0, max(0.0, (r * (k - 1) - (1.0 - a)) / (a * k - 1.0))))


def trusted_rows_predict_better(*, check_estimate, trusted_accuracy) -> bool:
    """The check's decision: whether the trusted rows alone (``trusted_accuracy``,
    ``a``) are estimated to predict better than the labels are right
    (``check_estimate``, ``r / a``; ``None``: no estimate, so no)."""
    return bool(check_estimate is not None and check_estimate < trusted_accuracy)


def check_reason(check, outcomes=("pre-training", "no pre-training"), decision="pretrain"):
    """The check's finding and decision (``check[decision]``) in a sentence ending with
    ``outcomes[0]`` (yes) or ``outcomes[1]`` (no).  The same check also decides
    ``mslg``'s warm-up (the classifier's ``warmup_epochs``), in its own words."""
    if not check["n_splits"]:
        return _TOO_FEW + outcomes[1]
    a, estimate = check["trusted_cv_accuracy"], check["estimated_label_accuracy"]
    if check[decision]:
        return (
            f"the trusted rows alone predict {a:.3f} of held-out trusted rows right, "
            f"above the {estimate:.3f} of the given labels estimated right: {outcomes[0]}"
        )
    shown = "unknown" if estimate is None else f"{estimate:.3f}"
    return (
        f"the trusted rows alone predict {a:.3f} of held-out trusted rows right, not "
        f"above the {shown} of the given labels estimated right: {outcomes[1]}"
    )


def label_estimate_reason(check):
    """The check's estimate of the share of right labels, in a sentence."""
    if not check["n_splits"]:
        return _TOO_FEW + "no estimate"
    estimate = check["estimated_label_accuracy"]
    if estimate is None:
        return "the trusted rows alone predict no held-out trusted row right: no estimate"
    return (
        f"the given labels are estimated {estimate:.3f} right (the trusted rows alone "
        f"predict {check['trusted_cv_accuracy']:.3f} of held-out trusted rows right)"
    )


def _train(module, make_optimizer, X, y, rows, epochs, batch_size, generator):
    """Plain cross-entropy on ``rows`` of (X, y), as the pre-training trains."""
    optimizer = make_optimizer(module.parameters())
    rows = torch.as_tensor(rows, dtype=torch.int64)
    batch_size = min(int(batch_size), len(rows))
    module.train()
    for _ in range(epochs):
        order = rows[torch.randperm(len(rows), generator=generator)].to(X.device)
        batches = (order[s : s + batch_size] for s in range(0, len(order), batch_size))
        cross_entropy_pass(module, optimizer, ((X[b], y[b]) for b in batches))


def _predict(module, X):
    module.eval()
    with torch.no_grad():
        return torch.cat(
            [module(X[i : i + _PREDICT_BATCH]).argmax(1) for i in range(0, len(X), _PREDICT_BATCH)]
        )
