"""Finding flipped labels: every ranker against the oracle, training loss and
cleanlab, on three noise models; and test accuracy after cleaning against
cleanlab's ``CleanLearning``.

Data (all shipped with installed packages, or synthetic):

* ``breast_cancer`` (569 x 30, 2 classes), ``wine`` (178 x 13, 3 classes),
  ``digits`` (1797 x 64, 10 classes: 650 parameters for 1168 training rows)
  from scikit-learn;
* ``fair`` (statsmodels; 6366 survey rows, 8 columns, two one-hot
  occupations; "had an affair"): a real table a linear model fits poorly;
* ``anes96_onehot`` (statsmodels; 944 voters, every ordinal / categorical
  column one-hot encoded: 139 columns for 613 training rows);
* ``bow`` (synthetic bag of words: 1000 documents, 500 words, Poisson counts
  with class-dependent word rates, ``log1p``): 501 parameters for 650 rows.

Each is split 65 % train / 10 % trusted validation / 25 % test (stratified,
per seed). Noise models, at ``rate`` of the training rows:

* ``uniform``: flip to another class uniformly at random;
* ``classcond``: class-conditional (asymmetric) flips, from every second
  class to the next one (binary: only positives become negatives);
* ``boundary``: feature-dependent flips concentrated near the decision
  boundary: a row is chosen with probability ``exp(-|m| / s)``, ``m`` the
  log-odds margin of its true class under the model fitted on the true
  labels, ``s`` half the median ``|m|``, and flipped to its most likely other
  class.

The model is ``StandardScaler + LogisticRegression(C=1)``. Each method ranks
the training rows; recall@b is the fraction of flips among the top ``b`` of
the rows. Rankers:

* ``oracle``: the same model fitted on the TRUE labels, ranking rows by its
  log-loss on the GIVEN labels; ``oracle_cv``: the same, 5-fold cross-fitted;
* ``cleanlab``: ``cleanlab.rank.get_label_quality_scores`` (self-confidence)
  on 5-fold out-of-fold probabilities of the model at scikit-learn's defaults
  (``lbfgs``, ``tol=1e-4``), time including ``find_label_issues``;
* every ``method`` of :class:`skinfluence.cleaning.InfluenceLabelCleaner`
  (``training_loss``, ``self_influence``, ``loo_loss``, ``loo_newton``,
  ``validation_influence`` with the clean validation split, ``noise_aware``,
  ``iterative``), timed as what a user runs: ``InfluenceLabelCleaner(model,
  method=...).fit`` (one fit at ``solver="newton-cg", tol=1e-8``, scores,
  suggested labels, flags);
* ``random``.

Gap closed = ``(recall(method) - recall(training_loss)) / (recall(oracle) -
recall(training_loss))`` of the group means. Paired differences and their
standard errors are over the cases (data set x noise rate x seed).

Fixing, not only flagging: the default cleaner's automatic flag rule with
``action="drop"`` and ``action="relabel"``, then the model refitted on the
cleaned rows, against ``cleanlab.classification.CleanLearning`` (same model,
5 folds) on the same split; test accuracy on clean test labels.

Times are CPU seconds of the single-threaded worker process (robust to other
jobs on a shared machine); cases run in ``--jobs`` worker processes.

Usage::

    python benchmarks/bench_cleaning.py           # full run, results/cleaning.json
    python benchmarks/bench_cleaning.py --quick   # smoke run, results/cleaning_quick.json
    python benchmarks/bench_cleaning.py --tables benchmarks/results/cleaning.json
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
RATES = (0.10, 0.20)
SEEDS = (0, 1, 2, 3, 4)
NOISE = ("uniform", "classcond", "boundary")
DATASETS = ("breast_cancer", "wine", "digits", "fair", "anes96_onehot", "bow")
HIGH_DIM = ("digits", "anes96_onehot", "bow")
INFLUENCE_METHODS = (
    "training_loss",
    "self_influence",
    "loo_loss",
    "loo_newton",
    "validation_influence",
    "noise_aware",
    "iterative",
)
METHODS = ("random", "oracle", "oracle_cv", *INFLUENCE_METHODS, "cleanlab")
DEFAULT = "iterative"  # checked against skinfluence.cleaning.DEFAULT_METHOD in main
PREVIOUS_DEFAULT = "loo_newton"


# ------------------------------------------------------------------- data
def load_dataset(name):
    """``(X, y, categorical column indices)``."""
    from sklearn import datasets

    if name == "fair":
        import statsmodels.api as sm

        df = sm.datasets.fair.load_pandas().data
        y = (df.pop("affairs") > 0).astype(int).to_numpy()
        cols = ["rate_marriage", "age", "yrs_married", "children", "religious", "educ"]
        X = df[[*cols, "occupation", "occupation_husb"]].to_numpy(dtype=float)
        return X, y, [6, 7]
    if name == "anes96_onehot":
        import statsmodels.api as sm

        df = sm.datasets.anes96.load_pandas().data
        y = df.pop("vote").astype(int).to_numpy()
        cat = ["TVnews", "selfLR", "ClinLR", "DoleLR", "PID", "age", "educ", "income"]
        X = df[["logpopul", *cat]].to_numpy(dtype=float)
        return X, y, list(range(1, 1 + len(cat)))
    if name == "bow":
        return synthetic_bag_of_words()
    loader = {
        "breast_cancer": datasets.load_breast_cancer,
        "digits": datasets.load_digits,
        "wine": datasets.load_wine,
    }[name]
    X, y = loader(return_X_y=True)
    return X, y, []


def synthetic_bag_of_words(n=1000, p=500, length=40, seed=123):
    """Documents of two classes: word counts ``Poisson(length * rate_c)``, word
    frequencies from a Gamma(0.3) vocabulary, each word's rate multiplied (class
    1) or divided (class 0) by a log-normal factor; features ``log1p(count)``."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    base = rng.gamma(0.3, 1.0, p)
    base /= base.sum()
    effect = np.exp(rng.normal(0.0, 0.35, p))
    rate = np.where(y[:, None] == 1, base * effect, base / effect) * length
    return np.log1p(rng.poisson(rate)).astype(float), y, []


