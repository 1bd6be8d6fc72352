"""dask-ml's linear models (dask-glm objectives), in memory: their fits are
stationary points of the objectives written down in
``skinfluence/objectives/_dask_ml.py``, and leave-one-out refits agree."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from skinfluence import InfluenceExplainer
from skinfluence._explainer import NotAtOptimumWarning

dml = pytest.importorskip("dask_ml.linear_model")

N = 180


def _data(kind, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, 4)) * [1.0, 2.0, 0.5, 1.0] + [0.5, -1.0, 2.0, 0.0]
    z = (X - [0.5, -1.0, 2.0, 0.0]) @ [0.8, -0.4, 1.0, 0.3]
    if kind == "logistic":
        return X, (z + rng.normal(size=N) > 0.8).astype(int)
    return X, z + rng.standard_t(3, size=N)


def dask_ml_fitted(kind, **params):
    """A dask-ml model fitted tightly on off-centre columns (where the
    standardisation matters)."""
    X, y = _data(kind)
    cls = dml.LogisticRegression if kind == "logistic" else dml.LinearRegression
    params = {"solver": "lbfgs", "tol": 1e-12, "max_iter": 5000, **params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # dask-glm's config keys
        warnings.simplefilter("ignore", DeprecationWarning)  # dask-glm's L-BFGS options
        return cls(**params).fit(X, y), X, y


@pytest.mark.parametrize("kind", ["logistic", "linear"])
@pytest.mark.parametrize(
    "params",
    [
        {"C": 0.05},
        {"C": 0.05, "fit_intercept": False},
        {"C": 0.05, "solver_kwargs": {"normalize": False}},
    ],
)
def test_dask_ml_objective_is_stationary(kind, params):
    """dask-glm's objective as written down (sum loss, lamduh = 1/C on every
    parameter, after standardising the columns) is stationary at dask-ml's
    fit; scikit-learn's convention (unpenalised intercept, no
    standardisation) is not."""
    from skinfluence.objectives import _dask_ml

    model, X, y = dask_ml_fitted(kind, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotAtOptimumWarning)
        exp = InfluenceExplainer(model).fit(X, y)
    assert exp.stationarity_ < 1e-5
    spec = exp.spec_
    wrong = type(spec)(model)  # the same spec without the training moments
    wrong.intercept_penalty = 0.0 if model.fit_intercept else wrong.intercept_penalty
    state = wrong.objective(X, y, None, exp.xp_).at(exp.state_.theta)
    assert state.stationarity() > 100 * max(exp.stationarity_, 1e-8)
    assert _dask_ml.penalty_strength(model) == pytest.approx(1 / params["C"])


@pytest.mark.parametrize("kind", ["logistic", "linear"])
def test_dask_ml_against_refits(kind):
    """Leave-one-out refits with dask-ml's Newton solver (exact optima): the
    prediction of least squares with approximation='newton' is exact, the
    test loss of logistic regression within the first-order error."""
    model, X, y = dask_ml_fitted(kind, solver="newton", max_iter=100, tol=1e-14)
    exp = InfluenceExplainer(model, approximation="newton").fit(X, y)
    Xt, yt = X[:4] + 0.3, y[:4]
    target = "loss" if kind == "logistic" else "prediction"
    influence = exp.influence(Xt, yt, target=target)

    def test_loss(m):
        if kind == "logistic":
            p = np.asarray(m.predict_proba(Xt))
            p = p[:, 1] if p.ndim == 2 else p
            return -(yt * np.log(p) + (1 - yt) * np.log(1 - p))
        return np.asarray(m.predict(Xt))

    base = test_loss(model)
    for i in (0, 7, 33):
        keep = np.arange(N) != i
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            refit = type(model)(**model.get_params()).fit(X[keep], y[keep])
        actual = test_loss(refit) - base
        tol = 1e-6 if kind == "linear" else 0.05
        np.testing.assert_allclose(
            -influence[:, i], actual, rtol=tol, atol=tol * np.abs(actual).max()
        )
