"""Hinge-type models on a table shaped like real ones: the decremental path's
cost and both approximations' agreement with real refits.

The table: ``n`` rows, four categorical columns and a binned numeric column
one-hot encoded plus three numeric columns rounded to one decimal (30
features), and a quarter of the rows duplicated -- the structure (ties,
duplicates, one-hot columns) that puts a hinge fit at a degenerate vertex.
For each model:

* ``approximation="path"``: time of ``fit`` (every removal followed to its
  end), active-set events per removed row (mean and max), removals left
  approximate (truncated), margin rows and dependent kink rows;
* agreement with refits (3 highest-loss test rows x the 20 most influential
  rows, scikit-learn refitted without each row) of the path and of the
  default first-order estimate, and whether the default warned.

Run ``python benchmarks/bench_svm_tables.py`` (a few minutes on 2 cores);
``--n 2000`` is the default size. Writes ``benchmarks/results/svm_tables.json``
and prints a Markdown table.
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

K_ROWS = 20
N_TEST = 3


def tied_table(n, seed=0, duplicated=0.25):
    """``(X, labels, target)`` with 30 features: one-hot categoricals of 5, 6,
    7 and 5 levels, a numeric column binned into 4, three numeric columns
    rounded to one decimal; ``duplicated`` of the rows copy others."""
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(seed)
    cats = np.column_stack([rng.integers(0, k, n) for k in (5, 6, 7, 5)])
    num = rng.normal(size=(n, 4))
    binned = np.digitize(num[:, 0], [-1.0, 0.0, 1.0])
    signal = (
        0.8 * (cats[:, 0] == 1)
        - 0.6 * (cats[:, 1] == 2)
        + 0.4 * (cats[:, 2] > 3)
        + num[:, 1]
        - 0.5 * num[:, 2]
        + 0.5 * binned
    )
    labels = (signal + rng.logistic(size=n) > 0.3).astype(int)
    target = signal + 0.5 * rng.normal(size=n)
    encoded = OneHotEncoder(sparse_output=False).fit_transform(np.column_stack([cats, binned]))
    X = np.column_stack([encoded, np.round(num[:, 1:], 1)])
    k = int(duplicated * n)
    copies = rng.integers(0, n - k, k)
    if k == 0:
        return X, labels, target
    X[-k:], labels[-k:], target[-k:] = X[copies], labels[copies], target[copies]
    return X, labels, target


def _models():
    from sklearn.svm import SVC, SVR

    tight = {"tol": 1e-10}
    return [
        ("SVC linear C=1", SVC(kernel="linear", C=1.0, **tight), "labels"),
        ("SVC linear C=0.1", SVC(kernel="linear", C=0.1, **tight), "labels"),
        ("SVC rbf C=1", SVC(kernel="rbf", gamma=0.05, C=1.0, **tight), "labels"),
        ("SVR linear C=1", SVR(kernel="linear", C=1.0, epsilon=0.2, **tight), "target"),
        ("SVR rbf C=1", SVR(kernel="rbf", gamma=0.05, C=1.0, epsilon=0.2, **tight), "target"),
    ]


def _highest_loss(est, X, y):
    if hasattr(est, "classes_"):
        loss = np.maximum(0, 1 - np.where(y == est.classes_[1], 1, -1) * est.decision_function(X))
    else:
        loss = (y - est.predict(X)) ** 2
    return np.argsort(-loss, kind="stable")[:N_TEST]


def run(label, est, X, y):
    from skinfluence import InfluenceExplainer
    from skinfluence.retraining import leave_one_out

    t0 = time.perf_counter()
    est.fit(X, y)
    out = {"model": label, "n": len(y), "n_features": X.shape[1]}
    out["sklearn_fit_s"] = time.perf_counter() - t0
    test = _highest_loss(est, X, y)
    for approximation in ("influence", "path"):
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exp = InfluenceExplainer(est, approximation=approximation).fit(X, y)
        seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = leave_one_out(exp, X[test], y[test], rows=K_ROWS)
        entry = {
            "fit_s": seconds,
            "pearson": result.agreement.pearson,
            "slope": result.agreement.slope,
            "refits_s": time.perf_counter() - t0,
            "warned_use_path": any("approximation='path'" in str(w.message) for w in caught),
            "warnings": sorted({str(w.message)[:100] for w in caught}),
            "details": dict(exp.solver_.report.details),
        }
        if approximation == "path":
            path = exp.solver_
            moving = path.nu0 != 0
            entry["removals"] = int(moving.sum())
            entry["events_per_row_mean"] = float(path.events_[moving].mean())
            entry["events_per_row_max"] = int(path.events_.max())
            entry["truncated_rows"] = int(path.truncated_rows_.size)
        out[approximation] = entry
        print(
            f"{label:18s} {approximation:9s} fit {seconds:6.2f} s  R {entry['pearson']:.4f} "
            f"slope {entry['slope']:.3f}  warned {entry['warned_use_path']}",
            file=sys.stderr,
            flush=True,
        )
    return out


def markdown(rows):
    lines = [
        "| model | n x features | margin rows (dependent) | path: fit, events/row mean / max, "
        "truncated | path vs refits: Pearson, slope | default vs refits: Pearson, slope, "
        "warned |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        p, d = r["path"], r["influence"]
        lines.append(
            f"| {r['model']} | {r['n']} x {r['n_features']} | "
            f"{p['details'].get('margin_rows')} ({p['details'].get('dependent_kink_rows')}) | "
            f"{p['fit_s']:.1f} s, {p['events_per_row_mean']:.1f} / {p['events_per_row_max']}, "
            f"{p['truncated_rows']} | {p['pearson']:.4f}, {p['slope']:.3f} | "
            f"{d['pearson']:.3f}, {d['slope']:.3f}, {'yes' if d['warned_use_path'] else 'no'} |"
        )
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--out", default=str(RESULTS / "svm_tables.json"))
    args = ap.parse_args(argv)
    started = now()
    X, labels, target = tied_table(args.n)
    rows = []
    for label, est, which in _models():
        rows.append(run(label, est, X, labels if which == "labels" else target))
    table = markdown(rows)
    print(table)
    write_json(
        Path(args.out),
        {
            "benchmark": "svm_tables",
            "command": f"python benchmarks/bench_svm_tables.py --n {args.n}",
            "started": started,
            "finished": now(),
            "machine": machine_info(),
            "distinct_rows": int(len(np.unique(np.column_stack([X, labels]), axis=0))),
            "results": rows,
            "table": table,
        },
    )


if __name__ == "__main__":
    main()
