"""A training step reads no value of a tensor on the training device.

Reading one (``bool(t)``, ``int(t)``, ``t.item()``...) makes the host wait for
a GPU to finish its queued work: once per step, that stalls every step.  On the
CPU such reads cost next to nothing, so CI would never notice them; this test
catches them where they happen, on any device: every value read during a step
must be an optimizer's step count, which torch's Adam keeps on the CPU.
(skorch's own loop reads each batch's loss after the step, outside it.)
"""

from __future__ import annotations

import pickle

import pytest
import torch
from torch.overrides import TorchFunctionMode

from sklearn_noisy import MetaLabelCorrectionClassifier
from sklearn_noisy._engine import BiLevelNet
from sklearn_noisy.methods import available_methods, get_method

READS = {"__bool__", "__int__", "__float__", "__index__", "item", "tolist", "numpy"}


class _ValueReads(TorchFunctionMode):
    """Collects the tensors whose values are read inside the mode."""

    def __init__(self):
        super().__init__()
        self.tensors = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in READS and args and torch.is_tensor(args[0]):
            self.tensors.append(args[0])
        return func(*args, **(kwargs or {}))


def _step_counts(net):
    optimizers = [net.optimizer_, getattr(net, "meta_optimizer_", None)]
    return {
        id(state["step"])
        for optimizer in optimizers
        if optimizer is not None
        for state in optimizer.state.values()
        if "step" in state
    }


@pytest.mark.parametrize("method", available_methods())
def test_training_steps_read_no_device_value(method, sym40, monkeypatch):
    original = BiLevelNet.train_step
    strays = []
    steps = []

    def watched(self, *args, **kwargs):
        with _ValueReads() as reads:
            out = original(self, *args, **kwargs)
        counts = _step_counts(self)
        strays.extend(t for t in reads.tensors if id(t) not in counts)
        steps.append(self.meta_active_)
        return out

    monkeypatch.setattr(BiLevelNet, "train_step", watched)
    clf = MetaLabelCorrectionClassifier(
        method=method, max_epochs=3, warmup_epochs=1, random_state=0
    )
    clf.fit(sym40.X, sym40.y_noisy, X_meta=sym40.X_meta, y_meta=sym40.y_meta)
    assert len(steps) > 20
    if get_method(method).uses_meta_step:
        assert any(steps)  # meta steps were watched too
    assert not strays, f"{len(strays)} reads of tensor values during {len(steps)} steps"
    assert clf.history_[-1, "labels_changed"] > 0  # still counted, without the reads


def test_glc_stage_flag_follows_its_buffer_when_loaded():
    """``glc`` reads its stage from a Python flag (above); a state loaded from a
    state dict, or unpickled from a version without the flag, takes it from the
    ``corrected`` buffer."""
    from sklearn_noisy.methods.glc import _GLCState

    fitted = _GLCState(3)
    fitted.set_corrected()
    fresh = _GLCState(3)
    assert not fresh.stage_two
    fresh.load_state_dict(fitted.state_dict())
    assert fresh.stage_two
    del fitted.__dict__["stage_two"]  # as pickled before the flag existed
    assert pickle.loads(pickle.dumps(fitted)).stage_two
