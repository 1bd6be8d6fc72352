"""Training objectives built from fitted estimators (``skinfluence.objectives``).

For every supported family, solver and weighting option (the ``family_case``
table in ``conftest.py``):

* the objective equals scikit-learn's own objective up to a positive factor
  (influence functions are invariant to that factor), computed with
  scikit-learn's loss code where it has one;
* the fitted parameters are its optimum (a wrong ``C`` / ``alpha`` / weight
  factor would move the optimum, see the negative control);
* gradient, Hessian, Hessian-vector products, Hessian diagonal and per-row
  gradients agree with central finite differences and with each other;
* parameter layout, test losses and prediction functions reproduce the
  estimator's own ``decision_function`` / ``predict`` / ``predict_proba``.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import sklearn
from sklearn._loss.loss import HalfBinomialLoss, HalfMultinomialLoss, HalfPoissonLoss
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
from sklearn.linear_model._huber import _huber_loss_and_gradient
from sklearn.linear_model._linear_loss import LinearModelLoss
from sklearn.linear_model._sgd_fast import ModifiedHuber as SkModifiedHuber
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight
from sklearn.utils.fixes import parse_version

from skinfluence.objectives._registry import spec_for


def _perturbed(theta0, seed=0, size=0.05):
    """A point near the fit where the gradient is far from zero; the relative
    perturbation keeps HuberRegressor's scale positive."""
    rng = np.random.RandomState(seed)
    return theta0 + size * rng.standard_normal(theta0.shape) * (np.abs(theta0) + 0.1)


@pytest.fixture
def problem(family_case, objective):
    spec, obj = objective(
        family_case.estimator, family_case.X, family_case.y, family_case.sample_weight
    )
    theta0 = np.asarray(spec.theta(), dtype=float)
    return spec, obj, theta0, _perturbed(theta0)


# ------------------------------------------------------- finite differences


def test_gradient_matches_finite_differences(problem, numdiff):
    _, obj, _, theta = problem
    grad = np.asarray(obj.at(theta).gradient())
    fd = numdiff.gradient(obj.value, theta, eps=1e-4)
    assert np.linalg.norm(grad) > 1e-3  # away from the optimum: a real check
    assert np.linalg.norm(fd - grad) <= 1e-6 * np.linalg.norm(grad)


def test_hessian_matches_finite_differences_of_gradient(problem, numdiff):
    _, obj, _, theta = problem
    H = np.asarray(obj.at(theta).hessian())
    fd = numdiff.jacobian(lambda t: np.asarray(obj.at(t).gradient()), theta, eps=1e-6)
    assert H.shape == (theta.size, theta.size)
    np.testing.assert_allclose(H, H.T, rtol=0, atol=1e-10 * np.abs(H).max())
    assert np.linalg.norm(fd - H) <= 1e-6 * np.linalg.norm(H)


def test_hvp_and_diagonal_match_dense_hessian(problem):
    _, obj, theta0, theta = problem
    for point in (theta0, theta):
        state = obj.at(point)
        H = np.asarray(state.hessian())
        V = np.random.RandomState(1).standard_normal((point.size, 3))
        HV = np.asarray(state.hvp(V))
        assert HV.shape == (point.size, 3)
        np.testing.assert_allclose(HV, H @ V, rtol=1e-10, atol=1e-10 * np.abs(H @ V).max())
        np.testing.assert_allclose(
            np.asarray(state.hessian_diagonal()), np.diag(H), rtol=1e-10, atol=1e-12
        )


def test_row_subset_hvps_add_up_to_the_full_product(problem):
    """``hvp_rows`` over a partition of the rows (each without the penalty
    once too many) adds up to ``hvp``; ``scale`` multiplies the data part."""
    _, obj, _, theta = problem
    state = obj.at(theta)
    n = state.design.n_samples
    V = np.random.RandomState(2).standard_normal((theta.size, 2))
    first, second = np.arange(0, n, 2), np.arange(1, n, 2)
    penalty = np.asarray(state.hvp_rows(V, np.array([], dtype=int)))
    total = np.asarray(state.hvp_rows(V, first)) + np.asarray(state.hvp_rows(V, second))
    full = np.asarray(state.hvp(V))
    np.testing.assert_allclose(total - penalty, full, rtol=1e-10, atol=1e-10 * np.abs(full).max())
    doubled = np.asarray(state.hvp_rows(V, first, scale=2.0))
    np.testing.assert_allclose(
        doubled - penalty,
        2.0 * (np.asarray(state.hvp_rows(V, first)) - penalty),
        rtol=1e-10,
        atol=1e-10 * np.abs(full).max(),
    )


