"""SciPy sparse input: the same influences as its dense copy, without densifying X.

Text-like data (bag of words, one-hot categoricals) is sparse and wide; the
explainer must keep it sparse end to end (the Hessian is formed by sparse
products, CG uses sparse Hessian-vector products) and agree with the dense
computation to round-off.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, PoissonRegressor, Ridge, SGDClassifier

from skinfluence import InfluenceExplainer


def _text_like(n=160, p=40, n_classes=2, seed=0, density=0.15):
    """Sparse non-negative counts with a label that depends on a few columns."""
    rng = np.random.default_rng(seed)
    X = sp.random(n, p, density=density, format="csr", random_state=seed)
    X.data = np.ceil(3 * X.data)  # counts 1..3
    w = rng.normal(size=(p, n_classes))
    scores = X @ w + 0.5 * rng.normal(size=(n, n_classes))
    y = scores.argmax(axis=1) if n_classes > 2 else (scores[:, 0] > np.median(scores[:, 0]))
    return X, y.astype(int)


def _cases():
    Xb, yb = _text_like()
    Xm, ym = _text_like(n_classes=3, seed=1)
    Xr, _ = _text_like(seed=2)
    yr = np.asarray(Xr @ np.linspace(-1, 1, Xr.shape[1])).ravel()
    yc = np.random.default_rng(3).poisson(np.exp(0.1 * yr))
    return {
        "logreg-binary": (LogisticRegression(C=1.0, tol=1e-12, max_iter=10_000), Xb, yb),
        "logreg-multinomial": (LogisticRegression(C=1.0, tol=1e-12, max_iter=10_000), Xm, ym),
        "ridge": (Ridge(alpha=1.0, solver="sparse_cg", tol=1e-12), Xr, yr),
        "poisson": (PoissonRegressor(alpha=0.1, tol=1e-12, max_iter=10_000), Xr, yc),
        "sgd-log-loss": (
            SGDClassifier(loss="log_loss", alpha=1e-2, tol=None, max_iter=50, random_state=0),
            Xb,
            yb,
        ),
    }


CASES = sorted(_cases())


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("approximation", ["influence", "newton"])
@pytest.mark.parametrize("solver", ["exact", "cg"])
@pytest.mark.parametrize("name", CASES)
def test_sparse_matches_dense_copy(name, solver, approximation, fmt):
    estimator, X, y = _cases()[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SGD stops near the optimum: compared, not judged
        estimator.fit(X, y)
        Xs = X.asformat(fmt)
        X_before = Xs.copy()
        params = {"solver": solver, "approximation": approximation}
        if solver == "cg":
            params["solver_options"] = {"tol": 1e-12}
        sparse = InfluenceExplainer(estimator, **params).fit(Xs, y)
        dense = InfluenceExplainer(estimator, **params).fit(X.toarray(), y)
    # X stays sparse inside the explainer: its design holds the sparse matrix
    assert all(sp.issparse(B) for B in sparse.state_.design.blocks)
    rows = slice(0, 9)
    got = sparse.influence(Xs[rows], y[rows])
    want = dense.influence(X[rows].toarray(), y[rows])
    scale = np.abs(want).max()
    assert scale > 0
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9 * scale)
    np.testing.assert_allclose(
        sparse.self_influence(),
        dense.self_influence(),
        rtol=1e-7,
        atol=1e-9 * np.abs(dense.self_influence()).max(),
    )
    np.testing.assert_allclose(
        sparse.leave_one_out_decision(), dense.leave_one_out_decision(), rtol=1e-7, atol=1e-9
    )
    # the user's matrix is untouched
    assert (Xs != X_before).nnz == 0


@pytest.mark.parametrize("name", ["logreg-binary", "logreg-multinomial"])
def test_sparse_most_influential_matches_dense(name):
    estimator, X, y = _cases()[name]
    estimator.fit(X, y)
    sparse = InfluenceExplainer(estimator).fit(X, y)
    dense = InfluenceExplainer(estimator).fit(X.toarray(), y)
    got = sparse.most_influential(X[:5], y[:5], k=6)
    want = dense.most_influential(X[:5].toarray(), y[:5], k=6)
    for key in want:
        if key.endswith("values"):
            np.testing.assert_allclose(got[key], want[key], rtol=1e-7, atol=1e-12)
    # indices agree wherever the values are not tied
    np.testing.assert_array_equal(got["harmful_indices"][:, :3], want["harmful_indices"][:, :3])


def test_wide_sparse_problem_runs_with_cg_without_densifying():
    """p = 20,000 columns, 2,000 rows: a dense Hessian would be 3.2 GB and a
    dense X 320 MB; CG on the sparse design needs neither."""
    rng = np.random.default_rng(0)
    n, p = 2000, 20_000
    X = sp.random(n, p, density=5e-4, format="csr", random_state=0)
    X.data[:] = 1.0
    y = (np.asarray(X @ rng.normal(size=p)).ravel() > 0).astype(int)
    est = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        exp = InfluenceExplainer(est).fit(X, y)  # auto -> CG above 4000 parameters
        I = exp.influence(X[:4], y[:4])
    assert exp.solver_.name == "cg"
    assert exp.solver_.report.converged
    assert I.shape == (4, n) and np.all(np.isfinite(I))
    # the largest effect on each of the four rows is the row itself (it is in
    # the training set): a check that the numbers mean something
    assert np.all(np.argmin(I, axis=1) == np.arange(4))
