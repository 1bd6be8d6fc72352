r"""Kernel models as linear models on exact kernel features.

By the representer theorem a kernel model's decision function is
``f(x) = sum_j beta_j k(x_j, x) + b`` over its training rows, with penalty
``beta^T K beta / 2`` (the RKHS norm). Writing ``K = Phi Phi^T`` with a
finite feature map ``phi`` on the training rows turns it into a linear model
``f(x) = w . phi(x) + b`` with ``w = Phi^T beta`` and penalty ``||w||^2 / 2``,
so the linear machinery (objective, exact / CG / LiSSA solvers) applies
unchanged and its Hessian is well conditioned, whereas the Hessian in
``beta`` inherits the kernel matrix's tiny eigenvalues.

:class:`KernelFeatureMap` builds ``phi``: an eigen-decomposition of ``K``
for up to ``exact_max`` training rows (``phi(x) = Lambda^{-1/2} V^T
k(X, x)``, dropping numerically null directions), and beyond that a pivoted
Cholesky factorisation stopped at a relative tolerance, which evaluates only
``r`` kernel columns and stores ``n x r`` numbers, never the ``n x n`` matrix.

**Row space.** With the CG solver (or beyond ``exact_max`` rows with
``solver="auto"``) the feature map is skipped: the parameters are the dual
coefficients ``beta`` themselves (and the intercept), the design is the
kernel matrix evaluated on demand in row blocks (:class:`KernelBlock`), and
nothing ``n x n`` is held. ``KernelRidge`` then takes its inverse Hessian in
the row space of the training rows
(:class:`~skinfluence.solvers.RowSpaceInverse`); ``SVC`` and ``SVR`` run the
active set and the decremental path on kernel columns of their margin rows
(:class:`~skinfluence.solvers._decremental.RowSpaceGeometry`).

=============  ===========================================================
estimator      objective minimised by scikit-learn, in ``w``
=============  ===========================================================
KernelRidge    ``sum_i s_i (y_i - f_i)^2 + alpha ||w||^2``
SVC (binary)   ``C sum_i s_i c_{y_i} hinge(y_i f_i) + ||w||^2 / 2``
SVR            ``C sum_i s_i max(0, |y_i - f_i| - epsilon) + ||w||^2 / 2``
=============  ===========================================================
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from sklearn.kernel_ridge import KernelRidge
from sklearn.metrics.pairwise import pairwise_kernels
from sklearn.svm import SVC, SVR

from .._backend import asarray, block_slices, pivoted_cholesky
from ._design import BlockDesign, with_intercept
from ._estimators import ModelSpec
from ._losses import Prediction, SmoothedEpsilonInsensitive, SmoothedHinge, SquaredError
from ._objective import Regularizer
from ._svm import LinearKernelSVCSpec, check_binary_svc


def _check_semidefinite(smallest, largest, tol=1e-8):
    """Refuse kernels whose training matrix has clearly negative eigenvalues
    (or Schur complements): they define no feature space, so the model has no
    linear form whose Hessian influence functions could invert."""
    if smallest < -tol * max(largest, 1e-300):
        raise ValueError(
            "the kernel matrix of the training rows is not positive semi-definite "
            f"(an eigenvalue of {smallest:.3g} against a largest of {largest:.3g}), so "
            "the kernel defines no feature space and influence functions are undefined. "
            "This happens with the sigmoid kernel for most gamma / coef0; use a positive "
            "semi-definite kernel such as 'rbf', 'laplacian', 'poly' or 'linear'."
        )


class KernelFeatureMap:
    """Features ``phi`` with ``phi(x_i) . phi(x_j) = k(x_i, x_j)`` on training rows.

    Parameters
    ----------
    kernel : callable ``(A, idx) -> K(A, X_train[idx])``
        ``idx=None`` means all training rows.
    n_train : int
    tol : float
        Relative size (to the largest) below which eigenvalues, or the
        pivoted Cholesky's residual diagonal, count as zero.
    exact_max : int
        Training rows up to which ``K`` is formed and eigen-decomposed.
    max_rank : int or None
        Cap on the number of features of the pivoted Cholesky path.
    block_rows : int
        Rows of kernel values evaluated at once.
    """

    def __init__(self, kernel, n_train, tol=1e-10, exact_max=3000, max_rank=None, block_rows=2048):
        self.kernel = kernel
        self.n_train = n_train
        self.tol = tol
        self.exact_max = exact_max
        self.max_rank = max_rank
        self.block_rows = block_rows

    def fit(self, diag_train):
        n = self.n_train
        if n <= self.exact_max:
            K = self.kernel(None, None)
            lam, V = scipy.linalg.eigh(K)
            _check_semidefinite(lam.min(), lam.max())
            keep = lam > self.tol * max(lam.max(), 0.0)
            self.method_ = "eigh"
            self.projection_ = V[:, keep] / np.sqrt(lam[keep])
            self.pivots_ = None
        else:
            self._pivoted_cholesky(np.asarray(diag_train, dtype=float))
        self.n_features_ = self.projection_.shape[1] if self.pivots_ is None else len(self.pivots_)
        return self

    def _pivoted_cholesky(self, d):
        d_max = float(np.max(d))
        L, pivots, residual = pivoted_cholesky(
            lambda j: self.kernel(None, [j])[:, 0],
            d,
            self.tol,
            self.max_rank,
            check=lambda residual: _check_semidefinite(residual.min(), d_max),
        )
        self.method_ = "pivoted_cholesky"
        self.pivots_ = pivots
        self.L_pivots_ = L[pivots, :]  # lower triangular in pivot order
        self.residual_ = residual

    def transform(self, A):
        """``phi(A)``; ``A=None`` means the training rows."""
        n = self.n_train if A is None else A.shape[0]
        out = []
        for rows in block_slices(n, self.block_rows):
            Ab = None if A is None else A[rows]
            if self.pivots_ is None:
                Kb = self.kernel(Ab, None)
                if A is None:
                    Kb = Kb[rows]
                out.append(Kb @ self.projection_)
            else:
                Kb = self.kernel(Ab, self.pivots_)
                if A is None:
                    Kb = Kb[rows]
                out.append(scipy.linalg.solve_triangular(self.L_pivots_, Kb.T, lower=True).T)
        return np.concatenate(out, axis=0)


class KernelBlock:
    """``[scale * K(A, X_train), 1]`` evaluated on demand, row block by row block.

    A design block that never holds the kernel matrix: products with it cost
    one pass of kernel evaluations over ``A`` and ``block_rows x n_train``
    numbers at a time. ``.T`` is the transposed operator.

    Parameters
    ----------
    kernel : callable ``(A, idx) -> K(A, X_train[idx])``
        As in :class:`KernelFeatureMap`; ``idx=None`` means all training rows.
    A : ndarray of shape (n_rows, n_features)
        The rows (training rows, or new rows; rows of ``K`` when precomputed).
    n_train : int
    block_rows : int
    scale : float
    intercept : bool
        Append a column of ones (the intercept's design column).
    """

    def __init__(
        self, kernel, A, n_train, block_rows=1024, scale=1.0, intercept=False, transposed=False
    ):
        self.kernel = kernel
        self.A = A
        self.n_train = n_train
        self.block_rows = block_rows
        self.scale = scale
        self.intercept = intercept
        self.transposed = transposed
        cols = n_train + int(intercept)
        self.shape = (cols, A.shape[0]) if transposed else (A.shape[0], cols)
        self.ndim = 2

    def _blocks(self):
        for rows in block_slices(self.A.shape[0], self.block_rows):
            yield rows, self.scale * self.kernel(self.A[rows], None)

    def _like(self, **changes):
        args = {
            "block_rows": self.block_rows,
            "scale": self.scale,
            "intercept": self.intercept,
            "transposed": self.transposed,
        }
        args.update(changes)
        A = args.pop("A", self.A)
        return KernelBlock(self.kernel, A, self.n_train, **args)

    def __matmul__(self, V):
        V = np.asarray(V)
        n = self.n_train
        if self.transposed:
            out = np.zeros((self.shape[0], *V.shape[1:]))
            for rows, Kb in self._blocks():
                out[:n] += Kb.T @ V[rows]
            if self.intercept:
                out[n] = V.sum(axis=0)
            return out
        out = np.concatenate([Kb @ V[:n] for _, Kb in self._blocks()], axis=0)
        return out + V[n] if self.intercept else out

    @property
    def T(self):
        return self._like(transposed=not self.transposed)

    def scaled(self, factor):
        return self._like(scale=self.scale * factor)

    def take_rows(self, rows):
        if self.transposed:
            raise ValueError("take rows of the kernel block, not of its transpose")
        A = self.A[rows] if isinstance(rows, slice) else self.A[np.asarray(rows, dtype=int)]
        return self._like(A=A)

    def columns(self, idx):
        """Kernel columns ``idx`` of the (untransposed) block: (n_rows, len(idx))."""
        return self.scale * self.kernel(self.A, idx)

    def dense(self):
        """The block as an array: call it on bounded sets of rows only."""
        K = self.scale * self.kernel(self.A, None)
        if self.intercept:
            K = np.concatenate([K, np.ones((K.shape[0], 1))], axis=1)
        return K.T if self.transposed else K

    def row_sq_norms(self):
        if self.transposed:
            raise ValueError("row norms of the transposed kernel block are not needed")
        norms = np.concatenate([np.sum(Kb * Kb, axis=1) for _, Kb in self._blocks()])
        return norms + 1.0 if self.intercept else norms


class KernelModelSpec(ModelSpec):
    """A kernel model as a linear model on :class:`KernelFeatureMap` features.

    Subclasses set the loss and penalty, and ``dual_coefficients`` (``beta``
    over all training rows, shape (n_train, n_outputs)).
    """

    kernel_tol = 1e-10
    #: training rows up to which solver="auto" uses exact kernel features
    exact_max = 3000
    #: whether the model can be explained in row space (see ModelSpec.prepared)
    supports_row_space = False
    row_local = False  # the features are kernel values against all training rows

    def __init__(self, est, *, temperature=None):
        super().__init__(est, temperature=temperature)
        self.pairwise = est.kernel == "precomputed"

    # -- kernel evaluation ------------------------------------------------
    def regularizer(self, xp, dtype):
        if not self.row_space:
            return super().regularizer(xp, dtype)
        # the RKHS norm in dual coefficients, beta^T K beta, per output; the
        # intercept (last parameter of each output when fitted) is free
        n = self._X_train.shape[0]
        width = n + int(self.fit_intercept)
        K = self.training_kernel()
        pen = np.broadcast_to(np.asarray(self.coef_penalty, dtype=float), (self.n_outputs,))
        blocks = [(k * width, K.scaled(pen[k])) for k in range(self.n_outputs)]
        return Regularizer(asarray(np.zeros(width * self.n_outputs), xp, dtype), blocks, xp=xp)

    def _kernel_params(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def kernel_values(self, A, B):
        """``K(A, B)`` exactly as the estimator evaluates its kernel."""
        return pairwise_kernels(
            A, B, metric=self.estimator.kernel, filter_params=True, **self._kernel_params()
        )

    def prepare(self, X_train):
        """Fit the feature map on the training rows (``K`` itself when precomputed)."""
        X_train = np.asarray(X_train.toarray() if hasattr(X_train, "toarray") else X_train)
        n = self.n_train = X_train.shape[0]
        if self.pairwise:
            if X_train.shape[1] != n:
                raise ValueError(
                    "a precomputed-kernel model needs the square training kernel "
                    f"matrix K(X_train, X_train); got shape {X_train.shape}."
                )

            def kernel(A, idx):
                A = X_train if A is None else A
                return A if idx is None else A[:, idx]

            diag = np.diag(X_train)
        else:

            def kernel(A, idx):
                A = X_train if A is None else A
                B = X_train if idx is None else X_train[idx]
                return self.kernel_values(A, B)

            # diagonal blocks of at most kernel_block_bytes
            block = int(min(1024, max(1, np.sqrt(self.kernel_block_bytes / 8))))
            diag = np.concatenate(
                [
                    np.diag(self.kernel_values(X_train[s], X_train[s]))
                    for s in block_slices(n, block)
                ]
            )
        if self.row_space:
            self._kernel, self._X_train, self.kernel_diagonal = kernel, X_train, diag
            self.n_features = n
            return
        self.feature_map = KernelFeatureMap(
            kernel, n, tol=self.kernel_tol, exact_max=self.exact_max
        ).fit(diag)
        self.n_features = self.feature_map.n_features_
        self._train_features = self.feature_map.transform(None)

    def kernel_block(self, X, intercept=False):
        """:class:`KernelBlock` of rows ``X`` against the training rows (row space)."""
        X = np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=float)
        n = self._X_train.shape[0]
        block_rows = max(1, self.kernel_block_bytes // (8 * max(1, n)))
        return KernelBlock(self._kernel, X, n, block_rows, intercept=intercept)

    def training_kernel(self):
        """The training rows' kernel matrix as a :class:`KernelBlock` (row space)."""
        return self.kernel_block(self._X_train)

    def make_design(self, X, xp):
        if self.row_space:
            block = self.kernel_block(X, intercept=self.fit_intercept)
            return BlockDesign([block] * self.n_outputs, xp)
        Phi = self.feature_map.transform(np.asarray(X))
        Phi = asarray(Phi, xp, X.dtype)
        Xt = with_intercept(Phi, xp) if self.fit_intercept else Phi
        return BlockDesign([Xt] * self.n_outputs, xp)

    def theta(self, estimator=None):
        if estimator is not None and estimator is not self.estimator:
            raise ValueError("kernel models' parameters live on the explained training rows")
        beta = self.dual_coefficients()  # (n_train, K)
        W = beta if self.row_space else self._train_features.T @ beta  # (r, K)
        if not self.fit_intercept:
            return W.T.ravel()
        b = np.broadcast_to(np.asarray(self.estimator.intercept_, float), (self.n_outputs,))
        return np.concatenate([W.T, b[:, None]], axis=1).ravel()

    def raw_prediction(self, estimator, X, keep=None):
        """Raw outputs of a (re)fitted kernel model on ``X``; ``keep`` masks the
        training columns of a precomputed kernel refitted on those rows."""
        if self.pairwise and keep is not None:
            X = X[:, keep]
        out = (
            estimator.decision_function(X)
            if hasattr(estimator, "decision_function")
            else estimator.predict(X)
        )
        return np.asarray(out, dtype=float).reshape(X.shape[0], -1)


class KernelRidgeSpec(KernelModelSpec):
    def __init__(self, est, *, temperature=None):
        super().__init__(est, temperature=temperature)
        dual = np.asarray(est.dual_coef_, dtype=float)
        self.n_outputs = 1 if dual.ndim == 1 else dual.shape[1]
        self.fit_intercept = False
        self.coef_penalty = 2.0 * np.asarray(est.alpha, dtype=float)
        self.train_loss = self.test_loss = SquaredError(1.0)
        self.prediction = Prediction("raw")

    def _kernel_params(self):
        # KernelRidge._get_kernel: a callable kernel gets kernel_params and is
        # called on pairs of rows; a named one gets gamma / degree / coef0 only
        est = self.estimator
        if callable(est.kernel):
            return dict(est.kernel_params or {})
        return {"gamma": est.gamma, "degree": est.degree, "coef0": est.coef0}

    def dual_coefficients(self):
        dual = np.asarray(self.estimator.dual_coef_, dtype=float)
        return dual.reshape(dual.shape[0], -1)

    @property
    def supports_row_space(self):
        # one penalty for every output: the outputs share one Hessian block
        return np.unique(self.coef_penalty).size == 1


class _LibsvmKernelSpec(KernelModelSpec):
    supports_row_space = True

    def __init__(self, est, *, temperature=None):
        super().__init__(est, temperature=temperature)
        self.n_outputs = 1
        self.fit_intercept = True
        self.row_scale = float(est.C)
        self.coef_penalty = 1.0
        self.prediction = Prediction("raw")
        self.smooth = False

    def _kernel_params(self):
        est = self.estimator
        return {"gamma": est._gamma, "degree": est.degree, "coef0": est.coef0}

    def kernel_values(self, A, B):
        # libsvm calls a callable kernel on whole matrices: kernel(X, X_fit)
        if callable(self.estimator.kernel):
            return np.asarray(self.estimator.kernel(A, B), dtype=float)
        return super().kernel_values(A, B)

    def dual_coefficients(self):
        est = self.estimator
        beta = np.zeros((self.n_train, 1))
        beta[est.support_, 0] = np.asarray(est.dual_coef_, dtype=float)[0]
        return beta


class KernelSVCSpec(_LibsvmKernelSpec):
    is_classifier = True

    def __init__(self, est, *, temperature=None):
        check_binary_svc(est)
        super().__init__(est, temperature=temperature)
        self.classes_ = est.classes_
        self.train_loss = self.test_loss = SmoothedHinge(self.temperature)


class KernelSVRSpec(_LibsvmKernelSpec):
    def __init__(self, est, *, temperature=None):
        super().__init__(est, temperature=temperature)
        self.train_loss = SmoothedEpsilonInsensitive(float(est.epsilon), self.temperature)
        self.test_loss = SquaredError(1.0)


def svc_spec(est, *, temperature=None):
    """``SVC``: primal weights for the linear kernel, kernel features otherwise."""
    if est.kernel == "linear":
        return LinearKernelSVCSpec(est, temperature=temperature)
    return KernelSVCSpec(est, temperature=temperature)


KERNEL_SPECS = {KernelRidge: KernelRidgeSpec, SVC: svc_spec, SVR: KernelSVRSpec}