def test_row_gradients_sum_to_the_gradient(problem):
    """``sum_i g_i + lambda_0 R theta = grad F``, at the fit and away from it.

    With ``class_weight="balanced"`` removing a row also reweights the others,
    so the removable terms do not add up to ``F``; there only the factored
    and dense forms are compared (the removal itself is checked by
    ``test_row_gradient_is_what_removing_the_row_removes``)."""
    _, obj, theta0, theta = problem
    for point in (theta0, theta):
        state = obj.at(point)
        G = np.asarray(state.row_gradients().dense())
        assert G.shape == (state.design.n_samples, point.size)
        fixed = obj.strength * np.asarray(obj.regularizer.matvec(point))
        grad = np.asarray(state.gradient())
        scale = np.abs(G).sum(axis=0).max()
        if obj.reweighting is None:
            np.testing.assert_allclose(G.sum(axis=0) + fixed, grad, rtol=0, atol=1e-12 * scale)
        # the factored form gives the same products
        V = np.random.RandomState(3).standard_normal((point.size, 2))
        np.testing.assert_allclose(
            np.asarray(state.row_gradients().dot(V)), G @ V, rtol=1e-10, atol=1e-10 * scale
        )


def test_row_gradient_is_what_removing_the_row_removes(family_case, objective):
    """``g_i`` is the gradient of the term that leave-one-out retraining drops:
    ``grad F(theta) - grad F_{-i}(theta)`` with ``F_{-i}`` the objective the
    same estimator minimises without row ``i`` (per-row penalty shares of mean
    losses and row-dependent class weights included)."""
    case = family_case
    spec, obj = objective(case.estimator, case.X, case.y, case.sample_weight)
    theta = _perturbed(np.asarray(spec.theta(), dtype=float))
    state = obj.at(theta)
    G = np.asarray(state.row_gradients().dense())
    grad = np.asarray(state.gradient())
    for i in (0, 7, len(case.y) - 1):
        keep = np.arange(len(case.y)) != i
        sw = None if case.sample_weight is None else case.sample_weight[keep]
        _, obj_without = objective(case.estimator, case.X[keep], case.y[keep], sw)
        removed = grad - np.asarray(obj_without.at(theta).gradient())
        np.testing.assert_allclose(
            G[i], removed, rtol=1e-8, atol=1e-10 * np.abs(grad).max(), err_msg=f"row {i}"
        )


# ------------------------------------------------- the estimator's optimum


def test_fitted_parameters_are_stationary(family_case, objective, stationarity):
    """One Newton step from the fitted parameters to the optimum of the
    objective skinfluence builds is negligible: scikit-learn minimised that
    objective (same loss, scaling, weights and penalty)."""
    case = family_case
    spec, obj = objective(case.estimator, case.X, case.y, case.sample_weight)
    distance = stationarity(obj.at(np.asarray(spec.theta(), dtype=float)))
    assert distance <= case.stationarity_tol, f"{case.name}: Newton step {distance:.3g}"


@pytest.mark.parametrize(
    "name, attribute",
    [
        ("logreg-bin-newton-cg", "row_scale"),  # C
        ("logreg-multi-newton-cg", "row_scale"),
        ("ridge-auto", "coef_penalty"),  # alpha
        ("ridgeclf-bin", "coef_penalty"),
        ("sgdclf-log-loss", "share_scale"),  # alpha shared per row
        ("sgdreg-squared-error", "share_scale"),
        ("poisson-newton-cholesky-weighted", "share_scale"),
        ("huber-weighted", "coef_penalty"),
    ],
)
def test_stationarity_detects_a_wrong_objective_scaling(name, attribute, family, stationarity, xp):
    """Negative control for the test above: the same check on an objective
    whose data/penalty balance is off by a factor of 2 fails clearly."""
    case = family(name)
    spec = spec_for(case.estimator)
    setattr(spec, attribute, 2.0 * np.asarray(getattr(spec, attribute)))
    obj = spec.objective(case.X, case.y, case.sample_weight, xp)
    distance = stationarity(obj.at(np.asarray(spec.theta(), dtype=float)))
    assert distance > 5 * case.stationarity_tol


