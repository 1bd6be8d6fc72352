"""The backend helpers with NumPy itself as the namespace.

Solvers that work on the host (row space, decremental path) hand the ``numpy``
module to the helpers, not ``array_api_compat``'s wrapped namespace. Before
NumPy 2.0 that module lacks the array-API functions (``astype``, ``concat``,
...), so a helper that calls one fails only on NumPy 1.x: the oldest-versions
job runs these on the lowest NumPy ``pyproject.toml`` allows. Each helper is
compared with the plain NumPy expression.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from array_api_compat import array_namespace

from skinfluence import _backend as B

NAMESPACES = {"numpy-module": np, "array-api-compat": array_namespace(np.empty(0))}


@pytest.fixture(params=list(NAMESPACES), ids=list(NAMESPACES))
def xp(request):
    return NAMESPACES[request.param]


def _data(seed=0, n=30, p=4):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, p)), rng.uniform(0.5, 2.0, n)


def test_astype(xp):
    A, _ = _data()
    A32 = B.astype(A, np.float32, xp)
    assert A32.dtype == np.float32
    np.testing.assert_allclose(A32, A, rtol=1e-6)
    assert B.astype(A, np.float64, xp) is A  # no copy at the same dtype
    S = sp.csr_matrix(A)
    assert B.astype(S, np.float64, xp) is S
    assert sp.issparse(B.astype(S, np.float32, xp))


def test_products(xp, monkeypatch):
    A, d = _data()
    C, _ = _data(seed=1, p=3)
    S = sp.csr_matrix(A)
    V = C[:4, :2]
    np.testing.assert_allclose(B.matmul(S, V, xp), A @ V, atol=1e-12)
    np.testing.assert_allclose(B.matmul(A, V, xp), A @ V, atol=1e-12)
    np.testing.assert_allclose(B.sparse_t_matmul(S, C, xp), A.T @ C, atol=1e-12)
    np.testing.assert_allclose(B.column_sq_norms(A, d, xp), (A * A * d[:, None]).sum(0))
    np.testing.assert_allclose(B.column_sq_norms(S, d, xp), (A * A * d[:, None]).sum(0))
    # several row blocks, the symmetric (syrk) and the general product
    monkeypatch.setattr(B, "GRAM_BLOCK_BYTES", 8 * A.shape[1] * 7)
    np.testing.assert_allclose(B.weighted_gram(A, d, A, xp), A.T @ (d[:, None] * A), atol=1e-12)
    np.testing.assert_allclose(B.weighted_gram(A, d, C, xp), A.T @ (d[:, None] * C), atol=1e-12)
    np.testing.assert_allclose(B.weighted_gram(S, d, A, xp), A.T @ (d[:, None] * A), atol=1e-12)


def test_rows(xp):
    A, _ = _data()
    np.testing.assert_array_equal(B.take_rows(A, slice(3, 9), xp), A[3:9])
    np.testing.assert_array_equal(B.take_rows(A, np.array([5, 0, 5]), xp), A[[5, 0, 5]])
    np.testing.assert_array_equal(B.dense_rows(sp.csr_matrix(A), xp), A)
    np.testing.assert_array_equal(B.asarray([1, 2], xp), np.array([1.0, 2.0]))


def test_factorisations(xp):
    A, d = _data()
    H = A.T @ (d[:, None] * A) + np.eye(A.shape[1])
    R = np.arange(8.0).reshape(4, 2)
    factor = B.cholesky(H, xp)
    np.testing.assert_allclose(factor.solve(R), np.linalg.solve(H, R), rtol=1e-10)
    W = factor.half_solve(R)  # ||L^{-1} r||^2 = r^T H^{-1} r
    np.testing.assert_allclose((W * W).sum(0), (R * np.linalg.solve(H, R)).sum(0), rtol=1e-10)
    assert B.cholesky(-H, xp) is None
    w, _ = B.eigh(H, xp)
    np.testing.assert_allclose(w, np.linalg.eigvalsh(H), rtol=1e-10)
