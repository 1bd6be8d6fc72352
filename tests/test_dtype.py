"""``dtype="float32"``: the work over the rows in single precision.

The design, per-row terms, Hessian products and results are float32; the
Hessian's factor and the solvers' iterates stay float64 (see
:class:`~skinfluence.solvers.HessianOperator`). Every comparison is against
the float64 explainer on the same fitted model, whose accuracy against
leave-one-out refits the other test modules establish; one test also checks
float32 against refits directly.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import FAMILY_SPECS, HELD_OUT
from sklearn.datasets import make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC

from skinfluence import InfluenceExplainer
from skinfluence.solvers import HessianOperator, LissaInverseHessian

#: float32 error allowed, relative to the largest float64 value. Measured
#: over every family below: at most 1e-4 (exact solver, unpenalised logistic
#: regression), 2.4e-6 with CG.
RTOL32 = 1e-3


def _relative_error(got, want) -> float:
    want = np.asarray(want, dtype=np.float64)
    scale = float(np.max(np.abs(want)))
    assert scale > 0  # a comparison of zeros would prove nothing
    return float(np.max(np.abs(np.asarray(got, dtype=np.float64) - want))) / scale


def _pair(estimator, X, y, sample_weight=None, **params):
    """The same explainer at float64 and at float32."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = InfluenceExplainer(estimator, **params).fit(X, y, sample_weight=sample_weight)
        single = InfluenceExplainer(estimator, dtype="float32", **params).fit(
            X, y, sample_weight=sample_weight
        )
    return ref, single


@pytest.mark.parametrize("solver", ["exact", "cg"])
@pytest.mark.parametrize("name", sorted(FAMILY_SPECS))
def test_float32_matches_float64(family, name, solver):
    """Every linear family: influence and self-influence come back as float32
    and agree with float64 to RTOL32 of the largest value."""
    case = family(name)
    ref, single = _pair(case.estimator, case.X, case.y, case.sample_weight, solver=solver)
    X_test, y_test = case.X[:8], case.y[:8]
    got, want = single.influence(X_test, y_test), ref.influence(X_test, y_test)
    assert got.dtype == np.float32 and want.dtype == np.float64
    assert _relative_error(got, want) <= RTOL32
    own = single.self_influence()
    assert own.dtype == np.float32
    assert _relative_error(own, ref.self_influence()) <= RTOL32


@pytest.mark.parametrize("method", ["influence_params", "leverages", "leave_one_out_loss"])
def test_float32_other_methods_match_float64(family, method):
    case = family("logreg-multi-newton-cg")
    ref, single = _pair(case.estimator, case.X, case.y, approximation="newton")
    got, want = getattr(single, method)(), getattr(ref, method)()
    assert got.dtype == np.float32
    assert _relative_error(got, want) <= RTOL32


def test_float32_newton_and_lissa_match_float64(family):
    """The Newton step and LiSSA (whose default tolerance follows the data's
    precision: it stops instead of iterating below float32's resolution)."""
    case = family("logreg-bin-newton-cg")
    X_test, y_test = case.X[:8], case.y[:8]
    ref, single = _pair(case.estimator, case.X, case.y, approximation="newton")
    assert _relative_error(single.influence(X_test, y_test), ref.influence(X_test, y_test)) <= (
        RTOL32
    )
    options = {"solver": "lissa", "solver_options": {"random_state": 0}}
    ref, single = _pair(case.estimator, case.X, case.y, **options)
    assert single.solver_.tol > ref.solver_.tol
    assert single.solver_.report.converged
    assert single.solver_.report.iterations < single.solver_.depth
    assert _relative_error(single.influence(X_test, y_test), ref.influence(X_test, y_test)) <= (
        RTOL32
    )


def test_float32_predicts_leave_one_out_refits(data, oracle):
    """float32 influence against actual retraining, as for float64: the Newton
    step on the hardest held-out rows (where the first-order estimate itself
    reaches only 0.89, at either precision)."""
    split = data("breast_cancer")
    X, y = split.X_train[:300], split.y_train[:300]
    model = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-10, max_iter=10_000))
    model.fit(X, y)
    single = InfluenceExplainer(model, approximation="newton", dtype="float32").fit(X, y)
    hard = oracle.hardest_test_rows(model, split.X_test, split.y_test, k=3)
    X_test, y_test = split.X_test[hard], split.y_test[hard]
    influence = single.influence(X_test, y_test)
    rows = np.argsort(-np.abs(influence).max(axis=0))[:15]
    actual = oracle.loo_changes(model, X, y, X_test, y_test, rows)
    assert oracle.pearson(-influence[:, rows].ravel(), actual.ravel()) >= 0.99


def test_float32_sparse_matches_dense_float64():
    rng = np.random.RandomState(0)
    X = sp.random(200, 30, density=0.2, format="csr", random_state=rng)
    y = (X @ rng.randn(30) > 0).astype(int)
    model = LogisticRegression(tol=1e-10, max_iter=10_000).fit(X, y)
    single = InfluenceExplainer(model, dtype="float32").fit(X, y)
    assert single.state_.design.blocks[0].dtype == np.float32
    assert sp.issparse(single.state_.design.blocks[0])
    ref = InfluenceExplainer(model).fit(X.toarray(), y)
    got = single.influence(X[:5], y[:5])
    assert got.dtype == np.float32
    assert _relative_error(got, ref.influence(X[:5].toarray(), y[:5])) <= RTOL32


