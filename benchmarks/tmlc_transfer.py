"""TMLC transfer (Algorithm 2): meta-train a corrector on one noisy digits case,
apply it frozen to others, and compare with ``ce`` on each.

``tmlc`` trains on the trusted rows by default (``train_on_meta``), so the table
also shows ``ce`` trained on them (``ce+trusted``) and the transferred corrector
with ``train_on_meta=False`` (the corrector alone, no trusted row used).

Run: ``python benchmarks/tmlc_transfer.py`` (CPU, about two minutes).
"""

import time

import torch

from sklearn_noisy import MetaLabelCorrectionClassifier
from sklearn_noisy.datasets import make_noisy_case
from sklearn_noisy.methods import TMLC


def _fit(method, case, **kw):
    clf = MetaLabelCorrectionClassifier(method=method, random_state=0, device="cpu", **kw)
    start = time.perf_counter()
    clf.fit(case.X, case.y_noisy, X_meta=case.X_meta, y_meta=case.y_meta)
    return clf, time.perf_counter() - start


def main():
    torch.set_num_threads(1)
    source = make_noisy_case("digits", kind="symmetric", rate=0.4, meta_per_class=10, seed=0)
    fitted, elapsed = _fit("tmlc", source)
    print(
        f"source digits/symmetric/seed0: tmlc test "
        f"{fitted.score(source.X_test, source.y_test):.3f} ({elapsed:.1f}s)"
    )
    print(
        "| target | noisy-label acc | ce test | ce+trusted test | transfer test "
        "| transfer, no trusted rows | ce corrected | transfer corrected |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for kind, seed in [("symmetric", 1), ("pair", 0), ("pair", 1), ("instance", 1)]:
        target = make_noisy_case("digits", kind=kind, rate=0.4, meta_per_class=10, seed=seed)
        ce, _ = _fit("ce", target)
        ce_t, _ = _fit("ce", target, train_on_meta=True)
        tr, _ = _fit(TMLC(corrector=fitted.corrector_), target)
        tr_alone, _ = _fit(TMLC(corrector=fitted.corrector_), target, train_on_meta=False)
        print(
            f"| {kind}/seed{seed} | {target.noisy_accuracy:.3f} "
            f"| {ce.score(target.X_test, target.y_test):.3f} "
            f"| {ce_t.score(target.X_test, target.y_test):.3f} "
            f"| {tr.score(target.X_test, target.y_test):.3f} "
            f"| {tr_alone.score(target.X_test, target.y_test):.3f} "
            f"| {(ce.corrected_labels_ == target.y_true).mean():.3f} "
            f"| {(tr.corrected_labels_ == target.y_true).mean():.3f} |"
        )


if __name__ == "__main__":
    main()
