"""``ce``: plain cross-entropy on the noisy labels (the baseline)."""

from __future__ import annotations

from ._base import MetaMethod, register


@register
class CE(MetaMethod):
    """Plain training on the noisy labels, with no correction.

    The baseline every other method is compared against.  ``corrected_labels_``
    are the model's predictions on the training rows and ``transition_matrix_``
    is estimated from those predictions against the noisy labels.  With
    ``train_on_meta=True`` on the classifier the trusted rows are added to the
    training set ("CE on noisy + trusted").

    Examples
    --------
    >>> from sklearn_noisy import MetaLabelCorrectionClassifier
    >>> from sklearn_noisy.datasets import make_noisy_case
    >>> case = make_noisy_case("digits", kind="symmetric", rate=0.4, seed=0)
    >>> clf = MetaLabelCorrectionClassifier(method="ce", max_epochs=3, random_state=0)
    >>> clf = clf.fit(case.X, case.y_noisy, X_meta=case.X_meta, y_meta=case.y_meta)
    >>> bool((clf.corrected_labels_ == clf.predict(case.X)).all())
    True
    """

    name = "ce"
    default_average = 0.0  # the baseline stays plain training: the last epoch's weights
