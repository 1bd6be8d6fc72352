"""skinfluence vs pyDVL, pyinfluence and naive leave-one-out retraining.

Binary ``LogisticRegression(C=1, fit_intercept=False)`` on dense Gaussian data
and on TF-IDF-like sparse CSR data; 500 test rows; the full
``n_test x n_train`` influence matrix. Every library runs in its own process
(``_worker.py``) with a time limit and a 16 GiB RSS cap, so a failure (time
out, out of memory, unsupported input) is recorded as a result. Before any
time is compared, each library's matrix is converted to skinfluence's
convention and checked against skinfluence exact on 2000 random training
columns (``agreement``).

Also measured here: the "physical limit" case (n=100k, p=200 with intercept:
skinfluence exact vs the NumPy matrix products it must do) and a top-k query
(``most_influential``) over one million training rows with bounded memory.

Usage::

    python benchmarks/bench_peers.py            # full run, writes results/peers.json
    python benchmarks/bench_peers.py --quick    # small cases only, results/peers_quick.json
    python benchmarks/bench_peers.py --only floor topk
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    PYDVL_PYTHON,
    RESULTS,
    agreement,
    machine_info,
    now,
    run_worker,
    set_threads,
    write_json,
)

#: scaling of each library relative to skinfluence's I (documented in doc/benchmarks.md)
MAPPINGS = {
    "skinfluence": "I[j, i] = -grad L_test_j^T H^{-1} (C grad loss_i), "
    "H = Hessian of C sum loss + ||w||^2/2",
    "pyinfluence": "InfluenceFunctions(mode='loss', damping=0).explain = -I "
    "(mean-loss Hessian H/(C n), scores divided by n, positive = helpful)",
    "pydvl": "influences(mode=Up) = -n I (mean-loss Hessian (1/n) sum h_i + lambda I with "
    "lambda = 1/(C n); no division by n)",
    "loo": "refit without row i: test-loss change Delta L_j ~ -I[j, i]",
}

LIBS = {
    "skinfluence_exact": {"task": "skinfluence", "solver": "exact"},
    "skinfluence_cg": {"task": "skinfluence", "solver": "cg"},
    "skinfluence_lissa": {"task": "skinfluence", "solver": "lissa"},
    "pyinfluence": {"task": "pyinfluence"},
    "pydvl_direct": {"task": "pydvl", "method": "direct", "python": PYDVL_PYTHON},
    "pydvl_cg": {"task": "pydvl", "method": "cg", "python": PYDVL_PYTHON},
    "pydvl_lissa": {
        "task": "pydvl",
        "method": "lissa",
        "python": PYDVL_PYTHON,
        "maxiter": 100,
        "scale": 1.0,
    },
    "loo": {"task": "loo", "k": 3},
}

ALL = list(LIBS)
NO_LOO = [k for k in ALL if k != "loo"]
SPARSE_BIG = ["skinfluence_cg", "pyinfluence", "pydvl_cg"]


def dense(n, p, libs=ALL, timeout=240, **extra):
    return {
        "name": f"dense n={n:.0e} p={p}",
        "case": {"n": n, "p": p, "seed": 0, "fit_intercept": False, "C": 1.0, **extra},
        "libs": libs,
        "timeout": timeout,
    }


def sparse(n, p, libs, timeout=240, nnz=60):
    return {
        "name": f"sparse n={n:.0e} p={p:.0e} nnz/row={nnz}",
        "case": {
            "n": n,
            "p": p,
            "sparse": True,
            "nnz": nnz,
            "seed": 0,
            "fit_intercept": False,
            "C": 1.0,
        },
        "libs": libs,
        "timeout": timeout,
        "batch_size": 1000,
    }


SMALL = NO_LOO + ["loo"]
MID = [k for k in ALL if k != "pydvl_lissa" and k != "skinfluence_lissa"]

CASES_QUICK = [
    dense(1_000, 10),
    dense(10_000, 100, libs=[k for k in ALL if k != "pydvl_lissa"], timeout=120),
    sparse(10_000, 10_000, ["skinfluence_exact", "skinfluence_cg", "pyinfluence"], timeout=120),
]

CASES_FULL = [
    dense(1_000, 10, libs=SMALL),
    dense(10_000, 100, libs=[k for k in ALL if k != "pydvl_lissa"], timeout=180),
    dense(10_000, 1000, libs=MID, timeout=180),
    dense(100_000, 100, libs=MID, timeout=180),
    dense(100_000, 1000, libs=[k for k in MID if k != "loo"], timeout=150),
    dense(5_000, 10_000, libs=["skinfluence_exact", "pyinfluence", "pydvl_direct"], timeout=200),
    dense(
        1_000_000,
        100,
        libs=["skinfluence_exact", "skinfluence_cg", "pyinfluence", "pydvl_direct", "pydvl_cg"],
        timeout=200,
    ),
    sparse(
        100_000,
        10_000,
        ["skinfluence_exact", "skinfluence_cg", "pyinfluence", "pydvl_cg"],
        timeout=200,
    ),
    sparse(100_000, 100_000, SPARSE_BIG, timeout=150),
]


#: libraries that timed out, by data kind: cases at least as large in both n and p skip them
TIMED_OUT: dict = {}


def run_case(spec, root, log):
    name = spec["name"]
    wd = Path(root) / name.replace(" ", "_").replace("=", "").replace("/", "")
    case = spec["case"]
    out = {"name": name, "case": case, "started": now(), "results": {}}
    log(f"== {name}: prepare")
    prep = run_worker({"task": "prepare", "case": case, "workdir": str(wd)}, timeout=1200)
    out["prepare"] = prep
    if prep.get("status") != "ok":
        log(f"   prepare failed: {prep}")
        return out
    log(f"   sklearn fit {prep['sklearn_fit_s']:.1f}s")
    kind = "sparse" if case.get("sparse") else "dense"
    for lib in spec["libs"]:
        prior = TIMED_OUT.get((kind, lib))
        if prior and prior[0] <= case["n"] and prior[1] <= case["p"]:
            out["results"][lib] = {
                "status": "skipped",
                "detail": f"timed out on the smaller case {prior[2]}",
            }
            log(f"   {lib:18s} skipped (timed out on {prior[2]})")
            continue
        opts = dict(LIBS[lib])
        python = opts.pop("python", None)
        wspec = {"case": case, "workdir": str(wd), "name": lib, **opts}
        if case["n"] * case["p"] <= 1_000_000 and lib not in ("pydvl_lissa", "loo"):
            wspec["repeats"] = 3  # cheap: best of 3 (the machine is shared)
        if "batch_size" in spec:
            wspec["batch_size"] = spec["batch_size"]
        if lib.startswith("pyinfluence") and case.get("sparse"):
            wspec["densify"] = True
        t0 = time.perf_counter()
        res = run_worker(wspec, timeout=spec["timeout"], python=python)
        if not lib.startswith("pydvl"):
            res.pop("blas", None)
        res["load_average_after"] = list(__import__("os").getloadavg())
        out["results"][lib] = res
        if res.get("status") == "timeout":
            TIMED_OUT.setdefault((kind, lib), (case["n"], case["p"], name))
        msg = res.get("status")
        if msg == "ok" and "total_s" in res:
            msg = (
                f"ok {res['total_s']:.2f}s "
                f"(fit {res['fit_s']:.2f} + infl {res['influence_s']:.2f})"
            )
        elif msg == "ok":
            msg = f"ok per-row {res.get('per_row_s', float('nan')):.2f}s"
        else:
            msg = f"{msg} {res.get('detail', '')[:200]}"
        log(f"   {lib:18s} {msg}  [{time.perf_counter() - t0:.0f}s wall]")
    # agreement with the reference (skinfluence exact, else cg)
    ref_name = next(
        (k for k in ("skinfluence_exact", "skinfluence_cg") if (wd / f"{k}.npy").exists()),
        None,
    )
    out["reference"] = ref_name
    if ref_name:
        ref = np.load(wd / f"{ref_name}.npy")
        cols = np.load(wd / "cols.npy")
        for lib, res in out["results"].items():
            f = wd / f"{lib}.npy"
            if lib == ref_name or not f.exists() or res.get("status") != "ok":
                continue
            other = np.load(f)
            if lib == "loo":
                rows = np.load(wd / "loo_rows.npy")
                res["agreement"] = agreement(ref[:, np.searchsorted(cols, rows)], other)
            else:
                res["agreement"] = agreement(ref, other)
    out["finished"] = now()
    shutil.rmtree(wd, ignore_errors=True)
    return out


def run_floor(root, log, profile=True):
    case = {"n": 100_000, "p": 200, "seed": 0, "fit_intercept": True, "C": 1.0}
    wd = Path(root) / "floor"
    log("== physical limit: n=1e5 p=200 (intercept), 500 test rows")
    prep = run_worker({"task": "prepare", "case": case, "workdir": str(wd)}, timeout=600)
    res = run_worker(
        {"task": "floor", "case": case, "workdir": str(wd), "repeats": 5, "profile": profile},
        timeout=900,
    )
    res["prepare"] = prep
    res["case"] = case
    res["load_average_after"] = list(__import__("os").getloadavg())
    if res.get("status") == "ok":
        log(
            f"   skinfluence {res['skinfluence_s']:.2f}s  floor {res['floor_s']:.2f}s  "
            f"ratio {res['ratio']:.2f}"
        )
    else:
        log(f"   {res}")
    shutil.rmtree(wd, ignore_errors=True)
    return res


def run_topk(root, log, n=1_000_000, p=100):
    case = {"n": n, "p": p, "seed": 0, "fit_intercept": True, "C": 1.0}
    wd = Path(root) / "topk"
    log(f"== top-k: most_influential over n={n:.0e} p={p}, 500 test rows")
    prep = run_worker({"task": "prepare", "case": case, "workdir": str(wd)}, timeout=900)
    res = run_worker(
        {
            "task": "topk",
            "case": case,
            "workdir": str(wd),
            "k": 10,
            "max_block_bytes": 64 * 2**20,
        },
        timeout=900,
    )
    res["prepare"] = prep
    res["case"] = case
    if res.get("status") == "ok":
        log(
            f"   fit {res['fit_s']:.1f}s query {res['most_influential_s']:.1f}s "
            f"query peak RSS +{res['query_peak_rss_delta_mib']:.0f} MiB "
            f"(full matrix {res['full_matrix_would_need_mib']:.0f} MiB)"
        )
    else:
        log(f"   {res}")
    shutil.rmtree(wd, ignore_errors=True)
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small cases only (~3 min)")
    ap.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="subset of: peers floor topk (default: all)",
    )
    ap.add_argument("--cases", nargs="*", type=int, default=None, help="indices of peer cases")
    ap.add_argument("--out", default=None)
    ap.add_argument("--timeout", type=float, default=None, help="override each case's limit")
    ap.add_argument(
        "--libs", nargs="*", default=None, help="run only these libraries (with --update: merge)"
    )
    ap.add_argument(
        "--update",
        action="store_true",
        help="keep the other results already in the output file; replace only what runs",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS/OpenMP/torch threads of every worker (0 = library defaults); default 1: "
        "on a shared, oversubscribed machine multi-threaded OpenBLAS is erratic",
    )
    args = ap.parse_args(argv)
    parts = set(args.only or ["peers", "floor", "topk"])
    cases = CASES_QUICK if args.quick else CASES_FULL
    if args.cases is not None:
        cases = [cases[i] for i in args.cases]
    default = "peers_quick.json" if args.quick else "peers.json"
    out_path = Path(args.out) if args.out else RESULTS / default
    threads = set_threads(args.threads or None)
    t_start = time.perf_counter()
    payload = {
        "threads": threads,
        "benchmark": "bench_peers",
        "command": "python benchmarks/bench_peers.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "started": now(),
        "machine": machine_info(),
        "mappings": MAPPINGS,
        "memory_method": "peak_rss_*: psutil RSS sampled every 5 ms inside the worker around the "
        "timed calls (delta = peak minus RSS at entry, i.e. on top of the loaded data); "
        "child_peak_rss_mib: the parent's 50 ms RSS sampling of the whole worker process",
        "settings": {
            "pydvl": "float64 torch.nn.Linear(p, 1, bias=False) with the fitted weights, "
            "loss = binary_cross_entropy_with_logits (mean), regularization = 1/(C n), "
            "DataLoader batch 10000 (1000 for sparse, rows densified per batch), factors "
            "computed once (influence_factors) then influences_from_factors over 20000-row "
            "chunks; CgInfluence(solve_simultaneously=True, default rtol/atol); "
            "LissaInfluence(maxiter=100, scale=1.0, rtol=1e-6)",
            "pyinfluence": "InfluenceFunctions(mode='loss', damping=0.0); sparse X is rejected "
            "by pyinfluence, so it is densified (X.toarray()) before the call",
            "skinfluence": "InfluenceExplainer(model, solver=...) with default options",
            "loo": "scikit-learn refit per removed row (tol=1e-10, from scratch), 3 rows",
            "limits": "per-library time limit per case (see each case's timeout_s) and a "
            "16 GiB RSS cap",
        },
        "cases": [],
    }
    if args.update and out_path.exists():
        old = json.loads(out_path.read_text())
        ran = [c["name"] for c in cases] if "peers" in parts else []
        keep = {k: v for k, v in old.items() if k in ("physical_limit", "topk")}
        for key, part in (("physical_limit", "floor"), ("topk", "topk")):
            if part not in parts and key in keep:
                payload[key] = keep[key]
        payload["earlier_runs"] = old.get("earlier_runs", []) + [
            {k: old.get(k) for k in ("command", "started", "finished", "machine", "threads")}
        ]
        order = [c["name"] for c in CASES_FULL]
        previous = [c for c in old.get("cases", []) if c["name"] not in ran]
        payload["cases"] = previous
        payload["_old_cases"] = {c["name"]: c for c in old.get("cases", []) if c["name"] in ran}
        payload["_order"] = order
    root = tempfile.mkdtemp(prefix="skinfluence_bench_")

    def log(msg):
        print(f"[{time.perf_counter() - t_start:7.1f}s] {msg}", flush=True)

    try:
        if "floor" in parts:
            payload["physical_limit"] = run_floor(root, log)
            write_json(out_path, payload)
        if "topk" in parts:
            payload["topk"] = run_topk(root, log)
            write_json(out_path, payload)
        if "peers" in parts:
            for spec in cases:
                if args.libs:
                    spec = {**spec, "libs": [k for k in spec["libs"] if k in args.libs]}
                if args.timeout:
                    spec = {**spec, "timeout": args.timeout}
                res = run_case(spec, root, log)
                prev = payload.get("_old_cases", {}).get(spec["name"])
                if prev and args.libs:
                    merged = dict(prev["results"])
                    merged.update(res["results"])
                    res["results"] = {k: merged[k] for k in prev["results"] if k in merged}
                    res["results"].update(
                        {k: v for k, v in merged.items() if k not in res["results"]}
                    )
                    res["merged_from"] = {
                        "libs_rerun": list(spec["libs"]),
                        "earlier": {k: prev.get(k) for k in ("started", "finished")},
                    }
                res["timeout_s"] = spec["timeout"]
                res["command"] = payload["command"]
                payload["cases"].append(res)
                if "_order" in payload:
                    rank = {name: i for i, name in enumerate(payload["_order"])}
                    payload["cases"].sort(key=lambda c: rank.get(c["name"], len(rank)))
                write_json(out_path, payload)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        payload.pop("_order", None)
        payload.pop("_old_cases", None)
        payload["finished"] = now()
        payload["total_runtime_s"] = time.perf_counter() - t_start
        write_json(out_path, payload)
    log(f"wrote {out_path}")


if __name__ == "__main__":
    main()
