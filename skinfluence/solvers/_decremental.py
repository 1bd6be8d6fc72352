r"""Exact leave-one-out solutions of hinge-type models by following the
decremental solution path (Cauwenberghs & Poggio, NIPS 2001).

The training objective on the explainer's design (rows ``psi_i``; kernel
features for kernel models) is

.. math::  F(\theta) = \tfrac12 \theta^T R \theta + \sum_i c_i l_i(\psi_i \cdot \theta)

with every ``l_i`` convex and piecewise linear in ``z_i = psi_i . theta``
(hinge: one kink; epsilon-insensitive: two). At the optimum

.. math::  R \theta + \sum_i \nu_i \psi_i = 0, \qquad \nu_i \in c_i\, \partial l_i(z_i),

so ``nu_i`` is ``c_i`` times the slope of ``l_i`` for a row off the kinks and
lies between the two neighbouring slopes for a row on a kink. Removing row
``r`` means driving ``nu_r = (1 - s) nu_r^0`` from ``s = 0`` to ``s = 1``
while every other row stays optimal. Between *events* the rows ``K`` on a
kink keep their outputs and the solution moves linearly in ``s``. With
``R = diag(R_p, 0)`` (penalised parameters and free ones, such as libsvm's
intercept), ``Q = Psi_p R_p^{-1} Psi_p^T`` (the kernel matrix, for kernel
models) and ``B = Psi_free``, the direction solves

.. math::

    \begin{bmatrix} Q_{KK} & -B_K \\ B_K^T & 0 \end{bmatrix}
    \begin{bmatrix} d\nu_K \\ d\theta_f \end{bmatrix}
    = \nu_r^0 \begin{bmatrix} Q_{Kr} \\ B_r^T \end{bmatrix},
    \qquad dz = \nu_r^0 Q_{:r} - Q_{:K}\, d\nu_K + B\, d\theta_f .

An event ends a segment: a kink row's multiplier reaches an end of its
interval (the row leaves the kink), or another row's output reaches a kink
(it joins). At ``s = 1`` the parameters are the optimum without row ``r``:
``theta_p = -R_p^{-1} Psi_p^T nu`` and the accumulated ``theta_f``. The
first segment extrapolated to ``s = 1`` is the first-order active-set
estimate of :class:`ActiveSetInverse`; following the events makes it exact.

The system's inverse is formed once, for the fitted kink set; every removal
starts from it (a kink row's own removal is a Schur downdate) and every
event updates it (:class:`_KinkSystem`: bordering when a row joins, a
downdate when one leaves), so a segment costs ``O(|K|^2)`` for its direction
and ``O(n |K|)`` for the outputs' direction. Columns of ``Q`` are evaluated
once per kink row and kept. Two
geometries provide them: :class:`DesignGeometry` (parameters on the
explainer's design, ``O(nnz)`` per column) and :class:`RowSpaceGeometry`
(kernel models in row space: ``Q = K / lambda`` is the kernel matrix itself,
the parameters are the dual coefficients ``beta = -nu / lambda`` and the
intercept, and the parameter changes are sparse).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import scipy.sparse as sp

from .._backend import asarray, get_namespace, to_numpy
from ._active_set import margin_rows
from ._base import SolverReport


def _kkt_matrix(Q, B):
    """The symmetric form ``[[Q, -B], [-B^T, 0]]`` of the path's system: its
    right-hand side ``[q; b]`` becomes ``[q; -b]``."""
    nf = B.shape[1]
    return np.block([[Q, -B], [-B.T, np.zeros((nf, nf))]])


def _solve_kkt(Q, B, q, b):
    """``(dnu, dtheta_free)`` from the system with right-hand side ``[q; b]``;
    least squares for dependent kink rows (any solution then moves the
    outputs the same way)."""
    A, rhs = _kkt_matrix(Q, B), np.concatenate([q, -b])
    try:
        sol = np.linalg.solve(A, rhs)
    except np.linalg.LinAlgError:
        sol = np.linalg.lstsq(A, rhs, rcond=None)[0]
    return sol[: q.size], sol[q.size :]


class _KinkSystem:
    r"""The inverse of the symmetric KKT matrix of the current kink rows ``K``,
    ``A_K = [[Q_KK, -B_K], [-B_K^T, 0]]``, kept up to date along a path.

    A row joining ``K`` borders ``A_K``; a row leaving it is eliminated (a
    Schur downdate): ``O(|K|^2)`` per event instead of a fresh ``O(|K|^3)``
    solve. Instances are not modified (:meth:`joined` and :meth:`without`
    return new ones), so every removal starts from the fitted kink set's
    system. ``None`` stands for a singular system (dependent kink rows); the
    path then solves each segment afresh.
    """

    def __init__(self, path, rows, inverse):
        self.path = path
        self.rows = rows
        self.inverse = inverse

    @classmethod
    def build(cls, path, rows):
        Q = path._q(rows)
        try:
            inverse = np.linalg.inv(_kkt_matrix(Q[rows], path.B[rows]))
        except np.linalg.LinAlgError:
            return None
        return cls(path, rows, inverse)

    def direction(self, q, b):
        """``(dnu_K, dtheta_free)`` for the right-hand side ``[q; b]`` of the
        (unsymmetric) system in the module docstring."""
        m = self.rows.size
        sol = self.inverse @ np.concatenate([q, -b])
        return sol[:m], sol[m:]

    def position(self, row) -> int:
        """Where ``row`` is among the kink rows (-1: it is none)."""
        hits = np.flatnonzero(self.rows == row)
        return int(hits[0]) if hits.size else -1

    def without(self, row):
        """The system without kink row ``row`` (itself if ``row`` is no kink
        row). The last kink row takes the leaver's position, as the working
        columns of :class:`_WorkingColumns` do."""
        p = self.position(row)
        if p < 0:
            return self
        M, last = self.inverse, self.rows.size - 1
        if abs(M[p, p]) < 1e-300:
            return None
        moved = [last] if p != last else []
        kept = np.concatenate(
            [np.arange(p), moved, np.arange(p + 1, last), np.arange(last + 1, M.shape[0])]
        )
        kept = kept.astype(int)
        inverse = M[np.ix_(kept, kept)] - np.outer(M[kept, p], M[p, kept]) / M[p, p]
        return _KinkSystem(self.path, self.rows[kept[:last]], inverse)

    def joined(self, row):
        """The system with ``row`` added to the kink rows (bordering)."""
        path, m, M = self.path, self.rows.size, self.inverse
        q = path._cache.column(row)
        a = np.concatenate([q[self.rows], -path.B[row]])
        Ma = M @ a
        schur = q[row] - a @ Ma
        if abs(schur) <= 1e-12 * (abs(q[row]) + abs(a @ Ma)):
            return None  # the new kink row depends on the others
        size = M.shape[0] + 1
        grown = np.empty((size, size))
        grown[:-1, :-1] = M + np.outer(Ma, Ma) / schur
        grown[:-1, -1] = grown[-1, :-1] = -Ma / schur
        grown[-1, -1] = 1.0 / schur
        # keep the order [kink rows, free parameters]: the new row goes to position m
        order = np.concatenate([np.arange(m), [size - 1], np.arange(m, size - 1)])
        return _KinkSystem(path, np.append(self.rows, row), grown[np.ix_(order, order)])


class _ColumnCache:
    """Columns of ``Q`` evaluated so far (each once), in one growing
    ``(n, capacity)`` array."""

    def __init__(self, geometry):
        self.geometry = geometry
        self.slot = np.full(geometry.n, -1)
        self.size = 0
        self._Q = np.empty((geometry.n, 0))

    def _ensure(self, rows):
        rows = np.asarray(rows, dtype=int)
        missing = np.unique(rows[self.slot[rows] < 0])
        if missing.size == 0:
            return
        need = self.size + missing.size
        if need > self._Q.shape[1]:
            grown = np.empty((self.geometry.n, max(need, 2 * self._Q.shape[1], 16)))
            grown[:, : self.size] = self._Q[:, : self.size]
            self._Q = grown
        self._Q[:, self.size : need] = self.geometry.columns(missing)
        self.slot[missing] = np.arange(self.size, need)
        self.size = need

    def take(self, rows):
        """``Q[:, rows]``, a copy."""
        self._ensure(rows)
        return self._Q[:, self.slot[np.asarray(rows, dtype=int)]]

    def column(self, row):
        """``Q[:, row]``, a view."""
        self._ensure([row])
        return self._Q[:, self.slot[row]]


class _WorkingColumns:
    """``Q[:, K]`` and ``|Q[:, K]|`` for the kink rows of one removal, in the
    order of its :class:`_KinkSystem`: a joining row's column is appended, a
    leaving row's is overwritten by the last one. A segment's output
    direction is then one product with contiguous columns, and an event
    costs ``O(n)``, not a copy of all ``|K|`` columns."""

    def __init__(self, cache, initial, spare: int = 32):
        self.cache = cache
        n, m = initial.shape
        self.m = m
        self._Q = np.empty((n, m + spare))
        self._absQ = np.empty((n, m + spare))
        self._Q[:, :m] = initial
        np.abs(initial, out=self._absQ[:, :m])

    def product(self, v):
        """``(Q[:, K] @ v, |Q[:, K]| @ |v|)``."""
        return self._Q[:, : self.m] @ v, self._absQ[:, : self.m] @ np.abs(v)

    def append(self, row):
        if self.m == self._Q.shape[1]:
            for name in ("_Q", "_absQ"):
                old = getattr(self, name)
                grown = np.empty((old.shape[0], 2 * old.shape[1] + 1))
                grown[:, : self.m] = old[:, : self.m]
                setattr(self, name, grown)
        q = self.cache.column(row)
        self._Q[:, self.m] = q
        np.abs(q, out=self._absQ[:, self.m])
        self.m += 1

    def remove(self, position: int):
        last = self.m - 1
        if position != last:
            self._Q[:, position] = self._Q[:, last]
            self._absQ[:, position] = self._absQ[:, last]
        self.m = last


class DesignGeometry:
    """``Q``, ``B`` and parameter changes on a design with a diagonal penalty.

    Parameters
    ----------
    state : ObjectiveState
    damping : float
        Added to the penalty's diagonal, as in :class:`ActiveSetInverse`.
    """

    def __init__(self, state, damping: float = 0.0):
        obj = state.objective
        if obj.regularizer.dense_blocks:
            raise ValueError("the decremental path needs a diagonal penalty")
        self.xp = state.xp
        self.design = design = state.design
        self.n, self.n_params = design.n_samples, design.n_params
        r_diag = to_numpy(obj.total_strength * obj.regularizer.diag()) + damping
        self.free = np.flatnonzero(r_diag == 0)
        self.r_inv = np.where(r_diag > 0, 1.0 / np.where(r_diag > 0, r_diag, 1.0), 0.0)
        E = np.zeros((self.n_params, self.free.size))
        E[self.free, np.arange(self.free.size)] = 1.0
        self.B = to_numpy(design.forward(asarray(E, self.xp))[:, 0, :]).reshape(self.n, -1)

    def columns(self, idx):
        """``Q[:, idx] = Psi_p R_p^{-1} psi_idx``, (n, len(idx))."""
        xp = self.xp
        ones = xp.ones((idx.size, 1), dtype=xp.float64)
        V = self.design.take(idx).expand(ones) * asarray(self.r_inv, xp)[:, None]
        return to_numpy(self.design.forward(V)[:, 0, :])

    def parameter_change(self, rows, delta_nu, delta_free):
        """One removal's ``delta_theta`` (n_params,), host NumPy."""
        dnu = sp.csc_array((delta_nu, (rows, np.zeros(rows.size, dtype=int))), shape=(self.n, 1))
        return to_numpy(self.parameter_changes(dnu, np.asarray(delta_free)[:, None]))[:, 0]

    def parameter_changes(self, delta_nu, delta_free):
        """``delta_theta = [-R_p^{-1} Psi_p^T dnu ; dtheta_free]`` for the
        columns of the sparse ``delta_nu`` (n, k): dense (n_params, k) in the
        design's namespace, from the rows whose multiplier moved only."""
        xp, k = self.xp, delta_nu.shape[1]
        by_row = sp.csr_array(delta_nu)
        rows = np.flatnonzero(np.diff(by_row.indptr))
        if rows.size:
            G = asarray(by_row[rows].toarray()[:, None, :], xp)  # (r, 1, k)
            grad = to_numpy(self.design.take(rows).backward_many(G))
        else:
            grad = np.zeros((self.n_params, k))
        delta = -self.r_inv[:, None] * grad
        delta[self.free] = delta_free
        return asarray(delta, xp)


