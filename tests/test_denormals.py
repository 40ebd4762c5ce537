"""Denormal weights and optimizer state are set to zero during training.

On a CPU every product with a denormal operand takes a slow path; weights fed
by dead units shrink into that range under weight decay (see
:func:`sklearn_noisy._engine.flush_denormals`).
"""

import numpy as np
import pytest
import torch

import sklearn_noisy._engine as engine
from sklearn_noisy import MetaLabelCorrectionClassifier
from sklearn_noisy.modules import MLP

DENORMAL32 = torch.tensor(1e-40).item()  # below float32's smallest normal, 1.2e-38
KEPT32 = [1e-37, -1e-37, 1.0, -0.0, 0.0, -3.5]


def _bits(t):
    return t.detach().clone().view(torch.int32 if t.dtype == torch.float32 else torch.int64)


def test_flush_zeroes_denormal_weights_and_moments_and_keeps_every_other_bit():
    w32 = torch.nn.Parameter(torch.tensor([DENORMAL32, -DENORMAL32, *KEPT32]))
    w64 = torch.nn.Parameter(torch.tensor([1e-310, 1e-300, -1e-310], dtype=torch.float64))
    opt = torch.optim.Adam([w32, w64], lr=1e-3)
    (w32.sum() + w64.sum()).backward()
    opt.step()
    with torch.no_grad():  # plant values after the step: Adam's own state entries
        w32.copy_(torch.tensor([DENORMAL32, -DENORMAL32, *KEPT32]))
        w64.copy_(torch.tensor([1e-310, 1e-300, -1e-310], dtype=torch.float64))
        opt.state[w32]["exp_avg"][:2] = torch.tensor([DENORMAL32, 2e-39])
        opt.state[w32]["exp_avg_sq"][:2] = torch.tensor([3e-45, 1e-20])
    before = {
        "w32": _bits(w32),
        "exp_avg": _bits(opt.state[w32]["exp_avg"]),
        "exp_avg_sq": _bits(opt.state[w32]["exp_avg_sq"]),
    }
    step = opt.state[w32]["step"].clone()

    engine.flush_denormals([opt])

    assert w32[:2].tolist() == [0.0, 0.0]
    assert torch.equal(_bits(w32)[2:], before["w32"][2:])  # -0.0 stays -0.0
    assert w64.tolist() == [0.0, 1e-300, 0.0]  # float64's own smallest normal
    avg, sq = opt.state[w32]["exp_avg"], opt.state[w32]["exp_avg_sq"]
    assert avg[:2].tolist() == [0.0, 0.0]
    assert torch.equal(_bits(avg)[2:], before["exp_avg"][2:])
    assert sq[0].item() == 0.0 and sq[1].item() == pytest.approx(1e-20)
    assert torch.equal(_bits(sq)[1:], before["exp_avg_sq"][1:])
    assert torch.equal(opt.state[w32]["step"], step)


class _WithIdleWeights(MLP):
    """An MLP with a parameter the forward pass never reads: nothing moves it but the flush."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.idle = torch.nn.Parameter(torch.tensor([DENORMAL32, -DENORMAL32, 1e-37, 0.5]))


def _fit_idle(case, method, max_epochs):
    module = _WithIdleWeights(case.X.shape[1], 10)
    clf = MetaLabelCorrectionClassifier(
        method=method, module=module, max_epochs=max_epochs, warmup_epochs=0, random_state=0
    )
    return clf.fit(case.X, case.y_noisy, X_meta=case.X_meta, y_meta=case.y_meta)


@pytest.mark.parametrize("method", ["ce", "mlc"])
def test_fit_flushes_denormal_weights_every_32_steps(pair40, method, monkeypatch):
    # pair40 makes 19-20 batches of 64 an epoch: two epochs pass step 32, one does not
    clf = _fit_idle(pair40, method, max_epochs=2)
    assert clf.net_.train_steps_ == sum(len(e["batches"]) for e in clf.net_.history) >= 32
    assert clf.net_.module_.idle.tolist() == [0.0, 0.0, pytest.approx(1e-37), 0.5]

    one_epoch = _fit_idle(pair40, method, max_epochs=1)
    assert one_epoch.net_.train_steps_ < 32
    assert one_epoch.net_.module_.idle[:2].tolist() == [DENORMAL32, -DENORMAL32]

    monkeypatch.setattr(engine, "FLUSH_DENORMALS_EVERY", 10**9)
    unflushed = _fit_idle(pair40, method, max_epochs=2)
    assert unflushed.net_.module_.idle[:2].tolist() == [DENORMAL32, -DENORMAL32]


def test_a_fit_without_denormals_is_unchanged_to_the_bit(pair40, monkeypatch):
    """Flushing after every step touches nothing when no value is denormal."""

    def fit():
        clf = MetaLabelCorrectionClassifier(
            method="mlc", max_epochs=3, warmup_epochs=1, random_state=0
        )
        return clf.fit(pair40.X, pair40.y_noisy, X_meta=pair40.X_meta, y_meta=pair40.y_meta)

    calls = []
    real = engine.flush_denormals
    monkeypatch.setattr(engine, "FLUSH_DENORMALS_EVERY", 10**9)
    never = fit()
    monkeypatch.setattr(engine, "FLUSH_DENORMALS_EVERY", 1)
    monkeypatch.setattr(
        engine,
        "flush_denormals",
        lambda opts, table_rows=None: calls.append(1) or real(opts, table_rows),
    )
    always = fit()
    assert len(calls) == 2 * always.net_.train_steps_ > 100  # the network's, then T's
    np.testing.assert_array_equal(always.predict_proba(pair40.X), never.predict_proba(pair40.X))
    np.testing.assert_array_equal(always.transition_matrix_, never.transition_matrix_)


def test_flush_leaves_per_sample_tables_alone():
    """A table with one row per training row is read a batch at a time: not flushed."""
    table = torch.nn.Parameter(torch.full((7, 3), DENORMAL32))
    small = torch.nn.Parameter(torch.full((3, 3), DENORMAL32))
    engine.flush_denormals([torch.optim.Adam([table, small])], table_rows=7)
    assert (table == DENORMAL32).all() and (small == 0).all()
    engine.flush_denormals([torch.optim.Adam([table])])
    assert (table == 0).all()


def test_mslg_label_table_is_not_flushed_its_network_is(pair40, monkeypatch):
    calls = []
    real = engine.flush_denormals

    def spy(optimizers, table_rows=None):
        calls.append(
            (
                [tuple(p.shape) for o in optimizers for g in o.param_groups for p in g["params"]],
                table_rows,
            )
        )
        real(optimizers, table_rows)

    monkeypatch.setattr(engine, "flush_denormals", spy)
    clf = MetaLabelCorrectionClassifier(
        method="mslg", max_epochs=3, warmup_epochs=1, random_state=0
    )
    clf.fit(pair40.X, pair40.y_noisy, X_meta=pair40.X_meta, y_meta=pair40.y_meta)
    n = clf.net_.train_info.n_samples
    assert len(calls) == 2 * (clf.net_.train_steps_ // 32) > 0
    network, meta = calls[0], calls[1]
    assert network[1] is None and (256, 64) in network[0]  # every weight of the MLP
    assert meta == ([(n, 10)], n)  # the label table's rows are the training rows: skipped
