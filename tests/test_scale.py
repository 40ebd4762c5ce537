"""Scale: copies of X during fit and predict; one million rows on CPU within the
machine's memory (slow)."""

from __future__ import annotations

import resource
import tracemalloc

import numpy as np
import pytest
import torch

from sklearn_noisy import MetaLabelCorrectionClassifier
from sklearn_noisy._classifier import _predict_rows
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


@pytest.mark.parametrize("method", ["ce", "glc"])
def test_fit_and_predict_copy_X_at_most_once(method):
    """Host memory for large inputs (embeddings): a fit holds at most one float32
    copy of X (none where it trains on X as given), ``predict_proba`` none.

    numpy's allocations are traced (torch's are not: the batches and the
    network's activations are small here).  The fit used to hold two copies at
    once where it adds the trusted rows (the concatenation, then its float32
    cast) and a third for the corrections, and ``predict_proba`` one.
    """
    rng = np.random.RandomState(0)
    X = rng.normal(size=(20_000, 256)).astype(np.float32)  # 20 MB
    y = rng.randint(0, 10, len(X))
    X_meta = rng.normal(size=(100, 256)).astype(np.float32)
    y_meta = np.repeat(np.arange(10), 10)
    clf = MetaLabelCorrectionClassifier(
        method=method, max_epochs=1, hidden_layer_sizes=(16,), random_state=0
    )
    # a first small fit: the modules a fit imports on first use are not traced
    clf.fit(X[:300], y[:300], X_meta=X_meta, y_meta=y_meta).predict_proba(X[:10])
    tracemalloc.start()
    try:
        clf.fit(X, y, X_meta=X_meta, y_meta=y_meta)
        fit_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        clf.predict_proba(X)
        predict_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # ce trains on X as given; glc on X with the trusted rows added (one copy)
    assert fit_peak < (0.4 if method == "ce" else 1.3) * X.nbytes
    assert predict_peak < 0.4 * X.nbytes


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("method", ["ce", "glc"])
def test_meta_mask_fit_copies_X_once(method, dtype):
    """With the trusted rows marked by ``meta_mask`` a fit holds one float32 copy
    of X: the noisy rows (``ce``), or the noisy rows then the trusted ones
    (``glc``, which trains on them too).  It used to take the noisy rows in X's
    dtype and then concatenate them with the trusted rows: two copies at once
    (or three X's worth of float32 bytes with float64 input)."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(20_000, 256)).astype(dtype)
    y = rng.randint(0, 10, len(X))
    mask = np.zeros(len(X), bool)
    mask[rng.choice(len(X), 100, replace=False)] = True
    before = X.copy()
    clf = MetaLabelCorrectionClassifier(
        method=method, max_epochs=1, hidden_layer_sizes=(16,), random_state=0
    )
    clf.fit(X[:300], y[:300], meta_mask=mask[:300] | (np.arange(300) < 20))  # imports
    tracemalloc.start()
    try:
        clf.fit(X, y, meta_mask=mask)
        fit_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    float32_bytes = X.size * 4
    assert fit_peak < 1.3 * float32_bytes
    np.testing.assert_array_equal(X, before)  # the user's array is left alone


@pytest.mark.parametrize("how", ["X_meta", "meta_mask"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("method", ["ce", "glc"])
def test_early_stopping_fit_copies_X_once(method, dtype, how):
    """With ``early_stopping`` a fit holds one float32 copy of X: the fitted
    noisy rows (then the trusted ones for ``glc``), with the held-out rows
    beside them.  It used to take the fitted rows in X's dtype and then
    concatenate them with the trusted rows, and cast all noisy rows to
    float32 again for the corrections: 2.1-3.1 float32 copies of X."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(20_000, 256)).astype(dtype)
    y = rng.randint(0, 10, len(X))
    if how == "X_meta":
        X_meta = rng.normal(size=(100, 256)).astype(dtype)
        trusted = {"X_meta": X_meta, "y_meta": np.repeat(np.arange(10), 10)}
        first = trusted
    else:
        mask = np.zeros(len(X), bool)
        mask[rng.choice(len(X), 100, replace=False)] = True
        trusted = {"meta_mask": mask}
        first = {"meta_mask": mask[:300] | (np.arange(300) < 20)}
    before = X.copy()
    clf = MetaLabelCorrectionClassifier(
        method=method,
        max_epochs=1,
        hidden_layer_sizes=(16,),
        early_stopping=True,
        random_state=0,
    )
    clf.fit(X[:300], y[:300], **first)  # the modules a fit imports on first use
    tracemalloc.start()
    try:
        clf.fit(X, y, **trusted)
        fit_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert clf.validation_mask_.sum() > 0  # rows were held out
    assert fit_peak < 1.3 * X.size * 4
    np.testing.assert_array_equal(X, before)


def test_predict_proba_on_float64_X_copies_none_of_it():
    """Float64 input is read as float32 batch by batch: ``predict_proba`` used to
    cast all of X first (half of X's bytes)."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(20_000, 256))
    y = rng.randint(0, 10, len(X))
    clf = MetaLabelCorrectionClassifier(
        method="ce", max_epochs=1, hidden_layer_sizes=(16,), random_state=0
    )
    clf.fit(X[:2000], y[:2000], X_meta=X[-100:], y_meta=np.repeat(np.arange(10), 10))
    expected = clf.predict_proba(X.astype(np.float32))
    clf.predict_proba(X[:10])
    tracemalloc.start()
    try:
        proba = clf.predict_proba(X)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(proba, expected)
    assert peak < 0.2 * X.nbytes


def test_noisy_rows_predicted_in_blocks_give_the_same_logits():
    """The corrections predict the noisy rows of a ``meta_mask`` fit block by
    block (whole prediction batches), never taking all of them from X at once:
    the logits are those of one call on all the rows, to the bit."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(5000, 32))
    y = rng.randint(0, 4, len(X))
    mask = np.zeros(len(X), bool)
    mask[:40] = True
    clf = MetaLabelCorrectionClassifier(method="ce", max_epochs=1, random_state=0)
    clf.fit(X, y, meta_mask=mask)
    rows = np.flatnonzero(~mask)[::-1].copy()
    whole = clf.net_.predict_logits(X[rows].astype(np.float32))
    # 1024-row batches, blocks of two batches: three blocks, the last one short
    blocks = _predict_rows(clf.net_, X, rows, 1024, block_bytes=2 * 1024 * 32 * 4)
    assert torch.equal(blocks, whole)
