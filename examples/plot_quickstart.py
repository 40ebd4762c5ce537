"""
Quick start
===========

Train a classifier on labels of which 40% are wrong, with ten trusted
(clean) samples per class, and compare it with plain training on the noisy
labels.
"""

# %%
# A noisy-label problem
# ---------------------
# :func:`~sklearn_noisy.datasets.make_noisy_case` splits scikit-learn's digits
# into noisy training rows, a small trusted set and a clean test set.  Here
# each training label is replaced, with probability 0.4, by its "next" class
# (pair noise: 3 becomes 4, 9 becomes 0...).
import torch

from sklearn_noisy import MetaLabelCorrectionClassifier
from sklearn_noisy.datasets import make_noisy_case
from sklearn_noisy.plotting import TrainingHistoryDisplay

torch.set_num_threads(1)  # keep the example light on a shared CPU

case = make_noisy_case("digits", kind="pair", rate=0.4, meta_per_class=10, seed=0)
print(f"{len(case.X)} noisy training rows, {case.noisy_accuracy:.0%} of labels right")
print(f"{len(case.X_meta)} trusted rows, {len(case.X_test)} test rows")

# %%
# Plain training versus meta label correction
# -------------------------------------------
# ``method="ce"`` trains on the noisy labels as they are.  ``method="mlc"``
# learns the noise transition matrix from the trusted set while it trains.
# The trusted set goes to ``fit`` as ``X_meta`` / ``y_meta``.
params = dict(max_epochs=25, device="cpu", random_state=0)
baseline = MetaLabelCorrectionClassifier(method="ce", **params)
baseline.fit(case.X, case.y_noisy, X_meta=case.X_meta, y_meta=case.y_meta)

clf = MetaLabelCorrectionClassifier(method="mlc", **params)
clf.fit(case.X, case.y_noisy, X_meta=case.X_meta, y_meta=case.y_meta)

print(f"ce  test accuracy: {baseline.score(case.X_test, case.y_test):.3f}")
print(f"mlc test accuracy: {clf.score(case.X_test, case.y_test):.3f}")

# %%
# Besides a classifier, the fit returns the corrected training labels, in
# the label space of ``y``.
right = (clf.corrected_labels_ == case.y_true).mean()
print(f"corrected training labels right: {right:.1%} (given: {case.noisy_accuracy:.1%})")

# %%
# How the fit went
# ----------------
# ``history_`` records, per epoch, the training loss, the loss and accuracy
# on the trusted set, and the share of labels the correction changes.  The
# meta quantities start after the method's warm-up epochs.
TrainingHistoryDisplay.from_estimator(clf)
