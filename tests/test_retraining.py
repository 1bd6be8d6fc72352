"""Validation, in both senses.

* Input validation of :class:`InfluenceExplainer`: bad input fails early with
  a clear error, and nothing the user passes (estimator, arrays, data frames)
  is modified.
* :mod:`skinfluence.retraining`: ``leave_one_out`` returns what it says
  (its ``actual`` is a real refit difference, its ``predicted`` the
  negated influence) and ``agreement`` computes the stated statistics.
"""

from __future__ import annotations

import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import (
    HuberRegressor,
    LinearRegression,
    LogisticRegression,
    Ridge,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.fixes import parse_version

from skinfluence import InfluenceExplainer
from skinfluence.retraining import agreement, leave_one_out


def _lr(**kw):
    params = {"C": 1.0, "solver": "newton-cg", "tol": 1e-10, "max_iter": 1000}
    params.update(kw)
    return LogisticRegression(**params)


@pytest.fixture
def binary(data):
    split = data("breast_cancer")
    X, y = split.X_train[:150, :8], split.y_train[:150]
    return X, y, _lr().fit(X, y)


@pytest.fixture
def regression(data):
    split = data("diabetes")
    X, y = split.X_train[:150], split.y_train[:150]
    return X, y, Ridge(alpha=0.1).fit(X, y)


# ------------------------------------------------------------ bad input


def test_unfitted_estimator_raises_not_fitted(binary):
    X, y, _ = binary
    for est in (_lr(), make_pipeline(StandardScaler(), _lr())):
        with pytest.raises(NotFittedError):
            InfluenceExplainer(est).fit(X, y)


@pytest.mark.parametrize(
    "method",
    [
        lambda e, X, y: e.influence(X, y),
        lambda e, X, y: e.most_influential(X, y, 3),
        lambda e, X, y: e.influence_features(X, y),
        lambda e, X, y: e.self_influence(),
        lambda e, X, y: e.influence_params(),
        lambda e, X, y: e.leverages(),
        lambda e, X, y: e.training_loss(),
    ],
    ids=[
        "influence",
        "most_influential",
        "influence_features",
        "self_influence",
        "influence_params",
        "leverages",
        "training_loss",
    ],
)
def test_explainer_used_before_fit_raises_not_fitted(method, binary):
    X, y, est = binary
    with pytest.raises(NotFittedError):
        method(InfluenceExplainer(est), X[:3], y[:3])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features_are_rejected(bad, binary):
    X, y, est = binary
    X_bad = X.copy()
    X_bad[4, 2] = bad
    with pytest.raises(ValueError, match="(?i)nan|inf"):
        InfluenceExplainer(est).fit(X_bad, y)
    exp = InfluenceExplainer(est).fit(X, y)
    with pytest.raises(ValueError, match="(?i)nan|inf"):
        exp.influence(X_bad[:6], y[:6])
    # a scaler lets NaN through; the explainer must still catch it
    pipe = make_pipeline(StandardScaler(), _lr()).fit(X, y)
    with pytest.raises(ValueError, match="(?i)nan|inf"):
        InfluenceExplainer(pipe).fit(X_bad, y)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_targets_are_rejected(bad, regression):
    X, y, est = regression
    y_bad = y.copy()
    y_bad[3] = bad
    with pytest.raises(ValueError, match="(?i)nan|inf"):
        InfluenceExplainer(est).fit(X, y_bad)
    exp = InfluenceExplainer(est).fit(X, y)
    with pytest.raises(ValueError, match="(?i)nan|inf"):
        exp.influence(X[:5], y_bad[:5])


def test_wrong_feature_count_is_rejected(binary):
    X, y, est = binary
    with pytest.raises(ValueError, match="features"):
        InfluenceExplainer(est).fit(X[:, :-1], y)
    exp = InfluenceExplainer(est).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        exp.influence(np.hstack([X[:4], X[:4, :1]]), y[:4])
    pipe = make_pipeline(StandardScaler(), _lr()).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        InfluenceExplainer(pipe).fit(X[:, :-2], y)


def test_targets_of_another_length_are_rejected(binary):
    X, y, est = binary
    with pytest.raises(ValueError, match="rows"):
        InfluenceExplainer(est).fit(X, y[:-1])
    with pytest.raises(ValueError):
        InfluenceExplainer(est).fit(X, y, sample_weight=np.ones(len(y) + 2))
    exp = InfluenceExplainer(est).fit(X, y)
    with pytest.raises(ValueError, match="rows"):
        exp.influence(X[:5], y[:4])


@pytest.mark.parametrize(
    "estimator",
    [DecisionTreeClassifier(max_depth=2), make_pipeline(StandardScaler(), KNeighborsClassifier())],
    ids=["tree", "pipeline-knn"],
)
def test_unsupported_model_names_the_supported_ones(estimator, binary):
    X, y, _ = binary
    estimator.fit(X, y)
    with pytest.raises(TypeError, match="not supported") as info:
        InfluenceExplainer(estimator).fit(X, y)
    for name in ("LogisticRegression", "Ridge", "HuberRegressor", "SGDClassifier"):
        assert name in str(info.value)


def test_single_class_is_rejected(binary):
    X, y, est = binary
    ones = y == 1
    with pytest.raises(ValueError, match="single class"):
        InfluenceExplainer(est).fit(X[ones], y[ones])


NEW_PENALTY_API = parse_version(sklearn.__version__) >= parse_version("1.8")
L1 = {} if NEW_PENALTY_API else {"penalty": "l1"}
ELASTICNET = {} if NEW_PENALTY_API else {"penalty": "elasticnet"}


@pytest.mark.parametrize(
    "estimator",
    [
        # scikit-learn < 1.8 needs the penalty spelled out; 1.8+ reads l1_ratio
        LogisticRegression(l1_ratio=1.0, solver="saga", max_iter=2000, **L1),
        LogisticRegression(l1_ratio=0.5, solver="saga", max_iter=2000, **ELASTICNET),
        SGDClassifier(penalty="l1", random_state=0),
        SGDRegressor(penalty="elasticnet", random_state=0),
    ],
    ids=["logreg-l1", "logreg-elasticnet", "sgdclf-l1", "sgdreg-elasticnet"],
)
def test_sparse_penalties_are_rejected(estimator, binary):
    X, y, _ = binary
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator.fit(X, y)
    with pytest.raises(ValueError, match="l1|elasticnet"):
        InfluenceExplainer(estimator).fit(X, y)


@pytest.mark.parametrize(
    "estimator", [Ridge(positive=True), LinearRegression(positive=True)], ids=["ridge", "linreg"]
)
def test_constrained_least_squares_is_rejected(estimator, regression):
    X, y, _ = regression
    estimator.fit(X, y)
    with pytest.raises(ValueError, match="positive"):
        InfluenceExplainer(estimator).fit(X, y)


def test_unknown_labels_are_rejected(binary, data):
    X, y, est = binary
    exp = InfluenceExplainer(est).fit(X, y)
    with pytest.raises(ValueError, match="99"):
        exp.influence(X[:3], np.array([0, 99, 1]))
    with pytest.raises(ValueError, match="7"):
        InfluenceExplainer(est).fit(X, np.where(np.arange(len(y)) == 0, 7, y))
    split = data("wine")
    multi = _lr().fit(split.X_train, split.y_train)
    exp = InfluenceExplainer(multi).fit(split.X_train, split.y_train)
    with pytest.raises(ValueError, match="5"):
        exp.influence(split.X_test[:2], np.array([1, 5]), target="prediction")


def test_invalid_parameters_and_targets_are_rejected(binary, data):
    X, y, est = binary
    for params in ({"solver": "qr"}, {"approximation": "second"}, {"damping": -1.0}):
        with pytest.raises(ValueError):
            InfluenceExplainer(est, **params).fit(X, y)
    exp = InfluenceExplainer(est).fit(X, y)
    with pytest.raises(ValueError, match="target"):
        exp.influence(X[:3], y[:3], target="probability")
    with pytest.raises(ValueError, match="y_test"):
        exp.influence(X[:3])  # a loss needs labels
    newton = InfluenceExplainer(est, approximation="newton").fit(X, y)
    with pytest.raises(ValueError, match="influence"):
        newton.influence_features(X[:3], y[:3])
    split = data("wine")
    multi = _lr().fit(split.X_train, split.y_train)
    exp = InfluenceExplainer(multi).fit(split.X_train, split.y_train)
    with pytest.raises(ValueError, match="y_test"):
        exp.influence(split.X_test[:2], target="prediction")  # which class?


def test_reordered_data_frame_columns_are_not_silently_misread(data):
    """A model fitted on named columns reads them by name: columns passed in
    another order must be either matched by name or refused, as scikit-learn
    does in ``predict``, never silently used by position."""
    split = data("wine")
    columns = [f"f{j}" for j in range(split.X_train.shape[1])]
    frame = pd.DataFrame(split.X_train, columns=columns)
    test_frame = pd.DataFrame(split.X_test[:5], columns=columns)
    est = _lr().fit(frame, split.y_train)
    exp = InfluenceExplainer(est).fit(frame, split.y_train)
    expected = exp.influence(test_frame, split.y_test[:5])
    try:
        got = exp.influence(test_frame[columns[::-1]], split.y_test[:5])
    except ValueError as err:
        assert "feature" in str(err).lower()
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-10)


