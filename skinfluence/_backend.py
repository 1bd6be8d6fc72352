"""A small array backend: one numerical code path for NumPy, CuPy and any
array-API namespace.

The numerical core (objectives and inverse-Hessian solvers) is written against
an array namespace ``xp`` obtained from :func:`get_namespace`. The few
operations the array API standard does not cover -- triangular solves,
sparse-dense products, moving data between host and device -- live here, so
that NumPy-only calls cannot leak into the shared path.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from array_api_compat import array_namespace, is_cupy_namespace, is_numpy_namespace


def get_namespace(*arrays: Any):
    """Array namespace of ``arrays``; SciPy sparse matrices count as NumPy."""
    dense = [a for a in arrays if a is not None and not sp.issparse(a)]
    if not dense:
        return array_namespace(np.empty(0))
    return array_namespace(*dense)


def is_dask_collection(a) -> bool:
    """Whether ``a`` is a Dask collection (array, DataFrame, ...), by the
    Dask collection protocol: Dask itself is not imported."""
    return hasattr(type(a), "__dask_graph__")


def is_numpy(xp) -> bool:
    return is_numpy_namespace(xp)


def is_cupy(xp) -> bool:
    return is_cupy_namespace(xp)


def to_numpy(a) -> np.ndarray:
    """Copy ``a`` to a host NumPy array (CuPy, array-API or NumPy input)."""
    if isinstance(a, np.ndarray):
        return a
    if hasattr(a, "get"):  # CuPy
        return a.get()
    return np.asarray(a)


def asarray(a, xp, dtype=None):
    """``a`` (NumPy, list, scalar) as an array of namespace ``xp``."""
    if dtype is None:
        dtype = xp.float64
    if is_cupy(xp):
        return xp.asarray(a, dtype=dtype)
    if not is_numpy(xp) and isinstance(a, np.ndarray):
        # array-API namespaces accept buffers; a copy keeps them from sharing
        # the caller's memory.
        return xp.asarray(np.array(a, dtype=np.float64, copy=True), dtype=dtype)
    return xp.asarray(a, dtype=dtype)


def float_dtype(name: str, xp):
    """The floating dtype ``name`` (``"float32"`` or ``"float64"``) of ``xp``."""
    return getattr(xp, name)


def astype(a, dtype, xp):
    """``a`` at ``dtype``, without a copy where it already is; SciPy sparse
    matrices stay sparse."""
    if sp.issparse(a):
        return a if a.dtype == dtype else a.astype(dtype)
    if isinstance(a, np.ndarray):
        # the method, not ``xp.astype``: ``xp`` may be NumPy itself, which has
        # no ``astype`` function before NumPy 2.0
        return a.astype(dtype, copy=False)
    return xp.astype(a, dtype, copy=False)


def matmul(A, B, xp):
    """``A @ B`` where ``A`` may be a SciPy (or CuPy) sparse matrix."""
    if sp.issparse(A):
        return xp.asarray(A @ B)
    return A @ B


def sparse_t_matmul(A, B, xp):
    """``A.T @ B`` where ``A`` may be sparse."""
    if sp.issparse(A):
        return xp.asarray(A.T @ B)
    return A.T @ B


def is_sparse(A) -> bool:
    if sp.issparse(A):
        return True
    try:  # CuPy sparse, only when CuPy is already imported by the user
        import sys

        if "cupyx.scipy.sparse" in sys.modules:
            return sys.modules["cupyx.scipy.sparse"].issparse(A)
    except Exception:  # pragma: no cover
        pass
    return False


#: memory of the scaled row block behind one Gram-matrix update
GRAM_BLOCK_BYTES = 64 * 2**20


def weighted_gram(A, d, B, xp):
    """``A.T @ diag(d) @ B`` as a dense array; ``A`` and ``B`` may be sparse."""
    if sp.issparse(A) or sp.issparse(B):
        dA = sp.diags(to_numpy(d)) @ A if sp.issparse(A) else A * d[:, None]
        G = B.T @ dA
        G = G.T
        return xp.asarray(G.toarray() if sp.issparse(G) else G)
    symmetric = A is B and bool(xp.all(d >= 0))
    if symmetric:
        # S^T S with S = sqrt(d) A: BLAS recognises the symmetric product
        # (syrk), half the flops of a general A^T (d B)
        d = xp.sqrt(d)
    G = None
    # row blocks keep the scaled copy of the data to GRAM_BLOCK_BYTES
    for rows in block_slices(A.shape[0], rows_per_block(B.shape[1], GRAM_BLOCK_BYTES)):
        dB = d[rows, None] * B[rows, ...]
        part = dB.T @ dB if symmetric else A[rows, ...].T @ dB
        if G is None:
            G = part
        else:
            G += part
    if G is None:  # no rows
        G = xp.zeros((A.shape[1], B.shape[1]), dtype=B.dtype)
    return G


def column_sq_norms(A, d, xp):
    """``diag(A.T @ diag(d) @ A)`` without forming the Gram matrix."""
    if sp.issparse(A):
        return xp.asarray(np.asarray(A.multiply(A).T @ to_numpy(d)).ravel())
    return xp.sum(A * A * d[:, None], axis=0)


def take_rows(A, rows, xp):
    """Rows ``rows`` of ``A``: a ``slice`` (a view where the format allows) or
    integer indices (a copy). Lazily evaluated blocks (kernel matrices) pick
    their own rows."""
    if hasattr(A, "take_rows"):
        return A.take_rows(rows)
    if isinstance(rows, slice):
        # the trailing ellipsis: the array API indexes every axis explicitly
        return A[rows] if sp.issparse(A) else A[rows, ...]
    rows = np.asarray(to_numpy(rows), dtype=np.int64)
    if sp.issparse(A):
        return A[rows]
    return xp.take(A, xp.asarray(rows), axis=0)


def dense_rows(A, xp):
    if sp.issparse(A):
        return xp.asarray(A.toarray())
    if hasattr(A, "dense"):  # a lazily evaluated block
        return A.dense()
    return A


class CholeskyFactor:
    """Lower Cholesky factor ``L`` of a symmetric positive definite matrix.

    ``solve`` returns ``H^{-1} B``; ``half_solve`` returns ``L^{-1} B`` so
    that quadratic forms ``b^T H^{-1} b = ||L^{-1} b||^2`` cost one triangular
    solve.
    """

    def __init__(self, L, xp):
        self.L = L
        self.xp = xp

    def half_solve(self, B):
        xp = self.xp
        if is_numpy(xp):
            return scipy.linalg.solve_triangular(self.L, B, lower=True, check_finite=False)
        if is_cupy(xp):
            from cupyx.scipy.linalg import solve_triangular

            return solve_triangular(self.L, B, lower=True)
        return xp.linalg.solve(self.L, B)

    def solve(self, B):
        xp = self.xp
        if is_numpy(xp):
            return scipy.linalg.cho_solve((self.L, True), B, check_finite=False)
        if is_cupy(xp):
            from cupyx.scipy.linalg import solve_triangular

            Y = solve_triangular(self.L, B, lower=True)
            return solve_triangular(self.L, Y, lower=True, trans="T")
        Y = xp.linalg.solve(self.L, B)
        return xp.linalg.solve(self.L.T, Y)


def pivoted_cholesky(column, diagonal, tol: float, max_rank: int | None = None, check=None):
    """Partial pivoted Cholesky factor of a PSD matrix given by its columns.

    ``K ~ L L^T`` with ``L`` (n, r): at each step the column of the largest
    residual diagonal is evaluated (``column(j)``) and eliminated; stops when
    that residual is at most ``tol`` times the largest diagonal, or at
    ``max_rank``. Only ``r`` columns are ever evaluated and ``L`` grows with
    the rank, never ``n x n`` up front. ``check(residual_diagonal)`` is called
    after each step (e.g. to refuse indefinite matrices).

    Returns
    -------
    L : ndarray of shape (n, r)
    pivots : ndarray of shape (r,)
    residual : float, the largest residual diagonal left (0 at full rank)
    """
    d = np.array(diagonal, dtype=float)
    n = d.size
    rmax = min(n, max_rank or n)
    # with a rank cap its columns are allocated at once; without, as the rank grows
    L = np.zeros((n, rmax if max_rank else min(rmax, 256)))
    pivots = []
    stop = tol * d.max()
    for k in range(rmax):
        j = int(np.argmax(d))
        if d[j] <= stop:
            break
        if k == L.shape[1]:
            L = np.concatenate([L, np.zeros((n, min(rmax, 2 * k) - k))], axis=1)
        col = column(j) - L[:, :k] @ L[j, :k]
        L[:, k] = col / np.sqrt(d[j])
        d -= L[:, k] ** 2
        pivots.append(j)
        if check is not None:
            check(d)
    r = len(pivots)
    residual = float(d.max()) if r < n else 0.0
    return L[:, :r], np.asarray(pivots, dtype=int), residual


def cholesky(H, xp) -> CholeskyFactor | None:
    """Cholesky factor of ``H``, or ``None`` where ``H`` is not positive definite."""
    try:
        L = xp.linalg.cholesky(H)
    except Exception:  # NumPy and array-API namespaces raise LinAlgError
        return None
    # CuPy does not raise: a failed factorisation leaves NaN in L.
    if not bool(xp.all(xp.isfinite(L))):
        return None
    return CholeskyFactor(L, xp)


def eigh(H, xp):
    return xp.linalg.eigh(H)


def as_float(x) -> float:
    return float(to_numpy(x)) if not isinstance(x, float) else x


def nbytes_per_float(xp, dtype) -> int:
    return 4 if dtype == xp.float32 else 8


def block_slices(n: int, block: int):
    """Consecutive ``slice`` objects of at most ``block`` rows covering ``range(n)``."""
    block = max(1, int(block))
    for start in range(0, n, block):
        yield slice(start, min(n, start + block))


def rows_per_block(n_cols: int, budget_bytes: float, itemsize: int = 8) -> int:
    """Rows of an ``(rows, n_cols)`` float block that fit in ``budget_bytes``."""
    return max(1, int(budget_bytes // max(1, n_cols * itemsize)))


def ceil_div(a: int, b: int) -> int:
    return int(math.ceil(a / b))


def gpu_available() -> bool:
    """Whether CuPy imports and sees at least one CUDA device."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def cupy_namespace():
    """The CuPy namespace, or a clear error saying how to get one."""
    try:
        import cupy
    except ImportError as exc:
        raise ImportError(
            "device='gpu' needs CuPy: pip install 'skinfluence[gpu]' (CUDA 12) or "
            "pip install cupy-cuda13x for CUDA 13."
        ) from exc
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing
        raise RuntimeError(f"device='gpu' but CuPy cannot reach a CUDA device: {exc}") from exc
    if n == 0:
        raise RuntimeError("device='gpu' but no CUDA device is visible to CuPy.")
    return array_namespace(cupy.empty(0))
