"""Label cleaning of a Dask table: the same scores and flagged rows as in
memory, the flagged rows as a Dask DataFrame, and ``skinfluence clean --dask``
on a directory of Parquet files against the in-memory command on one CSV."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skinfluence.cleaning import InfluenceLabelCleaner
from skinfluence.cleaning._cleaner import flag_rows, protect_classes

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

N, P = 300, 4
#: uneven row chunks, labels chunked differently
CHUNKS = (90, 120, 60, 30)
TIGHT = {"tol": 1e-10, "max_iter": 10_000}


@pytest.fixture(scope="module")
def client(local_dask_client):
    # in-process workers (no second start-up of scikit-learn: this file stays
    # fast); tests/test_dask.py runs the explainer's tasks across processes,
    # and the cleaner's tasks are module-level functions
    with local_dask_client(processes=False) as client:
        yield client


@pytest.fixture
def synchronous():
    """The tests that are not about a cluster run in this process (fast),
    also after the cluster fixture made its client the default."""
    with dask.config.set(scheduler="synchronous"):
        yield


def _data(seed=0, n_flip=15):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, P)) * [1.0, 2.0, 0.5, 1.0]
    y = (X @ [1.0, -0.5, 1.0, 0.3] + 0.4 * rng.normal(size=N) > 0).astype(int)
    flipped = rng.choice(N, n_flip, replace=False)
    y[flipped] = 1 - y[flipped]
    return X, y, flipped


def _close(got, want):
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-8 * np.abs(want).max())


RULES = [{}, {"fraction": 0.05}, {"n_flag": 7}, {"threshold": 1.0}]


@pytest.mark.parametrize(
    "method, rule",
    [(m, {}) for m in ("loo_newton", "loo_loss", "training_loss", "self_influence")]
    + [("loo_newton", r) for r in RULES[1:]]
    + [("validation_influence", {"fraction": 0.05})],
)
def test_dask_cleaner_agrees_with_in_memory(synchronous, method, rule):
    X, y, _ = _data()
    X_val, y_val, _ = _data(seed=5, n_flip=0)
    val = {"X_val": X_val[:40], "y_val": y_val[:40]} if method == "validation_influence" else {}
    memory = InfluenceLabelCleaner(LogisticRegression(**TIGHT), method=method, **rule)
    memory.fit(X, y, **val)
    fitted = LogisticRegression(**TIGHT).fit(X, y)  # as the in-memory cleaner fits it
    Xd = da.from_array(X, chunks=(CHUNKS, P))
    yd = da.from_array(y, chunks=70)
    cleaner = InfluenceLabelCleaner(fitted, method=method, **rule).fit(Xd, yd, **val)
    assert isinstance(cleaner.scores_, da.Array)
    assert cleaner.scores_.chunks[0] == CHUNKS  # chunked like X's rows
    _close(cleaner.scores_.compute(), memory.scores_)
    np.testing.assert_array_equal(cleaner.flagged_.compute(), memory.flagged_)
    np.testing.assert_array_equal(cleaner.suggested_labels_.compute(), memory.suggested_labels_)
    assert cleaner.n_auto_ == memory.n_auto_
    assert cleaner.n_flagged_ == memory.n_flagged_ > 0
    assert cleaner.threshold_ == pytest.approx(memory.threshold_, rel=1e-8)
    issues = cleaner.label_issues_.compute()
    want = memory.label_issues_.drop(columns="rank")
    pd.testing.assert_index_equal(issues.index, want.index)
    np.testing.assert_array_equal(issues["flagged"], want["flagged"])
    np.testing.assert_array_equal(issues["given_label"], want["given_label"])
    # the caller's fitted model is explained, not changed
    np.testing.assert_array_equal(fitted.coef_, LogisticRegression(**TIGHT).fit(X, y).coef_)
    assert cleaner.estimator_ is not fitted


def test_dataframe_on_a_cluster_flagged_frame_and_resample(client):
    """A pandas-indexed Dask DataFrame with string labels and a pipeline, on
    a LocalCluster: the flagged rows come back as a Dask DataFrame with X's
    index labels, fit_resample as Dask collections, equal to in memory."""
    X, y, flipped = _data(seed=1)
    index = pd.Index([f"id{i:04d}" for i in range(N)], name="key")
    df = pd.DataFrame(X, columns=list("abcd"), index=index)
    labels = pd.Series(np.where(y == 1, "yes", "no"), index=index, name="label")

    def model():
        return make_pipeline(StandardScaler(), LogisticRegression(C=0.5, **TIGHT))

    memory = InfluenceLabelCleaner(model(), method="loo_newton", fraction=0.05).fit(df, labels)
    ddf = dd.from_pandas(df, npartitions=3)
    dy = dd.from_pandas(labels, npartitions=3)
    cleaner = InfluenceLabelCleaner(model().fit(df, labels), method="loo_newton", fraction=0.05)
    X_kept, y_kept = cleaner.fit_resample(ddf, dy)
    _close(cleaner.scores_.compute(), memory.scores_)

    frame = cleaner.flagged_frame(ddf)
    assert isinstance(frame, dd.DataFrame)
    got = frame.compute()
    want = memory.flagged_frame(df)
    assert list(got.index) == list(want.index) == list(index[memory.flagged_])
    assert list(got.columns) == [*"abcd", "score", "given_label", "suggested_label"]
    np.testing.assert_array_equal(got[list("abcd")], want[list("abcd")])
    _close(got["score"], want["score"])
    np.testing.assert_array_equal(got["suggested_label"], want["suggested_label"])
    assert len(np.intersect1d(np.flatnonzero(memory.flagged_), flipped)) >= 8  # of 15

    assert isinstance(X_kept, dd.DataFrame) and isinstance(y_kept, dd.Series)
    X_want, y_want = memory.fit_resample(df, labels)
    # Dask reads string labels as its own string dtype: compared as values
    X_got, y_got = X_kept.compute(), y_kept.compute()
    assert list(X_got.index) == list(X_want.index) and y_got.name == "label"
    np.testing.assert_array_equal(X_got.to_numpy(), X_want.to_numpy())
    assert list(y_got.index) == list(y_want.index)
    assert list(y_got) == list(y_want)


def test_array_resample_and_in_memory_flagged_frame(synchronous):
    X, y, _ = _data()
    fitted = LogisticRegression(**TIGHT).fit(X, y)
    cleaner = InfluenceLabelCleaner(fitted, method="loo_newton", n_flag=5)
    X_kept, y_kept = cleaner.fit_resample(da.from_array(X, chunks=(CHUNKS, P)), y)
    keep = ~cleaner.flagged_.compute()
    np.testing.assert_array_equal(X_kept.compute(), X[keep])
    np.testing.assert_array_equal(y_kept.compute(), y[keep])
    frame = cleaner.flagged_frame(da.from_array(X, chunks=(CHUNKS, P))).compute()
    # an array's rows are labelled by position, its columns 0..p-1, in memory too
    memory = InfluenceLabelCleaner(LogisticRegression(**TIGHT), method="loo_newton", n_flag=5)
    want = memory.fit(X, y).flagged_frame(X)
    assert list(frame.index) == list(want.index) == list(np.flatnonzero(keep == 0))
    np.testing.assert_array_equal(frame[list(range(P))], X[~keep])
    _close(frame["score"], want["score"])
    sparse = memory.flagged_frame(sp.csr_matrix(X))  # a sparse matrix's rows alike
    np.testing.assert_array_equal(sparse[list(range(P))].sparse.to_dense(), X[~keep])


@pytest.mark.parametrize("action", ["drop", "relabel"])
def test_lazy_flagging_matches_flag_rows_with_ties(synchronous, action):
    """Ties at the k-th score are flagged in row order, and a class that
    cleaning would empty keeps its lowest-scoring row, as in memory."""
    from skinfluence.cleaning._dask import flag_lazy, protect_classes_lazy

    scores = np.array([3.0, 1.0, 2.0, 2.0, 0.5, 2.0, 2.0, 5.0, 1.0, 2.0])
    y = np.array([0, 0, 1, 1, 0, 1, 1, 0, 0, 1])
    suggested = 1 - y
    s = da.from_array(scores, chunks=3)
    y_lazy = da.from_array(y, chunks=3)
    sug = da.from_array(suggested, chunks=3)
    for rule, value in [("n_flag", 4), ("n_flag", 6), ("fraction", 0.25), ("threshold", 2.0)]:
        want = flag_rows(scores, rule=rule, value=value)
        got = flag_lazy(s, rule=rule, value=value)
        np.testing.assert_array_equal(got.compute(), want)
        # n_flag 6 and threshold 2 flag every row of class 1
        want = protect_classes(want, y, suggested, scores, action)
        got = protect_classes_lazy(got, y, y_lazy, sug, s, action)
        np.testing.assert_array_equal(got.compute(), want)


def test_errors(synchronous):
    X, y, _ = _data()
    Xd = da.from_array(X, chunks=(CHUNKS, P))
    fitted = LogisticRegression(**TIGHT).fit(X, y)
    for method in ("iterative", "noise_aware"):
        with pytest.raises(ValueError, match="not available on Dask input.*'loo_newton'"):
            InfluenceLabelCleaner(fitted, method=method).fit(Xd, y)
    with pytest.raises(ValueError, match="must be fitted already.*LogisticRegression"):
        InfluenceLabelCleaner(LogisticRegression(), method="loo_newton").fit(Xd, y)
    with pytest.raises(ValueError, match="default pipeline"):
        InfluenceLabelCleaner(method="loo_newton").fit(Xd, y)
    with pytest.raises(ValueError, match="action='relabel' is not available on Dask"):
        InfluenceLabelCleaner(fitted, method="loo_newton", action="relabel").fit(Xd, y)
    with pytest.raises(ValueError, match="X has 300 rows but y has 299"):
        InfluenceLabelCleaner(fitted, method="loo_newton").fit(Xd, y[1:])


# ------------------------------------------------------------------ the CLI
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A table with a string column, a missing target and string labels, as
    one CSV and as a directory of 3 Parquet files."""
    rng = np.random.default_rng(3)
    X, y, flipped = _data(seed=3)
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    df.insert(0, "id", [f"r{i}" for i in range(N)])
    df["colour"] = rng.choice(["red", "green", "blue"], N)
    df["label"] = np.where(y == 1, "yes", "no")
    df.loc[17, "label"] = None
    folder = tmp_path_factory.mktemp("dask_cli")
    df.to_csv(folder / "all.csv", index=False)
    (folder / "parts").mkdir()
    for k, (a, b) in enumerate([(0, 80), (80, 230), (230, N)]):
        df.iloc[a:b].to_parquet(folder / "parts" / f"part{k}.parquet", index=False)
    return folder


