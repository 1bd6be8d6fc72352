"""Label cleaning: InfluenceLabelCleaner, CleanLabelsClassifier, the review
simulation and its display."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.linear_model import LogisticRegression, RidgeClassifier, SGDClassifier
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from skinfluence import InfluenceExplainer
from skinfluence.cleaning import (
    DEFAULT_METHOD,
    METHODS,
    CleanLabelsClassifier,
    InfluenceLabelCleaner,
    simulate_review,
)
from skinfluence.cleaning._scoring import (
    ITERATIVE_ROUNDS,
    ITERATIVE_STEP,
    RowScorer,
    noise_posterior,
)


def _lr(**kw):
    return make_pipeline(StandardScaler(), LogisticRegression(tol=1e-8, max_iter=10_000, **kw))


def _flip(y, rate, seed):
    """Flip ``round(rate * n)`` labels to another class at random."""
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    rows = rng.choice(len(y), int(round(rate * len(y))), replace=False)
    noisy = y.copy()
    for i in rows:
        noisy[i] = rng.choice(classes[classes != y[i]])
    return noisy, np.sort(rows)


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    y_noisy, flipped = _flip(y, 0.10, seed=0)
    return X, y, y_noisy, flipped


@pytest.fixture(scope="module")
def fitted(cancer):
    X, _, y_noisy, _ = cancer
    return {
        m: InfluenceLabelCleaner(_lr(), method=m, fraction=0.1).fit(X, y_noisy)
        for m in (
            "loo_loss",
            "loo_newton",
            "training_loss",
            "self_influence",
            "iterative",
            "noise_aware",
        )
    }


# ---------------------------------------------------------------- finding flips
@pytest.mark.parametrize(
    "method",
    ["loo_loss", "loo_newton", "training_loss", "self_influence", "iterative", "noise_aware"],
)
def test_finds_far_more_flips_than_random(cancer, fitted, method):
    _, _, _, flipped = cancer
    cleaner = fitted[method]
    found = np.intersect1d(np.flatnonzero(cleaner.flagged_), flipped).size / flipped.size
    # checking 10 % of the rows at random finds 10 % of the flips
    assert found >= 0.6, found
    assert cleaner.n_flagged_ == int(np.ceil(0.1 * len(cleaner.scores_)))


def test_default_method_is_documented():
    assert DEFAULT_METHOD in METHODS
    assert InfluenceLabelCleaner().method == DEFAULT_METHOD
    assert CleanLabelsClassifier().method == DEFAULT_METHOD


def test_scores_are_the_explainers_quantities(cancer, fitted):
    X, _, y_noisy, _ = cancer
    est = fitted["loo_loss"].estimator_
    exp = InfluenceExplainer(est).fit(X, y_noisy)
    linear = exp.training_loss() + exp.self_influence()
    np.testing.assert_allclose(fitted["loo_loss"].scores_, linear)
    np.testing.assert_allclose(fitted["training_loss"].scores_, exp.training_loss())
    np.testing.assert_allclose(fitted["self_influence"].scores_, exp.self_influence())
    newton = InfluenceExplainer(est, approximation="newton").fit(X, y_noisy)
    np.testing.assert_allclose(
        fitted["loo_newton"].scores_, newton.training_loss() + newton.self_influence()
    )


def test_suggested_labels_are_leave_one_out_predictions(cancer, fitted):
    """The suggested label is what a model refitted without the row predicts."""
    X, _, y_noisy, _ = cancer
    cleaner = fitted["loo_newton"]
    pipe = cleaner.estimator_
    Xf = pipe[:-1].transform(X)
    order = np.argsort(-cleaner.scores_)
    rows = np.concatenate([order[:4], order[-2:]])
    for i in rows:
        keep = np.arange(len(y_noisy)) != i
        refit = clone(pipe[-1]).fit(Xf[keep], y_noisy[keep])
        assert refit.predict(Xf[i : i + 1])[0] == cleaner.suggested_labels_[i]
    # most suspicious rows: the leave-one-out model disagrees with the label
    assert np.all(cleaner.suggested_labels_[order[:4]] != y_noisy[order[:4]])


def test_label_issues_frame_keeps_index(cancer):
    X, _, y_noisy, _ = cancer
    index = pd.Index([f"r{i}" for i in range(len(y_noisy))], name="id")[::-1]
    Xdf = pd.DataFrame(X, index=index, columns=[f"f{j}" for j in range(X.shape[1])])
    ys = pd.Series(y_noisy, index=index)
    cleaner = InfluenceLabelCleaner(_lr(), n_flag=7).fit(Xdf, ys)
    issues = cleaner.label_issues_
    assert issues.index.equals(index)
    assert {"score", "rank", "given_label", "suggested_label", "flagged"} <= set(issues)
    assert issues["flagged"].sum() == 7
    assert issues["rank"].min() == 1
    top = issues["score"].idxmax()
    assert issues.loc[top, "rank"] == 1 and issues.loc[top, "flagged"]
    assert (issues.loc[issues["flagged"], "rank"] <= 7).all()
    np.testing.assert_array_equal(issues["given_label"], y_noisy)
    assert list(cleaner.feature_names_in_) == list(Xdf.columns)
    # resampled DataFrame keeps its (filtered) index
    Xc, yc = cleaner.fit_resample(Xdf, ys)
    assert isinstance(Xc, pd.DataFrame) and isinstance(yc, pd.Series)
    assert Xc.index.equals(index[~issues["flagged"].to_numpy()])
    assert yc.index.equals(Xc.index)


def test_flag_rules(cancer):
    X, _, y_noisy, flipped = cancer
    auto = InfluenceLabelCleaner(_lr()).fit(X, y_noisy)
    assert auto.n_flagged_ == auto.n_auto_
    # the automatic count (leave-one-out misclassifications) is near the 57 flips
    assert flipped.size * 0.8 <= auto.n_auto_ <= flipped.size * 1.5
    precision = np.isin(np.flatnonzero(auto.flagged_), flipped).mean()
    assert precision > 0.6  # random: 0.1
    thr = InfluenceLabelCleaner(_lr(), threshold=auto.threshold_).fit(X, y_noisy)
    np.testing.assert_array_equal(thr.flagged_, auto.scores_ >= auto.threshold_)
    none = InfluenceLabelCleaner(_lr(), fraction=0.0).fit(X, y_noisy)
    assert none.n_flagged_ == 0 and np.isinf(none.threshold_)
    with pytest.raises(ValueError, match="at most one of fraction, n_flag and threshold"):
        InfluenceLabelCleaner(_lr(), fraction=0.1, n_flag=3).fit(X, y_noisy)
    with pytest.raises(ValueError, match="fraction"):
        InfluenceLabelCleaner(_lr(), fraction=1.5).fit(X, y_noisy)


def test_relabel_fixes_flips(cancer, fitted):
    X, y, y_noisy, flipped = cancer
    cleaner = clone(fitted["loo_loss"]).set_params(action="relabel")
    Xr, yr = cleaner.fit_resample(X, y_noisy)
    assert Xr is X and yr.shape == y_noisy.shape
    changed = np.flatnonzero(yr != y_noisy)
    assert set(changed) <= set(np.flatnonzero(cleaner.flagged_))
    # most changes restore the true label
    assert (yr[changed] == y[changed]).mean() > 0.8
    assert (yr != y).sum() < (y_noisy != y).sum() / 2


def test_never_removes_a_class():
    X, y = load_wine(return_X_y=True)
    X, y = X[::6], y[::6]
    cleaner = InfluenceLabelCleaner(_lr(), fraction=1.0).fit(X, y)
    _, yc = cleaner.fit_resample(X, y)
    assert set(np.unique(yc)) == set(np.unique(y))
    assert len(yc) == 3


def test_string_labels_multiclass_and_other_models():
    X, y = load_wine(return_X_y=True)
    names = np.array(["barolo", "grignolino", "barbera"])[y]
    noisy, flipped = _flip(names, 0.1, seed=1)
    for est in (
        _lr(),
        make_pipeline(StandardScaler(), RidgeClassifier(alpha=1.0)),
        make_pipeline(
            StandardScaler(),
            SGDClassifier(loss="log_loss", alpha=0.01, tol=None, max_iter=2000, random_state=0),
        ),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SGD stops near, not at, the optimum
            cleaner = InfluenceLabelCleaner(est, fraction=0.1).fit(X, noisy)
        found = np.isin(np.flatnonzero(cleaner.flagged_), flipped).mean()
        assert found > 0.6, (est, found)
        assert set(cleaner.suggested_labels_) <= set(names)


def test_validation_influence(cancer):
    X, y, y_noisy, flipped = cancer
    rng = np.random.default_rng(3)
    val = rng.choice(len(y), 60, replace=False)
    train = np.setdiff1d(np.arange(len(y)), val)
    cleaner = InfluenceLabelCleaner(_lr(), method="validation_influence", fraction=0.1)
    cleaner.fit(X[train], y_noisy[train], X_val=X[val], y_val=y[val])
    exp = InfluenceExplainer(cleaner.estimator_).fit(X[train], y_noisy[train])
    expected = exp.influence(X[val], y[val]).mean(axis=0)
    np.testing.assert_allclose(cleaner.scores_, expected, rtol=1e-10, atol=1e-12)
    found = np.isin(train[cleaner.flagged_], flipped).sum()
    assert found > 3 * 0.1 * np.isin(train, flipped).sum()  # well above random
    with pytest.raises(ValueError, match="X_val and y_val"):
        InfluenceLabelCleaner(_lr(), method="validation_influence").fit(X, y_noisy)
    clf = CleanLabelsClassifier(_lr(), method="validation_influence", fraction=0.1)
    clf.fit(X[train], y_noisy[train], X_val=X[val], y_val=y[val])
    np.testing.assert_array_equal(clf.cleaner_.flagged_, cleaner.flagged_)
    assert clf.estimator_[-1].coef_.shape == (1, X.shape[1])


def test_single_class_is_an_error():
    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ValueError, match="one class"):
        InfluenceLabelCleaner(_lr()).fit(X, np.zeros(20))


def test_pickle_roundtrip(cancer, fitted):
    X, _, y_noisy, _ = cancer
    cleaner = pickle.loads(pickle.dumps(fitted["loo_loss"]))
    np.testing.assert_array_equal(cleaner.flagged_, fitted["loo_loss"].flagged_)
    clf = pickle.loads(pickle.dumps(CleanLabelsClassifier(_lr(), n_flag=5).fit(X, y_noisy)))
    assert clf.predict(X[:3]).shape == (3,)


# ------------------------------------------------------------------ pipelines
def test_cleaner_in_imblearn_pipeline(cancer):
    from imblearn.pipeline import Pipeline as ImbPipeline

    X, y, y_noisy, _ = cancer
    X_tr, X_te, y_tr, y_te = train_test_split(X, y_noisy, random_state=0, stratify=y_noisy)
    pipe = ImbPipeline(
        [
            ("clean", InfluenceLabelCleaner(_lr(), fraction=0.1)),
            ("scale", StandardScaler()),
            ("clf", LogisticRegression()),
        ]
    ).fit(X_tr, y_tr)
    cleaner = pipe.named_steps["clean"]
    assert cleaner.n_flagged_ == int(np.ceil(0.1 * len(y_tr)))
    assert pipe.named_steps["scale"].n_samples_seen_ == len(y_tr) - cleaner.n_flagged_
    # prediction never drops rows
    assert pipe.predict(X_te).shape == (len(y_te),)
    assert pipe.score(X_te, y_te) > 0.8


def test_classifier_in_pipeline_cross_val_and_grid_search(cancer):
    X, y, y_noisy, _ = cancer
    X_tr, X_te, y_tr, y_te = train_test_split(X, y_noisy, random_state=1, stratify=y_noisy)
    _, _, _, y_te_true = train_test_split(X, y, random_state=1, stratify=y_noisy)
    pipe = make_pipeline(StandardScaler(), CleanLabelsClassifier(LogisticRegression(tol=1e-8)))
    scores = cross_val_score(pipe, X_tr, y_tr, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.8
    grid = GridSearchCV(
        CleanLabelsClassifier(_lr()),
        {"fraction": [0.0, 0.1], "method": ["loo_loss", "training_loss"]},
        cv=3,
    ).fit(X_tr, y_tr)
    assert grid.best_estimator_.cleaner_.n_flagged_ == (
        0 if grid.best_params_["fraction"] == 0.0 else int(np.ceil(0.1 * len(y_tr)))
    )
    assert grid.predict_proba(X_te).shape == (len(y_te), 2)
    # cleaning the noisy training labels does not hurt on clean test labels
    plain = _lr().fit(X_tr, y_tr).score(X_te, y_te_true)
    cleaned = CleanLabelsClassifier(_lr(), fraction=0.1).fit(X_tr, y_tr).score(X_te, y_te_true)
    assert cleaned >= plain - 0.01


@parametrize_with_checks(
    [
        CleanLabelsClassifier(LogisticRegression(tol=1e-8, max_iter=1000)),
        CleanLabelsClassifier(
            LogisticRegression(tol=1e-8, max_iter=1000), fraction=0.1, action="relabel"
        ),
    ]
)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny check data sets: NotAtOptimum, convergence
        check(estimator)


# --------------------------------------------------------------- review curves
@pytest.fixture(scope="module")
def review(cancer):
    X, y, y_noisy, _ = cancer
    X_tr, X_te, y_tr, y_te, yn_tr, _ = train_test_split(X, y, y_noisy, random_state=0, stratify=y)
    return simulate_review(
        _lr(),
        X_tr,
        yn_tr,
        y_tr,
        X_test=X_te,
        y_test=y_te,
        methods=["random", "training_loss", "loo_loss"],
        fractions=[0.0, 0.1, 0.2],
        random_state=0,
    )


def test_simulate_review(review):
    assert review.methods == ["random", "training_loss", "loo_loss"]
    for m in review.methods:
        assert review.found[m][0] == 0.0
        assert np.all(np.diff(review.found[m]) >= 0)
    assert review.found["loo_loss"][2] > 2 * review.found["random"][2]
    assert review.accuracy["loo_loss"][2] >= review.accuracy_noisy - 0.02
    frame = review.to_frame()
    assert frame.shape == (9, 4)


def test_review_display(review):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from skinfluence.plotting import ReviewCurveDisplay

    disp = ReviewCurveDisplay.from_result(review)
    assert len(disp.ax_) == 2 and len(disp.lines_) == 6
    np.testing.assert_allclose(
        disp.lines_[("found", "loo_loss")].get_ydata(), review.found["loo_loss"]
    )
    fig, ax = plt.subplots()
    disp = ReviewCurveDisplay(review).plot(metric="accuracy", ax=ax)
    assert disp.ax_ is ax and disp.figure_ is fig
    with pytest.raises(ValueError, match="needs 2 axes"):
        ReviewCurveDisplay(review).plot(ax=ax)
    plt.close("all")


# ------------------------------------------------------------ iterative removal
def _separable_with_flips(seed=0, n=240, p=60, separation=5.0, rate=0.1):
    """Two Gaussian classes whose means are ``separation`` apart, n / p = 4,
    with planted flips: the regime where a single fit bends towards flipped
    rows (nearly separable, many parameters per row)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    mu = rng.normal(size=p)
    mu *= separation / np.linalg.norm(mu)
    X = rng.normal(size=(n, p)) + np.outer(2 * y - 1, mu) / 2
    rows = rng.choice(n, int(rate * n), replace=False)
    noisy = y.copy()
    noisy[rows] = 1 - noisy[rows]
    return X, y, noisy, np.sort(rows)


