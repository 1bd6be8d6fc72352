"""Does a low-rank inverse Hessian pay off? A measurement, not a solver.

Issue 3 asks for a low-rank option for very wide problems "if measurement
shows it pays off" (Schioppa et al. 2022: Lanczos / Arnoldi top eigenpairs).
This script measures it on the wide sparse case of the peer benchmark
(logistic regression on TF-IDF-like text, n = 100,000 rows, p = 10,000
features): the top-k eigenpairs of the Hessian from Lanczos on the same
matrix-free Hessian-vector products CG uses (``scipy.sparse.linalg.eigsh``),
then ``H^{-1} b ~ V diag(1/lambda) V^T b + (b - V V^T b) / lambda_tail`` with
``lambda_tail`` the smallest eigenvalue found (the projection-only variant,
without the tail term, is reported too). Reference: CG at ``tol=1e-10``.

Reported per k: time (eigen-decomposition + factors for 100 test rows) and
agreement of the influence on all training rows with the CG reference
(relative error and Pearson), next to CG's own time for the same factors.

Run ``python benchmarks/bench_lowrank.py``; writes
``benchmarks/results/lowrank.json``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine_info, make_sparse_text, now, write_json  # noqa: E402

N, P, N_TEST = 100_000, 10_000, 100
RANKS = (50, 200, 800)


def main():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # as in the peer benchmark
        run()


def run():
    from scipy.sparse.linalg import LinearOperator, eigsh
    from sklearn.linear_model import LogisticRegression

    from skinfluence import InfluenceExplainer
    from skinfluence.solvers import HessianOperator

    X, y, Xt, yt = make_sparse_text(N, P, seed=0, n_test=N_TEST)
    est = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(X, y)
    exp = InfluenceExplainer(est, solver="cg", solver_options={"tol": 1e-10}).fit(X, y)
    design = exp.spec_.make_design(Xt, exp.xp_)
    func, Y = exp._test_function("loss", exp._check_targets(yt, N_TEST, exp.spec_, "y"), N_TEST)
    G_test = exp._test_gradients(design, func, Y, slice(0, N_TEST))  # (P + 1, m)

    t0 = time.perf_counter()
    ref_factors = exp.solver_.solve(G_test)
    cg_seconds = time.perf_counter() - t0
    grads = exp._row_gradients
    reference = grads.dot(ref_factors)  # (n, m)

    op = HessianOperator(exp.state_, 0.0)
    n_params = op.n_params
    H = LinearOperator(
        (n_params, n_params), matvec=lambda v: op.matvec(v.reshape(-1, 1)).ravel(), dtype=float
    )
    rows = []
    for k in RANKS:
        t0 = time.perf_counter()
        lam, V = eigsh(H, k=k, which="LM", tol=1e-6)
        eig_seconds = time.perf_counter() - t0
        coeff = V.T @ G_test
        projected = V @ (coeff / lam[:, None])
        with_tail = projected + (G_test - V @ coeff) / lam.min()
        for variant, factors in (("top-k only", projected), ("top-k + tail", with_tail)):
            approx = grads.dot(factors)
            err = float(np.linalg.norm(approx - reference) / np.linalg.norm(reference))
            r = float(np.corrcoef(approx.ravel(), reference.ravel())[0, 1])
            rows.append(
                {
                    "k": k,
                    "variant": variant,
                    "seconds": eig_seconds,
                    "relative_error": err,
                    "pearson": r,
                    "lambda_max": float(lam.max()),
                    "lambda_k": float(lam.min()),
                }
            )
            print(
                f"k={k:4d} {variant:13s} {eig_seconds:7.1f} s  rel. error {err:.3g}  "
                f"Pearson {r:.4f}  (lambda {lam.max():.3g} .. {lam.min():.3g})",
                file=sys.stderr,
                flush=True,
            )
    print(f"CG reference: {cg_seconds:.1f} s for {N_TEST} test rows", file=sys.stderr)
    write_json(
        RESULTS / "lowrank.json",
        {
            "benchmark": "lowrank",
            "command": "python benchmarks/bench_lowrank.py",
            "started": now(),
            "machine": machine_info(),
            "n_train": N,
            "n_features": P,
            "n_test": N_TEST,
            "cg_seconds": cg_seconds,
            "cg_report": vars(exp.solver_.report),
            "results": rows,
        },
    )


if __name__ == "__main__":
    main()
