"""SVMs and kernel models: parameters, agreement with leave-one-out refits,
kernels given three ways, large kernel models through conjugate gradients.

Agreement thresholds come from ``benchmarks/bench_svm.py`` (see
``doc/svm.md``): each test uses the benchmark's first split, with the
threshold a little below the value measured there (the numbers are listed
above ``AGREEMENT_CASES``).
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import SGDClassifier
from sklearn.metrics.pairwise import laplacian_kernel, rbf_kernel
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR, LinearSVC, LinearSVR
from threadpoolctl import threadpool_limits

from skinfluence import InfluenceExplainer
from skinfluence.retraining import leave_one_out


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    # small dense solves are much slower with 2 OpenBLAS threads on 2 busy cores
    with threadpool_limits(1):
        yield


# ------------------------------------------------------------------ data
@lru_cache
def digits17():
    """Koh & Liang's 1-vs-7 digits, pixels in [0, 1]; first 300 rows train."""
    X, y = load_digits(return_X_y=True)
    keep = (y == 1) | (y == 7)
    X, y = X[keep] / 16.0, y[keep]
    return X[:300], y[:300], X[300:], y[300:]


@lru_cache
def diabetes():
    """Standardised features and target; the benchmark's first split (331 rows)."""
    X, y = load_diabetes(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0)
    scaler = StandardScaler().fit(Xtr)
    mu, sd = ytr.mean(), ytr.std()
    return scaler.transform(Xtr), (ytr - mu) / sd, scaler.transform(Xte), (yte - mu) / sd


def raw_output(est, X):
    f = est.decision_function(X) if hasattr(est, "decision_function") else est.predict(X)
    return np.asarray(f, dtype=float).reshape(X.shape[0], -1)


def highest_loss_rows(est, X, y, k=3):
    """Test rows of largest hinge / squared loss (misclassified first)."""
    f = raw_output(est, X)[:, 0]
    if hasattr(est, "classes_"):
        loss = np.maximum(0.0, 1.0 - np.where(y == est.classes_[1], 1.0, -1.0) * f)
    else:
        loss = (y - f) ** 2
    return np.argsort(-loss, kind="stable")[:k]


TIGHT = {"tol": 1e-10}
# a fixed random_state: liblinear shuffles its coordinates, and the refits
# should be reproducible from run to run
LIBLINEAR = {"tol": 1e-10, "max_iter": 1_000_000, "random_state": 0}


# ------------------------------------------- parameters read correctly
def _precomputed_svc():
    return SVC(kernel="precomputed", **TIGHT), lambda A, B: rbf_kernel(A, B, gamma=0.05)


DESIGN_CASES = {
    "LinearSVC-hinge": (lambda: LinearSVC(loss="hinge", **LIBLINEAR), "clf"),
    "LinearSVC-squared_hinge": (lambda: LinearSVC(**LIBLINEAR), "clf"),
    "LinearSVC-class_weight": (
        lambda: LinearSVC(class_weight={1: 2.0, 7: 0.5}, intercept_scaling=3.0, **LIBLINEAR),
        "clf",
    ),
    "LinearSVR-epsilon_insensitive": (lambda: LinearSVR(epsilon=0.1, **LIBLINEAR), "reg"),
    "LinearSVR-squared": (
        lambda: LinearSVR(loss="squared_epsilon_insensitive", epsilon=0.1, **LIBLINEAR),
        "reg",
    ),
    "SGDClassifier-hinge": (
        lambda: SGDClassifier(loss="hinge", alpha=0.01, max_iter=50, tol=None, random_state=0),
        "clf",
    ),
    "SVC-linear": (lambda: SVC(kernel="linear", **TIGHT), "clf"),
    "SVC-rbf": (lambda: SVC(kernel="rbf", gamma=0.05, **TIGHT), "clf"),
    "SVC-rbf-balanced": (lambda: SVC(gamma="scale", class_weight="balanced", **TIGHT), "clf"),
    "SVC-poly": (lambda: SVC(kernel="poly", degree=3, gamma=0.05, coef0=1.0, **TIGHT), "clf"),
    "SVC-callable": (lambda: SVC(kernel=laplacian_kernel, **TIGHT), "clf"),
    "SVC-precomputed": (_precomputed_svc, "clf"),
    "SVR-rbf": (lambda: SVR(kernel="rbf", gamma=0.1, epsilon=0.1, **TIGHT), "reg"),
    "SVR-linear": (lambda: SVR(kernel="linear", epsilon=0.1, **TIGHT), "reg"),
    "KernelRidge-rbf": (lambda: KernelRidge(alpha=0.5, kernel="rbf", gamma=0.1), "reg"),
    "KernelRidge-poly": (
        lambda: KernelRidge(alpha=0.5, kernel="poly", degree=2, gamma=0.1, coef0=1.0),
        "reg",
    ),
    "KernelRidge-linear": (lambda: KernelRidge(alpha=0.5, kernel="linear"), "reg"),
    "KernelRidge-precomputed": (
        lambda: (KernelRidge(alpha=0.5, kernel="precomputed"), lambda A, B: rbf_kernel(A, B)),
        "reg",
    ),
}