# --------------------------------------- scikit-learn's objective, independently


def _class_index(est, y):
    return np.searchsorted(est.classes_, y)


#: scikit-learn 1.6 made multiclass newton-cholesky multinomial (one-vs-rest before)
MULTINOMIAL_NEWTON_CHOLESKY = parse_version(sklearn.__version__) >= parse_version("1.6")


def _logistic_reference(est, X, y, sw):
    """scikit-learn's LogisticRegression objective through its own
    ``LinearModelLoss``: ``mean_sw(loss) + ||W||^2 / (2 C sum(sw))``, with class
    weights folded into the sample weights as ``LogisticRegression.fit`` does."""
    classes = est.classes_
    if est.class_weight is not None:
        # scikit-learn >= 1.6 balances by sample weight, 1.5 by row counts
        by_weight = "sample_weight" in inspect.signature(compute_class_weight).parameters
        extra = {"sample_weight": sw} if by_weight else {}
        cw = compute_class_weight(est.class_weight, classes=classes, y=y, **extra)
        sw = sw * cw[_class_index(est, y)]
    C = float(est.C)
    l2 = 0.0 if np.isinf(C) else 1.0 / (C * sw.sum())
    factor = sw.sum() if np.isinf(C) else C * sw.sum()
    K = len(classes)
    p1 = X.shape[1] + int(est.fit_intercept)
    if est.solver == "liblinear":  # intercept penalised as a feature of value intercept_scaling
        s = 2.0 * (y == classes[1]) - 1.0

        def liblinear(theta):
            w, b = (theta[:-1], theta[-1]) if est.fit_intercept else (theta, 0.0)
            z = X @ w + b
            loss = C * np.sum(sw * np.logaddexp(0.0, -s * z))
            return loss + 0.5 * (w @ w + (b / est.intercept_scaling) ** 2)

        return liblinear, 1.0
    if K == 2:
        loss = LinearModelLoss(HalfBinomialLoss(), est.fit_intercept)
        target = (y == classes[1]).astype(float)
        shape = (p1,)
    elif est.solver == "newton-cholesky" and not MULTINOMIAL_NEWTON_CHOLESKY:
        # one binary problem per class (one-vs-rest), summed
        binary = LinearModelLoss(HalfBinomialLoss(), est.fit_intercept)
        idx = _class_index(est, y)

        def ovr(theta):
            T = theta.reshape(K, p1)
            targets = [(idx == k).astype(float) for k in range(K)]
            return sum(binary.loss(T[k], X, targets[k], sw, l2_reg_strength=l2) for k in range(K))

        return ovr, factor
    else:
        loss = LinearModelLoss(HalfMultinomialLoss(n_classes=K), est.fit_intercept)
        target = _class_index(est, y).astype(float)
        shape = (K, p1)
    return (
        lambda theta: loss.loss(theta.reshape(shape), X, target, sw, l2_reg_strength=l2),
        factor,
    )


def _least_squares_reference(est, X, y, sw):
    """``sum_i s_i ||y_i - z_i||^2 + alpha ||W||^2`` (RidgeClassifier on
    {-1, +1} indicators, class weights as ``compute_sample_weight``)."""
    alpha = float(getattr(est, "alpha", 0.0))
    if isinstance(est, RidgeClassifier):
        K = len(est.classes_)
        Y = 2.0 * np.eye(K)[_class_index(est, y)] - 1.0
        if K == 2:
            Y = Y[:, 1:]
        if est.class_weight is not None:
            sw = sw * compute_sample_weight(est.class_weight, y)
    else:
        Y = y[:, None]
    K, p = Y.shape[1], X.shape[1]
    p1 = p + int(est.fit_intercept)

    def value(theta):
        T = theta.reshape(K, p1)
        Z = X @ T[:, :p].T + (T[:, p] if est.fit_intercept else 0.0)
        return np.sum(sw[:, None] * (Y - Z) ** 2) + alpha * np.sum(T[:, :p] ** 2)

    return value, 1.0


