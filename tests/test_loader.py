"""The engine's batch loader: whole batches read at once, the same batches as skorch's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skorch.dataset import Dataset
from torch.utils.data import DataLoader

import sklearn_noisy._classifier as classifier_module
from sklearn_noisy import MetaLabelCorrectionClassifier
from sklearn_noisy._engine import BatchLoader, _Rows
from tests.conftest import make_case


def _batches(loader_cls, dataset, seed, **kw):
    torch.manual_seed(seed)
    return [tuple(t.clone() for t in batch) for batch in loader_cls(dataset, **kw)]


@pytest.mark.parametrize("shuffle", [True, False])
def test_same_batches_as_the_per_row_loader(shuffle):
    rng = np.random.RandomState(0)
    X = rng.rand(300, 7).astype(np.float32)
    y = rng.randint(0, 5, (300, 3))
    ours = _batches(BatchLoader, Dataset(X, y), 3, batch_size=64, shuffle=shuffle)
    theirs = _batches(DataLoader, Dataset(X, y), 3, batch_size=64, shuffle=shuffle)
    assert [len(b[0]) for b in ours] == [64, 64, 64, 64, 44]
    for (xa, ya), (xb, yb) in zip(ours, theirs, strict=True):
        assert xa.dtype == xb.dtype and ya.dtype == yb.dtype
        torch.testing.assert_close(xa, xb, rtol=0, atol=0)
        torch.testing.assert_close(ya, yb, rtol=0, atol=0)
    # and the global generator is left where the per-row loader leaves it
    torch.manual_seed(3)
    list(BatchLoader(Dataset(X, y), batch_size=64, shuffle=shuffle))
    after_ours = torch.rand(1)
    torch.manual_seed(3)
    list(DataLoader(Dataset(X, y), batch_size=64, shuffle=shuffle))
    assert after_ours == torch.rand(1)


def test_one_read_per_batch(monkeypatch):
    calls = []
    original = _Rows.__getitem__

    def counting(self, rows):
        calls.append(len(rows))
        return original(self, rows)

    monkeypatch.setattr(_Rows, "__getitem__", counting)
    X = np.zeros((300, 4), np.float32)
    out = list(BatchLoader(Dataset(X), batch_size=128))
    assert calls == [128, 128, 44]
    assert [tuple(b[1].shape) for b in out] == [(128,), (128,), (44,)]  # placeholder targets


def test_other_datasets_are_read_row_by_row():
    X = {"a": np.arange(10, dtype=np.float32).reshape(5, 2)}
    loader = BatchLoader(Dataset(X), batch_size=2)
    assert not isinstance(loader.dataset, _Rows)
    assert [b[0]["a"].shape[0] for b in loader] == [2, 2, 1]


def test_a_seeded_fit_is_the_same_to_the_bit(monkeypatch):
    """Every method, with a validation split too: the loader changes no result."""
    case = make_case("symmetric", 0.4)

    def fit(method):
        clf = MetaLabelCorrectionClassifier(
            method=method, max_epochs=3, warmup_epochs=1, early_stopping=True, random_state=0
        )
        clf.fit(case.X, case.y_noisy, X_meta=case.X_meta, y_meta=case.y_meta)
        return clf.predict_proba(case.X_test), clf.corrected_proba_, clf.history_[:, "valid_acc"]

    for method in ["mlc", "mfrw", "tmlc"]:
        ours = fit(method)
        with monkeypatch.context() as m:
            m.setattr(classifier_module, "BatchLoader", DataLoader)
            theirs = fit(method)
        np.testing.assert_array_equal(ours[0], theirs[0])
        np.testing.assert_array_equal(ours[1], theirs[1])
        assert ours[2] == theirs[2]
