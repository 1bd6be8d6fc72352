"""Influence over a row-chunked Dask table larger than one worker's memory.

Binary logistic regression (``C=1``, L2) on a table generated lazily, chunk by
chunk, on the workers (``dask.array.random``): ``X`` has ``--features``
standard normal columns, ``y ~ Bernoulli(sigmoid(X w))``. Nothing of ``X`` is
held by the client. The model is brought to its optimum on the full data by
Newton iterations whose gradient and Hessian are reduced over the chunks
(plain ``dask.array`` expressions of scikit-learn's objective
``C sum_i logloss_i + ||w||^2 / 2``), then set on a ``LogisticRegression``
as if fitted: the explainer checks that it is stationary.

Measured, per number of workers (one thread each, ``--memory-limit`` each):
wall time of ``InfluenceExplainer.fit`` (one pass: Hessian and gradient
reduced on the workers, factored on the client), ``self_influence()``
(one pass) and ``most_influential`` of ``--n-test`` test rows (one pass, the
``n_test x n_train`` matrix never held); the peak resident memory of every
worker process (psutil, sampled every 20 ms) and of the client. Where the
table fits (``--in-memory-gigabytes``), the same model is explained in memory
in this process, for time and agreement.

Run::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_dask.py \\
        --gigabytes 2 --workers 1 2

and for the issue's 10 GiB table (on a machine with the time for it)::

    python benchmarks/bench_dask.py --gigabytes 10 --workers 1 2 --memory-limit 2GiB

Writes ``benchmarks/results/dask.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from _common import RESULTS, PeakRSS, machine_info, now, set_threads, write_json  # noqa: E402


# --- memory of the worker processes -----------------------------------------
def _start_sampler(dask_worker):
    """Record the worker process's peak RSS every 20 ms (a daemon thread)."""
    import psutil

    proc = psutil.Process()
    dask_worker.skinfluence_peak = proc.memory_info().rss

    def loop():
        while True:
            dask_worker.skinfluence_peak = max(
                dask_worker.skinfluence_peak, proc.memory_info().rss
            )
            time.sleep(0.02)

    if not getattr(dask_worker, "skinfluence_sampling", False):
        dask_worker.skinfluence_sampling = True
        threading.Thread(target=loop, daemon=True).start()


def _take_peak(dask_worker):
    """The peak since the last call (MiB); restarts from the current RSS."""
    import psutil

    peak = dask_worker.skinfluence_peak
    dask_worker.skinfluence_peak = psutil.Process().memory_info().rss
    return peak / 2**20


def _warm_up():
    """Import what the tasks import, so that the timings do not include it."""
    import sklearn.linear_model  # noqa: F401

    import skinfluence._dask  # noqa: F401

    return _rss_mib()


def _rss_mib():
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _peaks(client):
    return sorted(round(v, 1) for v in client.run(_take_peak).values())


# --- data and model ----------------------------------------------------------
def _table(n, p, chunk_rows, seed=0):
    import dask.array as da

    rs = da.random.RandomState(seed)
    w = np.linspace(-1.0, 1.0, p) / np.sqrt(p) * 2.0
    X = rs.standard_normal(size=(n, p), chunks=(chunk_rows, p))
    prob = 1.0 / (1.0 + da.exp(-(X @ w) - 0.3))
    y = (rs.uniform(size=n, chunks=chunk_rows) < prob).astype(np.float64)
    return X, y


def _newton_fit(X, y, C=1.0, tol=1e-10, max_iter=15):
    """scikit-learn's L2 logistic objective minimised by Newton's method,
    gradient and Hessian reduced over the chunks; returns ``(coef, b)``."""
    import dask
    import dask.array as da

    n, p = X.shape
    theta = np.zeros(p + 1)
    reg = np.r_[np.ones(p), 0.0]  # the intercept is not penalised
    for _ in range(max_iter):
        z = X @ theta[:p] + theta[p]
        prob = 1.0 / (1.0 + da.exp(-z))
        r, d = prob - y, prob * (1.0 - prob)
        Xd = X * d[:, None]
        parts = (X.T @ r, r.sum(), X.T @ Xd, Xd.sum(axis=0), d.sum())
        gX, gb, HXX, HXb, Hbb = dask.compute(*parts)
        g = C * np.r_[gX, gb] + reg * theta
        H = C * np.block([[HXX, HXb[:, None]], [HXb[None, :], np.array([[Hbb]])]]) + np.diag(reg)
        step = np.linalg.solve(H, g)
        theta = theta - step
        if np.linalg.norm(step) <= tol * (1.0 + np.linalg.norm(theta)):
            break
    return theta[:p], theta[p]


def _as_fitted(coef, intercept):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0)
    model.coef_ = coef[None, :]
    model.intercept_ = np.array([intercept])
    model.classes_ = np.array([0.0, 1.0])
    model.n_features_in_ = coef.size
    model.n_iter_ = np.array([0])
    return model


