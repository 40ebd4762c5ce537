"""
Comparing the methods on injected noise
=======================================

Every method fitted on the same noisy digits, with the same trusted set and
the same network, against plain training (``ce``).  Two numbers per method:
accuracy on a clean test set, and the share of *training* labels that are
right after correction.
"""

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from sklearn_noisy import MetaLabelCorrectionClassifier
from sklearn_noisy.datasets import make_noisy_case
from sklearn_noisy.methods import available_methods

torch.set_num_threads(1)  # keep the example light on a shared CPU

# %%
# 40% pair noise: each label of class ``i`` becomes ``i + 1`` with
# probability 0.4.  The true label is still the most frequent one in each
# class, but a model trained on the labels as given learns much of the flip.
case = make_noisy_case("digits", kind="pair", rate=0.4, meta_per_class=10, seed=0)

methods = ["ce", "glc", "mlc", "mslc", "mslg", "mfrw", "tmlc"]
methods = [m for m in methods if m in available_methods()]
test_acc, label_acc, seconds = [], [], []
for method in methods:
    clf = MetaLabelCorrectionClassifier(method=method, max_epochs=20, device="cpu", random_state=0)
    start = time.perf_counter()
    clf.fit(case.X, case.y_noisy, X_meta=case.X_meta, y_meta=case.y_meta)
    seconds.append(time.perf_counter() - start)
    test_acc.append(clf.score(case.X_test, case.y_test))
    label_acc.append((clf.corrected_labels_ == case.y_true).mean())
    print(
        f"{method:5s} test {test_acc[-1]:.3f}  corrected labels {label_acc[-1]:.3f}  "
        f"fit {seconds[-1]:.1f}s"
    )

# %%
# With 20 epochs, one seed and one noise kind this is a smoke test, not a
# benchmark: ``benchmarks/`` in the repository compares the methods over
# seeds, noise kinds and rates.  The dashed line is the share of given labels
# that were right.
x = np.arange(len(methods))
fig, ax = plt.subplots(figsize=(8, 4))
ax.bar(x - 0.2, test_acc, width=0.4, label="test accuracy")
ax.bar(x + 0.2, label_acc, width=0.4, label="corrected training labels right")
ax.axhline(case.noisy_accuracy, color="k", ls="--", lw=1, label="given labels right")
ax.set_xticks(x, methods)
ax.set_ylim(0.4, 1.0)
ax.legend(loc="lower right")
ax.set_title("digits, 40% pair noise, 10 trusted samples per class")
