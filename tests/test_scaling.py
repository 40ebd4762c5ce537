"""Scaling a hyper-parameter search out: joblib processes and a dask cluster."""

from __future__ import annotations

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import GridSearchCV, cross_validate

from sklearn_noisy import MetaLabelCorrectionClassifier, TrustedKFold


@pytest.fixture(scope="module")
def rows(sym40):
    X_all, y_all, mask = sym40.all_rows()
    return X_all[-400:], y_all[-400:], mask[-400:]  # 100 trusted rows at the end


def _search(n_jobs):
    clf = MetaLabelCorrectionClassifier(
        max_epochs=2, hidden_layer_sizes=(16,), device="cpu", random_state=0
    )
    return GridSearchCV(clf, {"method": ["ce", "mlc"]}, cv=TrustedKFold(2), n_jobs=n_jobs)


class _ThreadProbe(ClassifierMixin, BaseEstimator):
    """Records how many threads torch would use inside a joblib worker."""

    def fit(self, X, y):
        self.torch_threads_ = torch.get_num_threads()
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def test_loky_workers_do_not_oversubscribe(rows):
    X, y, _ = rows
    res = cross_validate(_ThreadProbe(), X, y, cv=2, n_jobs=2, return_estimator=True)
    # joblib's loky backend caps OpenMP threads (which torch uses) per worker
    budget = max(1, joblib.cpu_count() // 2)
    assert all(est.torch_threads_ <= budget for est in res["estimator"])


def test_grid_search_n_jobs_matches_sequential(rows):
    X, y, mask = rows
    seq = _search(1).fit(X, y, groups=mask, meta_mask=mask)
    par = _search(2).fit(X, y, groups=mask, meta_mask=mask)
    np.testing.assert_allclose(
        par.cv_results_["mean_test_score"], seq.cv_results_["mean_test_score"]
    )
    assert par.best_params_ == seq.best_params_


def test_grid_search_on_dask_local_cluster(rows):
    distributed = pytest.importorskip("distributed")
    X, y, mask = rows
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
        joblib.parallel_backend("dask"),  # the one line that moves the search
    ):
        search = _search(-1).fit(X, y, groups=mask, meta_mask=mask)
    assert search.best_params_["method"] in {"ce", "mlc"}
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_.predict(X[:5]).shape == (5,)
