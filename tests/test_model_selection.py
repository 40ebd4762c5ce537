from __future__ import annotations

import numpy as np
import pytest
from sklearn import config_context
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_noisy import MetaLabelCorrectionClassifier, TrustedKFold


def test_validation_folds_hold_only_trusted_rows():
    rng = np.random.RandomState(0)
    X = rng.rand(200, 3)
    y = rng.randint(0, 4, 200)
    trusted = np.zeros(200, bool)
    trusted[rng.choice(200, 40, replace=False)] = True
    seen = []
    for train, test in TrustedKFold(4).split(X, y, groups=trusted):
        assert trusted[test].all()
        assert (~trusted).sum() == (~trusted[train]).sum()  # every noisy row trains
        assert not np.intersect1d(train, test).size
        seen.append(test)
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.flatnonzero(trusted))


def test_needs_the_mask():
    with pytest.raises(ValueError, match="groups=is_trusted"):
        next(TrustedKFold(3).split(np.zeros((10, 2))))
    with pytest.raises(ValueError, match="more than the 2 trusted rows"):
        next(TrustedKFold(3).split(np.zeros((4, 1)), groups=[1, 1, 0, 0]))


def test_gridsearch_pipeline_with_trusted_folds(pair40):
    X_all, y_all, mask = pair40.all_rows()
    pipe = make_pipeline(
        StandardScaler(),
        MetaLabelCorrectionClassifier(method="glc", max_epochs=3, random_state=0, device="cpu"),
    )
    grid = GridSearchCV(
        pipe,
        {"metalabelcorrectionclassifier__lr": [1e-3, 1e-2]},
        cv=TrustedKFold(3),
    )
    grid.fit(X_all, y_all, groups=mask, metalabelcorrectionclassifier__meta_mask=mask)
    assert set(grid.cv_results_["param_metalabelcorrectionclassifier__lr"]) == {1e-3, 1e-2}
    # scored on clean labels only: a model that fits the noise would score near 0.6
    assert grid.best_score_ > 0.75
    assert grid.score(pair40.X_test, pair40.y_test) > 0.75


def test_method_params_are_tunable(pair40):
    from sklearn_noisy.methods import MLC

    X_all, y_all, mask = pair40.all_rows()
    clf = MetaLabelCorrectionClassifier(method=MLC(), max_epochs=2, random_state=0)
    grid = GridSearchCV(clf, {"method__init_diagonal": [0.6, 0.9]}, cv=TrustedKFold(2))
    grid.fit(X_all, y_all, groups=mask, meta_mask=mask)
    assert grid.best_params_["method__init_diagonal"] in (0.6, 0.9)
    assert grid.best_estimator_.method_.init_diagonal == grid.best_params_["method__init_diagonal"]


def test_cross_val_score_with_metadata_routing(pair40):
    X_all, y_all, mask = pair40.all_rows()
    clf = MetaLabelCorrectionClassifier(method="ce", max_epochs=3, random_state=0, device="cpu")
    with config_context(enable_metadata_routing=True):
        scores = cross_val_score(clf, X_all, y_all, cv=TrustedKFold(3), params={"meta_mask": mask})
    assert len(scores) == 3 and np.all(scores > 0.3)