@pytest.mark.parametrize("hinge", ["active_set", "smoothed"])
@pytest.mark.parametrize("case", sorted(DESIGN_CASES))
def test_design_reproduces_decision_function(case, hinge):
    """The explainer's parameters and design give back the model's own outputs."""
    make, task = DESIGN_CASES[case]
    X, y, Xte, yte = digits17() if task == "clf" else diabetes()
    X, y = X[:150], y[:150]
    made = make()
    est, kernel = made if isinstance(made, tuple) else (made, None)
    A, A_test = (X, Xte) if kernel is None else (kernel(X, X), kernel(Xte, X))
    sample_weight = np.linspace(0.5, 1.5, len(y)) if case == "SVC-rbf" else None
    est.fit(A, y, sample_weight=sample_weight)
    exp = InfluenceExplainer(est, hinge=hinge).fit(A, y, sample_weight=sample_weight)
    z = np.asarray(exp.state_.z)
    expected = raw_output(est, A)
    np.testing.assert_allclose(z, expected, rtol=0, atol=1e-8 * max(1.0, np.abs(expected).max()))
    influence = exp.influence(A_test[:3], yte[:3])
    assert influence.shape == (3, len(y))
    assert np.all(np.isfinite(influence))


def test_linear_svm_parameters_are_coef_and_intercept():
    X, y, _, _ = digits17()
    for est in (LinearSVC(loss="hinge", **LIBLINEAR), SVC(kernel="linear", **TIGHT)):
        est.fit(X, y)
        exp = InfluenceExplainer(est).fit(X, y)
        theta = np.asarray(exp.state_.theta)
        np.testing.assert_allclose(theta[:-1], est.coef_.ravel(), rtol=1e-12)
        np.testing.assert_allclose(theta[-1], est.intercept_[0], rtol=1e-12)


def test_multioutput_kernel_ridge():
    X, y, Xte, yte = diabetes()
    Y = np.c_[y, y**2]
    est = KernelRidge(alpha=0.5, kernel="rbf", gamma=0.1).fit(X, Y)
    exp = InfluenceExplainer(est).fit(X, Y)
    np.testing.assert_allclose(np.asarray(exp.state_.z), est.predict(X), atol=1e-8)
    assert exp.influence(Xte[:2], np.c_[yte[:2], yte[:2] ** 2]).shape == (2, len(y))


# ---------------------------------------------- agreement with real LOO
# (model, data, explainer options, min Pearson, slope range). Measured by
# benchmarks/bench_svm.py, Pearson on this split / median [min] over five
# splits (digits 1-vs-7 for classifiers, diabetes for regressors):
#   KernelRidge rbf newton 1.000 / 1.000 [1.000], slope 0.99; influence 0.997
#   / 0.997 [0.992], slope 1.22; poly newton 1.000 / 1.000 [0.998];
#   SVC rbf active_set 0.94 / 0.93 [0.87], smoothed(t=1e-3) 0.95 / 0.94 [0.84];
#   SVC linear active_set 0.79 / 0.83 [0.77]; LinearSVC hinge active_set
#   0.78 / 0.74 [0.70]; squared hinge newton 0.94 / 0.97 [0.94];
#   SVR rbf active_set 0.91 / 0.93 [0.91].
# Thresholds sit a few hundredths below this split's value: the data and
# solvers are deterministic, so a failure is a change of the estimates.
AGREEMENT_CASES = [
    (
        "KernelRidge-rbf-newton",
        lambda: KernelRidge(alpha=1.0, kernel="rbf", gamma=0.1),
        "reg",
        {"approximation": "newton"},
        0.99,
        (0.95, 1.05),
    ),
    (
        "KernelRidge-poly-newton",
        lambda: KernelRidge(alpha=1.0, kernel="poly", degree=2, gamma=0.1, coef0=1.0),
        "reg",
        {"approximation": "newton"},
        0.99,
        (0.9, 1.1),
    ),
    (
        "KernelRidge-rbf-influence",
        lambda: KernelRidge(alpha=1.0, kernel="rbf", gamma=0.1),
        "reg",
        {},
        0.97,
        (1.0, 1.5),
    ),
    (
        "SVC-rbf-active_set",
        lambda: SVC(kernel="rbf", gamma=0.05, **TIGHT),
        "clf",
        {},
        0.9,
        (0.6, 1.2),
    ),
    (
        "SVC-rbf-smoothed",
        lambda: SVC(kernel="rbf", gamma=0.05, **TIGHT),
        "clf",
        {"hinge": "smoothed"},
        0.9,
        (0.6, 1.3),
    ),
    (
        "SVC-linear-active_set",
        lambda: SVC(kernel="linear", **TIGHT),
        "clf",
        {},
        0.7,
        (0.3, 1.2),
    ),
    (
        "LinearSVC-hinge-active_set",
        lambda: LinearSVC(loss="hinge", **LIBLINEAR),
        "clf",
        {},
        0.7,
        (0.3, 1.2),
    ),
    (
        "LinearSVC-squared_hinge-newton",
        lambda: LinearSVC(**LIBLINEAR),
        "clf",
        {"approximation": "newton"},
        0.9,
        (0.5, 1.3),
    ),
    (
        "SVR-rbf-active_set",
        lambda: SVR(kernel="rbf", C=1.0, epsilon=0.1, gamma=0.1, **TIGHT),
        "reg",
        {},
        0.85,
        (0.5, 1.2),
    ),
]


