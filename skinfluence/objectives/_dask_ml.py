r"""dask-ml's linear models, fitted out of core by dask-glm.

``dask_ml.linear_model`` appends a column of ones to ``X`` (``fit_intercept``)
and hands ``beta = [w, b]`` to a dask-glm solver, which minimises a sum over
rows plus ``lamduh`` times an L2 regulariser over *all* of ``beta``, the
intercept included (scikit-learn leaves the intercept unpenalised), with
``lamduh = 1 / C``:

===============================  ===============================================
estimator                        objective minimised (dask-glm)
===============================  ===============================================
``LogisticRegression``           ``sum_i l_log(y_i, z_i) + ||beta||^2 / (2 C)``
``LinearRegression``             ``sum_i (y_i - z_i)^2 + ||beta||^2 / (2 C)``
===============================  ===============================================

(dask-glm's ``Logistic.loglike`` is ``sum log(1 + e^z) - y z`` and
``Normal.loglike`` is ``sum (y - z)^2``, not halved; ``L2.f`` is
``||beta||^2 / 2``.) The solvers ``"newton"`` and ``"gradient_descent"``
ignore the regulariser: their objective is the sum alone.

dask-glm's solvers also *standardise* the columns first (``normalize=True``,
the default): with the columns' mean ``m_j`` and standard deviation ``s_j``
over the training rows (``ddof=0``; the ones column keeps ``m = 0, s = 1``),
the penalty is on the standardised parameters ``beta_n = T beta`` with
``(beta_n)_j = s_j w_j`` and ``(beta_n)_b = b + m . w``, so in the returned
parameters it is the dense quadratic ``lamduh beta^T T^T T beta / 2``
(:meth:`_DaskGLMSpec.regularizer`). ``m`` and ``s`` are read from the training
rows at ``fit`` and held fixed: a refit without a row recomputes them, an
``O(1/n)`` change of the penalty that the estimates leave out. Logistic labels
are 0 and 1 (dask-ml keeps no ``classes_``). This module imports dask-ml; the
registry imports it on the first dask-ml estimator it sees.
"""

from __future__ import annotations

import numpy as np
from dask_ml.linear_model import LinearRegression, LogisticRegression

from .._backend import asarray
from ._estimators import ModelSpec
from ._losses import BinomialLogLoss, Prediction, SquaredError
from ._objective import Regularizer

#: dask-ml drops the regulariser for these solvers (``_get_solver_kwargs``)
UNPENALISED_SOLVERS = ("newton", "gradient_descent")


def penalty_strength(est) -> float:
    """``lamduh``: the multiplier of ``||beta||^2 / 2`` in dask-glm's objective."""
    if est.solver in UNPENALISED_SOLVERS:
        return 0.0
    kwargs = dict(est.solver_kwargs or {})  # overrides dask-ml passes on to dask-glm
    penalty = kwargs.get("regularizer", est.penalty)
    name = getattr(penalty, "name", penalty)
    if name != "l2":
        raise ValueError(
            f"dask-ml {type(est).__name__} with penalty {name!r} is not supported: only "
            "the L2 penalty is differentiable everywhere. Refit with penalty='l2'."
        )
    return float(kwargs.get("lamduh", 1.0 / float(est.C)))


def _standardises(est) -> bool:
    return bool(dict(est.solver_kwargs or {}).get("normalize", True))


def _column_moments(X):
    """Mean and standard deviation (``ddof=0``) of the columns of ``X``: a
    NumPy or SciPy sparse matrix, DataFrame, or Dask collection (computed)."""
    import scipy.sparse as sp

    if hasattr(X, "to_dask_array"):
        X = X.to_dask_array()
    if sp.issparse(X):
        mean = np.asarray(X.mean(axis=0)).ravel()
        sq = np.asarray(X.multiply(X).mean(axis=0)).ravel()
        return mean, np.sqrt(np.maximum(sq - mean**2, 0.0))
    if hasattr(X, "__dask_graph__"):
        import dask

        X = X.astype(np.float64)
        return tuple(np.asarray(a) for a in dask.compute(X.mean(axis=0), X.std(axis=0)))
    X = np.asarray(X, dtype=np.float64)
    return X.mean(axis=0), X.std(axis=0)


class _DaskGLMSpec(ModelSpec):
    """A dask-glm objective: unit row weights, ``lamduh`` times the
    (standardised) L2 penalty on every parameter."""

    def __init__(self, est, *, temperature=None):
        super().__init__(est, temperature=temperature)
        self.lamduh = penalty_strength(est)
        self.coef_penalty = self.lamduh
        self.intercept_penalty = self.lamduh  # dask-glm penalises the ones column too
        self._moments = None

    def prepare(self, X_train) -> None:
        if self.lamduh and _standardises(self.estimator):
            if X_train is None:
                raise ValueError(
                    f"dask-ml {type(self.estimator).__name__} standardises the columns "
                    "before penalising; pass the training features (not through a "
                    "pipeline's transformers on Dask input) so that their means and "
                    "standard deviations can be read."
                )
            self._moments = _column_moments(X_train)

    def regularizer(self, xp, dtype):
        base = super().regularizer(xp, dtype)
        if self._moments is None:
            return base
        mean, std = (np.array(a, dtype=float) for a in self._moments)
        # dask-glm: a zero-variance column is the intercept (mean 0, std 1);
        # without one, no column is centred
        constant = std == 0
        std[constant] = 1.0
        mean = np.where(constant, 0.0, mean) if constant.any() or self.fit_intercept else 0 * mean
        p = self.n_features
        T = np.diag(std)
        if self.fit_intercept:
            T = np.block([[T, np.zeros((p, 1))], [mean[None, :], np.ones((1, 1))]])
        R = self.lamduh * (T.T @ T)
        return Regularizer(
            asarray(np.zeros(R.shape[0]), xp, dtype), [(0, asarray(R, xp, dtype))], xp=xp
        )


class DaskMLLogisticRegressionSpec(_DaskGLMSpec):
    is_classifier = True

    def __init__(self, est, *, temperature=None):
        super().__init__(est, temperature=temperature)
        self.classes_ = np.array([0, 1])
        self.train_loss = self.test_loss = BinomialLogLoss()
        self.prediction = Prediction("sigmoid")


class DaskMLLinearRegressionSpec(_DaskGLMSpec):
    def __init__(self, est, *, temperature=None):
        super().__init__(est, temperature=temperature)
        self.train_loss = self.test_loss = SquaredError(1.0)
        self.prediction = Prediction("raw")


DASK_ML_SPECS = {
    LogisticRegression: DaskMLLogisticRegressionSpec,
    LinearRegression: DaskMLLinearRegressionSpec,
}