def test_iterative_scores_are_losses_of_the_refitted_model():
    """The last round's scores, recomputed from scratch: refit the final step
    on the kept rows; kept rows get loo_newton of that model, dropped rows
    their log-loss under it."""
    X, _, noisy, _ = _separable_with_flips()
    fitted = _lr().fit(X, noisy)
    scorer = RowScorer(fitted, X, noisy)
    scores = scorer.score("iterative")
    dropped = scorer._cache["iterative_dropped"]
    n = len(noisy)
    assert 0 < dropped.sum() <= ITERATIVE_ROUNDS * round(ITERATIVE_STEP * n)
    keep = ~dropped
    Xf = fitted[:-1].transform(X)
    final = clone(fitted[-1]).set_params(tol=1e-12).fit(Xf[keep], noisy[keep])
    proba = final.predict_proba(Xf[dropped])
    np.testing.assert_allclose(
        scores[dropped], -np.log(proba[np.arange(dropped.sum()), noisy[dropped]]), rtol=1e-5
    )
    exp = InfluenceExplainer(final, approximation="newton").fit(Xf[keep], noisy[keep])
    np.testing.assert_allclose(
        scores[keep], exp.training_loss() + exp.self_influence(), rtol=1e-5, atol=1e-8
    )
    # the suggested labels come from the same model: leave-one-out predictions
    # for kept rows, plain predictions for dropped ones
    suggested = scorer.suggested_labels("iterative")
    np.testing.assert_array_equal(suggested[dropped], final.predict(Xf[dropped]))
    for i in np.flatnonzero(keep)[:3]:
        rows = keep.copy()
        rows[i] = False
        refit = clone(final).fit(Xf[rows], noisy[rows])
        assert refit.predict(Xf[i : i + 1])[0] == suggested[i]


