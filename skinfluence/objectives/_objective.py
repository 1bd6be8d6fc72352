"""The training objective of a fitted model, its derivatives, and per-row terms.

Every supported estimator minimises an objective of the form

.. math::

    F(\theta) = \\sum_i w_i \\, l(y_i, A_i \theta)
                + \tfrac12 \big(\\lambda_0 + \\sum_i s_i\big) \\, \theta^T R \theta

with a pointwise loss ``l`` (:mod:`._losses`), a design ``A`` (:mod:`._design`),
row weights ``w_i`` (sample weight times class weight times ``C``), a
quadratic regulariser ``R`` and its strength split into a fixed part
``lambda_0`` and per-row shares ``s_i``. The shares matter for estimators that
minimise a *mean* loss plus a penalty (``SGD*``, ``PoissonRegressor``):
removing a row there also removes its share of the penalty, so the term that
leave-one-out retraining removes is

.. math::  F_i(\theta) = w_i \\, l(y_i, A_i\theta) + \tfrac12 s_i\\, \theta^T R \theta.

Its gradient is ``g_i = A_i^T u_i + s_i R theta`` with ``u_i = w_i dl/dz``,
and the Hessian of the whole objective is
``H = sum_i A_i^T D_i A_i + (lambda_0 + sum_i s_i) R`` with
``D_i = w_i d^2l/dz^2``. Influence functions need only these pieces.
"""

from __future__ import annotations

import math

import numpy as np

from .._backend import asarray, dense_rows, to_numpy


class Regularizer:
    r"""Quadratic penalty ``theta^T R theta / 2`` with block-diagonal ``R``.

    ``diagonal`` holds the diagonal part (zeros for unpenalised intercepts);
    ``dense_blocks`` is a list of ``(offset, matrix)`` pairs added on top
    (the kernel matrix of kernel ridge and kernel SVMs).
    """

    def __init__(self, diagonal, dense_blocks=(), xp=None):
        self.diagonal = diagonal
        self.dense_blocks = list(dense_blocks)
        self.xp = xp

    def matvec(self, V):
        xp = self.xp
        one_dim = V.ndim == 1
        W = V[:, None] if one_dim else V
        out = self.diagonal[:, None] * W
        if self.dense_blocks:
            pieces = []
            cursor = 0
            for off, M in self.dense_blocks:
                pieces.append(out[cursor:off, :])
                pieces.append(out[off : off + M.shape[0], :] + M @ W[off : off + M.shape[0], :])
                cursor = off + M.shape[0]
            pieces.append(out[cursor:, :])
            out = xp.concat(pieces, axis=0)
        return out[:, 0] if one_dim else out

    def to_dense(self):
        xp = self.xp
        R = xp.eye(self.diagonal.shape[0], dtype=self.diagonal.dtype) * self.diagonal[None, :]
        for off, M in self.dense_blocks:
            P = self.diagonal.shape[0]
            k = M.shape[0]
            # embed M at (off, off) without item assignment (array API)
            top = xp.zeros((off, P), dtype=M.dtype)
            mid = xp.concat(
                [
                    xp.zeros((k, off), dtype=M.dtype),
                    M,
                    xp.zeros((k, P - off - k), dtype=M.dtype),
                ],
                axis=1,
            )
            bottom = xp.zeros((P - off - k, P), dtype=M.dtype)
            R = R + xp.concat([top, mid, bottom], axis=0)
        return R

    def diag(self):
        xp = self.xp
        d = self.diagonal
        if not self.dense_blocks:
            return d
        pieces, cursor = [], 0
        for off, M in self.dense_blocks:
            pieces.append(d[cursor:off])
            pieces.append(d[off : off + M.shape[0]] + xp.linalg.diagonal(M))
            cursor = off + M.shape[0]
        pieces.append(d[cursor:])
        return xp.concat(pieces, axis=0)


