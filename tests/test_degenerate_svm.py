"""Hinge fits at degenerate vertices: duplicated rows, one-hot designs with
more margin rows than independent directions. The active set's first-order
estimate is defined there (constraints in the span of others change
nothing when removed) and is checked against real refits."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC

from skinfluence import InfluenceExplainer
from skinfluence.retraining import leave_one_out

TIGHT = {"tol": 1e-12}


def _one_hot_table(n=300, seed=1):
    """Two categorical columns, one-hot: 6 distinct rows, many duplicates."""
    rng = np.random.default_rng(seed)
    cats = np.column_stack([rng.integers(0, 3, n), rng.integers(0, 2, n)])
    X = OneHotEncoder(sparse_output=False).fit_transform(cats)
    y = ((cats[:, 0] == 1) ^ (rng.random(n) < 0.2)).astype(int)
    return X, y


def test_more_margin_rows_than_directions_gives_the_refits_answer():
    """Hundreds of margin rows in a 6-parameter model used to raise 'linearly
    dependent'; the vertex is held by its constraints, so removing any row
    changes nothing -- as the refits show."""
    X, y = _one_hot_table()
    model = SVC(kernel="linear", C=0.5, **TIGHT).fit(X, y)
    exp = InfluenceExplainer(model).fit(X, y)
    details = exp.solver_.report.details
    assert details["degenerate"] and details["margin_rows"] > details["n_params"]
    result = leave_one_out(exp, X[:4], y[:4], rows=15)
    np.testing.assert_allclose(result.predicted, result.actual, rtol=0, atol=1e-8)


def test_a_duplicated_support_vector_is_absorbed_by_its_twin():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X[:200, :6])
    y = y[:200]
    model = SVC(kernel="linear", C=1.0, **TIGHT).fit(X, y)
    margin = model.support_[np.abs(model.dual_coef_[0]) < 1.0 - 1e-6][0]  # on the margin
    X2, y2 = np.vstack([X, X[margin]]), np.append(y, y[margin])
    model = SVC(kernel="linear", C=1.0, **TIGHT).fit(X2, y2)
    exp = InfluenceExplainer(model).fit(X2, y2)
    assert exp.solver_.report.details["degenerate"]
    test = np.arange(5)
    rows = np.array([margin, len(y2) - 1])  # the row and its copy
    result = leave_one_out(exp, X2[test], y2[test], rows=rows)
    np.testing.assert_allclose(result.predicted, 0.0, atol=1e-12)
    np.testing.assert_allclose(result.actual, 0.0, atol=1e-6)


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_iris_duplicates_are_explained(kernel):
    """iris has duplicated rows; versicolor against virginica overlaps, so
    many sit on the margin. The first-order active set is defined there; the
    decremental path matches the refits."""
    X, y = load_iris(return_X_y=True)
    keep = y > 0
    X, y = X[keep], y[keep]
    assert len(np.unique(X, axis=0)) < len(X)  # duplicates
    model = SVC(kernel=kernel, C=1.0, gamma=0.5, **TIGHT).fit(X, y)
    loss = np.maximum(0, 1 - (2 * y - 3) * model.decision_function(X))
    test = np.argsort(-loss)[:3]
    first = InfluenceExplainer(model).fit(X, y).influence(X[test], target="prediction")
    assert np.all(np.isfinite(first))
    path = InfluenceExplainer(model, approximation="path").fit(X, y)
    result = leave_one_out(path, X[test], y[test], rows=20, target="prediction")
    assert result.agreement.pearson >= 0.999
    assert abs(result.agreement.slope - 1) <= 0.01
