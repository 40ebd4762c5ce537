"""Scale: one million rows on CPU within the machine's memory (slow)."""

from __future__ import annotations

import resource

import numpy as np
import pytest

from sklearn_noisy import MetaLabelCorrectionClassifier
from sklearn_noisy.methods import available_methods

N, D, C = 1_000_000, 64, 10


@pytest.fixture(scope="module")
def big():
    rng = np.random.RandomState(0)
    centers = rng.randn(C, D).astype(np.float32)
    y = rng.randint(0, C, N)
    X = centers[y] + rng.randn(N, D).astype(np.float32)
    y_noisy = np.where(rng.rand(N) < 0.4, rng.randint(0, C, N), y)
    meta = np.flatnonzero(np.arange(N) % (N // 200) == 0)
    return X, y, y_noisy, meta


@pytest.mark.slow
@pytest.mark.parametrize("method", available_methods())
def test_million_rows(big, method):
    X, y, y_noisy, meta = big
    mask = np.zeros(N, bool)
    mask[meta] = True
    clf = MetaLabelCorrectionClassifier(
        method=method,
        max_epochs=1,
        batch_size=4096,
        hidden_layer_sizes=(64,),
        warmup_epochs=0,
        device="cpu",
        random_state=0,
    )
    y_fit = np.where(mask, y, y_noisy)
    clf.fit(X, y_fit, meta_mask=mask)
    assert clf.corrected_proba_.shape == (N, C)
    assert np.isfinite(clf.corrected_proba_).all()
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    assert peak_gb < 16, f"peak RSS {peak_gb:.1f} GB"
