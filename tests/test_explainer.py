"""``InfluenceExplainer`` against real retraining and against itself.

Accuracy is measured against leave-one-out retraining done here, with
scikit-learn only (``oracle`` fixture): the estimator is cloned, refitted
without a row, and its test quantity read from ``predict_proba`` /
``decision_function`` / ``predict``. The remaining tests check identities
that hold exactly (duplicated rows, pipelines, data frames, solvers, blocks,
the dense formula) and derivatives against finite-difference refits.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
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
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skinfluence import InfluenceExplainer, NotAtOptimumWarning


def _lr(**kw):
    params = {"C": 1.0, "solver": "newton-cg", "tol": 1e-10, "max_iter": 1000}
    params.update(kw)
    return LogisticRegression(**params)


def _fit(estimator, X, y, sample_weight=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y, sample_weight=sample_weight)


# ------------------------------------------------------------ leave-one-out

#: name -> (estimator factory, data set, min Pearson plain, min Pearson newton,
#:          whether the Newton step must bring the slope closer to 1)
LOO_CASES = {
    "logreg-digits-1v7": (lambda: _lr(), "digits_1v7", 0.99, 0.99, True),
    "logreg-digits-10class": (lambda: _lr(), "digits_10", 0.99, 0.99, True),
    # breast cancer's most influential rows have high leverage (plain slope
    # 1.36 to 1.54): the first-order estimate is less accurate there, the
    # Newton step is not (measured plain 0.980, newton 0.9996 to 0.9999)
    "logreg-breast-cancer": (lambda: _lr(C=0.1), "breast_cancer", 0.97, 0.99, True),
    "logreg-liblinear-breast-cancer": (
        lambda: _lr(C=0.1, solver="liblinear", intercept_scaling=10.0),
        "breast_cancer",
        0.97,
        0.99,
        True,
    ),
    "ridge-diabetes": (lambda: Ridge(alpha=0.1), "diabetes", 0.99, 0.99, True),
    "linreg-diabetes": (lambda: LinearRegression(), "diabetes", 0.99, 0.99, True),
    "ridgeclf-breast-cancer": (
        lambda: RidgeClassifier(alpha=1.0),
        "breast_cancer",
        0.97,
        0.99,
        True,
    ),
    "ridgeclf-wine": (lambda: RidgeClassifier(alpha=1.0), "wine", 0.99, 0.99, True),
    "poisson-diabetes": (
        lambda: PoissonRegressor(alpha=0.01, solver="newton-cholesky", tol=1e-12),
        "diabetes_counts",
        0.99,
        0.99,
        True,
    ),
    "huber-diabetes": (
        lambda: HuberRegressor(alpha=1.0, epsilon=2.0, tol=1e-10, max_iter=10_000),
        "diabetes_std",
        0.99,
        0.99,
        False,
    ),
}


def _loo_agreement(estimator, split, oracle, *, target="loss", k=25, n_test=3):
    """Plain and Newton estimates vs actual retraining over the ``k`` most
    influential training rows of the hardest test rows."""
    X, y = split.X_train, split.y_train
    test = oracle.hardest_test_rows(estimator, split.X_test, split.y_test, n_test)
    Xt, yt = split.X_test[test], split.y_test[test]
    plain = InfluenceExplainer(estimator).fit(X, y)
    newton = InfluenceExplainer(estimator, approximation="newton").fit(X, y)
    I_plain = plain.influence(Xt, yt, target=target)
    rows = np.argsort(-np.abs(I_plain).sum(axis=0), kind="stable")[:k]
    actual = oracle.loo_changes(estimator, X, y, Xt, yt, rows, target)
    pred_plain = -I_plain[:, rows]
    pred_newton = -newton.influence(Xt, yt, target=target)[:, rows]
    stats = {
        "plain": (oracle.pearson(pred_plain, actual), oracle.slope(pred_plain, actual)),
        "newton": (oracle.pearson(pred_newton, actual), oracle.slope(pred_newton, actual)),
    }
    return stats, actual


@pytest.mark.parametrize("name", sorted(LOO_CASES))
def test_influence_predicts_leave_one_out_retraining(name, data, oracle):
    """Koh & Liang's Figure 2: removing the most influential rows of the
    hardest (misclassified / highest-loss) test rows and refitting changes
    their loss as predicted."""
    factory, dataset, plain_min, newton_min, newton_closer = LOO_CASES[name]
    split = data(dataset)
    est = _fit(factory(), split.X_train, split.y_train)
    stats, actual = _loo_agreement(est, split, oracle)
    (p_plain, s_plain), (p_newton, s_newton) = stats["plain"], stats["newton"]
    assert np.abs(actual).max() > 0  # the rows matter
    assert p_plain >= plain_min
    assert p_newton >= newton_min
    assert 0.5 < s_plain < 2.0
    if newton_closer:
        assert abs(s_newton - 1.0) < abs(s_plain - 1.0)


@pytest.mark.parametrize(
    "name, factory, dataset",
    [
        ("ridge", lambda: Ridge(alpha=0.1), "diabetes"),
        ("linreg", lambda: LinearRegression(), "diabetes"),
        ("ridgeclf-binary", lambda: RidgeClassifier(alpha=1.0), "breast_cancer"),
        ("ridgeclf-multiclass", lambda: RidgeClassifier(alpha=1.0), "wine"),
    ],
)
def test_newton_step_is_exact_for_least_squares_predictions(name, factory, dataset, data, oracle):
    """For least squares, removing a row is a rank-one (rank-K) update of the
    normal equations: the Newton step gives the refitted prediction exactly."""
    split = data(dataset)
    est = _fit(factory(), split.X_train, split.y_train)
    rows = np.random.RandomState(0).choice(len(split.y_train), 20, replace=False)
    Xt, yt = split.X_test[:5], split.y_test[:5]
    exp = InfluenceExplainer(est, approximation="newton").fit(split.X_train, split.y_train)
    predicted = -exp.influence(Xt, yt, target="prediction")[:, rows]
    actual = oracle.loo_changes(est, split.X_train, split.y_train, Xt, yt, rows, "prediction")
    np.testing.assert_allclose(predicted, actual, rtol=1e-6, atol=1e-9 * np.abs(actual).max())
    assert oracle.slope(predicted, actual) == pytest.approx(1.0, abs=1e-6)
    # the plain influence function is only first order there
    plain = (
        -InfluenceExplainer(est)
        .fit(split.X_train, split.y_train)
        .influence(Xt, yt, target="prediction")[:, rows]
    )
    assert np.abs(plain - actual).max() > 1e3 * np.abs(predicted - actual).max()


def _sgd_classifier(loss):
    return SGDClassifier(loss=loss, alpha=0.05, tol=None, max_iter=1000, random_state=0)


def _sgd_regressor(loss):
    return SGDRegressor(
        loss=loss, epsilon=1.0, alpha=0.05, eta0=1e-3, tol=None, max_iter=1000, random_state=0
    )


@pytest.mark.parametrize(
    "factory, dataset",
    [
        (lambda: _sgd_classifier("log_loss"), "breast_cancer"),
        (lambda: _sgd_classifier("modified_huber"), "breast_cancer"),
        (lambda: _sgd_regressor("squared_error"), "diabetes_std"),
        (lambda: _sgd_regressor("huber"), "diabetes_std"),
    ],
    ids=["sgdclf-log-loss", "sgdclf-modified-huber", "sgdreg-squared-error", "sgdreg-huber"],
)
def test_sgd_influence_correlates_with_retraining(factory, dataset, data, oracle):
    """SGD stops near, not at, its optimum (relative Newton distance ~1e-4 to
    1e-3, test_objectives), and so does every refit: the measured changes
    carry optimisation noise of the order of the weaker single-row effects
    (1/n ~ 3e-3). The Newton estimate is held to 0.98 instead of 0.99. The
    plain estimate also carries breast cancer's high-leverage first-order
    error (as for LogisticRegression there; measured 0.93 to 0.9996), so 0.9."""
    split = data(dataset)
    est = _fit(factory(), split.X_train, split.y_train)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotAtOptimumWarning)  # near enough to the optimum
        stats, _ = _loo_agreement(est, split, oracle, k=20)
    assert stats["plain"][0] >= 0.9
    assert stats["newton"][0] >= 0.98


@pytest.mark.parametrize(
    "estimator, dataset",
    [
        (SGDClassifier(loss="log_loss", max_iter=1, tol=None, random_state=0), "breast_cancer"),
        (SGDRegressor(max_iter=1, tol=None, random_state=0), "diabetes_std"),
        (LogisticRegression(max_iter=1), "breast_cancer"),
        (PoissonRegressor(max_iter=1), "diabetes_counts"),
    ],
    ids=["sgdclf", "sgdreg", "logreg", "poisson"],
)
def test_badly_converged_model_warns(estimator, dataset, data):
    split = data(dataset)
    est = _fit(estimator, split.X_train, split.y_train)
    with pytest.warns(NotAtOptimumWarning, match="not at the optimum"):
        exp = InfluenceExplainer(est).fit(split.X_train, split.y_train)
    assert exp.stationarity_ > 1e-3


def test_explaining_with_other_weights_than_the_fit_warns(family):
    case = family("logreg-bin-weighted")
    with pytest.warns(NotAtOptimumWarning):
        InfluenceExplainer(case.estimator).fit(case.X, case.y)  # sample_weight forgotten
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotAtOptimumWarning)
        InfluenceExplainer(case.estimator).fit(case.X, case.y, sample_weight=case.sample_weight)


def test_converged_families_do_not_warn(family_case):
    """No false alarm for any converged fit in the family table (SGD included)."""
    case = family_case
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotAtOptimumWarning)
        exp = InfluenceExplainer(case.estimator).fit(case.X, case.y, case.sample_weight)
    assert exp.stationarity_ < 1e-3


def test_balanced_class_weights_predict_retraining(data, oracle):
    """``class_weight="balanced"`` is recomputed when a row is removed (every
    row of its class gets a larger weight): leave-one-out retraining with the
    same hyper-parameters does that, so the estimate must too. Random rows,
    where the plain estimate is otherwise near exact (fixed class weights:
    Pearson 0.9997)."""
    split = data("breast_cancer")
    X, y = split.X_train, split.y_train
    est = _fit(_lr(C=0.1, class_weight="balanced"), X, y)
    test = oracle.hardest_test_rows(est, split.X_test, split.y_test, 3)
    Xt, yt = split.X_test[test], split.y_test[test]
    rows = np.random.RandomState(0).choice(len(y), 30, replace=False)
    predicted = -InfluenceExplainer(est).fit(X, y).influence(Xt, yt)[:, rows]
    actual = oracle.loo_changes(est, X, y, Xt, yt, rows)
    assert oracle.pearson(predicted, actual) >= 0.99


# -------------------------------------------------- exact identities


@pytest.mark.parametrize(
    "factory",
    [
        lambda: _lr(C=0.5),
        lambda: _lr(C=0.5, class_weight={0: 2.0, 1: 1.0}),
        lambda: Ridge(alpha=1.0),
        lambda: PoissonRegressor(alpha=0.05, solver="newton-cholesky", tol=1e-12),
        lambda: HuberRegressor(alpha=1e-2, tol=1e-10, max_iter=10_000),
    ],
    ids=["logreg", "logreg-class-weight", "ridge", "poisson", "huber"],
)
def test_sample_weight_two_equals_a_duplicated_row(factory, data):
    """A row of weight 2 and the same row twice define the same objective:
    removing the weighted row equals removing both copies; every other row
    has the same influence in both models."""
    name = factory().__class__.__name__
    dataset = {"LogisticRegression": "breast_cancer", "PoissonRegressor": "diabetes_counts"}
    split = data(dataset.get(name, "diabetes_std"))
    X, y = split.X_train[:120], split.y_train[:120]
    i = 5
    sw = np.ones(len(y))
    sw[i] = 2.0
    X_dup, y_dup = np.vstack([X, X[i : i + 1]]), np.append(y, y[i])
    weighted = _fit(factory(), X, y, sw)
    duplicated = _fit(factory(), X_dup, y_dup)
    if isinstance(weighted, HuberRegressor):
        # L-BFGS-B stops at 1e-5 of HuberRegressor's optimum (test_objectives)
        np.testing.assert_allclose(weighted.coef_, duplicated.coef_, rtol=1e-4, atol=1e-5)
        rtol = 1e-3
    else:
        np.testing.assert_allclose(weighted.coef_, duplicated.coef_, rtol=1e-7, atol=1e-9)
        rtol = 1e-6
    Xt, yt = split.X_test[:6], split.y_test[:6]
    I_w = InfluenceExplainer(weighted).fit(X, y, sample_weight=sw).influence(Xt, yt)
    I_d = InfluenceExplainer(duplicated).fit(X_dup, y_dup).influence(Xt, yt)
    atol = 1e-3 * rtol * np.abs(I_w).max()
    np.testing.assert_allclose(I_d[:, i], I_d[:, -1], rtol=1e-10, atol=1e-12)  # two copies
    np.testing.assert_allclose(I_w[:, i], I_d[:, i] + I_d[:, -1], rtol=rtol, atol=atol)
    np.testing.assert_allclose(I_w[:, i], 2 * I_d[:, i], rtol=rtol, atol=atol)
    others = np.arange(len(y)) != i
    np.testing.assert_allclose(I_w[:, others], I_d[:, :-1][:, others], rtol=rtol, atol=atol)


def test_pipeline_equals_manually_transformed_features(data):
    split = data("breast_cancer")
    X, y = split.X_train * 10 + 3, split.y_train  # unscaled input for the scaler
    Xt, yt = split.X_test[:8] * 10 + 3, split.y_test[:8]
    pipe = make_pipeline(StandardScaler(), _lr(C=0.3)).fit(X, y)
    scaler, final = pipe[0], pipe[-1]
    exp_pipe = InfluenceExplainer(pipe).fit(X, y)
    exp_manual = InfluenceExplainer(final).fit(scaler.transform(X), y)
    for target in ("loss", "prediction"):
        np.testing.assert_allclose(
            exp_pipe.influence(Xt, yt, target=target),
            exp_manual.influence(scaler.transform(Xt), yt, target=target),
            rtol=1e-10,
            atol=1e-14,
        )
    np.testing.assert_allclose(exp_pipe.self_influence(), exp_manual.self_influence(), rtol=1e-10)
    np.testing.assert_allclose(
        exp_pipe.influence_features(Xt, yt, rows=[0, 3]),
        exp_manual.influence_features(scaler.transform(Xt), yt, rows=[0, 3]),
        rtol=1e-10,
        atol=1e-14,
    )


def _mixed_frame(split):
    """A data frame with numeric columns and a categorical one."""
    frame = pd.DataFrame(split.X_train[:, :5], columns=[f"num_{j}" for j in range(5)])
    frame["grade"] = pd.cut(split.X_train[:, 5], [-np.inf, -0.5, 0.5, np.inf], labels=list("abc"))
    frame["grade"] = frame["grade"].astype(str)
    return frame


@pytest.mark.parametrize("final", [_lr(C=0.3), RidgeClassifier(alpha=1.0)], ids=repr)
def test_column_transformer_pipeline_on_a_data_frame(final, data):
    split = data("breast_cancer")
    frame = _mixed_frame(split)
    y = pd.Series(split.y_train, name="target")
    numeric = [c for c in frame.columns if c.startswith("num")]
    prep = ColumnTransformer(
        [
            ("num", StandardScaler(), numeric),
            ("cat", OneHotEncoder(sparse_output=False), ["grade"]),
        ]
    )
    pipe = make_pipeline(prep, final).fit(frame, y)
    test_frame, yt = frame.iloc[:7], y.iloc[:7]
    exp_pipe = InfluenceExplainer(pipe).fit(frame, y)
    features = pipe[0].transform(frame)
    assert features.shape[1] == 5 + 3
    exp_manual = InfluenceExplainer(pipe[-1]).fit(features, y.to_numpy())
    np.testing.assert_allclose(
        exp_pipe.influence(test_frame, yt),
        exp_manual.influence(pipe[0].transform(test_frame), yt.to_numpy()),
        rtol=1e-10,
        atol=1e-14,
    )


def test_data_frame_equals_ndarray(data):
    split = data("wine")
    columns = [f"f{j}" for j in range(split.X_train.shape[1])]
    frame, test_frame = (pd.DataFrame(A, columns=columns) for A in (split.X_train, split.X_test))
    y, yt = pd.Series(split.y_train), pd.Series(split.y_test)
    est = _lr(C=0.5).fit(frame, y)
    exp_frame = InfluenceExplainer(est).fit(frame, y)
    exp_array = InfluenceExplainer(est).fit(split.X_train, split.y_train)
    np.testing.assert_array_equal(exp_frame.feature_names_in_, columns)
    np.testing.assert_allclose(
        exp_frame.influence(test_frame, yt), exp_array.influence(split.X_test, split.y_test)
    )
    np.testing.assert_allclose(exp_frame.self_influence(), exp_array.self_influence())


# ------------------------------------------------------ derived quantities


SELF_CASES = [
    "logreg-bin-newton-cg",
    "logreg-multi-newton-cg",
    "logreg-bin-liblinear-scaling10",
    "ridge-weighted",
    "ridgeclf-multi-weighted",
    "linreg",
    "poisson-newton-cholesky-weighted",
    "huber",
    "sgdclf-log-loss-multi",
    "sgdreg-weighted",
]
#: families whose test loss is their (unshared) training loss: self-influence
#: is then a quadratic form g^T H^{-1} g >= 0
NONNEGATIVE = {"logreg", "ridge", "ridgeclf", "linreg"}


@pytest.mark.parametrize("approximation", ["influence", "newton"])
@pytest.mark.parametrize("name", SELF_CASES)
def test_self_influence_is_the_diagonal(name, approximation, family):
    case = family(name)
    exp = InfluenceExplainer(case.estimator, approximation=approximation)
    exp.fit(case.X, case.y, sample_weight=case.sample_weight)
    si = exp.self_influence()
    full = exp.influence(case.X, case.y)
    assert si.shape == (len(case.y),)
    np.testing.assert_allclose(si, -np.diag(full), rtol=1e-9, atol=1e-12 * np.abs(full).max())
    # "balanced" class weights: removing a row reweights its class, so g_i is
    # no longer the test-loss gradient and the quadratic form argument fails
    balanced = getattr(exp.spec_.estimator, "class_weight", None) == "balanced"
    if name.split("-")[0] in NONNEGATIVE and not balanced:
        assert si.min() >= -1e-12 * si.max()
        assert si.max() > 0
    # training_loss + self_influence is the linearisation of the test loss at
    # the fitted outputs; where that loss is convex in the outputs (all but
    # Poisson's squared error of exp(z)), the leave-one-out loss (the loss at
    # the shifted outputs) lies on or above it
    linear = exp.training_loss() + si
    if not name.startswith("poisson"):
        assert np.all(exp.leave_one_out_loss() >= linear - 1e-9 * np.abs(linear).max())


def test_training_loss_matches_the_estimator(family_case, oracle):
    case = family_case
    exp = InfluenceExplainer(case.estimator).fit(case.X, case.y, case.sample_weight)
    np.testing.assert_allclose(
        exp.training_loss(), oracle.quantity(case.estimator, case.X, case.y), rtol=1e-9, atol=1e-12
    )


def test_leave_one_out_loss_predicts_the_held_out_loss(data, oracle):
    """``leave_one_out_loss`` (Newton) is the row's loss under the model
    refitted without it, also for the worst-fitted rows, where its
    linearisation ``training_loss + self_influence`` falls short."""
    split = data("digits_1v7")
    X, y = split.X_train, split.y_train
    est = _fit(_lr(), X, y)
    exp = InfluenceExplainer(est, approximation="newton").fit(X, y)
    rows = np.argsort(-exp.self_influence())[:15]
    actual = np.array(
        [
            oracle.quantity(oracle.refit_without(est, X, y, [i]), X[i : i + 1], y[i : i + 1])[0]
            for i in rows
        ]
    )
    predicted = exp.leave_one_out_loss()[rows]
    assert oracle.pearson(predicted, actual) >= 0.99
    np.testing.assert_allclose(predicted, actual, rtol=0.1)
    linear = (exp.training_loss() + exp.self_influence())[rows]
    assert np.abs(predicted - actual).mean() < np.abs(linear - actual).mean()


@pytest.mark.parametrize("estimator", [LinearRegression(), Ridge(alpha=3.0)])
def test_newton_leave_one_out_loss_is_exact_for_least_squares(estimator, data, oracle):
    """Least squares: the Newton step is the exact refit, so the leave-one-out
    loss is the squared PRESS residual ``(e_i / (1 - h_ii))^2`` of every row."""
    split = data("diabetes")
    X, y = split.X_train[:120], split.y_train[:120]
    est = _fit(estimator, X, y)
    exp = InfluenceExplainer(est, approximation="newton").fit(X, y)
    rows = np.arange(0, 120, 7)
    actual = np.array(
        [
            oracle.quantity(oracle.refit_without(est, X, y, [i]), X[i : i + 1], y[i : i + 1])[0]
            for i in rows
        ]
    )
    np.testing.assert_allclose(exp.leave_one_out_loss()[rows], actual, rtol=1e-8)


@pytest.mark.parametrize(
    "factory, dataset",
    [
        (lambda: _lr(solver="newton-cholesky", tol=1e-12), "breast_cancer"),
        (lambda: _lr(solver="newton-cholesky", tol=1e-12), "iris"),
        (lambda: Ridge(alpha=1.0), "diabetes"),
        (
            lambda: PoissonRegressor(alpha=0.01, solver="newton-cholesky", tol=1e-12),
            "diabetes_counts",
        ),
        (lambda: HuberRegressor(alpha=1.0, tol=1e-10, max_iter=10_000), "diabetes_std"),
    ],
    ids=["logreg-binary", "logreg-multinomial", "ridge", "poisson", "huber"],
)
def test_influence_params_predict_parameter_changes(factory, dataset, data, oracle):
    """``-influence_params[i]`` is the parameter change on removing row ``i``
    (multinomial: up to the flat softmax directions, projected out; Huber:
    the scale included)."""
    split = data(dataset)
    X, y = split.X_train, split.y_train
    est = _fit(factory(), X, y)
    rows = np.arange(0, len(y), 15)
    plain = InfluenceExplainer(est).fit(X, y)
    newton = InfluenceExplainer(est, approximation="newton").fit(X, y)
    spec = plain.spec_
    theta = np.asarray(spec.theta())
    actual = np.stack(
        [np.asarray(spec.theta(oracle.refit_without(est, X, y, [i]))) - theta for i in rows]
    )
    predicted = -plain.influence_params(rows)
    assert predicted.shape == (len(rows), theta.size)
    N = plain.objective_.null_space()
    if N is not None:
        N = np.asarray(N)
        actual = actual - (actual @ N) @ N.T
        np.testing.assert_allclose(predicted @ N, 0.0, atol=1e-10 * np.abs(predicted).max())
    big = np.abs(actual) > 0.1 * np.abs(actual).max()
    for estimate in (predicted, -newton.influence_params(rows)):
        assert oracle.pearson(estimate, actual) >= 0.99
        assert np.all(np.sign(estimate[big]) == np.sign(actual[big]))
    # consistent with the influence on a test loss through the chain rule
    Xt, yt = split.X_test[:4], split.y_test[:4]
    design = spec.make_design(Xt, plain.xp_)
    T = spec.test_loss.gradient(spec.encode(yt), design.predict(theta))
    grad_test = np.asarray(design.expand(T))  # (P, n_test)
    np.testing.assert_allclose(
        plain.influence(Xt, yt)[:, rows],
        -grad_test.T @ predicted.T,
        rtol=1e-8,
        atol=1e-12 * np.abs(grad_test).max() * np.abs(predicted).max(),
    )


@pytest.mark.parametrize(
    "factory, dataset, n_fits",
    [
        (lambda: _lr(C=0.5, solver="newton-cholesky", tol=1e-12), "breast_cancer", 1),
        (lambda: _lr(C=0.5, solver="newton-cholesky", tol=1e-12), "wine", 1),
        (lambda: Ridge(alpha=1.0), "diabetes_std", 1),
        (
            lambda: PoissonRegressor(alpha=0.05, solver="newton-cholesky", tol=1e-12),
            "diabetes_counts",
            1,
        ),
        # L-BFGS-B stops HuberRegressor ~3e-5 (relative) short of the optimum,
        # and the derivative of that truncated solution differs by ~1%: polish
        # with warm-started refits down to ~1e-6
        (
            lambda: HuberRegressor(alpha=1e-2, tol=1e-12, max_iter=10_000, warm_start=True),
            "diabetes_std",
            40,
        ),
    ],
    ids=["logreg-binary", "logreg-multinomial", "ridge", "poisson", "huber"],
)
def test_influence_features_matches_finite_difference_refits(
    factory, dataset, n_fits, data, oracle
):
    """``influence_features[j, i] @ d`` is the derivative of test loss ``j``
    when training row ``i`` moves along ``d`` and the model is refitted: an
    exact derivative (implicit function theorem), checked by central
    differences of real refits."""
    split = data(dataset)
    X, y = split.X_train[:120, :6], split.y_train[:120]
    Xt, yt = split.X_test[:4, :6], split.y_test[:4]

    def refit(X_fit):
        est = factory()
        for _ in range(n_fits):
            _fit(est, X_fit, y)
        return est

    exp = InfluenceExplainer(refit(X)).fit(X, y)
    rows = [3, 50]
    IF = exp.influence_features(Xt, yt, rows=rows)
    assert IF.shape == (len(yt), len(rows), X.shape[1])
    rng = np.random.RandomState(0)
    h = 1e-4
    for c, i in enumerate(rows):
        d = rng.standard_normal(X.shape[1])
        values = []
        for sign in (1.0, -1.0):
            Xp = X.copy()
            Xp[i] += sign * h * d
            values.append(oracle.quantity(refit(Xp), Xt, yt))
        fd = (values[0] - values[1]) / (2 * h)
        tol = 1e-4 if n_fits > 1 else 1e-5
        np.testing.assert_allclose(IF[:, c] @ d, fd, rtol=tol, atol=tol * np.abs(fd).max())


@pytest.mark.parametrize(
    "name", ["logreg-multi-newton-cg", "logreg-bin-balanced", "sgdclf-log-loss"]
)
def test_most_influential_matches_argsort(name, family, oracle):
    case = family(name)
    Xt, yt = case.X[:7], case.y[:7]
    # a tiny memory budget forces blocks over test and training rows and keeps
    # the training gradients factored; the default budget holds them as a matrix
    exp = InfluenceExplainer(case.estimator, max_block_bytes=2_000).fit(case.X, case.y)
    default = InfluenceExplainer(case.estimator).fit(case.X, case.y)
    assert exp.removal_.row_gradients.matrix is None
    assert default.removal_.row_gradients.matrix is not None
    full = default.influence(Xt, yt)
    np.testing.assert_allclose(exp.influence(Xt, yt), full, rtol=1e-12, atol=1e-15)
    k = 6
    top = exp.most_influential(Xt, yt, k)
    harmful = np.argsort(-full, axis=1, kind="stable")[:, :k]
    helpful = np.argsort(full, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(top["harmful_indices"], harmful)
    np.testing.assert_array_equal(top["helpful_indices"], helpful)
    np.testing.assert_allclose(top["harmful_values"], np.take_along_axis(full, harmful, 1))
    np.testing.assert_allclose(top["helpful_values"], np.take_along_axis(full, helpful, 1))
    assert np.all(np.diff(top["harmful_values"], axis=1) <= 0)
    everything = exp.most_influential(Xt, yt, k=10_000)  # capped at n_train
    assert everything["harmful_indices"].shape == (len(yt), len(case.y))


def test_influence_equals_the_dense_formula(family_case, xp):
    """``influence[j, i] = -grad L_j^T H^{-1} g_i`` with the dense Hessian and
    gradients (themselves checked by finite differences in test_objectives);
    damping adds to the Hessian's diagonal."""
    case = family_case
    Xt, yt = case.X[:5], case.y[:5]
    for damping in (0.0, 0.5):
        exp = InfluenceExplainer(case.estimator, damping=damping)
        exp.fit(case.X, case.y, case.sample_weight)
        spec, state = exp.spec_, exp.state_
        H = np.asarray(state.hessian()) + damping * np.eye(state.n_params)
        N = exp.objective_.null_space()
        if N is not None:
            H = H + np.asarray(N) @ np.asarray(N).T
        G = np.asarray(state.row_gradients().dense())
        design = spec.make_design(Xt, xp)
        T = spec.test_loss.gradient(spec.encode(yt), design.predict(np.asarray(spec.theta())))
        grad_test = np.asarray(design.expand(T))
        expected = -(G @ np.linalg.solve(H, grad_test)).T
        np.testing.assert_allclose(
            exp.influence(Xt, yt), expected, rtol=1e-8, atol=1e-10 * np.abs(expected).max()
        )


