"""Accuracy of influence estimates against real leave-one-out retraining.

For every supported linear estimator family (and a few options that change
the objective: class weights, sample weights, liblinear's penalised
intercept, pipelines), on data that ships with scikit-learn: fit tightly,
take a few test rows, remove each of the ``k`` most influential training rows
in turn, refit from scratch, and compare the measured change of the test loss
with ``-influence`` (Koh & Liang, Figure 2) for the first-order and Newton
approximations, and for ``approximation="refit"`` (Newton iterations to the
leave-one-out optimum, on the rows the Newton explainer chose). Also
the measured increase of each removed row's own loss against
``self_influence`` (linear in the outputs) and against
``leave_one_out_loss - training_loss`` (the loss at the shifted outputs), both
with ``approximation="newton"``.

Reported per case: Pearson and Spearman correlation and the least-squares
slope of actual on predicted (1.00 = right scale), over all (test row, removed
row) pairs.

Run ``python benchmarks/bench_loo.py`` (about a minute on 2 cores); writes
``benchmarks/results/loo.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from _common import RESULTS, machine_info, now, write_json  # noqa: E402

K_ROWS = 30
N_TEST = 3


def _data(name):
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    if name == "breast_cancer":
        X, y = datasets.load_breast_cancer(return_X_y=True, as_frame=True)
    elif name == "wine":
        X, y = datasets.load_wine(return_X_y=True, as_frame=True)
    elif name == "digits":
        X, y = datasets.load_digits(return_X_y=True)
        X = X / 16.0
    elif name == "diabetes":
        X, y = datasets.load_diabetes(return_X_y=True, as_frame=True)
    elif name == "diabetes_counts":  # a count target for Poisson regression
        X, y = datasets.load_diabetes(return_X_y=True, as_frame=True)
        y = np.round(y / 10.0)
    elif name == "iris":
        X, y = datasets.load_iris(return_X_y=True, as_frame=True)
    else:
        raise KeyError(name)
    stratify = y if name in ("breast_cancer", "wine", "digits", "iris") else None
    return train_test_split(X, y, test_size=0.25, random_state=0, stratify=stratify)


def _cases():
    from sklearn.linear_model import (
        HuberRegressor,
        LinearRegression,
        LogisticRegression,
        PoissonRegressor,
        Ridge,
        RidgeClassifier,
        SGDClassifier,
        SGDRegressor,
    )
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def scaled(est):
        return make_pipeline(StandardScaler(), est)

    tight = {"tol": 1e-10, "max_iter": 100_000}
    sgd = {"tol": None, "max_iter": 3000, "learning_rate": "constant", "eta0": 1e-3}
    return [
        ("LogisticRegression lbfgs", "breast_cancer", scaled(LogisticRegression(**tight)), None),
        (
            "LogisticRegression liblinear",
            "breast_cancer",
            scaled(LogisticRegression(solver="liblinear", tol=1e-10, max_iter=100_000)),
            None,
        ),
        (
            "LogisticRegression balanced",
            "breast_cancer",
            scaled(LogisticRegression(class_weight="balanced", **tight)),
            None,
        ),
        (
            "LogisticRegression sample_weight",
            "breast_cancer",
            scaled(LogisticRegression(**tight)),
            "weights",
        ),
        ("LogisticRegression multinomial", "wine", scaled(LogisticRegression(**tight)), None),
        (
            "LogisticRegression multinomial",
            "digits",
            LogisticRegression(solver="newton-cg", **tight),
            None,
        ),
        ("LinearRegression", "diabetes", LinearRegression(), None),
        ("Ridge", "diabetes", Ridge(alpha=1.0), None),
        ("RidgeClassifier", "iris", scaled(RidgeClassifier(alpha=1.0)), None),
        (
            "SGDClassifier log_loss",
            "breast_cancer",
            scaled(SGDClassifier(loss="log_loss", alpha=1e-2, random_state=0, **sgd)),
            None,
        ),
        (
            "SGDRegressor squared_error",
            "diabetes",
            scaled(SGDRegressor(alpha=1e-2, random_state=0, **sgd)),
            None,
        ),
        (
            "PoissonRegressor",
            "diabetes_counts",
            scaled(PoissonRegressor(alpha=0.1, tol=1e-12, max_iter=10_000)),
            None,
        ),
        (
            "HuberRegressor",
            "diabetes",
            scaled(HuberRegressor(alpha=1e-3, tol=1e-10, max_iter=10_000)),
            None,
        ),
    ]


def run_case(label, dataset, model, weights):
    from sklearn.base import clone

    from skinfluence import InfluenceExplainer
    from skinfluence.retraining import agreement, leave_one_out

    X_tr, X_te, y_tr, y_te = _data(dataset)
    sw = None
    if weights:
        sw = np.random.default_rng(0).integers(1, 4, size=len(y_tr)).astype(float)
    fit_params = {}
    if sw is not None:
        step = model.steps[-1][0] if hasattr(model, "steps") else None
        fit_params = {f"{step}__sample_weight" if step else "sample_weight": sw}
    model = clone(model).fit(X_tr, y_tr, **fit_params)
    pick = lambda A, idx: A.iloc[idx] if hasattr(A, "iloc") else A[idx]  # noqa: E731
    X_test, y_test = pick(X_te, np.arange(N_TEST)), pick(y_te, np.arange(N_TEST))
    out = {"model": label, "dataset": dataset, "n_train": len(y_tr), "k_rows": K_ROWS}
    t0 = time.perf_counter()
    chosen = K_ROWS
    for approximation in ("influence", "newton", "refit"):
        exp = InfluenceExplainer(model, approximation=approximation)
        exp.fit(X_tr, y_tr, sample_weight=sw)
        t1 = time.perf_counter()
        res = leave_one_out(exp, X_test, y_test, rows=chosen, n_jobs=2)
        a = res.agreement
        out[approximation] = {"pearson": a.pearson, "spearman": a.spearman, "slope": a.slope}
        out[approximation]["seconds"] = time.perf_counter() - t1
        if approximation == "newton":
            chosen = res.rows  # refit: the same rows, without ranking all of them
        if approximation == "refit":
            a = agreement(res.predicted, out["newton_predicted"])
            out["refit"]["newton_vs_refit_slope"] = a.slope
            out.pop("newton_predicted")
            continue
        if approximation == "newton":
            out["newton_predicted"] = res.predicted.tolist()
        # self-influence: each removed row's own loss, refitted without it
        rows = res.rows[:10]
        own = leave_one_out(exp, pick(X_tr, rows), pick(y_tr, rows), rows=rows, n_jobs=2)
        diag_pred = np.diag(own.predicted)  # = self_influence of the rows
        diag_act = np.diag(own.actual)
        s = agreement(diag_pred, diag_act)
        out[approximation]["self_influence"] = {"pearson": s.pearson, "slope": s.slope}
        # the leave-one-out loss keeps the loss non-linear in the shifted outputs
        loo = np.asarray(exp.leave_one_out_loss() - exp.training_loss())[rows]
        s = agreement(loo, diag_act)
        out[approximation]["leave_one_out_loss"] = {"pearson": s.pearson, "slope": s.slope}
        np.testing.assert_allclose(diag_pred, exp.self_influence()[rows], rtol=1e-8, atol=1e-12)
        out["stationarity"] = float(exp.stationarity_)
    out["seconds"] = time.perf_counter() - t0
    return out


def markdown(results):
    lines = [
        "| model | data | n | Pearson (influence / newton) | slope (influence / newton) "
        "| refit: Pearson, slope "
        "| own loss: self-influence R, slope | own loss: leave_one_out_loss R, slope |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        i, n, f = r["influence"], r["newton"], r["refit"]
        lines.append(
            f"| {r['model']} | {r['dataset']} | {r['n_train']} "
            f"| {i['pearson']:.3f} / {n['pearson']:.3f} | {i['slope']:.2f} / {n['slope']:.2f} "
            f"| {f['pearson']:.5f}, {f['slope']:.3f} "
            f"| {n['self_influence']['pearson']:.3f}, {n['self_influence']['slope']:.2f} "
            f"| {n['leave_one_out_loss']['pearson']:.3f}, {n['leave_one_out_loss']['slope']:.2f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(RESULTS / "loo.json"))
    args = ap.parse_args(argv)
    results = []
    started = now()
    with warnings.catch_warnings():
        # SGD stops near the optimum: its NotAtOptimumWarning is recorded as
        # `stationarity`, not printed
        warnings.simplefilter("ignore")
        for case in _cases():
            r = run_case(*case)
            results.append(r)
            print(
                f"{r['model']:34s} {r['dataset']:15s} R {r['influence']['pearson']:.3f} / "
                f"{r['newton']['pearson']:.3f} / {r['refit']['pearson']:.5f}  slope "
                f"{r['influence']['slope']:.2f} / {r['newton']['slope']:.2f} / "
                f"{r['refit']['slope']:.3f}  ({r['seconds']:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
    table = markdown(results)
    print(table)
    write_json(
        __import__("pathlib").Path(args.out),
        {
            "benchmark": "loo",
            "command": "python benchmarks/bench_loo.py",
            "started": started,
            "finished": now(),
            "machine": machine_info(),
            "k_rows": K_ROWS,
            "n_test": N_TEST,
            "results": results,
            "table": table,
        },
    )


if __name__ == "__main__":
    main()