class Objective:
    """``F(theta)`` for one fitted model and its training data.

    Parameters
    ----------
    design : BlockDesign
    loss : PointwiseLoss
    targets : array of shape (n, n_targets), encoded targets
    weights : array of shape (n,), ``w_i``
    regularizer : Regularizer
    strength : float, ``lambda_0``
    shares : array of shape (n,) or None, ``s_i``
    reweighting : ClassReweighting or None
        Class weights that removing a row changes (``class_weight="balanced"``).
    total_shares : float or None
        ``sum_i s_i`` over all training rows, where this objective holds a
        chunk of them (a table too large for one process): the penalty keeps
        the full data's strength. By default the sum of ``shares``.
    """

    def __init__(
        self,
        design,
        loss,
        targets,
        weights,
        regularizer,
        strength=1.0,
        shares=None,
        reweighting=None,
        total_shares=None,
    ):
        self.design = design
        self.loss = loss
        self.targets = targets
        self.weights = weights
        self.regularizer = regularizer
        self.strength = float(strength)
        self.shares = shares
        self.reweighting = reweighting
        self.total_shares = total_shares
        self.xp = design.xp
        #: the working precision: that of the data (float64 unless asked otherwise)
        self.dtype = weights.dtype

    @property
    def n_params(self) -> int:
        return self.design.n_params

    @property
    def total_strength(self) -> float:
        """``lambda_0 + sum_i s_i``: the penalty's strength."""
        if self.total_shares is not None:
            return self.strength + float(self.total_shares)
        extra = 0.0 if self.shares is None else float(self.xp.sum(self.shares))
        return self.strength + extra

    def value(self, theta) -> float:
        xp = self.xp
        z = self.design.predict(theta)
        data = xp.sum(self.weights * self.loss.value(self.targets, z))
        pen = 0.5 * self.total_strength * xp.sum(theta * self.regularizer.matvec(theta))
        return float(data + pen)

    def at(self, theta) -> ObjectiveState:
        """Derivatives of ``F`` at ``theta``, cached for repeated products."""
        return ObjectiveState(self, theta)

    def null_space(self):
        """Orthonormal directions along which ``F`` and every prediction are flat.

        For the multinomial softmax with a shared design, adding the same
        vector to every class's parameters changes no prediction; it changes
        ``F`` only through the penalty, so unpenalised columns (intercepts,
        or all columns without penalty) give exact null directions of ``H``.
        Returns ``None`` or an array of shape (n_params, q).
        """
        design = self.design
        if not (self.loss.shift_invariant and design.shared and design.n_outputs > 1):
            return None
        xp = self.xp
        K, p = design.n_outputs, design.sizes[0]
        diag = to_numpy(self.regularizer.diag())
        free = [j for j in range(p) if all(diag[k * p + j] == 0 for k in range(K))]
        if not free or self.regularizer.dense_blocks:
            return None
        N = np.zeros((K * p, len(free)))
        for c, j in enumerate(free):
            N[[k * p + j for k in range(K)], c] = 1.0 / math.sqrt(K)
        return asarray(N, xp, self.dtype)


def relative_gradient(g, design, row_sizes) -> float:
    r"""``||g|| / sum_i ||a_i|| s_i``: a leftover gradient ``g`` relative to
    what the rows contribute (``s_i``: the size of row ``i``'s loss
    derivative). The one normalisation of every "how far from the optimum"
    check (:meth:`ObjectiveState.stationarity`, the hinge's KKT residual)."""
    return float(design.xp.sqrt(design.xp.sum(g * g))) / (
        gradient_scale(design, row_sizes) + 1e-300
    )


def gradient_scale(design, row_sizes) -> float:
    """``sum_i ||a_i|| s_i``: the denominator of :func:`relative_gradient`, a
    sum over rows (so over the chunks of a table held in chunks)."""
    xp = design.xp
    return float(xp.sum(xp.sqrt(design.row_sq_norms()) * row_sizes))


