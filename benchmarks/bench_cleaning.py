"""Finding flipped labels: influence-based scores against training loss,
random review and cleanlab.

On data sets that ship with scikit-learn (breast cancer, digits, wine, iris)
and one real tabular set shipped by statsmodels (``fair``: 6366 survey rows,
"had an affair", one-hot occupations; skipped when statsmodels is missing),
``rate`` of the training labels are flipped to another class at random, for
several seeds and two regularisation strengths of the same model,
``StandardScaler + LogisticRegression(C, tol=1e-8)``. Each method ranks the
training rows; a reviewer checks the top 5/10/20/30 % and fixes the flips
found there, the model is refitted on the fixed labels and scored on clean
test rows.

Methods: ``random``; ``training_loss``; ``self_influence`` (Koh & Liang);
``loo_loss`` (training loss + self-influence, the approximate leave-one-out
loss); ``loo_newton`` (the same with the Newton step); ``validation_influence``
(mean influence on a trusted, clean validation split of 10 % of the rows);
``cleanlab`` (label-quality scores from 5-fold cross-validated probabilities
of the same model at scikit-learn's default ``tol=1e-4``, as
``cleanlab.filter.find_label_issues`` uses them). Times include fitting the
model (influence methods: one fit at ``tol=1e-8``, as influence functions need
the optimum; cleanlab: five fits at ``tol=1e-4``). Single-threaded BLAS.

The automatic flag rules are scored as well: skinfluence's ``auto`` (rows the
approximate leave-one-out model misclassifies) and cleanlab's
``find_label_issues`` (confident learning, ``prune_by_noise_rate``).

Usage::

    python benchmarks/bench_cleaning.py           # full run, results/cleaning.json
    python benchmarks/bench_cleaning.py --quick   # smoke run, results/cleaning_quick.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

BUDGETS = (0.05, 0.10, 0.20, 0.30)
RATES = (0.05, 0.10, 0.20, 0.30)
SEEDS = (0, 1, 2)
CS = (1.0, 100.0)
INFLUENCE_METHODS = (
    "training_loss",
    "self_influence",
    "loo_loss",
    "loo_newton",
    "validation_influence",
)
METHODS = ("random", *INFLUENCE_METHODS, "cleanlab")


# ------------------------------------------------------------------- data
def load_dataset(name):
    """``(X, y, categorical column indices)``."""
    from sklearn import datasets

    if name == "fair":
        import statsmodels.api as sm

        df = sm.datasets.fair.load_pandas().data
        y = (df.pop("affairs") > 0).astype(int).to_numpy()
        X = df[
            [
                "rate_marriage",
                "age",
                "yrs_married",
                "children",
                "religious",
                "educ",
                "occupation",
                "occupation_husb",
            ]
        ].to_numpy(dtype=float)
        return X, y, [6, 7]
    loader = {
        "breast_cancer": datasets.load_breast_cancer,
        "digits": datasets.load_digits,
        "wine": datasets.load_wine,
        "iris": datasets.load_iris,
    }[name]
    X, y = loader(return_X_y=True)
    return X, y, []


def available_datasets(quick):
    names = ["breast_cancer", "digits", "wine", "iris"]
    try:
        import statsmodels  # noqa: F401

        names.append("fair")
    except ImportError:
        print("statsmodels is not installed: skipping the 'fair' data set", file=sys.stderr)
    return ["breast_cancer", "wine"] if quick else names


def make_model(C, categorical, tol=1e-8):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    clf = LogisticRegression(C=C, tol=tol, max_iter=10_000)
    if not categorical:
        return make_pipeline(StandardScaler(), clf)
    pre = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical)],
        remainder=StandardScaler(),
    )
    return make_pipeline(pre, clf)


def flip_labels(y, rate, rng):
    """Flip ``round(rate * n)`` labels, each to another class uniformly."""
    classes = np.unique(y)
    n_flip = int(round(rate * len(y)))
    rows = rng.choice(len(y), n_flip, replace=False)
    noisy = y.copy()
    for i in rows:
        noisy[i] = rng.choice(classes[classes != y[i]])
    return noisy


# --------------------------------------------------------------- one case
def run_case(name, X, y, categorical, rate, seed, C):
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold, cross_val_predict, train_test_split

    from skinfluence.cleaning._scoring import RowScorer

    rng = np.random.default_rng(1000 * seed + int(100 * rate))
    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=0.25, random_state=seed, stratify=y
    )
    X_tr, X_val, y_tr, y_val = train_test_split(
        X_rest, y_rest, test_size=0.10 / 0.75, random_state=seed, stratify=y_rest
    )
    y_noisy = flip_labels(y_tr, rate, rng)
    is_flip = y_noisy != y_tr
    n = len(y_noisy)
    model = make_model(C, categorical)
    # cleanlab and the accuracy refits need no exact optimum: scikit-learn's
    # default tolerance (faster)
    loose = make_model(C, categorical, tol=1e-4)

    t0 = time.perf_counter()
    fitted = clone(model).fit(X_tr, y_noisy)
    fit_time = time.perf_counter() - t0

    scores, seconds, auto = {}, {}, {}
    scores["random"] = rng.random(n)
    seconds["random"] = 0.0
    for method in INFLUENCE_METHODS:
        scorer = RowScorer(fitted, X_tr, y_noisy)  # fresh: no shared work between methods
        t0 = time.perf_counter()
        scores[method] = scorer.score(method, X_val=X_val, y_val=y_val)
        seconds[method] = fit_time + time.perf_counter() - t0
    # the automatic rule of InfluenceLabelCleaner: as many rows as the
    # approximate leave-one-out model misclassifies, highest loo_loss first
    scorer = RowScorer(fitted, X_tr, y_noisy)
    n_auto = int(np.sum(scorer.suggested_labels("loo_loss") != y_noisy))
    order = np.argsort(-scores["loo_loss"], kind="stable")
    flagged = np.zeros(n, dtype=bool)
    flagged[order[:n_auto]] = True
    auto["skinfluence_auto"] = flagged

    t0 = time.perf_counter()
    cv = StratifiedKFold(5, shuffle=True, random_state=seed)
    probs = cross_val_predict(clone(loose), X_tr, y_noisy, cv=cv, method="predict_proba")
    classes = np.unique(y_noisy)
    labels = np.searchsorted(classes, y_noisy)
    scores["cleanlab"] = -get_label_quality_scores(labels, probs)
    seconds["cleanlab"] = time.perf_counter() - t0
    auto["cleanlab_find_label_issues"] = find_label_issues(labels, probs)

    def accuracy(labels_fixed):
        est = clone(loose).fit(X_tr, labels_fixed)
        return float(est.score(X_test, y_test))

    out = {
        "dataset": name,
        "rate": rate,
        "seed": seed,
        "C": C,
        "n_train": n,
        "n_flipped": int(is_flip.sum()),
        "accuracy_noisy": float(fitted.score(X_test, y_test)),
        "accuracy_clean": accuracy(y_tr),
        "methods": {},
        "auto": {},
    }
    for method in METHODS:
        order = np.argsort(-scores[method], kind="stable")
        found, acc = {}, {}
        for b in BUDGETS:
            checked = order[: int(round(b * n))]
            fixed = y_noisy.copy()
            fixed[checked] = y_tr[checked]
            found[str(b)] = float(is_flip[checked].sum() / max(1, is_flip.sum()))
            acc[str(b)] = accuracy(fixed)
        out["methods"][method] = {"found": found, "accuracy": acc, "seconds": seconds[method]}
    for rule, flagged in auto.items():
        tp = int(np.sum(flagged & is_flip))
        out["auto"][rule] = {
            "n_flagged": int(flagged.sum()),
            "precision": tp / max(1, int(flagged.sum())),
            "recall": tp / max(1, int(is_flip.sum())),
        }
    return out


# ------------------------------------------------------------------ summary
def summarize(cases):
    """Averages over all cases: per method and budget, and per data set."""
    summary = {"overall": {}, "by_dataset": {}, "by_C": {}, "auto": {}}

    def avg(rows, method):
        m = [r["methods"][method] for r in rows]
        return {
            "found": {str(b): float(np.mean([x["found"][str(b)] for x in m])) for b in BUDGETS},
            "accuracy": {
                str(b): float(np.mean([x["accuracy"][str(b)] for x in m])) for b in BUDGETS
            },
            "seconds": float(np.mean([x["seconds"] for x in m])),
        }

    for method in METHODS:
        summary["overall"][method] = avg(cases, method)
    for key, field in (("by_dataset", "dataset"), ("by_C", "C")):
        for value in sorted({c[field] for c in cases}, key=str):
            rows = [c for c in cases if c[field] == value]
            summary[key][str(value)] = {m: avg(rows, m) for m in METHODS}
    for rule in cases[0]["auto"]:
        summary["auto"][rule] = {
            k: float(np.mean([c["auto"][rule][k] for c in cases]))
            for k in ("n_flagged", "precision", "recall")
        }
    summary["accuracy_noisy"] = float(np.mean([c["accuracy_noisy"] for c in cases]))
    summary["accuracy_clean"] = float(np.mean([c["accuracy_clean"] for c in cases]))
    return summary


def markdown_table(summary):
    lines = [
        "| method | found @5% | found @10% | found @20% | found @30% "
        "| acc @10% | acc @20% | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method, r in summary["overall"].items():
        f, a = r["found"], r["accuracy"]
        lines.append(
            f"| {method} | {f['0.05']:.3f} | {f['0.1']:.3f} | {f['0.2']:.3f} | {f['0.3']:.3f} "
            f"| {a['0.1']:.4f} | {a['0.2']:.4f} | {r['seconds']:.3f} |"
        )
    return "\n".join(lines)


def machine():
    info = {"python": platform.python_version(), "platform": platform.platform()}
    info["cpus"] = os.cpu_count()
    from importlib.metadata import PackageNotFoundError, version

    for pkg in ("numpy", "scipy", "scikit-learn", "cleanlab", "statsmodels"):
        try:
            info[pkg] = version(pkg)
        except PackageNotFoundError:
            info[pkg] = None
    return info


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="two data sets, one seed (~1 min)")
    ap.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/)")
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    seeds = SEEDS[:1] if args.quick else SEEDS
    rates = (0.1, 0.3) if args.quick else RATES
    out_path = (
        Path(args.out)
        if args.out
        else RESULTS / ("cleaning_quick.json" if args.quick else "cleaning.json")
    )
    cases = []
    t_start = time.perf_counter()
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in available_datasets(args.quick):
            X, y, categorical = load_dataset(name)
            for C in CS:
                for rate in rates:
                    for seed in seeds:
                        t0 = time.perf_counter()
                        case = run_case(name, X, y, categorical, rate, seed, C)
                        cases.append(case)
                        print(
                            f"{name:14s} C={C:<6g} rate={rate:.2f} seed={seed} "
                            f"({time.perf_counter() - t0:.1f} s): "
                            + " ".join(
                                f"{m}={case['methods'][m]['found']['0.1']:.2f}" for m in METHODS
                            ),
                            file=sys.stderr,
                            flush=True,
                        )
    summary = summarize(cases)
    result = {
        "benchmark": "cleaning",
        "command": "python benchmarks/bench_cleaning.py" + (" --quick" if args.quick else ""),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "threads": 1,
        "total_seconds": time.perf_counter() - t_start,
        "budgets": list(BUDGETS),
        "rates": list(rates),
        "seeds": list(seeds),
        "C": list(CS),
        "summary": summary,
        "cases": cases,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=1))
    print(markdown_table(summary))
    print(f"\nwrote {out_path}")
    return result


if __name__ == "__main__":
    main()
