"""SVMs and kernel models: influence estimates against real leave-one-out refits.

Part ``accuracy`` (Koh & Liang 2017, section 4.3 and Figure 3): for each
model, data set and split, take the test rows of highest loss, compute the
influence of every training row with

* ``hinge="active_set"`` (the exact ``t -> 0`` limit, our default),
* ``hinge="smoothed"`` (Koh & Liang's recipe) at ``t`` in
  ``TEMPERATURES``,
* ``approximation="influence"`` and ``"newton"`` for smooth models,
* ``path``: ``approximation="path"``, the *decremental* solution path
  (Cauwenberghs & Poggio 2001) that follows the leave-one-out solution
  through active-set changes, on the active set's rows; ``path_k`` stops it
  after ``k`` events,

and compare the predicted change of the test loss for the 30 most
influential rows (per method, as in the paper) with the change measured by
refitting the estimator without the row. Every refit is done once and
cached, so all methods are compared on the same actual values. For each
refit we also record whether the *active set* (margin / inside / outside
partition of the remaining training rows) changed.

Part ``pipelines``: exact kernel influence against a Nystroem / RBFSampler +
linear model pipeline, timing and agreement, for growing ``n_train``.

Usage::

    python benchmarks/bench_svm.py                 # everything, ~15 min on 2 cores
    python benchmarks/bench_svm.py --quick         # one split, a minute
    python benchmarks/bench_svm.py --part pipelines

Writes ``benchmarks/results/svm.json`` (``--out``) and prints the Markdown
tables of ``doc/svm.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import sklearn
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_digits,
    make_classification,
)
from sklearn.kernel_approximation import Nystroem, RBFSampler
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR, LinearSVC
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skinfluence import InfluenceExplainer  # noqa: E402
from skinfluence.retraining import agreement  # noqa: E402
from skinfluence.solvers._active_set import hinge_kkt  # noqa: E402
from skinfluence.solvers._decremental import DecrementalPath  # noqa: E402

TEMPERATURES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
K_ROWS = 30  # most influential rows per method (paper: 30-40)
N_TEST = 3  # highest-loss test rows per split
METHODS = ("active_set", "smoothed", "smoothed_newton", "path")
MARGIN_TOL = 1e-3  # |distance to the kink| counted as "on the margin" (as skinfluence)


# ----------------------------------------------------------------- data
def load_data(name, seed):
    """``(X_train, y_train, X_test, y_test)``; split ``seed`` (0 = the paper's)."""
    rng = np.random.default_rng(seed)
    if name == "digits17":
        X, y = load_digits(return_X_y=True)
        keep = (y == 1) | (y == 7)
        X, y = X[keep] / 16.0, y[keep]
        order = np.arange(len(y)) if seed == 0 else rng.permutation(len(y))
        X, y = X[order], y[order]
        return X[:300], y[:300], X[300:], y[300:]
    if name == "breast_cancer":
        X, y = load_breast_cancer(return_X_y=True)
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=seed, stratify=y)
        scaler = StandardScaler().fit(Xtr)
        return scaler.transform(Xtr), ytr, scaler.transform(Xte), yte
    if name == "diabetes":
        X, y = load_diabetes(return_X_y=True)
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=seed)
        scaler = StandardScaler().fit(Xtr)
        mu, sd = ytr.mean(), ytr.std()
        return scaler.transform(Xtr), (ytr - mu) / sd, scaler.transform(Xte), (yte - mu) / sd
    raise ValueError(name)


