"""Pickling, determinism, RNG hygiene and devices."""

from __future__ import annotations

import io
import pickle

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone

from sklearn_noisy import MetaLabelCorrectionClassifier

KW = dict(max_epochs=4, warmup_epochs=1, random_state=0)


def _fit(case, method="mlc", **kw):
    clf = MetaLabelCorrectionClassifier(method=method, device="cpu", **{**KW, **kw})
    return clf.fit(case.X, case.y_noisy, X_meta=case.X_meta, y_meta=case.y_meta)


@pytest.mark.parametrize("method", ["ce", "glc", "mlc"])
def test_pickle_round_trip(pair40, method):
    clf = _fit(pair40, method)
    loaded = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(
        loaded.predict_proba(pair40.X_test), clf.predict_proba(pair40.X_test)
    )
    np.testing.assert_array_equal(loaded.transition_matrix_, clf.transition_matrix_)
    buf = io.BytesIO()
    joblib.dump(clf, buf)
    buf.seek(0)
    np.testing.assert_array_equal(
        joblib.load(buf).predict(pair40.X_test), clf.predict(pair40.X_test)
    )


@pytest.mark.parametrize("method", ["ce", "glc", "mlc", "mslc", "mslg", "mfrw", "tmlc"])
def test_same_random_state_same_results(pair40, method):
    a, b = _fit(pair40, method), _fit(pair40, method)
    np.testing.assert_array_equal(a.predict_proba(pair40.X_test), b.predict_proba(pair40.X_test))
    np.testing.assert_array_equal(a.corrected_labels_, b.corrected_labels_)
    np.testing.assert_array_equal(a.transition_matrix_, b.transition_matrix_)
    c = _fit(pair40, method, random_state=1)
    assert not np.array_equal(a.predict_proba(pair40.X_test), c.predict_proba(pair40.X_test))


def test_fit_leaves_global_rngs_alone(pair40):
    torch.manual_seed(123)
    np.random.seed(123)
    torch_state = torch.random.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    _fit(pair40)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)


def test_clone_of_fitted_is_unfitted(pair40):
    from sklearn.exceptions import NotFittedError

    fresh = clone(_fit(pair40, "ce"))
    with pytest.raises(NotFittedError):
        fresh.predict(pair40.X_test)


def test_user_module_instance_is_not_trained_in_place(pair40):
    from sklearn_noisy.modules import MLP

    module = MLP(64, 10, (32,))
    before = {k: v.clone() for k, v in module.state_dict().items()}
    clf = _fit(pair40, "ce", module=module)
    for k, v in module.state_dict().items():
        assert torch.equal(v, before[k])
    assert clf.net_.module_ is not module


def test_fitted_net_keeps_no_meta_iterator(pair40):
    clf = _fit(pair40)
    state = clf.net_.__getstate__()
    assert not any("meta_batches" in k or "_epoch_sums" in k for k in state)


def _plain_tensors(obj, seen=None):
    """Tensors reachable through plain (non-module) attributes of a pickled state."""
    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, torch.nn.Module | torch.optim.Optimizer):
        return []
    seen.add(id(obj))
    if torch.is_tensor(obj):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _plain_tensors(v, seen)]
    if isinstance(obj, list | tuple):
        return [t for v in obj for t in _plain_tensors(v, seen)]
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return _plain_tensors(vars(obj), seen)
    return []


@pytest.mark.parametrize("method", ["ce", "glc", "mlc", "mslc", "mslg", "mfrw", "tmlc"])
def test_pickled_state_holds_tensors_only_where_devices_are_handled(pair40, method):
    """A CUDA-fitted model must load on a CPU-only machine.

    skorch maps its modules and optimizers to the CPU on load, and the net's
    ``__getstate__`` moves ``train_info`` there; a tensor anywhere else in the
    pickled state would stay on the GPU and fail to load.
    """
    clf = _fit(pair40, method)
    state = clf.net_.__getstate__()
    assert all(t.device.type == "cpu" for t in _plain_tensors(state["train_info"]))
    net = clf.net_
    skorch_saved = {f"{k}_" for k in net._modules + net._criteria + net._optimizers}
    plain = {k: v for k, v in state.items() if k not in skorch_saved | {"train_info"}}
    assert _plain_tensors(plain) == []
    assert _plain_tensors({k: v for k, v in vars(clf).items() if k != "net_"}) == []
    for value in vars(clf).values():
        if isinstance(value, torch.nn.Module):  # e.g. tmlc's corrector_
            assert all(p.device.type == "cpu" for p in value.state_dict().values())


def test_pipeline_pickle_round_trip(pair40):
    from sklearn.preprocessing import StandardScaler

    from sklearn_noisy import make_meta_pipeline

    pipe = make_meta_pipeline(
        StandardScaler(), MetaLabelCorrectionClassifier(method="mlc", device="cpu", **KW)
    )
    pipe.fit(pair40.X, pair40.y_noisy, X_meta=pair40.X_meta, y_meta=pair40.y_meta)
    loaded = joblib.load(_joblib_bytes(pipe))
    np.testing.assert_array_equal(
        loaded.predict_proba(pair40.X_test), pipe.predict_proba(pair40.X_test)
    )


def _joblib_bytes(obj):
    buf = io.BytesIO()
    joblib.dump(obj, buf)
    buf.seek(0)
    return buf


def test_cuda_unavailable_is_a_clear_error(pair40):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    clf = MetaLabelCorrectionClassifier(device="cuda", **KW)
    with pytest.raises(ValueError, match="device='cuda'.*no CUDA GPU"):
        clf.fit(pair40.X, pair40.y_noisy, X_meta=pair40.X_meta, y_meta=pair40.y_meta)


@pytest.mark.cuda
@pytest.mark.parametrize("method", ["ce", "glc", "mlc"])
def test_cuda_fit_then_cpu_load(pair40, method):
    clf = MetaLabelCorrectionClassifier(method=method, device="cuda", **KW)
    clf.fit(pair40.X, pair40.y_noisy, X_meta=pair40.X_meta, y_meta=pair40.y_meta)
    assert next(clf.net_.module_.parameters()).is_cuda
    assert clf.net_.meta_module_ is not None
    p = clf.predict_proba(pair40.X_test)
    cpu = torch.load(io.BytesIO(_to_bytes(clf)), map_location="cpu", weights_only=False)
    cpu.net_.set_params(device="cpu")
    np.testing.assert_allclose(cpu.predict_proba(pair40.X_test), p, atol=1e-5)


def _to_bytes(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()
