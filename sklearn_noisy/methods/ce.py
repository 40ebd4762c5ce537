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
    """

    name = "ce"
