"""
Honest hyper-parameter search with TrustedKFold
===============================================

Cross-validation with ordinary folds scores each candidate against *noisy*
labels, which rewards the candidate that fits the noise best.
:class:`~sklearn_noisy.TrustedKFold` puts only trusted rows in the
validation folds, so every score is measured on clean labels.
"""

# %%
# One array for noisy and trusted rows
# ------------------------------------
# Inside a scikit-learn search the trusted set travels as a boolean mask over
# the rows of ``X`` (``meta_mask``): the search slices it per fold like any
# sample-aligned fit parameter.
import torch
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_noisy import MetaLabelCorrectionClassifier, TrustedKFold
from sklearn_noisy.datasets import make_noisy_case

torch.set_num_threads(1)  # keep the example light on a shared CPU

case = make_noisy_case("digits", kind="pair", rate=0.4, meta_per_class=10, seed=0)
X_all, y_all, is_trusted = case.all_rows()
print(f"{len(X_all)} rows, {is_trusted.sum()} of them trusted")

# %%
# A pipeline and a small grid
# ---------------------------
# The mask is a fit parameter of the classifier step, so it is passed as
# ``<step>__meta_mask``; ``groups`` tells ``TrustedKFold`` which rows it may
# validate on.
pipe = make_pipeline(
    StandardScaler(),
    MetaLabelCorrectionClassifier(max_epochs=15, device="cpu", random_state=0),
)
grid = {"metalabelcorrectionclassifier__method": ["ce", "glc", "mlc"]}
fit_params = {"groups": is_trusted, "metalabelcorrectionclassifier__meta_mask": is_trusted}

trusted_search = GridSearchCV(pipe, grid, cv=TrustedKFold(3)).fit(X_all, y_all, **fit_params)

# %%
# The same search with ordinary folds, for comparison: its validation folds
# are mostly noisy rows.
naive_search = GridSearchCV(pipe, grid, cv=KFold(3, shuffle=True, random_state=0))
naive_search.fit(X_all, y_all, **fit_params)

# %%
# Each candidate's cross-validated score next to its accuracy on the clean
# test set (refitted on all rows).  The trusted scores track the test
# accuracy; the noisy-fold scores sit near the share of right labels and
# can rank the candidates the wrong way round.
for method, trusted, naive in zip(
    grid["metalabelcorrectionclassifier__method"],
    trusted_search.cv_results_["mean_test_score"],
    naive_search.cv_results_["mean_test_score"],
):
    model = pipe.set_params(metalabelcorrectionclassifier__method=method)
    model.fit(X_all, y_all, metalabelcorrectionclassifier__meta_mask=is_trusted)
    test = model.score(case.X_test, case.y_test)
    print(f"{method:4s} TrustedKFold {trusted:.3f}  KFold {naive:.3f}  test {test:.3f}")

print("chosen with TrustedKFold:", trusted_search.best_params_)
print("chosen with KFold:       ", naive_search.best_params_)
best_test = trusted_search.score(case.X_test, case.y_test)
print(f"test accuracy of the TrustedKFold choice: {best_test:.3f}")

# %%
# Moving the search to a cluster
# ------------------------------
# ``GridSearchCV(..., n_jobs=-1)`` runs the fits in parallel processes.  To
# run them on a dask cluster instead, wrap the ``fit`` call in joblib's dask
# backend (``pip install "dask[distributed]"``)::
#
#     from dask.distributed import Client
#     import joblib
#
#     client = Client("tcp://scheduler:8786")  # or Client() for a local cluster
#     with joblib.parallel_backend("dask"):    # the one line that changes
#         trusted_search.fit(X_all, y_all, **fit_params)
