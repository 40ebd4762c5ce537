"""The three ways to pass the trusted set, and the errors around them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_noisy import MetaLabelCorrectionClassifier, MetaSetWarning, make_meta_pipeline

KW = dict(method="mlc", max_epochs=4, warmup_epochs=1, random_state=0, device="cpu")


def test_three_forms_give_identical_results(pair40):
    a = MetaLabelCorrectionClassifier(**KW).fit(
        pair40.X, pair40.y_noisy, X_meta=pair40.X_meta, y_meta=pair40.y_meta
    )
    X_all, y_all, mask = pair40.all_rows()
    b = MetaLabelCorrectionClassifier(**KW).fit(X_all, y_all, meta_mask=mask)
    # make_meta_pipeline with an identity-like step: same data reaches the classifier
    from sklearn.preprocessing import FunctionTransformer

    pipe = make_meta_pipeline(FunctionTransformer(), MetaLabelCorrectionClassifier(**KW))
    pipe.fit(pair40.X, pair40.y_noisy, X_meta=pair40.X_meta, y_meta=pair40.y_meta)
    c = pipe[-1]

    p = a.predict_proba(pair40.X_test)
    np.testing.assert_allclose(b.predict_proba(pair40.X_test), p, atol=1e-6)
    np.testing.assert_allclose(c.predict_proba(pair40.X_test), p, atol=1e-6)
    np.testing.assert_allclose(b.transition_matrix_, a.transition_matrix_, atol=1e-6)
    # meta_mask: corrected arrays align with X_all; trusted rows keep their label
    n = len(pair40.X)
    np.testing.assert_array_equal(b.corrected_labels_[:n], a.corrected_labels_)
    np.testing.assert_array_equal(b.corrected_labels_[n:], pair40.y_meta)
    assert b.corrected_proba_.shape == (len(X_all), 10)


def test_meta_pipeline_transforms_X_meta(pair40):
    shift = 5.0  # a trusted set on another scale than the training rows
    pipe = make_meta_pipeline(StandardScaler(), MetaLabelCorrectionClassifier(**KW))
    pipe.fit(pair40.X + shift, pair40.y_noisy, X_meta=pair40.X_meta + shift, y_meta=pair40.y_meta)
    seen = pipe[-1].net_  # the classifier was fitted on scaled data
    scaler = pipe[0]
    ref = MetaLabelCorrectionClassifier(**KW).fit(
        scaler.transform(pair40.X + shift),
        pair40.y_noisy,
        X_meta=scaler.transform(pair40.X_meta + shift),
        y_meta=pair40.y_meta,
    )
    assert seen is not None
    np.testing.assert_allclose(
        pipe.predict_proba(pair40.X_test + shift),
        ref.predict_proba(scaler.transform(pair40.X_test + shift)),
        atol=1e-6,
    )


def test_plain_pipeline_with_meta_mask(pair40):
    X_all, y_all, mask = pair40.all_rows()
    pipe = make_pipeline(StandardScaler(), MetaLabelCorrectionClassifier(**KW))
    pipe.fit(X_all, y_all, metalabelcorrectionclassifier__meta_mask=mask)
    assert pipe.score(pair40.X_test, pair40.y_test) > 0.3


@pytest.fixture
def clf():
    return MetaLabelCorrectionClassifier(**KW)


def test_both_forms_at_once(clf, pair40):
    X_all, y_all, mask = pair40.all_rows()
    with pytest.raises(ValueError, match="either as X_meta/y_meta or as meta_mask"):
        clf.fit(X_all, y_all, X_meta=pair40.X_meta, y_meta=pair40.y_meta, meta_mask=mask)


def test_X_meta_without_y_meta(clf, pair40):
    with pytest.raises(ValueError, match="y_meta is missing"):
        clf.fit(pair40.X, pair40.y_noisy, X_meta=pair40.X_meta)


def test_X_meta_feature_count(clf, pair40):
    with pytest.raises(ValueError, match="X_meta|features"):
        clf.fit(pair40.X, pair40.y_noisy, X_meta=pair40.X_meta[:, :10], y_meta=pair40.y_meta)


def test_y_meta_class_absent_from_y(clf, pair40):
    y_meta = pair40.y_meta.copy()
    y_meta[0] = 42
    with pytest.raises(ValueError, match="y_meta has classes absent from y: \\[42\\]"):
        clf.fit(pair40.X, pair40.y_noisy, X_meta=pair40.X_meta, y_meta=y_meta)


def test_meta_as_long_as_X_is_refused(clf, pair40):
    n = len(pair40.X)
    X_meta = np.resize(pair40.X_meta, (n, pair40.X.shape[1]))
    y_meta = np.resize(pair40.y_meta, n)
    with pytest.raises(ValueError, match="X_meta has as many rows as X.*meta_mask"):
        clf.fit(pair40.X, pair40.y_noisy, X_meta=X_meta, y_meta=y_meta)


def test_meta_set_missing_a_class_warns(clf, pair40):
    keep = pair40.y_meta != 3
    with pytest.warns(MetaSetWarning, match=r"no sample of classes \[3\]"):
        clf.fit(pair40.X, pair40.y_noisy, X_meta=pair40.X_meta[keep], y_meta=pair40.y_meta[keep])


@pytest.mark.parametrize(
    "mask, match",
    [
        (np.zeros(5, bool), "length"),
        ("floats", "boolean"),
        ("none", "no row as trusted"),
        ("all", "every row"),
    ],
)
def test_bad_meta_mask(clf, pair40, mask, match):
    X_all, y_all, good = pair40.all_rows()
    if isinstance(mask, str):
        mask = {
            "floats": good.astype(float) * 0.5,
            "none": np.zeros_like(good),
            "all": np.ones_like(good),
        }[mask]
    with pytest.raises(ValueError, match=match):
        clf.fit(X_all, y_all, meta_mask=mask)


def test_integer_meta_mask_accepted(pair40):
    X_all, y_all, mask = pair40.all_rows()
    a = MetaLabelCorrectionClassifier(**KW).fit(X_all, y_all, meta_mask=mask)
    b = MetaLabelCorrectionClassifier(**KW).fit(X_all, y_all, meta_mask=mask.astype(int))
    np.testing.assert_allclose(a.predict_proba(pair40.X_test), b.predict_proba(pair40.X_test))


def test_user_arrays_are_not_modified(pair40):
    arrays = [pair40.X.copy(), pair40.y_noisy.copy(), pair40.X_meta.copy(), pair40.y_meta.copy()]
    for a in arrays:
        a.setflags(write=False)
    MetaLabelCorrectionClassifier(**KW).fit(
        arrays[0], arrays[1], X_meta=arrays[2], y_meta=arrays[3]
    )
    np.testing.assert_array_equal(arrays[0], pair40.X)
    np.testing.assert_array_equal(arrays[1], pair40.y_noisy)
    np.testing.assert_array_equal(arrays[2], pair40.X_meta)
    np.testing.assert_array_equal(arrays[3], pair40.y_meta)