# ----------------------------------------------------------- no mutation


def _frame_pipeline(data):
    split = data("breast_cancer")
    frame = pd.DataFrame(split.X_train[:120, :4], columns=list("abcd"))
    frame["kind"] = np.where(split.X_train[:120, 4] > 0, "high", "low")
    prep = ColumnTransformer(
        [("num", StandardScaler(), list("abcd")), ("cat", OneHotEncoder(), ["kind"])]
    )
    y = pd.Series(split.y_train[:120])
    return frame, y, make_pipeline(prep, _lr()).fit(frame, y)


@pytest.mark.parametrize("kind", ["logreg", "pipeline-frame", "sgd", "huber"])
def test_nothing_the_user_passes_is_modified(kind, data):
    if kind == "pipeline-frame":
        X, y, est = _frame_pipeline(data)
        sw = None
    else:
        split = data("diabetes_std" if kind == "huber" else "breast_cancer")
        X, y = split.X_train[:120, :6], split.y_train[:120]
        sw = np.random.RandomState(0).uniform(0.5, 2.0, size=len(y))
        est = {
            "logreg": _lr(),
            "sgd": SGDClassifier(loss="log_loss", alpha=0.05, random_state=0),
            "huber": HuberRegressor(alpha=1e-2, max_iter=1000),
        }[kind]
        est.fit(X, y, sample_weight=sw)
    X_test, y_test = X[:5], y[:5]
    snapshot = joblib.hash(est)
    copies = [(a, a.copy()) for a in (X, y, sw, X_test, y_test) if a is not None]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SGD stationarity is not the point here
        exp = InfluenceExplainer(est).fit(X, y, sample_weight=sw)
        exp.influence(X_test, y_test)
        exp.influence(X_test, y_test, target="prediction")
        exp.most_influential(X_test, y_test, 3)
        exp.self_influence()
        exp.influence_params(rows=[0, 1])
        exp.influence_features(X_test, y_test, rows=[0, 1])
        exp.leverages()
        leave_one_out(exp, X_test, y_test, rows=[0, 1], n_jobs=1)
        InfluenceExplainer(est, approximation="newton").fit(X, y, sample_weight=sw)

    assert joblib.hash(est) == snapshot
    for original, copy in copies:
        if isinstance(original, (pd.DataFrame, pd.Series)):
            pd.testing.assert_frame_equal(pd.DataFrame(original), pd.DataFrame(copy))
        else:
            np.testing.assert_array_equal(original, copy)


