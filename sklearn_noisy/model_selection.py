"""Model selection on trusted rows: cross-validation that scores against clean labels."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.model_selection._split import BaseCrossValidator
from sklearn.utils._param_validation import Interval, validate_params

__all__ = ["TrustedKFold"]


class TrustedKFold(BaseCrossValidator):
    """K-fold cross-validation whose validation folds hold only trusted rows.

    Cross-validating a noisy-label classifier with ordinary folds scores it
    against *noisy* labels, which rewards fitting the noise.  ``TrustedKFold``
    splits the trusted rows into ``n_splits`` folds; each validation fold is one
    of them, and the training side holds every noisy row plus the other
    trusted rows.  Pass the trusted mask as ``groups`` (``cv.split(X, y,
    groups=is_trusted)``, ``GridSearchCV(...).fit(X, y, groups=is_trusted)``) or,
    with metadata routing on, as ``meta_mask``.  Give the estimator the same mask
    as its ``meta_mask`` fit parameter so it knows which training rows are
    trusted.

    Parameters
    ----------
    n_splits : int, default=5
    shuffle : bool, default=True
        Shuffle the trusted rows before splitting.
    random_state : int, RandomState instance or None, default=0

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_noisy import TrustedKFold
    >>> X = np.zeros((10, 1)); y = np.array([0, 1] * 5)
    >>> trusted = np.r_[np.ones(4, bool), np.zeros(6, bool)]
    >>> [test.tolist() for _, test in TrustedKFold(2).split(X, y, groups=trusted)]
    [[1, 2], [0, 3]]
    """

    __metadata_request__split = {"groups": True, "meta_mask": True}

    @validate_params(
        {
            "n_splits": [Interval(numbers.Integral, 2, None, closed="left")],
            "shuffle": ["boolean"],
            "random_state": ["random_state"],
        },
        prefer_skip_nested_validation=True,
    )
    def __init__(self, n_splits=5, *, shuffle=True, random_state=0):
        self.n_splits = n_splits
        self.shuffle = shuffle
        self.random_state = random_state

    def get_n_splits(self, X=None, y=None, groups=None, meta_mask=None):
        """The number of folds, ``n_splits``."""
        return self.n_splits

    @staticmethod
    def _mask(X, groups, meta_mask):
        mask = meta_mask if meta_mask is not None else groups
        if mask is None:
            raise ValueError(
                "TrustedKFold needs the trusted-row mask: pass groups=is_trusted "
                "(or meta_mask=is_trusted with metadata routing)."
            )
        mask = np.asarray(mask)
        if mask.ndim != 1 or len(mask) != len(X):
            raise ValueError(
                f"The trusted mask (groups) must be 1-D with one entry per row of X "
                f"({len(X)}); got shape {mask.shape}."
            )
        if mask.dtype != bool:
            if not np.isin(mask, (0, 1)).all():
                raise ValueError("The trusted mask (groups) must be boolean or 0/1.")
            mask = mask.astype(bool)
        return mask

    def split(self, X, y=None, groups=None, meta_mask=None):
        """Yield ``(train, test)`` index arrays; every test index is a trusted row."""
        mask = self._mask(X, groups, meta_mask)
        trusted = np.flatnonzero(mask)
        if len(trusted) < self.n_splits:
            raise ValueError(
                f"n_splits={self.n_splits} is more than the {len(trusted)} trusted rows."
            )
        noisy = np.flatnonzero(~mask)
        rs = self.random_state if self.shuffle else None
        splitter = KFold(self.n_splits, shuffle=self.shuffle, random_state=rs)
        labels = None if y is None else np.asarray(y)[trusted]
        if labels is not None:
            _, counts = np.unique(labels, return_counts=True)
            if counts.min() >= self.n_splits:
                splitter = StratifiedKFold(self.n_splits, shuffle=self.shuffle, random_state=rs)
        for train_t, test_t in splitter.split(trusted, labels):
            yield np.sort(np.r_[noisy, trusted[train_t]]), trusted[test_t]

    def _iter_test_indices(self, X=None, y=None, groups=None):  # pragma: no cover
        for _, test in self.split(X, y, groups):
            yield test
