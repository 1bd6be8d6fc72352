"""Check influence estimates against real leave-one-out retraining.

Influence functions are approximations; where they and real retraining
disagree, retraining wins. :func:`leave_one_out` refits the explained
estimator without each chosen training row (in parallel with joblib, through
the explainer's public :meth:`~skinfluence.InfluenceExplainer.retrainer`),
measures the actual change of the test quantity, and reports how well the
estimates agree (Koh & Liang 2017, Figure 2).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from joblib import Parallel, delayed
from scipy import stats
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted


@dataclass
class Agreement:
    """How well predicted changes match actual ones.

    ``slope`` is the least-squares slope of actual on predicted (1.0 when the
    estimate has the right scale); ``pearson`` and ``spearman`` the linear
    and rank correlations.
    """

    pearson: float
    spearman: float
    slope: float
    n: int


def agreement(predicted, actual) -> Agreement:
    """Agreement between predicted and actual changes (flattened)."""
    p = np.asarray(predicted, dtype=float).ravel()
    a = np.asarray(actual, dtype=float).ravel()
    if p.size < 3 or np.ptp(p) == 0 or np.ptp(a) == 0:
        return Agreement(np.nan, np.nan, np.nan, p.size)
    slope = float(np.polyfit(p, a, 1)[0])
    return Agreement(
        pearson=float(np.corrcoef(p, a)[0, 1]),
        spearman=float(stats.spearmanr(p, a).statistic),
        slope=slope,
        n=p.size,
    )


@dataclass
class LeaveOneOutResult:
    """Predicted and actual changes of the test quantity, shape (n_test, n_rows).

    ``predicted = -influence[:, rows]``; ``actual`` = value after refitting
    without the row minus value after refitting on all rows.
    ``not_converged`` lists the removed rows whose refit stopped before its
    solver converged (-1 for the refit on all rows): their actual values are
    approximate.
    """

    rows: np.ndarray
    predicted: np.ndarray
    actual: np.ndarray
    agreement: Agreement
    not_converged: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))


def bounded_refit_iterations(estimator, n_rows: int) -> dict:
    """``{"max_iter": ...}`` for a libsvm estimator left without a bound.

    scikit-learn's libsvm runs for ever with ``max_iter=-1``, and its SMO
    can cycle at a degenerate vertex (duplicated rows, one-hot columns): a
    refit without one row of such a table never returns. Upstream libsvm
    stops at ``max(10^7, 100 n)`` iterations; refits take that bound, so a
    cycling refit ends with scikit-learn's ``ConvergenceWarning``. Empty for
    every other estimator.
    """
    from sklearn.svm import SVC, SVR, NuSVC, NuSVR

    libsvm = isinstance(estimator, (SVC, SVR, NuSVC, NuSVR))
    if libsvm and estimator.get_params(deep=False).get("max_iter") == -1:
        return {"max_iter": max(10**7, 100 * n_rows)}
    return {}


class Retrainer:
    """Refit a final estimator without some training rows and evaluate a test
    quantity: the unit of work of leave-one-out checks (picklable, so that
    joblib can send it to workers).

    Made by :meth:`InfluenceExplainer.retrainer
    <skinfluence.InfluenceExplainer.retrainer>`.

    Parameters
    ----------
    estimator : unfitted estimator
        A clone of the explained final estimator, with any refit parameters set.
    spec : ModelSpec
        How the estimator's outputs map to the test function.
    X, y, sample_weight
        The training rows as the final estimator sees them.
    X_test : array
        Test rows as the final estimator sees them.
    function, targets
        The test function and its encoded targets.
    """

    def __init__(self, estimator, spec, X, y, sample_weight, X_test, function, targets):
        self.estimator = estimator
        self.spec = spec
        self.X, self.y, self.sample_weight = X, y, sample_weight
        self.X_test = X_test
        self.function, self.targets = function, targets

    def __call__(self, drop=None) -> np.ndarray:
        """The test quantity of each test row after refitting without the
        training rows ``drop`` (None: on all rows), shape (n_test,)."""
        return self.refit(drop)[0]

    def refit(self, drop=None) -> tuple[np.ndarray, bool]:
        """``(values, converged)``: as :meth:`__call__`, and whether the
        refit's solver converged (no ``ConvergenceWarning``)."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            values = self._refit(drop)
        converged = True
        for w in caught:
            if issubclass(w.category, ConvergenceWarning):
                converged = False
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return values, converged

    def _refit(self, drop):
        est = clone(self.estimator)
        mask = np.ones(self.X.shape[0], dtype=bool)
        if drop is not None:
            mask[drop] = False
        kwargs = {} if self.sample_weight is None else {"sample_weight": self.sample_weight[mask]}
        pairwise = getattr(self.spec, "pairwise", False)
        X_fit = self.X[mask][:, mask] if pairwise else self.X[mask]
        est.fit(X_fit, self.y[mask], **kwargs)
        outputs = self.spec.raw_prediction(est, self.X_test, keep=mask)
        return np.asarray(self.function.value(self.targets, outputs))


