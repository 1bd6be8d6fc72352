"""Shared fixtures for the skinfluence core tests.

* Small, cached copies of the data sets bundled with scikit-learn (breast
  cancer, digits, diabetes, iris, wine), split into train and test rows.
* A table of fitted estimators covering every supported linear family, solver
  and weighting option (``family_case``), small enough for dense finite
  differences of the training objective.
* Finite-difference helpers and an independent leave-one-out oracle that
  refits with scikit-learn and measures test quantities through the
  estimator's public API only (``predict_proba``, ``decision_function``,
  ``predict``), never through skinfluence.

Helpers reach the tests as fixtures (``numdiff``, ``oracle``, ``data``), so no
test module imports this file.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
from array_api_compat import array_namespace
from sklearn import datasets
from sklearn.base import clone, is_classifier
from sklearn.linear_model import (
    HuberRegressor,
    LinearRegression,
    LogisticRegression,
    PoissonRegressor,
    Ridge,
    RidgeClassifier,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from skinfluence.objectives._registry import spec_for

XP = array_namespace(np.empty(0))

# pytest-xdist already runs one process per core; BLAS / OpenMP threads on top
# of that oversubscribe the cores and slow the many tiny fits down ~100x.
threadpool_limits(limits=1)

# --------------------------------------------------------------------- data


@dataclass(frozen=True)
class Split:
    """Train and test rows of one data set (fresh copies on every request)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    def copy(self) -> Split:
        return Split(*(np.array(a, copy=True) for a in vars(self).values()))


def _permute(X, y, seed=0):
    order = np.random.RandomState(seed).permutation(len(y))
    return X[order], y[order]


def _standardize(X_train, X_test):
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test)


@functools.cache
def _load(name: str) -> Split:
    if name == "digits_1v7":  # binary, pixel / 16
        X, y = datasets.load_digits(return_X_y=True)
        keep = (y == 1) | (y == 7)
        X, y = X[keep] / 16.0, y[keep]
        return Split(X[:250], y[:250], X[250:], y[250:])
    if name == "digits_10":  # 10 classes, pixel / 16
        X, y = datasets.load_digits(return_X_y=True)
        X = X / 16.0
        return Split(X[:300], y[:300], X[300:600], y[300:600])
    if name == "breast_cancer":  # binary, standardised on the training rows
        X, y = _permute(*datasets.load_breast_cancer(return_X_y=True))
        Xtr, Xte = _standardize(X[:300], X[300:])
        return Split(Xtr, y[:300], Xte, y[300:])
    if name == "diabetes":  # regression; scikit-learn ships X centred and scaled
        X, y = datasets.load_diabetes(return_X_y=True)
        return Split(X[:300], y[:300], X[300:], y[300:])
    if name == "diabetes_std":  # standardised features and target
        X, y = datasets.load_diabetes(return_X_y=True)
        Xtr, Xte = _standardize(X[:300], X[300:])
        mu, sd = y[:300].mean(), y[:300].std()
        return Split(Xtr, (y[:300] - mu) / sd, Xte, (y[300:] - mu) / sd)
    if name == "diabetes_counts":  # standardised features, raw (count-like) target
        X, y = datasets.load_diabetes(return_X_y=True)
        Xtr, Xte = _standardize(X[:300], X[300:])
        return Split(Xtr, y[:300], Xte, y[300:])
    if name == "iris":
        X, y = _permute(*datasets.load_iris(return_X_y=True))
        Xtr, Xte = _standardize(X[:120], X[120:])
        return Split(Xtr, y[:120], Xte, y[120:])
    if name == "wine":
        X, y = _permute(*datasets.load_wine(return_X_y=True))
        Xtr, Xte = _standardize(X[:130], X[130:])
        return Split(Xtr, y[:130], Xte, y[130:])
    raise KeyError(name)


@pytest.fixture(scope="session")
def data():
    """``data(name)``: a fresh copy of a cached :class:`Split`."""
    return lambda name: _load(name).copy()


# ------------------------------------------------------- estimator families


