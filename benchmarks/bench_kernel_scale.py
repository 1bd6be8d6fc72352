"""Kernel ridge with tens of thousands of training rows: row-space CG.

For each ``n_train``: fit ``KernelRidge(kernel="rbf")`` on synthetic data
(10 standardised features, a smooth target plus noise), save it, and in a
fresh process explain it with ``InfluenceExplainer(solver=...)``: ``fit``
plus ``influence`` of all training rows on 10 test rows. Reported: seconds,
the process's peak resident memory (which includes Python,
NumPy, scikit-learn and the model: about 0.2 GiB before any work), CG iterations, and the
size of the ``n x n`` kernel matrix for comparison. Peak memory is the
child's ``VmHWM`` (Linux).

Methods: ``cg`` (row space: kernel values evaluated block by block, nothing
``n x n`` held) at every size; ``exact`` (exact kernel features, ``n x n``)
at the smallest size, as the reference for the agreement column; and the
agreement of the most influential row's estimate with one real refit.

Usage::

    python benchmarks/bench_kernel_scale.py            # n = 5000, 10000, 20000
    python benchmarks/bench_kernel_scale.py --sizes 2000 --quick

Writes ``benchmarks/results/kernel_scale.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from _common import RESULTS, run_child, save_records, vmhwm_mib  # noqa: E402

GAMMA, ALPHA, N_TEST, N_FEATURES = 0.1, 1.0, 10, 10


def make_data(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n + N_TEST, N_FEATURES))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] ** 2 - X[:, 2] * X[:, 3] + 0.3 * rng.normal(size=len(X))
    return X[:n], y[:n], X[n:], y[n:]


def child(model_path, solver, out_path):
    """One measurement in this (fresh) process."""
    from threadpoolctl import threadpool_limits

    from skinfluence import InfluenceExplainer

    with open(model_path, "rb") as fh:
        est, X, y, Xt, yt = pickle.load(fh)
    with threadpool_limits(1):
        t0 = time.perf_counter()
        exp = InfluenceExplainer(est, solver=solver).fit(X, y)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        influence = exp.influence(Xt, yt)
        influence_s = time.perf_counter() - t0
    np.save(out_path, influence)
    report = exp.solver_.report
    return {
        "solver": solver,
        "row_space": bool(exp.spec_.row_space),
        "fit_seconds": fit_s,
        "influence_seconds": influence_s,
        "peak_rss_mib": vmhwm_mib(),
        "iterations": report.iterations,
        "converged": report.converged,
    }


def run(sizes, quick):
    from sklearn.kernel_ridge import KernelRidge

    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            X, y, Xt, yt = make_data(n)
            t0 = time.perf_counter()
            est = KernelRidge(alpha=ALPHA, kernel="rbf", gamma=GAMMA).fit(X, y)
            model_s = time.perf_counter() - t0
            path = Path(tmp) / f"model_{n}.pkl"
            with open(path, "wb") as fh:
                pickle.dump((est, X, y, Xt, yt), fh)
            solvers = ["cg"] + (["exact"] if n == min(sizes) else [])
            results = {}
            for solver in solvers:
                out = Path(tmp) / f"influence_{n}_{solver}.npy"
                rec = run_child(__file__, [str(path), solver, str(out)], f"n={n}, solver={solver}")
                rec.update(
                    n_train=n, model_fit_seconds=model_s, kernel_matrix_mib=n * n * 8 / 2**20
                )
                results[solver] = np.load(out)
                records.append(rec)
            if "exact" in results:
                ref, got = results["exact"], results["cg"]
                rel = float(np.abs(got - ref).max() / np.abs(ref).max())
                records[-2]["max_rel_diff_vs_exact"] = rel
            if not quick:
                # one real refit: the largest estimate against retraining without the row
                influence = results["cg"]
                j, i = np.unravel_index(np.argmax(np.abs(influence)), influence.shape)
                keep = np.arange(n) != i
                refit = KernelRidge(alpha=ALPHA, kernel="rbf", gamma=GAMMA).fit(X[keep], y[keep])
                before = (yt[j] - est.predict(Xt[j : j + 1])[0]) ** 2
                after = (yt[j] - refit.predict(Xt[j : j + 1])[0]) ** 2
                rec = next(r for r in records if r["n_train"] == n and r["solver"] == "cg")
                rec["top_row_predicted"] = float(-influence[j, i])
                rec["top_row_actual"] = float(after - before)
            del est
    return records


def markdown(records):
    lines = [
        "| n_train | solver | space | explainer fit (s) | influence, 10 test rows (s) "
        "| CG iterations | peak RSS (MiB) | n x n kernel (MiB) | vs exact "
        "| top row: predicted / actual |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        vs = r.get("max_rel_diff_vs_exact")
        top = (
            f"{r['top_row_predicted']:.4g} / {r['top_row_actual']:.4g}"
            if "top_row_actual" in r
            else "—"
        )
        lines.append(
            f"| {r['n_train']} | {r['solver']} | {'rows' if r['row_space'] else 'features'} "
            f"| {r['fit_seconds']:.1f} | {r['influence_seconds']:.1f} | {r['iterations']} "
            f"| {r['peak_rss_mib']:.0f} | {r['kernel_matrix_mib']:.0f} "
            f"| {'—' if vs is None else f'{vs:.1e}'} | {top} |"
        )
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        print(json.dumps(child(*argv[1:4])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 10000, 20000])
    parser.add_argument("--quick", action="store_true", help="no refit check")
    parser.add_argument("--out", type=Path, default=RESULTS / "kernel_scale.json")
    args = parser.parse_args(argv)
    records = run(args.sizes, args.quick)
    save_records(args.out, records, markdown(records))


if __name__ == "__main__":
    main()
