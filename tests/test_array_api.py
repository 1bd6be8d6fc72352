"""The numerical core on a strict array-API namespace.

``array_api_strict`` implements the array API standard and nothing else: no
implicit NumPy conversions, no flat indexing of 2-d arrays, no mixed
namespaces. Running the explainer on it checks that the shared code path
(objectives, designs, solvers) uses ``xp.`` functions only, and that results
come back in the caller's namespace (see ``_resolve_namespace``).

Every comparison is against the same computation with NumPy input: the two
paths must agree to round-off (``rtol=1e-8``), LiSSA included (the same
``random_state`` draws the same NumPy random numbers on both paths).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from array_api_compat import array_namespace
from conftest import HELD_OUT
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import (
    HuberRegressor,
    LinearRegression,
    LogisticRegression,
    PoissonRegressor,
    Ridge,
)
from sklearn.svm import SVC, LinearSVC
from threadpoolctl import threadpool_limits

from skinfluence import InfluenceExplainer

xps = pytest.importorskip("array_api_strict")

STRICT = array_namespace(xps.asarray([0.0]))
RTOL = 1e-8

MODELS = sorted(HELD_OUT)

SOLVERS = {
    "exact": None,
    "cg": {"tol": 1e-12},
    # full-batch LiSSA: its randomness is the power-iteration start vector
    "lissa": {"random_state": 0, "tol": 1e-8},
    # mini-batch LiSSA: sampled Hessian rows index the strict arrays too
    "lissa-minibatch": {"random_state": 0, "batch_size": 32, "depth": 300},
}


def _is_strict(a) -> bool:
    return array_namespace(a) is STRICT


def assert_close(strict_result, numpy_result, rtol=RTOL):
    """``strict_result`` is a strict array equal to ``numpy_result`` to ``rtol``
    (relative to the largest entry, so that entries near 0 do not dominate)."""
    assert _is_strict(strict_result), type(strict_result)
    got = np.asarray(strict_result)
    want = np.asarray(numpy_result)
    assert got.shape == want.shape
    scale = float(np.max(np.abs(want)))
    assert scale > 0  # a vacuous comparison of zeros would prove nothing
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)


def _fit_pair(estimator, X, y, sample_weight=None, **params):
    """The same explainer fitted on NumPy and on strict input."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # mini-batch LiSSA at depth 300
        ref = InfluenceExplainer(estimator, **params).fit(X, y, sample_weight=sample_weight)
        strict = InfluenceExplainer(estimator, **params).fit(
            xps.asarray(X), y, sample_weight=sample_weight
        )
    return ref, strict


def _solver_params(solver):
    name = "lissa" if solver.startswith("lissa") else solver
    return {"solver": name, "solver_options": SOLVERS[solver]}


@pytest.mark.parametrize("approximation", ["influence", "newton"])
@pytest.mark.parametrize("solver", sorted(SOLVERS))
@pytest.mark.parametrize("model", MODELS)
def test_strict_matches_numpy(held_out_case, model, solver, approximation):
    """influence and self_influence on strict input equal those on NumPy
    input and come back as strict arrays."""
    case, X_test, y_test = held_out_case(model)
    params = _solver_params(solver) | {"approximation": approximation}
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref, strict = _fit_pair(case.estimator, case.X, case.y, **params)
        assert strict.xp_ is STRICT
        assert_close(strict.influence(xps.asarray(X_test), y_test), ref.influence(X_test, y_test))
        assert_close(strict.self_influence(), ref.self_influence())
        if solver == "lissa-minibatch":
            # the identity below needs a symmetric inverse; a product of
            # sampled Hessians, cut at depth 300, is not
            return
        # the identity self_influence[i] == -influence(X_train, y_train)[i, i]
        # holds within the strict path as well
        train_infl = strict.influence(xps.asarray(case.X), case.y)
        assert _is_strict(train_infl)
        assert_close(-STRICT.linalg.diagonal(train_infl), np.asarray(strict.self_influence()))


