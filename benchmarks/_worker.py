"""One benchmark measurement in a fresh process: ``python _worker.py '<json spec>'``.

Tasks (``spec["task"]``):

``prepare``      generate the data, fit the scikit-learn model, save it to ``workdir``
``skinfluence``  ``InfluenceExplainer(solver=...)``: fit + influence
``pyinfluence``  ``pyinfluence.InfluenceFunctions``: fit + explain
``pydvl``        pyDVL ``DirectInfluence`` / ``CgInfluence`` / ``LissaInfluence`` on an
                 equivalent float64 torch model (runs under the pyDVL virtualenv)
``loo``          naive leave-one-out refits with scikit-learn for a few rows
``floor``        skinfluence exact vs the NumPy matrix products it cannot avoid
``topk``         ``most_influential`` over many training rows, peak RSS

Every task regenerates the data from the seed (checked against the
``prepare`` checksum), times the library calls only, and saves the columns
``cols.npy`` of its influence matrix, converted to skinfluence's convention,
to ``workdir/<name>.npy`` for the agreement check done by the parent.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    PeakRSS,
    Timer,
    blas_info,
    checksum,
    emit,
    make_data,
    ru_maxrss_mib,
)


def _load(spec):
    case = spec["case"]
    wd = Path(spec["workdir"])
    X, y, Xt, yt = make_data(case)
    meta = json.loads((wd / "meta.json").read_text())
    if abs(checksum(X, y) - meta["checksum"]) > 1e-6 * max(1.0, abs(meta["checksum"])):
        raise RuntimeError("regenerated data differ from the prepared data (checksum)")
    n_test = case.get("n_test", 500)
    return X, y, Xt[:n_test], yt[:n_test], meta, wd


def _model(wd):
    import pickle

    with open(wd / "model.pkl", "rb") as f:
        return pickle.load(f)


def _save(wd, name, I_cols):
    np.save(wd / f"{name}.npy", np.asarray(I_cols, dtype=np.float64))


def _sklearn_estimator(case):
    from sklearn.linear_model import LogisticRegression, Ridge

    if case.get("estimator", "logistic") == "ridge":
        return Ridge(alpha=case.get("alpha", 1.0), fit_intercept=case.get("fit_intercept", True))
    return LogisticRegression(
        C=case.get("C", 1.0),
        tol=case.get("tol", 1e-8),
        max_iter=5000,
        fit_intercept=case.get("fit_intercept", True),
    )


def _timing(fit_s, infl_s, mem):
    """Best-of-repeats times (each phase's minimum) and the first run's memory."""
    return {
        "status": "ok",
        "fit_s": min(fit_s),
        "influence_s": min(infl_s),
        "total_s": min(a + b for a, b in zip(fit_s, infl_s, strict=True)),
        "all_fit_s": fit_s,
        "all_influence_s": infl_s,
        "peak_rss_delta_mib": mem.delta_mib,
        "peak_rss_mib": mem.peak_mib,
    }


# ------------------------------------------------------------------ tasks
def task_prepare(spec):
    import pickle

    case = spec["case"]
    wd = Path(spec["workdir"])
    wd.mkdir(parents=True, exist_ok=True)
    with Timer() as tg:
        X, y, Xt, yt = make_data(case)
    est = _sklearn_estimator(case)
    with Timer() as tf:
        est.fit(X, y)
    with open(wd / "model.pkl", "wb") as f:
        pickle.dump(est, f)
    np.savez(
        wd / "model.npz",
        coef=np.atleast_2d(est.coef_),
        intercept=np.atleast_1d(est.intercept_),
    )
    n = X.shape[0]
    rng = np.random.default_rng(1)
    n_cols = min(n, spec.get("n_cols", 2000))
    cols = np.sort(rng.choice(n, n_cols, replace=False))
    np.save(wd / "cols.npy", cols)
    meta = {"checksum": checksum(X, y), "n": n, "p": X.shape[1]}
    (wd / "meta.json").write_text(json.dumps(meta))
    return {
        "status": "ok",
        "data_s": tg.seconds,
        "sklearn_fit_s": tf.seconds,
        "n_iter": np.atleast_1d(getattr(est, "n_iter_", [0])).tolist(),
        "nnz": int(X.nnz) if hasattr(X, "nnz") else None,
    }


def task_skinfluence(spec):
    from skinfluence import InfluenceExplainer

    X, y, Xt, yt, meta, wd = _load(spec)
    model = _model(wd)
    cols = np.load(wd / "cols.npy")
    repeats = spec.get("repeats", 1)
    fit_s, infl_s = [], []
    mem = None
    for r in range(repeats):
        exp = InfluenceExplainer(
            model, solver=spec["solver"], solver_options=spec.get("solver_options")
        )
        with PeakRSS() as m:
            with Timer() as t1:
                exp.fit(X, y)
            with Timer() as t2:
                I = exp.influence(Xt, yt)
        fit_s.append(t1.seconds)
        infl_s.append(t2.seconds)
        if mem is None:
            mem = m
        if r == 0:
            _save(wd, spec["name"], I[:, cols])
        del I
    rep = exp.solver_.report
    return {
        **_timing(fit_s, infl_s, mem),
        "stationarity": exp.stationarity_,
        "solver_report": {
            "solver": rep.solver,
            "iterations": rep.iterations,
            "residual": rep.residual,
            "converged": rep.converged,
        },
    }


def task_pyinfluence(spec):
    from pyinfluence import InfluenceFunctions

    X, y, Xt, yt, meta, wd = _load(spec)
    model = _model(wd)
    cols = np.load(wd / "cols.npy")
    import scipy.sparse as sp

    if sp.issparse(X):
        if not spec.get("densify"):
            try:
                InfluenceFunctions(mode="loss", damping=0.0).fit(model, X, y)
            except Exception as exc:
                return {"status": "unsupported", "detail": f"{type(exc).__name__}: {exc}"}
        X, Xt = X.toarray(), Xt.toarray()
    fit_s, infl_s, mem = [], [], None
    for r in range(spec.get("repeats", 1)):
        attr = InfluenceFunctions(mode="loss", damping=0.0)
        with PeakRSS() as m:
            with Timer() as t1:
                attr.fit(model, X, y)
            with Timer() as t2:
                S = attr.explain(Xt, yt)
        fit_s.append(t1.seconds)
        infl_s.append(t2.seconds)
        mem = mem or m
        if r == 0:
            # pyinfluence: scores = g_test^T H_mean^{-1} g_i / n with H_mean = H / (C n),
            # positive = helpful; skinfluence's I = -scores.
            _save(wd, spec["name"], -S[:, cols])
        del S, attr
    return _timing(fit_s, infl_s, mem)


def task_pydvl(spec):
    import logging

    import scipy.sparse as sp
    import torch
    from torch.utils.data import DataLoader, Dataset, TensorDataset

    logging.disable(logging.WARNING)
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1))
    from pydvl.influence import InfluenceMode
    from pydvl.influence.torch import CgInfluence, DirectInfluence, LissaInfluence

    case = spec["case"]
    X, y, Xt, yt, meta, wd = _load(spec)
    cols = np.load(wd / "cols.npy")
    par = np.load(wd / "model.npz")
    n, p = X.shape
    C = case.get("C", 1.0)
    fit_intercept = case.get("fit_intercept", True)
    if fit_intercept:
        # pyDVL's regularization is one lambda on every parameter; scikit-learn
        # leaves the intercept unpenalised, so only fit_intercept=False is equal.
        return {"status": "unsupported", "detail": "peer cases use fit_intercept=False"}
    model = torch.nn.Linear(p, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.as_tensor(par["coef"]))
    model.eval()

    def loss(out, target):
        return torch.nn.functional.binary_cross_entropy_with_logits(out, target)

    batch = spec.get("batch_size", 10_000)
    if sp.issparse(X):

        class CSRDataset(Dataset):
            """Rows of a CSR matrix, densified one batch at a time."""

            def __init__(self, A, t):
                self.A, self.t = A, t

            def __len__(self):
                return self.A.shape[0]

            def __getitem__(self, idx):
                return self.A[idx], self.t[idx]

        def collate(items):
            import scipy.sparse as sps

            A = sps.vstack([a for a, _ in items]).toarray()
            return torch.as_tensor(A), torch.as_tensor(np.stack([t for _, t in items]))

        ytr = y.astype(np.float64)[:, None]
        loader = DataLoader(CSRDataset(X, ytr), batch_size=batch, collate_fn=collate)
        Xt_t = torch.as_tensor(Xt.toarray())
    else:
        ytr = torch.as_tensor(y.astype(np.float64)[:, None])
        loader = DataLoader(TensorDataset(torch.as_tensor(X), ytr), batch_size=batch)
        Xt_t = torch.as_tensor(Xt)
    yt_t = torch.as_tensor(yt.astype(np.float64)[:, None])
    # Mean-loss Hessian (1/n) sum h_i + lambda I equals skinfluence's H / (C n)
    # when lambda = 1 / (C n).
    reg = 1.0 / (C * n)
    method = spec["method"]
    if method == "direct":
        infl = DirectInfluence(model, loss, regularization=reg)
    elif method == "cg":
        infl = CgInfluence(model, loss, regularization=reg, solve_simultaneously=True)
    elif method == "lissa":
        infl = LissaInfluence(
            model,
            loss,
            regularization=reg,
            maxiter=spec.get("maxiter", 1000),
            scale=spec.get("scale", 1.0),
            rtol=spec.get("rtol", 1e-6),
        )
    else:
        raise ValueError(method)
    chunk = spec.get("train_chunk", 20_000)
    fit_s, infl_s, mem = [], [], None
    for r in range(spec.get("repeats", 1)):
        with PeakRSS() as m:
            with Timer() as t1:
                infl = infl.fit(loader)
            with Timer() as t2:
                fac = infl.influence_factors(Xt_t, yt_t)
                parts = []
                for s in range(0, n, chunk):
                    Xc = X[s : s + chunk]
                    Xc = torch.as_tensor(Xc.toarray() if sp.issparse(Xc) else Xc)
                    yc = torch.as_tensor(y[s : s + chunk].astype(np.float64)[:, None])
                    parts.append(infl.influences_from_factors(fac, Xc, yc, mode=InfluenceMode.Up))
                V = torch.cat(parts, dim=1).numpy()
        fit_s.append(t1.seconds)
        infl_s.append(t2.seconds)
        mem = mem or m
        if r == 0:
            # pyDVL: <H_mean^{-1} grad l_test, grad l_i>; skinfluence's I = -V / n.
            _save(wd, spec["name"], -V[:, cols] / n)
        del V, parts, fac
    return {
        **_timing(fit_s, infl_s, mem),
        "batch_size": batch,
        "torch_threads": torch.get_num_threads(),
        "blas": blas_info(),
    }


def task_loo(spec):
    """Refit without each of ``k`` rows; time per refit, extrapolated to n."""
    from sklearn.base import clone

    case = spec["case"]
    X, y, Xt, yt, meta, wd = _load(spec)
    model = _model(wd)
    cols = np.load(wd / "cols.npy")
    k = spec.get("k", 3)
    rows = cols[:: max(1, len(cols) // k)][:k]

    def test_loss(est):
        if case.get("estimator", "logistic") == "ridge":
            return (yt - est.predict(Xt)) ** 2
        P = est.predict_proba(Xt)
        idx = np.searchsorted(est.classes_, yt)
        return -np.log(np.clip(P[np.arange(len(yt)), idx], 1e-300, None))

    base = test_loss(model)
    deltas, times = [], []
    mask = np.ones(X.shape[0], dtype=bool)
    for i in rows:
        mask[i] = False
        est = clone(model)
        est.set_params(tol=case.get("loo_tol", 1e-10))
        with Timer() as t:
            est.fit(X[mask], y[mask])
        mask[i] = True
        times.append(t.seconds)
        deltas.append(test_loss(est) - base)
    D = np.stack(deltas, axis=1)  # (n_test, k): change of test loss on removal
    np.save(wd / f"{spec['name']}_rows.npy", rows)
    _save(wd, spec["name"], -D)  # influence convention: change = -I
    per_row = float(np.median(times))
    return {
        "status": "ok",
        "rows": rows.tolist(),
        "refit_s": times,
        "per_row_s": per_row,
        "extrapolated_all_rows_s": per_row * X.shape[0],
        "note": "naive leave-one-out: one scikit-learn refit (tol=1e-10, no warm start) per "
        "removed row; the total is per_row_s * n_train (extrapolated, not run)",
    }


def task_floor(spec):
    """skinfluence exact fit + influence vs the NumPy products it must do.

    The floor is the best of a few NumPy formulations of (a) the Hessian
    ``X^T D X`` on the intercept-augmented design and (b) the products of the
    test factors (p x n_test) with all training rows (n x p), both measured in
    this process, interleaved with skinfluence's runs.
    """
    from skinfluence import InfluenceExplainer

    X, y, Xt, yt, meta, wd = _load(spec)
    model = _model(wd)
    n, p = X.shape
    m = Xt.shape[0]
    repeats = spec.get("repeats", 3)
    rng = np.random.default_rng(0)
    d = rng.random(n) * 0.25
    F = rng.standard_normal((p + 1, m))
    res = {"hessian": [], "hessian_syrk": [], "products_XF": [], "products_FtXt": []}
    res.update({"aug_copy": [], "sk_fit": [], "sk_influence": []})
    for _ in range(repeats):
        with Timer() as t:
            Xa = np.hstack([X, np.ones((n, 1))])
        res["aug_copy"].append(t.seconds)
        with Timer() as t:
            H = Xa.T @ (d[:, None] * Xa)
        res["hessian"].append(t.seconds)
        with Timer() as t:
            Xs = Xa * np.sqrt(d)[:, None]
            H = Xs.T @ Xs
        res["hessian_syrk"].append(t.seconds)
        del Xs, H
        with Timer() as t:
            G = Xa @ F
        res["products_XF"].append(t.seconds)
        del G
        with Timer() as t:
            G = F.T @ Xa.T
        res["products_FtXt"].append(t.seconds)
        del G, Xa
        exp = InfluenceExplainer(model, solver="exact")
        with Timer() as t:
            exp.fit(X, y)
        res["sk_fit"].append(t.seconds)
        with Timer() as t:
            I = exp.influence(Xt, yt)
        res["sk_influence"].append(t.seconds)
        del I
    best = {k: min(v) for k, v in res.items()}
    floor = min(best["hessian"], best["hessian_syrk"]) + min(
        best["products_XF"], best["products_FtXt"]
    )
    sk = best["sk_fit"] + best["sk_influence"]
    profile = None
    if spec.get("profile"):
        profile = _profile_exact(model, X, y, Xt, yt)
    return {
        "status": "ok",
        "times": res,
        "best": best,
        "floor_s": floor,
        "skinfluence_s": sk,
        "ratio": sk / floor,
        "profile": profile,
        "blas": blas_info(),
    }


def _profile_exact(model, X, y, Xt, yt, top=25):
    import cProfile
    import pstats

    from skinfluence import InfluenceExplainer

    pr = cProfile.Profile()
    pr.enable()
    t0 = time.perf_counter()
    exp = InfluenceExplainer(model, solver="exact").fit(X, y)
    exp.influence(Xt, yt)
    total = time.perf_counter() - t0
    pr.disable()
    st = pstats.Stats(pr)
    rows = []
    for (fn, line, name), (_cc, nc, tt, ct, _callers) in st.stats.items():
        short = fn.split("skinfluence/", 1)[-1] if "/skinfluence/" in fn else Path(fn).name
        rows.append((ct, tt, nc, f"{short}:{line}({name})", "/skinfluence/" in fn))
    rows.sort(reverse=True)
    keep = [
        {"function": r[3], "cumulative_s": r[0], "share": r[0] / total, "calls": r[2]}
        for r in rows
        if r[4] and r[0] > 0.01 * total
    ]
    by_own = sorted(rows, key=lambda r: -r[1])[:top]
    return {
        "total_s": total,
        "top_cumulative": keep[:top],
        "top_own_time": [
            {"function": r[3], "own_s": r[1], "share": r[1] / total, "calls": r[2]} for r in by_own
        ],
    }


def task_topk(spec):
    from skinfluence import InfluenceExplainer

    X, y, Xt, yt, meta, wd = _load(spec)
    model = _model(wd)
    k = spec.get("k", 10)
    exp = InfluenceExplainer(model, solver="exact", max_block_bytes=spec["max_block_bytes"])
    rss0 = PeakRSS()._rss()
    with PeakRSS() as m1:
        with Timer() as t1:
            exp.fit(X, y)
    with PeakRSS() as m2:
        with Timer() as t2:
            top = exp.most_influential(Xt, yt, k=k)
    # correctness on a few test rows: the full rows of the influence matrix
    sub = exp.influence(Xt[:4], yt[:4])
    want = np.argsort(-sub, axis=1)[:, :k]
    ok = bool(np.all(np.sort(want, 1) == np.sort(top["harmful_indices"][:4], 1)))
    n, m = X.shape[0], Xt.shape[0]
    return {
        "status": "ok",
        "fit_s": t1.seconds,
        "most_influential_s": t2.seconds,
        "rss_before_fit_mib": rss0,
        "fit_peak_rss_delta_mib": m1.delta_mib,
        "query_peak_rss_delta_mib": m2.delta_mib,
        "peak_rss_mib": max(m1.peak_mib, m2.peak_mib),
        "full_matrix_would_need_mib": n * m * 8 / 2**20,
        "X_mib": X.nbytes / 2**20,
        "max_block_bytes": spec["max_block_bytes"],
        "topk_matches_full_rows": ok,
    }


TASKS = {
    "prepare": task_prepare,
    "skinfluence": task_skinfluence,
    "pyinfluence": task_pyinfluence,
    "pydvl": task_pydvl,
    "loo": task_loo,
    "floor": task_floor,
    "topk": task_topk,
}


def main():
    spec = json.loads(sys.argv[1])
    t0 = time.perf_counter()
    try:
        out = TASKS[spec["task"]](spec)
    except MemoryError as exc:
        out = {"status": "out_of_memory", "detail": f"MemoryError: {exc}"}
    except Exception as exc:
        out = {
            "status": "error",
            "detail": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc()[-2000:],
        }
    out["process_s"] = time.perf_counter() - t0
    out["ru_maxrss_mib"] = ru_maxrss_mib()
    emit(out)


if __name__ == "__main__":
    main()