def make_model(categorical, tol=1e-8, solver="newton-cg"):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    clf = LogisticRegression(C=1.0, solver=solver, tol=tol, max_iter=10_000)
    if not categorical:
        return make_pipeline(StandardScaler(), clf)
    pre = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical)],
        remainder=StandardScaler(),
    )
    return make_pipeline(pre, clf)


def flip_labels(kind, X, y, rate, rng, categorical):
    """Noisy copy of ``y`` with about ``rate * n`` flips (see the module doc)."""
    classes = np.unique(y)
    n, K = len(y), len(classes)
    m = int(round(rate * n))
    noisy = y.copy()
    if kind == "uniform":
        for i in rng.choice(n, m, replace=False):
            noisy[i] = rng.choice(classes[classes != y[i]])
    elif kind == "classcond":
        source = np.flatnonzero(np.isin(y, classes[1::2]))
        rows = rng.choice(source, min(m, int(0.45 * len(source))), replace=False)
        noisy[rows] = classes[(np.searchsorted(classes, y[rows]) + 1) % K]
    elif kind == "boundary":
        P = make_model(categorical, tol=1e-4, solver="lbfgs").fit(X, y).predict_proba(X)
        idx = np.searchsorted(classes, y)
        p_true = P[np.arange(n), idx]
        P_other = P.copy()
        P_other[np.arange(n), idx] = -1.0
        other = np.argmax(P_other, axis=1)
        margin = np.abs(np.log(p_true) - np.log(np.maximum(P_other[np.arange(n), other], 1e-300)))
        w = np.exp(-margin / max(np.median(margin) / 2, 1e-6))
        rows = rng.choice(n, m, replace=False, p=w / w.sum())
        noisy[rows] = classes[other[rows]]
    else:
        raise ValueError(kind)
    return noisy


def log_loss_rows(P, classes, y):
    idx = np.searchsorted(classes, y)
    return -np.log(np.clip(P[np.arange(len(y)), idx], 1e-300, None))