@dataclass
class FamilyCase:
    """A fitted estimator with the exact data it was fitted on.

    ``stationarity_tol`` bounds :func:`newton_distance` at the fit: tight for
    solvers that reach the optimum, looser for L-BFGS-B on HuberRegressor's
    piecewise objective and for SGD, which stops near the optimum.
    """

    name: str
    estimator: object
    X: np.ndarray
    y: np.ndarray
    sample_weight: np.ndarray | None = None
    stationarity_tol: float = 1e-5


def _small(name, n, features=None):
    split = _load(name)
    X, y = split.X_train[:n], split.y_train[:n]
    if features is not None:
        X = X[:, features]
    return np.array(X, copy=True), np.array(y, copy=True)


def _weights(n, seed=1):
    return np.random.RandomState(seed).randint(1, 4, size=n).astype(float)


def _lr(**kw):
    params = {"C": 1.0, "tol": 1e-10, "max_iter": 10_000}
    params.update(kw)
    return LogisticRegression(**params)


def _sgd_classifier(**kw):
    params = {"alpha": 0.05, "tol": None, "max_iter": 3000, "random_state": 0}
    params.update(kw)
    return SGDClassifier(**params)


def _sgd_regressor(**kw):
    params = {"alpha": 0.05, "eta0": 5e-3, "tol": None, "max_iter": 6000, "random_state": 0}
    params.update(kw)
    return SGDRegressor(**params)


BIN_CASE = ("breast_cancer", 100, list(range(6)))
MULTI_CASE = ("wine", 90, list(range(5)))
REG_CASE = ("diabetes", 80, None)
REG_STD_CASE = ("diabetes_std", 80, None)
POISSON_CASE = ("diabetes_counts", 80, None)

