"""Pipelines that carry the trusted set through the preprocessing steps."""

from __future__ import annotations

from sklearn import config_context
from sklearn.pipeline import Pipeline, _name_estimators

__all__ = ["MetaPipeline", "make_meta_pipeline"]


class MetaPipeline(Pipeline):
    """A :class:`~sklearn.pipeline.Pipeline` that transforms ``X_meta`` too.

    A plain pipeline hands ``X_meta`` to the final classifier untransformed, so
    an unscaled trusted set would be used silently.  This pipeline is sklearn's
    own ``Pipeline(transform_input=["X_meta"])`` whose ``fit`` runs under a
    local metadata-routing context: ``X_meta`` goes through the fitted
    preprocessing steps and reaches the classifier with ``y_meta``.  Build it
    with :func:`make_meta_pipeline`.

    Parameters
    ----------
    steps, transform_input, memory, verbose
        As :class:`~sklearn.pipeline.Pipeline`.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_noisy import MetaLabelCorrectionClassifier
    >>> from sklearn_noisy.pipeline import MetaPipeline
    >>> X, y = load_iris(return_X_y=True)
    >>> pipe = MetaPipeline(
    ...     [("scale", StandardScaler()),
    ...      ("clf", MetaLabelCorrectionClassifier(max_epochs=2, random_state=0))],
    ...     transform_input=["X_meta"],
    ... )
    >>> pipe = pipe.fit(X[::2], y[::2], X_meta=X[1::10], y_meta=y[1::10])
    >>> pipe.predict(X[:3]).shape
    (3,)
    """

    def fit(self, X, y=None, **params):
        with config_context(enable_metadata_routing=True):
            return super().fit(X, y, **params)

    def fit_transform(self, X, y=None, **params):
        with config_context(enable_metadata_routing=True):
            return super().fit_transform(X, y, **params)

    def fit_predict(self, X, y=None, **params):
        with config_context(enable_metadata_routing=True):
            return super().fit_predict(X, y, **params)


def make_meta_pipeline(*steps, memory=None, verbose=False):
    """Build a :class:`MetaPipeline` from estimators, naming them automatically.

    Parameters
    ----------
    *steps : estimators
        Transformers followed by the classifier.
    memory : str or object with the joblib.Memory interface, default=None
    verbose : bool, default=False

    Returns
    -------
    pipeline : MetaPipeline
        Its ``fit`` passes ``X_meta`` through the fitted transformers.

    Examples
    --------
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_noisy import MetaLabelCorrectionClassifier, make_meta_pipeline
    >>> pipe = make_meta_pipeline(StandardScaler(), MetaLabelCorrectionClassifier())
    >>> [name for name, _ in pipe.steps]
    ['standardscaler', 'metalabelcorrectionclassifier']
    """
    return MetaPipeline(
        _name_estimators(steps), transform_input=["X_meta"], memory=memory, verbose=verbose
    )
