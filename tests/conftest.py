"""Shared fixtures: small noisy-label cases built from scikit-learn's digits."""

from __future__ import annotations

import pytest
import torch

from sklearn_noisy.datasets import NoisyCase, make_noisy_case

torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip)


def interrupt_fits_after(monkeypatch, epoch):
    """Make every fit raise KeyboardInterrupt, as a user's Ctrl-C would, at the end
    of epoch ``epoch`` (1-based), before the callbacks see that epoch."""
    from sklearn_noisy._engine import BiLevelNet

    original = BiLevelNet.on_epoch_end

    def interrupting(self, net, **kwargs):
        original(self, net, **kwargs)
        if len(self.history) == epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(BiLevelNet, "on_epoch_end", interrupting)


def make_case(kind="symmetric", rate=0.4, per_class=10, seed=0) -> NoisyCase:
    """Digits scaled to [0, 1], 30% test split, ``per_class`` trusted rows per class."""
    return make_noisy_case("digits", kind=kind, rate=rate, meta_per_class=per_class, seed=seed)


@pytest.fixture(scope="session")
def pair40():
    return make_case("pair", 0.4)


@pytest.fixture(scope="session")
def sym40():
    return make_case("symmetric", 0.4)