#: name -> (estimator factory, data (name, n_rows, features), weighted?, stationarity tol)
FAMILY_SPECS = {
    # LogisticRegression, binary: every solver; liblinear penalises the intercept
    "logreg-bin-lbfgs": (lambda: _lr(), BIN_CASE, False, 1e-5),
    "logreg-bin-newton-cg": (lambda: _lr(solver="newton-cg"), BIN_CASE, False, 1e-7),
    "logreg-bin-newton-cholesky": (lambda: _lr(solver="newton-cholesky"), BIN_CASE, False, 1e-7),
    "logreg-bin-sag": (lambda: _lr(solver="sag", max_iter=100_000), BIN_CASE, False, 1e-6),
    "logreg-bin-saga": (lambda: _lr(solver="saga", max_iter=100_000), BIN_CASE, False, 1e-6),
    "logreg-bin-liblinear": (lambda: _lr(solver="liblinear"), BIN_CASE, False, 1e-6),
    "logreg-bin-liblinear-scaling10": (
        lambda: _lr(solver="liblinear", intercept_scaling=10.0),
        BIN_CASE,
        False,
        1e-6,
    ),
    "logreg-bin-no-penalty": (
        lambda: _lr(C=np.inf, solver="newton-cg"),
        ("breast_cancer", 200, [0, 1, 2, 3]),
        False,
        1e-7,
    ),
    "logreg-bin-no-intercept": (lambda: _lr(fit_intercept=False), BIN_CASE, False, 1e-5),
    "logreg-bin-weighted": (
        lambda: _lr(C=0.5, class_weight={0: 2.0, 1: 0.7}, solver="newton-cg"),
        BIN_CASE,
        True,
        1e-7,
    ),
    # LogisticRegression, multinomial
    "logreg-multi-lbfgs": (lambda: _lr(), MULTI_CASE, False, 1e-5),
    "logreg-multi-newton-cg": (lambda: _lr(solver="newton-cg"), MULTI_CASE, False, 1e-7),
    "logreg-multi-newton-cholesky": (
        lambda: _lr(solver="newton-cholesky"),
        MULTI_CASE,
        False,
        1e-7,
    ),
    "logreg-multi-sag": (lambda: _lr(solver="sag", max_iter=100_000), MULTI_CASE, False, 1e-6),
    "logreg-multi-saga": (lambda: _lr(solver="saga", max_iter=100_000), MULTI_CASE, False, 1e-6),
    "logreg-multi-no-penalty": (
        lambda: _lr(C=np.inf, solver="newton-cg"),
        ("wine", 130, [0, 1]),
        False,
        1e-7,
    ),
    "logreg-multi-weighted": (
        lambda: _lr(C=2.0, class_weight={0: 0.5, 1: 1.0, 2: 3.0}, solver="newton-cg"),
        MULTI_CASE,
        True,
        1e-7,
    ),
    # class_weight="balanced" depends on the rows (and, for LogisticRegression,
    # on the sample weights): removing a row changes every row's class weight
    "logreg-bin-balanced": (
        lambda: _lr(class_weight="balanced", solver="newton-cg"),
        BIN_CASE,
        False,
        1e-7,
    ),
    "logreg-multi-balanced-weighted": (
        lambda: _lr(C=2.0, class_weight="balanced", solver="newton-cg"),
        MULTI_CASE,
        True,
        1e-7,
    ),
    # least squares
    "linreg": (lambda: LinearRegression(), REG_CASE, False, 1e-9),
    "linreg-weighted-no-intercept": (
        lambda: LinearRegression(fit_intercept=False),
        REG_CASE,
        True,
        1e-9,
    ),
    **{
        f"ridge-{solver}": (
            functools.partial(Ridge, alpha=0.1, solver=solver, tol=1e-12, max_iter=100_000),
            REG_CASE,
            False,
            1e-8,
        )
        for solver in ("auto", "svd", "cholesky", "lsqr", "sparse_cg", "sag", "saga")
    },
    "ridge-weighted": (lambda: Ridge(alpha=0.3), REG_CASE, True, 1e-9),
    "ridgeclf-bin": (lambda: RidgeClassifier(alpha=2.0), BIN_CASE, False, 1e-9),
    "ridgeclf-multi-weighted": (
        lambda: RidgeClassifier(alpha=2.0, class_weight="balanced"),
        MULTI_CASE,
        True,
        1e-9,
    ),
    # SGD: a stochastic optimiser stops near, not at, the optimum
    "sgdclf-log-loss": (lambda: _sgd_classifier(loss="log_loss"), BIN_CASE, False, 1e-2),
    "sgdclf-modified-huber": (
        lambda: _sgd_classifier(loss="modified_huber"),
        BIN_CASE,
        False,
        1e-2,
    ),
    "sgdclf-log-loss-weighted": (
        lambda: _sgd_classifier(loss="log_loss", class_weight={0: 2.0, 1: 1.0}),
        BIN_CASE,
        True,
        1e-2,
    ),
    "sgdclf-log-loss-multi": (lambda: _sgd_classifier(loss="log_loss"), MULTI_CASE, False, 1e-2),
    "sgdclf-log-loss-multi-class-weight": (
        lambda: _sgd_classifier(loss="log_loss", class_weight={0: 1.0, 1: 3.0, 2: 0.5}),
        MULTI_CASE,
        False,
        1e-2,
    ),
    "sgdreg-squared-error": (lambda: _sgd_regressor(), REG_STD_CASE, False, 1e-2),
    "sgdreg-huber": (lambda: _sgd_regressor(loss="huber", epsilon=0.5), REG_STD_CASE, False, 1e-2),
    "sgdreg-weighted": (lambda: _sgd_regressor(), REG_STD_CASE, True, 1e-2),
    # generalised linear and robust regression
    "poisson-lbfgs": (
        lambda: PoissonRegressor(alpha=0.05, tol=1e-12, max_iter=10_000),
        POISSON_CASE,
        False,
        1e-6,
    ),
    "poisson-newton-cholesky-weighted": (
        lambda: PoissonRegressor(alpha=0.05, solver="newton-cholesky", tol=1e-12),
        POISSON_CASE,
        True,
        1e-8,
    ),
    "huber": (
        lambda: HuberRegressor(alpha=1e-3, tol=1e-10, max_iter=10_000),
        REG_STD_CASE,
        False,
        1e-4,
    ),
    "huber-weighted": (
        lambda: HuberRegressor(alpha=1e-2, epsilon=1.5, tol=1e-10, max_iter=10_000),
        REG_STD_CASE,
        True,
        1e-4,
    ),
}