def test_iterative_beats_one_shot_where_the_model_memorises():
    X, _, noisy, flipped = _separable_with_flips(seed=1)
    found = {}
    for method in ("loo_newton", "iterative"):
        cleaner = InfluenceLabelCleaner(_lr(), method=method, fraction=0.1).fit(X, noisy)
        found[method] = np.isin(np.flatnonzero(cleaner.flagged_), flipped).mean()
    assert found["iterative"] >= found["loo_newton"] + 0.1, found


def test_iterative_does_not_modify_the_estimator(cancer):
    X, _, y_noisy, _ = cancer
    est = _lr()
    cleaner = InfluenceLabelCleaner(est, method="iterative", fraction=0.05).fit(X, y_noisy)
    assert not hasattr(est[-1], "coef_")
    assert cleaner.estimator_[-1].get_params()["warm_start"] is False
    # the cleaner's fitted estimator is the fit on all rows
    full = _lr().fit(X, y_noisy)
    np.testing.assert_allclose(cleaner.estimator_[-1].coef_, full[-1].coef_, rtol=1e-6)


# ---------------------------------------------------------------- noise aware
def test_noise_posterior_recovers_the_flip_matrix():
    """Labels drawn from known clean probabilities through a known
    class-conditional flip matrix: EM finds that matrix, and the posteriors
    are Bayes' rule with it."""
    rng = np.random.default_rng(0)
    n, K = 20_000, 3
    P = rng.dirichlet(np.full(K, 0.3), size=n)
    T_true = np.array([[0.9, 0.1, 0.0], [0.0, 0.7, 0.3], [0.05, 0.05, 0.9]])
    clean = np.array([rng.choice(K, p=p) for p in P])
    given = np.array([rng.choice(K, p=T_true[k]) for k in clean])
    T, R = noise_posterior(P, given)
    np.testing.assert_allclose(T.sum(axis=1), 1.0)
    np.testing.assert_allclose(T, T_true, atol=0.03)
    bayes = P * T[:, given].T
    np.testing.assert_allclose(R, bayes / bayes.sum(axis=1, keepdims=True), atol=1e-9)

    # the likelihood at the estimate beats the truth's (maximum likelihood)
    def loglik(T_):
        return np.log((P * T_[:, given].T).sum(axis=1)).sum()

    assert loglik(T) >= loglik(T_true) - 1e-6


