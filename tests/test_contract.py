"""The scikit-learn contract of the explainer, the removal-model policy, and
the input cases that used to give silent or unreadable answers.

* scikit-learn's own estimator checks that apply to an explainer of a fitted
  model (it takes a fitted estimator, so checks that fit it on generated data
  do not apply);
* ``clone`` through ``FrozenEstimator``, tags, ``Bunch`` results;
* the policy table: every combination builds a removal model or refuses with
  a clear error, and the explainer holds no dispatch on solver classes;
* ``approximation="refit"`` against real leave-one-out refits;
* each input case of the redesign issue gets the right answer or an error
  saying what to pass.
"""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.datasets import load_breast_cancer, load_wine, make_regression
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import Bunch
from sklearn.utils import estimator_checks as checks
from sklearn.utils.fixes import parse_version

from skinfluence import InfluenceExplainer, NotAtOptimumWarning, register_estimator
from skinfluence.objectives import ModelSpec, Prediction, SquaredError
from skinfluence.objectives._registry import _REGISTRY
from skinfluence.removal import APPROXIMATIONS, POLICY, Refusal
from skinfluence.retraining import leave_one_out

SKLEARN_16 = parse_version(sklearn.__version__) >= parse_version("1.6")
TIGHT = {"tol": 1e-12, "max_iter": 10_000}


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)[:300]
    return X, y[:300]


@pytest.fixture(scope="module")
def logistic(cancer):
    X, y = cancer
    return LogisticRegression(**TIGHT).fit(X, y)


# --------------------------------------------------------------- contract
#: scikit-learn checks that do not fit the wrapped estimator on their own data
APPLICABLE_CHECKS = [
    "check_no_attributes_set_in_init",
    "check_get_params_invariance",
    "check_set_params",
    "check_estimator_repr",
    "check_estimator_cloneable",
    "check_do_not_raise_errors_in_init_or_set_params",
    "check_estimators_unfitted",
    "check_estimator_tags_renamed",
    "check_valid_tag_types",
    "check_mixin_order",
]


@pytest.mark.parametrize("name", APPLICABLE_CHECKS)
def test_scikit_learn_checks_that_apply(name, logistic):
    check = getattr(checks, name, None)
    if check is None:
        pytest.skip(f"{name} is not in scikit-learn {sklearn.__version__}")
    check(name, InfluenceExplainer(logistic))


@pytest.mark.skipif(not SKLEARN_16, reason="FrozenEstimator needs scikit-learn >= 1.6")
def test_clone_of_a_frozen_estimator_explains_the_same_model(cancer, logistic):
    from sklearn.frozen import FrozenEstimator

    X, y = cancer
    direct = InfluenceExplainer(logistic).fit(X, y).influence(X[:4], y[:4])
    cloned = clone(InfluenceExplainer(FrozenEstimator(logistic))).fit(X, y)
    np.testing.assert_allclose(cloned.influence(X[:4], y[:4]), direct, rtol=1e-12, atol=0)
    # a whole fitted pipeline, frozen
    pipe = make_pipeline(StandardScaler(), LogisticRegression(**TIGHT)).fit(X, y)
    expected = InfluenceExplainer(pipe).fit(X, y).influence(X[:2], y[:2])
    through = clone(InfluenceExplainer(FrozenEstimator(pipe))).fit(X, y)
    np.testing.assert_allclose(through.influence(X[:2], y[:2]), expected, rtol=1e-12, atol=0)


def test_a_cloned_unfitted_estimator_says_how_to_keep_it_fitted(cancer, logistic):
    X, y = cancer
    with pytest.raises(NotFittedError, match="FrozenEstimator"):
        clone(InfluenceExplainer(logistic)).fit(X, y)


@pytest.mark.skipif(not SKLEARN_16, reason="__sklearn_tags__ needs scikit-learn >= 1.6")
def test_tags_say_what_the_explainer_needs_and_accepts(logistic):
    from sklearn.utils import get_tags

    tags = get_tags(InfluenceExplainer(logistic))
    assert tags.target_tags.required
    assert tags.input_tags.sparse
    assert tags.array_api_support


