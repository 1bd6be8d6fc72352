"""Pointwise losses of a raw prediction ``z`` with their first two derivatives.

Every loss here is a function ``l(y_i, z_i)`` of one row's encoded target
``y_i`` (a row of a float array of shape ``(n, n_targets)``) and its raw
prediction ``z_i`` (a row of shape ``(n, n_outputs)``: decision function,
linear predictor or kernel expansion). Losses are written for the array
namespace of ``z`` and return

* ``value(y, z)``     -- shape ``(n,)``,
* ``gradient(y, z)``  -- ``d l / d z``, shape ``(n, n_outputs)``,
* ``hessian(y, z)``   -- ``d^2 l / d z^2``, shape ``(n, n_outputs, n_outputs)``.

Training objectives and test losses use the same classes; a loss used only as
a test loss may leave ``hessian`` unimplemented.
"""

from __future__ import annotations

import numpy as np

from .._backend import get_namespace


def _sigmoid(x, xp):
    # tanh form: stable for both signs, array-API only.
    return 0.5 * (1.0 + xp.tanh(0.5 * x))


def _softplus(x, xp):
    """``log(1 + exp(x))`` without overflow."""
    return xp.maximum(x, 0.0) + xp.log1p(xp.exp(-xp.abs(x)))


def _diag_hessian(d, xp):
    """``(n, K)`` diagonal entries as ``(n, K, K)`` matrices."""
    K = d.shape[1]
    eye = xp.eye(K, dtype=d.dtype)
    return d[:, :, None] * eye[None, :, :]


def _softmax(z, xp):
    m = xp.max(z, axis=1, keepdims=True)
    e = xp.exp(z - m)
    return e / xp.sum(e, axis=1, keepdims=True)


def _logsumexp(z, xp):
    m = xp.max(z, axis=1, keepdims=True)
    return m[:, 0] + xp.log(xp.sum(xp.exp(z - m), axis=1))


class PointwiseLoss:
    """Base class. ``shift_invariant`` marks losses unchanged when the same
    constant is added to every output (the multinomial softmax); their Hessian
    is singular along that direction."""

    shift_invariant = False
    #: whether l is twice continuously differentiable; hinge-type losses are not
    smooth = True
    #: whether l is quadratic in z: one Newton step then reaches the optimum
    quadratic = False

    def value(self, y, z):  # pragma: no cover - abstract
        raise NotImplementedError

    def gradient(self, y, z):  # pragma: no cover - abstract
        raise NotImplementedError

    def hessian(self, y, z):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} is a test loss only")

    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


class SquaredError(PointwiseLoss):
    r"""``l = scale * sum_k (y_k - z_k)^2``.

    ``scale=1`` for :class:`~sklearn.linear_model.Ridge` and
    :class:`~sklearn.linear_model.LinearRegression`, ``scale=1/2`` for
    ``SGDRegressor(loss="squared_error")``.
    """

    quadratic = True

    def __init__(self, scale: float = 1.0):
        self.scale = scale

    def value(self, y, z):
        xp = get_namespace(z)
        return self.scale * xp.sum((y - z) ** 2, axis=1)

    def gradient(self, y, z):
        return -2.0 * self.scale * (y - z)

    def hessian(self, y, z):
        xp = get_namespace(z)
        return _diag_hessian(xp.full(z.shape, 2.0 * self.scale, dtype=z.dtype), xp)


class SquaredErrorExpLink(PointwiseLoss):
    r"""Squared error of a log-link prediction: ``l = (y - exp(z))^2``.

    The test loss of Poisson regression: the error of ``predict``, not the
    deviance the model was fitted with.
    """

    def value(self, y, z):
        xp = get_namespace(z)
        return xp.sum((y - xp.exp(z)) ** 2, axis=1)

    def gradient(self, y, z):
        xp = get_namespace(z)
        mu = xp.exp(z)
        return -2.0 * (y - mu) * mu

    def hessian(self, y, z):
        xp = get_namespace(z)
        mu = xp.exp(z)
        return _diag_hessian(2.0 * mu * mu - 2.0 * (y - mu) * mu, xp)