# --------------------------------------------------------------- one case
def run_case(name, kind, rate, seed):
    from cleanlab.classification import CleanLearning
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold, cross_val_predict, train_test_split

    from skinfluence.cleaning import InfluenceLabelCleaner

    X, y, categorical = load_dataset(name)
    rng = np.random.default_rng(1000 * seed + int(100 * rate) + 7 * NOISE.index(kind))
    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=0.25, random_state=seed, stratify=y
    )
    X_tr, X_val, y_tr, y_val = train_test_split(
        X_rest, y_rest, test_size=0.10 / 0.75, random_state=seed, stratify=y_rest
    )
    y_noisy = flip_labels(kind, X_tr, y_tr, rate, rng, categorical)
    is_flip = y_noisy != y_tr
    n = len(y_noisy)
    classes = np.unique(y_noisy)
    model = make_model(categorical)
    # cleanlab and the accuracy refits need no exact optimum: scikit-learn's
    # default solver and tolerance (what a cleanlab user runs)
    loose = make_model(categorical, tol=1e-4, solver="lbfgs")
    cv = StratifiedKFold(5, shuffle=True, random_state=seed)

    scores, cpu, cleaners = {}, {}, {}
    scores["random"] = rng.random(n)
    cpu["random"] = 0.0
    c0 = time.process_time()
    oracle = clone(model).fit(X_tr, y_tr)
    scores["oracle"] = log_loss_rows(oracle.predict_proba(X_tr), classes, y_noisy)
    cpu["oracle"] = time.process_time() - c0
    c0 = time.process_time()
    P_cv = cross_val_predict(clone(model), X_tr, y_tr, cv=cv, method="predict_proba")
    scores["oracle_cv"] = log_loss_rows(P_cv, classes, y_noisy)
    cpu["oracle_cv"] = time.process_time() - c0
    for method in INFLUENCE_METHODS:
        cleaner = InfluenceLabelCleaner(model, method=method)
        c0 = time.process_time()
        cleaner.fit(X_tr, y_noisy, X_val=X_val, y_val=y_val)
        cpu[method] = time.process_time() - c0
        scores[method] = cleaner.scores_
        cleaners[method] = cleaner

    c0 = time.process_time()
    probs = cross_val_predict(clone(loose), X_tr, y_noisy, cv=cv, method="predict_proba")
    labels = np.searchsorted(classes, y_noisy)
    scores["cleanlab"] = -get_label_quality_scores(labels, probs)
    cl_flagged = find_label_issues(labels, probs, n_jobs=1)
    cpu["cleanlab"] = time.process_time() - c0

    def accuracy(X_fit, y_fit):
        return float(clone(loose).fit(X_fit, y_fit).score(X_test, y_test))

    out = {
        "dataset": name,
        "noise": kind,
        "rate": rate,
        "seed": seed,
        "n_train": n,
        "n_features": int(X.shape[1]),
        "n_classes": len(classes),
        "n_flipped": int(is_flip.sum()),
        "methods": {},
        "auto": {},
        "fixing": {},
    }
    for method in METHODS:
        order = np.argsort(-scores[method], kind="stable")
        out["methods"][method] = {
            "found": {
                str(b): float(is_flip[order[: int(round(b * n))]].sum() / max(1, is_flip.sum()))
                for b in BUDGETS
            },
            "seconds": cpu[method],
        }
    # automatic flag rules: precision / recall
    for rule, flagged in (
        (f"skinfluence_{DEFAULT}", cleaners[DEFAULT].flagged_),
        (f"skinfluence_{PREVIOUS_DEFAULT}", cleaners[PREVIOUS_DEFAULT].flagged_),
        ("cleanlab_find_label_issues", cl_flagged),
    ):
        tp = int(np.sum(flagged & is_flip))
        out["auto"][rule] = {
            "n_flagged": int(flagged.sum()),
            "precision": tp / max(1, int(flagged.sum())),
            "recall": tp / max(1, int(is_flip.sum())),
        }
    # fixing: test accuracy after dropping / relabelling the automatically flagged rows
    fixing = out["fixing"]
    fixing["noisy"] = {"accuracy": accuracy(X_tr, y_noisy)}
    fixing["clean"] = {"accuracy": accuracy(X_tr, y_tr)}
    for method in (DEFAULT, PREVIOUS_DEFAULT):
        cleaner = cleaners[method]
        keep = ~cleaner.flagged_
        relabelled = np.where(cleaner.flagged_, cleaner.suggested_labels_, y_noisy)
        flagged = cleaner.flagged_
        fixing[f"{method}_drop"] = {"accuracy": accuracy(X_tr[keep], y_noisy[keep])}
        fixing[f"{method}_relabel"] = {
            "accuracy": accuracy(X_tr, relabelled),
            # of the flagged flips, how many got their true label back
            "relabel_correct": float(
                np.mean(relabelled[flagged & is_flip] == y_tr[flagged & is_flip])
            )
            if np.any(flagged & is_flip)
            else float("nan"),
            "labels_wrong_after": int(np.sum(relabelled != y_tr)),
        }
    c0 = time.process_time()
    cl = CleanLearning(
        clone(loose), cv_n_folds=5, seed=seed, find_label_issues_kwargs={"n_jobs": 1}
    )
    cl.fit(X_tr, labels)
    cl_cpu = time.process_time() - c0
    fixing["cleanlab_CleanLearning"] = {
        "accuracy": float(np.mean(classes[cl.predict(X_test)] == y_test)),
        "seconds": cl_cpu,
    }
    out["labels_wrong_before"] = int(is_flip.sum())
    return out