def test_most_influential_is_a_bunch_with_dataframe_labels(cancer, logistic):
    X, y = cancer
    index = pd.Index([f"row{i}" for i in range(len(y))], name="id")
    frame = pd.DataFrame(X, index=index)
    model = LogisticRegression(**TIGHT).fit(frame, y)
    exp = InfluenceExplainer(model).fit(frame, y)
    top = exp.most_influential(frame.iloc[:3], y[:3], k=4)
    assert isinstance(top, Bunch)
    assert top.harmful_labels.shape == (3, 4)
    np.testing.assert_array_equal(top.harmful_labels, index.to_numpy()[top.harmful_indices])
    # positions still index the influence matrix
    full = exp.influence(frame.iloc[:3], y[:3])
    np.testing.assert_allclose(
        np.take_along_axis(full, top.harmful_indices, 1), top.harmful_values, rtol=1e-10
    )
    plain = InfluenceExplainer(logistic).fit(X, y).most_influential(X[:3], y[:3], k=4)
    assert "harmful_labels" not in plain


# ----------------------------------------------------------------- policy
def test_every_combination_builds_or_refuses():
    families, spaces = {"smooth", "hinge"}, {"parameters", "rows"}
    keys = {(f, s, a) for f in families for s in spaces for a in APPROXIMATIONS}
    assert set(POLICY) == keys
    for rule in POLICY.values():
        assert callable(rule.build) or isinstance(rule.build, Refusal)


def test_the_explainer_dispatches_on_no_solver_or_removal_class():
    """Adding an approximation touches the policy table and one class: the
    facade imports no solver and tests no class."""
    source = (Path(__file__).parents[1] / "skinfluence" / "_explainer.py").read_text()
    tree = ast.parse(source)
    imported = [
        node.module or ""
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level > 0
    ]
    assert not any(m.startswith("solvers") for m in imported)
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "isinstance"
    ]
    names = {ast.unparse(call.args[1]) for call in calls}
    assert not any("Inverse" in n or "Removal" in n or "Path" in n for n in names), names


@pytest.mark.parametrize(
    ("approximation", "match"),
    [("path", "approximation='newton'"), ("refit", None)],
)
def test_refusals_come_from_the_table(cancer, logistic, approximation, match):
    X, y = cancer
    if match is None:  # refit applies to smooth models
        InfluenceExplainer(logistic, approximation=approximation).fit(X, y)
        return
    with pytest.raises(ValueError, match=match):
        InfluenceExplainer(logistic, approximation=approximation).fit(X, y)


# ------------------------------------------------------------------ refit
@pytest.mark.parametrize(
    "case", ["logistic", "logistic-balanced", "multinomial", "ridge"], ids=str
)
def test_refit_matches_real_leave_one_out_refits(case):
    """Newton iterations to the leave-one-out optimum agree with scikit-learn
    refitted without each row: Pearson >= 0.9995 and slope 1.00 +- 0.01 over
    the most influential rows of the highest-loss test rows, where one Newton
    step is off by several per cent."""
    if case == "multinomial":
        X, y = load_wine(return_X_y=True)
    elif case == "ridge":
        X, y = make_regression(200, 6, noise=10.0, random_state=0)
    else:
        X, y = load_breast_cancer(return_X_y=True)
        X, y = X[:300], y[:300]
    X = StandardScaler().fit_transform(X)
    if case == "ridge":
        model = Ridge(alpha=1.0).fit(X, y)
        test = np.arange(3)
    else:
        weight = "balanced" if case == "logistic-balanced" else None
        model = LogisticRegression(class_weight=weight, **TIGHT).fit(X, y)
        loss = -np.log(
            model.predict_proba(X)[np.arange(len(y)), np.searchsorted(model.classes_, y)]
        )
        test = np.argsort(-loss)[:3]
    newton = InfluenceExplainer(model, approximation="newton").fit(X, y)
    checked = leave_one_out(newton, X[test], y[test], rows=12)
    refit = InfluenceExplainer(model, approximation="refit").fit(X, y)
    result = leave_one_out(refit, X[test], y[test], rows=checked.rows)
    assert result.agreement.pearson >= 0.9995
    assert abs(result.agreement.slope - 1.0) <= 0.01
    # the refit's own report: the fit polished, every requested row refitted
    assert refit.solver_.report.converged
    assert refit.solver_.report.details["rows_refitted"] >= len(checked.rows)


