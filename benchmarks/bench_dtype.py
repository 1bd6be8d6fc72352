"""``dtype="float32"`` against float64 on the CPU: time, memory, agreement.

For each case, fit ``LogisticRegression`` once, save it, and in a fresh
process per dtype run ``InfluenceExplainer(solver=..., dtype=...)``:
``fit``, ``influence`` of ``N_TEST`` test rows on every training row, and,
with the exact solver, ``self_influence`` (with CG it needs one solve per
training row, a different benchmark). Reported: seconds per step, the process's peak resident
memory (``VmHWM``, Linux; it includes the float64 training data the user
holds, about ``8 n p`` bytes for dense cases), solver iterations, and the
largest difference between the float32 and float64 results relative to the
largest float64 value. BLAS runs with its default threads (all cores; see
``meta.blas``): with one thread, this machine's OpenBLAS 0.3.31 runs
single-precision ``A.T @ B`` products about 3x slower than it can until a
``syrk`` call has run in the process (measured: 0.090 s before, 0.031 s
after, 0.071 s in float64), which would misattribute a library quirk to the
dtype.

Cases: dense Gaussian features with the exact solver (the Gram matrix
``X^T D X`` is the work) and with CG, and TF-IDF-like sparse rows with CG.

Usage::

    python benchmarks/bench_dtype.py            # the cases below
    python benchmarks/bench_dtype.py --quick    # 10x smaller

Writes ``benchmarks/results/dtype.json`` and prints a Markdown table.
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
from _common import (  # noqa: E402
    RESULTS,
    make_logistic,
    make_sparse_text,
    run_child,
    save_records,
    vmhwm_mib,
)

N_TEST = 100

CASES = [
    {"name": "dense-exact", "n": 200_000, "p": 256, "solver": "exact", "self": True},
    {"name": "dense-cg", "n": 200_000, "p": 256, "solver": "cg"},
    {"name": "sparse-cg", "n": 100_000, "p": 20_000, "solver": "cg", "sparse": True},
]


def data(case):
    if case.get("sparse"):
        return make_sparse_text(case["n"], case["p"], n_test=N_TEST)
    return make_logistic(case["n"], case["p"], n_test=N_TEST)


def child(model_path, solver, dtype, with_self, out_path):
    """One measurement in this (fresh) process."""
    import warnings

    from skinfluence import InfluenceExplainer

    with open(model_path, "rb") as fh:
        est, X, y, Xt, yt = pickle.load(fh)
    timings = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        exp = InfluenceExplainer(est, solver=solver, dtype=dtype).fit(X, y)
        timings["fit_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        influence = exp.influence(Xt, yt)
        timings["influence_seconds"] = time.perf_counter() - t0
        own = np.zeros(1)
        if with_self == "self":
            t0 = time.perf_counter()
            own = exp.self_influence()
            timings["self_influence_seconds"] = time.perf_counter() - t0
    np.savez(out_path, influence=influence, own=own)
    report = exp.solver_.report
    return {
        "dtype": dtype,
        **timings,
        "total_seconds": sum(timings.values()),
        "peak_rss_mib": vmhwm_mib(),
        "iterations": report.iterations,
        "converged": report.converged,
        "result_dtype": str(influence.dtype),
        "warnings": sorted({str(w.message)[:120] for w in caught}),
    }


def run(cases, quick):
    from sklearn.linear_model import LogisticRegression

    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            case = dict(case)
            if quick:
                case["n"] //= 10
            X, y, Xt, yt = data(case)
            est = LogisticRegression(C=1.0, tol=1e-10, max_iter=1000).fit(X, y)
            path = Path(tmp) / f"{case['name']}.pkl"
            with open(path, "wb") as fh:
                pickle.dump((est, X, y, Xt, yt), fh)
            del X, Xt
            results = {}
            for dtype in ("float64", "float32"):
                out = Path(tmp) / f"{case['name']}_{dtype}.npz"
                with_self = "self" if case.get("self") else "no-self"
                rec = run_child(
                    __file__,
                    [str(path), case["solver"], dtype, with_self, str(out)],
                    f"{case['name']}, {dtype}",
                )
                rec.update(case=case["name"], n_train=case["n"], n_params=case["p"] + 1)
                rec.update(solver=case["solver"], sparse=bool(case.get("sparse")))
                results[dtype] = np.load(out)
                records.append(rec)
            ref, got = results["float64"], results["float32"]
            single = records[-1]
            for key in ("influence", "own") if case.get("self") else ("influence",):
                scale = float(np.abs(ref[key]).max())
                diff = np.abs(got[key].astype(np.float64) - ref[key]).max()
                single[f"max_rel_diff_{key}"] = float(diff / scale)
            single["speedup"] = records[-2]["total_seconds"] / single["total_seconds"]
    return records


def markdown(records):
    lines = [
        "| case | n_train x n_params | solver | dtype | fit (s) | influence (s) "
        "| self_influence (s) | total (s) | speed-up | CG iterations | peak RSS (MiB) "
        "| vs float64 (influence / self) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        vs = "—"
        if "max_rel_diff_influence" in r:
            own = r.get("max_rel_diff_own")
            vs = f"{r['max_rel_diff_influence']:.1e} / " + ("—" if own is None else f"{own:.1e}")
        own_s = r.get("self_influence_seconds")
        speedup = f"{r['speedup']:.2f}x" if "speedup" in r else "—"
        lines.append(
            f"| {r['case']} | {r['n_train']} x {r['n_params']} | {r['solver']} | {r['dtype']} "
            f"| {r['fit_seconds']:.2f} | {r['influence_seconds']:.2f} "
            f"| {'—' if own_s is None else f'{own_s:.2f}'} | {r['total_seconds']:.2f} | {speedup} "
            f"| {r['iterations'] if r['solver'] == 'cg' else '—'} | {r['peak_rss_mib']:.0f} "
            f"| {vs} |"
        )
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        print(json.dumps(child(*argv[1:6])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10x fewer rows")
    parser.add_argument("--out", type=Path, default=RESULTS / "dtype.json")
    args = parser.parse_args(argv)
    records = run(CASES, args.quick)
    save_records(args.out, records, markdown(records))


if __name__ == "__main__":
    main()