@functools.cache
def build_family_case(name: str) -> FamilyCase:
    factory, (dataset, n, features), weighted, tol = FAMILY_SPECS[name]
    X, y = _small(dataset, n, features)
    sw = _weights(len(y)) if weighted else None
    est = factory()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FutureWarning / ConvergenceWarning of solvers
        est.fit(X, y, sample_weight=sw)
    return FamilyCase(name, est, X, y, sw, tol)


@pytest.fixture(params=sorted(FAMILY_SPECS), scope="session")
def family_case(request) -> FamilyCase:
    """Every supported linear family, solver and weighting option, fitted."""
    return build_family_case(request.param)


@pytest.fixture(scope="session")
def family():
    """``family(name)``: one fitted :class:`FamilyCase` by name."""
    return build_family_case


@pytest.fixture(scope="session")
def xp():
    return XP


def objective_of(estimator, X, y, sample_weight=None):
    """``(spec, objective)`` of a fitted final estimator on its training data."""
    spec = spec_for(estimator)
    if hasattr(spec, "prepare"):
        spec.prepare(X)
    return spec, spec.objective(XP.asarray(X), y, sample_weight, XP)


@pytest.fixture(scope="session")
def objective():
    return objective_of


# ---------------------------------------------------------- finite differences


def central_gradient(f, x, eps=1e-6):
    """Central differences of the scalar function ``f`` at ``x``."""
    x = np.asarray(x, dtype=float)
    out = np.empty_like(x)
    for j in range(x.size):
        e = np.zeros_like(x)
        e[j] = eps
        out[j] = (f(x + e) - f(x - e)) / (2 * eps)
    return out


def central_jacobian(g, x, eps=1e-6):
    """Central differences of the vector function ``g``: ``J[:, j] = dg / dx_j``."""
    x = np.asarray(x, dtype=float)
    cols = []
    for j in range(x.size):
        e = np.zeros_like(x)
        e[j] = eps
        cols.append((np.asarray(g(x + e)) - np.asarray(g(x - e))) / (2 * eps))
    return np.stack(cols, axis=-1)


@pytest.fixture(scope="session")
def numdiff():
    return SimpleNamespace(gradient=central_gradient, jacobian=central_jacobian)


# ------------------------------------------------------ leave-one-out oracle


def observed_quantity(estimator, X, y, target="loss"):
    """Per-row test quantity of a fitted estimator, from its public API only.

    ``target="loss"``: log-loss of ``predict_proba`` for probabilistic
    classifiers, the squared error of the ``{-1, +1}``-coded decision function
    for ``RidgeClassifier``, the modified Huber loss of the decision function
    for ``SGDClassifier(loss="modified_huber")``, the squared error of
    ``predict`` for regressors. ``target="prediction"``: the predicted
    probability of class ``y``, else the decision function, else ``predict``.
    """
    if is_classifier(estimator):
        classes = list(estimator.classes_)
        idx = np.array([classes.index(label) for label in y])
        probabilistic = hasattr(estimator, "predict_proba") and not (
            isinstance(estimator, SGDClassifier) and estimator.loss != "log_loss"
        )
        if probabilistic:
            P = estimator.predict_proba(X)[np.arange(len(y)), idx]
            return -np.log(P) if target == "loss" else P
        z = estimator.decision_function(X)
        if z.ndim == 1:
            z, signs = z[:, None], (2.0 * idx - 1.0)[:, None]
            z_sel = z[:, 0]
        else:
            signs = 2.0 * np.eye(len(classes))[idx] - 1.0
            z_sel = z[np.arange(len(y)), idx]
        if target == "prediction":
            return z_sel
        if isinstance(estimator, SGDClassifier):  # modified Huber per output
            m = signs * z
            value = np.where(m >= -1.0, np.maximum(1.0 - m, 0.0) ** 2, -4.0 * m)
            return value.sum(axis=1)
        return ((signs - z) ** 2).sum(axis=1)
    pred = estimator.predict(X)
    if target == "prediction":
        return pred
    return (np.asarray(y) - pred) ** 2 if pred.ndim == 1 else ((y - pred) ** 2).sum(axis=1)