def test_refit_self_influence_is_the_exact_own_loss_change(cancer, logistic):
    X, y = cancer
    exp = InfluenceExplainer(logistic, approximation="refit").fit(X, y)
    rows = np.argsort(-np.asarray(exp.training_loss()))[:3]
    own = leave_one_out(exp, X[rows], y[rows], rows=rows)
    np.testing.assert_allclose(np.diag(own.predicted), np.diag(own.actual), rtol=1e-4)


# ------------------------------------------------------------ input cases
def test_targets_of_the_wrong_shape_are_refused():
    X, Y = make_regression(60, 4, n_targets=3, random_state=0)
    multi = Ridge().fit(X, Y)
    exp = InfluenceExplainer(multi).fit(X, Y)
    with pytest.raises(ValueError, match=r"3 target\(s\).*shape \(5, 3\)"):
        exp.influence(X[:5], Y[:5, 0])
    single = Ridge().fit(X, Y[:, 0])
    exp = InfluenceExplainer(single).fit(X, Y[:, 0])
    with pytest.raises(ValueError, match=r"1 target\(s\).*shape \(5,\)"):
        exp.influence(X[:5], Y[:5, :2])
    # a column vector is one target per row
    np.testing.assert_allclose(
        exp.influence(X[:5], Y[:5, :1]), exp.influence(X[:5], Y[:5, 0]), rtol=0, atol=0
    )


def test_a_column_of_labels_works_for_a_binary_classifier(cancer, logistic):
    X, y = cancer
    exp = InfluenceExplainer(logistic).fit(X, y)
    np.testing.assert_array_equal(exp.influence(X[:4], y[:4, None]), exp.influence(X[:4], y[:4]))
    with pytest.raises(ValueError, match="one column"):
        exp.influence(X[:4], np.stack([y[:4], y[:4]], axis=1))


def test_string_labels_against_integer_classes_say_so(cancer, logistic):
    X, y = cancer
    exp = InfluenceExplainer(logistic).fit(X, y)
    with pytest.raises(ValueError, match="same type"):
        exp.influence(X[:3], np.array(["yes", "no", "yes"]))


def test_boolean_row_masks_select_rows(cancer, logistic):
    X, y = cancer
    exp = InfluenceExplainer(logistic).fit(X, y)
    mask = np.zeros(len(y), dtype=bool)
    mask[[3, 10, 42]] = True
    np.testing.assert_allclose(exp.influence_params(mask), exp.influence_params()[[3, 10, 42]])
    np.testing.assert_allclose(
        exp.influence_features(X[:2], y[:2], rows=mask),
        exp.influence_features(X[:2], y[:2], rows=[3, 10, 42]),
    )
    np.testing.assert_allclose(
        exp.influence(X[:2], y[:2], rows=mask), exp.influence(X[:2], y[:2])[:, [3, 10, 42]]
    )
    with pytest.raises(ValueError, match="one entry per training row"):
        exp.influence_params(mask[:10])
    with pytest.raises(ValueError, match="out of range"):
        exp.influence_params([len(y)])
    with pytest.raises(ValueError, match="integer positions"):
        exp.influence_params([0.5, 1.5])


@pytest.mark.parametrize("k", [-1, 0, 2.5, True])
def test_most_influential_needs_a_positive_integer_k(cancer, logistic, k):
    X, y = cancer
    exp = InfluenceExplainer(logistic).fit(X, y)
    with pytest.raises(ValueError, match="positive integer"):
        exp.most_influential(X[:2], y[:2], k=k)


