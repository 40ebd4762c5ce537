"""Synthetic label noise, with the realised transition matrix.

Convention: ``T[i, j] = P(noisy = j | true = i)``; rows are true classes and sum
to 1 (row-stochastic).  cleanlab's ``noise_matrix`` is the transpose
(column-stochastic, ``P(given | true)`` with columns as true classes).
"""

from __future__ import annotations

import re

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, column_or_1d

__all__ = ["make_noisy_labels", "realised_transition_matrix"]


def realised_transition_matrix(y_true, y_noisy, n_classes=None) -> np.ndarray:
    """Row-stochastic ``T[i, j]``: share of true class ``i`` labelled ``j``.

    A class absent from ``y_true`` gets an identity row.

    Parameters
    ----------
    y_true, y_noisy : array-like of int, shape (n_samples,)
        Clean and noisy labels, integers ``0 .. n_classes - 1``.
    n_classes : int, default=None
        ``None`` takes the largest label plus one.

    Returns
    -------
    T : ndarray of shape (n_classes, n_classes)
        ``T[i, j]`` = share of the samples of true class ``i`` labelled ``j``.
        cleanlab's ``noise_matrix`` is ``T.T``.

    Examples
    --------
    >>> from sklearn_noisy.noise import realised_transition_matrix
    >>> realised_transition_matrix([0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 1]).tolist()
    [[0.75, 0.25], [0.0, 1.0]]
    """
    y_true = np.asarray(y_true)
    y_noisy = np.asarray(y_noisy)
    if n_classes is None:
        n_classes = int(max(y_true.max(), y_noisy.max())) + 1
    counts = np.zeros((n_classes, n_classes))
    np.add.at(counts, (y_true, y_noisy), 1)
    rows = counts.sum(1, keepdims=True)
    return np.where(rows > 0, counts / np.where(rows > 0, rows, 1), np.eye(n_classes))


def _similar_classes(y, X, n_classes, n_similar, rng):
    """For each class, the ``n_similar`` other classes it is most easily mistaken for."""
    if X is None:
        return np.array(
            [
                rng.choice(np.delete(np.arange(n_classes), c), n_similar, replace=False)
                for c in range(n_classes)
            ]
        )
    centroids = np.stack([X[y == c].mean(0) for c in range(n_classes)])
    dist = ((centroids[:, None, :] - centroids[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(dist, np.inf)
    return np.argsort(dist, axis=1)[:, :n_similar]


def make_noisy_labels(y, *, kind="symmetric", rate=0.4, X=None, random_state=None):
    """Corrupt integer labels ``0..C-1`` and return them with the realised T.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Clean labels, integers ``0 .. n_classes - 1``.
    kind : str, default="symmetric"
        * ``"symmetric"``: each label flips with probability ``rate`` to a
          uniformly drawn *other* class.
        * ``"pair"``: each label of class ``i`` flips with probability ``rate`` to
          ``(i + 1) mod C``.
        * ``"flipN"`` (``"flip2"``, ``"flip3"``, ...): flips with probability
          ``rate`` to one of ``N`` classes similar to the true one, drawn
          uniformly.  Similar means nearest class centroid when ``X`` is given,
          else ``N`` classes drawn once per class.
        * ``"instance"``: feature-dependent; needs ``X``.  A logistic regression
          is fit on the clean labels; the ``round(rate * n)`` samples with the
          smallest margin (probability of the true class minus the largest
          other) are flipped to their most likely other class.  The fit runs on
          one BLAS thread, so the labels do not depend on the thread count.
          Where the regression separates the classes, the flips go to its
          second choice; where it is wrong on more rows than are flipped, the
          smallest margins are rows it gets wrong and each flip writes its
          prediction: the noise is then a linear function of ``X``, which a
          network may learn sooner than the true labels (``mnist1d``, where
          it is right on 38% of the rows: ``benchmarks/label_dynamics.py``).
    rate : float in [0, 1), default=0.4
        Probability of a flip (the exact share for ``"instance"``).
    X : array-like of shape (n_samples, n_features), default=None
        Features, for ``"instance"`` and for choosing similar classes.
    random_state : int, RandomState instance or None

    Returns
    -------
    y_noisy : ndarray of shape (n_samples,)
    T : ndarray of shape (n_classes, n_classes)
        The realised transition matrix, ``T[i, j]`` = share of true class ``i``
        labelled ``j``; rows sum to 1.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_noisy.noise import make_noisy_labels
    >>> y = np.repeat(np.arange(4), 250)
    >>> y_noisy, T = make_noisy_labels(y, kind="pair", rate=0.2, random_state=0)
    >>> bool(np.allclose(T.sum(1), 1)), round(float((y_noisy != y).mean()), 1)
    (True, 0.2)
    """
    y = column_or_1d(np.asarray(y))
    if y.dtype.kind not in "iu":
        raise ValueError(f"y must hold integer labels 0..C-1; got dtype {y.dtype}.")
    if len(y) == 0:
        raise ValueError("y is empty.")
    if y.min() < 0:
        raise ValueError("y must hold integer labels 0..C-1; got negative labels.")
    if not 0 <= rate < 1:
        raise ValueError(f"rate must be in [0, 1); got {rate}.")
    n_classes = int(y.max()) + 1
    if n_classes < 2:
        raise ValueError("y needs at least 2 classes to be corrupted.")
    rng = check_random_state(random_state)
    if X is not None:
        X = check_array(X)
        if len(X) != len(y):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)}.")
    n = len(y)
    y_noisy = y.copy()

    match = re.fullmatch(r"flip(\d+)", kind)
    if kind == "symmetric":
        flip = rng.random_sample(n) < rate
        offset = rng.randint(1, n_classes, size=n)
        y_noisy[flip] = (y[flip] + offset[flip]) % n_classes
    elif kind == "pair":
        flip = rng.random_sample(n) < rate
        y_noisy[flip] = (y[flip] + 1) % n_classes
    elif match:
        n_similar = int(match.group(1))
        if not 1 <= n_similar < n_classes:
            raise ValueError(
                f"kind={kind!r} needs 1 <= N < n_classes ({n_classes}); got N={n_similar}."
            )
        similar = _similar_classes(y, X, n_classes, n_similar, rng)
        flip = rng.random_sample(n) < rate
        choice = rng.randint(0, n_similar, size=n)
        y_noisy[flip] = similar[y[flip], choice[flip]]
    elif kind == "instance":
        if X is None:
            raise ValueError("kind='instance' needs the features X.")
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler
        from threadpoolctl import threadpool_limits

        # one BLAS thread: with more, the fit's floating-point sums depend on the
        # machine's thread count, and so do the margins that pick the flipped rows
        with threadpool_limits(limits=1, user_api="blas"):
            Xs = StandardScaler().fit_transform(X)
            proba = LogisticRegression(max_iter=1000).fit(Xs, y).predict_proba(Xs)
        true_p = proba[np.arange(n), y]
        other = proba.copy()
        other[np.arange(n), y] = -np.inf
        margin = true_p - other.max(1) + 1e-9 * rng.random_sample(n)
        k = int(round(rate * n))
        flip_rows = np.argsort(margin)[:k]
        y_noisy[flip_rows] = other[flip_rows].argmax(1)
    else:
        raise ValueError(
            f"Unknown kind={kind!r}; use 'symmetric', 'pair', 'flipN' (e.g. 'flip2') "
            "or 'instance'."
        )
    return y_noisy, realised_transition_matrix(y, y_noisy, n_classes)