@pytest.mark.parametrize(
    "make, task, options, min_pearson, slope",
    [c[1:] for c in AGREEMENT_CASES],
    ids=[c[0] for c in AGREEMENT_CASES],
)
def test_agreement_with_leave_one_out(make, task, options, min_pearson, slope):
    X, y, Xte, yte = digits17() if task == "clf" else diabetes()
    est = make().fit(X, y)
    test = highest_loss_rows(est, Xte, yte)
    exp = InfluenceExplainer(est, **options).fit(X, y)
    result = leave_one_out(exp, Xte[test], yte[test], rows=30, n_jobs=1)
    assert result.agreement.pearson >= min_pearson, result.agreement
    assert slope[0] <= result.agreement.slope <= slope[1], result.agreement


@lru_cache
def breast_cancer():
    """Standardised breast cancer, stratified 75/25 split (the benchmark's first)."""
    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    scaler = StandardScaler().fit(Xtr)
    return scaler.transform(Xtr), ytr, scaler.transform(Xte), yte


# The decremental path against refits of the original (non-smoothed) model, on
# the most influential rows of the highest-loss (misclassified) test rows: the
# estimate is the exact leave-one-out solution, so it agrees to the refits'
# tolerance (measured: |predicted - actual| <= 2e-10 for the linear models,
# <= 7e-4 relative for the RBF ones, where libsvm's tol=1e-10 stops earlier).
PATH_CASES = {
    "LinearSVC-hinge-digits": (lambda: LinearSVC(loss="hinge", **LIBLINEAR), digits17, 1e-6),
    "LinearSVC-hinge-breast_cancer": (
        lambda: LinearSVC(loss="hinge", C=0.1, **LIBLINEAR),
        breast_cancer,
        1e-6,
    ),
    "SVC-linear-digits": (lambda: SVC(kernel="linear", **TIGHT), digits17, 1e-6),
    "SVC-rbf-digits": (lambda: SVC(kernel="rbf", gamma=0.05, **TIGHT), digits17, 1e-2),
    "SVR-rbf-diabetes": (
        lambda: SVR(kernel="rbf", C=1.0, epsilon=0.1, gamma=0.1, **TIGHT),
        diabetes,
        1e-2,
    ),
    "LinearSVR-diabetes": (lambda: LinearSVR(epsilon=0.1, **LIBLINEAR), diabetes, 1e-6),
}


@pytest.mark.parametrize("make, data, rel_tol", PATH_CASES.values(), ids=PATH_CASES.keys())
def test_path_reproduces_leave_one_out_refits(make, data, rel_tol):
    X, y, Xte, yte = data()
    est = make().fit(X, y)
    test = highest_loss_rows(est, Xte, yte)
    exp = InfluenceExplainer(est, approximation="path").fit(X, y)
    result = leave_one_out(exp, Xte[test], yte[test], rows=30, n_jobs=1)
    assert result.agreement.pearson >= 0.999, result.agreement
    assert 0.99 <= result.agreement.slope <= 1.01, result.agreement
    scale = np.abs(result.actual).max()
    np.testing.assert_allclose(result.predicted, result.actual, rtol=0, atol=rel_tol * scale)
    # the first-order estimate on the same model is clearly worse where the
    # active set changes; the path must have followed such changes
    assert exp.solver_.report.details["path_events"] > 0


