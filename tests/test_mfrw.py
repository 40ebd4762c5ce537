"""mfrw: advisor network / meta feature re-weighting."""

from __future__ import annotations

import math
import pickle
import sys

import numpy as np
import pytest
import torch
from conftest import make_case
from sklearn.metrics import roc_auc_score
from torch import nn

from sklearn_noisy import MetaLabelCorrectionClassifier
from sklearn_noisy.methods import MFRW
from tests.conftest import assert_check_reads_the_first_epoch


def _fit(method, case, **kw):
    kw = {"random_state": 0, "device": "cpu", **kw}
    clf = MetaLabelCorrectionClassifier(method=method, **kw)
    return clf.fit(case.X, case.y_noisy, X_meta=case.X_meta, y_meta=case.y_meta)


@pytest.fixture(scope="module")
def fitted(sym40):
    return _fit("mfrw", sym40), _fit("ce", sym40)


def test_beats_ce(fitted, sym40):
    mfrw, ce = fitted
    acc_mfrw = mfrw.score(sym40.X_test, sym40.y_test)
    acc_ce = ce.score(sym40.X_test, sym40.y_test)
    assert acc_mfrw > acc_ce + 0.02, (acc_mfrw, acc_ce)


def test_advisor_weight_separates_clean_from_flipped(fitted, sym40):
    mfrw, _ = fitted
    w = mfrw.advisor_weight_
    assert w.shape == (len(sym40.y_noisy),)
    assert np.isfinite(w).all() and ((w > 0) & (w < 1)).all()
    clean = sym40.y_noisy == sym40.y_true
    assert w[clean].mean() > w[~clean].mean()
    assert roc_auc_score(clean, w) > 0.8


def test_predict_uses_backbone_and_head_only(fitted, sym40):
    mfrw, _ = fitted
    module = mfrw.net_.module_
    with torch.no_grad():
        X = torch.as_tensor(sym40.X_test[:20])
        logits = module.head(module.backbone(X))
    np.testing.assert_allclose(
        mfrw.predict_proba(sym40.X_test[:20]), logits.double().softmax(1).numpy(), atol=1e-6
    )


def test_advisor_is_meta_trained(fitted):
    mfrw, _ = fitted
    advisor = mfrw.net_.meta_module_.advisor
    start = math.log(0.9 / 0.1)  # the last bias starts at logit(init_weight)
    assert not torch.allclose(advisor.out.bias.cpu(), torch.full_like(advisor.out.bias, start))
    assert not any(p is q for p in advisor.parameters() for q in mfrw.net_.module_.parameters())


def test_saturation_penalty_keeps_the_advisor_per_sample():
    """Without it the advisor freezes into one on/off feature mask for every row
    (the paper's schedule: a meta step on every batch)."""
    case = make_case("symmetric", 0.8)
    flat, gap, acc = {}, {}, {}
    for penalty in (0.1, 0.0):
        clf = _fit(MFRW(saturation_penalty=penalty), case, max_epochs=20, meta_every=1)
        net = clf.net_
        with torch.no_grad():
            f = net.module_.backbone(torch.as_tensor(case.X, dtype=torch.float32))
            y = torch.as_tensor(case.y_noisy)
            loss = torch.nn.functional.cross_entropy(net.module_.head(f), y, reduction="none")
            logits = net.meta_module_.advisor.logits(f, torch.log1p(loss))
        flat[penalty] = (logits.abs() > 6).float().mean().item()  # sigmoid slope < 0.0025
        clean = case.y_noisy == case.y_true
        gap[penalty] = clf.advisor_weight_[clean].mean() - clf.advisor_weight_[~clean].mean()
        acc[penalty] = clf.score(case.X_test, case.y_test)
    assert flat[0.1] < 0.1 < 0.5 < flat[0.0], flat
    assert gap[0.1] > 0.1 and abs(gap[0.0]) < 0.01, gap  # flipped rows weighted down
    assert acc[0.1] > acc[0.0] + 0.1, acc