@pytest.mark.parametrize("model", MODELS)
def test_strict_lissa_approximates_exact(held_out_case, model):
    """Full-batch LiSSA on strict input converges to the exact solve (loosely:
    it is an iterative estimate), so the comparisons above are not vacuous
    agreement of two wrong answers."""
    case, X_test, y_test = held_out_case(model)
    with threadpool_limits(1):
        exact = InfluenceExplainer(case.estimator, solver="exact").fit(case.X, case.y)
        lissa = InfluenceExplainer(case.estimator, **_solver_params("lissa")).fit(
            xps.asarray(case.X), case.y
        )
        assert_close(
            lissa.influence(xps.asarray(X_test), y_test), exact.influence(X_test, y_test), 1e-4
        )
        assert_close(lissa.self_influence(), exact.self_influence(), 1e-4)


@pytest.mark.parametrize("approximation", ["influence", "newton"])
@pytest.mark.parametrize("solver", ["exact", "cg", "lissa"])
@pytest.mark.parametrize("model", MODELS)
def test_strict_float32_matches_numpy_float32(held_out_case, model, solver, approximation):
    """``dtype="float32"`` on the strict namespace: results are strict float32
    arrays equal to the NumPy float32 path (mixed-dtype arithmetic between the
    float32 rows and the float64 solvers goes through explicit casts only)."""
    case, X_test, y_test = held_out_case(model)
    params = _solver_params(solver) | {"approximation": approximation, "dtype": "float32"}
    if solver == "lissa":  # its default tolerance follows the data's precision
        params["solver_options"] = {"random_state": 0}
    with threadpool_limits(1):
        ref, strict = _fit_pair(case.estimator, case.X, case.y, **params)
        got = strict.influence(xps.asarray(X_test), y_test)
        assert got.dtype == STRICT.float32
        assert_close(got, ref.influence(X_test, y_test), rtol=1e-5)
        own = strict.self_influence()
        assert own.dtype == STRICT.float32
        assert_close(own, ref.self_influence(), rtol=1e-5)


def test_numpy_input_stays_numpy(family):
    """The converse of the namespace rule: NumPy in, NumPy out."""
    case = family("logreg-bin-newton-cg")
    exp = InfluenceExplainer(case.estimator, device="cpu").fit(case.X, case.y)
    assert isinstance(exp.influence(case.X[:3], case.y[:3]), np.ndarray)
    assert isinstance(exp.self_influence(), np.ndarray)


# -------------------------------------------------- the other public methods

METHODS = [
    "influence-prediction",
    "influence_params",
    "leverages",
    "training_loss",
    "leave_one_out_loss",
    "influence_features",
]


