r"""The inverse Hessian of a kernel model in the row space of its training rows.

A kernel model is linear in features ``phi`` with ``phi(a) . phi(b) = k(a, b)``:
``H = Phi^T D Phi + lambda I`` with ``D = diag(d)`` the per-row curvature
(the same for every output). The push-through identity

.. math::

    (\Phi^T D \Phi + \lambda I)^{-1}
    = \frac{1}{\lambda}\left(I - \Phi^T S M^{-1} S \Phi\right), \qquad
    M = S K S + \lambda I, \quad S = D^{1/2},

gives every quantity influence needs from kernel values alone. For a test
row ``x`` with kernel column ``k_x = K(X_train, x)``, the training rows'
outputs respond to ``H^{-1} phi(x)`` by

.. math::  \Phi H^{-1} \phi(x) = \frac{1}{\lambda}\left(k_x - K S\, M^{-1} S k_x\right),

one solve with the ``n x n`` operator ``M``, which conjugate gradients see
only through products ``K v`` (evaluated block by block, never stored). ``M``
is far better conditioned (eigenvalues in ``[lambda, lambda + max(d) ||K||]``)
than the Hessian in the dual coefficients, ``K D K + lambda K``. Conjugate
gradients on it are preconditioned with a Nystroem approximation
``P = S L L^T S + lambda I`` from a partial pivoted Cholesky factor
``K ~ L L^T`` of rank ``r`` (``O(n r)`` memory, ``r`` kernel columns;
``P^{-1}`` by the Woodbury identity), which clusters the spectrum near 1 so
that few passes over the kernel are needed (each pass evaluates ``n^2``
kernel values).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from .._backend import get_namespace, pivoted_cholesky
from ._cg import CGInverseHessian


class RowSpaceOperator:
    """``M = S K S + lambda I`` as products, for :class:`CGInverseHessian`.

    Parameters
    ----------
    kernel : object with ``@`` and ``columns(idx)``
        The training kernel matrix ``K`` (n, n), e.g. a lazily evaluated block.
    kernel_diagonal : ndarray of shape (n,)
    curvature : ndarray of shape (n,), ``d``
    strength : float, ``lambda``
    preconditioner_rank : int
        Largest rank of the Nystroem preconditioner (0: Jacobi only).
    """

    def __init__(
        self, kernel, kernel_diagonal, curvature, strength: float, preconditioner_rank: int = 500
    ):
        self.kernel = kernel
        self.preconditioner_rank = preconditioner_rank
        self.s = np.sqrt(np.asarray(curvature, dtype=float))
        self.kernel_diagonal = np.asarray(kernel_diagonal, dtype=float)
        self.strength = float(strength)
        self.xp = get_namespace()  # the array-API NumPy namespace (numpy 1.x lacks parts)
        self.dtype = self.product_dtype = np.float64  # kernel values are SciPy's
        self.n_params = self.s.size
        self.n_samples = self.s.size

    def matvec(self, V):
        s = self.s[:, None]
        return s * (self.kernel @ (s * V)) + self.strength * V

    def diagonal(self):
        return self.s**2 * self.kernel_diagonal + self.strength

    def preconditioner(self):
        """``R -> P^{-1} R`` with ``P = W W^T + lambda I``, ``W = S L``:
        ``P^{-1} = (I - W (lambda I + W^T W)^{-1} W^T) / lambda``."""
        lam = self.strength
        if self.preconditioner_rank <= 0:
            inv_diag = 1.0 / self.diagonal()
            return lambda R: inv_diag[:, None] * R
        L, _, _ = pivoted_cholesky(
            lambda j: self.kernel.columns([j])[:, 0],
            self.kernel_diagonal,
            tol=1e-12,
            max_rank=self.preconditioner_rank,
        )
        W = L
        W *= self.s[:, None]  # S L, in place: L is not needed apart from it
        factor = scipy.linalg.cho_factor(lam * np.eye(W.shape[1]) + W.T @ W)
        self.preconditioner_rank_used = W.shape[1]

        def apply(R):
            return (R - W @ scipy.linalg.cho_solve(factor, W.T @ R)) / lam

        return apply


class RowSpaceInverse:
    """``H^{-1}`` of a kernel model, applied in the training rows' row space.

    Not an :class:`InverseHessian`: the parameters (``w = Phi^T beta``) are
    never formed, so there is no ``H^{-1} B`` for parameter vectors ``B``;
    what it offers is :meth:`responses`, ``Phi H^{-1} phi(x)``.

    Parameters
    ----------
    kernel, kernel_diagonal, curvature, strength
        See :class:`RowSpaceOperator`.
    tol, max_iter, verbose
        Of the conjugate gradients on ``M`` (see :class:`CGInverseHessian`).
    preconditioner_rank : int
        Largest rank of the Nystroem preconditioner.
    """

    name = "row_space_cg"

    def __init__(
        self,
        kernel,
        kernel_diagonal,
        curvature,
        strength: float,
        tol: float = 1e-10,
        max_iter: int | None = None,
        verbose=0,
        preconditioner_rank: int = 500,
    ):
        operator = RowSpaceOperator(
            kernel, kernel_diagonal, curvature, strength, preconditioner_rank
        )
        self.operator = operator
        self.xp = operator.xp
        self._cg = CGInverseHessian(operator, tol=tol, max_iter=max_iter, verbose=verbose)
        self.report = self._cg.report
        self.report.details["space"] = "rows"
        self.report.details["preconditioner_rank"] = getattr(
            operator, "preconditioner_rank_used", 0
        )
        self.n_params = operator.n_params

    def responses(self, kernel_columns):
        r"""``Phi H^{-1} phi(x_j)`` for the kernel columns ``K(X_train, x_j)``
        (n, m): ``(k_j - K S M^{-1} S k_j) / lambda``."""
        op = self.operator
        s = op.s[:, None]
        Y = self._cg.solve(s * kernel_columns)
        return (kernel_columns - op.kernel @ (s * Y)) / op.strength