class RowSpaceGeometry:
    """``Q = K / lambda`` of a kernel model in row space, with its intercept.

    The parameters are ``theta = [beta, b]`` (dual coefficients over all
    training rows, then the intercept when ``intercept``); at the optimum
    ``beta = -nu / lambda``, so a removal changes ``beta`` on the rows whose
    multiplier moved only: the changes are returned as a sparse matrix.

    Parameters
    ----------
    kernel : KernelBlock
        The training rows' kernel matrix, without the intercept column.
    strength : float, ``lambda``
    intercept : bool
    intercept_strength : float
        Penalty of the intercept (``damping``; 0: a free parameter). A
        penalised intercept adds ``1 / intercept_strength`` to ``Q``.
    """

    def __init__(self, kernel, strength: float, intercept: bool, intercept_strength: float = 0.0):
        self.kernel = kernel
        self.strength = float(strength)
        self.n = kernel.shape[0]
        self.n_params = self.n + int(intercept)
        self.intercept_strength = float(intercept_strength) if intercept else 0.0
        free = intercept and self.intercept_strength == 0.0
        self.B = np.ones((self.n, 1)) if free else np.zeros((self.n, 0))
        self.xp = get_namespace()  # the array-API NumPy namespace (numpy 1.x lacks parts)

    def columns(self, idx):
        Q = self.kernel.columns(idx) / self.strength
        return Q + 1.0 / self.intercept_strength if self.intercept_strength else Q

    def parameter_changes(self, delta_nu, delta_free):
        """``[-dnu / lambda ; db]`` for the columns of ``delta_nu`` (n, k): (n_params, k)."""
        parts = [-delta_nu.toarray() / self.strength, delta_free]
        if self.intercept_strength:  # a penalised intercept moves with the multipliers
            parts[1] = -delta_nu.sum(axis=0).reshape(1, -1) / self.intercept_strength
        return np.concatenate(parts, axis=0)


