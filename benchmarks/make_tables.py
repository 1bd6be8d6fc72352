"""Write ``doc/benchmarks.md`` from ``benchmarks/results/{core,peers}.json``.

Usage::

    python benchmarks/make_tables.py [--core results/core.json] [--peers results/peers.json]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOC = HERE.parent / "doc" / "benchmarks.md"

PEER_LABELS = {
    "skinfluence_exact": "skinfluence exact",
    "skinfluence_cg": "skinfluence cg",
    "skinfluence_lissa": "skinfluence lissa",
    "pyinfluence": "pyinfluence (exact)",
    "pydvl_direct": "pyDVL DirectInfluence",
    "pydvl_cg": "pyDVL CgInfluence",
    "pydvl_lissa": "pyDVL LissaInfluence",
    "loo": "LOO retraining (sklearn)",
}
SK = ("skinfluence_exact", "skinfluence_cg", "skinfluence_lissa")
#: agreement needed to call two answers "equal" (max |diff| / max |ref|)
EQUAL = 1e-6


def fmt_s(x):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 0.1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def fmt_mib(x):
    if x is None:
        return "-"
    return f"{x / 1024:.1f} GiB" if x >= 1024 else f"{x:.0f} MiB"


def fmt_err(a):
    if not a:
        return "-"
    if "error" in a:
        return a["error"]
    e, r = a["max_abs_err_rel_to_max"], a["pearson"]
    return f"{e:.1e} / {r:.6f}" if r < 0.999999 else f"{e:.1e} / 1"


def status_text(r):
    st = r.get("status")
    if st == "ok":
        return "ok"
    if st == "timeout":
        return f"timeout (> {r.get('timeout_s', 0):.0f} s)"
    if st == "out_of_memory":
        return "out of memory (" + r.get("detail", "")[:60] + ")"
    if st == "skipped":
        return "not run: " + r.get("detail", "")
    if st == "unsupported":
        return "unsupported: " + r.get("detail", "")[:80]
    detail = (r.get("detail") or r.get("stderr_tail") or "").strip().splitlines()
    return f"{st}: {detail[-1][:100] if detail else ''}"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def equal(r):
    a = r.get("agreement")
    return r.get("status") == "ok" and a and a.get("max_abs_err_rel_to_max", 1) <= EQUAL


def best(results, names, need_equal=True, ref=None):
    """Fastest ok result among ``names`` (equal to the reference if asked)."""
    cands = []
    for k in names:
        r = results.get(k)
        if not r or r.get("status") != "ok" or "total_s" not in r:
            continue
        if need_equal and k != ref and not equal(r):
            continue
        cands.append((r["total_s"], k))
    return min(cands) if cands else None


# ---------------------------------------------------------------- sections
def machine_section(core, peers):
    src = peers or core
    m = src["machine"]
    v = m["versions"]

    def blas_of(entries):
        return "; ".join(
            f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')} kernel, "
            f"{b.get('num_threads')} thread(s))"
            for b in entries or []
            if b.get("user_api") == "blas"
        )

    sk_blas = ((peers or {}).get("physical_limit") or {}).get("blas") or m["blas"]
    dvl_blas = None
    for c in (peers or {}).get("cases", []):
        for k, r in c["results"].items():
            if k.startswith("pydvl") and r.get("blas"):
                dvl_blas = r["blas"]
    loads = []
    for d in (core, peers):
        if not d:
            continue
        items = []
        for c in d.get("results", []):
            items += list(c.get("solvers", {}).values())
        for c in d.get("cases", []):
            items += list(c.get("results", {}).values())
        loads += [x["load_average_after"][0] for x in items if "load_average_after" in x]
    load = f"{min(loads):.1f} - {max(loads):.1f}" if loads else "-"
    rows = [
        ["CPU", f"{m['cpu']}, {m['cpu_count']} cores"],
        ["Memory", f"{m['mem_total_gib']} GiB"],
        ["OS", m["platform"]],
        ["Python", m["python"]],
        [
            "Libraries",
            ", ".join(f"{k} {val}" for k, val in v.items() if val),
        ],
        ["pyDVL", "0.10.0 in its own virtualenv (it pins numpy<2), torch 2.14 CPU, float64"],
        ["BLAS in the skinfluence / pyinfluence workers (threadpoolctl)", blas_of(sk_blas)],
        ["BLAS in the pyDVL workers (threadpoolctl)", blas_of(dvl_blas) or "-"],
        ["OPENBLAS_CORETYPE", str(m["env"].get("OPENBLAS_CORETYPE"))],
        ["Threads used by every worker", json.dumps(src.get("threads"))],
        ["Load average (1 min) seen after each measurement", load],
        [
            "skinfluence commit (core; peers)",
            f"{str(core and core['machine'].get('git_commit'))[:12]}; "
            + ", ".join(
                sorted(
                    {
                        str((r.get("machine") or {}).get("git_commit"))[:12]
                        for r in (peers or {}).get("earlier_runs", []) + [peers or {}]
                    }
                )
            ),
        ],
        ["Runs", f"core: {core and core['started']}; peers: {peers and peers['started']}"],
    ]
    return table(["", ""], rows)


def peers_tables(peers):
    parts = []
    for case in peers["cases"]:
        res = case["results"]
        ref = case.get("reference")
        prep = case.get("prepare", {})
        c = case["case"]
        kind = "sparse CSR" if c.get("sparse") else "dense"
        head = (
            f"#### {case['name']}\n\n{kind}, n_train = {c['n']:,}, p = {c['p']:,}, "
            f"{c.get('n_test', 500)} test rows"
        )
        if prep.get("nnz"):
            head += f", {prep['nnz']:,} non-zeros"
        head += (
            f"; scikit-learn fit {fmt_s(prep.get('sklearn_fit_s'))} s (not counted). "
            f"Agreement reference: {PEER_LABELS.get(ref, ref)}."
        )
        sk = best(res, SK, ref=ref)
        rows = []
        for lib, r in res.items():
            label = PEER_LABELS.get(lib, lib)
            if lib == "loo" and r.get("status") == "ok":
                rows.append(
                    [
                        label,
                        "ok (extrapolated)",
                        "-",
                        f"{fmt_s(r['per_row_s'])} per row",
                        f"**{fmt_s(r['extrapolated_all_rows_s'])}** (n x per row)",
                        "-",
                        fmt_err(r.get("agreement")) + " (3 rows, vs first-order)",
                        f"{r['extrapolated_all_rows_s'] / sk[0]:.0f}x" if sk else "-",
                    ]
                )
                continue
            ok = r.get("status") == "ok"
            ratio = "-"
            if ok and sk and "total_s" in r:
                ratio = f"{r['total_s'] / sk[0]:.1f}x"
            rows.append(
                [
                    label,
                    status_text(r),
                    fmt_s(r.get("fit_s")) if ok else "-",
                    fmt_s(r.get("influence_s")) if ok else "-",
                    f"**{fmt_s(r.get('total_s'))}**" if ok else "-",
                    fmt_mib(r.get("peak_rss_delta_mib")) if ok else "-",
                    "reference" if lib == ref else fmt_err(r.get("agreement")),
                    ratio,
                ]
            )
        parts.append(
            head
            + "\n\n"
            + table(
                [
                    "library",
                    "status",
                    "fit [s]",
                    "influence [s]",
                    "total [s]",
                    "peak RSS (+)",
                    "max err / Pearson",
                    "time / skinfluence best",
                ],
                rows,
            )
        )
    return "\n\n".join(parts)


def floor_section(fl):
    if not fl or fl.get("status") != "ok":
        return f"Not available: {fl and status_text(fl)}"
    b = fl["best"]
    rows = [
        ["skinfluence `fit` (exact: Hessian + Cholesky)", fmt_s(b["sk_fit"])],
        ["skinfluence `influence` (500 x 100,000 matrix)", fmt_s(b["sk_influence"])],
        ["**skinfluence total**", f"**{fmt_s(fl['skinfluence_s'])}**"],
        ["numpy `Xa.T @ (d[:, None] * Xa)` (Hessian, gemm)", fmt_s(b["hessian"])],
        ["numpy `Xs.T @ Xs`, `Xs = sqrt(d) * Xa` (Hessian, syrk)", fmt_s(b["hessian_syrk"])],
        ["numpy `Xa @ F` (n x 500 products)", fmt_s(b["products_XF"])],
        ["numpy `F.T @ Xa.T` (500 x n products)", fmt_s(b["products_FtXt"])],
        ["**floor** = best Hessian + best products", f"**{fmt_s(fl['floor_s'])}**"],
        ["**ratio skinfluence / floor**", f"**{fl['ratio']:.2f}** (target <= 1.5)"],
    ]
    reps = len(fl["times"]["sk_fit"])
    out = table([f"step (best of {reps}, same process, interleaved)", "seconds"], rows)
    prof = fl.get("profile")
    if prof:
        tot = prof["total_s"]
        prow = [
            [f"`{r['function']}`", fmt_s(r["cumulative_s"]), f"{100 * r['share']:.0f}%"]
            for r in prof["top_cumulative"][:14]
        ]
        own = [
            [f"`{r['function']}`", fmt_s(r["own_s"]), f"{100 * r['share']:.0f}%"]
            for r in prof["top_own_time"][:10]
        ]
        out += (
            f"\n\nProfile of one `fit` + `influence` ({fmt_s(tot)} s under cProfile), "
            "skinfluence functions by cumulative time:\n\n"
            + table(["function", "cumulative [s]", "share"], prow)
            + "\n\nBy own time (where the time is actually spent):\n\n"
            + table(["function", "own [s]", "share"], own)
        )
    return out


def floor_analysis(fl):
    """Where skinfluence's time goes in the physical-limit case, read from its
    profile: the functions with the most time of their own, and the Hessian
    product against its SYRK floor."""
    prof = fl and fl.get("profile")
    if not prof:
        return ""
    tot = prof["total_s"]

    def cumulative(fragment):
        v = [r["cumulative_s"] for r in prof["top_cumulative"] if fragment in r["function"]]
        return max(v) if v else 0.0

    own = sorted(prof["top_own_time"], key=lambda r: -r["own_s"])[:3]
    listed = ", ".join(f"`{r['function']}` {100 * r['own_s'] / tot:.0f}%" for r in own)
    b = fl["best"]
    return (
        f"Reading the profile ({tot:.2f} s): `influence()` takes "
        f"{100 * cumulative('(influence)') / tot:.0f}% of the run and `fit` "
        f"{100 * cumulative('(fit)') / tot:.0f}%. Most time of their own: {listed}. "
        f"The Hessian `X.T @ (d[:, None] * X)` took {b['hessian']:.2f} s, where "
        f"`Xs.T @ Xs` with `Xs = sqrt(d) X` (SYRK, half the flops) took "
        f"{b['hessian_syrk']:.2f} s.\n"
    )


def topk_section(tk):
    if not tk or tk.get("status") != "ok":
        return f"Not available: {tk and status_text(tk)}"
    c = tk["case"]
    rows = [
        ["training rows x features", f"{c['n']:,} x {c['p']} (+ intercept)"],
        ["test rows, k", f"500, {10}"],
        ["`max_block_bytes`", fmt_mib(tk["max_block_bytes"] / 2**20)],
        ["X itself", fmt_mib(tk["X_mib"])],
        ["full influence matrix would need", fmt_mib(tk["full_matrix_would_need_mib"])],
        ["RSS before `fit` (data + model loaded)", fmt_mib(tk["rss_before_fit_mib"])],
        [
            "`fit` time / peak RSS above start",
            f"{fmt_s(tk['fit_s'])} s / +{fmt_mib(tk['fit_peak_rss_delta_mib'])}",
        ],
        [
            "`most_influential` time / peak RSS above start",
            f"{fmt_s(tk['most_influential_s'])} s / +{fmt_mib(tk['query_peak_rss_delta_mib'])}",
        ],
        ["process peak RSS", fmt_mib(tk["peak_rss_mib"])],
        [
            "top-k equal to argsort of full rows (4 test rows checked)",
            str(tk["topk_matches_full_rows"]),
        ],
    ]
    return table(["", ""], rows)


def core_table(core):
    rows = []
    for r in core["results"]:
        c = r["case"]
        prep = r.get("prepare", {})
        if prep.get("status") != "ok":
            rows.append([c["estimator"], f"{c['n']:,}", c["p"], status_text(prep)] + ["-"] * 6)
            continue
        e, g = r["solvers"].get("exact", {}), r["solvers"].get("cg", {})

        def cell(s, key):
            return fmt_s(s.get(key)) if s.get("status") == "ok" else status_text(s)

        it = g.get("solver_report", {}).get("iterations", "-")
        agree = g.get("agreement_vs_exact")
        rows.append(
            [
                c["estimator"],
                f"{c['n']:,}",
                f"{c['p']:,}",
                c.get("n_test", 500),
                cell(e, "fit_s"),
                cell(e, "influence_s"),
                f"**{cell(e, 'total_s')}**",
                fmt_mib(e.get("peak_rss_delta_mib")),
                (cell(g, "fit_s") + " + " + cell(g, "influence_s"))
                if g.get("status") == "ok"
                else status_text(g),
                f"**{cell(g, 'total_s')}** ({it} it)" if g.get("status") == "ok" else "-",
                f"{agree['max_abs_err_rel_to_max']:.0e}" if agree else "-",
            ]
        )
    return table(
        [
            "model",
            "n",
            "p",
            "test rows",
            "exact fit",
            "exact influence",
            "exact total",
            "exact peak RSS (+)",
            "cg fit + influence",
            "cg total",
            "cg vs exact (max err)",
        ],
        rows,
    )


def targets(peers):
    """Per-target verdicts from the peer results."""
    dvl, pyi, beyond = [], [], []
    for case in peers["cases"]:
        res, ref = case["results"], case.get("reference")
        sk = best(res, SK, ref=ref)
        if not sk:
            continue
        d = best(res, ("pydvl_direct", "pydvl_cg"), ref=ref)
        if d:
            dvl.append((case["name"], d[0] / sk[0], sk, d))
        pr = res.get("pyinfluence", {})
        if pr.get("status") == "ok" and equal(pr):
            pyi.append((case["name"], pr["total_s"] / sk[0], sk, pr["total_s"]))
        elif pr and pr.get("status") != "ok":
            beyond.append((case["name"], status_text(pr), sk))
    return dvl, pyi, beyond


def headline(peers):
    """skinfluence exact vs pyDVL DirectInfluence at the largest case both ran."""
    largest = fastest = None
    for case in peers["cases"]:
        res = case["results"]
        e, d = res.get("skinfluence_exact", {}), res.get("pydvl_direct", {})
        if e.get("status") == "ok" and equal(d):
            size = case["case"]["n"] * case["case"]["p"]
            item = (size, case, d["total_s"] / e["total_s"], e, d)
            if largest is None or size >= largest[0]:
                largest = item
            if fastest is None or item[2] > fastest[2]:
                fastest = item
    return (largest, fastest) if largest else None


def peer_commands(peers):
    """The bench_peers invocations that produced ``peers`` (``--update`` reruns merged)."""
    if not peers:
        return ["python benchmarks/bench_peers.py"]
    cmds = [r.get("command") for r in peers.get("earlier_runs", [])] + [peers["command"]]
    # a rerun of the same command replaced the earlier one's results: list each once
    return list(dict.fromkeys(c.strip() for c in cmds if c))


def dask_section(result) -> list[str]:
    """The Dask benchmark (``benchmarks/bench_dask.py``, ``results/dask.json``)."""
    from bench_dask import table as dask_table

    records = result["records"]
    dask_runs = [r for r in records if r["path"] == "dask"]
    largest = max(r["gigabytes"] for r in dask_runs)
    limit = dask_runs[0]["memory_limit"]
    chunk = dask_runs[0]["chunk_mib"]
    return [
        "## Dask: a table larger than a worker's memory\n",
        "Binary `LogisticRegression` on a table generated lazily on the workers "
        f"(`dask.array.random`, {dask_runs[0]['n_features']} features, row chunks of "
        f"{chunk:.0f} MiB), brought to its optimum by Newton iterations reduced over the "
        "chunks. `InfluenceExplainer.fit` on the Dask array (Hessian and gradient reduced "
        "on the workers), `self_influence()` computed, `most_influential` of "
        f"{records[0].get('n_test', 100)} test rows with k=10; workers are processes "
        f"with one thread and a {limit} memory limit. Peak memory is each worker "
        "process's RSS (psutil, every 20 ms) during those three calls, with its RSS "
        "after start-up in parentheses; the in-memory row is this process's RSS "
        "holding the data.\n",
        f"Command: `{result['command']}`. The largest table run here is "
        f"{largest:.1f} GiB (this 2-core machine is shared)"
        + (
            ".\n"
            if largest >= 10
            else "; the issue's 10 GiB case is `python benchmarks/bench_dask.py "
            "--gigabytes 10 --workers 1 2 --memory-limit 2GiB`, not run here.\n"
        ),
        dask_table(records) + "\n",
        _dask_reading(result),
    ]


def _dask_reading(result) -> str:
    """What the Dask table shows, from its numbers."""
    records = result["records"]
    runs = [r for r in records if r["path"] == "dask"]
    small, large = min(r["gigabytes"] for r in runs), max(r["gigabytes"] for r in runs)
    peak = {
        g: max(max(r["worker_peak_mib"]) for r in runs if r["gigabytes"] == g)
        for g in (small, large)
    }
    one = {r["gigabytes"]: r for r in runs if r["workers"] == 1}
    two = {r["gigabytes"]: r for r in runs if r["workers"] == 2}
    ratio = max(
        (max(r["worker_peak_mib"]) - min(r["worker_start_mib"])) / r["chunk_mib"] for r in runs
    )
    total = {
        g: r["fit_s"] + r["self_influence_s"] + r["most_influential_s"] for g, r in one.items()
    }
    text = (
        f"Reading: a {large / small:.0f}x larger table moved the largest worker peak from "
        f"{peak[small]:.0f} to {peak[large]:.0f} MiB: worker memory is bounded by the "
        f"chunk size (the peak above start-up is {ratio:.1f} chunks of "
        f"{runs[0]['chunk_mib']:.0f} MiB), not by the table. "
        f"Time grows with the table ({total[small]:.0f} s to {total[large]:.0f} s for the "
        "three calls on one worker). `fit` includes gathering `y`, which regenerates `X` "
        "here (the labels are drawn from it), then the reduction pass."
    )
    if two:
        g = large if large in two else max(two)
        speed = (one[g]["fit_s"] + one[g]["self_influence_s"] + one[g]["most_influential_s"]) / (
            two[g]["fit_s"] + two[g]["self_influence_s"] + two[g]["most_influential_s"]
        )
        load = result["machine"]["load_average"][0]
        shared = (
            f"this machine has {result['machine']['cpu_count']} cores, shared with other "
            f"jobs (load average {load:.1f} at the end of the run)"
        )
        if speed > 1.2:
            text += (
                f" Two workers were {speed:.2f}x faster than one at {g:.2f} GiB; {shared}, "
                "so this is not a clean scaling measurement."
            )
        else:
            text += (
                f" Two workers took {1 / speed:.2f}x the time of one at {g:.2f} GiB: "
                f"{shared}, so the second worker had no core of its own; the measurement "
                "says nothing about scaling on idle cores."
            )
    mem = [r for r in records if r["path"] == "in_memory"]
    if mem:
        r = mem[0]
        d = one.get(r["gigabytes"])
        if d is not None:
            text += (
                f" In memory, the {r['gigabytes']:.2f} GiB table took "
                f"{r['fit_s'] + r['self_influence_s'] + r['most_influential_s']:.1f} s "
                f"against {total[r['gigabytes']]:.1f} s on one Dask worker (which "
                "regenerates the data in every pass) and a {:.0f} MiB process peak; "
                "self-influence agreed to {:.1g} (relative) and the top-10 rows were "
                "{}.".format(
                    r["process_peak_mib"],
                    r["self_influence_rel_diff_vs_dask"],
                    "the same" if r["same_harmful_indices_as_dask"] else "NOT the same",
                )
            )
    return text + "\n"


def write(core, peers, path=DOC, dask=None):
    L = []
    L.append("# Benchmarks\n")
    L.append(
        "Timings of skinfluence against the Python libraries that compute the same "
        "influence functions, on this project's development machine. Everything on "
        "this page is generated by `benchmarks/make_tables.py` from the JSON files in "
        "`benchmarks/results/` (which also hold per-run details: every repeat, solver "
        "reports, load averages, library versions, BLAS kernels).\n"
    )
    L.append("## How to reproduce\n")
    L.append(
        "```bash\n"
        "pip install -e '.[bench]' torch       # psutil, pyinfluence, torch\n"
        "python -m venv --system-site-packages benchmarks/.venv   # pyDVL pins numpy<2\n"
        "benchmarks/.venv/bin/pip install 'pydvl[influence]==0.10.0' 'numpy<2'\n"
        f"{core['command'] if core else 'python benchmarks/bench_core.py'}\n"
        + "".join(f"{c}\n" for c in peer_commands(peers))
        + "python benchmarks/make_tables.py\n"
        "```\n\n"
        "`--quick` runs a small subset of each script (a few minutes); "
        "`PYDVL_PYTHON=/path/to/python` points the pyDVL workers at another interpreter.\n"
    )
    L.append("## Machine\n")
    L.append(machine_section(core, peers) + "\n")
    L.append(
        "The machine is shared with other sessions: during most runs the load average on "
        "its 2 cores was far above 2 (range in the row above; the physical-limit and top-k "
        "sections were re-measured when it was quiet), so absolute times are inflated and "
        "noisy; ratios come from measurements taken back to back. Each library runs in "
        "a fresh process with one BLAS/OpenMP/torch thread (`--threads 1`, the default): "
        "under this contention 2-thread OpenBLAS was erratic (a skinny `X.T @ G` with "
        "p = 11, n = 10,000, 500 columns took 0.33 s with 2 threads and 0.006 s with 1). "
        "Cheap measurements (n * p <= 1e6) are the best of 3 repeats.\n"
    )
    if peers:
        hl = headline(peers)
        dvl, pyi, beyond = targets(peers)
        fl = peers.get("physical_limit")
        L.append("## Headline\n")
        if hl:
            (_, case, ratio, e, d), (_, bcase, bratio, be, bd) = hl

            def line(case, ratio, e, d):
                return (
                    f"{ratio:.1f}x at {case['name']} ({fmt_s(e['total_s'])} s vs "
                    f"{fmt_s(d['total_s'])} s for the full 500 x n matrix, max difference "
                    f"{d['agreement']['max_abs_err_rel_to_max']:.0e} of the largest entry)"
                )

            L.append(
                "**skinfluence exact vs pyDVL DirectInfluence (identical answers): "
                f"{bratio:.1f}x faster at best, {ratio:.1f}x at the largest size both ran.** "
                f"Best: {line(bcase, bratio, be, bd)}; largest: {line(case, ratio, e, d)}.\n"
            )
        L.append("## Targets\n")
        rows = []
        if dvl:
            lo = min(dvl, key=lambda t: t[1])
            hi = max(dvl, key=lambda t: t[1])
            met = sum(r >= 10 for _, r, _, _ in dvl)
            rows.append(
                [
                    ">= 10x faster than pyDVL at equal answers",
                    "met" if met == len(dvl) else f"met in {met} of {len(dvl)} cases",
                    f"pyDVL best (Direct or Cg) / skinfluence best: {lo[1]:.1f}x ({lo[0]}) "
                    f"to {hi[1]:.0f}x ({hi[0]})",
                ]
            )
        if pyi:
            lo = min(pyi, key=lambda t: t[1])
            met = sum(r >= 1 for _, r, _, _ in pyi)
            rows.append(
                [
                    "at least as fast as pyinfluence where both run",
                    "met" if met == len(pyi) else f"met in {met} of {len(pyi)} cases",
                    "pyinfluence / skinfluence best: "
                    + ", ".join(f"{r:.2f}x ({n})" for n, r, _, _ in pyi),
                ]
            )
        if beyond:
            rows.append(
                [
                    "runs sizes where pyinfluence does not",
                    "met" if beyond else "-",
                    "; ".join(
                        f"{n}: pyinfluence {s}, skinfluence {fmt_s(sk[0])} s"
                        for n, s, sk in beyond
                    ),
                ]
            )
        if fl and fl.get("status") == "ok":
            rows.append(
                [
                    "within 1.5x of the NumPy product floor (n=100k, p=200)",
                    "met" if fl["ratio"] <= 1.5 else "missed",
                    f"{fmt_s(fl['skinfluence_s'])} s vs floor {fmt_s(fl['floor_s'])} s: "
                    f"{fl['ratio']:.2f}x",
                ]
            )
        tk = peers.get("topk")
        if tk and tk.get("status") == "ok":
            q = tk["query_peak_rss_delta_mib"]
            budget = tk["max_block_bytes"] / 2**20
            verdict = "met" if q < tk["full_matrix_would_need_mib"] else "missed"
            if verdict == "met" and q > 4 * budget:
                verdict = "met, but bounded by a copy of X, not by `max_block_bytes`"
            rows.append(
                [
                    "top-k over 1e6 rows in bounded memory",
                    verdict,
                    f"query peak +{fmt_mib(q)} vs {fmt_mib(tk['full_matrix_would_need_mib'])} "
                    f"for the full matrix; X is {fmt_mib(tk['X_mib'])}, "
                    f"`max_block_bytes` {fmt_mib(budget)}; "
                    f"query {fmt_s(tk['most_influential_s'])} s",
                ]
            )
        L.append(table(["target", "verdict", "numbers"], rows) + "\n")
        L.append("## Conventions: how each library's numbers map to skinfluence's\n")
        L.append(
            "skinfluence's `influence()[j, i]` is `-grad L_test_j^T H^{-1} (C grad loss_i)` "
            "with `H` the Hessian of scikit-learn's own objective `C sum_i loss_i + "
            "||w||^2 / 2`: removing training row i changes test row j's log-loss by about "
            "`-I[j, i]`. Koh & Liang's `I_up,loss` uses the mean-loss Hessian, so "
            "`I = I_up,loss / n`. Every mapping below was read from the library's source and "
            "docs and then checked numerically on every case (the agreement column):\n"
        )
        L.append(
            table(
                ["library", "what it returns", "in skinfluence units"],
                [
                    [
                        "pyinfluence 0.5.0 `InfluenceFunctions(mode='loss', damping=0)``.explain`",
                        "`g_test^T H_mean^{-1} g_i / n`, `H_mean = X^T W X / n + I / (C n)`; "
                        "positive = helpful",
                        "`I = -explain(...)`",
                    ],
                    [
                        "pyDVL 0.10 `DirectInfluence` / `CgInfluence` / `LissaInfluence`"
                        "`.influences(mode=Up)`",
                        "`<H_dvl^{-1} grad l_test, grad l_i>` with `H_dvl` the mean Hessian of "
                        "the (mean-reduced) torch loss plus `regularization * I`",
                        "`I = -influences(...) / n` with `regularization = 1 / (C n)`",
                    ],
                    [
                        "leave-one-out retraining",
                        "`Delta L_j` = test loss after refitting without row i minus before",
                        "`I ~ -Delta L` (first order)",
                    ],
                ],
            )
            + "\n"
        )
        L.append(
            "pyDVL applies one `regularization` to every parameter while scikit-learn does "
            "not penalise the intercept, so the peer cases use `fit_intercept=False` (the "
            "physical-limit, top-k and core cases have an intercept). pyinfluence's default "
            "`damping=1e-5` changes the answer at these sizes (its penalty term is "
            "`1/(C n)`, 1e-5 at n = 1e5), so it runs with `damping=0`.\n"
        )
        L.append("## Peers: full influence matrix, binary logistic regression\n")
        L.append(
            "Times in seconds: `fit` = everything before test rows are known (Hessian, "
            "factorisation, pyDVL's `fit`), `influence` = the full 500 x n matrix "
            "(pyDVL: `influence_factors` once, then `influences_from_factors` over 20,000-"
            "row chunks, its fastest documented path). `peak RSS (+)` is the peak resident "
            "memory above what the process held before the timed calls (data and model "
            "already loaded), sampled with psutil every 5 ms. `max err` is "
            "max |I - I_ref| / max |I_ref| on 2000 random training columns x all test rows, "
            "after mapping to skinfluence's convention. The last column is the time relative "
            "to the fastest skinfluence solver whose answer equals the reference "
            f"(max err <= {EQUAL:g}). LiSSA in both libraries and LOO are approximations of "
            "a different kind: their agreement is reported, not required. pyDVL LiSSA "
            "runs 100 iterations (its default 1000 would take hours here). pyinfluence "
            "rejects sparse input (`TypeError`), so on the sparse cases it gets "
            "`X.toarray()`; pyDVL gets the CSR rows densified one 1000-row batch at a "
            "time by its DataLoader.\n"
        )
        L.append(peers_tables(peers) + "\n")
        L.append("## Physical limit: n = 100,000, p = 200 (+ intercept), 500 test rows\n")
        L.append(
            "All the work an exact influence matrix needs is two matrix products: the "
            "Hessian `X^T D X` (n p^2) and the test factors (p x 500) against every "
            "training row (n p 500). Both were timed with NumPy in the same process, "
            "interleaved with skinfluence's runs.\n"
        )
        L.append(floor_section(fl) + "\n")
        L.append(floor_analysis(fl))
        L.append("## Top-k over one million training rows\n")
        L.append(
            "`most_influential(X_test, y_test, k=10)` never holds the 500 x 1,000,000 "
            "matrix: it walks blocks of at most `max_block_bytes` and keeps the running "
            "top k.\n"
        )
        L.append(topk_section(peers.get("topk")) + "\n")
        tk = peers.get("topk")
        if tk and tk.get("status") == "ok":
            n = tk["case"]["n"]
            per = max(1, tk["max_block_bytes"] // (8 * n))
            passes = -(-500 // per)
            L.append(
                f"Memory stays far below the full matrix, but not near `max_block_bytes`: "
                f"`_blocks` sizes test blocks as `max_block_bytes / (8 n_train)` = {per} "
                f"test rows, so the query makes {passes} passes over all training rows, and "
                "each pass copies the whole (intercept-augmented) X with "
                "`RowGradients.take(np.arange(...))` because one training block holds all "
                "rows. That copy is the peak above, and the passes are most of the time "
                "(one pass with all 500 test rows would cost about one `influence` of 500 "
                "x n).\n"
            )
    if core:
        L.append("## Core: fit + influence over sizes\n")
        L.append(
            "`InfluenceExplainer(model, solver=...)`, `fit(X, y)` then `influence(X_test, "
            "y_test)` for 500 test rows, dense Gaussian X with intercept. `LogisticRegression"
            "(C=1)` and `Ridge(alpha=1)`. Seconds; cg's iteration count and its largest "
            "difference from exact (relative to the largest entry) alongside.\n"
        )
        L.append(core_table(core) + "\n")
    if dask:
        L.extend(dask_section(dask))
    L.append("## Notes\n")
    L.append(
        "- **Installing the peers.** `pip install torch` from PyPI pulls the CUDA build "
        "with its `nvidia-*` wheels (several GB); it installs and runs on CPU. pyDVL "
        "0.10 requires `numpy<2`, which would downgrade this project's NumPy 2, so it "
        "lives in `benchmarks/.venv` (a virtualenv with `--system-site-packages` that "
        "reuses torch, SciPy and scikit-learn); its workers run under that interpreter, "
        "with NumPy 1.26 and its own OpenBLAS (recorded per result under `blas`).\n"
        "- **Equal models.** Every library explains the same fitted scikit-learn model; "
        "pyDVL gets a float64 `torch.nn.Linear` holding the same weights. Each worker "
        "regenerates the data from a seed and checks a checksum against the prepared "
        "data before timing.\n"
        "- **Leave-one-out** is timed for 3 rows (one scikit-learn refit each, tol=1e-10, "
        "no warm start) and extrapolated to all n rows: that is the cost of the exact "
        "answer the influence matrix approximates to first order. Its agreement column "
        "compares the measured test-loss changes of those rows with the influence values.\n"
        "- **Failures are results.** Time limits, the 16 GiB RSS cap, unsupported inputs "
        "and errors are recorded with the library's message in the JSON; a library that "
        "timed out is not run again on larger cases of the same kind.\n"
        "- **Memory** columns are psutil RSS samples (every 5 ms in the worker) minus the "
        "RSS before the timed calls; the parent also samples each worker's whole-process "
        "RSS every 50 ms (`child_peak_rss_mib` in the JSON), which includes the data.\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(L))
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--core", default=str(HERE / "results" / "core.json"))
    ap.add_argument("--peers", default=str(HERE / "results" / "peers.json"))
    ap.add_argument("--dask", default=str(HERE / "results" / "dask.json"))
    ap.add_argument("--out", default=str(DOC))
    args = ap.parse_args(argv)
    core = json.loads(Path(args.core).read_text()) if Path(args.core).exists() else None
    peers = json.loads(Path(args.peers).read_text()) if Path(args.peers).exists() else None
    dask = json.loads(Path(args.dask).read_text()) if Path(args.dask).exists() else None
    print(f"wrote {write(core, peers, Path(args.out), dask)}")


if __name__ == "__main__":
    main()
