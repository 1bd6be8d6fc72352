"""SVMs and kernel models on tables shaped like real ones: one-hot
categoricals, a binned numeric column, values rounded to one decimal and a
quarter of the rows duplicated. Hinge fits there sit at degenerate vertices
(more margin rows than independent directions, multipliers at their
bounds). The exact options must agree with real refits; the default must
agree with them or say that it cannot be trusted and name the option that
can."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.kernel_ridge import KernelRidge
from sklearn.svm import SVC, SVR, LinearSVC, LinearSVR

from skinfluence import InfluenceExplainer
from skinfluence._testing import tied_table as shared_tied_table
from skinfluence.retraining import leave_one_out


def tied_table(n=240, seed=0, duplicated=0.25, levels=(4, 3)):
    """Two categoricals (by default), a binned numeric column one-hot
    encoded, three numeric columns rounded to one decimal, ``duplicated`` of
    the rows copies of others: ``(X, labels, target)``."""
    return shared_tied_table(n, seed, duplicated, levels)


# libsvm can cycle for ever at a degenerate vertex (max_iter=-1 has no
# bound): a refit without one duplicated row of this table does at any tol
TIGHT = {"tol": 1e-10, "max_iter": 1_000_000}
CLASSIFIERS = {
    "SVC-linear-C1": lambda: SVC(kernel="linear", C=1.0, **TIGHT),
    "SVC-linear-C0.1": lambda: SVC(kernel="linear", C=0.1, **TIGHT),
    "SVC-rbf": lambda: SVC(kernel="rbf", gamma=0.2, C=1.0, **TIGHT),
    "LinearSVC-hinge": lambda: LinearSVC(loss="hinge", C=1.0, tol=1e-10, max_iter=10**6),
}
REGRESSORS = {
    "SVR-linear": lambda: SVR(kernel="linear", C=1.0, epsilon=0.2, **TIGHT),
    "SVR-rbf": lambda: SVR(kernel="rbf", gamma=0.2, C=1.0, epsilon=0.2, **TIGHT),
    "LinearSVR": lambda: LinearSVR(C=1.0, epsilon=0.2, tol=1e-10, max_iter=10**6),
}


def _data(name, **table):
    X, labels, target = tied_table(**table)
    classify = name in CLASSIFIERS
    est = (CLASSIFIERS if classify else REGRESSORS)[name]()
    y = labels if classify else target
    est.fit(X, y)
    f = est.decision_function(X) if classify else est.predict(X)
    loss = np.maximum(0, 1 - np.where(y == 1, 1, -1) * f) if classify else (y - f) ** 2
    test = np.argsort(-loss, kind="stable")[:3]  # the highest-loss rows
    return est, X, y, test


@pytest.mark.parametrize("name", [*CLASSIFIERS, *REGRESSORS])
def test_the_path_is_exact_and_ends_on_tied_tables(name):
    """The decremental path follows every removal to its end (no row left
    approximate) and matches refits over the most influential rows of the
    highest-loss rows."""
    est, X, y, test = _data(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no truncated removal
        exp = InfluenceExplainer(est, approximation="path").fit(X, y)
    assert exp.solver_.truncated_rows_.size == 0
    result = leave_one_out(exp, X[test], y[test], rows=15)
    assert result.agreement.pearson >= 0.99
    assert abs(result.agreement.slope - 1) <= 0.05


@pytest.mark.parametrize("name", [*CLASSIFIERS, *REGRESSORS])
def test_the_default_agrees_with_refits_or_says_it_cannot(name):
    """Either no warning and Pearson >= 0.9 against refits, or a warning
    that names approximation='path'."""
    est, X, y, test = _data(name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exp = InfluenceExplainer(est).fit(X, y)
    told = [w for w in caught if "approximation='path'" in str(w.message)]
    result = leave_one_out(exp, X[test], y[test], rows=15)
    assert told or result.agreement.pearson >= 0.9, result.agreement
    details = exp.solver_.report.details
    assert details["margin_set_probed"] > 0
    if told:
        assert details["margin_set_changes"] > 0.2 * details["margin_set_probed"]


@pytest.mark.parametrize("name", ["SVC-linear-C1", "SVR-linear"])
def test_a_degenerate_start_takes_independent_kink_rows_and_keeps_the_fit(name):
    """At the fitted vertex the path sets dependent kink rows aside with
    their multipliers at a bound: the rows left are independent, every
    multiplier is within its interval and the parameters are unchanged
    (stationarity still holds with the new multipliers, the free
    intercept's ``sum_i nu_i = 0`` too). On the 400-row table with four
    categoricals the SVR's least-squares multipliers were clipped to their
    intervals, which broke ``sum_i nu_i = 0`` by 0.12 while the reported KKT
    residual was 1e-17."""
    est, X, y, _ = _data(name, n=400, levels=(5, 6, 7, 5))
    exp = InfluenceExplainer(est, approximation="path").fit(X, y)
    path = exp.solver_
    assert path.report.details["dependent_kink_rows"] > 0
    assert path.degenerate
    kink = np.flatnonzero(path.on0)
    assert path._initial is not None and kink.size < path.n_margin
    lo, hi = path._bounds(kink, path.seg0[kink])
    assert np.all((lo <= path.nu0[kink] + 1e-12) & (path.nu0[kink] <= hi + 1e-12))
    # theta_p = -R_p^{-1} Psi_p^T nu and B^T nu = 0 with the new multipliers
    geometry = path.geometry
    multipliers = sp.csc_array(path.nu0[:, None])
    dense = np.asarray(geometry.parameter_changes(multipliers, np.zeros((path.B.shape[1], 1))))
    penalised = geometry.r_inv > 0
    fitted = exp.spec_.theta()
    np.testing.assert_allclose(dense[penalised, 0], np.ravel(fitted)[penalised], atol=1e-8)
    np.testing.assert_allclose(path.B.T @ path.nu0, 0.0, atol=1e-8)


@pytest.mark.parametrize(
    "make",
    [
        lambda: LinearSVR(C=1.0, epsilon=0.2, tol=1e-10, max_iter=1_000_000),
        lambda: SVR(kernel="linear", C=1.0, epsilon=0.2, **TIGHT),
    ],
    ids=["LinearSVR", "SVR-linear"],
)
def test_rows_the_fit_left_near_the_kink_at_their_bound_are_not_held_there(make):
    """Solvers leave rows up to 1e-3 from the kink with their multiplier at
    a bound (libsvm resolves a linear kernel's margin rows to about 1e-6
    only). Held on the kink, they made the path end above the refits'
    objective: Pearson 0.96 for this LinearSVR, 0.95 for the linear SVR at
    2000 rows. The fewest rows that keep the fit stationary are held
    instead, and the path matches refits."""
    X, _, target = tied_table(400, levels=(5, 6, 7, 5))
    est = make().fit(X, target)
    near = np.sum(np.abs(np.abs(target - est.predict(X)) - est.epsilon) <= 1e-3)
    exp = InfluenceExplainer(est, approximation="path").fit(X, target)
    details = exp.solver_.report.details
    assert details["margin_rows"] < near
    assert details["kkt_residual"] < 1e-12
    test = np.argsort(-((target - est.predict(X)) ** 2), kind="stable")[:3]
    result = leave_one_out(exp, X[test], target[test], rows=15)
    assert result.agreement.pearson >= 0.999
    assert abs(result.agreement.slope - 1) <= 0.01


EVERY_FAMILY = {
    "LinearSVC-hinge": (
        lambda: LinearSVC(loss="hinge", C=0.5, tol=1e-10, max_iter=10**6),
        "labels",
    ),
    "LinearSVC-squared-hinge": (lambda: LinearSVC(C=0.5, tol=1e-10, max_iter=10**6), "labels"),
    "LinearSVR": (lambda: LinearSVR(C=0.5, epsilon=0.1, tol=1e-10, max_iter=10**6), "target"),
    "LinearSVR-squared": (
        lambda: LinearSVR(loss="squared_epsilon_insensitive", C=0.5, tol=1e-10, max_iter=10**6),
        "target",
    ),
    "SVC-linear": (lambda: SVC(kernel="linear", C=1.0, **TIGHT), "labels"),
    "SVC-rbf": (lambda: SVC(kernel="rbf", gamma=0.2, C=1.0, **TIGHT), "labels"),
    "SVR-linear": (lambda: SVR(kernel="linear", C=1.0, epsilon=0.2, **TIGHT), "target"),
    "SVR-rbf": (lambda: SVR(kernel="rbf", gamma=0.2, C=1.0, epsilon=0.2, **TIGHT), "target"),
    "KernelRidge": (lambda: KernelRidge(alpha=1.0, kernel="rbf", gamma=0.2), "target"),
}
#: how the policy table refuses a combination it does not offer
REFUSALS = (
    "approximation='path' follows the solution path of a hinge-type model",
    "approximation='newton' does not apply to hinge='active_set'",
    "approximation='refit' runs Newton iterations on a smooth objective",
)


@pytest.mark.parametrize("name", list(EVERY_FAMILY))
def test_every_option_the_docs_offer_runs_on_tied_tables(name):
    """Every family on the tied table with every approximation and both
    hinge treatments: each combination either runs and gives finite values,
    or is refused by the policy table with its message (never another
    exception); the default and one exact option run for every family."""
    from skinfluence.removal import APPROXIMATIONS

    make, which = EVERY_FAMILY[name]
    X, labels, target = tied_table()
    y = labels if which == "labels" else target
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # liblinear's ConvergenceWarning
        est = make().fit(X, y)
    ran = set()
    for hinge in ("active_set", "smoothed"):
        for approximation in APPROXIMATIONS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # margin-set and leverage advice
                try:
                    exp = InfluenceExplainer(est, approximation=approximation, hinge=hinge)
                    exp.fit(X, y)
                except ValueError as refused:
                    assert str(refused).startswith(REFUSALS), (hinge, approximation, refused)
                    continue
                values = exp.influence(X[:3], y[:3])
            assert values.shape == (3, len(y)) and np.all(np.isfinite(values))
            ran.add((hinge, approximation))
    assert ("active_set", "influence") in ran
    assert {("active_set", "path"), ("active_set", "newton")} & ran


def test_kernel_ridge_leverage_correction_for_chosen_rows_matches_refits():
    """In row space, approximation='newton' solves for the leverages of the
    rows asked for only; on them it is the exact leave-one-out change of the
    predictions (kernel ridge is quadratic), which the first-order estimate
    understates."""
    X, _, target = tied_table()
    est = KernelRidge(alpha=0.1, kernel="rbf", gamma=0.5).fit(X, target)
    first = InfluenceExplainer(est, solver="cg").fit(X, target)
    test = np.arange(3)
    ranking = np.abs(first.influence(X[test], target="prediction")).max(axis=0)
    top = np.argsort(-ranking)[:8]
    newton = InfluenceExplainer(est, solver="cg", approximation="newton").fit(X, target)
    assert newton.spec_.row_space
    predicted = -newton.influence(X[test], target="prediction", rows=top)
    assert np.isfinite(newton.removal_._leverage_rows).sum() == top.size
    result = leave_one_out(newton, X[test], rows=top, target="prediction")
    np.testing.assert_allclose(predicted, result.actual, rtol=1e-6, atol=1e-9)
    understated = -first.influence(X[test], target="prediction", rows=top)
    assert np.abs(understated).max() < 0.95 * np.abs(result.actual).max()


def test_kernel_ridge_default_says_when_it_understates():
    """The first-order estimate of a low-penalty kernel ridge understates
    its largest effects by more than 1.5x; the default says so and names
    approximation='newton'. A ridge regression with small leverages stays
    silent. The probed factors are in the solver's report."""
    X, _, target = tied_table()
    est = KernelRidge(alpha=1.0, kernel="rbf", gamma=0.2).fit(X, target)
    with pytest.warns(RuntimeWarning, match="approximation='newton'"):
        exp = InfluenceExplainer(est).fit(X, target)
    details = exp.solver_.report.details
    assert details["leverage_factor_max"] > 1.5
    test = np.arange(3)
    result = leave_one_out(exp, X[test], target[test], rows=15, target="prediction")
    assert result.agreement.slope > 1.3  # the refits' effects are larger indeed
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    Xd, yd = load_diabetes(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        quiet = InfluenceExplainer(Ridge(alpha=1.0).fit(Xd, yd)).fit(Xd, yd)
    assert quiet.solver_.report.details["leverage_factor_max"] < 1.5


@pytest.mark.parametrize(
    ("make", "solver"),
    [
        (lambda: SVR(kernel="linear", C=1e-4, epsilon=0.1, **TIGHT), "auto"),
        (lambda: LinearSVR(C=1e-4, epsilon=0.1, tol=1e-10, max_iter=1_000_000), "auto"),
        (lambda: SVR(kernel="rbf", gamma=0.05, C=1e-4, epsilon=0.1, **TIGHT), "auto"),
        (lambda: SVR(kernel="rbf", gamma=0.05, C=1e-4, epsilon=0.1, **TIGHT), "cg"),
    ],
    ids=["SVR-linear", "LinearSVR", "SVR-rbf", "SVR-rbf-row-space"],
)
def test_a_collapsed_fit_says_so_and_is_explained_exactly(make, solver):
    """With C far too small (nearly) every row ends up past the tube's edge.
    No margin row then pins libsvm's free intercept: the fit's is the middle
    of an interval of optima, a removal moves the interval, and libsvm's
    refit takes the middle of the new one. Both approximations follow that
    (before, the default raised 'the hinge fit is not unique' on the linear
    SVR, and both were off 17x (linear) and 63x (RBF) in scale without a
    word), and fit warns that the fit collapsed, with what to change."""
    X, _, target = tied_table(300, levels=(5, 6, 7, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # liblinear's ConvergenceWarning
        est = make().fit(X, target)
    test = np.arange(3)
    for approximation in ("influence", "path"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exp = InfluenceExplainer(est, approximation=approximation, solver=solver)
            exp.fit(X, target)
        told = [str(w.message) for w in caught if "has collapsed" in str(w.message)]
        assert told and "larger C" in told[0]
        assert exp.solver_.report.details["collapsed"]
        result = leave_one_out(exp, X[test], target[test], rows=10)
        assert result.agreement.pearson >= 0.99, (approximation, result.agreement)
        assert abs(result.agreement.slope - 1) <= 0.02, (approximation, result.agreement)


def _mixed_pipeline(estimator):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categorical = make_pipeline(
        SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")
    )
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    columns = ColumnTransformer(
        [
            ("categorical", categorical, ["region", "product"]),
            ("numeric", numeric, ["n_children", "rating", "income"]),
        ]
    )
    return make_pipeline(columns, estimator)


@pytest.mark.parametrize(
    "make",
    [
        lambda: LinearSVC(loss="hinge", C=0.1, tol=1e-10, max_iter=10**6),
        lambda: SVC(kernel="rbf", C=1.0, **TIGHT),
    ],
    ids=["LinearSVC-hinge-C0.1", "SVC-rbf"],
)
def test_a_pipeline_on_a_mixed_frame_is_explained(make):
    """The issue's first failure on a synthetic equivalent: a DataFrame with
    string categoricals and missing values, integer-coded columns, string
    labels and duplicated rows, one-hot encoded and scaled in a
    ColumnTransformer before a hinge SVM. The path matches refits; the
    default matches them or says it cannot be trusted."""
    from skinfluence._testing import mixed_frame

    frame, labels = mixed_frame()
    pipe = _mixed_pipeline(make()).fit(frame, labels)
    margin = np.where(labels == pipe.classes_[1], 1, -1) * pipe.decision_function(frame)
    test = np.argsort(-np.maximum(0, 1 - margin), kind="stable")[:3]
    exp = InfluenceExplainer(pipe, approximation="path").fit(frame, labels)
    result = leave_one_out(exp, frame.iloc[test], labels[test], rows=15)
    assert result.agreement.pearson >= 0.99
    assert abs(result.agreement.slope - 1) <= 0.02
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        default = InfluenceExplainer(pipe).fit(frame, labels)
    told = any("approximation='path'" in str(w.message) for w in caught)
    result = leave_one_out(default, frame.iloc[test], labels[test], rows=15)
    assert told or result.agreement.pearson >= 0.9


@pytest.mark.parametrize(
    "make",
    [
        lambda: SVR(kernel="linear", C=1.0, epsilon=0.2, **TIGHT),
        lambda: SVR(kernel="rbf", gamma=0.1, C=1.0, epsilon=0.2, **TIGHT),
    ],
    ids=["SVR-linear", "SVR-rbf"],
)
def test_integer_coded_columns_of_a_shipped_table(make):
    """scikit-learn's diabetes table as recorded (``scaled=False``): sex
    coded 1 / 2 and age in whole years (tied values), standardised in a
    pipeline. The path matches refits of the pipeline's SVR."""
    from sklearn.datasets import load_diabetes
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_diabetes(return_X_y=True, scaled=False)
    X, y = X[:300], (y[:300] - y.mean()) / y.std()
    assert len(np.unique(X[:, 1])) == 2  # sex, integer-coded
    pipe = make_pipeline(StandardScaler(), make()).fit(X, y)
    test = np.argsort(-((y - pipe.predict(X)) ** 2), kind="stable")[:3]
    exp = InfluenceExplainer(pipe, approximation="path").fit(X, y)
    result = leave_one_out(exp, X[test], y[test], rows=15)
    assert result.agreement.pearson >= 0.99
    assert abs(result.agreement.slope - 1) <= 0.02


def test_libsvm_refits_get_upstream_libsvms_bound_and_the_estimator_is_untouched():
    """scikit-learn's libsvm never stops with max_iter=-1, and its SMO can
    cycle at a degenerate vertex (a refit of a 240-row table of this kind
    without one duplicated row ran on for ever), so refits take upstream
    libsvm's bound max(10^7, 100 n); refit_params overrides it, estimators
    with their own bound keep theirs."""
    est, X, y, test = _data("SVC-linear-C1")
    est.set_params(max_iter=-1)
    exp = InfluenceExplainer(est).fit(X, y)
    assert exp.retrainer(X[test], y[test]).estimator.max_iter == max(10**7, 100 * len(y))
    assert est.max_iter == -1
    assert exp.retrainer(X[test], y[test], refit_params={"max_iter": 50}).estimator.max_iter == 50
    liblinear = LinearSVC(loss="hinge", C=1.0, max_iter=12_345).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning, margin-set advice
        retrain = InfluenceExplainer(liblinear).fit(X, y).retrainer(X[test], y[test])
    assert retrain.estimator.max_iter == 12_345


def test_refits_that_stop_before_converging_are_named():
    """A refit that ends with scikit-learn's ConvergenceWarning gives an
    approximate actual value: leave_one_out says which (-1: the refit on all
    rows) in one warning and in ``not_converged``; converged refits leave it
    empty."""
    from sklearn.exceptions import ConvergenceWarning

    est, X, y, test = _data("SVC-rbf")
    exp = InfluenceExplainer(est, approximation="path").fit(X, y)
    with pytest.warns(ConvergenceWarning, match="refits stopped before their solver converged"):
        stuck = leave_one_out(exp, X[test], y[test], rows=5, refit_params={"max_iter": 3})
    assert set(stuck.not_converged) == {-1, *stuck.rows.tolist()}
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        fine = leave_one_out(exp, X[test], y[test], rows=5)
    assert fine.not_converged.size == 0
    assert fine.agreement.pearson > 0.99