def most_influential_rows(explainer, X_test, y_test=None, k=20, *, target="loss"):
    """Indices of the ``k`` training rows of largest total ``|influence|``."""
    influence = explainer.influence(X_test, y_test, target=target)
    score = np.abs(influence).sum(axis=0)
    return np.argsort(-score, kind="stable")[:k]


def leave_one_out(
    explainer,
    X_test,
    y_test=None,
    rows=20,
    *,
    target: str = "loss",
    refit_params: dict | None = None,
    n_jobs: int | None = None,
) -> LeaveOneOutResult:
    """Leave-one-out retraining of chosen training rows.

    Parameters
    ----------
    explainer : fitted InfluenceExplainer
        The explainer whose estimates are checked; its estimator is cloned
        and refitted, never modified.
    X_test : array-like of shape (n_test, n_features)
        Test rows, as for ``explainer.influence``.
    y_test : array-like of shape (n_test,), default=None
        Their labels (required for ``target="loss"``).
    rows : int or array-like of int, default=20
        Training rows to remove one at a time; an int ``k`` takes the ``k``
        rows of largest ``|influence|`` on the test rows.
    target : {"loss", "prediction"}, default="loss"
        The test quantity, as for ``explainer.influence``.
    refit_params : dict, default=None
        Parameters set on the clone before refitting (e.g. a tighter ``tol``).
        The estimate assumes exact optima, so refits should converge tightly.
    n_jobs : int, default=None
        joblib parallelism over refits.

    Returns
    -------
    LeaveOneOutResult
        Predicted and actual changes per test row and removed row, and
        their agreement.
    """
    check_is_fitted(explainer, "solver_")
    if np.isscalar(rows):
        rows = most_influential_rows(explainer, X_test, y_test, int(rows), target=target)
    rows = np.asarray(rows, dtype=int)
    predicted = -explainer.influence(X_test, y_test, target=target, rows=rows)
    retrain = explainer.retrainer(X_test, y_test, target=target, refit_params=refit_params)
    drops = [None, *rows.tolist()]
    refits = Parallel(n_jobs=n_jobs)(delayed(retrain.refit)(drop) for drop in drops)
    base = refits[0][0]
    actual = np.stack([values - base for values, _ in refits[1:]], axis=1)
    stuck = np.asarray(
        [
            -1 if drop is None else drop
            for drop, (_, ok) in zip(drops, refits, strict=True)
            if not ok
        ],
        dtype=int,
    )
    if stuck.size:
        warnings.warn(
            f"{stuck.size} of {len(drops)} refits stopped before their solver converged "
            f"(removed rows {stuck[:10].tolist()}{' ...' if stuck.size > 10 else ''}; -1: "
            "the refit on all rows), so those actual changes are approximate. Pass "
            "refit_params with a larger max_iter or a looser tol; libsvm can cycle at "
            "degenerate vertices (duplicated rows) at any tol.",
            ConvergenceWarning,
            stacklevel=2,
        )
    return LeaveOneOutResult(rows, predicted, actual, agreement(predicted, actual), stuck)