def _sgd_reference(est, X, y, sw):
    """SGD's objective ``(1/n) sum_i s_i c_i L(y_i, z_i) + alpha ||W||^2 / 2``;
    multiclass is one-vs-rest where ``fit`` weighs the positives of class k by
    ``class_weight[k]`` and its negatives by 1."""
    n, p = X.shape
    alpha = float(est.alpha)
    if isinstance(est, SGDRegressor):
        eps = float(est.epsilon)

        def pointwise(r):
            a = np.abs(r)
            if est.loss == "huber":
                return np.where(a <= eps, 0.5 * a**2, eps * a - 0.5 * eps**2)
            return 0.5 * r**2

        def value(theta):
            r = y - X @ theta[:p] - theta[p]
            return np.sum(sw * pointwise(r)) / n + 0.5 * alpha * theta[:p] @ theta[:p]

        return value, float(n)

    classes = est.classes_
    K = 1 if len(classes) == 2 else len(classes)
    cw = compute_class_weight(est.class_weight, classes=classes, y=y)
    idx = _class_index(est, y)
    if K == 1:
        S = (2.0 * idx - 1.0)[:, None]
        C = cw[idx][:, None]
    else:
        S = 2.0 * np.eye(K)[idx] - 1.0
        C = np.where(S > 0, cw[None, :], 1.0)
    mh = SkModifiedHuber()

    def pointwise(m):
        if est.loss == "log_loss":
            return np.logaddexp(0.0, -m)
        return np.vectorize(lambda v: mh.py_loss(v, 1.0))(m)

    def value(theta):
        T = theta.reshape(K, p + 1)
        Z = X @ T[:, :p].T + T[:, p]
        data = np.sum(sw[:, None] * C * pointwise(S * Z)) / n
        return data + 0.5 * alpha * np.sum(T[:, :p] ** 2)

    return value, float(n)


def sklearn_objective(est, X, y, sample_weight):
    """``(f, c)``: scikit-learn's objective ``f(theta)`` and the factor ``c``
    with ``F = c f + const`` for skinfluence's objective ``F``."""
    sw = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, float)
    if isinstance(est, LogisticRegression):
        return _logistic_reference(est, X, y, sw)
    if isinstance(est, (LinearRegression, Ridge, RidgeClassifier)):
        return _least_squares_reference(est, X, y, sw)
    if isinstance(est, (SGDClassifier, SGDRegressor)):
        return _sgd_reference(est, X, y, sw)
    if isinstance(est, PoissonRegressor):
        loss = LinearModelLoss(HalfPoissonLoss(), est.fit_intercept)
        return (lambda t: loss.loss(t, X, y, sw, l2_reg_strength=float(est.alpha))), sw.sum()
    if isinstance(est, HuberRegressor):
        return (
            lambda t: _huber_loss_and_gradient(t, X, y, est.epsilon, est.alpha, sw)[0],
            1.0,
        )
    raise TypeError(type(est).__name__)


def test_objective_is_scikit_learns_objective(problem, family_case):
    """``F(a) - F(b) = c (f(a) - f(b))`` at points around the fit."""
    _, obj, theta0, _ = problem
    case = family_case
    f, c = sklearn_objective(case.estimator, case.X, case.y, case.sample_weight)
    points = [theta0] + [_perturbed(theta0, seed=s, size=0.2) for s in range(3)]
    ours = np.array([obj.value(t) for t in points])
    theirs = c * np.array([f(t) for t in points])
    np.testing.assert_allclose(
        ours[1:] - ours[0], theirs[1:] - theirs[0], rtol=1e-8, atol=1e-10 * np.abs(ours).max()
    )


# ------------------------------------------------ layout and test functions


def _raw_outputs(est, X):
    """The estimator's own raw prediction: decision function, linear
    predictor (log of a Poisson mean) or prediction."""
    if hasattr(est, "decision_function"):
        z = est.decision_function(X)
    elif isinstance(est, PoissonRegressor):
        z = np.log(est.predict(X))
    else:
        z = est.predict(X)
    return z.reshape(len(X), -1)


