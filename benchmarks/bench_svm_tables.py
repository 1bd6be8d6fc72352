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

from skinfluence._testing import tied_table  # noqa: E402

K_ROWS = 20
N_TEST = 3


def _models():
    """``(label, estimator, which target, the exact option)`` per model."""
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.svm import SVC, SVR, LinearSVC, LinearSVR

    # libsvm can cycle for ever at a degenerate vertex (max_iter=-1 has no
    # bound); a refit that stops at max_iter says so with a ConvergenceWarning,
    # counted in the results
    tight = {"tol": 1e-10, "max_iter": 10_000_000}
    liblinear = {"tol": 1e-10, "max_iter": 1_000_000}
    return [
        ("SVC linear C=1", SVC(kernel="linear", C=1.0, **tight), "labels", "path"),
        ("SVC linear C=0.1", SVC(kernel="linear", C=0.1, **tight), "labels", "path"),
        ("SVC rbf C=1", SVC(kernel="rbf", gamma=0.05, C=1.0, **tight), "labels", "path"),
        ("SVR linear C=1", SVR(kernel="linear", C=1.0, epsilon=0.2, **tight), "target", "path"),
        (
            "SVR rbf C=1",
            SVR(kernel="rbf", gamma=0.05, C=1.0, epsilon=0.2, **tight),
            "target",
            "path",
        ),
        ("LinearSVC hinge C=1", LinearSVC(loss="hinge", C=1.0, **liblinear), "labels", "path"),
        ("LinearSVC hinge C=0.1", LinearSVC(loss="hinge", C=0.1, **liblinear), "labels", "path"),
        ("LinearSVC sq. hinge C=1", LinearSVC(C=1.0, **liblinear), "labels", "newton"),
        ("LinearSVR C=1", LinearSVR(C=1.0, epsilon=0.2, **liblinear), "target", "path"),
        ("KernelRidge rbf", KernelRidge(alpha=1.0, kernel="rbf", gamma=0.05), "target", "newton"),
    ]


def _highest_loss(est, X, y):
    if hasattr(est, "classes_"):
        loss = np.maximum(0, 1 - np.where(y == est.classes_[1], 1, -1) * est.decision_function(X))
    else:
        loss = (y - est.predict(X)) ** 2
    return np.argsort(-loss, kind="stable")[:N_TEST]


def run(label, est, X, y, exact):
    from sklearn.exceptions import ConvergenceWarning

    from skinfluence import InfluenceExplainer
    from skinfluence.retraining import leave_one_out

    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(X, y)
    out = {"model": label, "n": len(y), "n_features": X.shape[1], "exact": exact}
    out["sklearn_fit_s"] = time.perf_counter() - t0
    out["sklearn_fit_converged"] = not any(w.category is ConvergenceWarning for w in caught)
    test = _highest_loss(est, X, y)
    for approximation in ("influence", exact):
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exp = InfluenceExplainer(est, approximation=approximation).fit(X, y)
        seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as refit_warnings:
            warnings.simplefilter("always")
            result = leave_one_out(exp, X[test], y[test], rows=K_ROWS)
        advice = f"approximation='{exact}'"
        entry = {
            "fit_s": seconds,
            "pearson": result.agreement.pearson,
            "slope": result.agreement.slope,
            "refits_s": time.perf_counter() - t0,
            "refits_not_converged": sum(w.category is ConvergenceWarning for w in refit_warnings),
            "warned_use_exact": any(advice in str(w.message) for w in caught),
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
            f"{label:24s} {approximation:9s} fit {seconds:6.2f} s  R {entry['pearson']:.4f} "
            f"slope {entry['slope']:.3f}  warned {entry['warned_use_exact']}",
            file=sys.stderr,
            flush=True,
        )
    return out


def markdown(rows):
    lines = [
        "| model | margin rows (dependent) | exact option: fit, events/row mean / max, "
        "truncated | exact vs refits: Pearson, slope | default vs refits: Pearson, slope, "
        "warned |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        p, d = r[r["exact"]], r["influence"]
        details = d["details"]
        margin = f"{details.get('margin_rows', '-')} ({details.get('dependent_kink_rows', '-')})"
        cost = f"`{r['exact']}`: {p['fit_s']:.1f} s"
        if r["exact"] == "path":
            events = f"{p['events_per_row_mean']:.1f} / {p['events_per_row_max']}"
            cost += f", {events}, {p['truncated_rows']}"
        lines.append(
            f"| {r['model']} | {margin} | {cost} | {p['pearson']:.4f}, {p['slope']:.3f} | "
            f"{d['pearson']:.3f}, {d['slope']:.3f}, {'yes' if d['warned_use_exact'] else 'no'} |"
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
    for label, est, which, exact in _models():
        rows.append(run(label, est, X, labels if which == "labels" else target, exact))
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
            "n_features": X.shape[1],
            "distinct_rows": int(len(np.unique(np.column_stack([X, labels]), axis=0))),
            "results": rows,
            "table": table,
        },
    )


if __name__ == "__main__":
    main()