@pytest.mark.parametrize("meta_every, expected_every", [(None, 2), (1, 1)])
def test_advisor_updated_on_every_second_batch_by_default(sym40, meta_every, expected_every):
    """mfrw's default meta_every is 2: the advisor gets half as many updates as batches,
    and still re-weights the features of every batch."""
    clf = _fit(
        "mfrw",
        sym40,
        max_epochs=2,
        warmup_epochs=0,
        pretrain_epochs=0,
        batch_size=64,
        meta_every=meta_every,
    )
    assert clf.net_.meta_every == expected_every
    per_epoch = [len(row["batches"]) for row in clf.history_]
    expected = sum(-(-n // expected_every) for n in per_epoch)
    param = clf.net_.meta_module_.advisor.out.bias
    assert int(clf.net_.meta_optimizer_.state[param]["step"]) == expected
    # every row's features were re-weighted in the last epoch, not only the meta batches'
    assert np.isfinite(clf.advisor_weight_).all()


@pytest.mark.parametrize("reuse", [True, False])
def test_actual_step_on_the_reused_gradient_takes_the_virtual_weights(sym40, monkeypatch, reuse):
    """With the reused gradient the actual step trains on the weights of the virtual
    step: the advisor does not run again, and the rows' table keeps those
    weights.  The paper's order (``reuse_virtual_grad=False``) runs it again, after
    the advisor's update, and the table gets the new weights."""
    advisor_class = sys.modules[MFRW.__module__]._Advisor
    original_logits = advisor_class.logits
    advisor_calls = []

    def spy_logits(self, f, loss):
        out = original_logits(self, f, loss)
        advisor_calls.append(torch.sigmoid(out).detach().mean(1))
        return out

    tables = []  # the table's rows of each step's batch, once the step is done

    def spy_after_step(self, net, logits, y, idx):
        if net.meta_active_:
            tables.append(net.meta_module_.mean_weight[idx].clone())

    monkeypatch.setattr(advisor_class, "logits", spy_logits)
    monkeypatch.setattr(MFRW, "after_step", spy_after_step)
    clf = _fit(
        "mfrw",
        sym40,
        max_epochs=1,
        warmup_epochs=0,
        pretrain_epochs=0,
        batch_size=64,
        meta_every=1,
        reuse_virtual_grad=reuse,
    )
    n_steps = len(clf.history_[-1]["batches"])
    assert len(tables) == n_steps > 0
    # the advisor ran once a step with the reused gradient, twice in the paper's order
    per_step = 1 if reuse else 2
    assert len(advisor_calls) == per_step * n_steps
    # each step leaves in the table the weights of the last advisor call of the step:
    # the virtual step's with the reused gradient, the actual step's without
    for step, table in enumerate(tables):
        torch.testing.assert_close(table, advisor_calls[per_step * step + per_step - 1])
    if not reuse:  # the advisor moved in between: the two calls' weights differ
        assert not torch.equal(advisor_calls[0], advisor_calls[1])


def test_pickle_round_trip(fitted, sym40):
    mfrw, _ = fitted
    loaded = pickle.loads(pickle.dumps(mfrw))
    np.testing.assert_array_equal(
        loaded.predict_proba(sym40.X_test), mfrw.predict_proba(sym40.X_test)
    )
    np.testing.assert_array_equal(loaded.advisor_weight_, mfrw.advisor_weight_)


class _NoSplit(nn.Module):
    def __init__(self, n_features, n_classes):
        super().__init__()
        self.body = nn.Linear(n_features, n_classes)

    def forward(self, X):
        return self.body(X)


def test_module_without_backbone_head_is_refused(sym40):
    with pytest.raises(TypeError, match=r"backbone.*head.*_NoSplit has no 'backbone' and no"):
        _fit("mfrw", sym40, module=_NoSplit, max_epochs=1)


def test_meta_mask_form_and_method_object(sym40):
    X_all, y_all, mask = sym40.all_rows()
    clf = MetaLabelCorrectionClassifier(
        method=MFRW(embed_size=16), max_epochs=3, warmup_epochs=1, random_state=0, device="cpu"
    ).fit(X_all, y_all, meta_mask=mask)
    assert clf.advisor_weight_.shape == (len(y_all),)
    assert np.isnan(clf.advisor_weight_[mask]).all()
    assert np.isfinite(clf.advisor_weight_[~mask]).all()
    assert np.isfinite(clf.history_[-1, "meta_loss"])


# --- a slower advisor where the noise is learnable (learnable_noise="auto")


def _advisor_drift(clf):
    """Mean move of the advisor's last bias from its start, logit(init_weight)."""
    bias = clf.net_.meta_module_.advisor.out.bias.detach().cpu()
    return float((bias - math.log(0.9 / 0.1)).abs().mean())


def test_learnable_noise_slows_the_advisor(linear_noise):
    clf = _fit("mfrw", linear_noise, max_epochs=10)
    assert clf.warmup_epochs_ == 1 and clf.pretrain_epochs_ == 0  # mnist1d: no pre-training
    check = clf.learnable_noise_check_
    assert_check_reads_the_first_epoch(check, clf)
    assert check["learnable"] and check["corrects_less"] and check["meta_lr"] == 3e-4
    assert clf.net_.meta_optimizer_.param_groups[0]["lr"] == 3e-4
    # the meta steps start after the one warm-up epoch: the same fit as one given the
    # slower advisor from the start
    slow = _fit(MFRW(learnable_noise=False), linear_noise, max_epochs=10, meta_lr=3e-4)
    assert slow.learnable_noise_check_ is None
    X = linear_noise.X_test
    np.testing.assert_array_equal(clf.predict_proba(X), slow.predict_proba(X))
    np.testing.assert_array_equal(clf.advisor_weight_, slow.advisor_weight_)
    # at the usual rate (1e-2) the advisor moves further
    usual = _fit(MFRW(learnable_noise=False), linear_noise, max_epochs=10)
    assert usual.net_.meta_optimizer_.param_groups[0]["lr"] == 1e-2
    assert _advisor_drift(usual) > 3 * _advisor_drift(clf) > 0
    # a rate of the user's below the cap is kept
    low = _fit("mfrw", linear_noise, max_epochs=10, meta_lr=1e-4)
    assert low.learnable_noise_check_["corrects_less"]
    assert low.learnable_noise_check_["meta_lr"] == 1e-4


def test_no_learnable_noise_leaves_the_advisor_as_it_was(sym40):
    checked = _fit("mfrw", sym40, max_epochs=6, pretrain_epochs=0)
    unchecked = _fit(MFRW(learnable_noise=False), sym40, max_epochs=6, pretrain_epochs=0)
    check = checked.learnable_noise_check_
    assert not check["learnable"] and not check["corrects_less"]
    assert check["given_label_log_proba"] < check["trusted_label_log_proba"]
    assert check["meta_lr"] == 1e-2
    np.testing.assert_array_equal(checked.predict_proba(sym40.X), unchecked.predict_proba(sym40.X))
    np.testing.assert_array_equal(checked.advisor_weight_, unchecked.advisor_weight_)


def test_learnable_noise_check_not_after_a_pre_training(linear_noise):
    pretrained = _fit("mfrw", linear_noise, max_epochs=3, pretrain_epochs=2)
    assert pretrained.learnable_noise_check_ is None
    assert "trusted_label_log_proba" not in pretrained.history_[0]
    assert pretrained.net_.meta_optimizer_.param_groups[0]["lr"] == 1e-2
    apart = _fit("mfrw", linear_noise, max_epochs=3, pretrain_epochs=0, train_on_meta=False)
    assert apart.learnable_noise_check_ is None


def test_learnable_noise_is_validated(sym40):
    with pytest.raises(ValueError, match="learnable_noise must be 'auto' or False"):
        _fit(MFRW(learnable_noise=0), sym40, max_epochs=2, pretrain_epochs=0)


@pytest.mark.cuda
def test_cuda(sym40):
    clf = _fit("mfrw", sym40, max_epochs=4, warmup_epochs=1, device="cuda")
    assert clf.net_.meta_module_.mean_weight.is_cuda
    assert clf.score(sym40.X_test, sym40.y_test) > 0.5
    loaded = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(
        loaded.predict_proba(sym40.X_test), clf.predict_proba(sym40.X_test), atol=1e-6
    )