def test_path_first_segment_is_the_active_set_estimate():
    """Stopped before its first event, the path is the first-order active-set
    estimate: an independent check of the KKT solve (and of the path's start)."""
    from skinfluence.solvers._active_set import hinge_kkt
    from skinfluence.solvers._decremental import DecrementalPath

    X, y, _, _ = digits17()
    est = SVC(kernel="linear", **TIGHT).fit(X, y)
    exp = InfluenceExplainer(est).fit(X, y)
    kkt = hinge_kkt(exp.state_)
    first = DecrementalPath.on_design(exp.state_, kkt, max_events=0).shifts()
    np.testing.assert_allclose(
        np.asarray(first.take(slice(None))).T, -exp.influence_params(), rtol=0, atol=1e-9
    )


def test_path_self_influence_and_leave_one_out_decision_are_exact():
    X, y, _, _ = digits17()
    est = LinearSVC(loss="hinge", **LIBLINEAR).fit(X, y)
    exp = InfluenceExplainer(est, approximation="path").fit(X, y)
    influence = exp.influence(X, y)
    np.testing.assert_allclose(exp.self_influence(), -np.diag(influence), atol=1e-12)
    np.testing.assert_allclose(
        exp.leave_one_out_loss() - exp.training_loss(), exp.self_influence(), atol=1e-12
    )
    decision = exp.leave_one_out_decision()[:, 0]
    for i in np.argsort(-exp.self_influence())[:5]:
        keep = np.arange(len(y)) != i
        refit = LinearSVC(loss="hinge", **LIBLINEAR).fit(X[keep], y[keep])
        assert decision[i] == pytest.approx(refit.decision_function(X[i : i + 1])[0], abs=1e-7)


def test_path_applies_to_hinge_models_only():
    X, y, _, _ = digits17()
    est = LinearSVC(**LIBLINEAR).fit(X, y)  # squared hinge: smooth
    with pytest.raises(ValueError, match="approximation='path'.*approximation='newton'"):
        InfluenceExplainer(est, approximation="path").fit(X, y)
    est = SVC(kernel="rbf", gamma=0.05).fit(X, y)
    with pytest.raises(ValueError, match="hinge='smoothed'"):
        InfluenceExplainer(est, approximation="path", hinge="smoothed").fit(X, y)
    est = KernelRidge(alpha=1.0, kernel="rbf", gamma=0.1).fit(X, y)
    for solver in ("exact", "cg"):  # kernel features and row space
        with pytest.raises(ValueError, match="KernelRidge.*approximation='newton'"):
            InfluenceExplainer(est, approximation="path", solver=solver).fit(X, y)


def test_active_set_is_exact_while_the_margin_set_stays():
    """The t -> 0 estimate is piecewise linear: exact for removals after which
    the refit has the same margin / inside / outside partition of the rows."""
    X, y, Xte, _ = digits17()
    est = SVC(kernel="linear", **TIGHT).fit(X, y)
    exp = InfluenceExplainer(est).fit(X, y)
    result = leave_one_out(exp, Xte[:5], rows=40, target="prediction", n_jobs=1)

    def partition(model, n):
        """0: not a support vector, 1: on the margin (0 < alpha < C), 2: at C."""
        out = np.zeros(n, dtype=int)
        alpha = np.abs(model.dual_coef_[0])
        out[model.support_] = np.where(alpha < model.C * (1 - 1e-9), 1, 2)
        return out

    before = partition(est, len(y))
    same = []
    for r in result.rows:
        keep = np.arange(len(y)) != r
        refit = SVC(kernel="linear", **TIGHT).fit(X[keep], y[keep])
        same.append(np.array_equal(partition(refit, keep.sum()), before[keep]))
    same = np.asarray(same)
    assert 3 <= same.sum() < len(same)  # both kinds occur among the top rows
    scale = np.abs(result.actual).max()
    np.testing.assert_allclose(
        result.predicted[:, same], result.actual[:, same], rtol=0, atol=1e-6 * scale
    )
    assert np.abs(result.predicted[:, ~same] - result.actual[:, ~same]).max() > 1e-3 * scale


def test_active_set_beats_smoothed_on_a_linear_svm():
    """Why hinge="active_set" is the default: on a linear SVM the smoothed
    Hessian's 1/(4t) curvature on margin rows shrinks the estimates (slope of
    actual on predicted far above 1 at t=0.001) and lowers the correlation."""
    X, y, Xte, yte = digits17()
    est = LinearSVC(loss="hinge", **LIBLINEAR).fit(X, y)
    test = highest_loss_rows(est, Xte, yte)
    results = {}
    for hinge in ("active_set", "smoothed"):
        exp = InfluenceExplainer(est, hinge=hinge).fit(X, y)
        results[hinge] = leave_one_out(exp, Xte[test], yte[test], rows=30, n_jobs=1)
    assert results["active_set"].agreement.pearson > results["smoothed"].agreement.pearson
    assert results["smoothed"].agreement.slope > 10
    assert 0.3 < results["active_set"].agreement.slope < 1.5