@pytest.mark.parametrize(
    "estimator, params",
    [
        (KernelRidge(alpha=0.5, kernel="rbf", gamma=0.1), {}),
        (SVC(kernel="rbf", gamma=0.1), {"hinge": "smoothed", "temperature": 0.1}),
        (LinearSVC(C=0.5, loss="hinge", tol=1e-10, max_iter=100_000), {"hinge": "smoothed"}),
    ],
    ids=["kernel-ridge", "svc-smoothed", "linear-svc-smoothed"],
)
def test_float32_kernel_and_smoothed_hinge_match_float64(data, oracle, estimator, params):
    split = data("breast_cancer")
    scaler = StandardScaler().fit(split.X_train[:150])
    X, X_test = scaler.transform(split.X_train[:150]), scaler.transform(split.X_test)
    y, y_test = split.y_train[:150], split.y_test
    if isinstance(estimator, KernelRidge):
        y, y_test = y.astype(float), y_test.astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(X, y)
    # the held-out rows of highest loss: rows past the margin have zero hinge
    # gradient, and a comparison of zeros would prove nothing
    hard = oracle.hardest_test_rows(estimator, X_test, y_test, k=4)
    ref, single = _pair(estimator, X, y, solver="exact", **params)
    got = single.influence(X_test[hard], y_test[hard])
    assert got.dtype == np.float32
    assert _relative_error(got, ref.influence(X_test[hard], y_test[hard])) <= RTOL32


def test_numpy_dtype_objects_are_accepted(family):
    case = family("ridge-auto")
    a = InfluenceExplainer(case.estimator, dtype=np.float32).fit(case.X, case.y)
    b = InfluenceExplainer(case.estimator, dtype="float32").fit(case.X, case.y)
    np.testing.assert_array_equal(a.self_influence(), b.self_influence())
    with pytest.raises(ValueError, match="dtype"):
        InfluenceExplainer(case.estimator, dtype="float16").fit(case.X, case.y)


def test_float32_survives_pickling(family):
    case = family("logreg-bin-newton-cg")
    exp = InfluenceExplainer(case.estimator, dtype="float32").fit(case.X, case.y)
    back = pickle.loads(pickle.dumps(exp))
    got = back.influence(case.X[:4], case.y[:4])
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, exp.influence(case.X[:4], case.y[:4]))


def _svm_data(data):
    split = data("breast_cancer")
    X = StandardScaler().fit_transform(split.X_train[:120])
    return X, split.y_train[:120]


@pytest.mark.parametrize(
    "estimator, params, what",
    [
        (LinearSVC(loss="hinge", tol=1e-8, max_iter=100_000), {}, "hinge='active_set'"),
        (
            LinearSVC(loss="hinge", tol=1e-8, max_iter=100_000),
            {"approximation": "path"},
            "approximation='path'",
        ),
        (KernelRidge(alpha=1.0, kernel="rbf"), {"solver": "cg"}, "row space"),
    ],
    ids=["active-set", "path", "row-space"],
)
def test_float32_is_refused_where_float64_is_needed(data, estimator, params, what):
    """Small KKT and row-space systems get a clear error, not a silent float64."""
    X, y = _svm_data(data)
    estimator.fit(X, y)
    with pytest.raises(ValueError, match=r"dtype='float32' does not apply") as info:
        InfluenceExplainer(estimator, dtype="float32", **params).fit(X, y)
    assert what in str(info.value) and "dtype='float64'" in str(info.value)


def test_float32_warns_where_the_hessian_outruns_its_precision():
    """Two nearly collinear features: the Hessian's condition number exceeds
    1 / eps of float32, the float32 answer is far off, and the exact solver
    says so; float64 on the same model stays silent and is right."""
    X, y = make_regression(200, 5, noise=1.0, random_state=0)
    X[:, 1] = X[:, 0] + 1e-4 * np.random.default_rng(0).normal(size=200)
    model = Ridge(alpha=1e-8).fit(X, y)
    with pytest.warns(RuntimeWarning, match="condition number.*collinear"):
        low = InfluenceExplainer(model, solver="exact", dtype="float32").fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        exp = InfluenceExplainer(model, solver="exact").fit(X, y)
    assert exp.solver_.report.details["condition_estimate"] * np.finfo(np.float32).eps > 1
    a, b = low.influence(X[:5], y[:5]), exp.influence(X[:5], y[:5])
    assert np.abs(a - b).max() > 1e-2 * np.abs(b).max()  # the warning was due


def test_badly_scaled_features_need_no_warning_in_float32():
    """A feature 1e4 times larger than the others only scales the Hessian:
    the exact solver factors it equilibrated, so float32 stays accurate and
    silent (the factor's diagonal alone used to call this ill-conditioned)."""
    X, y = make_regression(200, 5, noise=1.0, random_state=0)
    X[:, 0] *= 1e4
    model = Ridge(alpha=1e-3).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        low = InfluenceExplainer(model, solver="exact", dtype="float32").fit(X, y)
    exp = InfluenceExplainer(model, solver="exact").fit(X, y)
    a, b = low.influence(X[:5], y[:5]), exp.influence(X[:5], y[:5])
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-3 * np.abs(b).max())


def test_lissa_zero_right_hand_side_converges(family):
    """A zero column (a test row whose loss gradient underflows, common in
    float32) converges at once instead of stalling the stopping rule at 0/0."""
    case = family(sorted(HELD_OUT)[0])
    exp = InfluenceExplainer(case.estimator).fit(case.X, case.y)
    solver = LissaInverseHessian(HessianOperator(exp.state_), random_state=0)
    B = np.zeros((exp.state_.n_params, 2))
    B[0, 1] = 1.0
    X = solver.solve(B)
    assert np.all(X[:, 0] == 0)
    assert solver.report.converged
    assert solver.report.iterations < solver.depth
