"""The ``skinfluence`` command line, end to end on temporary files."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import types

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from skinfluence.cli import main


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """Breast cancer with string labels, 40 flipped, a categorical column and
    missing values; written as CSV and Parquet."""
    data = load_breast_cancer(as_frame=True)
    df = data.frame.iloc[:, [0, 1, 2, 3, 6, 7, 20, 21, 22, 27]].copy()
    rng = np.random.default_rng(0)
    truth = np.where(data.target == 1, "benign", "malignant")
    label = truth.copy()
    flipped = np.sort(rng.choice(len(df), 40, replace=False))
    label[flipped] = np.where(label[flipped] == "benign", "malignant", "benign")
    df["site"] = rng.choice(["north", "south", None], len(df))
    df.loc[::9, "mean radius"] = np.nan
    df["diagnosis"] = label
    folder = tmp_path_factory.mktemp("cli")
    csv, parquet = folder / "data.csv", folder / "data.parquet"
    df.to_csv(csv, index=False)
    df.to_parquet(parquet, index=False)
    return types.SimpleNamespace(df=df, csv=csv, parquet=parquet, flipped=flipped, dir=folder)


def test_clean_csv_end_to_end(table, capsys):
    before = _sha(table.csv)
    out = table.dir / "issues.csv"
    rc = main(["clean", str(table.csv), "--target", "diagnosis", "--out", str(out)])
    assert rc == 0
    assert _sha(table.csv) == before  # the input is never modified
    captured = capsys.readouterr()
    assert "Top 10 suspects" in captured.out
    assert "flagged as likely mislabeled" in captured.out
    assert "fitting" in captured.err  # progress goes to stderr
    issues = pd.read_csv(out, index_col="row")
    assert len(issues) == len(table.df)
    assert {"score", "rank", "given_label", "suggested_label", "flagged"} <= set(issues)
    assert issues["rank"].is_monotonic_increasing  # most suspicious first
    np.testing.assert_array_equal(
        issues.sort_index()["given_label"].to_numpy(), table.df["diagnosis"].to_numpy()
    )
    # the automatic rule flags mostly flipped rows and finds most of them
    flagged = issues.index[issues["flagged"]].to_numpy()
    hits = np.isin(flagged, table.flipped).sum()
    assert hits >= 0.7 * len(table.flipped)
    assert hits >= 0.5 * len(flagged)
    # suggestions of flagged rows are the other label
    sub = issues.loc[issues["flagged"]]
    assert (sub["suggested_label"] != sub["given_label"]).mean() > 0.9


def test_clean_parquet_in_and_out(table, capsys):
    before = _sha(table.parquet)
    out = table.dir / "issues.parquet"
    rc = main(
        [
            "clean",
            str(table.parquet),
            "--target",
            "diagnosis",
            "--fraction",
            "0.05",
            "--method",
            "loo_newton",
            "--model",
            "logistic",
            "--top",
            "3",
            "--quiet",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    assert _sha(table.parquet) == before
    captured = capsys.readouterr()
    assert captured.err == ""  # --quiet
    assert "Top 3 suspects" in captured.out
    issues = pd.read_parquet(out)
    assert issues["flagged"].sum() == int(np.ceil(0.05 * len(table.df)))
    assert np.isin(issues.index[issues["flagged"]], table.flipped).mean() > 0.8


@pytest.mark.filterwarnings("ignore::skinfluence.NotAtOptimumWarning")  # SGD
@pytest.mark.parametrize("model", ["ridge", "sgd"])
def test_other_models(table, model, capsys):
    rc = main(["clean", str(table.csv), "--target", "diagnosis", "--model", model, "--quiet"])
    assert rc == 0
    assert "suspects" in capsys.readouterr().out


def test_errors(table, tmp_path, capsys):
    rc = main(["clean", str(table.csv), "--target", "nope", "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "target column 'nope' not found" in err and "diagnosis" in err

    one = tmp_path / "one.csv"
    pd.DataFrame({"a": [1.0, 2.0, 3.0], "y": ["x", "x", "x"]}).to_csv(one, index=False)
    assert main(["clean", str(one), "--target", "y", "--quiet"]) == 2
    assert "single class" in capsys.readouterr().err

    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"this is not parquet")
    assert main(["clean", str(bad), "--target", "y", "--quiet"]) == 2
    assert "cannot read" in capsys.readouterr().err

    assert main(["clean", str(tmp_path / "missing.csv"), "--target", "y"]) == 2
    assert "no such file" in capsys.readouterr().err

    before = _sha(table.csv)
    rc = main(["clean", str(table.csv), "--target", "diagnosis", "--out", str(table.csv)])
    assert rc == 2 and _sha(table.csv) == before
    assert "--out must differ" in capsys.readouterr().err

    with pytest.raises(SystemExit) as exc:
        main(
            [
                "clean",
                str(table.csv),
                "--target",
                "diagnosis",
                "--fraction",
                "0.1",
                "--n-flag",
                "3",
            ]
        )
    assert exc.value.code == 2


def test_demo_imports_lazily(monkeypatch, capsys):
    calls = []
    fake = types.ModuleType("skinfluence._demo")
    fake.main = lambda: calls.append(True)
    monkeypatch.setitem(sys.modules, "skinfluence._demo", fake)
    import skinfluence

    monkeypatch.setattr(skinfluence, "_demo", fake, raising=False)
    assert main(["demo"]) == 0
    assert calls == [True]


def test_python_dash_m(table, tmp_path):
    out = tmp_path / "issues.csv"
    before = _sha(table.csv)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "skinfluence",
            "clean",
            str(table.csv),
            "--target",
            "diagnosis",
            "--n-flag",
            "5",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "5 of 569 rows flagged" in proc.stdout
    assert out.is_file() and _sha(table.csv) == before
    proc = subprocess.run(
        [sys.executable, "-m", "skinfluence", "clean", str(table.csv), "--target", "zzz"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and "not found" in proc.stderr