class HalfPoissonDeviance(PointwiseLoss):
    r"""``l = exp(z) - y z`` (half the Poisson deviance, up to a constant in y)."""

    def value(self, y, z):
        xp = get_namespace(z)
        return xp.sum(xp.exp(z) - y * z, axis=1)

    def gradient(self, y, z):
        xp = get_namespace(z)
        return xp.exp(z) - y

    def hessian(self, y, z):
        xp = get_namespace(z)
        return _diag_hessian(xp.exp(z), xp)


class BinomialLogLoss(PointwiseLoss):
    r"""Log-loss of independent sigmoids, ``y_k`` in {0, 1}:

    ``l = sum_k log(1 + exp(z_k)) - y_k z_k``.

    With one output this is binary logistic regression (and
    ``SGDClassifier(loss="log_loss")``); with ``K`` outputs and one-hot ``y``
    it is the one-vs-rest training objective.
    """

    def value(self, y, z):
        xp = get_namespace(z)
        return xp.sum(_softplus(z, xp) - y * z, axis=1)

    def gradient(self, y, z):
        xp = get_namespace(z)
        return _sigmoid(z, xp) - y

    def hessian(self, y, z):
        xp = get_namespace(z)
        p = _sigmoid(z, xp)
        return _diag_hessian(p * (1.0 - p), xp)


class MultinomialLogLoss(PointwiseLoss):
    r"""Softmax log-loss with one-hot ``y``:
    ``l = logsumexp(z) - sum_k y_k z_k``.

    Gradient ``p - y`` and Hessian ``diag(p) - p p^T`` with ``p = softmax(z)``;
    the Hessian annihilates the all-ones vector (``shift_invariant``).
    """

    shift_invariant = True

    def value(self, y, z):
        xp = get_namespace(z)
        return _logsumexp(z, xp) - xp.sum(y * z, axis=1)

    def gradient(self, y, z):
        xp = get_namespace(z)
        return _softmax(z, xp) - y

    def hessian(self, y, z):
        xp = get_namespace(z)
        p = _softmax(z, xp)
        return _diag_hessian(p, xp) - p[:, :, None] * p[:, None, :]


class OvRNormalizedLogLoss(PointwiseLoss):
    r"""Log-loss of one-vs-rest probabilities normalised to sum to one, as
    ``predict_proba`` of one-vs-rest linear classifiers computes them:

    ``l = -log(s_y / sum_k s_k)``, ``s_k = sigmoid(z_k)``, ``y`` one-hot.
    """

    def value(self, y, z):
        xp = get_namespace(z)
        s = _sigmoid(z, xp)
        return -xp.log(xp.sum(y * s, axis=1)) + xp.log(xp.sum(s, axis=1))

    def gradient(self, y, z):
        xp = get_namespace(z)
        s = _sigmoid(z, xp)
        return -y * (1.0 - s) + s * (1.0 - s) / xp.sum(s, axis=1, keepdims=True)


class ModifiedHuber(PointwiseLoss):
    r"""``SGDClassifier(loss="modified_huber")`` per output, ``y`` in {0, 1}:
    with ``m = (2y - 1) z``, ``l = max(0, 1 - m)^2`` for ``m >= -1`` and
    ``-4 m`` otherwise."""

    def value(self, y, z):
        xp = get_namespace(z)
        m = (2.0 * y - 1.0) * z
        quad = xp.maximum(1.0 - m, 0.0) ** 2
        return xp.sum(xp.where(m >= -1.0, quad, -4.0 * m), axis=1)

    def gradient(self, y, z):
        xp = get_namespace(z)
        s = 2.0 * y - 1.0
        m = s * z
        return s * xp.where(m >= -1.0, -2.0 * xp.maximum(1.0 - m, 0.0), -4.0)

    def hessian(self, y, z):
        xp = get_namespace(z)
        m = (2.0 * y - 1.0) * z
        d = xp.where((m >= -1.0) & (m < 1.0), 2.0, 0.0)
        return _diag_hessian(xp.astype(d, z.dtype), xp)


