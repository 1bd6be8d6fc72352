"""Training rows held by Dask: the same answers as in memory, through a real
``distributed.LocalCluster`` (two worker processes, one thread each)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import (
    HuberRegressor,
    LinearRegression,
    LogisticRegression,
    PoissonRegressor,
    Ridge,
    RidgeClassifier,
    SGDClassifier,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer
from skinfluence._explainer import NotAtOptimumWarning

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

N, P = 180, 4
#: uneven row chunks: a chunk-local scaling (n, class totals, penalty shares)
#: would differ from chunk to chunk
CHUNKS = (50, 70, 37, 23)


@pytest.fixture(scope="module")
def client(local_dask_client):
    with local_dask_client(processes=True) as client:
        yield client


def _data(kind, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, P)) * [1.0, 2.0, 0.5, 1.0]
    z = X @ [0.8, -0.4, 1.0, 0.3]
    if kind == "binary":  # unbalanced classes, for class_weight="balanced"
        y = (z + rng.normal(size=N) > 0.8).astype(int)
    elif kind == "multinomial":
        y = np.digitize(z + 0.5 * rng.normal(size=N), [-0.7, 0.7])
    elif kind == "poisson":
        y = rng.poisson(np.exp(0.3 * z)).astype(float)
    else:
        y = z + rng.standard_t(3, size=N)
    return X, y


TIGHT = {"tol": 1e-12, "max_iter": 10_000}
CASES = {
    "logistic-balanced-weighted": (
        "binary",
        lambda: LogisticRegression(C=0.5, class_weight="balanced", **TIGHT),
        True,
    ),
    "logistic-multinomial": ("multinomial", lambda: LogisticRegression(**TIGHT), False),
    "linear-regression": ("regression", LinearRegression, False),
    "ridge": ("regression", lambda: Ridge(alpha=3.0, solver="cholesky"), True),
    "poisson": ("poisson", lambda: PoissonRegressor(alpha=0.3, **TIGHT), True),
    "huber": ("regression", lambda: HuberRegressor(alpha=0.1, **TIGHT), False),
    "ridge-classifier": ("multinomial", lambda: RidgeClassifier(alpha=2.0), False),
    # per-row penalty shares (a mean loss); SGD stops short of the optimum,
    # which both explainers see alike
    "sgd-classifier": (
        "binary",
        lambda: SGDClassifier(loss="log_loss", alpha=0.01, random_state=0),
        True,
    ),
}


def _fitted(case):
    kind, make, weighted = CASES[case]
    X, y = _data(kind)
    sw = np.random.default_rng(1).uniform(0.5, 2.0, size=N) if weighted else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs's convergence notices at tol=1e-12
        model = make().fit(X, y, sample_weight=sw)
    return model, X, y, sw


def _close(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    scale = max(np.abs(want).max(), 1e-300)
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-8 * scale)


@pytest.mark.parametrize(
    "case, approximation",
    [(case, "influence") for case in CASES]
    # newton: a multi-output case and one with penalty shares
    + [("logistic-multinomial", "newton"), ("poisson", "newton")],
)
def test_agrees_with_in_memory(client, case, approximation):
    model, X, y, sw = _fitted(case)
    params = {"approximation": approximation}
    Xd = da.from_array(X, chunks=(CHUNKS, P))
    yd = da.from_array(y, chunks=60)  # not aligned with X's chunks
    swd = None if sw is None else da.from_array(sw, chunks=90)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotAtOptimumWarning)  # SGD's, checked equal below
        ref = InfluenceExplainer(model, **params).fit(X, y, sample_weight=sw)
        exp = InfluenceExplainer(model, **params).fit(Xd, yd, sample_weight=swd)
    Xt, yt = X[:7] + 0.1, y[:7]

    lazy = {
        "influence": exp.influence(Xt, yt),
        "prediction": exp.influence(Xt, yt, target="prediction"),
        "self_influence": exp.self_influence(),
        "leave_one_out_loss": exp.leave_one_out_loss(),
        "training_loss": exp.training_loss(),
        "leave_one_out_decision": exp.leave_one_out_decision(),
    }
    for name, value in lazy.items():
        assert isinstance(value, da.Array)
        rows_axis = 1 if name in ("influence", "prediction") else 0
        assert value.chunks[rows_axis] == CHUNKS  # chunked along the training rows
    got = dict(zip(lazy, dask.compute(*lazy.values()), strict=True))  # one pass
    _close(got["influence"], ref.influence(Xt, yt))
    _close(got["prediction"], ref.influence(Xt, yt, target="prediction"))
    for name in (
        "self_influence",
        "leave_one_out_loss",
        "training_loss",
        "leave_one_out_decision",
    ):
        _close(got[name], getattr(ref, name)())

    got, want = exp.most_influential(Xt, yt, k=5), ref.most_influential(Xt, yt, k=5)
    assert sorted(got) == sorted(want)
    for key in ("harmful_indices", "helpful_indices"):
        np.testing.assert_array_equal(got[key], want[key])
    for key in ("harmful_values", "helpful_values"):
        _close(got[key], want[key])
    assert exp.stationarity_ == pytest.approx(ref.stationarity_, rel=1e-6, abs=1e-12)


def test_full_data_scaling_not_chunk_scaling(client):
    """Balanced class weights are those of all rows: the Hessian summed from
    chunk-local objectives (each with its own class counts) is not the full
    one; the reduced one is."""
    from skinfluence.objectives._registry import spec_for

    model, X, y, sw = _fitted("logistic-balanced-weighted")
    ref = InfluenceExplainer(model).fit(X, y, sample_weight=sw)
    exp = InfluenceExplainer(model).fit(da.from_array(X, chunks=(CHUNKS, P)), y, sw)
    H_ref = ref.solver_.operator.dense()
    np.testing.assert_allclose(exp.solver_.operator.dense(), H_ref, rtol=1e-10, atol=0)
    spec, xp = spec_for(model), ref.xp_
    starts = np.cumsum((0, *CHUNKS))
    naive = sum(
        spec.objective(X[a:b], y[a:b], sw[a:b], xp).at(ref.state_.theta).hessian()
        for a, b in zip(starts[:-1], starts[1:], strict=True)
    )
    assert np.abs(naive - H_ref).max() > 1e-2 * np.abs(H_ref).max()


def test_dataframe_and_pipeline(client):
    X, y = _data("binary")
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"], index=[f"row{i}" for i in range(N)])
    model = make_pipeline(StandardScaler(), LogisticRegression(**TIGHT)).fit(frame, y)
    ref = InfluenceExplainer(model).fit(frame, y)
    dframe = dd.from_pandas(frame.assign(label=y), npartitions=3, sort=False)
    exp = InfluenceExplainer(model).fit(dframe[["a", "b", "c", "d"]], dframe["label"])
    influence = exp.influence(frame.iloc[:4], y[:4])
    assert isinstance(influence, da.Array) and len(influence.chunks[1]) == 3
    got, want = (
        exp.most_influential(frame.iloc[:4], y[:4], k=3),
        ref.most_influential(frame.iloc[:4], y[:4], k=3),
    )
    np.testing.assert_array_equal(got.harmful_labels, want.harmful_labels)
    np.testing.assert_array_equal(got.helpful_labels, want.helpful_labels)
    _close(influence.compute(), ref.influence(frame.iloc[:4], y[:4]))
    _close(exp.self_influence().compute(), ref.self_influence())
    with pytest.raises(ValueError, match="feature names"):
        exp2 = InfluenceExplainer(model).fit(dframe[["b", "a", "c", "d"]], dframe["label"])
        exp2.self_influence().compute()


@pytest.mark.parametrize("scheduler", ["cluster", "sync"])
def test_sparse_chunks(client, scheduler):
    """SciPy sparse chunks stay sparse on the workers; the synchronous
    scheduler (no cluster) gives the same answers."""
    rng = np.random.default_rng(3)
    X = sp.random(N, 30, density=0.1, format="csr", random_state=3)
    y = (X @ rng.normal(size=30) + 0.3 * rng.normal(size=N) > 0).astype(int)
    model = LogisticRegression(**TIGHT).fit(X, y)
    ref = InfluenceExplainer(model).fit(X, y)
    Xd = da.from_array(X, chunks=(CHUNKS, 30), asarray=False)
    config = {} if scheduler == "cluster" else {"scheduler": "sync"}
    with dask.config.set(**config):
        exp = InfluenceExplainer(model).fit(Xd, y)
        got = dask.compute(exp.influence(X[:5], y[:5]), exp.self_influence())
    _close(got[0], ref.influence(X[:5], y[:5]))
    _close(got[1], ref.self_influence())


def test_user_arrays_not_modified(client):
    model, X, y, sw = _fitted("logistic-balanced-weighted")
    Xd = da.from_array(X.copy(), chunks=(CHUNKS, P))
    yd = da.from_array(y.copy(), chunks=60)
    name, chunks = Xd.name, Xd.chunks
    exp = InfluenceExplainer(model).fit(Xd, yd, sample_weight=sw)
    exp.influence(Xd[:5], yd[:5]).compute()
    exp.self_influence().compute()
    assert (Xd.name, Xd.chunks) == (name, chunks)
    np.testing.assert_array_equal(Xd.compute(), X)
    np.testing.assert_array_equal(yd.compute(), y)


def test_not_at_optimum_warns(client):
    model, X, y, _ = _fitted("logistic-multinomial")
    model.coef_ = model.coef_ * 1.5
    with pytest.warns(NotAtOptimumWarning, match="not at the optimum"):
        InfluenceExplainer(model).fit(da.from_array(X, chunks=(CHUNKS, P)), y)


def test_clear_errors(client):
    model, X, y, _ = _fitted("linear-regression")
    Xd = da.from_array(X, chunks=(CHUNKS, P))
    unknown = Xd[da.from_array(np.ones(N, dtype=bool), chunks=CHUNKS[0])]
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        InfluenceExplainer(model).fit(unknown, y)
    with pytest.raises(ValueError, match=r"rechunk\(\{1: -1\}\)"):
        InfluenceExplainer(model).fit(da.from_array(X, chunks=(60, 2)), y)
    with pytest.raises(ValueError, match="y has 179 rows but X has 180"):
        InfluenceExplainer(model).fit(Xd, y[:-1])
    for params in ({"approximation": "refit"}, {"solver": "cg"}, {"dtype": "float32"}):
        with pytest.raises(ValueError, match="Dask input supports smooth linear models"):
            InfluenceExplainer(model, **params).fit(Xd, y)
    kernel = KernelRidge(alpha=1.0, kernel="rbf").fit(X, y)
    with pytest.raises(ValueError, match="kernel model"):
        InfluenceExplainer(kernel).fit(Xd, y)
    exp = InfluenceExplainer(model).fit(Xd, y)
    with pytest.raises(ValueError, match="group_influence is not available .* Dask"):
        exp.group_influence(X[:3], y[:3], groups=[np.arange(5)])
    with pytest.raises(TypeError, match="cannot be pickled"):
        import pickle

        pickle.dumps(exp)


# --- dask-ml's estimators (their objectives: tests/test_dask_ml.py) ----------
def test_dask_ml_fitted_and_explained_on_dask(client):
    """dask-ml models explained over a Dask table: one fitted in memory with
    the standardised penalty (column moments read from the Dask table), one
    fitted on the Dask table itself; the same answers as in memory."""
    from test_dask_ml import dask_ml_fitted

    penalised, X, y = dask_ml_fitted("logistic", C=0.05)
    newton, _, _ = dask_ml_fitted("logistic", solver="newton", tol=1e-10)
    Xd, yd = da.from_array(X, chunks=(CHUNKS, 4)), da.from_array(y, chunks=(CHUNKS,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        out_of_core = type(newton)(**newton.get_params()).fit(Xd, yd)
    np.testing.assert_allclose(out_of_core.coef_, newton.coef_, rtol=1e-8)
    for model in (penalised, out_of_core):
        ref = InfluenceExplainer(model).fit(X, y)
        exp = InfluenceExplainer(model).fit(Xd, yd)
        got = dask.compute(exp.influence(X[:5], y[:5]), exp.self_influence())
        _close(got[0], ref.influence(X[:5], y[:5]))
        _close(got[1], ref.self_influence())
