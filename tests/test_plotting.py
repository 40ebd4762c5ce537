"""The Display objects of sklearn_noisy.plotting, rendered with the Agg backend."""

from __future__ import annotations

import builtins
import sys

import numpy as np
import pytest

mpl = pytest.importorskip("matplotlib")
mpl.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sklearn_noisy import MetaLabelCorrectionClassifier, make_meta_pipeline  # noqa: E402
from sklearn_noisy.plotting import (  # noqa: E402
    CorrectionDisplay,
    TrainingHistoryDisplay,
    TransitionMatrixDisplay,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def fitted(sym40):
    clf = MetaLabelCorrectionClassifier(
        method="mlc", max_epochs=4, hidden_layer_sizes=(32,), device="cpu", random_state=0
    )
    return clf.fit(sym40.X[:400], sym40.y_noisy[:400], X_meta=sym40.X_meta, y_meta=sym40.y_meta)


def test_transition_matrix_image_is_the_matrix(fitted):
    disp = TransitionMatrixDisplay.from_estimator(fitted)
    assert isinstance(disp, TransitionMatrixDisplay)
    np.testing.assert_allclose(disp.im_.get_array(), fitted.transition_matrix_)
    assert disp.ax_.get_ylabel() == "true class i"
    assert disp.figure_ is disp.ax_.figure
    assert disp.text_.shape == (10, 10)
    assert disp.text_[0, 0].get_text() == format(fitted.transition_matrix_[0, 0], ".2f")
    assert [t.get_text() for t in disp.ax_.get_xticklabels()] == [str(c) for c in range(10)]


def test_transition_matrix_beside_true(fitted, sym40):
    disp = TransitionMatrixDisplay.from_estimator(fitted, true_matrix=sym40.T, colorbar=False)
    assert len(disp.ax_) == 2
    np.testing.assert_allclose(disp.true_im_.get_array(), sym40.T)
    assert disp.ax_[1].get_title() == "true T"
    # colour scale is shared: both panels map probabilities on [0, 1]
    assert disp.im_.get_clim() == disp.true_im_.get_clim() == (0.0, 1.0)


def test_transition_matrix_on_given_axes_and_no_values():
    fig, ax = plt.subplots()
    T = np.array([[0.7, 0.3], [0.4, 0.6]])
    disp = TransitionMatrixDisplay(T, display_labels=["a", "b"]).plot(
        ax=ax, include_values=False, colorbar=False
    )
    assert disp.ax_ is ax and disp.figure_ is fig
    assert disp.text_ is None and len(ax.texts) == 0
    with pytest.raises(ValueError, match="square"):
        TransitionMatrixDisplay(np.ones((2, 3))).plot()
    with pytest.raises(ValueError, match="true_matrix has shape"):
        TransitionMatrixDisplay(T, true_matrix=np.eye(3)).plot()
    with pytest.raises(ValueError, match="2 Axes"):
        TransitionMatrixDisplay(T, true_matrix=T).plot(ax=ax)


def test_correction_display_counts(fitted, sym40):
    y_noisy, y_true = sym40.y_noisy[:400], sym40.y_true[:400]
    disp = CorrectionDisplay.from_estimator(fitted, y_noisy, y_true=y_true)
    corrected = fitted.corrected_labels_
    np.testing.assert_array_equal(disp.changed_, corrected != y_noisy)
    assert disp.confusion_.sum() == 400
    # the diagonal of noisy-vs-corrected counts the unchanged labels
    assert np.trace(disp.confusion_) == (~disp.changed_).sum()
    np.testing.assert_array_equal(disp.ax_[0].images[0].get_array(), disp.confusion_)
    assert np.trace(disp.true_confusion_) == (corrected == y_true).sum()
    assert sum(disp.outcomes_.values()) == 400
    assert disp.outcomes_["fixed"] == ((corrected != y_noisy) & (corrected == y_true)).sum()
    assert len(disp.ax_) == 3 and len(disp.ax_[2].patches) == 5


def test_correction_display_string_labels_no_truth():
    disp = CorrectionDisplay(["cat", "dog", "dog"], ["cat", "cat", "dog"]).plot()
    assert len(disp.ax_) == 1
    assert disp.confusion_.tolist() == [[1, 0], [1, 1]]
    assert disp.outcomes_ is None
    assert disp.ax_[0].get_title() == "1 of 3 labels changed"
    with pytest.raises(ValueError, match="y_corrected has shape"):
        CorrectionDisplay([0, 1], [0]).plot()


def test_correction_display_length_check(fitted, sym40):
    with pytest.raises(ValueError, match="pass the y given to fit"):
        CorrectionDisplay.from_estimator(fitted, sym40.y_noisy)


def test_history_display_lines(fitted):
    disp = TrainingHistoryDisplay.from_estimator(fitted)
    history = fitted.history_
    assert len(disp.ax_) == 3
    drawn = {k for k in ("train_loss", "meta_loss", "meta_acc", "warmup_acc", "labels_changed")}
    recorded = {k for k in drawn if any(k in row for row in history)}
    assert set(disp.lines_) == recorded
    assert "train_loss" in disp.lines_
    np.testing.assert_allclose(disp.lines_["train_loss"].get_ydata(), history[:, "train_loss"])
    n_lines = sum(len(ax.lines) for ax in disp.ax_)
    assert n_lines == len(recorded)


def test_history_display_shows_the_auto_warm_up():
    """The warm-up's trusted accuracy sits beside the meta steps' in the middle panel."""
    history = [
        {"epoch": 1, "train_loss": 2.0, "warmup_acc": 0.5},
        {"epoch": 2, "train_loss": 1.5, "warmup_acc": 0.7},
        {"epoch": 3, "train_loss": 1.2, "warmup_acc": 0.6},
        {"epoch": 4, "train_loss": 1.0, "meta_loss": 0.9, "meta_acc": 0.8},
    ]
    disp = TrainingHistoryDisplay(history).plot()
    assert disp.lines_["warmup_acc"].get_xdata().tolist() == [1, 2, 3]
    assert disp.lines_["meta_acc"].get_xdata().tolist() == [4]
    assert len(disp.ax_[1].lines) == 2 and disp.ax_[1].get_legend() is not None


def test_history_display_shades_the_averaged_epochs(fitted):
    """The epochs whose weights the model averages are shaded in every panel."""
    disp = TrainingHistoryDisplay.from_estimator(fitted)
    marked = [row["epoch"] for row in fitted.history_ if row.get("averaged")]
    assert len(marked) == fitted.averaged_epochs_ > 0
    assert disp.averaged_epochs_ == marked
    for ax in disp.ax_:
        (span,) = ax.patches
        xs = span.get_patch_transform().transform(span.get_path().vertices)[:, 0]
        assert (xs.min(), xs.max()) == (marked[0] - 0.5, marked[-1] + 0.5)
    plain = [{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": 0.5}]
    disp = TrainingHistoryDisplay(plain).plot()
    assert disp.averaged_epochs_ == [] and not any(ax.patches for ax in disp.ax_)


def test_history_display_missing_keys():
    history = [{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": 0.5}]
    disp = TrainingHistoryDisplay(history).plot()
    assert list(disp.lines_) == ["train_loss"]
    assert [t.get_text() for t in disp.ax_[1].texts] == ["not recorded"]
    assert [len(ax.lines) for ax in disp.ax_] == [1, 0, 0]


def test_from_estimator_accepts_a_pipeline(sym40):
    from sklearn.preprocessing import StandardScaler

    pipe = make_meta_pipeline(
        StandardScaler(),
        MetaLabelCorrectionClassifier(
            method="glc", max_epochs=2, hidden_layer_sizes=(16,), device="cpu", random_state=0
        ),
    )
    pipe.fit(sym40.X[:300], sym40.y_noisy[:300], X_meta=sym40.X_meta, y_meta=sym40.y_meta)
    disp = TransitionMatrixDisplay.from_estimator(pipe)
    np.testing.assert_allclose(disp.im_.get_array(), pipe[-1].transition_matrix_)


def test_unfitted_estimator_is_refused():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        TransitionMatrixDisplay.from_estimator(MetaLabelCorrectionClassifier())


def test_missing_matplotlib_names_it(monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    for mod in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        TransitionMatrixDisplay(np.eye(2)).plot()
    with pytest.raises(ImportError, match="TrainingHistoryDisplay.plot needs matplotlib"):
        TrainingHistoryDisplay([]).plot()