# ----------------------------------------------------------------- solvers


@pytest.mark.parametrize(
    "name",
    ["logreg-bin-newton-cg", "logreg-multi-newton-cg", "ridge-weighted", "poisson-lbfgs", "huber"],
)
def test_conjugate_gradients_match_exact_solver(name, family):
    case = family(name)
    Xt, yt = case.X[:6], case.y[:6]
    exact = InfluenceExplainer(case.estimator, solver="exact").fit(
        case.X, case.y, case.sample_weight
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        cg = InfluenceExplainer(case.estimator, solver="cg").fit(
            case.X, case.y, case.sample_weight
        )
        I_cg = cg.influence(Xt, yt)
    I_exact = exact.influence(Xt, yt)
    assert np.linalg.norm(I_cg - I_exact) <= 1e-6 * np.linalg.norm(I_exact)
    assert cg.solver_.report.converged
    np.testing.assert_allclose(cg.self_influence(), exact.self_influence(), rtol=1e-5, atol=1e-10)


def test_conjugate_gradients_report_non_convergence(family):
    case = family("logreg-multi-newton-cg")
    exp = InfluenceExplainer(case.estimator, solver="cg", solver_options={"max_iter": 2})
    exp.fit(case.X, case.y)
    with pytest.warns(ConvergenceWarning, match="CG did not converge"):
        exp.influence(case.X[:3], case.y[:3])
    assert not exp.solver_.report.converged


@pytest.mark.parametrize(
    "options",
    [
        {"random_state": 0},  # full-batch: a deterministic Neumann series
        {"random_state": 0, "batch_size": 40, "depth": 400, "repeats": 4},  # stochastic
    ],
    ids=["full-batch", "mini-batch"],
)
def test_lissa_agrees_with_exact_solver(options, family, oracle):
    case = family("logreg-bin-newton-cg")  # standardised, 100 rows
    Xt, yt = case.X[:8], case.y[:8]
    exact = (
        InfluenceExplainer(case.estimator, solver="exact").fit(case.X, case.y).influence(Xt, yt)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a fixed depth may stop early
        lissa = InfluenceExplainer(case.estimator, solver="lissa", solver_options=options)
        approx = lissa.fit(case.X, case.y).influence(Xt, yt)
    assert oracle.pearson(approx, exact) >= 0.99
    assert oracle.slope(approx, exact) == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("name", ["logreg-multi-newton-cg", "logreg-multi-no-penalty"])
def test_multinomial_exact_solver_needs_no_pseudo_inverse(name, family):
    """The softmax's flat directions are handled explicitly: the Hessian is
    factored without the pseudo-inverse fallback (and its warning)."""
    case = family(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # RuntimeWarning of the pseudo-inverse included
        exp = InfluenceExplainer(case.estimator, solver="exact").fit(case.X, case.y)
        I = exp.influence(case.X[:10], case.y[:10])
        lev = exp.leverages()
    assert "pseudo_inverse_dropped" not in exp.solver_.report.details
    assert np.all(np.isfinite(I)) and np.abs(I).max() > 0
    assert np.all(np.isfinite(lev))


def test_multinomial_without_penalty_predicts_retraining(family, oracle):
    case = family("logreg-multi-no-penalty")
    X, y = case.X, case.y
    Xt, yt = X[:40], y[:40]
    test = oracle.hardest_test_rows(case.estimator, Xt, yt, 3)
    exp = InfluenceExplainer(case.estimator, approximation="newton").fit(X, y)
    I = exp.influence(Xt[test], yt[test])
    rows = np.argsort(-np.abs(I).sum(axis=0))[:20]
    actual = oracle.loo_changes(case.estimator, X, y, Xt[test], yt[test], rows)
    assert oracle.pearson(-I[:, rows], actual) >= 0.99


# -------------------------------------------------------------- leverages


@pytest.mark.parametrize("name", ["ridge-weighted", "linreg", "ridgeclf-multi-weighted"])
def test_leverages_are_the_hat_matrix_for_least_squares(name, family):
    """``D_i M_i`` is the diagonal of the (weighted, ridge) hat matrix."""
    case = family(name)
    exp = InfluenceExplainer(case.estimator).fit(case.X, case.y, case.sample_weight)
    M = exp.leverages()
    K = exp.state_.design.n_outputs
    assert M.shape == (len(case.y), K, K)
    est = case.estimator
    sw = np.ones(len(case.y)) if case.sample_weight is None else case.sample_weight
    if isinstance(est, RidgeClassifier) and est.class_weight is not None:
        from sklearn.utils.class_weight import compute_sample_weight

        sw = sw * compute_sample_weight(est.class_weight, case.y)
    A = np.hstack([case.X, np.ones((len(case.y), 1))]) if est.fit_intercept else case.X
    R = np.eye(A.shape[1]) * getattr(est, "alpha", 0.0)
    if est.fit_intercept:
        R[-1, -1] = 0.0
    hat = sw * np.einsum("ij,jk,ik->i", A, np.linalg.inv(A.T @ (sw[:, None] * A) + R), A)
    np.testing.assert_allclose(
        np.asarray(exp.state_.D)[:, 0, 0] * M[:, 0, 0], hat, rtol=1e-8, atol=1e-12
    )
    for k in range(1, K):  # shared design: the same leverage for every output
        np.testing.assert_allclose(M[:, k, k], M[:, 0, 0], rtol=1e-8)
    assert np.all(np.linalg.eigvalsh(M) > -1e-12)


def test_prediction_target_of_a_binary_classifier_follows_y_test(family):
    """``target="prediction"`` explains the probability of class ``y_test``:
    P(0) = 1 - P(1), so its influence is the negative of that on P(1)."""
    case = family("logreg-bin-newton-cg")
    exp = InfluenceExplainer(case.estimator).fit(case.X, case.y)
    Xt = case.X[:5]
    on_one = exp.influence(Xt, np.ones(5, dtype=int), target="prediction")
    on_zero = exp.influence(Xt, np.zeros(5, dtype=int), target="prediction")
    np.testing.assert_allclose(on_zero, -on_one, rtol=1e-10, atol=1e-14)
    no_label = exp.influence(Xt, target="prediction")  # the positive class
    np.testing.assert_allclose(no_label, on_one, rtol=1e-12)


def test_multiclass_leverages_from_the_inverse_match_per_row_solves(family):
    """The shared-design shortcut (explicit ``H^{-1}``, exact solver) gives the
    same ``M_i = A_i H^{-1} A_i^T`` as per-row solves (conjugate gradients)."""
    case = family("logreg-multi-newton-cg")
    exact = InfluenceExplainer(case.estimator, solver="exact").fit(case.X, case.y)
    cg = InfluenceExplainer(
        case.estimator, solver="cg", solver_options={"tol": 1e-12, "max_iter": 2000}
    ).fit(case.X, case.y)
    M = exact.leverages()
    K = exact.state_.design.n_outputs
    assert M.shape == (len(case.y), K, K)
    np.testing.assert_allclose(M, cg.leverages(), rtol=1e-7, atol=1e-10 * np.abs(M).max())
    np.testing.assert_allclose(M, np.swapaxes(M, 1, 2), rtol=1e-10, atol=1e-14)


def _raw_outputs(estimator, X):
    out = (
        estimator.decision_function(X)
        if hasattr(estimator, "decision_function")
        else estimator.predict(X)
    )
    return np.asarray(out, dtype=float).reshape(X.shape[0], -1)


@pytest.mark.parametrize(
    "name, approximation, rtol",
    [
        ("ridge-auto", "newton", 1e-7),  # exact for least squares
        ("logreg-bin-newton-cg", "newton", 0.05),
        ("logreg-multi-newton-cg", "newton", 0.05),
        ("logreg-bin-balanced", "influence", 0.3),
        ("sgdclf-log-loss", "newton", 0.05),
    ],
)
def test_leave_one_out_decision_matches_refits(name, approximation, rtol, family, oracle):
    """``leave_one_out_decision()[i]`` is the raw output on row ``i`` of the
    estimator refitted without row ``i``: its change from the fitted output
    matches real refits (exactly for least squares with the Newton step)."""
    case = family(name)
    exp = InfluenceExplainer(case.estimator, approximation=approximation)
    exp.fit(case.X, case.y, sample_weight=case.sample_weight)
    loo = exp.leave_one_out_decision()
    fitted = _raw_outputs(case.estimator, case.X)
    assert loo.shape == fitted.shape
    rows = np.random.RandomState(0).choice(len(case.y), 4, replace=False)
    for i in rows:
        refit = oracle.refit_without(case.estimator, case.X, case.y, [i], case.sample_weight)
        actual = _raw_outputs(refit, case.X[i : i + 1])[0] - fitted[i]
        predicted = loo[i] - fitted[i]
        np.testing.assert_allclose(
            predicted, actual, rtol=rtol, atol=rtol * np.abs(actual).max(), err_msg=f"row {i}"
        )


@pytest.mark.parametrize(
    "dataset, estimator",
    [
        ("breast_cancer", LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000)),
        ("iris", LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000)),
        ("wine", LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000)),
        ("diabetes", Ridge(alpha=1.0)),
    ],
)
def test_lissa_defaults_agree_with_exact_on_bundled_data(dataset, estimator, data, oracle):
    """LiSSA with nothing tuned (automatic scale, default depth and tol)
    reproduces the exact solve on each bundled data set, without NaN."""
    split = data(dataset)
    model = clone(estimator).fit(split.X_train, split.y_train)
    Xt, yt = split.X_test[:20], split.y_test[:20]
    exact = InfluenceExplainer(model, solver="exact").fit(split.X_train, split.y_train)
    lissa = InfluenceExplainer(model, solver="lissa", solver_options={"random_state": 0})
    lissa.fit(split.X_train, split.y_train)
    approx = lissa.influence(Xt, yt)
    assert np.all(np.isfinite(approx))
    assert lissa.solver_.report.converged
    assert oracle.pearson(approx, exact.influence(Xt, yt)) >= 0.99
    assert oracle.pearson(lissa.self_influence(), exact.self_influence()) >= 0.99