class ObjectiveState:
    """``F`` and its per-row terms, linearised at one parameter vector."""

    def __init__(self, objective: Objective, theta):
        xp = objective.xp
        self.objective = objective
        self.xp = xp
        self.theta = theta
        self.design = objective.design
        self.z = self.design.predict(theta)
        w = objective.weights[:, None]
        self.U = w * objective.loss.gradient(objective.targets, self.z)
        self._D = None
        self.penalty_gradient = self.objective.regularizer.matvec(theta)  # R theta
        self.null_space = objective.null_space()

    @property
    def D(self):
        """Per-row curvature ``D_i = w_i d^2 l / dz^2``, shape (n, K, K)."""
        if self._D is None:
            obj = self.objective
            self._D = obj.weights[:, None, None] * obj.loss.hessian(obj.targets, self.z)
        return self._D

    @property
    def n_params(self) -> int:
        return self.design.n_params

    def gradient(self):
        obj = self.objective
        return self.data_gradient() + obj.total_strength * self.penalty_gradient

    def data_gradient(self):
        """``sum_i A_i^T u_i``: the rows' part of the gradient (additive over
        chunks of rows)."""
        return self.design.backward(self.U)

    def hessian(self):
        """Dense ``H`` (n_params, n_params)."""
        obj = self.objective
        return self.data_hessian() + obj.total_strength * obj.regularizer.to_dense()

    def data_hessian(self):
        """``sum_i A_i^T D_i A_i``: the rows' part of the dense Hessian
        (additive over chunks of rows)."""
        return self.design.gram(self.D)

    def hvp(self, V):
        """``H V`` for ``V`` of shape (n_params, m), matrix-free."""
        return self.hvp_rows(V, None)

    def hvp_rows(self, V, rows, scale=1.0):
        """``scale * sum_{i in rows} A_i^T D_i A_i V + lambda R V``.

        With ``rows=None`` all rows; with a subsample and
        ``scale = n / len(rows)`` an unbiased estimate of ``H V`` (LiSSA).
        """
        xp = self.xp
        obj = self.objective
        if rows is None:
            design, D = self.design, self.D
        else:
            design = self.design.take(rows)
            D = xp.take(self.D, xp.asarray(np.asarray(rows, dtype=np.int64)), axis=0)
        AV = design.forward(V)  # (n, K, m)
        if design.n_outputs == 1:
            DAV = D[:, :, 0, None] * AV
        else:
            DAV = xp.matmul(D, AV)  # batched (K, K) @ (K, m) per row
        out = design.backward_many(DAV)
        if scale != 1.0:
            out = scale * out
        return out + obj.total_strength * obj.regularizer.matvec(V)

    def hessian_diagonal(self):
        obj = self.objective
        return self.design.gram_diagonal(self.D) + obj.total_strength * obj.regularizer.diag()

    def curvature_bound(self) -> float:
        """An upper bound on ``lambda_max(H)``: the trace-free Gershgorin-type
        bound ``sum_i ||D_i||_2 ||A_i||^2 + lambda ||R||``, cheap and safe."""
        xp = self.xp
        obj = self.objective
        Dn = xp.sum(xp.abs(self.D), axis=(1, 2))  # >= spectral norm of each D_i
        data = float(xp.sum(Dn * self.design.row_sq_norms()))
        reg = obj.regularizer
        rnorm = float(xp.max(xp.abs(reg.diagonal))) if reg.diagonal.shape[0] else 0.0
        for _, M in reg.dense_blocks:
            rnorm += float(xp.max(xp.sum(xp.abs(M), axis=1)))
        return data + obj.total_strength * rnorm

    def row_gradients(self) -> RowGradients:
        """Gradients ``g_i`` of the removable terms ``F_i``: what leave-one-out
        retraining removes from ``grad F``, penalty shares and class weights
        that depend on the rows included."""
        xp = self.xp
        obj = self.objective
        U, coef, vecs = self.U, [], []
        if obj.shares is not None:
            coef.append(obj.shares[:, None])
            vecs.append(self.penalty_gradient[:, None])
        if obj.reweighting is not None:
            U, C, V = obj.reweighting.correction(self.design, U)
            coef.append(C)
            vecs.append(V)
        if not coef:
            return RowGradients(self.design, U)
        return RowGradients(self.design, U, xp.concat(coef, axis=1), xp.concat(vecs, axis=1))

    def stationarity(self) -> float:
        r"""``||grad F||`` relative to the per-row gradients: about 0 at the
        optimum.

        .. math::

            \frac{\|\nabla F\|}{\sum_i \|a_i\| \big(\|u_i\|
            + \sqrt{\epsilon}\, \|D_i\| (\|z_i\| + 1)\big)}

        The second term is the gradient a relative change of ``sqrt(eps)`` in
        the outputs would leave: a fit that interpolates its targets (every
        ``u_i`` at rounding level) counts as optimal instead of comparing
        rounding noise with rounding noise.
        """
        return self.stationarity_of(self.gradient(), self.gradient_scale())

    def gradient_scale(self) -> float:
        """The denominator of :meth:`stationarity`, a sum over rows."""
        xp = self.xp
        u = xp.sqrt(xp.sum(self.U * self.U, axis=1))
        z = xp.sqrt(xp.sum(self.z * self.z, axis=1))
        curvature = xp.sum(xp.abs(self.D), axis=(1, 2))
        rounding = math.sqrt(float(xp.finfo(self.z.dtype).eps)) * curvature * (z + 1.0)
        return gradient_scale(self.design, u + rounding)

    def stationarity_of(self, g, scale: float) -> float:
        """:meth:`stationarity` from the gradient ``g`` and its scale (both
        summed over the chunks of a table held in chunks)."""
        xp = self.xp
        if self.null_space is not None:
            N = self.null_space
            g = g - N @ (N.T @ g)
        return float(xp.sqrt(xp.sum(g * g))) / (scale + 1e-300)


