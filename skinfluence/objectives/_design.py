"""Designs: raw predictions that are linear in the parameters.

A design maps a flat parameter vector ``theta`` (``n_params``,) to raw
predictions ``z`` (``n, n_outputs``) block by block::

    z_ik = X^(k)_i . theta_k,     theta = [theta_0, ..., theta_{K-1}]

A linear model uses the same ``X^(k) = [X, 1]`` for every output (a
Kronecker design); ``HuberRegressor`` adds a scale block whose "feature" is a
column of ones; kernel models use ``X^(k) = [K(X, X_train), 1]``. The design
is everything the objective needs about features: forward products
(``A V``), backward products (``A^T G``), weighted Gram matrices
(``A^T D A``) and per-row gradient columns (``A_i^T t_i``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .._backend import (
    column_sq_norms,
    dense_rows,
    is_sparse,
    matmul,
    sparse_t_matmul,
    take_rows,
    weighted_gram,
)


def with_intercept(X, xp):
    """``[X, 1]``: ``X`` with a column of ones appended (sparse stays sparse)."""
    n = X.shape[0]
    if sp.issparse(X):
        return sp.hstack([X, np.ones((n, 1), dtype=X.dtype)], format="csr")
    return xp.concat([X, xp.ones((n, 1), dtype=X.dtype)], axis=1)


class BlockDesign:
    """Per-output feature blocks ``X^(k)``; identical blocks share memory.

    Parameters
    ----------
    blocks : list of arrays or sparse matrices, each of shape (n, p_k)
    xp : array namespace of the dense arrays
    """

    def __init__(self, blocks, xp):
        self.blocks = list(blocks)
        self.xp = xp
        self.sizes = [B.shape[1] for B in self.blocks]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int)
        self.n_samples = self.blocks[0].shape[0]
        self.n_outputs = len(self.blocks)
        self.n_params = int(self.offsets[-1])
        self.shared = all(B is self.blocks[0] for B in self.blocks)
        self.dense = not any(is_sparse(B) for B in self.blocks)

    def _split(self, V):
        return [V[self.offsets[k] : self.offsets[k + 1], ...] for k in range(self.n_outputs)]

    def take(self, rows) -> BlockDesign:
        """The design restricted to ``rows`` (an integer index array)."""
        xp = self.xp
        cache = {}
        out = []
        for B in self.blocks:
            key = id(B)
            if key not in cache:
                cache[key] = take_rows(B, rows, xp)
            out.append(cache[key])
        return BlockDesign(out, xp)

    def predict(self, theta):
        """``z = A theta``, shape ``(n, n_outputs)``."""
        xp = self.xp
        cols = [matmul(B, t, xp) for B, t in zip(self.blocks, self._split(theta), strict=True)]
        return xp.stack(cols, axis=1)

    def forward(self, V):
        """``A V`` for a block of parameter vectors ``V`` (n_params, m): shape (n, K, m)."""
        xp = self.xp
        parts = self._split(V)
        m = V.shape[1]
        if self.shared and self.n_outputs > 1:
            # one wide BLAS call instead of K narrow ones
            wide = matmul(self.blocks[0], xp.concat(parts, axis=1), xp)
            return xp.reshape(wide, (self.n_samples, self.n_outputs, m))
        cols = [matmul(B, P, xp) for B, P in zip(self.blocks, parts, strict=True)]
        return xp.stack(cols, axis=1)

    def backward(self, G):
        """``sum_i A_i^T g_i`` for per-row output vectors ``G`` (n, K): shape (n_params,)."""
        xp = self.xp
        return xp.concat(
            [sparse_t_matmul(B, G[:, k], xp) for k, B in enumerate(self.blocks)], axis=0
        )

    def backward_many(self, G):
        """``sum_i A_i^T G_i`` for ``G`` of shape (n, K, m): (n_params, m)."""
        xp = self.xp
        n, K, m = G.shape
        if self.shared and K > 1:
            # one wide product X^T [G_0 | ... | G_K-1] instead of K narrow ones
            wide = sparse_t_matmul(self.blocks[0], xp.reshape(G, (n, K * m)), xp)
            p = wide.shape[0]
            wide = xp.reshape(wide, (p, K, m))
            return xp.reshape(xp.permute_dims(wide, (1, 0, 2)), (K * p, m))
        return xp.concat(
            [sparse_t_matmul(B, G[:, k, :], xp) for k, B in enumerate(self.blocks)], axis=0
        )

    def rowwise(self, V):
        """``A_i v_i`` for one parameter vector per row, ``V`` (n, n_params): (n, K)."""
        xp = self.xp
        cols = []
        for k, B in enumerate(self.blocks):
            Vk = V[:, self.offsets[k] : self.offsets[k + 1]]
            cols.append(xp.vecdot(dense_rows(B, xp), Vk, axis=-1))  # no (n, p) temporary
        return xp.stack(cols, axis=1)

    def expand(self, T):
        """Per-row gradient columns ``[A_i^T t_i]_i``: shape (n_params, n).

        Dense by construction; call it on bounded blocks of rows.
        """
        xp = self.xp
        cols = []
        for k, B in enumerate(self.blocks):
            Bd = dense_rows(B, xp)
            cols.append((Bd * T[:, k : k + 1]).T)
        return xp.concat(cols, axis=0)

    def gram(self, D):
        """``sum_i A_i^T D_i A_i`` for per-row (K, K) matrices ``D``: (n_params, n_params)."""
        xp = self.xp
        K = self.n_outputs
        rows = []
        for k in range(K):
            row = []
            for m in range(K):
                if m < k:
                    row.append(rows[m][k].T)
                else:
                    row.append(weighted_gram(self.blocks[k], D[:, k, m], self.blocks[m], xp))
            rows.append(row)
        return xp.concat([xp.concat(r, axis=1) for r in rows], axis=0)

    def gram_diagonal(self, D):
        """``diag(sum_i A_i^T D_i A_i)`` without forming the Gram matrix."""
        xp = self.xp
        return xp.concat(
            [column_sq_norms(B, D[:, k, k], xp) for k, B in enumerate(self.blocks)], axis=0
        )

    def row_sq_norms(self):
        """``||A_i||_F^2`` for each row: used to bound Hessian eigenvalues."""
        xp = self.xp
        total = None
        for B in self.blocks:
            if sp.issparse(B):
                s = xp.asarray(np.asarray(B.multiply(B).sum(axis=1)).ravel())
            elif hasattr(B, "row_sq_norms"):  # a lazily evaluated block
                s = B.row_sq_norms()
            else:
                s = xp.vecdot(B, B, axis=-1)  # no (n, p) temporary
            total = s if total is None else total + s
        return total