# ------------------------------------------------- skinfluence.retraining


def test_leave_one_out_actual_is_a_real_refit_difference(binary, oracle):
    X, y, est = binary
    exp = InfluenceExplainer(est).fit(X, y)
    Xt, yt = X[:4], y[:4]
    rows = np.array([2, 17, 40, 99])
    result = leave_one_out(exp, Xt, yt, rows=rows, n_jobs=1)
    np.testing.assert_array_equal(result.rows, rows)
    np.testing.assert_allclose(result.predicted, -exp.influence(Xt, yt)[:, rows], rtol=1e-12)
    expected = oracle.loo_changes(est, X, y, Xt, yt, rows)
    np.testing.assert_allclose(result.actual, expected, rtol=1e-6, atol=1e-9)
    stats = agreement(result.predicted, result.actual)
    assert result.agreement == stats
    assert result.agreement.n == rows.size * len(yt)


@pytest.mark.parametrize("dataset", ["wine", "diabetes"])
def test_leave_one_out_of_predictions(dataset, data, oracle):
    split = data(dataset)
    X, y = split.X_train[:120], split.y_train[:120]
    est = (_lr() if dataset == "wine" else Ridge(alpha=0.1)).fit(X, y)
    exp = InfluenceExplainer(est).fit(X, y)
    Xt, yt = split.X_test[:3], split.y_test[:3]
    rows = np.array([0, 5, 9])
    result = leave_one_out(exp, Xt, yt, rows=rows, target="prediction", n_jobs=1)
    expected = oracle.loo_changes(est, X, y, Xt, yt, rows, target="prediction")
    np.testing.assert_allclose(result.actual, expected, rtol=1e-6, atol=1e-10)


