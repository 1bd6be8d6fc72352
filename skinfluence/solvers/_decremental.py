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

Each segment costs one solve of size ``|K| + n_free`` and ``O(n |K|)`` for the
output directions; columns of ``Q`` are evaluated once (``O(nnz)`` each, by
products with the design) and kept.
"""

from __future__ import annotations

import warnings

import numpy as np

from .._backend import asarray, to_numpy


class DecrementalPath:
    """Removal of single rows from a hinge-type fit, solved exactly.

    Parameters
    ----------
    state : ObjectiveState
        At the fitted hinge optimum; the loss must expose ``kinks``.
    kkt : dict
        :func:`hinge_kkt` of that state: the margin rows and multipliers.
    damping : float
        Added to the penalty's diagonal, as in :class:`ActiveSetInverse`.
    max_events : int or None
        Events followed per removal before the current segment is
        extrapolated to the end (and a warning says so). ``None``: ``10 n``.
    """

    name = "path"

    def __init__(self, state, kkt, damping: float = 0.0, max_events: int | None = None):
        obj = state.objective
        self.xp = state.xp
        if obj.regularizer.dense_blocks:
            raise ValueError("the decremental path needs a diagonal penalty")
        self.design = design = state.design
        n, P = design.n_samples, design.n_params
        self.n = n
        r_diag = to_numpy(obj.total_strength * obj.regularizer.diag()) + damping
        self.free = np.flatnonzero(r_diag == 0)
        self.r_inv = np.where(r_diag > 0, 1.0 / np.where(r_diag > 0, r_diag, 1.0), 0.0)
        self.c = to_numpy(obj.weights).astype(float)
        self.kinks, self.slopes = obj.loss.kinks(to_numpy(obj.targets))
        self.z0 = to_numpy(state.z)[:, 0].astype(float)
        self.max_events = 10 * n if max_events is None else int(max_events)
        # free parameters' design columns B, (n, n_free)
        E = np.zeros((P, self.free.size))
        E[self.free, np.arange(self.free.size)] = 1.0
        self.B = to_numpy(design.forward(asarray(E, self.xp))[:, 0, :]).reshape(n, -1)

        # initial state: on kink j (``seg`` = kink index) or in interval j
        margin = np.asarray(kkt["margin"], dtype=int)
        self.on0 = np.zeros(n, dtype=bool)
        self.on0[margin] = True
        below = (self.kinks < self.z0[:, None]).sum(axis=1)  # interval index
        nearest = np.argmin(np.abs(self.kinks - self.z0[:, None]), axis=1)
        self.seg0 = np.where(self.on0, nearest, below)
        nu = to_numpy(kkt["bound_gradient"]).astype(float).copy()
        if margin.size:
            lo, hi = self._bounds(margin, self.seg0[margin])
            nu[margin] = np.clip(to_numpy(kkt["multipliers"]), lo, hi)
        self.nu0 = nu
        self._columns = {}  # row -> column of Q

    def _bounds(self, rows, seg):
        """Multiplier interval of rows on kink ``seg``: the slopes either side."""
        c = self.c[rows]
        return c * self.slopes[rows, seg], c * self.slopes[rows, seg + 1]

    def _q(self, rows):
        """Columns ``Q[:, rows] = Psi_p R_p^{-1} psi_rows``, (n, len(rows)), cached."""
        missing = [int(r) for r in rows if int(r) not in self._columns]
        if missing:
            idx = np.asarray(missing)
            design, xp = self.design, self.xp
            ones = xp.ones((idx.size, 1), dtype=xp.float64)
            V = design.take(idx).expand(ones) * asarray(self.r_inv, xp)[:, None]
            cols = to_numpy(design.forward(V)[:, 0, :])
            for k, r in enumerate(missing):
                self._columns[r] = cols[:, k]
        if len(rows) == 0:
            return np.zeros((self.n, 0))
        return np.stack([self._columns[int(r)] for r in rows], axis=1)

    def remove(self, r: int):
        """Parameter change of removing row ``r``: ``(delta_theta, n_events, truncated)``."""
        n, nf = self.n, self.free.size
        nu_r = self.nu0[r]
        delta_free = np.zeros(nf)
        if nu_r == 0.0:  # a row with zero gradient leaves the optimum unchanged
            return self._assemble(np.zeros(0, dtype=int), np.zeros(0), delta_free), 0, False
        nu, z = self.nu0.copy(), self.z0.copy()
        on, seg = self.on0.copy(), self.seg0.copy()
        others = np.ones(n, dtype=bool)
        others[r] = False
        n_kinks = self.kinks.shape[1]
        q_r = self._q([r])[:, 0]
        s, events, truncated = 0.0, 0, False
        while s < 1.0:
            K = np.flatnonzero(on & others)
            m = K.size
            QK = self._q(K)
            BK = self.B[K]
            A = np.block([[QK[K], -BK], [BK.T, np.zeros((nf, nf))]])
            rhs = nu_r * np.concatenate([q_r[K], self.B[r]])
            try:
                sol = np.linalg.solve(A, rhs)
            except np.linalg.LinAlgError:
                # dependent kink rows: any solution moves the outputs the same way
                sol = np.linalg.lstsq(A, rhs, rcond=None)[0]
            dnu, dfree = sol[:m], sol[m:]
            dz = nu_r * q_r - QK @ dnu + self.B @ dfree
            step, event = 1.0 - s, None
            if events < self.max_events:
                step, event = self._next_event(step, K, dnu, nu, z, dz, on, seg, others, n_kinks)
            elif not truncated:
                truncated = True
            z += step * dz
            nu[K] += step * dnu
            delta_free += step * dfree
            s += step
            if event is None:
                break
            i, joins, new_seg = event
            on[i], seg[i] = joins, new_seg
            if not joins:
                nu[i] = self.c[i] * self.slopes[i, new_seg]
            events += 1
        nu[r] = 0.0
        changed = np.flatnonzero(nu != self.nu0)
        return (
            self._assemble(changed, nu[changed] - self.nu0[changed], delta_free),
            events,
            truncated,
        )

    def _next_event(self, step, K, dnu, nu, z, dz, on, seg, others, n_kinks):
        """The first event within ``step``: ``(step, (row, on_kink, segment))``."""
        event = None
        tiny = 1e-13
        if K.size:
            lo, hi = self._bounds(K, seg[K])
            scale = np.maximum(np.abs(dnu).max(), 1e-300)
            with np.errstate(divide="ignore", invalid="ignore"):
                up = np.where(dnu > tiny * scale, (hi - nu[K]) / dnu, np.inf)
                down = np.where(dnu < -tiny * scale, (lo - nu[K]) / dnu, np.inf)
            for d, leave_to in ((up, seg[K] + 1), (down, seg[K])):
                k = int(np.argmin(d))
                if d[k] < step:
                    step, event = max(float(d[k]), 0.0), (int(K[k]), False, int(leave_to[k]))
        off = ~on & others
        scale = np.maximum(np.abs(dz).max(), 1e-300)
        rising = off & (dz > tiny * scale) & (seg < n_kinks)
        falling = off & (dz < -tiny * scale) & (seg > 0)
        rows = np.arange(self.n)
        target = np.where(
            rising,
            self.kinks[rows, np.minimum(seg, n_kinks - 1)],
            self.kinks[rows, np.maximum(seg - 1, 0)],
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.where(rising | falling, (target - z) / dz, np.inf)
        i = int(np.argmin(d))
        if d[i] < step:
            kink = seg[i] if rising[i] else seg[i] - 1
            step, event = max(float(d[i]), 0.0), (i, True, int(kink))
        return step, event

    def _assemble(self, rows, delta_nu, delta_free):
        """``delta_theta`` from the multipliers' change: ``-R_p^{-1} Psi_p^T dnu``
        on the penalised parameters, ``delta_free`` on the free ones."""
        xp = self.xp
        if rows.size:
            sub = self.design.take(rows)
            grad = to_numpy(sub.backward(asarray(delta_nu[:, None], xp)))
        else:
            grad = np.zeros(self.design.n_params)
        delta = -self.r_inv * grad
        delta[self.free] = delta_free
        return delta

    def shifts(self):
        """Parameter change of removing each training row, (n_params, n_train),
        in the design's namespace; rows with zero gradient do not move it."""
        out = np.zeros((self.design.n_params, self.n))
        events = np.zeros(self.n, dtype=int)
        truncated = 0
        for r in np.flatnonzero(self.nu0 != 0.0):
            out[:, r], events[r], cut = self.remove(int(r))
            truncated += cut
        if truncated:
            warnings.warn(
                f"the decremental path of {truncated} removal(s) met more than "
                f"{self.max_events} active-set events (a degenerate fit); their last "
                "segment is extrapolated, so those estimates are approximate. Check "
                "them with skinfluence.leave_one_out.",
                RuntimeWarning,
                stacklevel=3,
            )
        self.events_ = events
        return asarray(out, self.xp)
