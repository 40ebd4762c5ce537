"""Plots of a fitted :class:`~sklearn_noisy.MetaLabelCorrectionClassifier`.

The displays follow scikit-learn's convention (see
:class:`sklearn.metrics.ConfusionMatrixDisplay`): build one with
``from_estimator`` (which also draws it) or with the constructor followed by
:meth:`plot`; ``plot`` returns the display, whose ``figure_`` and ``ax_``
attributes hold what was drawn.

matplotlib is an optional dependency, imported only when something is drawn.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix
from sklearn.utils.validation import check_is_fitted

__all__ = ["CorrectionDisplay", "TrainingHistoryDisplay", "TransitionMatrixDisplay"]


def _pyplot(caller: str):
    """``matplotlib.pyplot``, or an ImportError that names matplotlib."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            f"{caller} needs matplotlib, which is not installed: pip install matplotlib"
        ) from exc
    return plt


def _axes(plt, ax, n_panels: int, width: float = 4.5):
    """A list of ``n_panels`` axes: the given ones, or a new figure's."""
    if ax is None:
        fig, axes = plt.subplots(
            1, n_panels, figsize=(width * n_panels, width * 0.9), squeeze=False
        )
        return fig, list(axes[0])
    axes = list(np.atleast_1d(ax).ravel())
    if len(axes) != n_panels:
        raise ValueError(f"ax must hold {n_panels} Axes for this plot; got {len(axes)}.")
    return axes[0].figure, axes


def _matrix_panel(ax, matrix, labels, *, cmap, values_format, include_values, vmax, colorbar):
    """Draw ``matrix`` as an image with one text per cell; returns (image, texts)."""
    im = ax.imshow(matrix, interpolation="nearest", cmap=cmap, vmin=0.0, vmax=vmax)
    texts = np.empty(matrix.shape, dtype=object)
    if include_values:
        cmap_obj = im.cmap
        for i, j in np.ndindex(matrix.shape):
            # dark text on light cells, light text on dark ones
            shade = cmap_obj(matrix[i, j] / vmax if vmax else 0.0)
            light = 0.299 * shade[0] + 0.587 * shade[1] + 0.114 * shade[2] > 0.5
            texts[i, j] = ax.text(
                j,
                i,
                format(matrix[i, j], values_format),
                ha="center",
                va="center",
                fontsize="small",
                color="black" if light else "white",
            )
    ticks = np.arange(len(labels))
    ax.set_xticks(ticks, labels=[str(c) for c in labels])
    ax.set_yticks(ticks, labels=[str(c) for c in labels])
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return im, texts