class RemovalShifts:
    """The parameter change of removing each training row, kept factored.

    A removal moves the multipliers of few rows (the margin rows and those
    the path meets), so the changes are held as a sparse ``dnu`` (column
    ``r``: removing row ``r``) and the free parameters' changes; dense
    parameter changes are formed for a block of removals at a time by
    :meth:`take`, never for all ``n`` at once.

    Parameters
    ----------
    geometry : DesignGeometry or RowSpaceGeometry
    changes : list of ``(r, (rows, delta_nu, delta_free))``
    n_free : int
    """

    def __init__(self, geometry, changes, n_free: int):
        n = geometry.n
        self.geometry = geometry
        self.n_params = geometry.n_params
        rows, cols, vals = [], [], []
        self.delta_free = np.zeros((n_free, n))
        for r, (changed, delta_nu, delta_free) in changes:
            rows.append(changed)
            cols.append(np.full(changed.size, r))
            vals.append(delta_nu)
            self.delta_free[:, r] = delta_free
        if rows:
            data = (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols)))
            self.delta_nu = sp.csc_array(data, shape=(n, n))
        else:
            self.delta_nu = sp.csc_array((n, n))
        #: stored numbers: the multipliers that move, and the free parameters
        self.nnz = self.delta_nu.nnz + np.count_nonzero(self.delta_free)

    def take(self, rows):
        """Parameter changes of removing ``rows`` (a slice or indices): (n_params, k)."""
        cols = np.arange(self.geometry.n)[rows] if isinstance(rows, slice) else np.asarray(rows)
        return self.geometry.parameter_changes(self.delta_nu[:, cols], self.delta_free[:, cols])


