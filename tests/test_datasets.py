"""make_noisy_case: the benchmark's splits, and its imbalanced variant."""

from __future__ import annotations

import numpy as np
import pytest

from sklearn_noisy.datasets import make_noisy_case


def test_imbalance_thins_the_classes_geometrically():
    full = make_noisy_case("digits", rate=0.2, seed=0)
    skewed = make_noisy_case("digits", rate=0.2, seed=0, imbalance=0.7)
    n_full = np.bincount(full.y_true) + np.bincount(full.y_meta) + np.bincount(full.y_test)
    n = np.bincount(skewed.y_true) + np.bincount(skewed.y_meta) + np.bincount(skewed.y_test)
    want = np.maximum(np.round(0.7 ** np.arange(10) * n_full), 40)  # 4 x meta_per_class
    np.testing.assert_allclose(n, want, atol=1)  # the split rounds
    assert n[0] > 4 * n[-1]
    # the trusted set stays balanced; the test set is thinned with the rest
    np.testing.assert_array_equal(np.bincount(skewed.y_meta), np.full(10, 10))
    assert np.bincount(skewed.y_test)[0] > 3 * np.bincount(skewed.y_test)[9]
    # the noise is applied to the thinned rows at the asked rate
    assert 1 - skewed.noisy_accuracy == pytest.approx(0.2, abs=0.03)


def test_no_imbalance_is_the_usual_split():
    a = make_noisy_case("digits", kind="pair", rate=0.4, seed=3)
    b = make_noisy_case("digits", kind="pair", rate=0.4, seed=3, imbalance=None)
    c = make_noisy_case("digits", kind="pair", rate=0.4, seed=3, imbalance=1.0)
    for name in ("X", "y_noisy", "y_true", "X_meta", "y_meta", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert len(getattr(c, name)) == len(getattr(a, name))  # every row kept


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.5])
def test_imbalance_is_validated(bad):
    with pytest.raises(ValueError, match="imbalance must be in"):
        make_noisy_case("digits", imbalance=bad)