def _run_case_quiet(args):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        case = run_case(*args)
        case["wall_seconds"] = time.perf_counter() - t0
        return case


# ------------------------------------------------------------------ summary
def _mean(values):
    return float(np.mean(values)) if len(values) else float("nan")


def _paired(cases, a, b, budget="0.1"):
    diff = np.array(
        [c["methods"][a]["found"][budget] - c["methods"][b]["found"][budget] for c in cases]
    )
    return {
        "mean": float(diff.mean()),
        "standard_error": float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0,
        "wins": int(np.sum(diff > 0)),
        "losses": int(np.sum(diff < 0)),
        "n": len(diff),
    }


def _group_summary(rows):
    recall = {
        m: {str(b): _mean([c["methods"][m]["found"][str(b)] for c in rows]) for b in BUDGETS}
        for m in METHODS
    }
    seconds = {m: _mean([c["methods"][m]["seconds"] for c in rows]) for m in METHODS}
    gap = {}
    for m in METHODS:
        denom = recall["oracle"]["0.1"] - recall["training_loss"]["0.1"]
        gap[m] = (
            (recall[m]["0.1"] - recall["training_loss"]["0.1"]) / denom
            if abs(denom) > 1e-12
            else float("nan")
        )
    paired = {
        m: {
            "vs_training_loss": _paired(rows, m, "training_loss"),
            "vs_cleanlab": _paired(rows, m, "cleanlab"),
        }
        for m in METHODS
    }
    return {
        "n_cases": len(rows),
        "recall": recall,
        "seconds": seconds,
        "gap_closed": gap,
        "paired": paired,
    }


def groups(cases):
    """Named subsets of the cases the tables report."""
    out = {"all": cases}
    for kind in NOISE:
        out[f"noise={kind}"] = [c for c in cases if c["noise"] == kind]
    names = sorted({c["dataset"] for c in cases}, key=DATASETS.index)
    for name in names:
        out[f"data={name}"] = [c for c in cases if c["dataset"] == name]
    out["high-dimensional"] = [c for c in cases if c["dataset"] in HIGH_DIM]
    out["multi-class"] = [c for c in cases if c["n_classes"] > 2]
    for rate in sorted({c["rate"] for c in cases}):
        out[f"rate={rate:g}"] = [c for c in cases if c["rate"] == rate]
    for kind in NOISE:
        out[f"high-dimensional, {kind}"] = [
            c for c in cases if c["dataset"] in HIGH_DIM and c["noise"] == kind
        ]
    return {k: v for k, v in out.items() if v}


def summarize(cases):
    summary = {"groups": {name: _group_summary(rows) for name, rows in groups(cases).items()}}
    summary["auto"] = {
        rule: {
            k: _mean([c["auto"][rule][k] for c in cases])
            for k in ("n_flagged", "precision", "recall")
        }
        for rule in cases[0]["auto"]
    }
    fixing = {}
    for key in cases[0]["fixing"]:
        rows = {"accuracy": _mean([c["fixing"][key]["accuracy"] for c in cases])}
        by_noise = {
            kind: _mean([c["fixing"][key]["accuracy"] for c in cases if c["noise"] == kind])
            for kind in NOISE
        }
        rows["by_noise"] = by_noise
        rows["high_dimensional"] = _mean(
            [c["fixing"][key]["accuracy"] for c in cases if c["dataset"] in HIGH_DIM]
        )
        if "relabel_correct" in cases[0]["fixing"][key]:
            rows["relabel_correct"] = float(
                np.nanmean([c["fixing"][key]["relabel_correct"] for c in cases])
            )
            rows["labels_wrong_after"] = _mean(
                [c["fixing"][key]["labels_wrong_after"] for c in cases]
            )
        if "seconds" in cases[0]["fixing"][key]:
            rows["seconds"] = _mean([c["fixing"][key]["seconds"] for c in cases])
        fixing[key] = rows
    acc = {k: np.array([c["fixing"][k]["accuracy"] for c in cases]) for k in cases[0]["fixing"]}
    for key in list(fixing):
        if key in ("noisy", "clean", "cleanlab_CleanLearning"):
            continue
        diff = acc[key] - acc["cleanlab_CleanLearning"]
        fixing[key]["vs_CleanLearning"] = {
            "mean": float(diff.mean()),
            "standard_error": float(diff.std(ddof=1) / np.sqrt(len(diff)))
            if len(diff) > 1
            else 0.0,
        }
    summary["fixing"] = fixing
    summary["labels_wrong_before"] = _mean([c["labels_wrong_before"] for c in cases])
    return summary