# (label, data set, estimator, family): "hinge" models get active_set / smoothed
# / path, "smooth" models influence / newton.
def configs():
    tight = {"tol": 1e-10}
    linsvc = {"C": 1.0, "tol": 1e-10, "max_iter": 1_000_000}
    return [
        ("LinearSVC(hinge)", "digits17", LinearSVC(loss="hinge", **linsvc), "hinge"),
        ("LinearSVC(hinge)", "breast_cancer", LinearSVC(loss="hinge", **linsvc), "hinge"),
        ("SVC(linear)", "digits17", SVC(kernel="linear", **tight), "hinge"),
        ("SVC(linear)", "breast_cancer", SVC(kernel="linear", **tight), "hinge"),
        ("SVC(rbf)", "digits17", SVC(kernel="rbf", gamma=0.05, **tight), "hinge"),
        ("SVC(rbf)", "breast_cancer", SVC(kernel="rbf", gamma="scale", **tight), "hinge"),
        ("SVR(rbf)", "diabetes", SVR(kernel="rbf", C=1.0, epsilon=0.1, **tight), "hinge"),
        ("LinearSVC(sq_hinge)", "digits17", LinearSVC(loss="squared_hinge", **linsvc), "smooth"),
        (
            "LinearSVC(sq_hinge)",
            "breast_cancer",
            LinearSVC(loss="squared_hinge", **linsvc),
            "smooth",
        ),
        (
            "KernelRidge(rbf)",
            "diabetes",
            KernelRidge(alpha=1.0, kernel="rbf", gamma=0.1),
            "smooth",
        ),
        (
            "KernelRidge(poly)",
            "diabetes",
            KernelRidge(alpha=1.0, kernel="poly", degree=2, gamma=0.1, coef0=1.0),
            "smooth",
        ),
    ]


# ------------------------------------------------------------ test losses
def _sign(est, y):
    return np.where(np.asarray(y) == est.classes_[1], 1.0, -1.0)


def raw_output(est, X):
    if hasattr(est, "decision_function"):
        return np.asarray(est.decision_function(X), dtype=float)
    return np.asarray(est.predict(X), dtype=float)


def test_loss(est, y, f, t):
    """The explainer's test loss, written out independently of skinfluence."""
    if isinstance(est, (SVR, KernelRidge, Ridge)):
        return (np.asarray(y) - f) ** 2
    m = _sign(est, y) * f
    if isinstance(est, LinearSVC) and est.loss == "squared_hinge":
        return np.maximum(0.0, 1.0 - m) ** 2
    return t * np.logaddexp(0.0, (1.0 - m) / t)


def test_loss_gradient(est, y, f, t):
    """d test_loss / d f."""
    if isinstance(est, (SVR, KernelRidge, Ridge)):
        return -2.0 * (np.asarray(y) - f)
    s = _sign(est, y)
    m = s * f
    if isinstance(est, LinearSVC) and est.loss == "squared_hinge":
        return -2.0 * s * np.maximum(0.0, 1.0 - m)
    return -s / (1.0 + np.exp(-(1.0 - m) / t))


def states(est, X, y, f):
    """Active-set partition of rows: 0 on the kink, 1 inside (loss slope != 0), 2 outside."""
    if isinstance(est, SVR):
        d = np.abs(np.asarray(y) - f) - est.epsilon
    else:
        d = 1.0 - _sign(est, y) * f
    return np.where(np.abs(d) <= MARGIN_TOL, 0, np.where(d > 0, 1, 2))


# ----------------------------------------------------------------- refits
def _refit(est, X, y, drop, X_test, timed=False):
    mask = np.ones(len(y), dtype=bool)
    if drop is not None:
        mask[drop] = False
    t0 = time.perf_counter()
    fitted = clone(est).fit(X[mask], y[mask])
    seconds = time.perf_counter() - t0
    out = raw_output(fitted, X_test), raw_output(fitted, X)
    return (*out, seconds) if timed else out


class RefitCache:
    """Refit without one row at a time, each row once."""

    def __init__(self, est, X, y, X_test, n_jobs=2):
        self.args = (est, X, y)
        self.X_test = X_test
        self.n_jobs = n_jobs
        self.base = _refit(est, X, y, None, X_test)
        self.values = {}
        self.seconds = []

    @property
    def refit_seconds(self):
        """Median seconds of one refit."""
        return float(np.median(self.seconds)) if self.seconds else np.nan

    def get(self, rows):
        todo = [int(r) for r in rows if int(r) not in self.values]
        if todo:
            out = Parallel(n_jobs=self.n_jobs, batch_size=8)(
                delayed(_refit)(*self.args, r, self.X_test, timed=True) for r in todo
            )
            self.values.update({r: o[:2] for r, o in zip(todo, out, strict=True)})
            self.seconds += [o[2] for o in out]
        return [self.values[int(r)] for r in rows]


