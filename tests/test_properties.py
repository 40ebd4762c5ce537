"""Property-based tests: noise generators and input validation."""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sklearn_noisy import MetaLabelCorrectionClassifier
from sklearn_noisy.noise import make_noisy_labels

labels = st.integers(2, 8).flatmap(
    lambda c: hnp.arrays(np.int64, st.integers(50, 400), elements=st.integers(0, c - 1))
)
kinds = st.sampled_from(["symmetric", "pair", "flip1", "flip2"])


@settings(max_examples=60, deadline=None)
@given(y=labels, kind=kinds, rate=st.floats(0.0, 0.9), seed=st.integers(0, 2**16))
def test_noise_properties(y, kind, rate, seed):
    n_classes = int(y.max()) + 1
    if n_classes < 2 or (kind == "flip2" and n_classes < 3):
        return
    y_noisy, T = make_noisy_labels(y, kind=kind, rate=rate, random_state=seed)
    assert y_noisy.shape == y.shape
    assert y_noisy.min() >= 0 and y_noisy.max() < n_classes
    np.testing.assert_allclose(T.sum(1), 1.0)
    assert (T >= 0).all()
    # the realised rate is a binomial draw around `rate`
    n = len(y)
    assert abs((y_noisy != y).mean() - rate) <= 5 * np.sqrt(rate * (1 - rate) / n) + 1e-9
    # T is the realised matrix of these labels
    for i in np.unique(y):
        np.testing.assert_allclose(
            T[i], np.bincount(y_noisy[y == i], minlength=n_classes) / (y == i).sum()
        )


dtypes = st.sampled_from([np.float64, np.float32, np.int32, np.int8, np.uint8, object])


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    n=st.integers(0, 30),
    d=st.integers(0, 5),
    n_meta=st.integers(0, 8),
    d_meta=st.integers(0, 5),
    dtype=dtypes,
    n_classes=st.integers(1, 4),
    seed=st.integers(0, 1000),
)
def test_random_shapes_fail_only_with_clear_errors(n, d, n_meta, d_meta, dtype, n_classes, seed):
    rng = np.random.RandomState(seed)
    X = (rng.rand(n, d) * 10).astype(dtype)
    y = rng.randint(0, n_classes, n)
    X_meta = (rng.rand(n_meta, d_meta) * 10).astype(dtype)
    y_meta = rng.randint(0, n_classes, n_meta)
    clf = MetaLabelCorrectionClassifier(method="mlc", max_epochs=1, hidden_layer_sizes=(4,))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X, y, X_meta=X_meta, y_meta=y_meta)
    except ValueError as exc:
        msg = str(exc)
        assert any(
            word in msg
            for word in ("X", "y", "sample", "feature", "class", "trusted", "Found array")
        ), msg
        assert not [k for k in vars(clf) if k.endswith("_")]
    else:
        p = clf.predict_proba(X)
        assert np.isfinite(p).all() and p.shape == (n, len(clf.classes_))