# ---------------------------------------------- kernels given three ways
def test_precomputed_and_callable_kernels_match_the_named_kernel():
    X, y, Xte, yte = digits17()
    gamma = 0.05

    def kernel(A, B):
        return rbf_kernel(A, B, gamma=gamma)

    named = SVC(kernel="rbf", gamma=gamma, **TIGHT).fit(X, y)
    call = SVC(kernel=kernel, **TIGHT).fit(X, y)
    pre = SVC(kernel="precomputed", **TIGHT).fit(kernel(X, X), y)
    results = []
    for est, A, At in ((named, X, Xte), (call, X, Xte), (pre, kernel(X, X), kernel(Xte, X))):
        exp = InfluenceExplainer(est).fit(A, y)
        results.append(exp.influence(At[:4], yte[:4]))
    scale = np.abs(results[0]).max()
    for other in results[1:]:
        np.testing.assert_allclose(other, results[0], rtol=0, atol=1e-6 * scale)


def test_precomputed_kernel_ridge_and_its_refits_match_the_named_kernel():
    X, y, Xte, yte = diabetes()
    named = KernelRidge(alpha=1.0, kernel="rbf", gamma=0.1).fit(X, y)
    K, Kt = rbf_kernel(X, X, gamma=0.1), rbf_kernel(Xte[:3], X, gamma=0.1)
    pre = KernelRidge(alpha=1.0, kernel="precomputed").fit(K, y)
    exp_named = InfluenceExplainer(named, approximation="newton").fit(X, y)
    exp_pre = InfluenceExplainer(pre, approximation="newton").fit(K, y)
    a = exp_named.influence(Xte[:3], yte[:3])
    b = exp_pre.influence(Kt, yte[:3])
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-8 * np.abs(a).max())
    rows = np.arange(10)
    loo_named = leave_one_out(exp_named, Xte[:3], yte[:3], rows=rows, n_jobs=1)
    loo_pre = leave_one_out(exp_pre, Kt, yte[:3], rows=rows, n_jobs=1)
    np.testing.assert_allclose(loo_pre.actual, loo_named.actual, atol=1e-10)


# ------------------------------------------------------------- refusals
def test_multiclass_svc_raises_a_clear_error():
    X, y = load_digits(n_class=3, return_X_y=True)
    est = SVC(kernel="rbf").fit(X / 16.0, y)
    with pytest.raises(ValueError, match="3 classes is not supported.*one-vs-one"):
        InfluenceExplainer(est).fit(X / 16.0, y)
    est = SVC(kernel="linear").fit(X / 16.0, y)
    with pytest.raises(ValueError, match="one-vs-one"):
        InfluenceExplainer(est).fit(X / 16.0, y)


def test_active_set_refuses_newton():
    X, y, _, _ = digits17()
    est = SVC(kernel="rbf", gamma=0.05).fit(X, y)
    with pytest.raises(ValueError, match="newton"):
        InfluenceExplainer(est, approximation="newton").fit(X, y)


# ----------------------------------------------------------------- SVR
@pytest.mark.parametrize("hinge", ["active_set", "smoothed"])
def test_svr(hinge):
    X, y, Xte, yte = diabetes()
    est = SVR(kernel="rbf", gamma=0.1, epsilon=0.1, **TIGHT).fit(X, y)
    exp = InfluenceExplainer(est, hinge=hinge).fit(X, y)
    np.testing.assert_allclose(np.asarray(exp.state_.z)[:, 0], est.predict(X), atol=1e-8)
    if hinge == "active_set":
        # the margin rows lie on the tube's edge, and include every row
        # whose dual coefficient is strictly inside (0, C): those the fit
        # needs on the edge to be stationary
        edge = np.abs(np.abs(y - est.predict(X)) - est.epsilon) <= 1e-3
        margin = exp.solver_.margin_rows
        assert np.all(edge[margin])
        dual = np.abs(est.dual_coef_[0])
        free = est.support_[(dual > 1e-8 * est.C) & (dual < (1 - 1e-8) * est.C)]
        assert free.size > 10 and set(free) <= set(margin)
    influence = exp.influence(Xte[:3], yte[:3])
    assert influence.shape == (3, len(y))
    assert np.all(np.isfinite(influence))
    if hinge == "active_set":
        # rows strictly inside the tube have no influence on an SVR
        inside = np.abs(y - est.predict(X)) < est.epsilon - 1e-3
        assert inside.sum() > 10
        np.testing.assert_allclose(influence[:, inside], 0.0, atol=1e-10)