def refit_without(estimator, X, y, drop, sample_weight=None, **params):
    """A clone of ``estimator`` refitted without the rows ``drop``."""
    est = clone(estimator).set_params(**params)
    keep = np.ones(len(y), dtype=bool)
    keep[np.asarray(drop, dtype=int)] = False
    kwargs = {} if sample_weight is None else {"sample_weight": sample_weight[keep]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X[keep], y[keep], **kwargs)


def loo_changes(
    estimator, X, y, X_test, y_test, rows, target="loss", sample_weight=None, **params
):
    """Actual change of the test quantity when each of ``rows`` is removed and
    the estimator refitted: (n_test, len(rows))."""
    base_est = refit_without(estimator, X, y, [], sample_weight, **params)
    base = observed_quantity(base_est, X_test, y_test, target)
    cols = []
    for i in rows:
        est = refit_without(estimator, X, y, [i], sample_weight, **params)
        cols.append(observed_quantity(est, X_test, y_test, target) - base)
    return np.stack(cols, axis=1)


def hardest_test_rows(estimator, X_test, y_test, k=3):
    """Up to ``k`` misclassified test rows of highest loss (classifiers), or
    the ``k`` rows of highest loss."""
    loss = observed_quantity(estimator, X_test, y_test, "loss")
    order = np.argsort(-loss, kind="stable")
    if is_classifier(estimator):
        wrong = estimator.predict(X_test)[order] != np.asarray(y_test)[order]
        if wrong.sum() >= 2:
            order = order[wrong]
    return order[:k]


def pearson(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def slope(predicted, actual):
    """Least-squares slope of ``actual`` on ``predicted`` (1 for the right scale)."""
    return float(np.polyfit(np.ravel(predicted), np.ravel(actual), 1)[0])


@pytest.fixture(scope="session")
def oracle():
    """Independent leave-one-out retraining and agreement statistics."""
    return SimpleNamespace(
        quantity=observed_quantity,
        refit_without=refit_without,
        loo_changes=loo_changes,
        hardest_test_rows=hardest_test_rows,
        pearson=pearson,
        slope=slope,
    )


def newton_distance(state) -> float:
    """Relative distance ``||H^{-1} g|| / ||theta||`` from the fitted parameters
    to the optimum of the objective skinfluence builds (one Newton step; the
    multinomial null space, flat by construction, is projected out)."""
    H = np.asarray(state.hessian())
    g = np.asarray(state.gradient())
    N = state.objective.null_space()
    if N is not None:
        N = np.asarray(N)
        H = H + N @ N.T
        g = g - N @ (N.T @ g)
    step = np.linalg.solve(H, g)
    return float(np.linalg.norm(step) / np.linalg.norm(np.asarray(state.theta)))


@pytest.fixture(scope="session")
def stationarity():
    return newton_distance


#: family_case name -> (data set of its held-out rows, features used by the case)
HELD_OUT = {
    "logreg-bin-newton-cg": ("breast_cancer", list(range(6))),
    "logreg-multi-newton-cg": ("wine", list(range(5))),
    "ridge-auto": ("diabetes", None),
}


@pytest.fixture(scope="session")
def held_out_case(family, data):
    """``held_out_case(name)``: a fitted :class:`FamilyCase` of :data:`HELD_OUT`
    with six held-out test rows in its feature space, ``(case, X_test, y_test)``."""

    def build(name):
        case = family(name)
        dataset, features = HELD_OUT[name]
        split = data(dataset)
        X_test = split.X_test[:6] if features is None else split.X_test[:6, features]
        return case, np.ascontiguousarray(X_test), split.y_test[:6]

    return build


@contextlib.contextmanager
def _local_dask_client(processes: bool):
    """A two-worker ``distributed`` cluster and its client, closed on exit."""
    import distributed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the cluster's own start-up notices
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=processes, dashboard_address=None
        )
        client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.fixture(scope="session")
def local_dask_client():
    """``local_dask_client(processes=...)``: a context manager giving a
    client of a two-worker local cluster (for module-scoped fixtures)."""
    return _local_dask_client