class TransitionMatrixDisplay:
    """Heat map of a transition matrix, optionally beside the true one.

    ``T[i, j] = P(noisy = j | true = i)``: rows are true classes, columns the
    given (noisy) labels, and every row sums to 1.  For ``mlc`` and ``glc``
    the matrix is learned or estimated directly; the other methods estimate
    it from their corrected labels (see the method's documentation).

    Parameters
    ----------
    transition_matrix : ndarray of shape (n_classes, n_classes)
        The matrix to show, e.g. ``clf.transition_matrix_``.
    true_matrix : ndarray of shape (n_classes, n_classes), default=None
        A reference matrix drawn beside it, e.g. the ``T`` returned by
        :func:`sklearn_noisy.noise.make_noisy_labels`.
    display_labels : array-like of shape (n_classes,), default=None
        Tick labels; ``None`` numbers the classes from 0.

    Attributes
    ----------
    im_ : matplotlib AxesImage
        The image of ``transition_matrix``.
    true_im_ : matplotlib AxesImage or None
        The image of ``true_matrix`` (``None`` without it).
    text_ : ndarray of shape (n_classes, n_classes) of matplotlib Text, or None
        The cell values of ``transition_matrix`` (``None`` with
        ``include_values=False``).
    ax_ : matplotlib Axes or ndarray of two Axes
        One Axes, or ``[learned, true]`` when ``true_matrix`` is given.
    figure_ : matplotlib Figure

    See Also
    --------
    CorrectionDisplay : Which training labels the correction changed.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from sklearn_noisy.plotting import TransitionMatrixDisplay
    >>> T = np.array([[0.8, 0.2], [0.1, 0.9]])
    >>> disp = TransitionMatrixDisplay(T, display_labels=["cat", "dog"]).plot()
    >>> disp.im_.get_array().tolist()
    [[0.8, 0.2], [0.1, 0.9]]
    """

    def __init__(self, transition_matrix, *, true_matrix=None, display_labels=None):
        self.transition_matrix = transition_matrix
        self.true_matrix = true_matrix
        self.display_labels = display_labels

    @classmethod
    def from_estimator(
        cls,
        estimator,
        *,
        true_matrix=None,
        display_labels=None,
        include_values=True,
        values_format=".2f",
        cmap="Blues",
        colorbar=True,
        ax=None,
    ):
        """Plot the ``transition_matrix_`` of a fitted classifier.

        Parameters
        ----------
        estimator : fitted MetaLabelCorrectionClassifier
            Or a fitted pipeline ending with one.
        true_matrix : ndarray of shape (n_classes, n_classes), default=None
            A reference matrix drawn beside the learned one.
        display_labels : array-like of shape (n_classes,), default=None
            Tick labels; ``None`` takes the estimator's ``classes_``.
        include_values, values_format, cmap, colorbar, ax
            See :meth:`plot`.

        Returns
        -------
        display : TransitionMatrixDisplay
        """
        _pyplot(f"{cls.__name__}.from_estimator")
        clf = _final_step(estimator)
        check_is_fitted(clf, "transition_matrix_")
        if display_labels is None:
            display_labels = clf.classes_
        return cls(
            clf.transition_matrix_, true_matrix=true_matrix, display_labels=display_labels
        ).plot(
            include_values=include_values,
            values_format=values_format,
            cmap=cmap,
            colorbar=colorbar,
            ax=ax,
        )

    def plot(
        self, *, include_values=True, values_format=".2f", cmap="Blues", colorbar=True, ax=None
    ):
        """Draw the matrix (and the true one beside it, when given).

        Parameters
        ----------
        include_values : bool, default=True
            Write each cell's value on the image.
        values_format : str, default=".2f"
            Format of the cell values.
        cmap : str or matplotlib Colormap, default="Blues"
        colorbar : bool, default=True
            Add a colour bar (one per panel).
        ax : matplotlib Axes, or a pair of Axes with ``true_matrix``, default=None
            Where to draw; ``None`` makes a new figure.

        Returns
        -------
        display : TransitionMatrixDisplay
            ``self``, with ``im_``, ``ax_`` and ``figure_`` set.
        """
        plt = _pyplot(f"{type(self).__name__}.plot")
        T = np.asarray(self.transition_matrix, dtype=float)
        if T.ndim != 2 or T.shape[0] != T.shape[1]:
            raise ValueError(f"transition_matrix must be square; got shape {T.shape}.")
        T_true = None
        if self.true_matrix is not None:
            T_true = np.asarray(self.true_matrix, dtype=float)
            if T_true.shape != T.shape:
                raise ValueError(
                    f"true_matrix has shape {T_true.shape}; transition_matrix has {T.shape}."
                )
        labels = (
            np.arange(len(T)) if self.display_labels is None else np.asarray(self.display_labels)
        )
        if len(labels) != len(T):
            raise ValueError(f"display_labels has {len(labels)} entries for {len(T)} classes.")
        fig, axes = _axes(plt, ax, 1 if T_true is None else 2)
        opts = dict(
            cmap=cmap,
            values_format=values_format,
            include_values=include_values,
            vmax=1.0,
            colorbar=colorbar,
        )
        self.im_, texts = _matrix_panel(axes[0], T, labels, **opts)
        self.text_ = texts if include_values else None
        axes[0].set(
            xlabel="noisy label j",
            ylabel="true class i",
            title="T[i, j] = P(noisy = j | true = i)" if T_true is None else "learned T",
        )
        self.true_im_ = None
        if T_true is not None:
            self.true_im_, _ = _matrix_panel(axes[1], T_true, labels, **opts)
            axes[1].set(xlabel="noisy label j", ylabel="true class i", title="true T")
        self.ax_ = axes[0] if T_true is None else np.array(axes, dtype=object)
        self.figure_ = fig
        return self


