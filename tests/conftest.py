"""Shared fixtures: small noisy-label cases built from scikit-learn's digits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from sklearn_noisy.noise import make_noisy_labels

torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip)


@dataclass
class NoisyCase:
    """A noisy training set, a trusted set and a clean test set."""

    X: np.ndarray  # noisy training rows
    y_noisy: np.ndarray
    y_true: np.ndarray
    X_meta: np.ndarray
    y_meta: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    T: np.ndarray  # realised transition matrix of the noise

    @property
    def noisy_accuracy(self) -> float:
        return float((self.y_noisy == self.y_true).mean())

    def all_rows(self):
        """(X_all, y_all, meta_mask): noisy rows then trusted rows in one array."""
        X_all = np.concatenate([self.X, self.X_meta])
        y_all = np.concatenate([self.y_noisy, self.y_meta])
        mask = np.r_[np.zeros(len(self.X), bool), np.ones(len(self.X_meta), bool)]
        return X_all, y_all, mask


def make_case(kind="symmetric", rate=0.4, per_class=10, seed=0) -> NoisyCase:
    """Digits scaled to [0, 1], 30% test split, ``per_class`` trusted rows per class."""
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=0.3, random_state=seed, stratify=y
    )
    rng = np.random.RandomState(seed)
    meta = np.concatenate(
        [rng.choice(np.flatnonzero(y_tr == c), per_class, replace=False) for c in range(10)]
    )
    mask = np.zeros(len(y_tr), bool)
    mask[meta] = True
    y_true = y_tr[~mask]
    y_noisy, T = make_noisy_labels(
        y_true, kind=kind, rate=rate, X=X_tr[~mask], random_state=seed
    )
    return NoisyCase(
        X_tr[~mask], y_noisy, y_true, X_tr[mask], y_tr[mask], X_te, y_te, T
    )


@pytest.fixture(scope="session")
def pair40():
    return make_case("pair", 0.4)


@pytest.fixture(scope="session")
def sym40():
    return make_case("symmetric", 0.4)