class ClassReweighting:
    r"""Class weights that depend on the training rows (``class_weight="balanced"``).

    Balanced weights are ``c_k = S / (K S_k)`` with ``S`` the total and
    ``S_k`` class ``k``'s count (or sample weight). Removing row ``i`` changes
    every class's weight by ``delta[i, k] = c_k - c_k^{(-i)}``, so the term it
    removes from ``grad F`` gains, beyond its own ``A_i^T u_i``,

    .. math::  \sum_k \delta_{ik} \big(L_k - [y_i = k] A_i^T u^c_i / c_k\big),
               \qquad L_k = \sum_{j: y_j = k} A_j^T u^c_j / c_k,

    where ``u^c`` is the part of ``u`` scaled by the class weight: all of
    ``u_i`` for row weights, output ``y_i`` only for one-vs-rest output
    weights (``SGDClassifier``). A rank-``K`` correction.

    Parameters
    ----------
    onehot : array (n, n_classes)
    class_weight : array (n_classes,), ``c_k``
    delta : array (n, n_classes)
    per_output : bool
        Class weights scale output ``k`` of class-``k`` rows only.
    totals : array (n_params, n_classes) or None
        ``L_k`` over all training rows, where the arrays hold a chunk of them
        (see :meth:`class_totals`); computed from ``design`` by default.
    """

    def __init__(self, onehot, class_weight, delta, per_output=False, totals=None):
        self.onehot = onehot
        self.class_weight = class_weight
        self.delta = delta
        self.per_output = per_output
        self.totals = totals

    def _parts(self, U):
        Uc = U * self.onehot if self.per_output else U
        return Uc, self.onehot / self.class_weight[None, :]  # [y_j = k] / c_k

    def class_totals(self, design, U):
        """``L_k = sum_{j: y_j = k} A_j^T u^c_j / c_k`` over the rows of
        ``design``, (n_params, n_classes): additive over chunks of rows."""
        Uc, scaled = self._parts(U)
        return design.xp.stack(
            [design.backward(Uc * scaled[:, k : k + 1]) for k in range(scaled.shape[1])], axis=1
        )

    def correction(self, design, U):
        """``(U', C, V)`` with ``g_i = A_i^T u'_i + C_i V^T``."""
        xp = design.xp
        Uc, scaled = self._parts(U)
        V = self.class_totals(design, U) if self.totals is None else self.totals
        own = xp.sum(self.delta * scaled, axis=1)  # delta_{i, y_i} / c_{y_i}
        return U - own[:, None] * Uc, self.delta, V

    def take(self, rows, totals=None):
        """The reweighting of the rows ``rows`` (a slice) of a larger table
        whose class totals are ``totals``."""
        return ClassReweighting(
            self.onehot[rows, ...],
            self.class_weight,
            self.delta[rows, ...],
            self.per_output,
            totals,
        )