class SquaredHinge(PointwiseLoss):
    r"""``l = max(0, 1 - m)^2`` with ``m = (2y - 1) z``, per output."""

    def value(self, y, z):
        xp = get_namespace(z)
        m = (2.0 * y - 1.0) * z
        return xp.sum(xp.maximum(1.0 - m, 0.0) ** 2, axis=1)

    def gradient(self, y, z):
        xp = get_namespace(z)
        s = 2.0 * y - 1.0
        return -2.0 * s * xp.maximum(1.0 - s * z, 0.0)

    def hessian(self, y, z):
        xp = get_namespace(z)
        m = (2.0 * y - 1.0) * z
        return _diag_hessian(xp.where(m < 1.0, 2.0, 0.0), xp)


class SmoothedHinge(PointwiseLoss):
    r"""Koh & Liang's smoothed hinge, per output, ``y`` in {0, 1}:

    ``l = t * log(1 + exp((1 - m) / t))``, ``m = (2y - 1) z``.

    It tends to ``max(0, 1 - m)`` as the temperature ``t`` goes to zero; its
    curvature ``sigmoid(u)(1 - sigmoid(u)) / t``, ``u = (1 - m) / t``, is
    concentrated on the margin.
    """

    def __init__(self, temperature: float):
        self.temperature = temperature

    def value(self, y, z):
        xp = get_namespace(z)
        t = self.temperature
        m = (2.0 * y - 1.0) * z
        return xp.sum(t * _softplus((1.0 - m) / t, xp), axis=1)

    def gradient(self, y, z):
        xp = get_namespace(z)
        t = self.temperature
        s = 2.0 * y - 1.0
        return -s * _sigmoid((1.0 - s * z) / t, xp)

    def hessian(self, y, z):
        xp = get_namespace(z)
        t = self.temperature
        m = (2.0 * y - 1.0) * z
        p = _sigmoid((1.0 - m) / t, xp)
        return _diag_hessian(p * (1.0 - p) / t, xp)

    def kink_distance(self, y, z):
        """Distance of each row's margin ``m`` from the hinge's kink at 1."""
        xp = get_namespace(z)
        return xp.abs((2.0 * y - 1.0) * z - 1.0)

    def subgradient(self, y, z):
        """The unsmoothed hinge's gradient off the kink: ``-(2y - 1)`` inside
        the margin, 0 outside (the ``t -> 0`` limit of :meth:`gradient`)."""
        xp = get_namespace(z)
        s = 2.0 * y - 1.0
        return xp.where(s * z < 1.0, -s, 0.0)

    def kinks(self, y):
        """The unsmoothed hinge as a piecewise-linear function of ``z``, per row
        (single output, NumPy): the kink ``z = 2y - 1`` as an (n, 1) array and
        the slopes left and right of it, (n, 2): ``(-1, 0)`` for class 1,
        ``(0, 1)`` for class 0."""
        s = 2.0 * np.asarray(y, dtype=float)[:, 0] - 1.0
        slopes = np.stack([np.where(s > 0, -1.0, 0.0), np.where(s > 0, 0.0, 1.0)], axis=1)
        return s[:, None], slopes


class OvRClassWeighted(PointwiseLoss):
    r"""A one-vs-rest loss with ``SGDClassifier``'s multiclass class weights.

    Output ``k`` is the binary problem "class k against the rest"; scikit-learn
    weights its positive rows by ``c_k`` and its negative rows by 1, so with
    one-hot ``y``

    ``l = sum_k (1 + (c_k - 1) y_k) l_k(y_k, z_k)``

    for a loss ``l_k`` that is a sum over outputs (diagonal Hessian).
    """

    def __init__(self, loss: PointwiseLoss, class_weight):
        self.loss = loss
        self.class_weight = class_weight

    def output_weights(self, y):
        """``1 + (c_k - 1) y_k``, shape (n, K)."""
        return 1.0 + (self.class_weight[None, :] - 1.0) * y

    def value(self, y, z):
        xp = get_namespace(z)
        c = self.output_weights(y)
        cols = [self.loss.value(y[:, k : k + 1], z[:, k : k + 1]) for k in range(z.shape[1])]
        return xp.sum(c * xp.stack(cols, axis=1), axis=1)

    def gradient(self, y, z):
        return self.output_weights(y) * self.loss.gradient(y, z)

    def hessian(self, y, z):
        return self.output_weights(y)[:, :, None] * self.loss.hessian(y, z)


