"""Bad input, for every method and meta-set form: the exact error, naming the argument."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.exceptions import DataConversionWarning, NotFittedError
from sklearn.utils._param_validation import InvalidParameterError
from torch import nn

from sklearn_noisy import MetaLabelCorrectionClassifier, MetaSetWarning
from sklearn_noisy.methods import available_methods

rng = np.random.RandomState(0)
X = rng.rand(60, 4)
Y = np.arange(60) % 3
XM = rng.rand(9, 4)
YM = np.arange(9) % 3
FORMS = ["X_meta", "meta_mask"]


def _fit(method, X, y, X_meta, y_meta, form, **kw):
    clf = MetaLabelCorrectionClassifier(
        method=method, **{"max_epochs": 1, "random_state": 0, **kw}
    )
    if form == "X_meta":
        return clf.fit(X, y, X_meta=X_meta, y_meta=y_meta)
    X_all = np.concatenate([X, X_meta])
    y_all = np.concatenate([y, y_meta])
    mask = np.r_[np.zeros(len(X), bool), np.ones(len(X_meta), bool)]
    return clf.fit(X_all, y_all, meta_mask=mask)


def _with(a, i, j, value):
    a = a.copy()
    a[i, j] = value
    return a


@pytest.mark.parametrize("method", available_methods())
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_X(method, form, bad):
    with pytest.raises(ValueError, match="Input X contains (NaN|infinity)"):
        _fit(method, _with(X, 3, 1, bad), Y, XM, YM, form)


@pytest.mark.parametrize("method", available_methods())
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_X_meta(method, bad):
    with pytest.raises(ValueError, match="Input X_meta contains (NaN|infinity)"):
        _fit(method, X, Y, _with(XM, 0, 0, bad), YM, "X_meta")


@pytest.mark.parametrize("method", available_methods())
def test_feature_count_mismatch(method):
    with pytest.raises(ValueError, match="X_meta does not match X: X has 3 features"):
        _fit(method, X, Y, XM[:, :3], YM, "X_meta")


@pytest.mark.parametrize("method", available_methods())
@pytest.mark.parametrize("form", FORMS)
def test_one_class(method, form):
    with pytest.raises(ValueError, match="y has one class only"):
        _fit(method, X, np.zeros(60, int), XM, np.zeros(9, int), form)


@pytest.mark.parametrize(
    "args, err, match",
    [
        ((X[:, 0], Y, XM, YM), ValueError, "Expected 2D array"),
        ((X, Y[:50], XM, YM), ValueError, "inconsistent numbers of samples"),
        ((X, Y, XM, YM[:5]), ValueError, "X_meta and y_meta have different lengths"),
        ((X, Y, XM[:, 0], YM), ValueError, "X_meta: Expected 2D array"),
        ((X, Y + 0.5, XM, YM), ValueError, "Unknown label type: continuous"),
        ((X, np.c_[Y, Y], XM, YM), ValueError, "y should be a 1d array"),
        ((X, Y, XM, np.c_[YM, YM]), ValueError, "y_meta must be 1-D"),
        ((X, Y, XM, YM + 7), ValueError, "y_meta has classes absent from y"),
        ((X[:0], Y[:0], XM, YM), ValueError, "0 sample"),
        ((np.full((60, 4), "a"), Y, XM, YM), ValueError, "could not convert string"),
    ],
)
@pytest.mark.parametrize("method", available_methods())
def test_bad_arrays(method, args, err, match):
    with pytest.raises(err, match=match):
        _fit(method, *args, "X_meta")


def test_meta_set_smaller_than_number_of_classes_warns():
    with pytest.warns(MetaSetWarning, match="no sample of classes"):
        _fit("ce", X, Y, XM[:2], YM[:2], "X_meta")


def test_object_and_integer_arrays_are_accepted():
    a = _fit("ce", X.astype(object), Y, XM, YM, "X_meta")
    b = _fit("ce", X, Y, XM, YM, "X_meta")
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X))


def test_pandas_categorical_labels():
    pd = pytest.importorskip("pandas")
    names = np.array(["cat", "dog", "owl"])
    y = pd.Series(pd.Categorical(names[Y]))
    clf = _fit("ce", X, y, XM, names[YM], "X_meta")
    np.testing.assert_array_equal(clf.classes_, names)
    assert set(clf.predict(X)) <= set(names)


def test_sparse_is_densified_with_a_warning():
    with pytest.warns(DataConversionWarning, match="X is a sparse matrix"):
        a = _fit("ce", sp.csr_matrix(X), Y, XM, YM, "X_meta")
    b = _fit("ce", X, Y, XM, YM, "X_meta")
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-6)


def test_huge_sparse_is_a_clear_error(monkeypatch):
    from sklearn_noisy import _classifier

    monkeypatch.setattr(_classifier, "MAX_DENSE_ENTRIES", 100)
    with pytest.raises(TypeError, match="X is a sparse matrix of shape.*TruncatedSVD"):
        _fit("ce", sp.csr_matrix(X), Y, XM, YM, "X_meta")


@pytest.mark.parametrize(
    "params, match",
    [
        ({"lr": -1.0}, "'lr' parameter"),
        ({"max_epochs": 0}, "'max_epochs' parameter"),
        ({"batch_size": 0}, "'batch_size' parameter"),
        ({"meta_fallback": "ignore"}, "'meta_fallback' parameter"),
        ({"train_on_meta": "yes"}, "'train_on_meta' parameter"),
    ],
)
def test_bad_parameters(params, match):
    with pytest.raises(InvalidParameterError, match=match):
        _fit("ce", X, Y, XM, YM, "X_meta", **params)


def test_unknown_method():
    clf = MetaLabelCorrectionClassifier(method="nope")
    with pytest.raises(InvalidParameterError, match="'method' parameter"):
        clf.fit(X, Y, X_meta=XM, y_meta=YM)


def test_unknown_device():
    with pytest.raises(ValueError, match="device='tpu' is not a torch device"):
        _fit("ce", X, Y, XM, YM, "X_meta", device="tpu")


def test_predict_before_fit():
    with pytest.raises(NotFittedError):
        MetaLabelCorrectionClassifier().predict(X)


# ---------------------------------------------------------------- divergence
def test_divergence_is_a_clear_error_and_leaves_no_fitted_state():
    clf = MetaLabelCorrectionClassifier(
        method="ce", lr=1e30, optimizer=torch.optim.SGD, max_epochs=3, random_state=0
    )
    with pytest.raises(FloatingPointError, match="lower lr \\(now 1e\\+30\\)"):
        clf.fit(X * 1e6, Y, X_meta=XM, y_meta=YM)
    assert not hasattr(clf, "net_") and not hasattr(clf, "classes_")


def test_predict_proba_never_returns_nan():
    clf = _fit("ce", X, Y, XM, YM, "X_meta")
    p = clf.predict_proba(X * 1e30)  # huge but finite inputs
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(1), 1.0)


# -------------------------------------------------------------- interruption
class _Interrupting(nn.Module):
    """An MLP that raises KeyboardInterrupt on its n-th training forward call."""

    calls = 0
    at = 10**9

    def __init__(self, n_features, n_classes):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(n_features, 8), nn.ReLU())
        self.head = nn.Linear(8, n_classes)

    def forward(self, x):
        if self.training:
            type(self).calls += 1
            if type(self).calls == type(self).at:
                raise KeyboardInterrupt
        return self.head(self.backbone(x))


def test_interrupt_keeps_the_model_so_far_and_says_so():
    _Interrupting.calls, _Interrupting.at = 0, 5
    clf = MetaLabelCorrectionClassifier(
        method="ce", module=_Interrupting, max_epochs=10, batch_size=16, random_state=0
    )
    with pytest.warns(UserWarning, match="interrupted during epoch 2 of 10"):
        clf.fit(X, Y, X_meta=XM, y_meta=YM)
    assert clf.n_iter_ == 1
    assert clf.corrected_labels_.shape == (60,) and clf.predict(X).shape == (60,)


def test_interrupt_in_glc_first_stage_leaves_unfitted():
    _Interrupting.calls, _Interrupting.at = 0, 3
    clf = MetaLabelCorrectionClassifier(
        method="glc", module=_Interrupting, max_epochs=10, batch_size=16, random_state=0
    )
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, Y, X_meta=XM, y_meta=YM)
    assert not [k for k in vars(clf) if k.endswith("_")]
    with pytest.raises(NotFittedError):
        clf.predict(X)


def test_refit_starts_from_scratch():
    clf = MetaLabelCorrectionClassifier(method="mlc", max_epochs=2, random_state=0)
    first = clf.fit(X, Y, X_meta=XM, y_meta=YM).predict_proba(X)
    second = clf.fit(X, Y, X_meta=XM, y_meta=YM).predict_proba(X)
    np.testing.assert_array_equal(first, second)
    assert clf.n_iter_ == 2