def _suspects(text):
    """The printed suspects: (rank, id, given, suggested, score) lines."""
    lines = text.split("suspects")[1].split("Next:")[0].strip().splitlines()[2:]
    return [line.split()[:5] for line in lines]


def test_cli_dask_matches_in_memory(files, client, capsys):
    from skinfluence.cli import main

    common = ["--target", "label", "--id-column", "id", "--fraction", "0.05", "--top", "8"]
    rc = main(["clean", str(files / "all.csv"), *common, "--method", "loo_newton",
               "--out", str(files / "memory.csv")])  # fmt: skip
    assert rc == 0
    memory_out = capsys.readouterr().out
    address = client.scheduler.address
    rc = main(["clean", str(files / "parts"), "--dask", *common,
               "--scheduler", address, "--out", str(files / "dask.csv")])  # fmt: skip
    assert rc == 0
    dask_out = capsys.readouterr().out
    assert "(method: loo_newton, rule: --fraction 0.05)" in dask_out  # the --dask default
    assert _suspects(dask_out) == _suspects(memory_out)
    assert len(_suspects(dask_out)) == 8
    want = pd.read_csv(files / "memory.csv", index_col="id")
    got = pd.read_csv(files / "dask.csv", index_col="id")
    assert len(got) == N - 1  # the row without a label is left out, as in memory
    pd.testing.assert_index_equal(got.index, want.index)  # the same ranking
    np.testing.assert_array_equal(got["flagged"], want["flagged"])
    _close(got["score"], want["score"])