class Huber(PointwiseLoss):
    r"""``SGDRegressor(loss="huber")``: with ``r = y - z``,
    ``l = r^2 / 2`` for ``|r| <= epsilon`` and ``epsilon |r| - epsilon^2 / 2``
    otherwise."""

    def __init__(self, epsilon: float):
        self.epsilon = epsilon

    def value(self, y, z):
        xp = get_namespace(z)
        e = self.epsilon
        a = xp.abs(y - z)
        return xp.sum(xp.where(a <= e, 0.5 * a**2, e * a - 0.5 * e**2), axis=1)

    def gradient(self, y, z):
        xp = get_namespace(z)
        r = y - z
        return -xp.clip(r, -self.epsilon, self.epsilon)

    def hessian(self, y, z):
        xp = get_namespace(z)
        return _diag_hessian(xp.where(xp.abs(y - z) <= self.epsilon, 1.0, 0.0), xp)


class SmoothedEpsilonInsensitive(PointwiseLoss):
    r"""Smoothed epsilon-insensitive loss of support vector regression:

    ``l = t * [log(1 + exp((r - eps) / t)) + log(1 + exp((-r - eps) / t))]``,
    ``r = y - z``; it tends to ``max(0, |r| - eps)`` as ``t`` goes to zero.
    """

    def __init__(self, epsilon: float, temperature: float):
        self.epsilon = epsilon
        self.temperature = temperature

    def value(self, y, z):
        xp = get_namespace(z)
        t, e = self.temperature, self.epsilon
        r = y - z
        return xp.sum(t * (_softplus((r - e) / t, xp) + _softplus((-r - e) / t, xp)), axis=1)

    def gradient(self, y, z):
        xp = get_namespace(z)
        t, e = self.temperature, self.epsilon
        r = y - z
        return -_sigmoid((r - e) / t, xp) + _sigmoid((-r - e) / t, xp)

    def hessian(self, y, z):
        xp = get_namespace(z)
        t, e = self.temperature, self.epsilon
        r = y - z
        a = _sigmoid((r - e) / t, xp)
        b = _sigmoid((-r - e) / t, xp)
        return _diag_hessian((a * (1.0 - a) + b * (1.0 - b)) / t, xp)

    def kink_distance(self, y, z):
        """Distance of each residual from the tube's edge ``|r| = epsilon``."""
        xp = get_namespace(z)
        return xp.abs(xp.abs(y - z) - self.epsilon)

    def subgradient(self, y, z):
        """``-sign(r)`` outside the tube, 0 inside (the ``t -> 0`` gradient)."""
        xp = get_namespace(z)
        r = y - z
        return xp.where(xp.abs(r) > self.epsilon, -xp.sign(r), 0.0)

    def kinks(self, y):
        """``max(0, |y - z| - epsilon)`` as a piecewise-linear function of ``z``
        (single output, NumPy): kinks ``y -/+ epsilon``, (n, 2), and slopes
        ``(-1, 0, 1)``, (n, 3)."""
        y = np.asarray(y, dtype=float)[:, 0]
        kinks = np.stack([y - self.epsilon, y + self.epsilon], axis=1)
        return kinks, np.broadcast_to(np.array([-1.0, 0.0, 1.0]), (y.size, 3))


