"""Finding flipped labels: influence-based scores against training loss,
random review and cleanlab.

On data sets that ship with scikit-learn (breast cancer, digits, wine, iris)
and one real tabular set shipped by statsmodels (``fair``: 6366 survey rows,
"had an affair", one-hot occupations; skipped when statsmodels is missing),
``rate`` of the training labels are flipped to another class at random, for
several seeds and two regularisation strengths of the same model,
``StandardScaler + LogisticRegression(C)``. Each method ranks the training
rows; a reviewer checks the top 5/10/20/30 % and fixes the flips found there,
the model is refitted on the fixed labels and scored on clean test rows.

Methods: ``random``; ``training_loss``; ``self_influence`` (Koh & Liang);
``loo_loss`` (training loss + self-influence, the approximate leave-one-out
loss); ``loo_newton`` (the same with the Newton step); ``validation_influence``
(mean influence on a trusted, clean validation split of 10 % of the rows);
``cleanlab`` (label-quality scores from 5-fold cross-validated probabilities
of the same model at scikit-learn's defaults, ``lbfgs`` with ``tol=1e-4``,
plus ``cleanlab.filter.find_label_issues`` on them).

Times are CPU seconds of this single-threaded process (robust to other jobs
on a shared machine; wall-clock seconds are stored too) for what a user runs:
``InfluenceLabelCleaner(model, method=...).fit`` (one fit with
``solver="newton-cg", tol=1e-8``, as influence functions need the optimum,
then scores, suggested labels and flags) against cleanlab's five
cross-validation fits, label-quality scores and ``find_label_issues``.

The automatic flag rules are scored as well: the default method's ``auto``
rule (rows the approximate leave-one-out model misclassifies) and cleanlab's
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
DEFAULT = "loo_newton"  # checked against skinfluence.cleaning.DEFAULT_METHOD in main


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


def make_model(C, categorical, tol=1e-8, solver="newton-cg"):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    clf = LogisticRegression(C=C, solver=solver, tol=tol, max_iter=10_000)
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

    from skinfluence.cleaning import DEFAULT_METHOD, InfluenceLabelCleaner

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
    loose = make_model(C, categorical, tol=1e-4, solver="lbfgs")

    fitted = clone(model).fit(X_tr, y_noisy)
    scores, cpu, wall, auto = {}, {}, {}, {}
    scores["random"] = rng.random(n)
    cpu["random"] = wall["random"] = 0.0
    for method in INFLUENCE_METHODS:
        # what a user runs: fit the model and score, suggest and flag every row
        cleaner = InfluenceLabelCleaner(model, method=method)
        t0, c0 = time.perf_counter(), time.process_time()
        cleaner.fit(X_tr, y_noisy, X_val=X_val, y_val=y_val)
        cpu[method] = time.process_time() - c0
        wall[method] = time.perf_counter() - t0
        scores[method] = cleaner.scores_
        if method == DEFAULT_METHOD:  # the automatic flag rule of the default
            auto["skinfluence_auto"] = cleaner.flagged_

    t0, c0 = time.perf_counter(), time.process_time()
    cv = StratifiedKFold(5, shuffle=True, random_state=seed)
    probs = cross_val_predict(clone(loose), X_tr, y_noisy, cv=cv, method="predict_proba")
    classes = np.unique(y_noisy)
    labels = np.searchsorted(classes, y_noisy)
    scores["cleanlab"] = -get_label_quality_scores(labels, probs)
    auto["cleanlab_find_label_issues"] = find_label_issues(labels, probs, n_jobs=1)
    cpu["cleanlab"] = time.process_time() - c0
    wall["cleanlab"] = time.perf_counter() - t0

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
        out["methods"][method] = {
            "found": found,
            "accuracy": acc,
            "seconds": cpu[method],
            "wall_seconds": wall[method],
        }
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
            "wall_seconds": float(np.mean([x["wall_seconds"] for x in m])),
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
    summary["auto_by_dataset"] = {
        name: {
            rule: {
                k: float(np.mean([c["auto"][rule][k] for c in cases if c["dataset"] == name]))
                for k in ("n_flagged", "precision", "recall")
            }
            for rule in cases[0]["auto"]
        }
        for name in sorted({c["dataset"] for c in cases})
    }
    summary["n_flipped_by_dataset"] = {
        name: float(np.mean([c["n_flipped"] for c in cases if c["dataset"] == name]))
        for name in sorted({c["dataset"] for c in cases})
    }
    summary["paired"] = {}
    for other in ("training_loss", "loo_loss", "cleanlab"):
        for b in ("0.1", "0.2"):
            diff = np.array(
                [
                    c["methods"][DEFAULT]["found"][b] - c["methods"][other]["found"][b]
                    for c in cases
                ]
            )
            summary["paired"][f"{DEFAULT} - {other} @{b}"] = {
                "mean": float(diff.mean()),
                "standard_error": float(diff.std(ddof=1) / np.sqrt(len(diff))),
                "wins": int(np.sum(diff > 0)),
                "losses": int(np.sum(diff < 0)),
                "ties": int(np.sum(diff == 0)),
            }
    summary["accuracy_noisy"] = float(np.mean([c["accuracy_noisy"] for c in cases]))
    summary["accuracy_clean"] = float(np.mean([c["accuracy_clean"] for c in cases]))
    return summary


def markdown_tables(summary):
    """The tables of doc/cleaning.md."""
    out = [
        "Averages over all cases (fraction of the flipped labels found after checking the "
        "top-scored 5/10/20/30 % of the training rows; test accuracy after fixing them; "
        "CPU seconds per run, model fitting included):",
        "",
        "| method | found @5% | found @10% | found @20% | found @30% "
        "| acc @5% | acc @10% | acc @20% | acc @30% | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method, r in summary["overall"].items():
        f, a = r["found"], r["accuracy"]
        out.append(
            f"| {method} | {f['0.05']:.3f} | {f['0.1']:.3f} | {f['0.2']:.3f} | {f['0.3']:.3f} "
            f"| {a['0.05']:.4f} | {a['0.1']:.4f} | {a['0.2']:.4f} | {a['0.3']:.4f} "
            f"| {r['seconds']:.3f} |"
        )
    out += [
        "",
        f"Test accuracy with the noisy labels: {summary['accuracy_noisy']:.4f}; with every "
        f"label fixed: {summary['accuracy_clean']:.4f}.",
    ]
    for key, title in (("by_C", "C"), ("by_dataset", "data set")):
        groups = list(summary[key])
        out += [
            "",
            f"Fraction of flips found at 10 % / 20 % checked, by {title}:",
            "",
            "| method | " + " | ".join(f"{title} {g}" for g in groups) + " |",
            "|---|" + "---|" * len(groups),
        ]
        for method in summary["overall"]:
            cells = [
                f"{summary[key][g][method]['found']['0.1']:.3f} / "
                f"{summary[key][g][method]['found']['0.2']:.3f}"
                for g in groups
            ]
            out.append(f"| {method} | " + " | ".join(cells) + " |")
    out += [
        "",
        "Automatic flag rules (averages over all cases):",
        "",
        "| rule | rows flagged | precision | recall |",
        "|---|---|---|---|",
    ]
    for rule, r in summary["auto"].items():
        out.append(f"| {rule} | {r['n_flagged']:.1f} | {r['precision']:.3f} | {r['recall']:.3f} |")
    if "auto_by_dataset" in summary:
        names = list(summary["auto_by_dataset"])
        out += [
            "",
            "Automatic flag rules by data set (rows flagged / precision / recall; mean "
            "number of flipped rows in brackets):",
            "",
            "| rule | "
            + " | ".join(f"{g} ({summary['n_flipped_by_dataset'][g]:.0f})" for g in names)
            + " |",
            "|---|" + "---|" * len(names),
        ]
        for rule in summary["auto"]:
            cells = [
                f"{r[rule]['n_flagged']:.0f} / {r[rule]['precision']:.2f} / "
                f"{r[rule]['recall']:.2f}"
                for r in summary["auto_by_dataset"].values()
            ]
            out.append(f"| {rule} | " + " | ".join(cells) + " |")
    if "paired" in summary:
        out += [
            "",
            "Paired differences of the fraction of flips found, default minus other:",
            "",
            "| comparison | mean | standard error | wins | losses | ties |",
            "|---|---|---|---|---|---|",
        ]
        for key, r in summary["paired"].items():
            out.append(
                f"| {key} | {r['mean']:+.4f} | {r['standard_error']:.4f} | {r['wins']} "
                f"| {r['losses']} | {r['ties']} |"
            )
    groups = list(summary["by_dataset"])
    out += [
        "",
        "CPU seconds per run, by data set:",
        "",
        "| method | " + " | ".join(groups) + " |",
        "|---|" + "---|" * len(groups),
    ]
    for method in summary["overall"]:
        if method == "random":
            continue
        cells = [f"{summary['by_dataset'][g][method]['seconds']:.3f}" for g in groups]
        out.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(out)


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
    ap.add_argument("--tables", metavar="JSON", help="print the tables of a finished run")
    args = ap.parse_args(argv)
    if args.tables:
        print(markdown_tables(json.loads(Path(args.tables).read_text())["summary"]))
        return None
    from threadpoolctl import threadpool_limits

    seeds = SEEDS[:1] if args.quick else SEEDS
    rates = (0.1, 0.3) if args.quick else RATES
    out_path = (
        Path(args.out)
        if args.out
        else RESULTS / ("cleaning_quick.json" if args.quick else "cleaning.json")
    )
    from skinfluence.cleaning import DEFAULT_METHOD

    assert DEFAULT_METHOD == DEFAULT, "update DEFAULT to the cleaner's default"
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
        "default_method": DEFAULT_METHOD,
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
    print(markdown_tables(summary))
    print(f"\nwrote {out_path}")
    return result


if __name__ == "__main__":
    main()