def test_noise_aware_scores_are_the_flip_posterior(cancer, fitted):
    X, _, y_noisy, _ = cancer
    cleaner = fitted["noise_aware"]
    exp = InfluenceExplainer(cleaner.estimator_, approximation="newton").fit(X, y_noisy)
    p1 = 1.0 / (1.0 + np.exp(-exp.leave_one_out_decision()[:, 0]))
    P = np.column_stack([1 - p1, p1])
    T, _ = noise_posterior(P, y_noisy)
    given = P[np.arange(len(y_noisy)), y_noisy] * T[y_noisy, y_noisy]
    other = P[np.arange(len(y_noisy)), 1 - y_noisy] * T[1 - y_noisy, y_noisy]
    np.testing.assert_allclose(cleaner.scores_, other / (given + other), rtol=1e-8, atol=1e-12)
    with pytest.raises(ValueError, match="needs class probabilities"):
        InfluenceLabelCleaner(
            make_pipeline(StandardScaler(), RidgeClassifier()), method="noise_aware"
        ).fit(X, y_noisy)


# ------------------------------------------------------------------ relabel
def test_relabel_suggests_the_most_likely_leave_one_out_class():
    """Multi-class: the suggested label of a flagged row is the class with the
    highest probability under the model refitted without it."""
    X, y = load_wine(return_X_y=True)
    noisy, flipped = _flip(y, 0.1, seed=2)
    cleaner = InfluenceLabelCleaner(
        _lr(), method="loo_newton", n_flag=flipped.size, action="relabel"
    )
    Xr, yr = cleaner.fit_resample(X, noisy)
    Xf = cleaner.estimator_[:-1].transform(X)
    for i in np.flatnonzero(cleaner.flagged_)[:4]:
        keep = np.arange(len(noisy)) != i
        refit = clone(cleaner.estimator_[-1]).fit(Xf[keep], noisy[keep])
        proba = refit.predict_proba(Xf[i : i + 1])[0]
        assert cleaner.suggested_labels_[i] == refit.classes_[np.argmax(proba)]
        assert yr[i] == cleaner.suggested_labels_[i]
    assert np.array_equal(yr[~cleaner.flagged_], noisy[~cleaner.flagged_])
    # relabelling the flagged rows restores most flipped labels
    assert (yr != y).sum() <= (noisy != y).sum() / 2