# --------------------------------------------- large kernel models, CG
def _friedman(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] ** 2 + 0.1 * rng.normal(size=n)
    return X, y


def _full_rank(n, seed=0):
    """10 features: an RBF kernel matrix of numerically full rank."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 10))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] ** 2 - X[:, 2] * X[:, 3] + 0.3 * rng.normal(size=n)
    return X, y


ROW_SPACE_CASES = {
    "rbf": (lambda: KernelRidge(alpha=1.0, kernel="rbf", gamma=0.1), None),
    "poly": (lambda: KernelRidge(alpha=0.5, kernel="poly", degree=2, coef0=1.0), None),
    "laplacian-weighted": (
        lambda: KernelRidge(alpha=0.3, kernel="laplacian", gamma=0.05),
        "weights",
    ),
    "precomputed": (lambda: KernelRidge(alpha=1.0, kernel="precomputed"), "precomputed"),
}


@pytest.mark.parametrize("make, variant", ROW_SPACE_CASES.values(), ids=ROW_SPACE_CASES.keys())
@pytest.mark.parametrize("approximation", ["influence", "newton"])
def test_kernel_ridge_row_space_matches_kernel_features(make, variant, approximation):
    """solver="cg" never forms kernel features: it solves in the row space
    with kernel values evaluated in blocks. Same answers as the exact
    features (eigendecomposition of K)."""
    X, y = _full_rank(400)
    Xt, yt = _full_rank(6, seed=1)
    sw = np.random.default_rng(2).uniform(0.5, 2.0, len(y)) if variant == "weights" else None
    if variant == "precomputed":
        X, Xt = rbf_kernel(X, X, gamma=0.1), rbf_kernel(Xt, X, gamma=0.1)
    est = make().fit(X, y, sample_weight=sw)
    opts = {"approximation": approximation}
    exact = InfluenceExplainer(est, solver="exact", **opts).fit(X, y, sample_weight=sw)
    # a preconditioner of rank 50 < n leaves real work to conjugate gradients
    rows = InfluenceExplainer(
        est,
        solver="cg",
        max_block_bytes=2**22,  # kernel values in blocks of 131 rows
        solver_options={"preconditioner_rank": 50},
        **opts,
    )
    rows.fit(X, y, sample_weight=sw)
    assert rows.spec_.row_space and not exact.spec_.row_space
    for method in ("self_influence", "leave_one_out_decision"):
        a, b = getattr(exact, method)(), getattr(rows, method)()
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6 * np.abs(a).max())
    a, b = exact.influence(Xt, yt), rows.influence(Xt, yt)
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-6 * np.abs(a).max())
    assert rows.solver_.report.converged and rows.solver_.report.iterations > 3
    top = rows.most_influential(Xt, yt, k=5)
    np.testing.assert_array_equal(top["harmful_indices"], np.argsort(-a, axis=1)[:, :5])
    with pytest.raises(ValueError, match="implicit"):
        rows.influence_params([0])


def test_multioutput_kernel_ridge_in_row_space():
    X, y = _full_rank(300)
    Y = np.c_[y, np.cos(X[:, 4])]
    Xt, yt = _full_rank(4, seed=1)
    Yt = np.c_[yt, np.cos(Xt[:, 4])]
    est = KernelRidge(alpha=0.5, kernel="rbf", gamma=0.1).fit(X, Y)
    exact = InfluenceExplainer(est, solver="exact", approximation="newton").fit(X, Y)
    rows = InfluenceExplainer(est, solver="cg", approximation="newton").fit(X, Y)
    assert rows.spec_.row_space
    a, b = exact.influence(Xt, Yt), rows.influence(Xt, Yt)
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-6 * np.abs(a).max())
    a, b = exact.leave_one_out_loss(), rows.leave_one_out_loss()
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-6 * np.abs(a).max())
    # one penalty per target: the outputs no longer share a Hessian block,
    # so the explainer keeps the kernel features
    per_target = KernelRidge(alpha=[0.5, 2.0], kernel="rbf", gamma=0.1).fit(X, Y)
    assert not InfluenceExplainer(per_target, solver="cg").fit(X, Y).spec_.row_space


def test_smoothed_svc_cg_matches_exact():
    X, y, Xte, yte = digits17()
    est = SVC(kernel="rbf", gamma=0.05, **TIGHT).fit(X, y)
    opts = {"hinge": "smoothed", "temperature": 1e-2}
    exact = InfluenceExplainer(est, solver="exact", **opts).fit(X, y).influence(Xte[:3], yte[:3])
    cg = InfluenceExplainer(est, solver="cg", **opts).fit(X, y).influence(Xte[:3], yte[:3])
    np.testing.assert_allclose(cg, exact, rtol=0, atol=1e-6 * np.abs(exact).max())


HINGE_ROW_SPACE_CASES = {
    "SVC-rbf": (lambda: SVC(kernel="rbf", gamma=0.05, **TIGHT), digits17),
    "SVC-poly-balanced": (
        lambda: SVC(
            kernel="poly", degree=3, gamma=0.05, coef0=1.0, class_weight="balanced", **TIGHT
        ),
        digits17,
    ),
    "SVC-precomputed": (_precomputed_svc, digits17),
    "SVR-rbf": (lambda: SVR(kernel="rbf", C=1.0, epsilon=0.1, gamma=0.1, **TIGHT), diabetes),
}


@pytest.mark.parametrize(
    "make, data", HINGE_ROW_SPACE_CASES.values(), ids=HINGE_ROW_SPACE_CASES.keys()
)
@pytest.mark.parametrize("approximation", ["influence", "path"])
@pytest.mark.parametrize("damping", [0.0, 0.3])
def test_hinge_kernel_models_in_row_space_match_kernel_features(
    make, data, approximation, damping
):
    """SVC / SVR with solver="cg": the active set and the decremental path run
    on kernel columns (``Q = K``) with the dual coefficients as parameters;
    no feature map, sparse parameter changes, the same answers."""
    X, y, Xte, yte = data()
    made = make()
    est, kernel = made if isinstance(made, tuple) else (made, None)
    if kernel is not None:
        X, Xte = kernel(X, X), kernel(Xte, X)
    est.fit(X, y)
    test = highest_loss_rows(est, Xte, yte)
    # damping is added to every parameter, the intercept included
    opts = {"approximation": approximation, "damping": damping}
    features = InfluenceExplainer(est, solver="exact", **opts).fit(X, y)
    rows = InfluenceExplainer(est, solver="cg", **opts).fit(X, y)
    assert rows.spec_.row_space and not features.spec_.row_space
    # sparse: a removal moves the margin rows, the rows met on the path, the
    # removed row and the intercept only
    path = rows.solver_
    bound = np.sum((path.nu0 != 0) * (path.on0.sum() + path.events_ + 2))
    assert 0 < rows.removal_.shifts.nnz <= bound
    # The first-order estimate follows the zero-length pivots of a vertex
    # with a multiplier at its bound; the two representations round
    # differently, so a rounding-level tie can pivot in one and not in the
    # other. The exact path ends at the same optimum either way.
    tol = 1e-9 if approximation == "path" else 5e-2
    a, b = features.influence(Xte[test], yte[test]), rows.influence(Xte[test], yte[test])
    np.testing.assert_allclose(b, a, rtol=0, atol=tol * np.abs(a).max())
    if approximation == "influence":  # the pivoting rows only
        assert np.mean(np.abs(b - a) <= 1e-9 * np.abs(a).max()) >= 0.95
    for method in ("self_influence", "leave_one_out_decision"):
        a, b = getattr(features, method)(), getattr(rows, method)()
        np.testing.assert_allclose(b, a, rtol=0, atol=tol * np.abs(a).max())
    assert rows.stationarity_ < 1e-6


def test_kernel_ridge_beyond_exact_rows_runs_in_bounded_memory():
    """Beyond 3000 rows solver="auto" explains kernel ridge in row space: no
    array near the size of the n x n kernel matrix is ever allocated, and the
    largest estimate matches a real refit."""
    import tracemalloc

    n = 4000
    X, y = _full_rank(n)
    Xt, yt = _full_rank(4, seed=1)
    est = KernelRidge(alpha=1.0, kernel="rbf", gamma=0.1).fit(X, y)
    tracemalloc.start()
    try:
        exp = InfluenceExplainer(est, max_block_bytes=16 * 2**20).fit(X, y)
        influence = exp.influence(Xt, yt)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert exp.spec_.row_space and exp.solver_.report.converged
    kernel_bytes = n * n * 8  # 122 MiB
    assert peak < kernel_bytes / 4, f"peak {peak / 2**20:.0f} MiB"
    np.testing.assert_allclose(np.asarray(exp.state_.z)[:, 0], est.predict(X), atol=1e-8)
    j, i = np.unravel_index(np.argmax(np.abs(influence)), influence.shape)
    keep = np.arange(n) != i
    refit = KernelRidge(alpha=1.0, kernel="rbf", gamma=0.1).fit(X[keep], y[keep])
    before = (yt[j] - est.predict(Xt[j : j + 1])[0]) ** 2
    after = (yt[j] - refit.predict(Xt[j : j + 1])[0]) ** 2
    assert np.sign(after - before) == np.sign(-influence[j, i])
    assert 0.7 < (after - before) / -influence[j, i] < 1.5


def test_svc_beyond_exact_rows_runs_in_bounded_memory():
    """Beyond 3000 rows a kernel SVC is explained in row space by default:
    kernel columns of the margin rows only (295 of them here), sparse
    parameter changes, far less memory than the n x n kernel matrix; the
    largest first-order estimate points the way a real refit moves."""
    import tracemalloc

    n = 4000
    X, y = _full_rank(n)
    y = (y > np.median(y)).astype(int)
    Xt = _full_rank(3, seed=1)[0]
    est = SVC(kernel="rbf", gamma=0.1, C=1.0, tol=1e-8).fit(X, y)
    tracemalloc.start()
    try:
        exp = InfluenceExplainer(est, max_block_bytes=16 * 2**20).fit(X, y)
        influence = exp.influence(Xt, target="prediction")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert exp.spec_.row_space
    # O(support vectors x margin rows) for the sparse changes, not O(n^2)
    assert peak < n * n * 8 / 2, f"peak {peak / 2**20:.0f} MiB"
    j, i = np.unravel_index(np.argmax(np.abs(influence)), influence.shape)
    keep = np.arange(n) != i
    refit = SVC(kernel="rbf", gamma=0.1, C=1.0, tol=1e-8).fit(X[keep], y[keep])
    actual = refit.decision_function(Xt[j : j + 1])[0] - est.decision_function(Xt[j : j + 1])[0]
    # measured: predicted -0.156, actual -0.100 (first order; "path" is exact)
    assert 0.5 < actual / -influence[j, i] < 1.0


# ----------------------------------------------- Figure 2 on an SVM fit
def test_agreement_display_from_result():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from skinfluence.plotting import AgreementDisplay

    X, y, Xte, yte = digits17()
    est = SVC(kernel="rbf", gamma=0.05, **TIGHT).fit(X, y)
    exp = InfluenceExplainer(est).fit(X, y)
    result = leave_one_out(exp, Xte[:2], yte[:2], rows=8, n_jobs=1)
    disp = AgreementDisplay.from_result(result, name="active set")
    assert disp.figure_ is disp.ax_.figure
    np.testing.assert_array_equal(disp.scatter_.get_offsets()[:, 0], result.predicted.ravel())
    legend = [t.get_text() for t in disp.ax_.get_legend().get_texts()]
    assert any(f"{result.agreement.pearson:.3f}" in t for t in legend)
    _, ax = plt.subplots()
    disp2 = AgreementDisplay.from_explainer(exp, Xte[:2], yte[:2], rows=5, ax=ax, n_jobs=1)
    assert disp2.ax_ is ax and disp2.agreement.n == 10
    plt.close("all")


# ------------------------------------- kernel conventions and refusals
def test_kernel_ridge_callable_kernel():
    X, y, _, _ = diabetes()
    X, y = X[:60], y[:60]

    def kernel(a, b):  # KernelRidge's contract: two 1-d rows -> a number
        return float(np.exp(-0.1 * np.sum((a - b) ** 2)))

    est = KernelRidge(alpha=1.0, kernel=kernel).fit(X, y)
    exp = InfluenceExplainer(est).fit(X, y)
    np.testing.assert_allclose(np.asarray(exp.state_.z)[:, 0], est.predict(X), atol=1e-8)


def test_kernel_ridge_named_kernel_ignores_kernel_params():
    X, y, _, _ = diabetes()
    est = KernelRidge(alpha=1.0, kernel="laplacian", kernel_params={"gamma": 0.3}).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # a laplacian kernel ridge has high-leverage rows: that advice is not
        # about kernel_params
        warnings.filterwarnings("ignore", "the first-order estimate understates")
        exp = InfluenceExplainer(est).fit(X, y)
    np.testing.assert_allclose(np.asarray(exp.state_.z)[:, 0], est.predict(X), atol=1e-8)


@pytest.mark.parametrize("hinge", ["active_set", "smoothed"])
def test_indefinite_sigmoid_kernel_is_exact_or_refused(hinge):
    X, y, _, _ = digits17()
    est = SVC(kernel="sigmoid", gamma=0.01, coef0=-1.0, **TIGHT).fit(X[:200], y[:200])
    try:
        exp = InfluenceExplainer(est, hinge=hinge).fit(X[:200], y[:200])
    except ValueError as err:  # a clear refusal is fine
        assert "kernel" in str(err)
        return
    np.testing.assert_allclose(
        np.asarray(exp.state_.z)[:, 0], est.decision_function(X[:200]), atol=1e-6
    )