def _pm(r):
    return f"{100 * r['mean']:+.1f} ± {100 * r['standard_error']:.1f}"


def markdown_tables(summary):
    """The tables of doc/cleaning.md."""
    G = summary["groups"]
    out = []
    noise_groups = [g for g in ("noise=uniform", "noise=classcond", "noise=boundary") if g in G]
    cols = ["all", *noise_groups, "high-dimensional", "multi-class"]
    cols = [c for c in cols if c in G]
    header = " | ".join(f"{c} ({G[c]['n_cases']})" for c in cols)
    out += [
        "Recall@10 % (fraction of the flips among the 10 % highest-scored rows), mean over "
        "the cases of each group (number of cases in brackets):",
        "",
        f"| method | {header} |",
        "|---|" + "---|" * len(cols),
    ]
    for m in METHODS:
        out.append(
            f"| {m} | " + " | ".join(f"{G[c]['recall'][m]['0.1']:.3f}" for c in cols) + " |"
        )
    out += [
        "",
        "Share of the gap between the training loss and the oracle closed at 10 % checked "
        "(`(method - training_loss) / (oracle - training_loss)` of the group means):",
        "",
        f"| method | {header} |",
        "|---|" + "---|" * len(cols),
    ]
    for m in METHODS:
        if m in ("random", "training_loss"):
            continue
        out.append(f"| {m} | " + " | ".join(f"{G[c]['gap_closed'][m]:+.2f}" for c in cols) + " |")
    for ref in ("training_loss", "cleanlab"):
        out += [
            "",
            f"Paired difference of recall@10 % against {ref}, in points (mean ± standard "
            "error over the cases):",
            "",
            f"| method | {header} |",
            "|---|" + "---|" * len(cols),
        ]
        for m in METHODS:
            if m in (ref, "random"):
                continue
            out.append(
                f"| {m} | " + " | ".join(_pm(G[c]["paired"][m][f"vs_{ref}"]) for c in cols) + " |"
            )
    hd = [g for g in G if g.startswith("high-dimensional, ")]
    if hd:
        out += [
            "",
            "High-dimensional data sets by noise model: recall@10 % and the paired "
            "difference against cleanlab (points):",
            "",
            "| method | " + " | ".join(f"{g} ({G[g]['n_cases']})" for g in hd) + " |",
            "|---|" + "---|" * len(hd),
        ]
        for m in METHODS:
            if m == "random":
                continue
            cells = []
            for g in hd:
                r = G[g]["recall"][m]["0.1"]
                cells.append(
                    f"{r:.3f}"
                    if m == "cleanlab"
                    else f"{r:.3f} ({_pm(G[g]['paired'][m]['vs_cleanlab'])})"
                )
            out.append(f"| {m} | " + " | ".join(cells) + " |")
    data = [g for g in G if g.startswith("data=")]
    out += [
        "",
        "Recall@10 % / @20 % by data set:",
        "",
        "| method | " + " | ".join(g[5:] for g in data) + " |",
        "|---|" + "---|" * len(data),
    ]
    for m in METHODS:
        cells = [f"{G[g]['recall'][m]['0.1']:.3f} / {G[g]['recall'][m]['0.2']:.3f}" for g in data]
        out.append(f"| {m} | " + " | ".join(cells) + " |")
    out += [
        "",
        "CPU seconds per run (model fits included), by data set, and the ratio to "
        "cleanlab's over all cases:",
        "",
        "| method | " + " | ".join(g[5:] for g in data) + " | / cleanlab |",
        "|---|" + "---|" * (len(data) + 1),
    ]
    for m in METHODS:
        if m == "random":
            continue
        cells = [f"{G[g]['seconds'][m]:.3f}" for g in data]
        ratio = G["all"]["seconds"][m] / G["all"]["seconds"]["cleanlab"]
        out.append(f"| {m} | " + " | ".join(cells) + f" | {ratio:.2f} |")
    out += [
        "",
        "Automatic flag rules (averages over all cases):",
        "",
        "| rule | rows flagged | precision | recall |",
        "|---|---|---|---|",
    ]
    for rule, r in summary["auto"].items():
        out.append(f"| {rule} | {r['n_flagged']:.1f} | {r['precision']:.3f} | {r['recall']:.3f} |")
    F = summary["fixing"]
    out += [
        "",
        "Test accuracy after cleaning with the automatic flag rule (model refitted on the "
        "cleaned training rows), against cleanlab's `CleanLearning` on the same splits; "
        "difference to `CleanLearning` in points (mean ± standard error):",
        "",
        "| training labels | accuracy | "
        + " | ".join(NOISE)
        + " | high-dimensional | vs CleanLearning | flips relabelled correctly |",
        "|---|---|" + "---|" * len(NOISE) + "---|---|---|",
    ]
    for key, r in F.items():
        vs = _pm(r["vs_CleanLearning"]) if "vs_CleanLearning" in r else ""
        rc = f"{r['relabel_correct']:.3f}" if "relabel_correct" in r else ""
        out.append(
            f"| {key} | {r['accuracy']:.4f} | "
            + " | ".join(f"{r['by_noise'][k]:.4f}" for k in NOISE)
            + f" | {r['high_dimensional']:.4f} | {vs} | {rc} |"
        )
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
    ap.add_argument("--quick", action="store_true", help="two data sets, one seed, one rate")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/)")
    ap.add_argument("--tables", metavar="JSON", help="print the tables of a finished run")
    args = ap.parse_args(argv)
    if args.tables:
        print(markdown_tables(json.loads(Path(args.tables).read_text())["summary"]))
        return None
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # inherited by the worker processes
    from skinfluence.cleaning import DEFAULT_METHOD

    assert DEFAULT_METHOD == DEFAULT, "update DEFAULT to the cleaner's default"
    seeds = SEEDS[:1] if args.quick else SEEDS
    rates = (0.1,) if args.quick else RATES
    datasets = ("breast_cancer", "bow") if args.quick else DATASETS
    out_path = (
        Path(args.out)
        if args.out
        else RESULTS / ("cleaning_quick.json" if args.quick else "cleaning.json")
    )
    jobs = [(d, k, r, s) for d in datasets for k in NOISE for r in rates for s in seeds]
    t_start = time.perf_counter()
    cases = []

    def report(case):
        cases.append(case)
        print(
            f"{case['dataset']:14s} {case['noise']:9s} rate={case['rate']:.2f} "
            f"seed={case['seed']} ({case['wall_seconds']:.1f} s): "
            + " ".join(
                f"{m}={case['methods'][m]['found']['0.1']:.2f}"
                for m in ("oracle", "training_loss", "loo_newton", DEFAULT, "cleanlab")
            ),
            file=sys.stderr,
            flush=True,
        )

    if args.jobs > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(args.jobs) as pool:
            for case in pool.imap_unordered(_run_case_quiet, jobs):
                report(case)
    else:
        for job in jobs:
            report(_run_case_quiet(job))
    cases.sort(
        key=lambda c: (DATASETS.index(c["dataset"]), NOISE.index(c["noise"]), c["rate"], c["seed"])
    )
    summary = summarize(cases)
    result = {
        "benchmark": "cleaning",
        "command": "python benchmarks/bench_cleaning.py" + (" --quick" if args.quick else ""),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "threads": 1,
        "jobs": args.jobs,
        "default_method": DEFAULT_METHOD,
        "total_seconds": time.perf_counter() - t_start,
        "cpu_seconds_workers": float(
            sum(sum(m["seconds"] for m in c["methods"].values()) for c in cases)
        ),
        "budgets": list(BUDGETS),
        "rates": list(rates),
        "seeds": list(seeds),
        "noise_models": list(NOISE),
        "datasets": list(datasets),
        "summary": summary,
        "cases": cases,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=1))
    print(markdown_tables(summary))
    print(f"\nwrote {out_path} in {result['total_seconds']:.0f} s")
    return result


if __name__ == "__main__":
    main()
