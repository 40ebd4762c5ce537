"""
Looking at the corrected labels and the learned T
=================================================

After ``fit``, the classifier holds its corrected training labels
(``corrected_labels_``, ``corrected_proba_``) and a transition matrix
``transition_matrix_`` with ``T[i, j] = P(noisy = j | true = i)``.  With
synthetic noise the truth is known, so both can be checked.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from sklearn_noisy import MetaLabelCorrectionClassifier
from sklearn_noisy.datasets import make_noisy_case
from sklearn_noisy.plotting import CorrectionDisplay, TransitionMatrixDisplay

torch.set_num_threads(1)  # keep the example light on a shared CPU

case = make_noisy_case("digits", kind="pair", rate=0.4, meta_per_class=10, seed=0)
clf = MetaLabelCorrectionClassifier(method="glc", max_epochs=25, device="cpu", random_state=0)
clf.fit(case.X, case.y_noisy, X_meta=case.X_meta, y_meta=case.y_meta)

# %%
# The transition matrix
# ---------------------
# ``glc`` estimates T from the model's mean prediction on the trusted
# samples of each class.  Rows are true classes and sum to 1; the planted
# pair noise puts about 0.4 just right of the diagonal.  (cleanlab's
# ``noise_matrix`` is the transpose: columns are true classes.)
TransitionMatrixDisplay.from_estimator(clf, true_matrix=case.T, values_format=".1f")

# %%
# Which labels changed
# --------------------
# Left, the given labels against the corrected ones: off the diagonal are the
# labels the correction moved.  Middle, the true labels against the
# corrected ones.  Right, what happened to each training row: a label is
# *fixed* when it was wrong and now is right, *broken* when it was right and
# no longer is.
disp = CorrectionDisplay.from_estimator(clf, case.y_noisy, y_true=case.y_true)
print(disp.outcomes_)

# %%
# A few of the fixed samples
# --------------------------
# ``corrected_proba_`` says how sure the correction is; these are the fixed
# rows it is surest about.
fixed = np.flatnonzero(disp.changed_ & (clf.corrected_labels_ == case.y_true))
sure = fixed[np.argsort(-clf.corrected_proba_[fixed].max(1))][:8]
fig, axes = plt.subplots(1, len(sure), figsize=(1.4 * len(sure), 2))
for ax, row in zip(axes, sure):
    ax.imshow(case.X[row].reshape(8, 8), cmap="gray_r")
    ax.set_title(f"{case.y_noisy[row]} -> {clf.corrected_labels_[row]}", fontsize="small")
    ax.axis("off")
fig.suptitle("given -> corrected label")
