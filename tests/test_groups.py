"""Removing groups of training rows at once (``group_influence``,
``most_influential_groups``), checked against real refits without each group
and against the single-row influences they generalise."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, make_regression
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from skinfluence import InfluenceExplainer
from skinfluence.removal import NotAvailableError
from skinfluence.retraining import agreement

TIGHT = {"tol": 1e-12, "max_iter": 10_000}


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    model = LogisticRegression(**TIGHT).fit(X[:400], y[:400])
    return model, X[:400], y[:400], X[400:440], y[400:440]


def _refitted_changes(explainer, X_test, y_test, groups, target="loss"):
    retrain = explainer.retrainer(X_test, y_test, target=target)
    base = retrain(None)
    return np.stack([retrain(g) - base for g in groups], axis=1)  # (test, groups)


def test_groups_by_mask_index_or_label_agree(cancer):
    model, X, y, Xt, yt = cancer
    exp = InfluenceExplainer(model, approximation="newton").fit(X, y)
    labels = np.where(X[:, 0] > 0.5, "high", np.where(X[:, 0] < -0.5, "low", "mid"))
    by_label = exp.group_influence(Xt, yt, pd.Series(labels))
    order = np.unique(labels)  # groups by label come in sorted order
    masks = [labels == value for value in order]
    by_mask = exp.group_influence(Xt, yt, masks)
    by_index = exp.group_influence(Xt, yt, [np.flatnonzero(m) for m in masks])
    by_list = exp.group_influence(Xt, yt, labels.tolist())  # a plain list of labels
    np.testing.assert_allclose(by_mask, by_label, rtol=1e-12)
    np.testing.assert_allclose(by_list, by_label, rtol=1e-12)
    np.testing.assert_allclose(by_index, by_label, rtol=1e-12)
    assert by_label.shape == (len(yt), 3)


def test_first_order_group_is_the_sum_of_row_influences(cancer):
    model, X, y, Xt, yt = cancer
    exp = InfluenceExplainer(model).fit(X, y)
    groups = [np.arange(10), np.arange(5, 40), [3, 77, 200]]  # overlapping
    full = exp.influence(Xt, yt)
    expected = np.stack([full[:, g].sum(axis=1) for g in groups], axis=1)
    np.testing.assert_allclose(exp.group_influence(Xt, yt, groups), expected, rtol=1e-9)


@pytest.mark.parametrize("size", [20, 43])  # 5 % and 10 % of the rows
def test_newton_groups_match_refits_where_the_sum_understates(cancer, size):
    """Random groups and groups sharing a feature range: one line-searched
    Newton step with the group's Hessian taken out agrees with refits
    (Pearson >= 0.99, slope within 0.9-1.1) on every group it does not warn
    about; the sum of single-row influences is further off; Newton
    iterations are exact."""
    model, X, y, Xt, yt = cancer
    rng = np.random.default_rng(0)
    order = np.argsort(X[:, 3])
    groups = [rng.choice(len(y), size, replace=False) for _ in range(4)]
    groups += [order[s : s + size] for s in (0, 150, 300, len(y) - size)]
    actual = _refitted_changes(InfluenceExplainer(model).fit(X, y), Xt, yt, groups)
    found, warned = {}, set()
    for approximation in ("influence", "newton", "refit"):
        exp = InfluenceExplainer(model, approximation=approximation).fit(X, y)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            found[approximation] = -exp.group_influence(Xt, yt, groups)
        for w in caught:  # "... (numbers [2, 5] in the order given; ..."
            listed = re.search(r"numbers \[([\d, ]+)\]", str(w.message))
            if listed:
                warned |= {int(g) for g in listed.group(1).split(",")}
    assert len(warned) <= 2  # the step is far from the optimum for few groups
    trusted = [g for g in range(len(groups)) if g not in warned]
    newton = agreement(found["newton"][:, trusted], actual[:, trusted])
    assert newton.pearson >= 0.99 and 0.9 <= newton.slope <= 1.1
    refit = agreement(found["refit"], actual)
    assert refit.pearson >= 0.9999 and abs(refit.slope - 1) <= 1e-3
    first = agreement(found["influence"][:, trusted], actual[:, trusted])
    assert abs(first.slope - 1) > abs(newton.slope - 1)


def test_newton_group_removal_is_exact_for_least_squares():
    X, y = make_regression(120, 6, noise=5.0, random_state=0)
    model = Ridge(alpha=2.0).fit(X, y)
    exp = InfluenceExplainer(model, approximation="newton").fit(X, y)
    groups = [np.arange(12), np.arange(30, 90, 2)]
    predicted = -exp.group_influence(X[:5], groups=groups, target="prediction")
    actual = _refitted_changes(exp, X[:5], None, groups, target="prediction")
    np.testing.assert_allclose(predicted, actual, rtol=1e-7, atol=1e-9)
    predicted = -exp.group_influence(X[:5], y[:5], groups)  # the loss, at the new outputs
    np.testing.assert_allclose(predicted, _refitted_changes(exp, X[:5], y[:5], groups), rtol=1e-7)


def test_the_newton_group_step_minimises_the_objective_along_its_direction(cancer):
    """``Delta = t* d``: the slope of the objective without the group along
    the step vanishes at ``Delta`` (an exact line search), and ``t*`` is not
    the pure step's 1 for a tenth of a logistic regression's rows."""
    model, X, y, Xt, yt = cancer
    exp = InfluenceExplainer(model, approximation="newton").fit(X, y)
    group = np.random.default_rng(1).choice(len(y), 43, replace=False)
    delta = exp.removal_.group_shifts([group])[:, 0]
    without = exp.removal_.data.without(group)
    theta, fitted = exp.state_.theta, exp.state_.gradient()

    def slope(t):
        return float((without.at(theta + t * delta).gradient() - fitted) @ delta)

    assert abs(slope(1.0)) <= 1e-5 * abs(slope(0.0))
    assert slope(0.9) < 0 < slope(1.1)  # a minimum along the line, not a saddle
    pure = -exp.removal_._step.minimiser.newton_step(
        without.at(theta), without.at(theta).gradient() - fitted
    )
    t = float(delta @ pure) / float(pure @ pure)
    np.testing.assert_allclose(delta, t * pure, rtol=1e-10, atol=1e-14)
    assert abs(t - 1) > 0.01


def test_a_newton_step_far_from_the_group_optimum_says_so(cancer):
    model, X, y, Xt, yt = cancer
    exp = InfluenceExplainer(model, approximation="newton").fit(X, y)
    most = np.argsort(X[:, 0])[:300]  # three quarters of the rows, all at one end
    with pytest.warns(RuntimeWarning, match="approximation='refit'"):
        exp.group_influence(Xt, yt, [most])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        exp.group_influence(Xt, yt, [np.arange(0, 400, 40)])


def test_most_influential_groups_ranks_the_summed_effect(cancer):
    model, X, y, Xt, yt = cancer
    exp = InfluenceExplainer(model).fit(X, y)
    source = pd.Series(np.arange(len(y)) % 4).map({0: "a", 1: "b", 2: "c", 3: "d"})
    table = exp.most_influential_groups(Xt, yt, source)
    effects = exp.group_influence(Xt, yt, source).sum(axis=0)  # groups a, b, c, d
    assert list(table.columns) == ["group", "n_rows", "influence", "mean_influence"]
    assert table["influence"].is_monotonic_decreasing
    by_group = dict(zip(table["group"], table["influence"], strict=True))
    np.testing.assert_allclose([by_group[g] for g in "abcd"], effects, rtol=1e-12)
    assert table["n_rows"].sum() == len(y)


@pytest.mark.parametrize(
    ("groups", "match"),
    [
        ([np.array([], dtype=int)], "has no rows"),
        ([np.ones(400, dtype=bool)], "every training row"),
        (np.arange(5), "one value per training row"),
        ([np.ones(10, dtype=bool)], "one entry per training row"),
        (None, "groups is required"),
    ],
    ids=["empty", "everything", "short-labels", "short-mask", "missing"],
)
def test_bad_groups_get_a_clear_error(cancer, groups, match):
    model, X, y, Xt, yt = cancer
    exp = InfluenceExplainer(model).fit(X, y)
    with pytest.raises(ValueError, match=match):
        exp.group_influence(Xt, yt, groups)


def test_a_group_holding_a_whole_class_is_refused(cancer):
    model, X, y, Xt, yt = cancer
    exp = InfluenceExplainer(model, approximation="newton").fit(X, y)
    with pytest.raises(ValueError, match="single class"):
        exp.group_influence(Xt, yt, [y == 0])


def test_hinge_groups_first_order_and_refused_on_the_path():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)[:300]
    y = y[:300]
    model = LinearSVC(loss="hinge", C=0.1, tol=1e-10, max_iter=200_000).fit(X, y)
    exp = InfluenceExplainer(model).fit(X, y)
    groups = [np.arange(30), np.arange(100, 160)]
    expected = np.stack([exp.influence(X[:3], y[:3])[:, g].sum(axis=1) for g in groups], axis=1)
    np.testing.assert_allclose(exp.group_influence(X[:3], y[:3], groups), expected, rtol=1e-8)
    path = InfluenceExplainer(model, approximation="path").fit(X, y)
    with pytest.raises(NotAvailableError, match="group removals"):
        path.group_influence(X[:3], y[:3], groups)


# ------------------------------------------------------------- relabelling
def test_relabel_refit_matches_real_refits_and_newton_says_when_it_cannot(cancer):
    """Flipping labels, including of rows the model is sure about: Newton
    iterations (with a line search) agree with refits to Pearson >= 0.99; a
    single Newton step warns where it stays far from the relabelled optimum."""
    model, X, y, Xt, yt = cancer
    sure = np.argsort(-np.abs(model.decision_function(X)))[:4]
    rows = np.concatenate([sure, [0, 1, 2, 3]])
    labels = 1 - y[rows]
    retrain = InfluenceExplainer(model).fit(X, y).retrainer(Xt, yt)
    base, actual = retrain(None), []
    for row, label in zip(rows, labels, strict=True):
        flipped = y.copy()
        flipped[row] = label
        refit = LogisticRegression(**TIGHT).fit(X, flipped)
        p = refit.predict_proba(Xt)[np.arange(len(yt)), yt]
        actual.append(-np.log(p) - base)
    actual = np.stack(actual, axis=1)
    exact = InfluenceExplainer(model, approximation="refit").fit(X, y)
    found = agreement(-exact.relabel_influence(Xt, yt, rows, labels), actual)
    assert found.pearson >= 0.99 and abs(found.slope - 1) <= 0.01
    newton = InfluenceExplainer(model, approximation="newton").fit(X, y)
    with pytest.warns(RuntimeWarning, match="approximation='refit'"):
        newton.relabel_influence(Xt, yt, rows, labels)


def test_relabel_to_the_same_label_changes_nothing_and_regression_is_exact():
    X, y = make_regression(80, 4, noise=3.0, random_state=2)
    model = Ridge(alpha=1.0).fit(X, y)
    exp = InfluenceExplainer(model, approximation="newton").fit(X, y)
    same = exp.relabel_influence(X[:3], y[:3], [5, 9], y[[5, 9]])
    np.testing.assert_allclose(same, 0.0, atol=1e-10)
    new = y[[5, 9]] + np.array([30.0, -50.0])
    predicted = -exp.relabel_influence(X[:3], rows=[5, 9], labels=new, target="prediction")
    retrain = exp.retrainer(X[:3], target="prediction")
    base = retrain(None)
    for k, (row, value) in enumerate(zip([5, 9], new, strict=True)):
        changed = y.copy()
        changed[row] = value
        actual = Ridge(alpha=1.0).fit(X, changed).predict(X[:3]) - base
        np.testing.assert_allclose(predicted[:, k], actual, rtol=1e-7, atol=1e-9)


def test_relabel_checks_its_labels(cancer):
    model, X, y, Xt, yt = cancer
    exp = InfluenceExplainer(model).fit(X, y)
    with pytest.raises(ValueError, match="not fitted on"):
        exp.relabel_influence(Xt, yt, [1, 2], [0, 7])
    with pytest.raises(ValueError, match="one new label per row"):
        exp.relabel_influence(Xt, yt, [1, 2, 3], [0, 1])
    with pytest.raises(ValueError, match="rows is required"):
        exp.relabel_influence(Xt, yt)


def test_groups_and_relabels_on_a_mixed_table_with_string_labels():
    """A table shaped like users' tables: string labels, a categorical and an
    integer-coded column, missing values and duplicated rows, through the
    default preprocessing. Group removal and relabelling with
    approximation="refit" match real refits of the pipeline's final step."""
    from sklearn.pipeline import make_pipeline

    from skinfluence.preprocessing import TabularPreprocessor

    rng = np.random.default_rng(4)
    n = 240
    frame = pd.DataFrame(
        {
            "income": rng.normal(50, 15, n).round(0),
            "rooms": rng.integers(1, 6, n),
            "region": rng.choice(["north", "south", "east"], n),
        }
    )
    frame.loc[rng.choice(n, 12, replace=False), "income"] = np.nan
    frame.loc[rng.choice(n, 8, replace=False), "region"] = None
    logit = 0.05 * (frame["income"].fillna(50) - 50) + 0.4 * (frame["region"] == "south")
    y = np.where(logit + rng.logistic(size=n) > 0, "yes", "no")
    frame = pd.concat([frame, frame.iloc[:30]], ignore_index=True)  # duplicated rows
    y = np.concatenate([y, y[:30]])
    model = make_pipeline(TabularPreprocessor(), LogisticRegression(**TIGHT)).fit(frame, y)
    exp = InfluenceExplainer(model, approximation="refit").fit(frame, y)
    test = frame.iloc[:6]
    groups = frame["region"].fillna("missing")
    predicted = -exp.group_influence(test, y[:6], groups)
    retrain = exp.retrainer(test, y[:6])
    base = retrain(None)
    for g, value in enumerate(np.unique(groups)):
        actual = retrain(np.flatnonzero(groups == value)) - base
        np.testing.assert_allclose(predicted[:, g], actual, rtol=1e-4, atol=1e-8)
    rows = [0, 240]  # a row and its duplicate
    flipped = np.where(y[rows] == "yes", "no", "yes")
    predicted = -exp.relabel_influence(test, y[:6], rows, flipped)
    Xf = exp.feature_map_.transform(frame)
    for k, (row, label) in enumerate(zip(rows, flipped, strict=True)):
        changed = y.copy()
        changed[row] = label
        refit = LogisticRegression(**TIGHT).fit(Xf, changed)
        proba = refit.predict_proba(exp.feature_map_.transform(test))
        own = -np.log(proba[np.arange(6), np.searchsorted(refit.classes_, y[:6])])
        np.testing.assert_allclose(predicted[:, k], own - base, rtol=1e-4, atol=1e-8)