# ------------------------------------------------------------- one split
def _agree(pred, act):
    a = agreement(pred, act)
    return {"pearson": a.pearson, "spearman": a.spearman, "slope": a.slope, "n": a.n}


def top_rows(influence, k):
    return np.argsort(-np.abs(influence).sum(axis=0), kind="stable")[:k]


def run_split(label, data, est, family, seed, temperatures, n_jobs):
    Xtr, ytr, Xte, yte = load_data(data, seed)
    est = clone(est).fit(Xtr, ytr)
    f_te = raw_output(est, Xte)
    loss_te = test_loss(est, yte, f_te, 1e-3)
    test = np.argsort(-loss_te, kind="stable")[:N_TEST]
    Xt, yt = Xte[test], yte[test]
    cache = RefitCache(est, Xtr, ytr, Xt, n_jobs=n_jobs)
    f0_test, f0_train = cache.base
    st0 = states(est, Xtr, ytr, f0_train) if family == "hinge" else None
    records = []

    def evaluate(method, t, influence, seconds, extra=None):
        rows = top_rows(influence, K_ROWS)
        refits = cache.get(rows)
        pred = -influence[:, rows]
        act = np.stack(
            [test_loss(est, yt, f_t, t) - test_loss(est, yt, f0_test, t) for f_t, _ in refits],
            axis=1,
        )
        rec = {
            "model": label,
            "data": data,
            "seed": seed,
            "method": method,
            "temperature": t,
            "seconds": seconds,
            **_agree(pred, act),
        }
        if family == "hinge":
            keep = np.ones(len(ytr), dtype=bool)
            changed = []
            for r, (_, f_train) in zip(rows, refits, strict=True):
                keep[:] = True
                keep[r] = False
                st = states(est, Xtr, ytr, f_train)
                changed.append(bool(np.any(st[keep] != st0[keep])))
            changed = np.asarray(changed)
            rec["set_changed"] = float(changed.mean())
            same = _agree(pred[:, ~changed], act[:, ~changed]) if (~changed).sum() >= 3 else {}
            rec["pearson_unchanged"] = same.get("pearson", np.nan)
            rec["slope_unchanged"] = same.get("slope", np.nan)
        rec.update(extra or {})
        records.append(rec)
        return rows, pred, act

    if family == "smooth":
        for approx in ("influence", "newton"):
            t0 = time.perf_counter()
            exp = InfluenceExplainer(est, approximation=approx).fit(Xtr, ytr)
            influence = exp.influence(Xt, yt)
            evaluate(approx, None, influence, time.perf_counter() - t0)
        return records

    # the library's decremental path (approximation="path"), also stopped
    # after ``cap`` events; the hinge optimum's active set does not depend on t
    exp0 = InfluenceExplainer(est).fit(Xtr, ytr)
    theta0 = np.asarray(exp0.state_.theta)
    kkt = hinge_kkt(exp0.state_)
    paths = {
        cap: DecrementalPath.on_design(exp0.state_, kkt, max_events=cap) for cap in (None, 0, 1, 2)
    }
    design = exp0.spec_.make_design(exp0._features(Xt, None, est), exp0.xp_)
    Psi_t = np.asarray(design.take(np.arange(len(yt))).expand(np.ones((len(yt), 1)))).T
    z0 = Psi_t @ theta0
    path_cache = {}  # (row, max_events) -> (theta, events, seconds)

    def path_theta(r, cap):
        key = (int(r), cap)
        if key not in path_cache:
            t0 = time.perf_counter()
            change, ev, _ = paths[cap].remove(int(r))
            delta = paths[cap].geometry.parameter_change(*change)
            path_cache[key] = (theta0 + delta, ev, time.perf_counter() - t0)
        return path_cache[key]

    for t in temperatures:
        for hinge in ("active_set", "smoothed", "smoothed_newton"):
            t0 = time.perf_counter()
            exp = InfluenceExplainer(
                est,
                hinge=hinge.replace("_newton", ""),
                approximation="newton" if hinge.endswith("newton") else "influence",
                temperature=t,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # leverage-1 rows
                exp.fit(Xtr, ytr)
            influence = exp.influence(Xt, yt)
            seconds = time.perf_counter() - t0
            extra = {}
            if hinge == "active_set":
                extra["margin_rows"] = int(exp.solver_.report.details["margin_rows"])
            rows, _, act = evaluate(hinge, t, influence, seconds, extra)
            if hinge != "active_set":
                continue
            # the decremental path on the same rows: full, and stopped after
            # ``cap`` active-set events (0 = the first-order active-set estimate)
            for cap, method in ((None, "path"), (0, "path_0"), (1, "path_1"), (2, "path_2")):
                if method != "path" and t != 1e-3:
                    continue
                out = [path_theta(r, cap) for r in rows]
                pred = np.stack(
                    [
                        test_loss(est, yt, Psi_t @ th, t) - test_loss(est, yt, z0, t)
                        for th, *_ in out
                    ],
                    axis=1,
                )
                events = np.array([ev for _, ev, _ in out])
                rec = {
                    "model": label,
                    "data": data,
                    "seed": seed,
                    "method": method,
                    "temperature": t,
                    "seconds_per_row": float(np.mean([sec for *_, sec in out])),
                    "refit_seconds_per_row": cache.refit_seconds,
                    **_agree(pred, act),
                    "events": float(np.mean(events > 0)),
                    "mean_events": float(np.mean(events)),
                    "set_changed": records[-1]["set_changed"],
                }
                if cap == 0:
                    # consistency: the first path segment is the library's estimate
                    first = -influence[:, rows]
                    lin = np.stack(
                        [
                            test_loss_gradient(est, yt, z0, t) * (Psi_t @ (th - theta0))
                            for th, *_ in out
                        ],
                        axis=1,
                    )
                    rec["max_abs_diff_vs_library"] = float(np.max(np.abs(lin - first)))
                if method == "path":
                    # the first-order estimate on the removals the path says keep the set
                    flat = events == 0
                    fo = (
                        _agree(-influence[:, rows][:, flat], act[:, flat])
                        if flat.sum() >= 3
                        else {}
                    )
                    rec["active_set_pearson_no_event"] = fo.get("pearson", np.nan)
                    rec["active_set_slope_no_event"] = fo.get("slope", np.nan)
                records.append(rec)
    return records


# ---------------------------------------------------------- pipelines part
def _pipeline_models(gamma):
    """Per task: the exact kernel model first, then approximations of it."""
    nys = lambda k: Nystroem(gamma=gamma, n_components=k, random_state=0)  # noqa: E731
    svc_final = LinearSVC(loss="hinge", C=1.0, tol=1e-8, max_iter=1_000_000)
    return {
        "reg": {
            "KernelRidge(rbf), exact": KernelRidge(alpha=1.0, kernel="rbf", gamma=gamma),
            "Nystroem(100) + Ridge": make_pipeline(nys(100), Ridge(alpha=1.0)),
            "Nystroem(300) + Ridge": make_pipeline(nys(300), Ridge(alpha=1.0)),
            "RBFSampler(500) + Ridge": make_pipeline(
                RBFSampler(gamma=gamma, n_components=500, random_state=0), Ridge(alpha=1.0)
            ),
        },
        "clf": {
            "SVC(rbf), exact": SVC(kernel="rbf", gamma=gamma, C=1.0, tol=1e-8),
            "Nystroem(300) + LinearSVC": make_pipeline(nys(300), clone(svc_final)),
        },
    }


def run_pipelines(sizes, n_jobs, quick, loo_max=2000):
    """Exact kernel influence vs Nystroem / RBFSampler + linear model.

    For each ``n_train``: time the explainer (fit + influence on 3 test
    rows), and measure agreement (a) with the model's own leave-one-out
    refits (for a pipeline: refits of its final step on the fixed features)
    and (b) with the *exact kernel model's* refits on the exact model's 30
    most influential rows: how well the cheap pipeline explains the exact
    model.
    """
    records = []
    gamma = 0.1
    k = 20 if quick else K_ROWS
    for n in sizes:
        X, yc = make_classification(
            n_samples=n + 200, n_features=10, n_informative=6, flip_y=0.05, random_state=0
        )
        X = StandardScaler().fit_transform(X)
        yr = X[:, 0] ** 2 - X[:, 1] + 0.5 * np.sin(3 * X[:, 2]) + 0.3 * yc
        for task, models in _pipeline_models(gamma).items():
            y = yr if task == "reg" else yc
            Xtr, ytr, Xte, yte = X[:n], y[:n], X[n:], y[n:]
            reference = None
            for name, model in models.items():
                t0 = time.perf_counter()
                model.fit(Xtr, ytr)
                fit_s = time.perf_counter() - t0
                final = model[-1] if hasattr(model, "steps") else model
                if reference is None:  # the exact model picks the test rows
                    f = raw_output(model, Xte)
                    if task == "reg":
                        lossv = (yte - f) ** 2
                    else:
                        lossv = np.maximum(0.0, 1.0 - _sign(model, yte) * f)
                    test = np.argsort(-lossv, kind="stable")[:N_TEST]
                    Xt, yt = Xte[test], yte[test]
                t0 = time.perf_counter()
                exp = InfluenceExplainer(model).fit(Xtr, ytr)
                fit_exp = time.perf_counter() - t0
                t0 = time.perf_counter()
                influence = exp.influence(Xt, yt)
                infl_s = time.perf_counter() - t0
                rec = {
                    "n_train": n,
                    "task": task,
                    "model": name,
                    "model_fit_s": fit_s,
                    "explainer_fit_s": fit_exp,
                    "influence_s": infl_s,
                    "n_params": int(exp.state_.n_params),
                    "solver": exp.solver_.name,
                }

                if n <= loo_max:
                    # (a) own refits: the final step on the pipeline's fixed features
                    rows = top_rows(influence, k)
                    Xtf = exp._features(Xt, exp.feature_map_, final)
                    cache = RefitCache(clone(final), exp._X_features, ytr, Xtf, n_jobs=n_jobs)
                    t0 = time.perf_counter()
                    refits = cache.get(rows)
                    rec["loo_s"] = time.perf_counter() - t0
                    base = test_loss(final, yt, cache.base[0], 1e-3)
                    act = np.stack(
                        [test_loss(final, yt, ft, 1e-3) - base for ft, _ in refits], axis=1
                    )
                    own = _agree(-influence[:, rows], act)
                    rec.update({f"own_{key}": v for key, v in own.items()})
                    if reference is None:
                        reference = {"rows": rows, "actual": act, "influence": influence}
                    else:
                        # (b) against the exact kernel model's refits
                        ref_rows = reference["rows"]
                        vs = _agree(-influence[:, ref_rows], reference["actual"])
                        rec.update({f"vs_exact_loo_{key}": v for key, v in vs.items()})
                if reference is None:
                    reference = {"influence": influence}
                if "exact" not in name:
                    ref = reference["influence"].ravel()
                    rec["corr_with_exact_influence"] = float(
                        np.corrcoef(ref, influence.ravel())[0, 1]
                    )
                records.append(rec)
                print(
                    f"  n={n:5d} {name:26s} model fit {fit_s:6.2f}s explainer fit "
                    f"{fit_exp:6.2f}s influence {infl_s:6.2f}s P={rec['n_params']:5d} "
                    f"{rec['solver']:10s} own R={rec.get('own_pearson', np.nan):.3f} "
                    f"R vs exact LOO={rec.get('vs_exact_loo_pearson', np.nan):.3f} "
                    f"r(influence, exact)={rec.get('corr_with_exact_influence', np.nan):.3f}",
                    flush=True,
                )
    return records


def pipelines_markdown(records):
    lines = [
        "| n_train | model | params | solver | explainer fit + influence (s) | model fit (s) "
        "| R own LOO | R vs exact model's LOO | r with exact influence |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| {r['n_train']} | {r['model']} | {r['n_params']} | {r['solver']} | "
            f"{r['explainer_fit_s'] + r['influence_s']:.2f} | {r['model_fit_s']:.2f} | "
            f"{_fmt(r.get('own_pearson', np.nan), 3)} | "
            f"{_fmt(r.get('vs_exact_loo_pearson', np.nan), 3)} | "
            f"{_fmt(r.get('corr_with_exact_influence', np.nan), 3)} |"
        )
    return "\n".join(lines)


# ------------------------------------------------------------- reporting
def summarize(records):
    """Median (min-max) over splits per (model, data, method, temperature)."""
    groups = {}
    for r in records:
        key = (r["model"], r["data"], r["method"], r["temperature"])
        groups.setdefault(key, []).append(r)
    out = []
    for (model, data, method, t), rs in groups.items():
        row = {"model": model, "data": data, "method": method, "temperature": t, "splits": len(rs)}
        for field in (
            "pearson",
            "spearman",
            "slope",
            "set_changed",
            "pearson_unchanged",
            "events",
            "mean_events",
            "active_set_pearson_no_event",
            "margin_rows",
            "seconds",
            "seconds_per_row",
            "refit_seconds_per_row",
            "max_abs_diff_vs_library",
        ):
            vals = np.array([r.get(field, np.nan) for r in rs], dtype=float)
            if np.all(np.isnan(vals)):
                continue
            row[field] = float(np.nanmedian(vals))
            row[field + "_min"] = float(np.nanmin(vals))
            row[field + "_max"] = float(np.nanmax(vals))
        out.append(row)
    return out


def _fmt(x, nd=2):
    return "—" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{nd}f}"


