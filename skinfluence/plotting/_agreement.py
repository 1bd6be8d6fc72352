"""Predicted against actual leave-one-out changes (Koh & Liang 2017, Figure 2)."""

from __future__ import annotations

import numpy as np

from ._base import check_matplotlib_support


class AgreementDisplay:
    """Scatter of predicted against actual leave-one-out changes.

    Each point is one (test row, removed training row) pair: its predicted
    change of the test quantity (``-influence``) on the x axis and the change
    measured by refitting without the row on the y axis. Points on the
    dashed ``y = x`` line are predicted exactly; the legend gives the
    Pearson correlation and the least-squares slope of actual on predicted
    (1 when the estimates have the right scale). This is Figure 2 of Koh &
    Liang (2017).

    Create it with :meth:`from_estimator` (a fitted model and its training
    data: builds the explainer and runs the refits), :meth:`from_explainer`
    (a fitted :class:`~skinfluence.InfluenceExplainer`), :meth:`from_result`
    (a :class:`~skinfluence.retraining.LeaveOneOutResult`) or
    :meth:`from_predictions` (the two arrays); the constructor only stores
    the data, as in scikit-learn's displays.

    Parameters
    ----------
    predicted : array-like of shape (n_test, n_rows)
        Predicted changes, ``-influence[:, rows]``.
    actual : array-like of shape (n_test, n_rows)
        Actual changes after refitting without each row.
    agreement : Agreement, default=None
        Computed from ``predicted`` and ``actual`` when None.
    rows : array-like of shape (n_rows,), default=None
        Indices of the removed training rows (kept for reference).
    name : str, default=None
        Label of the points in the legend (e.g. the approximation).

    Attributes
    ----------
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure
    scatter_ : matplotlib PathCollection
    line_ : matplotlib Line2D
        The ``y = x`` line.

    See Also
    --------
    skinfluence.retraining.leave_one_out : The refits behind the plot.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.preprocessing import scale
    >>> from skinfluence import InfluenceExplainer
    >>> from skinfluence.plotting import AgreementDisplay
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = scale(X)
    >>> model = LogisticRegression(tol=1e-10).fit(X[:300], y[:300])
    >>> exp = InfluenceExplainer(model).fit(X[:300], y[:300])
    >>> disp = AgreementDisplay.from_explainer(exp, X[300:302], y[300:302], rows=10)
    >>> disp.agreement.n
    20
    >>> disp = AgreementDisplay.from_estimator(
    ...     model, X[:300], y[:300], X[300:302], y[300:302], rows=10, approximation="newton"
    ... )
    >>> disp.agreement.pearson > 0.9
    True
    """

    def __init__(self, *, predicted, actual, agreement=None, rows=None, name=None):
        from ..retraining import agreement as _agreement

        self.predicted = np.asarray(predicted, dtype=float)
        self.actual = np.asarray(actual, dtype=float)
        if self.predicted.shape != self.actual.shape:
            raise ValueError(
                f"predicted and actual must have the same shape; got {self.predicted.shape} "
                f"and {self.actual.shape}."
            )
        self.agreement = _agreement(predicted, actual) if agreement is None else agreement
        self.rows = None if rows is None else np.asarray(rows)
        self.name = name

    def _label(self):
        a = self.agreement
        stats = f"Pearson R = {a.pearson:.3f}, slope = {a.slope:.2f}"
        return stats if not self.name else f"{self.name} ({stats})"

    def plot(self, ax=None, *, name=None, identity=True, scatter_kwargs=None, line_kwargs=None):
        """Draw the scatter.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created when None.
        name : str, default=None
            Overrides the ``name`` given at construction.
        identity : bool, default=True
            Draw the ``y = x`` line.
        scatter_kwargs : dict, default=None
            Passed to ``ax.scatter``.
        line_kwargs : dict, default=None
            Passed to ``ax.plot`` for the ``y = x`` line.

        Returns
        -------
        self : AgreementDisplay
        """
        check_matplotlib_support(f"{type(self).__name__}.plot")
        import matplotlib.pyplot as plt

        if ax is None:
            # constrained layout keeps the axis labels inside the figure
            # whatever the width of the tick labels
            _, ax = plt.subplots(layout="constrained")
        if name is not None:
            self.name = name
        x, y = self.predicted.ravel(), self.actual.ravel()
        kwargs = {"s": 18, "alpha": 0.7, "label": self._label()}
        kwargs.update(scatter_kwargs or {})
        self.scatter_ = ax.scatter(x, y, **kwargs)
        self.line_ = None
        if identity:
            finite = np.concatenate([x[np.isfinite(x)], y[np.isfinite(y)]])
            lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
            pad = 0.05 * (hi - lo or 1.0)
            lkw = {"color": "black", "linestyle": "--", "linewidth": 1, "label": "y = x"}
            lkw.update(line_kwargs or {})
            (self.line_,) = ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], **lkw)
        ax.set_xlabel("predicted change (-influence)")
        ax.set_ylabel("actual change (refit)")
        ax.legend(loc="upper left", fontsize="small")
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_result(cls, result, *, ax=None, name=None, **plot_kwargs):
        """Plot a :class:`~skinfluence.retraining.LeaveOneOutResult`.

        Parameters
        ----------
        result : LeaveOneOutResult
            From :func:`skinfluence.retraining.leave_one_out`.
        ax : matplotlib Axes, default=None
        name : str, default=None
            Legend label of the points.
        **plot_kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : AgreementDisplay
        """
        check_matplotlib_support(f"{cls.__name__}.from_result")
        disp = cls(
            predicted=result.predicted,
            actual=result.actual,
            agreement=result.agreement,
            rows=result.rows,
            name=name,
        )
        return disp.plot(ax=ax, **plot_kwargs)

    @classmethod
    def from_predictions(cls, actual, predicted, *, ax=None, name=None, **plot_kwargs):
        """Plot actual against predicted changes given as arrays.

        Parameters
        ----------
        actual : array-like of shape (n_test, n_rows)
            Changes measured by refitting without each row.
        predicted : array-like of shape (n_test, n_rows)
            Predicted changes, ``-influence[:, rows]``.
        ax : matplotlib Axes, default=None
        name : str, default=None
            Legend label of the points.
        **plot_kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : AgreementDisplay
        """
        check_matplotlib_support(f"{cls.__name__}.from_predictions")
        disp = cls(predicted=predicted, actual=actual, name=name)
        return disp.plot(ax=ax, **plot_kwargs)

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X_train,
        y_train,
        X_test,
        y_test=None,
        *,
        rows=30,
        approximation="influence",
        explainer_params=None,
        ax=None,
        name=None,
        plot_kwargs=None,
        **loo_kwargs,
    ):
        """Explain a fitted model, refit it without its most influential rows
        and plot the agreement.

        Parameters
        ----------
        estimator : fitted estimator or Pipeline
            Supported by :class:`~skinfluence.InfluenceExplainer`; never
            modified (the refits use clones).
        X_train, y_train : the data ``estimator`` was fitted on.
        X_test, y_test : test rows and labels, as for ``influence``.
        rows : int or array-like of int, default=30
            Training rows to remove one at a time; an int ``k`` takes the ``k``
            rows of largest total ``|influence|`` on the test rows.
        approximation : {"influence", "newton", "path"}, default="influence"
            Passed to :class:`~skinfluence.InfluenceExplainer`.
        explainer_params : dict, default=None
            Other parameters of the explainer (``solver``, ``damping``, ...).
        ax : matplotlib Axes, default=None
        name : str, default=None
            Legend label; defaults to ``approximation``.
        plot_kwargs : dict, default=None
            Passed to :meth:`plot`.
        **loo_kwargs
            Passed to :func:`~skinfluence.retraining.leave_one_out`
            (``target``, ``refit_params``, ``n_jobs``).

        Returns
        -------
        display : AgreementDisplay
        """
        check_matplotlib_support(f"{cls.__name__}.from_estimator")
        from .._explainer import InfluenceExplainer

        explainer = InfluenceExplainer(
            estimator, approximation=approximation, **(explainer_params or {})
        ).fit(X_train, y_train)
        return cls.from_explainer(
            explainer,
            X_test,
            y_test,
            rows,
            ax=ax,
            name=name,
            plot_kwargs=plot_kwargs,
            **loo_kwargs,
        )

    @classmethod
    def from_explainer(
        cls,
        explainer,
        X_test,
        y_test=None,
        rows=30,
        *,
        ax=None,
        name=None,
        plot_kwargs=None,
        **loo_kwargs,
    ):
        """Refit without the most influential rows and plot the agreement.

        Parameters
        ----------
        explainer : fitted InfluenceExplainer
        X_test, y_test : test rows and labels, as for ``explainer.influence``.
        rows : int or array-like of int, default=30
            Training rows to remove one at a time; an int ``k`` takes the ``k``
            rows of largest total ``|influence|`` on the test rows.
        ax : matplotlib Axes, default=None
        name : str, default=None
            Legend label; defaults to the explainer's approximation.
        plot_kwargs : dict, default=None
            Passed to :meth:`plot`.
        **loo_kwargs
            Passed to :func:`~skinfluence.retraining.leave_one_out`
            (``target``, ``refit_params``, ``n_jobs``).

        Returns
        -------
        display : AgreementDisplay
        """
        check_matplotlib_support(f"{cls.__name__}.from_explainer")
        from ..retraining import leave_one_out

        result = leave_one_out(explainer, X_test, y_test, rows=rows, **loo_kwargs)
        if name is None:
            name = explainer.approximation
        return cls.from_result(result, ax=ax, name=name, **(plot_kwargs or {}))