def test_cli_dask_parquet_directory_out_and_row_numbers(files, synchronous, capsys):
    from skinfluence.cli import main

    out = files / "issues"
    rc = main(["clean", str(files / "parts" / "*.parquet"), "--dask", "--target", "label",
               "--drop", "id", "--n-flag", "6", "--out", str(out), "--quiet"])  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    assert "row = row of the 3 Parquet file(s)" in text
    issues = pd.read_parquet(out)
    assert len(list(out.glob("*.parquet"))) == 3  # one file per chunk
    assert issues.index.name == "row"
    # rows numbered from 1 across the files in name order; row 18 had no label
    assert list(issues.index) == [i for i in range(1, N + 1) if i != 18]
    assert int(issues["flagged"].sum()) == 6
    top = [int(r[1]) for r in _suspects(text)]
    assert top == list(issues["score"].sort_values(ascending=False, kind="stable").index[:10])


def test_cli_dask_errors(files, capsys, monkeypatch):
    from skinfluence import cli

    base = ["clean", str(files / "parts"), "--dask", "--target", "label"]
    assert cli.main([*base, "--method", "iterative"]) == 2
    assert "--method iterative is not available with --dask" in capsys.readouterr().err
    assert cli.main(["clean", str(files / "all.csv"), "--target", "label",
                     "--scheduler", "local"]) == 2  # fmt: skip
    assert "--scheduler is an option of --dask" in capsys.readouterr().err
    assert cli.main(["clean", str(files / "all.csv"), "--dask", "--target", "label"]) == 2
    assert "is not one" in capsys.readouterr().err
    assert cli.main([*base, "--out", str(files / "parts" / "out")]) == 2
    assert "inside the input directory" in capsys.readouterr().err
    real = cli.importlib.util.find_spec
    monkeypatch.setattr(
        cli.importlib.util, "find_spec", lambda name: None if name == "dask" else real(name)
    )
    assert cli.main(base) == 2
    assert "pip install skinfluence[dask]" in capsys.readouterr().err


def test_dask_ml_estimator_is_fitted_out_of_core(synchronous):
    """An unfitted dask-ml model is cloned and fitted on the Dask rows; its
    scores are the in-memory scores of that fitted model."""
    dml = pytest.importorskip("dask_ml.linear_model")
    from skinfluence.cleaning._scoring import RowScorer

    X, y, _ = _data(seed=2)
    given = dml.LogisticRegression(C=0.5, solver="newton", tol=1e-14, max_iter=100)
    cleaner = InfluenceLabelCleaner(given, method="loo_newton", n_flag=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # dask-glm's config keys
        cleaner.fit(da.from_array(X, chunks=(CHUNKS, P)), da.from_array(y, chunks=(CHUNKS,)))
    assert not hasattr(given, "coef_")  # the caller's model is not fitted
    want = RowScorer(cleaner.estimator_, X, y).score("loo_newton")
    _close(cleaner.scores_.compute(), want)
    np.testing.assert_array_equal(
        cleaner.flagged_.compute(), flag_rows(want, rule="n_flag", value=10)
    )