def _final_step(estimator):
    """The classifier itself, or the last step of a pipeline."""
    steps = getattr(estimator, "steps", None)
    return steps[-1][1] if steps else estimator


class CorrectionDisplay:
    """Which training labels the correction changed, and whether it was right.

    The first panel is the confusion of the given (noisy) labels against the
    corrected ones: the diagonal holds the labels left unchanged, every other
    cell labels moved from one class to another.  With the true labels, a
    second panel shows the true labels against the corrected ones and a third
    counts the outcome of each training row:

    * ``kept right``: unchanged, and the given label was right;
    * ``kept wrong``: unchanged, but the given label was wrong (noise missed);
    * ``fixed``: changed to the true label;
    * ``broken``: a right label changed to a wrong one;
    * ``moved wrong``: a wrong label changed to another wrong one.

    Parameters
    ----------
    y_noisy : array-like of shape (n_samples,)
        The labels given to ``fit``.
    y_corrected : array-like of shape (n_samples,)
        The corrected labels, e.g. ``clf.corrected_labels_``.
    y_true : array-like of shape (n_samples,), default=None
        The true labels, when known (synthetic noise, audited data).
    display_labels : array-like, default=None
        The classes in display order; ``None`` takes the sorted labels found.

    Attributes
    ----------
    changed_ : ndarray of bool, shape (n_samples,)
        Rows whose corrected label differs from the given one.
    confusion_ : ndarray of shape (n_classes, n_classes)
        Counts of (given label, corrected label).
    true_confusion_ : ndarray of shape (n_classes, n_classes) or None
        Counts of (true label, corrected label) when ``y_true`` is given.
    outcomes_ : dict or None
        Rows per outcome (see above) when ``y_true`` is given.
    ax_ : ndarray of matplotlib Axes
        One panel, or three with ``y_true``.
    figure_ : matplotlib Figure

    See Also
    --------
    TransitionMatrixDisplay : The noise model behind the correction.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn_noisy.plotting import CorrectionDisplay
    >>> disp = CorrectionDisplay(
    ...     y_noisy=[0, 1, 1, 0], y_corrected=[0, 1, 0, 0], y_true=[0, 1, 0, 1]
    ... ).plot()
    >>> disp.changed_.tolist()
    [False, False, True, False]
    >>> disp.outcomes_["fixed"], disp.outcomes_["kept wrong"]
    (1, 1)
    """

    _OUTCOMES = ("kept right", "kept wrong", "fixed", "broken", "moved wrong")

    def __init__(self, y_noisy, y_corrected, *, y_true=None, display_labels=None):
        self.y_noisy = y_noisy
        self.y_corrected = y_corrected
        self.y_true = y_true
        self.display_labels = display_labels

    @classmethod
    def from_estimator(
        cls, estimator, y_noisy, *, y_true=None, display_labels=None, cmap="Blues", ax=None
    ):
        """Plot the corrections a fitted classifier made to its training labels.

        Parameters
        ----------
        estimator : fitted MetaLabelCorrectionClassifier
            Or a fitted pipeline ending with one.
        y_noisy : array-like of shape (n_samples,)
            The ``y`` given to ``fit`` (with ``meta_mask``, all rows: the
            trusted rows then count as unchanged).
        y_true : array-like of shape (n_samples,), default=None
            The true labels of the same rows, when known.
        display_labels : array-like, default=None
            ``None`` takes the estimator's ``classes_``.
        cmap, ax
            See :meth:`plot`.

        Returns
        -------
        display : CorrectionDisplay
        """
        _pyplot(f"{cls.__name__}.from_estimator")
        clf = _final_step(estimator)
        check_is_fitted(clf, "corrected_labels_")
        if len(y_noisy) != len(clf.corrected_labels_):
            raise ValueError(
                f"y_noisy has {len(y_noisy)} labels but the estimator corrected "
                f"{len(clf.corrected_labels_)} training rows; pass the y given to fit."
            )
        if display_labels is None:
            display_labels = clf.classes_
        return cls(
            y_noisy, clf.corrected_labels_, y_true=y_true, display_labels=display_labels
        ).plot(cmap=cmap, ax=ax)

    def plot(self, *, cmap="Blues", ax=None):
        """Draw the panels.

        Parameters
        ----------
        cmap : str or matplotlib Colormap, default="Blues"
        ax : sequence of matplotlib Axes, default=None
            One Axes, or three with ``y_true``; ``None`` makes a new figure.

        Returns
        -------
        display : CorrectionDisplay
            ``self``, with the attributes set.
        """
        plt = _pyplot(f"{type(self).__name__}.plot")
        y_noisy = np.asarray(self.y_noisy)
        y_corr = np.asarray(self.y_corrected)
        y_true = None if self.y_true is None else np.asarray(self.y_true)
        for name, arr in (("y_corrected", y_corr), ("y_true", y_true)):
            if arr is not None and arr.shape != y_noisy.shape:
                raise ValueError(
                    f"{name} has shape {arr.shape}; y_noisy has shape {y_noisy.shape}."
                )
        if self.display_labels is None:
            parts = [y_noisy, y_corr] + ([] if y_true is None else [y_true])
            labels = np.unique(np.concatenate(parts))
        else:
            labels = np.asarray(self.display_labels)

        self.changed_ = y_noisy != y_corr
        self.confusion_ = confusion_matrix(y_noisy, y_corr, labels=labels)
        fig, axes = _axes(plt, ax, 1 if y_true is None else 3)
        n_changed = int(self.changed_.sum())
        opts = dict(cmap=cmap, values_format="d", include_values=True, colorbar=False)
        _matrix_panel(axes[0], self.confusion_, labels, vmax=self.confusion_.max(), **opts)
        axes[0].set(
            xlabel="corrected label",
            ylabel="given (noisy) label",
            title=f"{n_changed} of {len(y_noisy)} labels changed",
        )
        self.true_confusion_ = None
        self.outcomes_ = None
        if y_true is not None:
            self.true_confusion_ = confusion_matrix(y_true, y_corr, labels=labels)
            _matrix_panel(
                axes[1], self.true_confusion_, labels, vmax=self.true_confusion_.max(), **opts
            )
            right = float((y_corr == y_true).mean())
            axes[1].set(
                xlabel="corrected label",
                ylabel="true label",
                title=f"corrected labels right: {right:.1%}",
            )
            was_right = y_noisy == y_true
            now_right = y_corr == y_true
            masks = (
                ~self.changed_ & was_right,
                ~self.changed_ & ~was_right,
                self.changed_ & now_right,
                self.changed_ & was_right,
                self.changed_ & ~was_right & ~now_right,
            )
            self.outcomes_ = {k: int(m.sum()) for k, m in zip(self._OUTCOMES, masks)}
            colors = ["tab:gray", "tab:orange", "tab:green", "tab:red", "tab:purple"]
            bars = axes[2].barh(list(self.outcomes_), list(self.outcomes_.values()), color=colors)
            axes[2].bar_label(bars, fontsize="small")
            axes[2].invert_yaxis()
            axes[2].set(xlabel="training rows", title="outcome per row")
        self.ax_ = np.array(axes, dtype=object)
        self.figure_ = fig
        return self