def test_parameters_and_design_reproduce_the_estimator(family_case, objective, xp):
    """``spec.theta()`` and the design give the estimator's own outputs
    (liblinear's ``intercept_scaling`` included); HuberRegressor's second
    output is its fitted scale."""
    case = family_case
    spec, obj = objective(case.estimator, case.X, case.y, case.sample_weight)
    z = np.asarray(spec.make_design(case.X, xp).predict(np.asarray(spec.theta())))
    expected = _raw_outputs(case.estimator, case.X)
    np.testing.assert_allclose(z[:, : expected.shape[1]], expected, rtol=1e-10, atol=1e-10)
    if isinstance(case.estimator, HuberRegressor):
        np.testing.assert_allclose(z[:, 1], case.estimator.scale_)


def test_test_loss_matches_the_estimators_outputs(family_case, objective, oracle, xp):
    """The test loss is the log-loss of ``predict_proba``, else the model's
    own loss of its decision function, else the squared error of ``predict``."""
    case = family_case
    spec, _ = objective(case.estimator, case.X, case.y, case.sample_weight)
    X, y = case.X[:30], case.y[:30]
    z = spec.make_design(X, xp).predict(np.asarray(spec.theta()))
    np.testing.assert_allclose(
        np.asarray(spec.test_loss.value(spec.encode(y), z)),
        oracle.quantity(case.estimator, X, y, "loss"),
        rtol=1e-9,
        atol=1e-12,
    )


@pytest.mark.parametrize(
    "name",
    [
        "logreg-bin-newton-cg",
        "logreg-multi-newton-cg",
        "sgdclf-log-loss",
        "sgdclf-log-loss-multi",
        "sgdclf-modified-huber",
        "ridgeclf-bin",
        "ridgeclf-multi-weighted",
        "linreg",
        "poisson-lbfgs",
        "huber",
    ],
)
def test_prediction_function_matches_the_estimators_outputs(name, family, objective, oracle, xp):
    """``target="prediction"`` differentiates the predicted probability of
    class ``y`` (binary too: P(y=0) for rows labelled 0), else the decision
    function of class ``y``, else the prediction."""
    case = family(name)
    spec, _ = objective(case.estimator, case.X, case.y, case.sample_weight)
    X, y = case.X[:30], case.y[:30]
    z = spec.make_design(X, xp).predict(np.asarray(spec.theta()))
    np.testing.assert_allclose(
        np.asarray(spec.prediction.value(spec.prediction_targets(y, len(y)), z)),
        oracle.quantity(case.estimator, X, y, "prediction"),
        rtol=1e-9,
        atol=1e-12,
    )


# ---------------------------------------------------------------- null space


@pytest.mark.parametrize(
    "name, n_null",
    [
        ("logreg-multi-newton-cg", 1),  # intercepts unpenalised
        ("logreg-multi-no-penalty", 3),  # every column unpenalised (2 features + intercept)
        ("logreg-bin-newton-cg", 0),  # binary: no over-parameterisation
        ("ridgeclf-multi-weighted", 0),  # squared error is not shift invariant
        ("sgdclf-log-loss-multi", 0),  # one-vs-rest
    ],
)
def test_multinomial_null_space(name, n_null, family, objective):
    """The softmax is over-parameterised: adding the same vector to every
    class's unpenalised parameters changes neither predictions nor ``F``."""
    case = family(name)
    spec, obj = objective(case.estimator, case.X, case.y, case.sample_weight)
    N = obj.null_space()
    if n_null == 0:
        assert N is None
        return
    N = np.asarray(N)
    assert N.shape == (obj.n_params, n_null)
    np.testing.assert_allclose(N.T @ N, np.eye(n_null), atol=1e-12)
    theta = np.asarray(spec.theta(), dtype=float)
    state = obj.at(theta)
    H = np.asarray(state.hessian())
    np.testing.assert_allclose(H @ N, 0.0, atol=1e-10 * np.abs(H).max())
    np.testing.assert_allclose(N.T @ np.asarray(state.gradient()), 0.0, atol=1e-8)
    shifted = theta + 3.0 * N.sum(axis=1)
    assert obj.value(shifted) == pytest.approx(obj.value(theta), rel=1e-12)
    # and the directions are the only flat ones: H + N N^T is definite
    assert np.linalg.eigvalsh(H + N @ N.T).min() > 1e-8 * np.abs(H).max()


def test_multinomial_without_intercept_has_no_null_space(data, objective):
    split = data("wine")
    est = LogisticRegression(fit_intercept=False, tol=1e-10).fit(split.X_train, split.y_train)
    _, obj = objective(est, split.X_train, split.y_train)
    assert obj.null_space() is None
