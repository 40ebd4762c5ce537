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