class TrainingHistoryDisplay:
    """Per-epoch curves of a fit: losses, trusted-set accuracy, labels changed.

    Three panels, one line per quantity recorded in the history:

    1. ``train_loss`` and ``meta_loss`` (the trusted-set loss of the
       look-ahead network);
    2. ``meta_acc``, the look-ahead network's accuracy on the trusted
       batches, and, with ``warmup_epochs="auto"``, ``warmup_acc``, the
       warm-up network's accuracy on the whole trusted set (its peak is where
       the warm-up ended);
    3. ``labels_changed``, the share of noisy rows whose corrected label
       differs from the given one.

    A quantity absent from some epochs (the meta step does not run during a
    method's warm-up) is drawn only where recorded; one absent from every
    epoch gets no line.  The epochs whose weights the fitted model averages
    (marked ``averaged`` in the history; see the classifier's ``average``)
    are shaded in every panel.

    Parameters
    ----------
    history : skorch History or list of dict
        One dict per epoch, e.g. ``clf.history_``.

    Attributes
    ----------
    lines_ : dict of str to matplotlib Line2D
        The line of each quantity drawn.
    averaged_epochs_ : list of int
        The shaded epochs (empty when the model is the last epoch's).
    ax_ : ndarray of three matplotlib Axes
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn_noisy.plotting import TrainingHistoryDisplay
    >>> history = [
    ...     {"epoch": 1, "train_loss": 2.0},
    ...     {"epoch": 2, "train_loss": 1.5, "meta_loss": 1.2, "meta_acc": 0.6},
    ...     {"epoch": 3, "train_loss": 1.1, "meta_loss": 0.9, "meta_acc": 0.7},
    ... ]
    >>> disp = TrainingHistoryDisplay(history).plot()
    >>> sorted(disp.lines_)
    ['meta_acc', 'meta_loss', 'train_loss']
    >>> disp.lines_["meta_loss"].get_xdata().tolist()
    [2, 3]
    """

    _PANELS = (
        (("train_loss", "meta_loss"), "loss"),
        (("meta_acc", "warmup_acc"), "trusted-set accuracy"),
        (("labels_changed",), "share of labels changed"),
    )

    def __init__(self, history):
        self.history = history

    @classmethod
    def from_estimator(cls, estimator, *, ax=None):
        """Plot the ``history_`` of a fitted classifier.

        Parameters
        ----------
        estimator : fitted MetaLabelCorrectionClassifier
            Or a fitted pipeline ending with one.
        ax : sequence of three matplotlib Axes, default=None
            See :meth:`plot`.

        Returns
        -------
        display : TrainingHistoryDisplay
        """
        _pyplot(f"{cls.__name__}.from_estimator")
        clf = _final_step(estimator)
        check_is_fitted(clf, "history_")
        return cls(clf.history_).plot(ax=ax)

    def plot(self, *, ax=None):
        """Draw the three panels.

        Parameters
        ----------
        ax : sequence of three matplotlib Axes, default=None
            ``None`` makes a new figure.

        Returns
        -------
        display : TrainingHistoryDisplay
            ``self``, with ``lines_``, ``ax_`` and ``figure_`` set.
        """
        plt = _pyplot(f"{type(self).__name__}.plot")
        rows = list(self.history)
        fig, axes = _axes(plt, ax, 3, width=4.0)
        self.lines_ = {}
        self.averaged_epochs_ = [
            row.get("epoch", i + 1) for i, row in enumerate(rows) if row.get("averaged")
        ]
        for panel, (keys, ylabel) in zip(axes, self._PANELS):
            if self.averaged_epochs_:
                panel.axvspan(
                    min(self.averaged_epochs_) - 0.5,
                    max(self.averaged_epochs_) + 0.5,
                    color="0.9",
                    zorder=0,
                    label="weights averaged",
                )
            for key in keys:
                points = [
                    (row.get("epoch", i + 1), row[key])
                    for i, row in enumerate(rows)
                    if row.get(key) is not None
                ]
                if not points:
                    continue
                x, y = zip(*points)
                (self.lines_[key],) = panel.plot(x, y, marker=".", label=key)
            panel.set(xlabel="epoch", ylabel=ylabel)
            if not any(key in self.lines_ for key in keys):
                panel.text(
                    0.5, 0.5, "not recorded", ha="center", va="center", transform=panel.transAxes
                )
            elif len(keys) > 1 or self.averaged_epochs_:
                panel.legend()
        self.ax_ = np.array(axes, dtype=object)
        self.figure_ = fig
        return self