def test_leave_one_out_picks_the_most_influential_rows(binary):
    X, y, est = binary
    exp = InfluenceExplainer(est).fit(X, y)
    Xt, yt = X[:3], y[:3]
    result = leave_one_out(exp, Xt, yt, rows=6, n_jobs=1)
    score = np.abs(exp.influence(Xt, yt)).sum(axis=0)
    np.testing.assert_array_equal(result.rows, np.argsort(-score, kind="stable")[:6])
    assert result.actual.shape == result.predicted.shape == (3, 6)
    assert result.agreement.pearson > 0.9  # these rows matter, and predictably


def test_leave_one_out_applies_refit_params_and_sample_weight(binary, oracle):
    X, y, _ = binary
    sw = np.random.RandomState(0).uniform(0.5, 2.0, size=len(y))
    est = _lr().fit(X, y, sample_weight=sw)
    exp = InfluenceExplainer(est).fit(X, y, sample_weight=sw)
    Xt, yt = X[:3], y[:3]
    rows = np.array([1, 30])
    plain = leave_one_out(exp, Xt, yt, rows=rows, n_jobs=1)
    np.testing.assert_allclose(
        plain.actual, oracle.loo_changes(est, X, y, Xt, yt, rows, sample_weight=sw), rtol=1e-6
    )
    refit = leave_one_out(exp, Xt, yt, rows=rows, refit_params={"C": 0.05}, n_jobs=1)
    expected = oracle.loo_changes(est, X, y, Xt, yt, rows, sample_weight=sw, C=0.05)
    np.testing.assert_allclose(refit.actual, expected, rtol=1e-6)
    assert not np.allclose(refit.actual, plain.actual, rtol=1e-2)
    assert est.C == 1.0  # the user's estimator keeps its parameters


