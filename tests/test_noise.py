import numpy as np
import pytest
from sklearn.datasets import load_digits

from sklearn_noisy.noise import make_noisy_labels, realised_transition_matrix

Y = np.repeat(np.arange(10), 400)


@pytest.mark.parametrize("kind", ["symmetric", "pair", "flip2", "flip3"])
@pytest.mark.parametrize("rate", [0.2, 0.4, 0.6])
def test_realised_rate_and_T(kind, rate):
    y_noisy, T = make_noisy_labels(Y, kind=kind, rate=rate, random_state=0)
    assert abs((y_noisy != Y).mean() - rate) < 0.03
    np.testing.assert_allclose(T.sum(1), 1.0)
    np.testing.assert_allclose(T, realised_transition_matrix(Y, y_noisy, 10))
    np.testing.assert_allclose(np.diag(T), 1 - rate, atol=0.07)
    assert y_noisy.min() >= 0 and y_noisy.max() <= 9


def test_pair_flips_to_next_class_only():
    y_noisy, T = make_noisy_labels(Y, kind="pair", rate=0.3, random_state=1)
    flipped = y_noisy != Y
    np.testing.assert_array_equal(y_noisy[flipped], (Y[flipped] + 1) % 10)
    off = T - np.diag(np.diag(T))
    nxt = off[np.arange(10), (np.arange(10) + 1) % 10]
    np.testing.assert_allclose(off.sum(1), nxt)


def test_flipN_uses_at_most_N_targets_per_class():
    y_noisy, T = make_noisy_labels(Y, kind="flip2", rate=0.5, random_state=0)
    assert ((T - np.diag(np.diag(T))) > 0).sum(1).max() <= 2


def test_symmetric_spreads_over_all_other_classes():
    _, T = make_noisy_labels(Y, kind="symmetric", rate=0.45, random_state=0)
    off = T[~np.eye(10, dtype=bool)].reshape(10, 9)
    assert (off > 0).all()
    assert abs(off.mean() - 0.05) < 0.005 and off.std() < 0.02


def test_instance_noise_flips_hard_samples_to_likely_class():
    X, y = load_digits(return_X_y=True)
    y_noisy, T = make_noisy_labels(y, kind="instance", rate=0.3, X=X, random_state=0)
    assert (y_noisy != y).sum() == round(0.3 * len(y))
    np.testing.assert_allclose(T.sum(1), 1.0)
    # feature-dependent: the flips concentrate on a few confusable pairs
    off = T - np.diag(np.diag(T))
    assert off.max() > 2 * off[off > 0].mean()


def test_instance_noise_does_not_depend_on_the_blas_thread_count():
    """On mnist1d (5000 x 40) the labels used to change with the BLAS threads (8 rows)."""
    pytest.importorskip("mnist1d")
    from threadpoolctl import threadpool_limits

    from sklearn_noisy.datasets import load_features

    X, y = load_features("mnist1d")
    labels = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="blas"):
            labels.append(make_noisy_labels(y, kind="instance", rate=0.4, X=X, random_state=0)[0])
    np.testing.assert_array_equal(labels[0], labels[1])


def test_similar_classes_follow_features():
    X, y = load_digits(return_X_y=True)
    y_noisy, _ = make_noisy_labels(y, kind="flip1", rate=0.4, X=X, random_state=0)
    centroids = np.stack([X[y == c].mean(0) for c in range(10)])
    d = ((centroids[:, None] - centroids[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    flipped = y_noisy != y
    np.testing.assert_array_equal(y_noisy[flipped], d.argmin(1)[y[flipped]])


def test_input_is_not_modified_and_errors():
    y = Y.copy()
    y.setflags(write=False)
    make_noisy_labels(y, kind="symmetric", rate=0.2, random_state=0)
    np.testing.assert_array_equal(y, Y)
    with pytest.raises(ValueError, match="kind"):
        make_noisy_labels(Y, kind="nope")
    with pytest.raises(ValueError, match="rate"):
        make_noisy_labels(Y, rate=1.5)
    with pytest.raises(ValueError, match="needs the features X"):
        make_noisy_labels(Y, kind="instance")
    with pytest.raises(ValueError, match="integer"):
        make_noisy_labels(Y.astype(float))


def test_same_seed_same_noise():
    a, _ = make_noisy_labels(Y, kind="symmetric", rate=0.4, random_state=3)
    b, _ = make_noisy_labels(Y, kind="symmetric", rate=0.4, random_state=3)
    np.testing.assert_array_equal(a, b)