class RowGradients:
    """Per-row gradients ``g_i = A_i^T u_i + C_i V^T`` of the removable terms,
    kept factored (no ``n x n_params`` matrix unless :meth:`materialized`).

    The low-rank part holds what removing a row changes in the rest of the
    objective: its share of a mean-loss penalty (``C_i = s_i``, ``V = R theta``)
    and row-dependent class weights (:class:`ClassReweighting`).

    Parameters
    ----------
    design : BlockDesign
    U : array (n, K), ``u_i``
    coef : array (n, q) or None, ``C``
    vecs : array (n_params, q) or None, ``V``
    matrix : array (n, n_params) or None
        ``G`` itself, when materialised: products with it are one GEMM.
    """

    def __init__(self, design, U, coef=None, vecs=None, matrix=None):
        self.design = design
        self.U = U
        self.coef = coef
        self.vecs = vecs
        self.matrix = matrix
        self.xp = design.xp

    def dot(self, V):
        """``[g_i . v_j]``: shape (n, m) for ``V`` of shape (n_params, m)."""
        if self.matrix is not None:
            return self.matrix @ V
        xp = self.xp
        AV = self.design.forward(V)  # (n, K, m)
        if AV.shape[1] == 1:
            out = self.U[:, 0:1] * AV[:, 0, :]
        else:
            out = xp.sum(self.U[:, :, None] * AV, axis=1)
        if self.coef is not None:
            out = out + self.coef @ (self.vecs.T @ V)
        return out

    def dense(self):
        """``G`` with rows ``g_i``, shape (n, n_params)."""
        if self.matrix is not None:
            return self.matrix
        xp = self.xp
        blocks = [
            dense_rows(B, xp) * self.U[:, k : k + 1] for k, B in enumerate(self.design.blocks)
        ]
        G = blocks[0] if len(blocks) == 1 else xp.concat(blocks, axis=1)  # row-major
        if self.coef is not None:
            G = G + self.coef @ self.vecs.T
        return G

    def total(self):
        """``sum_i g_i`` over these rows, (n_params,)."""
        xp = self.xp
        if self.matrix is not None:
            return xp.sum(self.matrix, axis=0)
        out = self.design.backward(self.U)
        if self.coef is not None:
            out = out + self.vecs @ xp.sum(self.coef, axis=0)
        return out

    def materialized(self) -> RowGradients:
        """The same gradients holding ``G`` (n x n_params floats)."""
        return RowGradients(self.design, self.U, self.coef, self.vecs, self.dense())

    def with_U(self, U) -> RowGradients:
        """The same low-rank part with other ``u_i``."""
        return RowGradients(self.design, U, self.coef, self.vecs)

    def take(self, rows) -> RowGradients:
        """Rows ``rows``: a ``slice`` (views where possible) or indices."""
        xp = self.xp
        if isinstance(rows, slice):

            def pick(A):
                return A[rows, ...]
        else:
            idx = xp.asarray(np.asarray(to_numpy(rows), dtype=np.int64))

            def pick(A):
                return xp.take(A, idx, axis=0)

        return RowGradients(
            self.design.take(rows),
            pick(self.U),
            None if self.coef is None else pick(self.coef),
            self.vecs,
            None if self.matrix is None else pick(self.matrix),
        )
