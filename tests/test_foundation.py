"""Behaviour of the engine and the foundation methods (ce, glc, mlc)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sklearn_noisy import MetaLabelCorrectionClassifier
from sklearn_noisy.methods import MLC, MSLG, get_method
from sklearn_noisy.methods.mlc import _TransitionLogits
from sklearn_noisy.modules import MLP

EPOCHS = 40


def _fit(case, method, **kw):
    clf = MetaLabelCorrectionClassifier(
        method=method, random_state=0, device="cpu", **{"max_epochs": EPOCHS, **kw}
    )
    return clf.fit(case.X, case.y_noisy, X_meta=case.X_meta, y_meta=case.y_meta)


@pytest.fixture(scope="module")
def fitted(pair40):
    return {m: _fit(pair40, m) for m in ("ce", "glc", "mlc")}


def _acc(clf, case):
    return clf.score(case.X_test, case.y_test)


@pytest.mark.parametrize("method", ["glc", "mlc"])
def test_beats_ce_on_pair_noise(fitted, pair40, method):
    # 40% pair noise, 10 trusted per class: ce fits the flips (about 0.6)
    assert _acc(fitted[method], pair40) > _acc(fitted["ce"], pair40) + 0.1
    corrected = (fitted[method].corrected_labels_ == pair40.y_true).mean()
    assert corrected > pair40.noisy_accuracy + 0.1


def test_glc_transition_matrix_recovers_planted_diagonal(fitted, pair40):
    T = fitted["glc"].transition_matrix_
    np.testing.assert_allclose(T.sum(1), 1.0, atol=1e-6)
    assert (T >= 0).all()
    # GLC's T is a mean of predictions on 10 trusted rows per class
    assert np.abs(np.diag(T) - np.diag(pair40.T)).mean() < 0.06


def test_mlc_learns_a_dominant_flatter_transition_matrix(fitted, pair40):
    """MLC's T: row-stochastic, diagonally dominant, flatter than the truth.

    The meta gradient rewards a tolerant (flat) T, so the diagonal sits below
    the planted one (documented in ``MLC``); the planted flip target still
    carries more mass than the other off-diagonal entries on most rows.
    """
    T = fitted["mlc"].transition_matrix_
    np.testing.assert_allclose(T.sum(1), 1.0, atol=1e-6)
    off = T - np.diag(np.diag(T))
    assert (np.diag(T) >= off.max(1) - 1e-6).all()
    assert (np.diag(T) < np.diag(pair40.T)).mean() >= 0.8
    target = off[np.arange(10), (np.arange(10) + 1) % 10]
    others = (off.sum(1) - target) / 8
    assert (target > others).mean() >= 0.7


def test_mlc_projection_raises_only_the_dominated_diagonal_logits():
    """After each meta step MLC raises a diagonal logit below its row's largest
    off-diagonal one to that value; every other logit stays to the bit."""
    layer = _TransitionLogits(6, 0.5)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(6, 6, generator=torch.Generator().manual_seed(0)))
        layer.weight.diagonal()[:3] += 5.0  # rows 0-2 dominant already
    before = layer.weight.detach().clone()
    off = before.masked_fill(torch.eye(6, dtype=torch.bool), -torch.inf).amax(1)
    assert (before.diagonal()[3:] < off[3:]).any()  # something to raise
    layer.make_diagonally_dominant()
    after = layer.weight.detach()
    assert torch.equal(after.diagonal(), torch.maximum(before.diagonal(), off))
    eye = torch.eye(6, dtype=torch.bool)
    assert torch.equal(after[~eye], before[~eye])
    T = layer.log_T().exp()
    assert (T.diagonal() >= T.masked_fill(eye, 0).amax(1)).all()


def test_glc_transition_matrix_has_the_pair_structure(fitted, pair40):
    T = fitted["glc"].transition_matrix_
    nxt = T[np.arange(10), (np.arange(10) + 1) % 10]
    off = T - np.diag(np.diag(T))
    # the mass off the diagonal sits on the next class, as planted
    assert (nxt / off.sum(1) > 0.6).mean() >= 0.8


def test_ce_corrected_labels_are_its_predictions(fitted, pair40):
    clf = fitted["ce"]
    np.testing.assert_array_equal(clf.corrected_labels_, clf.predict(pair40.X))
    np.testing.assert_allclose(clf.corrected_proba_.sum(1), 1.0)


def test_mlc_meta_parameters_change_during_fit(pair40):
    clf = _fit(pair40, MLC(init_diagonal=0.8), max_epochs=8)
    start = np.full((10, 10), 0.2 / 9)
    np.fill_diagonal(start, 0.8)
    assert np.abs(clf.transition_matrix_ - start).max() > 0.05
    # the main optimizer does not hold T
    opt_params = {id(p) for g in clf.net_.optimizer_.param_groups for p in g["params"]}
    assert id(clf.net_.meta_module_.weight) not in opt_params


def test_mlc_corrected_proba_is_posterior_given_noisy_label(fitted, pair40):
    clf = fitted["mlc"]
    p = clf.predict_proba(pair40.X)
    T = clf.transition_matrix_
    q = p * T[:, pair40.y_noisy].T
    q /= q.sum(1, keepdims=True)
    np.testing.assert_allclose(clf.corrected_proba_, q, atol=1e-5)


def test_history_records_meta_progress(fitted):
    h = fitted["mlc"].history_
    assert len(h) == EPOCHS
    warm = MLC().default_warmup(EPOCHS)
    assert "meta_loss" not in h[warm - 1] and "meta_loss" in h[warm]
    for key in ("train_loss", "meta_loss", "meta_acc", "labels_changed"):
        assert np.isfinite(h[-1, key])
    assert h[-1, "meta_acc"] > h[warm, "meta_acc"]
    # ce changes the labels it disagrees with; glc/mlc flip many more back
    assert h[-1, "labels_changed"] > 0.2


def test_batchnorm_buffers_untouched_by_virtual_step(pair40):
    from sklearn_noisy._engine import Forward

    clf = _fit(pair40, "mlc", max_epochs=2, warmup_epochs=0, module_params={"batch_norm": True})
    net = clf.net_
    module = net.module_
    before = {k: b.clone() for k, b in module.named_buffers()}
    buffers = {k: b.clone() for k, b in module.named_buffers()}
    module.train()
    Forward(module, dict(module.named_parameters()), buffers)(torch.as_tensor(pair40.X[:64]))
    for k, b in module.named_buffers():
        assert torch.equal(b, before[k]), k
    assert any(not torch.equal(buffers[k], before[k]) for k in buffers)


class _CountingMLP(MLP):
    """The default MLP, recording the size of every training-mode backbone pass."""

    passes: list = []

    def __init__(self, n_features, n_classes, **kwargs):
        super().__init__(n_features, n_classes, **kwargs)
        self.backbone.register_forward_hook(self._count)

    @staticmethod
    def _count(mod, inp, out):
        if mod.training:
            _CountingMLP.passes.append(len(inp[0]))


@pytest.mark.parametrize("method", ["mlc", "mfrw"])
def test_actual_step_reuses_the_virtual_forward_pass(pair40, method):
    """One pass of each training batch per step, not two; BatchNorm updated once per batch."""
    _CountingMLP.passes = []
    clf = MetaLabelCorrectionClassifier(
        # a given start of T: no trusted-set check, whose fold networks would count
        method=MLC(init_diagonal=0.5) if method == "mlc" else method,
        module=_CountingMLP,
        module_params={"batch_norm": True},
        max_epochs=2,
        warmup_epochs=1,
        pretrain_epochs=0,  # the passes of the training steps only
        meta_every=1,  # a meta batch with every training batch
        batch_size=50,
        random_state=0,
        device="cpu",
    )
    clf.fit(pair40.X, pair40.y_noisy, X_meta=pair40.X_meta, y_meta=pair40.y_meta)
    n_batches = sum(len(row["batches"]) for row in clf.history_)
    n_meta = len(pair40.y_meta)  # one meta batch: the whole trusted set
    train_passes = [n for n in _CountingMLP.passes if n <= 50]
    assert len(train_passes) == n_batches
    assert _CountingMLP.passes.count(n_meta) == len(clf.history_[-1]["batches"])
    bn = next(m for m in clf.net_.module_.modules() if isinstance(m, torch.nn.BatchNorm1d))
    # the meta-step epoch's passes ran on copies of the buffers, written back once
    # per batch; the meta batches' statistics stayed out
    assert int(bn.num_batches_tracked) == n_batches


@pytest.mark.parametrize("method, logged_only", [("mlc", True), ("mslg", True), ("mslc", False)])
def test_actual_step_on_the_reused_gradient_logs_the_virtual_loss(
    pair40, monkeypatch, method, logged_only
):
    """Where the method's actual-step loss would only be logged, an actual step that
    takes the virtual step's gradient does not evaluate it again: it logs the loss
    the gradient came from.  ``mslc`` writes its soft labels in the actual step,
    so there the loss is evaluated again, after the meta update."""
    cls = type(get_method(method))
    assert cls.actual_loss_only_logged is logged_only
    original = cls.__dict__["train_loss"]
    calls = []  # (virtual, loss) of the steps with a meta step

    def spy(self, net, forward, X, y, idx, *, virtual):
        per_sample, logits = original(self, net, forward, X, y, idx, virtual=virtual)
        if net.meta_active_:
            calls.append((virtual, float(per_sample.detach().mean())))
        return per_sample, logits

    monkeypatch.setattr(cls, "train_loss", spy)
    clf = MetaLabelCorrectionClassifier(
        method=method,
        max_epochs=2,
        warmup_epochs=1,
        pretrain_epochs=0,
        meta_every=1,
        reuse_virtual_grad=True,
        train_on_meta=False,  # the logged loss is then the method's own
        batch_size=50,
        random_state=0,
        device="cpu",
    )
    clf.fit(pair40.X, pair40.y_noisy, X_meta=pair40.X_meta, y_meta=pair40.y_meta)
    batches = clf.history_[-1]["batches"]  # the meta-step epoch
    virtual = [loss for v, loss in calls if v]
    actual = [loss for v, loss in calls if not v]
    assert len(virtual) == len(batches) > 0
    logged = [row["train_loss"] for row in batches]
    if logged_only:
        assert actual == []
        np.testing.assert_allclose(logged, virtual, rtol=1e-6)
    else:
        assert len(actual) == len(batches)
        np.testing.assert_allclose(logged, actual, rtol=1e-6)
        # after the meta update the soft labels moved: a loss other than the virtual one
        assert not np.allclose(logged, virtual, rtol=1e-6)


@pytest.mark.parametrize("method", ["ce", "glc"])
def test_plain_stages_pass_each_batch_once(pair40, method):
    """``ce``, and both of ``glc``'s stages: one training-mode pass per batch.

    ``glc``'s first stage ran every batch through the network twice and
    dropped the first output (a wasted forward pass: 0.4 of a ``ce`` epoch,
    and with BatchNorm or dropout a second update of the running statistics
    and other dropout masks for the network that estimates T).
    """
    _CountingMLP.passes = []
    clf = MetaLabelCorrectionClassifier(
        method=method,
        module=_CountingMLP,
        max_epochs=2,
        batch_size=50,
        random_state=0,
        device="cpu",
    )
    clf.fit(pair40.X, pair40.y_noisy, X_meta=pair40.X_meta, y_meta=pair40.y_meta)
    n_batches = sum(len(row["batches"]) for row in clf.history_)  # glc: its second stage
    runs = clf.method_.training_runs
    assert runs == (2 if method == "glc" else 1)
    assert len(_CountingMLP.passes) == runs * n_batches


def test_meta_every_reduces_meta_steps(pair40):
    every = _fit(pair40, "mlc", max_epochs=4, warmup_epochs=0, meta_every=1_000)
    # only the first batch of each epoch ran a meta step
    assert all("meta_loss" in row for row in every.history_)


def test_trusted_rows_can_be_trained_on(fitted, pair40):
    clf = _fit(pair40, "ce", train_on_meta=True)
    assert clf.net_.train_info.trusted.sum() == len(pair40.y_meta)
    # the trusted rows are fitted with their clean labels, unlike plain ce
    fit_with = (clf.predict(pair40.X_meta) == pair40.y_meta).mean()
    fit_without = (fitted["ce"].predict(pair40.X_meta) == pair40.y_meta).mean()
    assert fit_with > fit_without + 0.1


def test_labels_in_original_space(pair40):
    names = np.array([f"digit-{i}" for i in range(10)])
    clf = MetaLabelCorrectionClassifier(method="glc", max_epochs=3, random_state=0)
    clf.fit(pair40.X, names[pair40.y_noisy], X_meta=pair40.X_meta, y_meta=names[pair40.y_meta])
    np.testing.assert_array_equal(clf.classes_, np.sort(names))
    assert set(clf.corrected_labels_) <= set(names)
    assert clf.predict(pair40.X_test[:5]).dtype == clf.classes_.dtype


def test_non_contiguous_integer_labels(pair40):
    codes = np.array([3, 5, 7, 11, 13, 17, 19, 23, 29, 31])
    clf = MetaLabelCorrectionClassifier(method="mlc", max_epochs=3, random_state=0)
    clf.fit(pair40.X, codes[pair40.y_noisy], X_meta=pair40.X_meta, y_meta=codes[pair40.y_meta])
    np.testing.assert_array_equal(clf.classes_, codes)
    assert set(clf.predict(pair40.X_test)) <= set(codes)


def test_pandas_input_sets_feature_names(pair40):
    pd = pytest.importorskip("pandas")
    cols = [f"px{i}" for i in range(pair40.X.shape[1])]
    X = pd.DataFrame(pair40.X, columns=cols)
    Xm = pd.DataFrame(pair40.X_meta, columns=cols)
    y = pd.Series(pair40.y_noisy)
    clf = MetaLabelCorrectionClassifier(method="ce", max_epochs=2, random_state=0)
    clf.fit(X, y, X_meta=Xm, y_meta=pd.Series(pair40.y_meta))
    np.testing.assert_array_equal(clf.feature_names_in_, cols)
    assert clf.predict_proba(pd.DataFrame(pair40.X_test, columns=cols)).shape[1] == 10


def test_any_numeric_dtype(pair40):
    a = MetaLabelCorrectionClassifier(method="ce", max_epochs=2, random_state=0)
    b = MetaLabelCorrectionClassifier(method="ce", max_epochs=2, random_state=0)
    a.fit(pair40.X.astype(np.float64), pair40.y_noisy, X_meta=pair40.X_meta, y_meta=pair40.y_meta)
    Xi = (pair40.X * 16).astype(np.int16) / 16
    b.fit(Xi, pair40.y_noisy, X_meta=pair40.X_meta, y_meta=pair40.y_meta)
    np.testing.assert_allclose(a.predict_proba(pair40.X_test), b.predict_proba(pair40.X_test))


def test_head_only_lookahead_still_learns_T(pair40):
    clf = _fit(pair40, "mlc", lookahead="head")
    full = MLC().build(None, clf.net_.train_info).log_T().exp().detach().numpy()
    assert np.abs(clf.transition_matrix_ - full).max() > 0.05  # T moved from its start
    assert _acc(clf, pair40) > 0.8


def test_head_only_lookahead_needs_backbone_and_head(pair40):
    module = torch.nn.Sequential(torch.nn.Linear(64, 10))
    clf = MetaLabelCorrectionClassifier(method="mlc", module=module, lookahead="head")
    with pytest.raises(TypeError, match="lookahead='head' needs a module with `backbone`"):
        clf.fit(pair40.X, pair40.y_noisy, X_meta=pair40.X_meta, y_meta=pair40.y_meta)


def _count_backward(monkeypatch):
    calls = []
    original = torch.Tensor.backward

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "backward", counting)
    return calls


@pytest.mark.parametrize("reuse", [False, True])
def test_reused_virtual_grad_saves_the_actual_backward_pass(pair40, monkeypatch, reuse):
    calls = _count_backward(monkeypatch)
    # a given start of T: no trusted-set check, whose fold trainings would count
    mlc = MLC(init_diagonal=0.5)
    clf = _fit(pair40, mlc, max_epochs=2, warmup_epochs=1, reuse_virtual_grad=reuse)
    assert clf.net_.reuse_virtual_grad is reuse
    per_epoch = [len(row["batches"]) for row in clf.history_]
    # the warm-up epoch always backpropagates; the meta epoch only without reuse
    assert len(calls) == per_epoch[0] + (0 if reuse else per_epoch[1])


def test_reused_virtual_grad_is_the_actual_gradient_up_to_the_meta_update(pair40):
    """With a (nearly) frozen T the two paths train the same network."""
    kw = dict(max_epochs=3, warmup_epochs=0, meta_lr=1e-12)
    a = _fit(pair40, "mlc", reuse_virtual_grad=False, **kw)
    b = _fit(pair40, "mlc", reuse_virtual_grad=True, **kw)
    np.testing.assert_allclose(
        a.predict_proba(pair40.X_test), b.predict_proba(pair40.X_test), atol=1e-4
    )
    # with T learning, the one-step-old T makes a (small) difference
    c = _fit(pair40, "mlc", reuse_virtual_grad=True, max_epochs=3, warmup_epochs=0)
    assert np.abs(c.predict_proba(pair40.X_test) - b.predict_proba(pair40.X_test)).max() > 1e-3


@pytest.mark.parametrize(
    "method, expected",
    [("mlc", True), ("mslc", True), ("tmlc", True), ("mfrw", True), ("mslg", True)],
)
def test_reuse_virtual_grad_defaults(pair40, method, expected):
    clf = _fit(pair40, method, max_epochs=1, warmup_epochs=0)
    assert clf.net_.reuse_virtual_grad is expected
    head = _fit(pair40, method, max_epochs=1, warmup_epochs=0, lookahead="head")
    assert head.net_.reuse_virtual_grad is False  # a head-only look-ahead has no backbone grad


@pytest.mark.parametrize(
    "method, kw, match",
    [
        ("mlc", {"lookahead": "head"}, "needs lookahead='full'"),
        (MSLG(entropy_weight=0.1), {}, "actual step's loss has terms"),
        (MLC(), {"lookahead": "head"}, "reuse_virtual_grad=True needs"),
    ],
)
def test_reuse_virtual_grad_refused_where_it_cannot_apply(pair40, method, kw, match):
    clf = MetaLabelCorrectionClassifier(method=method, reuse_virtual_grad=True, max_epochs=1, **kw)
    with pytest.raises(ValueError, match=match):
        clf.fit(pair40.X, pair40.y_noisy, X_meta=pair40.X_meta, y_meta=pair40.y_meta)


def test_mslg_with_its_entropy_term_backpropagates_again_by_default(pair40):
    """The paper's entropy term is in the actual loss only: no reuse, and no error."""
    clf = _fit(pair40, MSLG(entropy_weight=0.1), max_epochs=1, warmup_epochs=0)
    assert clf.net_.reuse_virtual_grad is False


def test_verbose_shows_progress_with_meta_loss_and_quiet_by_default(pair40, capsys, monkeypatch):
    import functools

    import tqdm

    # a machine fast enough to finish an epoch between two of tqdm's redraws:
    # the bar must still show the meta loss once
    slow_redraw = functools.partialmethod(tqdm.tqdm.__init__, mininterval=1e6)
    monkeypatch.setattr(tqdm.tqdm, "__init__", slow_redraw)
    _fit(pair40, "mlc", max_epochs=2, warmup_epochs=1)
    quiet = capsys.readouterr()
    assert quiet.out == "" and quiet.err == ""
    _fit(pair40, "mlc", max_epochs=2, warmup_epochs=1, verbose=1)
    shown = capsys.readouterr()
    printed = shown.out + shown.err
    assert "meta_loss" in printed  # progress bar postfix and epoch log
    assert "train_loss" in printed and "%|" in printed  # a tqdm bar