class HuberWithScale(PointwiseLoss):
    r""":class:`~sklearn.linear_model.HuberRegressor`'s loss, jointly in the
    prediction and the scale. Two outputs, ``z = (x w + c, sigma)``; with
    ``r = y - z_0``::

        l = sigma + r^2 / sigma                            if |r| <= eps sigma
        l = sigma + 2 eps |r| - eps^2 sigma                otherwise

    (Owen's concomitant scale estimate; ``l`` is jointly convex in
    ``(z_0, sigma)``.)
    """

    def __init__(self, epsilon: float):
        self.epsilon = epsilon

    def _parts(self, y, z):
        xp = get_namespace(z)
        r = y[:, 0] - z[:, 0]
        sigma = z[:, 1]
        inlier = xp.abs(r) <= self.epsilon * sigma
        return xp, r, sigma, inlier

    def value(self, y, z):
        xp, r, sigma, inlier = self._parts(y, z)
        e = self.epsilon
        return sigma + xp.where(inlier, r**2 / sigma, 2 * e * xp.abs(r) - e**2 * sigma)

    def gradient(self, y, z):
        xp, r, sigma, inlier = self._parts(y, z)
        e = self.epsilon
        g0 = xp.where(inlier, -2.0 * r / sigma, -2.0 * e * xp.sign(r))
        g1 = xp.where(inlier, 1.0 - (r / sigma) ** 2, 1.0 - e**2)
        return xp.stack([g0, g1], axis=1)

    def hessian(self, y, z):
        xp, r, sigma, inlier = self._parts(y, z)
        zero = xp.zeros_like(r)
        h00 = xp.where(inlier, 2.0 / sigma, zero)
        h01 = xp.where(inlier, 2.0 * r / sigma**2, zero)
        h11 = xp.where(inlier, 2.0 * r**2 / sigma**3, zero)
        row0 = xp.stack([h00, h01], axis=1)
        row1 = xp.stack([h01, h11], axis=1)
        return xp.stack([row0, row1], axis=1)


class Prediction(PointwiseLoss):
    r"""The model's output itself, for influence on predictions.

    ``kind="raw"``: ``z_k`` (decision function or linear prediction);
    ``"exp"``: ``exp(z_k)`` (log-link regressors); ``"sigmoid"``:
    ``sigmoid(y z)`` with ``y = +1`` (class 1) or ``-1`` (class 0);
    ``"softmax"``: ``softmax(z)_k``; ``"ovr"``: the normalised one-vs-rest
    probability. Otherwise ``y`` one-hot (or a single column of ones) selects
    the output ``k`` of each row.
    """

    def __init__(self, kind: str):
        self.kind = kind

    def _probs(self, z, xp):
        if self.kind == "softmax":
            return _softmax(z, xp)
        s = _sigmoid(z, xp)
        return s / xp.sum(s, axis=1, keepdims=True)

    def value(self, y, z):
        xp = get_namespace(z)
        if self.kind == "raw":
            out = z
        elif self.kind == "exp":
            out = xp.exp(z)
        elif self.kind == "sigmoid":
            # y = +1 / -1 selects P(class 1) = sigmoid(z) or P(class 0) = sigmoid(-z)
            return xp.sum(_sigmoid(y * z, xp), axis=1)
        else:
            out = self._probs(z, xp)
        return xp.sum(y * out, axis=1)

    def gradient(self, y, z):
        xp = get_namespace(z)
        if self.kind == "raw":
            return y * xp.ones_like(z)
        if self.kind == "exp":
            return y * xp.exp(z)
        if self.kind == "sigmoid":
            s = _sigmoid(z, xp)
            return y * s * (1.0 - s)
        if self.kind == "softmax":
            p = _softmax(z, xp)
            pk = xp.sum(y * p, axis=1, keepdims=True)
            return pk * (y - p)
        # ovr: q_k = s_k / S
        s = _sigmoid(z, xp)
        S = xp.sum(s, axis=1, keepdims=True)
        qk = xp.sum(y * s, axis=1, keepdims=True) / S
        ds = s * (1.0 - s)
        return y * ds / S - qk * ds / S


class SquaredEpsilonInsensitive(PointwiseLoss):
    r"""``LinearSVR(loss="squared_epsilon_insensitive")``:
    ``l = max(0, |y - z| - epsilon)^2``."""

    def __init__(self, epsilon: float):
        self.epsilon = epsilon

    def value(self, y, z):
        xp = get_namespace(z)
        return xp.sum(xp.maximum(xp.abs(y - z) - self.epsilon, 0.0) ** 2, axis=1)

    def gradient(self, y, z):
        xp = get_namespace(z)
        r = y - z
        return -2.0 * xp.sign(r) * xp.maximum(xp.abs(r) - self.epsilon, 0.0)

    def hessian(self, y, z):
        xp = get_namespace(z)
        return _diag_hessian(xp.where(xp.abs(y - z) > self.epsilon, 2.0, 0.0), xp)