def _explain(model, X, y, X_test, y_test, k):
    """Fit, self_influence and most_influential, timed; Dask results computed."""
    from skinfluence import InfluenceExplainer, NotAtOptimumWarning

    out = {}
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotAtOptimumWarning)  # not at the optimum: fail
        exp = InfluenceExplainer(model).fit(X, y)
    out["fit_s"] = time.perf_counter() - t
    out["stationarity"] = exp.stationarity_
    t = time.perf_counter()
    si = exp.self_influence()
    si = np.asarray(si.compute() if hasattr(si, "compute") else si)
    out["self_influence_s"] = time.perf_counter() - t
    t = time.perf_counter()
    top = exp.most_influential(X_test, y_test, k=k)
    out["most_influential_s"] = time.perf_counter() - t
    return out, si, top


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gigabytes", type=float, default=2.0, help="size of X (float64), GiB")
    ap.add_argument("--features", type=int, default=100)
    ap.add_argument("--chunk-mib", type=float, default=64.0, help="size of one row chunk")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--memory-limit", default="1GiB", help="per worker")
    ap.add_argument("--n-test", type=int, default=100)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--in-memory-gigabytes", type=float, default=0.25)
    ap.add_argument("--out", default=str(RESULTS / "dask.json"))
    args = ap.parse_args()
    set_threads(1)  # one BLAS thread per worker process (inherited)

    from distributed import Client, LocalCluster

    p = args.features
    chunk_rows = int(args.chunk_mib * 2**20 / (8 * p))
    records = []
    sizes = [("in_memory_size", args.in_memory_gigabytes), ("large", args.gigabytes)]
    for label, gib in sizes:
        n = int(gib * 2**30 / (8 * p))
        X, y = _table(n, p, chunk_rows)
        X_test, y_test = (np.asarray(a) for a in _table(args.n_test, p, args.n_test, seed=1))
        model = None
        for workers in args.workers:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cluster = LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    memory_limit=args.memory_limit,
                    dashboard_address=None,
                )
                client = Client(cluster)
            client.run(_start_sampler)
            start_rss = sorted(round(v, 1) for v in client.run(_warm_up).values())
            try:
                if model is None:
                    t = time.perf_counter()
                    model = _as_fitted(*_newton_fit(X, y))
                    newton_s = time.perf_counter() - t
                    print(f"[{label}] Newton fit on {workers} worker(s): {newton_s:.1f} s")
                _peaks(client)  # restart the peaks
                with PeakRSS(0.02) as client_rss:
                    result, si, top = _explain(model, X, y, X_test, y_test, args.k)
                result.update(
                    case=label,
                    path="dask",
                    workers=workers,
                    memory_limit=args.memory_limit,
                    n_train=n,
                    n_features=p,
                    gigabytes=round(n * p * 8 / 2**30, 3),
                    n_test=args.n_test,
                    chunk_rows=chunk_rows,
                    chunk_mib=round(chunk_rows * p * 8 / 2**20, 1),
                    n_chunks=len(X.chunks[0]),
                    worker_start_mib=start_rss,
                    worker_peak_mib=_peaks(client),
                    client_peak_mib=round(client_rss.peak_mib, 1),
                    client_delta_mib=round(client_rss.delta_mib, 1),
                )
                print(result)
                records.append(result)
                if label == "in_memory_size" and workers == args.workers[0]:
                    dask_si, dask_top = si, top
            finally:
                client.close()
                cluster.close()
        if label == "in_memory_size":
            import dask

            with dask.config.set(scheduler="threads", num_workers=1):
                Xm, ym = dask.compute(X, y)
            with PeakRSS(0.02) as rss:
                result, si, top = _explain(model, Xm, ym, X_test, y_test, args.k)
            err = float(np.abs(si - dask_si).max() / np.abs(si).max())
            same = bool(np.array_equal(top.harmful_indices, dask_top.harmful_indices))
            result.update(
                case=label,
                path="in_memory",
                workers=None,
                n_train=n,
                n_features=p,
                gigabytes=round(n * p * 8 / 2**30, 3),
                process_peak_mib=round(rss.peak_mib, 1),
                process_delta_mib=round(rss.delta_mib, 1),
                self_influence_rel_diff_vs_dask=err,
                same_harmful_indices_as_dask=same,
            )
            print(result)
            records.append(result)
            del Xm, ym

    payload = {
        "benchmark": "dask",
        "date": now(),
        "command": "python benchmarks/bench_dask.py " + " ".join(sys.argv[1:]),
        "machine": machine_info(),
        "records": records,
    }
    write_json(Path(args.out), payload)
    print(table(records))


def table(records) -> str:
    lines = [
        "| table | path | workers | fit (s) | self_influence (s) | most_influential (s) "
        "| peak memory per worker (MiB; at start) | client peak (MiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        size = f"{r['gigabytes']:.2f} GiB ({r['n_train']:,} x {r['n_features']})"
        if r["path"] == "dask":
            mem = ", ".join(f"{v:.0f}" for v in r["worker_peak_mib"])
            mem += " (" + ", ".join(f"{v:.0f}" for v in r["worker_start_mib"]) + ")"
            client = f"{r['client_peak_mib']:.0f}"
            workers = f"{r['workers']} x {r['memory_limit']}"
        else:
            mem, client, workers = "-", f"{r['process_peak_mib']:.0f} (one process)", "-"
        lines.append(
            f"| {size} | {r['path']} | {workers} | {r['fit_s']:.1f} | "
            f"{r['self_influence_s']:.1f} | {r['most_influential_s']:.1f} | {mem} | {client} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