def test_badly_scaled_features_agree_across_solvers(cancer):
    """Features scaled by 1e12: the exact solver factors the equilibrated
    Hessian instead of dropping its 'flat' directions, and agrees with CG."""
    X, y = cancer
    X = X[:, :5] * 1e12
    model = LogisticRegression(**TIGHT).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        exact = InfluenceExplainer(model, solver="exact").fit(X, y)
    cg = InfluenceExplainer(model, solver="cg").fit(X, y)
    a, b = exact.influence(X[:3], y[:3]), cg.influence(X[:3], y[:3])
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-8 * np.abs(a).max())


def test_an_interpolating_fit_is_at_its_optimum():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 3.0  # no noise: residuals at rounding level
    model = LinearRegression().fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotAtOptimumWarning)
        exp = InfluenceExplainer(model).fit(X, y)
    assert exp.stationarity_ < 1e-6
    # and a fit that is clearly not at its optimum still warns
    wrong = LinearRegression().fit(X, y)
    wrong.coef_ = wrong.coef_ + 0.1
    with pytest.warns(NotAtOptimumWarning):
        InfluenceExplainer(wrong).fit(X, y)


def test_self_influence_is_non_negative_where_it_is_a_quadratic_form(cancer, logistic):
    X, y = cancer
    assert np.all(InfluenceExplainer(logistic).fit(X, y).self_influence() >= -1e-12)


# ------------------------------------------------------- extension point
class _ShrunkLeastSquares(RegressorMixin, BaseEstimator):
    """``sum_i (y_i - x_i . w)^2 + lam ||w||^2``, no intercept, closed form."""

    def __init__(self, lam=1.0):
        self.lam = lam

    def fit(self, X, y):
        X = np.asarray(X, dtype=float)
        self.coef_ = np.linalg.solve(X.T @ X + self.lam * np.eye(X.shape[1]), X.T @ y)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X):
        return np.asarray(X, dtype=float) @ self.coef_


class _ShrunkLeastSquaresSpec(ModelSpec):
    def __init__(self, est, *, temperature=None):
        super().__init__(est, temperature=temperature)
        self.fit_intercept = False
        self.coef_penalty = 2.0 * est.lam  # lam ||w||^2 = (1/2)(2 lam) ||w||^2
        self.train_loss = self.test_loss = SquaredError(1.0)
        self.prediction = Prediction("raw")


def test_a_registered_estimator_family_is_explained_exactly():
    """The public extension point: a family unknown to skinfluence is refused
    with the list of supported ones, then, once registered, explained exactly
    where the approximation is exact, as real refits show."""
    X, y = make_regression(80, 5, noise=5.0, random_state=1)
    model = _ShrunkLeastSquares(lam=3.0).fit(X, y)
    if _ShrunkLeastSquares not in _REGISTRY:
        with pytest.raises(TypeError, match="not supported.*LogisticRegression"):
            InfluenceExplainer(model).fit(X, y)
    register_estimator(_ShrunkLeastSquares, _ShrunkLeastSquaresSpec)
    # the Newton step is exact for least squares: predictions (linear in the
    # parameters) match refits exactly; the loss, with approximation="refit"
    exp = InfluenceExplainer(model, approximation="newton").fit(X, y)
    result = leave_one_out(exp, X[:3], rows=15, target="prediction")
    np.testing.assert_allclose(result.predicted, result.actual, rtol=1e-6, atol=1e-9)
    exp = InfluenceExplainer(model, approximation="refit").fit(X, y)
    result = leave_one_out(exp, X[:3], y[:3], rows=result.rows)
    np.testing.assert_allclose(result.predicted, result.actual, rtol=1e-6, atol=1e-9)
    with pytest.raises(TypeError, match="must be a class"):
        register_estimator(model, _ShrunkLeastSquaresSpec)


def test_training_index_maps_positions_to_dataframe_labels(cancer):
    X, y = cancer
    frame = pd.DataFrame(X, index=pd.RangeIndex(1000, 1000 + len(y)))
    model = LogisticRegression(**TIGHT).fit(frame, y)
    exp = InfluenceExplainer(model).fit(frame, y)
    worst = np.argsort(-exp.self_influence())[:3]
    np.testing.assert_array_equal(exp.training_index_[worst], worst + 1000)
    assert InfluenceExplainer(model).fit(X, y).training_index_ is None
