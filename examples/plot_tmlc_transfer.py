"""
Reusing a fitted TMLC corrector on a new dataset
================================================

``tmlc`` meta-learns a *label corrector*: an LSTM that reads each sample's
training dynamics (its loss relative to its class and to the batch, the
entropy of the prediction) and decides how far to trust its label.  The
corrector has no part sized by the number of classes or features, so once
fitted it can correct the labels of another dataset, without meta steps.
"""

# %%
import torch

from sklearn_noisy import MetaLabelCorrectionClassifier
from sklearn_noisy.datasets import make_noisy_case
from sklearn_noisy.methods import TMLC

torch.set_num_threads(1)  # keep the example light on a shared CPU

# %%
# Meta-train a corrector
# ----------------------
# The source task: digits with 40% symmetric noise and ten trusted samples
# per class.  After ``fit``, ``corrector_`` holds the corrector (on CPU),
# with snapshots taken during training.
source = make_noisy_case("digits", kind="symmetric", rate=0.4, seed=0)
fitted = MetaLabelCorrectionClassifier(method="tmlc", max_epochs=30, device="cpu", random_state=0)
fitted.fit(source.X, source.y_noisy, X_meta=source.X_meta, y_meta=source.y_meta)
print(f"source test accuracy: {fitted.score(source.X_test, source.y_test):.3f}")
print(type(fitted.corrector_).__name__, f"{len(fitted.corrector_.schedule)} snapshots")


# %%
# Apply it to new tasks
# ---------------------
# ``TMLC(corrector=fitted.corrector_)`` applies a frozen copy: at each epoch
# it loads the snapshot taken at the same share of training.  The targets
# differ from the source in noise kind (pair noise on digits) and in data
# altogether (breast cancer: 30 features, two classes).  No meta step runs
# and the trusted rows are not used for the correction; ``fit`` still wants
# a trusted set unless ``meta_fallback="noisy_subset"``.
def fit(method, case):
    clf = MetaLabelCorrectionClassifier(method=method, max_epochs=30, device="cpu", random_state=0)
    clf.fit(case.X, case.y_noisy, X_meta=case.X_meta, y_meta=case.y_meta)
    return clf


targets = {
    "digits, 40% pair noise": make_noisy_case("digits", kind="pair", rate=0.4, seed=1),
    "breast cancer, 30% symmetric": make_noisy_case("breast_cancer", rate=0.3, seed=1),
}
for name, case in targets.items():
    plain = fit("ce", case)
    transferred = fit(TMLC(corrector=fitted.corrector_), case)
    print(
        f"{name}: ce {plain.score(case.X_test, case.y_test):.3f}, "
        f"transferred corrector {transferred.score(case.X_test, case.y_test):.3f} "
        f"(given labels right: {case.noisy_accuracy:.3f})"
    )

# %%
# A transferred corrector is no guarantee: it encodes how noisy samples
# behaved during the source training.  On data whose training dynamics
# differ a lot from the source's (in our runs, ``mnist1d`` sequences after a
# digits source) it can do worse than plain training, so check it on the
# target's trusted set -- e.g. with :class:`~sklearn_noisy.TrustedKFold` --
# before relying on it.