def test_iterative_relabel_fixes_flips():
    X, y, noisy, _ = _separable_with_flips(seed=3)
    cleaner = InfluenceLabelCleaner(_lr(), method="iterative", action="relabel")
    _, yr = cleaner.fit_resample(X, noisy)
    assert (yr != y).sum() < 0.3 * (noisy != y).sum()


def _refitted_fix_effects(cleaner, X, y, X_judge, y_judge):
    """The change of the judges' summed log-loss when each flagged row gets
    its suggested label and the whole pipeline is refitted with scikit-learn."""

    def loss(model):
        proba = model.predict_proba(X_judge)
        cols = np.searchsorted(model.classes_, y_judge)
        return -np.log(proba[np.arange(len(y_judge)), cols]).sum()

    base = loss(cleaner.estimator_)
    rows = np.flatnonzero(cleaner.flagged_ & (cleaner.suggested_labels_ != y))
    real = []
    for i in rows:
        y_fixed = y.copy()
        y_fixed[i] = cleaner.suggested_labels_[i]
        real.append(loss(clone(cleaner.estimator_).fit(X, y_fixed)) - base)
    return rows, np.array(real)


@pytest.mark.parametrize(
    "approximation, pearson", [("refit", 0.9999), ("influence", 0.9)]
)  # fmt: skip
def test_relabel_fix_effects_agree_with_refits(approximation, pearson):
    """``fix_effects_``: the predicted change of the unflagged rows' summed
    loss of fixing each flagged row, against real refits with the label
    changed (200 breast cancer rows, 15 labels flipped, 12 rows flagged)."""
    X, y = load_breast_cancer(return_X_y=True)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(y), 200, replace=False)
    X, y = X[pick], y[pick].copy()
    flipped = rng.choice(len(y), 15, replace=False)
    y[flipped] = 1 - y[flipped]
    cleaner = InfluenceLabelCleaner(
        _lr(), n_flag=12, action="relabel", fix_approximation=approximation
    ).fit(X, y)
    kept = ~cleaner.flagged_
    rows, real = _refitted_fix_effects(cleaner, X, y, X[kept], y[kept])
    assert rows.size >= 8
    predicted = cleaner.fix_effects_[rows]
    assert np.corrcoef(predicted, real)[0, 1] >= pearson
    if approximation == "refit":
        np.testing.assert_allclose(predicted, real, rtol=1e-3, atol=1e-3)
    # fixing flipped labels makes the model fit the trusted rows better
    assert np.mean(real < 0) >= 0.75 and np.mean(predicted < 0) >= 0.75
    assert np.isnan(cleaner.fix_effects_[kept]).all()
    issues = cleaner.label_issues_
    np.testing.assert_array_equal(issues["fix_effect"].to_numpy(), cleaner.fix_effects_)


