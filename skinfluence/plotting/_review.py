"""Curves of a simulated label review (Koh & Liang 2017, Figure 6)."""

from __future__ import annotations

import numpy as np

from ._base import check_matplotlib_support

_LABELS = {
    "random": "random",
    "training_loss": "training loss",
    "self_influence": "self-influence",
    "loo_loss": "leave-one-out loss",
    "loo_newton": "leave-one-out loss (Newton)",
    "validation_influence": "validation influence",
}

_YLABELS = {
    "found": "fraction of flipped labels found",
    "accuracy": "test accuracy after fixing",
}


class ReviewCurveDisplay:
    """Flipped labels found and test accuracy against the fraction of rows checked.

    A reviewer checks training rows in the order a scoring method ranks them
    and fixes the flipped labels found; one curve per method shows the
    fraction of all flips found (``metric="found"``) or the test accuracy of
    the model refitted on the fixed labels (``metric="accuracy"``) as the
    review budget grows. This is Figure 6 of Koh & Liang (2017).

    Create it with :meth:`from_estimator` (runs
    :func:`~skinfluence.cleaning.simulate_review`) or :meth:`from_result`;
    the constructor only stores the data.

    Parameters
    ----------
    result : ReviewResult
        The simulated review.

    Attributes
    ----------
    ax_ : matplotlib Axes or ndarray of Axes
        The axes of the one metric plotted, or an array of two.
    axes_ : ndarray of matplotlib Axes
        One axes per metric plotted, always an array.
    figure_ : matplotlib Figure
    lines_ : dict of (metric, method) to matplotlib Line2D

    See Also
    --------
    skinfluence.cleaning.simulate_review : The simulation behind the curves.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from sklearn.datasets import load_breast_cancer
    >>> from skinfluence.plotting import ReviewCurveDisplay
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> y_noisy = y.copy()
    >>> y_noisy[:40] = 1 - y_noisy[:40]
    >>> disp = ReviewCurveDisplay.from_estimator(
    ...     None, X, y_noisy, y, methods=["random", "loo_loss"], metric="found"
    ... )
    >>> sorted(disp.lines_)
    [('found', 'loo_loss'), ('found', 'random')]
    """

    def __init__(self, result):
        self.result = result

    @classmethod
    def from_result(cls, result, *, metric="both", ax=None) -> ReviewCurveDisplay:
        """Plot a :class:`~skinfluence.cleaning.ReviewResult`.

        Parameters
        ----------
        result : ReviewResult
        metric : {"found", "accuracy", "both"}, default="both"
            ``"both"`` needs test data in the simulation and two axes.
        ax : matplotlib Axes or sequence of two, default=None
            New figure when None.

        Returns
        -------
        ReviewCurveDisplay
        """
        check_matplotlib_support(f"{cls.__name__}.from_result")
        return cls(result).plot(metric=metric, ax=ax)

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        y_noisy,
        y_true,
        *,
        X_test=None,
        y_test=None,
        methods=None,
        fractions=None,
        metric="both",
        ax=None,
        **kwargs,
    ) -> ReviewCurveDisplay:
        """Simulate a review of ``estimator``'s training labels and plot it.

        Parameters
        ----------
        estimator : classifier or Pipeline, or None
            Fitted or not: the review refits clones of it (on the noisy
            labels, then on the labels fixed at each step); ``None`` for the
            cleaner's default.
        X, y_noisy, y_true : training rows, given labels, correct labels.
        X_test, y_test : clean test data, default=None
            Needed for the accuracy curves.
        methods, fractions, **kwargs
            Passed to :func:`~skinfluence.cleaning.simulate_review`.
        metric : {"found", "accuracy", "both"}, default="both"
            ``"both"`` becomes ``"found"`` without test data.
        ax : matplotlib Axes or sequence of two, default=None

        Returns
        -------
        ReviewCurveDisplay
        """
        check_matplotlib_support(f"{cls.__name__}.from_estimator")
        from ..cleaning import simulate_review

        if fractions is not None:
            kwargs["fractions"] = fractions
        result = simulate_review(
            estimator, X, y_noisy, y_true, X_test=X_test, y_test=y_test, methods=methods, **kwargs
        )
        if result.accuracy is None and metric == "both":
            metric = "found"
        return cls(result).plot(metric=metric, ax=ax)

    def plot(self, *, metric="both", ax=None) -> ReviewCurveDisplay:
        """Draw the curves.

        Parameters
        ----------
        metric : {"found", "accuracy", "both"}, default="both"
        ax : matplotlib Axes or sequence of two, default=None
            New figure when None.

        Returns
        -------
        self
        """
        check_matplotlib_support(f"{type(self).__name__}.plot")
        import matplotlib.pyplot as plt

        if metric not in ("found", "accuracy", "both"):
            raise ValueError(f"metric must be 'found', 'accuracy' or 'both', got {metric!r}")
        metrics = ["found", "accuracy"] if metric == "both" else [metric]
        if "accuracy" in metrics and self.result.accuracy is None:
            raise ValueError(
                "the review was simulated without test data; pass X_test and y_test "
                "or plot metric='found'."
            )
        if ax is None:
            fig, axes = plt.subplots(
                1, len(metrics), figsize=(5.5 * len(metrics), 4.6), layout="constrained"
            )
            axes = np.atleast_1d(axes)
        else:
            axes = np.atleast_1d(np.asarray(ax, dtype=object))
            if axes.size != len(metrics):
                raise ValueError(f"metric={metric!r} needs {len(metrics)} axes, got {axes.size}")
            fig = axes[0].figure
        res = self.result
        x = 100 * np.asarray(res.fractions)
        self.lines_ = {}
        for a, m in zip(axes, metrics, strict=True):
            values = res.found if m == "found" else res.accuracy
            for method, y in values.items():
                style = "--" if method == "random" else "-"
                (line,) = a.plot(x, y, style, marker="o", ms=3, label=_LABELS.get(method, method))
                self.lines_[(m, method)] = line
            if m == "accuracy" and res.accuracy_clean is not None:
                a.axhline(res.accuracy_clean, color="grey", lw=0.8, ls=":", label="all fixed")
            a.set_xlabel("training rows checked (%)")
            a.set_ylabel(_YLABELS[m])
            a.grid(alpha=0.3)
            # below the axes, outside the data area: inside, some placement
            # always hides a curve (the random one sits where "best" goes)
            a.legend(
                fontsize="small",
                loc="upper center",
                bbox_to_anchor=(0.5, -0.16),
                ncol=2,
                frameon=False,
            )
        axes[0].set_title(f"{res.n_flipped} flipped labels in {res.n_samples} rows")
        self.axes_ = axes
        self.ax_ = axes[0] if len(axes) == 1 else axes
        self.figure_ = fig
        return self
