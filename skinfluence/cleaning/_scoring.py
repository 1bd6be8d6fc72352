r"""Per-row label-issue scores of a fitted classifier, from influence functions.

Every score is oriented so that **higher means more likely mislabeled**.
With ``l_i = l(y_i, \hat\theta)`` the row's loss at the fitted parameters and
``H`` the Hessian of the training objective:

``"training_loss"``
    ``s_i = l_i``: the loss of the given label at the fitted model (log-loss of
    the predicted probability for logistic regression). The baseline.
``"self_influence"``
    ``s_i = \nabla l_i^T H^{-1} \nabla F_i``: the predicted increase of the
    row's own loss when it is removed (Koh & Liang 2017, section 5.4).
``"loo_loss"``
    ``s_i = l_i + \nabla l_i^T H^{-1} \nabla F_i``: the approximate
    leave-one-out loss, the row's loss under a model refitted without it
    (first-order influence estimate).
``"loo_newton"``
    The same with the leave-one-out Hessian ``H - H_i`` (one Newton step on the
    leave-one-out objective; a ``1 / (1 - h_ii)`` leverage correction).
``"validation_influence"``
    ``s_i = (1/m) \sum_j \mathcal{I}[j, i]``: the mean influence of the row on
    the loss of ``m`` trusted validation rows, i.e. how much removing it is
    predicted to *lower* the validation loss.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .._backend import block_slices, to_numpy
from .._explainer import InfluenceExplainer

#: scoring methods, most to least recommended (see doc/cleaning.md)
METHODS = ("loo_newton", "loo_loss", "training_loss", "self_influence", "validation_influence")

#: which leave-one-out approximation provides a method's suggested labels
_APPROXIMATION = {
    "loo_loss": "influence",
    "loo_newton": "newton",
    "self_influence": "influence",
    "validation_influence": "influence",
    "training_loss": None,  # in-sample predictions
}

#: memory budget of one block of per-row parameter changes
_BLOCK_BYTES = 64 * 2**20


def _labels_from_decision(Z, classes):
    """Class labels from raw decisions ``Z`` (n, n_outputs), as ``predict``
    of a linear classifier: the sign of a single output, else the argmax."""
    Z = np.asarray(Z, dtype=float)
    if Z.shape[1] == 1:
        return classes[(Z[:, 0] > 0).astype(int)]
    return classes[np.argmax(Z, axis=1)]


class RowScorer:
    """Scores of one fitted classifier's training rows, sharing the explainers.

    Parameters
    ----------
    estimator : fitted classifier or Pipeline
        Supported by :class:`~skinfluence.InfluenceExplainer`.
    X, y : the data ``estimator`` was fitted on.
    explainer_params : dict, default=None
        Extra parameters of the explainers (``solver``, ``damping``, ...).
    """

    def __init__(self, estimator, X, y, explainer_params=None):
        self.estimator = estimator
        self.X = X
        self.y = np.asarray(y)
        self.explainer_params = dict(explainer_params or {})
        self._explainers = {}
        self._cache = {}

    def explainer(self, approximation="influence") -> InfluenceExplainer:
        if approximation not in self._explainers:
            params = {**self.explainer_params, "approximation": approximation}
            exp = InfluenceExplainer(self.estimator, **params).fit(self.X, self.y)
            self._explainers[approximation] = exp
        return self._explainers[approximation]

    @property
    def classes(self):
        exp = next(iter(self._explainers.values()), None) or self.explainer()
        return np.asarray(exp.spec_.classes_)

    def score(self, method, X_val=None, y_val=None) -> np.ndarray:
        """Scores of every training row for ``method``; higher = more suspicious."""
        key = method if method != "validation_influence" else (method, id(X_val), id(y_val))
        if key in self._cache:
            return self._cache[key]
        if method == "training_loss":
            s = self.explainer().training_loss()
        elif method == "self_influence":
            s = self.explainer().self_influence()
        elif method in ("loo_loss", "loo_newton"):
            # the linearised leave-one-out loss: it ranks flipped labels better
            # than the loss at the leave-one-out outputs (leave_one_out_loss),
            # although the latter is the more accurate loss estimate
            # (doc/cleaning.md, "Scoring methods")
            exp = self.explainer("newton" if method == "loo_newton" else "influence")
            s = exp.training_loss() + exp.self_influence()
        elif method == "validation_influence":
            s = self._validation_influence(X_val, y_val)
        else:
            raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
        s = np.asarray(to_numpy(s), dtype=float)
        self._cache[key] = s
        return s

    def _validation_influence(self, X_val, y_val):
        if X_val is None or y_val is None:
            raise ValueError(
                "method='validation_influence' needs trusted validation data: pass "
                "X_val and y_val to fit (rows whose labels you have checked)."
            )
        exp = self.explainer()
        n_val = X_val.shape[0]
        if n_val == 0:
            raise ValueError("X_val has no rows")
        total = np.zeros(exp.n_train_)
        step = max(1, _BLOCK_BYTES // (8 * max(1, exp.n_train_)))
        for rows in block_slices(n_val, step):
            Xb = X_val.iloc[rows] if hasattr(X_val, "iloc") else X_val[rows]
            yb = y_val.iloc[rows] if hasattr(y_val, "iloc") else np.asarray(y_val)[rows]
            total += np.asarray(to_numpy(exp.influence(Xb, yb))).sum(axis=0)
        return total / n_val

    def decisions(self, approximation):
        """Raw decisions ``(n, n_outputs)`` at the fitted model (``None``) or
        of the approximate leave-one-out models (``"influence"``, ``"newton"``).

        See :meth:`InfluenceExplainer.leave_one_out_decision`.
        """
        key = ("decisions", approximation)
        if key in self._cache:
            return self._cache[key]
        exp = self.explainer(approximation or "influence")
        if approximation is None:
            Z = exp.state_.z
        else:
            Z = exp.leave_one_out_decision()
        Z = np.asarray(to_numpy(Z), dtype=float)
        self._cache[key] = Z
        return Z

    def suggested_labels(self, method) -> np.ndarray:
        """Labels predicted for each row by the model the method refers to:
        the approximate leave-one-out model (influence methods) or the fitted
        model (``"training_loss"``)."""
        approx = _APPROXIMATION[method]
        try:
            Z = self.decisions(approx)
        except (AttributeError, NotImplementedError, TypeError):  # pragma: no cover
            Z = self.decisions(None)
        return _labels_from_decision(Z, self.classes)


def _as_dense_rows(X):
    """Row-indexable view of ``X`` (arrays, sparse matrices, DataFrames)."""
    if sp.issparse(X):
        return X.tocsr()
    return X
