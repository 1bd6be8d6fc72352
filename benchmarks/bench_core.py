"""Core timings of skinfluence: ``fit`` + ``influence`` over a grid of sizes.

For ``LogisticRegression(C=1)`` and ``Ridge(alpha=1)`` (both with intercept)
on dense Gaussian data: n in {1e3, 1e4, 1e5} training rows, p in {10, 100,
1000} features, 500 test rows (100 where n p >= 1e8), solvers ``exact`` and
``cg``. Each solver runs in its own process with a time limit; cg's matrix is
compared with exact's on 2000 random training columns (``agreement_vs_exact``:
max |cg - exact| / max |exact| and Pearson).

Usage::

    python benchmarks/bench_core.py            # full grid, writes results/core.json
    python benchmarks/bench_core.py --quick    # n <= 1e4, results/core_quick.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    RESULTS,
    agreement,
    machine_info,
    now,
    run_worker,
    set_threads,
    write_json,
)

NS = [1_000, 10_000, 100_000]
PS = [10, 100, 1000]
ESTIMATORS = ["logistic", "ridge"]
SOLVERS = ["exact", "cg"]


def run_case(est, n, p, root, timeout, log):
    # the largest cases explain 100 test rows (cg costs ~2 n p n_test per iteration)
    n_test = 500 if n * p < 100_000_000 else 100
    case = {"n": n, "p": p, "seed": 0, "estimator": est, "n_test": n_test}
    wd = Path(root) / f"{est}_{n}_{p}"
    repeats = 3 if n * p <= 1_000_000 else 1
    out = {"case": case, "repeats": repeats, "solvers": {}}
    prep = run_worker({"task": "prepare", "case": case, "workdir": str(wd)}, timeout=900)
    out["prepare"] = prep
    if prep.get("status") != "ok":
        log(f"{est:8s} n={n:>7d} p={p:>5d}  prepare failed: {prep}")
        return out
    for solver in SOLVERS:
        spec = {
            "task": "skinfluence",
            "case": case,
            "workdir": str(wd),
            "solver": solver,
            "name": solver,
            "repeats": repeats,
        }
        res = run_worker(spec, timeout=timeout)
        res["load_average_after"] = list(os.getloadavg())
        out["solvers"][solver] = res
    ref = wd / "exact.npy"
    for solver, res in out["solvers"].items():
        if solver != "exact" and ref.exists() and (wd / f"{solver}.npy").exists():
            res["agreement_vs_exact"] = agreement(np.load(ref), np.load(wd / f"{solver}.npy"))
    shutil.rmtree(wd, ignore_errors=True)
    s = "  ".join(
        f"{k}: {v['total_s']:.3f}s" if v.get("status") == "ok" else f"{k}: {v.get('status')}"
        for k, v in out["solvers"].items()
    )
    log(f"{est:8s} n={n:>7d} p={p:>5d}  {s}")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="n <= 1e4 only (~1 min)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per solver and case")
    ap.add_argument("--out", default=None)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS/OpenMP/torch threads of every worker (0 = library defaults); default 1: "
        "on a shared, oversubscribed machine multi-threaded OpenBLAS is erratic",
    )
    args = ap.parse_args(argv)
    ns = [n for n in NS if n <= 10_000] if args.quick else NS
    default = "core_quick.json" if args.quick else "core.json"
    out_path = Path(args.out) if args.out else RESULTS / default
    threads = set_threads(args.threads or None)
    t_start = time.perf_counter()
    payload = {
        "threads": threads,
        "benchmark": "bench_core",
        "command": "python benchmarks/bench_core.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "started": now(),
        "machine": machine_info(),
        "settings": {
            "estimators": {
                "logistic": "LogisticRegression(C=1, tol=1e-8, fit_intercept=True), binary",
                "ridge": "Ridge(alpha=1, fit_intercept=True)",
            },
            "data": "X ~ N(0, 1) (n + 500, p); logistic labels from a random linear model; "
            "ridge targets linear + N(0, 1) noise",
            "n_test": "500 (100 where n * p >= 1e8)",
            "timed": "InfluenceExplainer(model, solver=s).fit(X, y) and .influence(X_test, "
            "y_test) (the full 500 x n matrix); min over repeats (3 for n*p <= 1e6, else 1)",
            "memory": "peak_rss_delta_mib: psutil RSS sampled every 5 ms during fit + "
            "influence, minus the RSS before (data and model already resident)",
        },
        "results": [],
    }

    def log(msg):
        print(f"[{time.perf_counter() - t_start:7.1f}s] {msg}", flush=True)

    root = tempfile.mkdtemp(prefix="skinfluence_core_")
    try:
        for est in ESTIMATORS:
            for n in ns:
                for p in PS:
                    payload["results"].append(run_case(est, n, p, root, args.timeout, log))
                    write_json(out_path, payload)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    payload["finished"] = now()
    payload["total_runtime_s"] = time.perf_counter() - t_start
    write_json(out_path, payload)
    log(f"wrote {out_path}")


if __name__ == "__main__":
    main()
