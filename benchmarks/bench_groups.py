"""Removing groups of training rows: predicted against refitted effects.

For each data set that ships with scikit-learn and a tightly fitted model,
groups of 1 %, 5 % and 10 % of the training rows -- random groups, and groups
of rows sharing a range of one feature (a quantile window of a random
column) -- are removed one group at a time and the model is refitted from
scratch. The measured change of each test row's loss is compared with
``-group_influence`` of three explainers:

* ``influence``: the sum of the rows' first-order influences;
* ``newton``: one Newton step with the group's rows taken out of the Hessian;
* ``refit``: Newton iterations to the optimum without the group.

Reported per (data set, size, kind): Pearson correlation and least-squares
slope of actual on predicted over all (group, test row) pairs, and the time
of each method against the scikit-learn refits.

Relabelling is measured the same way (``relabel_influence`` against
refits with one label flipped): breast cancer, the 4 rows the model is
surest of and 12 random rows.

Run ``python benchmarks/bench_groups.py`` (a few minutes on 2 cores); writes
``benchmarks/results/groups.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine_info, now, write_json  # noqa: E402

SIZES = (0.01, 0.05, 0.10)
N_GROUPS = 10
N_TEST = 30
APPROXIMATIONS = ("influence", "newton", "refit")


def _cases():
    from sklearn import datasets
    from sklearn.linear_model import LogisticRegression, PoissonRegressor, Ridge

    tight = {"tol": 1e-12, "max_iter": 100_000}
    cancer = datasets.load_breast_cancer(return_X_y=True)
    wine = datasets.load_wine(return_X_y=True)
    diabetes = datasets.load_diabetes(return_X_y=True)
    counts = (diabetes[0], np.round(diabetes[1] / 10.0))
    return [
        ("LogisticRegression", "breast_cancer", cancer, LogisticRegression(C=1.0, **tight)),
        ("LogisticRegression multinomial", "wine", wine, LogisticRegression(C=1.0, **tight)),
        ("Ridge", "diabetes", diabetes, Ridge(alpha=1.0)),
        ("PoissonRegressor", "diabetes_counts", counts, PoissonRegressor(alpha=0.1, **tight)),
    ]


def _groups(X, size, kind, rng):
    n = X.shape[0]
    m = max(1, int(round(size * n)))
    if kind == "random":
        return [rng.choice(n, size=m, replace=False) for _ in range(N_GROUPS)]
    groups = []
    for _ in range(N_GROUPS):  # rows sharing a range of one feature
        column = X[:, rng.integers(X.shape[1])]
        order = np.argsort(column, kind="stable")
        start = rng.integers(0, n - m + 1)
        groups.append(np.sort(order[start : start + m]))
    return groups


def run_case(label, dataset, data, model):
    from sklearn.base import clone
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from skinfluence import InfluenceExplainer
    from skinfluence.retraining import agreement

    X, y = data
    X = StandardScaler().fit_transform(X)
    stratify = y if dataset in ("breast_cancer", "wine") else None
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=stratify
    )
    X_te, y_te = X_te[:N_TEST], y_te[:N_TEST]
    model = clone(model).fit(X_tr, y_tr)
    explainers = {
        a: InfluenceExplainer(model, approximation=a).fit(X_tr, y_tr) for a in APPROXIMATIONS
    }
    retrain = explainers["influence"].retrainer(X_te, y_te)
    base = retrain(None)
    rng = np.random.default_rng(0)
    rows = []
    for size in SIZES:
        for kind in ("random", "feature range"):
            groups = _groups(X_tr, size, kind, rng)
            t0 = time.perf_counter()
            actual = np.stack([retrain(g) - base for g in groups])  # (groups, test)
            refit_s = time.perf_counter() - t0
            out = {
                "model": label,
                "dataset": dataset,
                "n_train": len(y_tr),
                "size": size,
                "kind": kind,
                "group_rows": int(len(groups[0])),
                "sklearn_refits_s": refit_s,
            }
            for approximation, exp in explainers.items():
                t0 = time.perf_counter()
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    predicted = -exp.group_influence(X_te, y_te, groups).T
                a = agreement(predicted, actual)
                out[approximation] = {
                    "pearson": a.pearson,
                    "slope": a.slope,
                    "seconds": time.perf_counter() - t0,
                    "warnings": sorted({str(w.message)[:80] for w in caught}),
                }
            rows.append(out)
            print(
                f"{label:32s} {dataset:15s} {size:4.0%} {kind:13s} "
                + "  ".join(
                    f"{a} R {out[a]['pearson']:.4f} s {out[a]['slope']:.3f}"
                    for a in APPROXIMATIONS
                ),
                file=sys.stderr,
                flush=True,
            )
    return rows


def run_relabel():
    """Flip one label at a time: predicted against refitted test-loss changes."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from skinfluence import InfluenceExplainer
    from skinfluence.retraining import agreement

    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    X_te, y_te, X, y = X[400:], y[400:], X[:400], y[:400]
    tight = {"tol": 1e-12, "max_iter": 10_000}
    model = LogisticRegression(**tight).fit(X, y)
    sure = np.argsort(-np.abs(model.decision_function(X)))[:4]
    rows = np.concatenate([sure, np.random.default_rng(0).choice(len(y), 12, replace=False)])
    labels = 1 - y[rows]
    at = np.arange(len(y_te))
    base = -np.log(model.predict_proba(X_te)[at, y_te])
    t0 = time.perf_counter()
    actual = []
    for row, label in zip(rows, labels, strict=True):
        flipped = y.copy()
        flipped[row] = label
        refit = LogisticRegression(**tight).fit(X, flipped)
        actual.append(-np.log(refit.predict_proba(X_te)[at, y_te]) - base)
    actual = np.stack(actual, axis=1)
    out = {"rows": rows, "sklearn_refits_s": time.perf_counter() - t0}
    for approximation in APPROXIMATIONS:
        exp = InfluenceExplainer(model, approximation=approximation).fit(X, y)
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            predicted = -exp.relabel_influence(X_te, y_te, rows, labels)
        every, random = agreement(predicted, actual), agreement(predicted[:, 4:], actual[:, 4:])
        out[approximation] = {
            "all": {"pearson": every.pearson, "slope": every.slope},
            "random": {"pearson": random.pearson, "slope": random.slope},
            "seconds": time.perf_counter() - t0,
            "warnings": sorted({str(w.message)[:80] for w in caught}),
        }
        print(
            f"relabel {approximation:9s} all R {every.pearson:.4f} s {every.slope:.3f}  "
            f"random R {random.pearson:.4f} s {random.slope:.3f}",
            file=sys.stderr,
        )
    return out