def test_leave_one_out_refits_only_the_final_step_of_a_pipeline(binary, oracle):
    """Earlier pipeline steps are a fixed feature map, in the estimate and in
    its check."""
    X, y, _ = binary
    pipe = make_pipeline(StandardScaler(), _lr()).fit(X * 5 + 1, y)
    exp = InfluenceExplainer(pipe).fit(X * 5 + 1, y)
    Xt, yt = X[:3] * 5 + 1, y[:3]
    rows = np.array([0, 8, 20])
    result = leave_one_out(exp, Xt, yt, rows=rows, n_jobs=1)
    F, Ft = pipe[0].transform(X * 5 + 1), pipe[0].transform(Xt)
    expected = oracle.loo_changes(pipe[-1], F, y, Ft, yt, rows)
    np.testing.assert_allclose(result.actual, expected, rtol=1e-6, atol=1e-10)


def test_leave_one_out_in_parallel_equals_sequential(binary):
    X, y, est = binary
    exp = InfluenceExplainer(est).fit(X, y)
    rows = np.array([0, 1, 2, 3])
    sequential = leave_one_out(exp, X[:2], y[:2], rows=rows, n_jobs=1)
    with joblib.parallel_config(backend="threading"):
        parallel = leave_one_out(exp, X[:2], y[:2], rows=rows, n_jobs=2)
    np.testing.assert_allclose(parallel.actual, sequential.actual, rtol=1e-12)


def test_agreement_statistics():
    rng = np.random.RandomState(0)
    p = rng.normal(size=(4, 10))
    exact = agreement(p, 2.0 * p + 0.3)
    assert exact.pearson == pytest.approx(1.0)
    assert exact.spearman == pytest.approx(1.0)
    assert exact.slope == pytest.approx(2.0)
    assert exact.n == 40
    reversed_ = agreement(p, -p)
    assert reversed_.pearson == pytest.approx(-1.0)
    assert reversed_.slope == pytest.approx(-1.0)
    noisy_actual = p + 0.5 * rng.normal(size=p.shape)
    noisy = agreement(p, noisy_actual)
    assert noisy.pearson == pytest.approx(np.corrcoef(p.ravel(), noisy_actual.ravel())[0, 1])
    assert 0.0 < noisy.pearson < 1.0
    for degenerate in (agreement(np.ones(10), p[0]), agreement(p[0, :2], p[1, :2])):
        assert np.isnan(degenerate.pearson) and np.isnan(degenerate.slope)


# ------------------------------------------------------------- pickling


@pytest.mark.parametrize("approximation", ["influence", "newton"])
def test_fitted_explainer_survives_pickling(approximation, binary):
    """A pickled explainer answers exactly as the original (its solver is
    rebuilt from the stored training features on load)."""
    import pickle

    X, y, est = binary
    exp = InfluenceExplainer(est, approximation=approximation).fit(X, y)
    loaded = pickle.loads(pickle.dumps(exp))
    np.testing.assert_array_equal(loaded.influence(X[:4], y[:4]), exp.influence(X[:4], y[:4]))
    np.testing.assert_array_equal(loaded.self_influence(), exp.self_influence())
    unfitted = pickle.loads(pickle.dumps(InfluenceExplainer(est)))
    with pytest.raises(NotFittedError):
        unfitted.self_influence()


def test_running_out_of_memory_says_what_to_change(binary, monkeypatch):
    """A MemoryError deep inside (NumPy's, or CuPy's OutOfMemoryError, which
    subclasses it) comes back naming the block budget and the CG solver."""
    X, y, est = binary
    exp = InfluenceExplainer(est, max_block_bytes=2**20).fit(X, y)

    def exhausted(B):
        raise MemoryError("Unable to allocate 12.0 GiB")

    monkeypatch.setattr(exp.solver_, "solve", exhausted)
    with pytest.raises(MemoryError, match="max_block_bytes \\(now 1 MiB\\).*solver='cg'") as info:
        exp.influence(X[:3], y[:3])
    assert "12.0 GiB" in str(info.value)
    assert isinstance(info.value.__cause__, MemoryError)
