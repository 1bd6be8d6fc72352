"""TabularPreprocessor: the preprocessing shared by the command line and the
label cleaner's default model, on mixed-type tables."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from skinfluence import InfluenceExplainer
from skinfluence.cleaning import InfluenceLabelCleaner
from skinfluence.cleaning._cleaner import default_estimator
from skinfluence.cli import build_model
from skinfluence.preprocessing import (
    IdLikeColumnWarning,
    TabularPreprocessor,
    find_id_like_columns,
)


def mixed_table(n=240, n_flip=20, seed=0):
    """A learnable mixed-dtype table: float with missing values, a nullable
    integer code, strings with missing values, booleans, a one-hot block,
    string labels, some duplicated rows and ``n_flip`` flipped labels."""
    rng = np.random.default_rng(seed)
    dose = rng.normal(size=n)
    grade = rng.integers(0, 4, n)  # integer-coded ordinal
    smoker = rng.choice(["yes", "no"], n)
    treated = rng.random(n) < 0.5
    region = rng.choice(["a", "b", "c"], n)
    logit = 2.0 * dose + 0.8 * (grade - 1.5) + 1.5 * (smoker == "yes") - 0.75 + 1.0 * treated
    truth = np.where(logit > 0, "sick", "healthy")
    X = pd.DataFrame(
        {
            "dose": dose,
            "grade": pd.array(grade, dtype="Int64"),
            "smoker": smoker.astype(object),
            "treated": treated,
        }
    )
    for r in "abc":  # a region given as one-hot columns
        X[f"region_{r}"] = (region == r).astype(int)
    X.loc[::11, "dose"] = np.nan
    X.loc[3::13, "grade"] = pd.NA
    X.loc[5::17, "smoker"] = None
    dup = rng.choice(n, 10, replace=False)  # duplicate rows, as real tables have
    X = pd.concat([X, X.iloc[dup]], ignore_index=True)
    truth = np.concatenate([truth, truth[dup]])
    y = truth.copy()
    flipped = rng.choice(len(y), n_flip, replace=False)
    y[flipped] = np.where(y[flipped] == "sick", "healthy", "sick")
    return X, y, np.sort(flipped)


def test_transform_matches_hand_computation():
    X, _, _ = mixed_table()
    prep = TabularPreprocessor().fit(X)
    assert prep.numeric_columns_ == ["dose", "grade", "region_a", "region_b", "region_c"]
    assert prep.categorical_columns_ == ["smoker", "treated"]
    Z = np.asarray(prep.transform(X))
    names = list(prep.get_feature_names_out())
    # numeric: median imputation, then standardisation with the population std
    dose = X["dose"].fillna(X["dose"].median()).to_numpy()
    np.testing.assert_allclose(Z[:, names.index("num__dose")], (dose - dose.mean()) / dose.std())
    grade = X["grade"].astype(float).fillna(X["grade"].astype(float).median()).to_numpy()
    np.testing.assert_allclose(
        Z[:, names.index("num__grade")], (grade - grade.mean()) / grade.std()
    )
    # strings: most frequent value for the missing ones, then one-hot
    smoker = X["smoker"].fillna(X["smoker"].mode()[0])
    for value in ("no", "yes"):
        np.testing.assert_array_equal(
            Z[:, names.index(f"cat__smoker_{value}")], (smoker == value).astype(float)
        )
    np.testing.assert_array_equal(Z[:, names.index("cat__treated_True")], X["treated"])
    assert Z.shape[1] == 5 + 2 + 2
    assert not np.isnan(Z).any()


def test_unseen_category_and_input_untouched():
    X, _, _ = mixed_table()
    before = X.copy()
    prep = TabularPreprocessor().fit(X)
    pd.testing.assert_frame_equal(X, before)  # the user's table is not modified
    new = X.iloc[:2].copy()
    new["smoker"] = ["sometimes", "yes"]
    Z = np.asarray(prep.transform(new))
    names = list(prep.get_feature_names_out())
    cols = [names.index("cat__smoker_no"), names.index("cat__smoker_yes")]
    np.testing.assert_array_equal(Z[:, cols], [[0.0, 0.0], [0.0, 1.0]])  # unseen: all zeros


def test_numeric_array_is_a_standard_scaler():
    """On an array of numbers the cleaner's default is what it was before:
    a StandardScaler."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 4)) * [1, 10, 100, 0.1]
    np.testing.assert_allclose(
        TabularPreprocessor().fit_transform(X), StandardScaler().fit_transform(X)
    )
    # object arrays are read column by column
    obj = np.empty((50, 2), dtype=object)
    obj[:, 0] = X[:, 0]
    obj[:, 1] = np.where(X[:, 1] > 0, "up", "down")
    prep = TabularPreprocessor().fit(obj)
    assert prep.numeric_columns_ == [0] and prep.categorical_columns_ == [1]
    assert prep.transform(obj).shape == (50, 3)