class DecrementalPath:
    """Removal of single rows from a hinge-type fit, solved exactly.

    Parameters
    ----------
    geometry : DesignGeometry or RowSpaceGeometry
        Columns of ``Q``, the free parameters' columns ``B`` and how
        multiplier changes become parameter changes.
    weights : ndarray of shape (n,), ``c``
    kinks, slopes : ndarrays of shape (n, n_kinks), (n, n_kinks + 1)
        The loss as a piecewise-linear function of ``z`` (``loss.kinks(y)``).
    z : ndarray of shape (n,), the fitted outputs
    margin : ndarray of int, the rows on a kink
    multipliers : ndarray of shape (n,), ``nu`` at the fit (clipped here to
        the kink rows' intervals)
    max_events : int or None
        Events followed per removal before the current segment is
        extrapolated to the end (``0``: the first-order active-set estimate).
        ``None``: ``10 n``, with a warning if a removal needs more.
        A removal also stops after :meth:`max_stalled` consecutive
        zero-length steps (cycling at a degenerate vertex), with the same
        warning; the rows are in :attr:`truncated_rows_`.
    verbose : int
        Print progress (removals done, events, time) per chunk of removals.
    """

    name = "path"

    def __init__(
        self,
        geometry,
        weights,
        kinks,
        slopes,
        z,
        margin,
        multipliers,
        max_events: int | None = None,
        verbose: int = 0,
    ):
        self.verbose = verbose
        self.geometry = geometry
        self.n = n = geometry.n
        self.B = geometry.B
        self.c = np.asarray(weights, dtype=float)
        self.kinks, self.slopes = kinks, slopes
        self.z0 = np.asarray(z, dtype=float)
        self.first_order = max_events == 0
        # the first-order estimate follows the zero-length pivots of a
        # degenerate vertex only, within the same budget
        self.max_events = 10 * n if max_events is None or self.first_order else int(max_events)
        self.report = SolverReport("active_set" if self.first_order else "path")
        # initial state: on kink j (``seg`` = kink index) or in interval j
        margin = np.asarray(margin, dtype=int)
        #: the fitted kink rows (before :meth:`_start` sets dependent ones aside)
        self.margin_rows = np.sort(margin)
        self.n_margin = margin.size
        self.on0 = np.zeros(n, dtype=bool)
        self.on0[margin] = True
        below = (self.kinks < self.z0[:, None]).sum(axis=1)  # interval index
        nearest = np.argmin(np.abs(self.kinks - self.z0[:, None]), axis=1)
        self.seg0 = np.where(self.on0, nearest, below)
        nu = np.array(multipliers, dtype=float)
        if margin.size:
            lo, hi = self._bounds(margin, self.seg0[margin])
            nu[margin] = np.clip(nu[margin], lo, hi)
        self.nu0 = nu
        self._cache = _ColumnCache(geometry)  # columns of Q met so far
        self._absB = np.abs(self.B)
        self._initial = None  # _KinkSystem of the fitted kink rows
        self._started = False
        self._initial_columns = None  # their columns of Q, (n, |K|)

    @classmethod
    def on_design(
        cls, state, kkt, damping: float = 0.0, max_events: int | None = None, verbose: int = 0
    ):
        """The path on the explainer's design, started from :func:`hinge_kkt`."""
        obj = state.objective
        margin = np.asarray(kkt.margin, dtype=int)
        nu = to_numpy(kkt.bound_gradient).astype(float).copy()
        nu[margin] = to_numpy(kkt.multipliers)
        kinks, slopes = obj.loss.kinks(to_numpy(obj.targets))
        return cls(
            DesignGeometry(state, damping),
            to_numpy(obj.weights),
            kinks,
            slopes,
            to_numpy(state.z)[:, 0],
            margin,
            nu,
            max_events,
            verbose,
        )

    @classmethod
    def in_row_space(
        cls,
        state,
        kernel,
        strength: float,
        fitted_strength: float,
        damping=0.0,
        max_events=None,
        verbose=0,
    ):
        """The path of a kernel model in row space, started from its dual
        coefficients: ``nu = -lambda beta`` (``fitted_strength``) at the fit.

        Rows within ``MARGIN_TOL`` of a kink whose multiplier is not the
        slope of the side they lie on are kink rows; the others get the
        multiplier their side of the kink implies. How far the dual
        coefficients are from that, relative to ``sum_i c_i``, is
        :attr:`kkt_residual` (0 at an exact optimum).
        """
        obj = state.objective
        n = kernel.shape[0]
        theta = to_numpy(state.theta)
        weights = to_numpy(obj.weights).astype(float)
        kinks, slopes = obj.loss.kinks(to_numpy(obj.targets))
        z = to_numpy(state.z)[:, 0]
        geometry = RowSpaceGeometry(kernel, strength, theta.size > n, intercept_strength=damping)
        fitted = -fitted_strength * theta[:n]
        # candidates whose multiplier already is the slope of the side they
        # lie on need not be held on the kink (as in :func:`hinge_kkt`): a
        # fit leaves rows at its bound up to ``MARGIN_TOL`` from the kink
        candidates = margin_rows(state)
        side = (kinks[candidates] < z[candidates, None]).sum(axis=1)
        own = weights[candidates] * slopes[candidates, side]
        slack = 1e-9 * np.maximum(weights[candidates], 1e-300)
        margin = candidates[np.abs(fitted[candidates] - own) > slack]
        path = cls(geometry, weights, kinks, slopes, z, margin, fitted, max_events, verbose)
        off = ~path.on0  # rows in an interval take its slope
        path.nu0[off] = weights[off] * slopes[off, path.seg0[off]]
        path.kkt_residual = float(np.abs(fitted - path.nu0).sum() / max(weights.sum(), 1e-300))
        return path

    #: relative singular value below which kink rows count as dependent
    rank_tol = 1e-9

    def _start(self):
        r"""The kink system every removal starts from, with independent kink rows.

        At a degenerate vertex (duplicated rows, one-hot designs with tied
        values: kink rows that depend on each other) the multipliers are not
        unique: any ``nu_K + v`` with ``v`` in the null space of
        ``[Q_KK; B_K^T]`` gives the same parameters. A *basic* choice is
        made -- the vertex of ``{nu_K within bounds, [Q_KK; B_K^T] nu_K =
        const}`` that a simplex method (HiGHS) returns -- and the kink rows
        whose multiplier it puts at a bound leave the kink set: they sit on
        the kink with the slope of the side their multiplier matches, and
        join again (a zero-length event) only where a removal pushes them
        across. The rows left on the kink are independent, so every segment
        has a unique direction; with dependent kink rows there is none, and
        least-squares directions traded rows in and out of the kink set at
        zero step length without end.
        """
        K = np.flatnonzero(self.on0)
        self.report.details["dependent_kink_rows"] = 0
        if K.size == 0:
            return _KinkSystem.build(self, K)
        A = np.vstack([self._q(K)[K], self.B[K].T])
        sv = np.linalg.svd(A, compute_uv=False)
        rank = int(np.sum(sv > self.rank_tol * max(A.shape) * sv[0])) if sv[0] > 0 else 0
        if rank < K.size:
            self._basic_multipliers(K, A)
            self.report.details["dependent_kink_rows"] = int(K.size - rank)
        return _KinkSystem.build(self, np.flatnonzero(self.on0))

    def _initial_system(self):
        """The fitted kink rows' system (:meth:`_start`, once); None if
        their kink rows are dependent."""
        if not self._started:
            self._started = True
            self._initial = self._start()
            if self._initial is not None:
                self._initial_columns = np.ascontiguousarray(self._q(self._initial.rows))
        return self._initial

    @property
    def degenerate(self) -> bool:
        """Whether the fitted vertex is degenerate: dependent kink rows (set
        aside by :meth:`_start`), a kink row whose multiplier sits at an end
        of its interval, or an intercept that no kink row holds (a collapsed
        fit: every row off the kinks, the intercept one point of an interval
        of optima). Removals then start with zero-length pivots or an
        intercept jump, which a KKT solve over the kink rows does not see."""
        self._initial_system()
        if self.report.details.get("dependent_kink_rows", 0):
            return True
        K = np.flatnonzero(self.on0)
        if self.B.shape[1] and K.size == 0:
            return True  # an intercept no kink row holds: an interval of optima
        lo, hi = self._bounds(K, self.seg0[K])
        slack = 1e-9 * np.maximum(hi - lo, 1e-300)
        return bool(np.any((self.nu0[K] - lo <= slack) | (hi - self.nu0[K] <= slack)))

    def _basic_multipliers(self, K, A):
        """Move the dependent kink rows ``K``'s multipliers to a vertex of
        their feasible set (same parameters, within bounds) and take the rows
        it puts at a bound off the kink."""
        from scipy.optimize import linprog

        lo, hi = self._bounds(K, self.seg0[K])
        nu = self.nu0[K]
        # any objective gives a vertex; a fixed, row-ordered one keeps the
        # choice deterministic
        cost = np.linspace(1.0, 2.0, K.size)
        fit = linprog(cost, A_eq=A, b_eq=A @ nu, bounds=np.column_stack([lo, hi]), method="highs")
        if fit.status != 0:
            return  # keep the fitted multipliers; segments are then solved by least squares
        nu = np.clip(fit.x, lo, hi)
        width = np.maximum(hi - lo, 1e-300)
        at_lo = (nu - lo) <= 1e-9 * width
        at_hi = ~at_lo & ((hi - nu) <= 1e-9 * width)
        inner = ~(at_lo | at_hi)
        nu[at_lo], nu[at_hi] = lo[at_lo], hi[at_hi]
        if inner.any():
            # the rows left on the kink carry exactly what the others do not
            rest = A @ self.nu0[K] - A[:, ~inner] @ nu[~inner]
            nu[inner] = np.linalg.lstsq(A[:, inner], rest, rcond=None)[0]
        kink = self.seg0[K]
        leaving = K[~inner]
        self.nu0[K] = nu
        self.on0[leaving] = False
        self.seg0[leaving] = np.where(at_hi[~inner], kink[~inner] + 1, kink[~inner])
        self.z0[leaving] = self.kinks[leaving, kink[~inner]]

    @staticmethod
    def max_stalled(n_kink_rows: int) -> int:
        """Consecutive zero-length steps allowed before a removal is declared
        cycling: enough to pass every kink row once each way."""
        return 2 * n_kink_rows + 20

    def _bounds(self, rows, seg):
        """Multiplier interval of rows on kink ``seg``: the slopes either side."""
        c = self.c[rows]
        return c * self.slopes[rows, seg], c * self.slopes[rows, seg + 1]

    def _q(self, rows):
        """Columns ``Q[:, rows]``, (n, len(rows)), evaluated once and kept."""
        if len(rows) == 0:
            return np.zeros((self.n, 0))
        return self._cache.take(rows)

    def remove(self, r: int, q_r=None):
        """Removing row ``r``: ``((rows, delta_nu, delta_free), n_events,
        truncated, first_event)``: the multipliers that changed, the change of
        the free parameters, and where (in ``s``, from 0 to 1) the first
        segment of positive length ended -- 1.0 if the kink set held to the
        end, so that the first-order estimate is exact for this row.
        ``q_r``: the column ``Q[:, r]`` if already evaluated."""
        n, nf = self.n, self.B.shape[1]
        nu_r = self.nu0[r]
        delta_free = np.zeros(nf)
        if nu_r == 0.0:  # a row with zero gradient leaves the optimum unchanged
            return (np.zeros(0, dtype=int), np.zeros(0), delta_free), 0, False, 1.0
        nu, z = self.nu0.copy(), self.z0.copy()
        on, seg = self.on0.copy(), self.seg0.copy()
        others = np.ones(n, dtype=bool)
        others[r] = False
        n_kinks = self.kinks.shape[1]
        if q_r is None:  # not kept: only kink rows' columns are
            q_r = self.geometry.columns(np.asarray([r]))[:, 0]
        system = self._initial_system()
        work = None
        if system is not None:
            work = _WorkingColumns(self._cache, self._initial_columns)
            position = system.position(r)
            if position >= 0:
                work.remove(position)
            system = system.without(r)
        # rows on a kink whose constraint the kink rows already imply (a twin
        # of one): their outputs cannot move while the kink set stays, so
        # rounding-level output changes must not make them join
        implied = np.zeros(n, dtype=bool)
        # rows that left the kink set at a zero-length step: at a degenerate
        # vertex (a kink row with its multiplier at a bound) the direction
        # computed with the row on the kink pushes its multiplier out, and
        # the one without it pushes its output back across the kink, both
        # at rounding level; they may not rejoin until the path moves on
        left_here = np.zeros(n, dtype=bool)
        s, events, truncated, stalled, first_event = 0.0, 0, False, 0, None
        while s < 1.0:
            if nf and not np.any(on & others):
                # no kink row holds the intercept: the fit's is one point of
                # an interval of optima (as many rows pull it up as down),
                # and the removal moves it to the end of that interval at once
                met = self._intercept_jump(r, nu_r, z, on, seg, others & ~implied)
                if met is None:
                    truncated = True
                    break
                i, kink, shift = met
                z += shift * self.B[:, 0]
                delta_free[0] += shift
                on[i], seg[i] = True, kink
                events += 1
                system = _KinkSystem.build(self, np.asarray([i]))
                if system is not None:
                    work = _WorkingColumns(self._cache, self._q(system.rows))
                continue
            if system is None:  # dependent kink rows: solve this segment afresh
                K = np.flatnonzero(on & others)
                QK = self._q(K)
                dnu, dfree = _solve_kkt(QK[K], self.B[K], nu_r * q_r[K], nu_r * self.B[r])
                moved, sizes = QK @ dnu, np.abs(QK) @ np.abs(dnu)
            else:
                K = system.rows
                dnu, dfree = system.direction(nu_r * q_r[K], nu_r * self.B[r])
                moved, sizes = work.product(dnu)
            dz = nu_r * q_r - moved + self.B @ dfree
            # output changes at rounding level of the sum that forms them are
            # zero (rows whose constraint the kink rows imply: duplicates, tied
            # one-hot rows); taken at face value they make spurious events
            noise = self.DZ_NOISE * (np.abs(nu_r * q_r) + sizes + self._absB @ np.abs(dfree))
            dz[np.abs(dz) <= noise] = 0.0
            step, event = self._next_event(
                1.0 - s, K, dnu, nu, z, dz, on, seg, others & ~implied & ~left_here, n_kinks
            )
            if first_event is None and step > self.TIE:
                # where the first segment of positive length ends: the
                # first-order estimate holds exactly up to there
                first_event = s + step if event is not None else 1.0
            if event is not None and self.first_order and step > self.TIE:
                # the first-order estimate: the first segment of positive
                # length (after the pivots of a degenerate vertex), extrapolated
                step, event = 1.0 - s, None
            elif event is not None and events >= self.max_events:
                truncated, step, event = not self.first_order, 1.0 - s, None
            z += step * dz
            nu[K] += step * dnu
            delta_free += step * dfree
            s += step
            if event is None:
                break
            # zero-length steps at a degenerate vertex (tied or duplicated
            # rows) can trade the same rows in and out of the kink set; past
            # a bound the segment is extrapolated and said so
            stalled = stalled + 1 if step <= self.TIE else 0
            if not stalled:
                left_here[:] = False
            if stalled > self.max_stalled(K.size):
                truncated = True
                nu[K] += (1.0 - s) * dnu
                delta_free += (1.0 - s) * dfree
                break
            events += 1
            i, joins, new_seg = event
            if system is not None:
                if joins:
                    grown = system.joined(i)
                    if grown is None:
                        implied[i] = True
                        continue
                    work.append(i)
                else:
                    p = system.position(i)
                    grown = system.without(i)
                    if grown is not None and p >= 0:
                        work.remove(p)
                system = grown
            implied[:] = False
            on[i], seg[i] = joins, new_seg
            if not joins:
                nu[i] = self.c[i] * self.slopes[i, new_seg]
                left_here[i] = stalled > 0
        if nf == 1 and not truncated:
            # an intercept that no kink row pins is one point of an interval
            # of optima; take its middle, as libsvm does (and did at the fit)
            delta_free[0] += self._middle_of_intercept_interval(z, nu, on, seg, others)
        nu[r] = 0.0
        changed = np.flatnonzero(nu != self.nu0)
        first_event = 1.0 if first_event is None else min(first_event, 1.0)
        return (
            (changed, nu[changed] - self.nu0[changed], delta_free),
            events,
            truncated,
            first_event,
        )

    def _middle_of_intercept_interval(self, z, nu, on, seg, others) -> float:
        """How far to move the intercept to the middle of its interval of
        optima, 0 if a kink row pins it.

        With every kink row's multiplier at an end of its interval (or no
        kink row), shifting the intercept changes no multiplier as long as
        each row stays on its side: a row in an interval may reach either
        kink of it, a kink row may move into the side its multiplier is the
        slope of. libsvm takes the middle of that interval when no support
        vector is free (``rho = (ub + lb) / 2``); its refits do, so the
        path's end does too."""
        b = self.B[:, 0]
        rows = np.flatnonzero(others & (b != 0))
        n_kinks = self.kinks.shape[1]
        on_rows = rows[on[rows]]
        if on_rows.size:
            lo, hi = self._bounds(on_rows, seg[on_rows])
            slack = 1e-9 * np.maximum(hi - lo, 1e-300)
            inside = (nu[on_rows] > lo + slack) & (nu[on_rows] < hi - slack)
            if inside.any():
                return 0.0
        # each row's room to move its output down and up
        below = np.full(rows.size, -np.inf)
        above = np.full(rows.size, np.inf)
        j = seg[rows]
        kink_rows = on[rows]
        off = ~kink_rows
        # a row in interval j lies between kinks j - 1 and j
        has_lower = off & (j > 0)
        has_upper = off & (j < n_kinks)
        below[has_lower] = self.kinks[rows[has_lower], j[has_lower] - 1] - z[rows[has_lower]]
        above[has_upper] = self.kinks[rows[has_upper], j[has_upper]] - z[rows[has_upper]]
        if kink_rows.any():
            k = rows[kink_rows]
            lo, hi = self._bounds(k, seg[k])
            # the same tolerance as the pinning test above: width-relative
            at_lo = nu[k] - lo <= 1e-9 * np.maximum(hi - lo, 1e-300)
            kj = seg[k]
            # at the left slope: free to move left, to the kink before
            down = np.where(kj > 0, self.kinks[k, np.maximum(kj - 1, 0)] - z[k], -np.inf)
            up = np.where(
                kj + 1 < n_kinks, self.kinks[k, np.minimum(kj + 1, n_kinks - 1)] - z[k], np.inf
            )
            below[kink_rows] = np.where(at_lo, down, 0.0)
            above[kink_rows] = np.where(at_lo, 0.0, up)
        # the output moves by shift * b_i: divide, flipping where b_i < 0
        bi = b[rows]
        lower = np.where(bi > 0, below / bi, above / bi)
        upper = np.where(bi > 0, above / bi, below / bi)
        start, end = lower.max(initial=-np.inf), upper.min(initial=np.inf)
        if not (np.isfinite(start) and np.isfinite(end)) or start > 1e-12 or end < -1e-12:
            return 0.0
        return 0.5 * (start + end)

    def _intercept_jump(self, r, nu_r, z, on, seg, candidates):
        """``(row, kink, shift)``: how far the intercept moves when no kink
        row holds it, and the row whose kink it meets first.

        The intercept's optimality condition ``sum_i nu_i B_i = 0`` holds
        with every multiplier at a slope; removing ``r`` unbalances it by
        ``-nu_r B_r``, so the intercept moves in the direction of
        ``nu_r B_r`` (where the objective falls) until a row reaches a kink
        and its multiplier can take up the difference. None if no row is met
        (an intercept without bound)."""
        up = nu_r * self.B[r, 0] > 0
        b = self.B[:, 0]
        n_kinks = self.kinks.shape[1]
        off = candidates & ~on & (b != 0)
        if up:  # every z_i rises by shift * b_i: the kink above (b_i > 0) or below
            kink = np.where(b > 0, seg, seg - 1)
        else:
            kink = np.where(b > 0, seg - 1, seg)
        off &= (kink >= 0) & (kink < n_kinks)
        if not off.any():
            return None
        idx = np.flatnonzero(off)
        shift = (self.kinks[idx, kink[idx]] - z[idx]) / b[idx]
        k = int(np.argmin(np.abs(shift)))
        return int(idx[k]), int(kink[idx[k]]), float(shift[k])

    def _next_event(self, step, K, dnu, nu, z, dz, on, seg, others, n_kinks):
        """The first event within ``step``: ``(step, (row, on_kink, segment))``.

        Events tied for first (within ``TIE`` of the smallest step: many at a
        degenerate vertex of tied or duplicated rows) go by Bland's rule, the
        lowest row index first: the same rows cannot then be traded in and
        out of the kink set for ever at zero step length."""
        tiny = 1e-13
        steps, rows, joins, segments = [], [], [], []
        if K.size:
            lo, hi = self._bounds(K, seg[K])
            scale = np.maximum(np.abs(dnu).max(), 1e-300)
            with np.errstate(divide="ignore", invalid="ignore"):
                up = np.where(dnu > tiny * scale, (hi - nu[K]) / dnu, np.inf)
                down = np.where(dnu < -tiny * scale, (lo - nu[K]) / dnu, np.inf)
            for d, leave_to in ((up, seg[K] + 1), (down, seg[K])):
                hit = d < np.inf
                steps.append(d[hit])
                rows.append(K[hit])
                joins.append(np.zeros(int(hit.sum()), dtype=bool))
                segments.append(leave_to[hit])
        off = ~on & others  # dz is 0 where it is rounding (see remove)
        rising = off & (dz > 0) & (seg < n_kinks)
        falling = off & (dz < 0) & (seg > 0)
        meeting = np.flatnonzero(rising | falling)
        kink = np.where(rising[meeting], seg[meeting], seg[meeting] - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = (self.kinks[meeting, kink] - z[meeting]) / dz[meeting]
        steps.append(d)
        rows.append(meeting)
        joins.append(np.ones(meeting.size, dtype=bool))
        segments.append(kink)
        steps = np.maximum(np.concatenate(steps), 0.0)
        if steps.size == 0 or steps.min() >= step:
            return step, None
        first = steps <= steps.min() + self.TIE
        rows = np.concatenate(rows)
        k = np.flatnonzero(first)[np.argmin(rows[first])]
        joined, segment = np.concatenate(joins)[k], np.concatenate(segments)[k]
        return float(steps[k]), (int(rows[k]), bool(joined), int(segment))

    #: steps (in ``s``, from 0 to 1) this close count as tied
    TIE = 1e-12
    #: an output change below this fraction of the magnitudes summed to form
    #: it is rounding, not movement
    DZ_NOISE = 1e-10

    def first_events(self, rows) -> np.ndarray:
        """Where removing each of ``rows`` first changes the kink set (in
        ``s`` from 0 to 1; 1.0: never), for all ``n`` rows (1.0 for rows not
        asked about): the cheap check of a first-order estimate."""
        self._initial_system()
        out = np.ones(self.n)
        rows = np.asarray(rows, dtype=int)
        if rows.size:
            columns = self.geometry.columns(rows)
            for k, r in enumerate(rows):
                out[r] = self.remove(int(r), columns[:, k])[3]
        return out

    def shifts(self) -> RemovalShifts:
        """Parameter changes of removing each training row (rows with zero
        gradient do not move the optimum)."""
        started = time.perf_counter()
        events = np.zeros(self.n, dtype=int)
        first_event = np.ones(self.n)
        truncated, changes = [], []
        self._initial_system()
        moving = np.flatnonzero(self.nu0 != 0.0)
        # the removed rows' columns of Q, evaluated a chunk of 8 MiB at a time
        chunk = max(1, 2**20 // self.n)
        for start in range(0, moving.size, chunk):
            rows = moving[start : start + chunk]
            columns = self.geometry.columns(rows)
            for k, r in enumerate(rows):
                change, events[r], cut, first_event[r] = self.remove(int(r), columns[:, k])
                changes.append((int(r), change))
                if cut:
                    truncated.append(int(r))
            if self.verbose and moving.size > chunk:
                done = min(start + chunk, moving.size)
                print(
                    f"[path] {done}/{moving.size} removals, {int(events.sum())} events, "
                    f"{time.perf_counter() - started:.1f} s",
                    flush=True,
                )
        if truncated and not self.first_order:
            warnings.warn(
                f"the decremental path of {len(truncated)} removal(s) (training rows "
                f"{truncated[:10]}{' ...' if len(truncated) > 10 else ''}) did not end: "
                f"more than {self.max_events} active-set events, or zero-length steps "
                "cycling at a degenerate vertex (tied or duplicated rows). Their last "
                "segment is extrapolated, so those estimates are approximate; check "
                "them with skinfluence.retraining.leave_one_out.",
                RuntimeWarning,
                stacklevel=3,
            )
        self.events_ = events
        #: per row, where its removal first changes the kink set (1.0: never)
        self.first_event_ = first_event
        self.truncated_rows_ = np.asarray(truncated, dtype=int)
        self.report.details.update(
            kink_set_changes=int(np.sum(first_event < 1.0)),
            path_events=int(events.sum()),
            margin_rows=int(self.n_margin),
            truncated_rows=len(truncated),
        )
        return RemovalShifts(self.geometry, changes, self.B.shape[1])