def test_relabel_fix_effects_on_validation_rows():
    """With ``X_val`` / ``y_val`` the validation rows judge the fixes; with
    ``action="drop"`` there are none."""
    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_val, y_tr, y_val = train_test_split(X, y, train_size=200, random_state=1)
    X_val, y_val = X_val[:100], y_val[:100]
    noisy, _ = _flip(y_tr, 0.08, seed=4)
    cleaner = InfluenceLabelCleaner(_lr(), n_flag=10, action="relabel")
    cleaner.fit(X_tr, noisy, X_val=X_val, y_val=y_val)
    rows, real = _refitted_fix_effects(cleaner, X_tr, noisy, X_val, y_val)
    assert rows.size >= 5
    np.testing.assert_allclose(cleaner.fix_effects_[rows], real, rtol=1e-3, atol=1e-3)
    cleaner.set_params(action="drop").fit(X_tr, noisy)
    assert not hasattr(cleaner, "fix_effects_")
    assert "fix_effect" not in cleaner.label_issues_


# -------------------------------------------------------------------- tags
def test_cleaner_is_a_sampler_by_its_tags():
    import sklearn
    from imblearn.base import is_sampler
    from sklearn_compat.utils._tags import get_tags

    assert "_estimator_type" not in vars(InfluenceLabelCleaner)
    tags = get_tags(InfluenceLabelCleaner())
    assert tags.target_tags.required and tags.input_tags.sparse
    # scikit-learn < 1.6 has no estimator-type tag (only _estimator_type)
    if tuple(int(v) for v in sklearn.__version__.split(".")[:2]) >= (1, 6):
        assert tags.estimator_type == "sampler"
        assert tags.sampler_tags.sample_indices
        assert is_sampler(InfluenceLabelCleaner())