def test_cleaner_default_on_mixed_dataframe_finds_flips():
    """InfluenceLabelCleaner() on a DataFrame with strings, missing values and
    string labels: it used to fail inside StandardScaler."""
    X, y, flipped = mixed_table()
    cleaner = InfluenceLabelCleaner(fraction=0.1)
    X_clean, y_clean = cleaner.fit_resample(X, y)
    n_flag = int(np.ceil(0.1 * len(y)))
    assert len(X_clean) == len(y_clean) == len(y) - n_flag
    assert isinstance(X_clean, pd.DataFrame)
    assert set(np.unique(y_clean)) == {"healthy", "sick"}
    hits = np.isin(np.flatnonzero(cleaner.flagged_), flipped).sum()
    # 20 flips among 250 rows, 25 rows flagged: most flagged rows are flips
    assert hits >= 0.6 * len(flipped), hits
    # the default model is the preprocessor plus a logistic regression
    assert isinstance(cleaner.estimator_[0], TabularPreprocessor)


def test_influence_through_the_preprocessor_matches_refits():
    """The explainer treats the preprocessor as a fixed feature map: the
    predicted change of a test loss when a row is removed agrees with
    refitting the final model on the same encoded features without it."""
    X, y, _ = mixed_table(n=120, n_flip=5)
    model = default_estimator().fit(X, y)
    exp = InfluenceExplainer(model, approximation="newton").fit(X, y)
    X_test, y_test = X.iloc[:3], y[:3]
    infl = exp.influence(X_test, y_test)
    Z, Z_test = model[0].transform(X), model[0].transform(X_test)
    clf = model[-1]
    col = {c: k for k, c in enumerate(clf.classes_)}
    idx = np.array([col[v] for v in y_test])

    def loss(est):
        p = est.predict_proba(Z_test)[np.arange(3), idx]
        return -np.log(p)

    base = loss(clf)
    rows = np.argsort(-np.abs(infl).sum(0))[:8]
    actual = []
    for i in rows:
        keep = np.arange(len(y)) != i
        refit = LogisticRegression(**clf.get_params()).fit(Z[keep], y[keep])
        actual.append(loss(refit) - base)
    actual = np.array(actual).T
    predicted = -infl[:, rows]
    assert np.corrcoef(predicted.ravel(), actual.ravel())[0, 1] > 0.99
    slope = (predicted.ravel() @ actual.ravel()) / (predicted.ravel() @ predicted.ravel())
    assert abs(slope - 1) < 0.1


def test_cli_and_cleaner_share_the_preprocessor():
    assert isinstance(build_model("logistic")[0], TabularPreprocessor)
    assert isinstance(default_estimator()[0], TabularPreprocessor)


def test_id_like_columns():
    n = 60
    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        {
            "name": [f"patient-{i}" for i in range(n)],
            "rownames": np.arange(1, n + 1),
            "shuffled_index": rng.permutation(n + 20)[:n],  # a split of a range
            "income": rng.choice(10**6, n, replace=False),  # distinct, but spread out
            "weight": rng.normal(size=n),  # distinct floats are measurements
            "count": rng.integers(0, 5, n),
            "town": rng.choice(["x", "y"], n),
        }
    )
    found = find_id_like_columns(X)
    assert set(found) == {"name", "rownames", "shuffled_index"}
    assert "distinct" in found["name"] and "1 to 60" in found["rownames"]
    with pytest.warns(IdLikeColumnWarning, match=r"'name'.*'rownames'") as record:
        TabularPreprocessor().fit(X)
    assert "X.drop(columns=['name', 'rownames', 'shuffled_index'])" in str(record[0].message)
    # too few rows to tell; a missing value means it is not an identifier
    assert find_id_like_columns(X.iloc[:5]) == {}
    X.loc[0, "name"] = None
    assert "name" not in find_id_like_columns(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", IdLikeColumnWarning)
        TabularPreprocessor().fit(X[["weight", "count", "town"]])  # no warning


def test_sparse_input_is_scaled_without_centring():
    import scipy.sparse as sp

    X = sp.random(40, 6, density=0.3, format="csr", random_state=0) * 5
    Z = TabularPreprocessor().fit_transform(X)
    assert sp.issparse(Z) and Z.nnz == X.nnz
    np.testing.assert_allclose(Z.toarray().std(0), 1.0)


def test_docstring_examples():
    import doctest

    import skinfluence.preprocessing as module

    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


@parametrize_with_checks([TabularPreprocessor()])
def test_sklearn_contract(estimator, check):
    check(estimator)