def markdown(summary, temperatures):
    lines = []
    hinge = [s for s in summary if s["method"] in METHODS]
    pairs = sorted({(s["model"], s["data"]) for s in hinge}, key=str)
    # Table 1: Pearson, active_set vs smoothed per t
    head = "| model | data | method | " + " | ".join(f"t={t:g}" for t in temperatures) + " |"
    lines += ["Pearson R (median over splits) of predicted vs actual test-loss change:", ""]
    lines += [head, "|" + "---|" * (3 + len(temperatures))]
    for model, data in pairs:
        for method in METHODS:
            cells = []
            for t in temperatures:
                s = [
                    x
                    for x in hinge
                    if (x["model"], x["data"], x["method"]) == (model, data, method)
                    and (x["temperature"] == t or x["temperature"] is None)
                ]
                cells.append(_fmt(s[0]["pearson"]) if s else "")
            lines.append(f"| {model} | {data} | {method} | " + " | ".join(cells) + " |")
    lines += ["", "Slope of actual on predicted (1 = right scale), median over splits:", ""]
    lines += [head, "|" + "---|" * (3 + len(temperatures))]
    for model, data in pairs:
        for method in METHODS:
            cells = []
            for t in temperatures:
                s = [
                    x
                    for x in hinge
                    if (x["model"], x["data"], x["method"]) == (model, data, method)
                    and (x["temperature"] == t or x["temperature"] is None)
                ]
                cells.append(_fmt(s[0]["slope"]) if s else "")
            lines.append(f"| {model} | {data} | {method} | " + " | ".join(cells) + " |")
    # Table 2: active-set changes at t = 1e-3
    lines += ["", "Active-set changes (t = 0.001 test loss, active_set's 30 rows):", ""]
    lines += [
        "| model | data | margin rows | refits with a changed set | R all | R unchanged set "
        "| R path | path events>0 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, data in pairs:

        def pick(method, _model=model, _data=data):
            s = [
                x
                for x in hinge
                if (x["model"], x["data"], x["method"]) == (_model, _data, method)
                and x["temperature"] in (1e-3, None)
            ]
            return s[0] if s else {}

        a, p = pick("active_set"), pick("path")
        lines.append(
            f"| {model} | {data} | {_fmt(a.get('margin_rows'), 0)} | "
            f"{_fmt(100 * a.get('set_changed', np.nan), 0)}% | {_fmt(a.get('pearson'))} | "
            f"{_fmt(a.get('pearson_unchanged'))} | {_fmt(p.get('pearson'))} | "
            f"{_fmt(100 * p.get('events', np.nan), 0)}% |"
        )
    lines += ["", "The decremental path stopped after k active-set events (t = 0.001):", ""]
    lines += [
        "| model | data | k=0 (= active_set) | k=1 | k=2 | full path | events per row "
        "| path ms/row | refit ms/row |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for model, data in pairs:
        cells = {}
        for x in summary:
            if (x["model"], x["data"]) == (model, data) and x["temperature"] == 1e-3:
                cells[x["method"]] = x
        p = cells.get("path", {})
        lines.append(
            f"| {model} | {data} | "
            + " | ".join(
                f"{_fmt(cells.get(m, {}).get('pearson'))}"
                for m in ("path_0", "path_1", "path_2", "path")
            )
            + f" | {_fmt(p.get('mean_events'), 1)}"
            f" | {_fmt(1e3 * p.get('seconds_per_row', np.nan), 1)}"
            f" | {_fmt(1e3 * p.get('refit_seconds_per_row', np.nan), 1)} |"
        )
    smooth = [s for s in summary if s["method"] in ("influence", "newton")]
    lines += ["", "Smooth models (median [min, max] over splits):", ""]
    lines += [
        "| model | data | approximation | Pearson | Spearman | slope |",
        "|---|---|---|---|---|---|",
    ]
    for s in sorted(smooth, key=lambda s: (s["model"], s["data"], s["method"])):
        lines.append(
            f"| {s['model']} | {s['data']} | {s['method']} | "
            f"{_fmt(s['pearson'], 3)} "
            f"[{_fmt(s['pearson_min'], 3)}, {_fmt(s['pearson_max'], 3)}] | "
            f"{_fmt(s['spearman'], 3)} | {_fmt(s['slope'])} [{_fmt(s['slope_min'])}, "
            f"{_fmt(s['slope_max'])}] |"
        )
    return "\n".join(lines)


def _rounded(obj, digits=5):
    """Floats to ``digits`` significant digits (NaN -> None), recursively."""
    if isinstance(obj, dict):
        return {k: _rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rounded(v, digits) for v in obj]
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return None if not np.isfinite(v) else float(f"{v:.{digits}g}")
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one split, fewer temperatures")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--part", choices=["accuracy", "pipelines", "all"], default="all")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--only", default=None, help="substring of the model label")
    here = Path(__file__).resolve().parent
    parser.add_argument("--out", default=str(here / "results" / "svm.json"))
    args = parser.parse_args(argv)
    seeds = [0] if args.quick else list(range(args.seeds))
    temperatures = (1e-3, 1e-1) if args.quick else TEMPERATURES
    result = {
        "meta": {
            "python": platform.python_version(),
            "sklearn": sklearn.__version__,
            "numpy": np.__version__,
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "seeds": seeds,
            "temperatures": list(temperatures),
            "k_rows": K_ROWS,
            "n_test": N_TEST,
            "margin_tol": MARGIN_TOL,
            "blas_threads": 1,
        }
    }
    if args.part in ("accuracy", "all"):
        records = []
        # small dense solves with 2 OpenBLAS threads crawl on 2 shared cores; one
        # thread each also keeps the timings comparable
        limits = threadpool_limits(1)
        for label, data, est, family in configs():
            if args.only and args.only not in label:
                continue
            t0 = time.perf_counter()
            for seed in seeds:
                records += run_split(label, data, est, family, seed, temperatures, args.n_jobs)
            print(f"{label:22s} {data:14s} {time.perf_counter() - t0:6.1f}s", flush=True)
        limits.restore_original_limits()
        summary = summarize(records)
        result["accuracy"] = {"runs": records, "summary": summary}
        print()
        print(markdown(summary, temperatures))
    if args.part in ("pipelines", "all"):
        sizes = (500, 1000) if args.quick else (500, 1000, 2000, 4000)
        with threadpool_limits(1):
            result["pipelines"] = run_pipelines(sizes, args.n_jobs, args.quick)
        print()
        print(pipelines_markdown(result["pipelines"]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_rounded(result), indent=None, separators=(",", ":")) + "\n")
    print(f"\nwrote {out}")
    return result


if __name__ == "__main__":
    main()