@pytest.mark.parametrize("solver", ["exact", "cg"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("model", ["logreg-bin-newton-cg", "logreg-multi-newton-cg"])
def test_strict_other_methods(held_out_case, model, method, solver):
    case, X_test, y_test = held_out_case(model)
    with threadpool_limits(1):
        ref, strict = _fit_pair(case.estimator, case.X, case.y, **_solver_params(solver))
        if method == "influence-prediction":
            got = strict.influence(xps.asarray(X_test), y_test, target="prediction")
            want = ref.influence(X_test, y_test, target="prediction")
        elif method == "influence_features":
            got = strict.influence_features(xps.asarray(X_test[:2]), y_test[:2], rows=[0, 5, 9])
            want = ref.influence_features(X_test[:2], y_test[:2], rows=[0, 5, 9])
        elif method == "influence_params":
            got = strict.influence_params(rows=[1, 2, 30])
            want = ref.influence_params(rows=[1, 2, 30])
        else:
            got, want = getattr(strict, method)(), getattr(ref, method)()
    assert_close(got, want)


def test_strict_most_influential(held_out_case):
    """Indices and values agree with the NumPy path (returned as NumPy: they
    are small index tables, gathered on the host)."""
    case, X_test, y_test = held_out_case("logreg-multi-newton-cg")
    with threadpool_limits(1):
        ref, strict = _fit_pair(case.estimator, case.X, case.y, solver="exact")
        got = strict.most_influential(xps.asarray(X_test), y_test, k=7)
        want = ref.most_influential(X_test, y_test, k=7)
    assert set(got) == set(want)
    for key in want:
        if key.endswith("indices"):
            np.testing.assert_array_equal(np.asarray(got[key]), want[key])
        else:
            np.testing.assert_allclose(np.asarray(got[key]), want[key], rtol=RTOL)


# ------------------------------------------ other families and code paths


def _other_cases(data):
    bc = data("breast_cancer")
    Xb, yb = np.ascontiguousarray(bc.X_train[:80, :5]), bc.y_train[:80]
    db = data("diabetes_std")
    Xr, yr = db.X_train[:80], db.y_train[:80]
    dc = data("diabetes_counts")
    weights = np.random.RandomState(0).randint(1, 4, size=80).astype(float)
    # a duplicated column: the Hessian is singular and solver="exact" falls
    # back to the pseudo-inverse (eigh path)
    Xdup = np.hstack([Xr[:, :3], Xr[:, :1]])
    return {
        "linearsvc-active-set": (
            LinearSVC(loss="hinge", tol=1e-10, max_iter=1_000_000),
            Xb,
            yb,
            None,
            {},
        ),
        "linearsvc-smoothed": (
            LinearSVC(loss="hinge", tol=1e-10, max_iter=1_000_000),
            Xb,
            yb,
            None,
            {"hinge": "smoothed", "temperature": 0.1},
        ),
        "svc-rbf": (SVC(kernel="rbf", gamma=0.5, tol=1e-10), Xb, yb, None, {}),
        "svc-rbf-path": (
            SVC(kernel="rbf", gamma=0.5, tol=1e-10),
            Xb,
            yb,
            None,
            {"approximation": "path"},
        ),
        "poisson": (
            PoissonRegressor(alpha=0.05, tol=1e-12, max_iter=10_000),
            dc.X_train[:80],
            dc.y_train[:80],
            None,
            {},
        ),
        "huber": (HuberRegressor(alpha=1e-3, tol=1e-10, max_iter=10_000), Xr, yr, None, {}),
        "ridge-weighted-damped": (Ridge(alpha=0.3), Xr, yr, weights, {"damping": 0.05}),
        "logreg-balanced-newton": (
            LogisticRegression(class_weight="balanced", tol=1e-12, solver="newton-cg"),
            Xb,
            yb,
            None,
            {"approximation": "newton"},
        ),
        "linreg-pseudo-inverse": (LinearRegression(), Xdup, yr, None, {"solver": "exact"}),
    }


OTHER = [
    "linearsvc-active-set",
    "linearsvc-smoothed",
    "svc-rbf",
    "svc-rbf-path",
    "poisson",
    "huber",
    "ridge-weighted-damped",
    "logreg-balanced-newton",
    "linreg-pseudo-inverse",
]


@pytest.mark.parametrize("name", OTHER)
def test_strict_other_families(data, name):
    estimator, X, y, sw, params = _other_cases(data)[name]
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NotAtOptimum / pseudo-inverse, checked below
        estimator.fit(X, y, sample_weight=sw)
        ref, strict = _fit_pair(estimator, X, y, sample_weight=sw, **params)
        assert_close(strict.influence(xps.asarray(X[:7]), y[:7]), ref.influence(X[:7], y[:7]))
        assert_close(strict.self_influence(), ref.self_influence())
    if name == "linreg-pseudo-inverse":
        # both paths really took the eigen-decomposition fallback
        for exp in (ref, strict):
            assert exp.solver_.report.details["pseudo_inverse_dropped"] == 1


# ------------------------------------------------------- mixed namespaces


def test_test_rows_from_another_namespace_are_converted(family):
    """Test rows from another library than the training rows are moved to the
    namespace the explainer was fitted in; results come back as for the
    training input (NumPy here)."""
    case = family("logreg-bin-newton-cg")
    exp = InfluenceExplainer(case.estimator, device="cpu").fit(case.X, case.y)
    want = exp.influence(case.X[:3], case.y[:3])
    got = exp.influence(xps.asarray(case.X[:3]), case.y[:3])
    assert isinstance(got, np.ndarray)
    np.testing.assert_allclose(got, want, rtol=RTOL)
    strict = InfluenceExplainer(case.estimator).fit(xps.asarray(case.X), case.y)
    assert_close(strict.influence(case.X[:3], case.y[:3]), want)
