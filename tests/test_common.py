"""scikit-learn's estimator checks over one cheap instance per registered method."""

from __future__ import annotations

import warnings

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_noisy import MetaLabelCorrectionClassifier, NoTrustedSetWarning
from sklearn_noisy.methods import available_methods

# Cheap settings that still learn sklearn's small check datasets.  The checks
# pass no trusted set, so meta_fallback="noisy_subset" lets them exercise fit.
CHEAP = dict(
    max_epochs=10,
    lr=1e-2,
    hidden_layer_sizes=(16,),
    meta_fallback="noisy_subset",
    random_state=0,
    device="cpu",
)

# check name -> reason, per method.  Empty: every check passes.
EXPECTED_FAILURES: dict[str, dict[str, str]] = {}


def _instances():
    return [MetaLabelCorrectionClassifier(method=m, **CHEAP) for m in available_methods()]


@parametrize_with_checks(
    _instances(),
    expected_failed_checks=lambda est: EXPECTED_FAILURES.get(est.method, {}),
)
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoTrustedSetWarning)
        check(estimator)


def test_every_method_is_checked():
    assert {"ce", "glc", "mlc"} <= set(available_methods())
    assert len(_instances()) == len(available_methods())


@pytest.mark.parametrize("method", available_methods())
def test_no_meta_set_raises_by_default(method, sym40):
    clf = MetaLabelCorrectionClassifier(method=method, max_epochs=1)
    with pytest.raises(ValueError, match="No trusted set"):
        clf.fit(sym40.X, sym40.y_noisy)