def markdown(results):
    lines = [
        "| model | data | n | group | kind | influence: Pearson, slope | newton: Pearson, slope "
        "| refit: Pearson, slope | time: newton / refit / sklearn refits |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        i, n, f = r["influence"], r["newton"], r["refit"]
        lines.append(
            f"| {r['model']} | {r['dataset']} | {r['n_train']} | {r['size']:.0%} "
            f"({r['group_rows']} rows) | {r['kind']} | {i['pearson']:.3f}, {i['slope']:.2f} "
            f"| {n['pearson']:.4f}, {n['slope']:.3f} | {f['pearson']:.5f}, {f['slope']:.3f} "
            f"| {n['seconds']:.2f} / {f['seconds']:.2f} / {r['sklearn_refits_s']:.2f} s |"
        )
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(RESULTS / "groups.json"))
    args = ap.parse_args(argv)
    started = now()
    results = []
    for case in _cases():
        results.extend(run_case(*case))
    relabel = run_relabel()
    table = markdown(results)
    print(table)
    write_json(
        Path(args.out),
        {
            "benchmark": "groups",
            "command": "python benchmarks/bench_groups.py",
            "started": started,
            "finished": now(),
            "machine": machine_info(),
            "n_groups": N_GROUPS,
            "n_test": N_TEST,
            "results": results,
            "relabel": relabel,
            "table": table,
        },
    )


if __name__ == "__main__":
    main()
