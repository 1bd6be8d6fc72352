"""Pointwise losses (``skinfluence.objectives._losses``).

Every loss maps encoded targets ``y`` (n, n_targets) and raw predictions
``z`` (n, K) to per-row values, first derivatives (n, K) and second
derivatives (n, K, K). The derivatives are checked against central finite
differences of the values, and the values against independent references:
scikit-learn's own loss implementations where it has them, SciPy's special
functions or the documented formulas otherwise.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, log_softmax, softmax
from sklearn._loss.loss import HalfBinomialLoss, HalfPoissonLoss, HuberLoss
from sklearn.linear_model._sgd_fast import ModifiedHuber as SkModifiedHuber
from sklearn.linear_model._sgd_fast import SquaredHinge as SkSquaredHinge

from skinfluence.objectives._estimators import FirstOutputs
from skinfluence.objectives._losses import (
    BinomialLogLoss,
    HalfPoissonDeviance,
    Huber,
    HuberWithScale,
    ModifiedHuber,
    MultinomialLogLoss,
    OvRNormalizedLogLoss,
    Prediction,
    SmoothedEpsilonInsensitive,
    SmoothedHinge,
    SquaredError,
    SquaredErrorExpLink,
    SquaredHinge,
)

N_ROWS = 40
EPS = 1e-6


def _onehot(n, K, rng):
    return np.eye(K)[rng.randint(0, K, size=n)]


def _binary(n, K, rng):
    return rng.randint(0, 2, size=(n, K)).astype(float)


def _away_from(values, kinks, margin=1e-3):
    """Nudge ``values`` so none is within ``margin`` of a kink (FD would straddle it)."""
    values = np.array(values, copy=True)
    for kink in kinks:
        close = np.abs(values - kink) < margin
        values[close] = kink + np.where(values[close] >= kink, margin, -margin) * 2
    return values


def make_case(name, seed=0):
    """``(loss, y, z)`` for a loss on random inputs away from its kinks."""
    rng = np.random.RandomState(seed)
    n = N_ROWS
    if name == "squared_error":
        return SquaredError(1.0), rng.normal(size=(n, 1)), rng.normal(size=(n, 1))
    if name == "squared_error_half_2out":
        return SquaredError(0.5), rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
    if name == "squared_error_exp_link":
        return SquaredErrorExpLink(), rng.poisson(2.0, size=(n, 1)) * 1.0, rng.normal(size=(n, 1))
    if name == "half_poisson":
        return HalfPoissonDeviance(), rng.poisson(2.0, size=(n, 1)) * 1.0, rng.normal(size=(n, 1))
    if name == "binomial_1out":
        return BinomialLogLoss(), _binary(n, 1, rng), 3 * rng.normal(size=(n, 1))
    if name == "binomial_3out":
        return BinomialLogLoss(), _onehot(n, 3, rng), 3 * rng.normal(size=(n, 3))
    if name == "multinomial":
        return MultinomialLogLoss(), _onehot(n, 4, rng), 3 * rng.normal(size=(n, 4))
    if name == "ovr_normalized":
        return OvRNormalizedLogLoss(), _onehot(n, 3, rng), 2 * rng.normal(size=(n, 3))
    if name in ("modified_huber", "squared_hinge"):
        y = _binary(n, 2, rng)
        s = 2 * y - 1
        m = _away_from(3 * rng.normal(size=(n, 2)), [-1.0, 1.0])  # margins
        loss = ModifiedHuber() if name == "modified_huber" else SquaredHinge()
        return loss, y, m * s
    if name == "smoothed_hinge":
        return SmoothedHinge(0.3), _binary(n, 1, rng), 2 * rng.normal(size=(n, 1))
    if name == "huber":
        y = rng.normal(size=(n, 1))
        r = _away_from(2 * rng.normal(size=(n, 1)), [-0.8, 0.8])
        return Huber(0.8), y, y - r
    if name == "smoothed_epsilon_insensitive":
        y = rng.normal(size=(n, 1))
        return SmoothedEpsilonInsensitive(0.2, 0.1), y, y - rng.normal(size=(n, 1))
    if name == "huber_with_scale":
        eps = 1.35
        y = rng.normal(size=(n, 1))
        sigma = rng.uniform(0.5, 2.0, size=n)
        u = _away_from(2 * rng.normal(size=n), [-eps, eps], margin=1e-2)  # r / sigma
        z = np.stack([y[:, 0] - u * sigma, sigma], axis=1)
        return HuberWithScale(eps), y, z
    raise KeyError(name)


SMOOTH_LOSSES = [
    "squared_error",
    "squared_error_half_2out",
    "squared_error_exp_link",
    "half_poisson",
    "binomial_1out",
    "binomial_3out",
    "multinomial",
    "modified_huber",
    "squared_hinge",
    "smoothed_hinge",
    "huber",
    "smoothed_epsilon_insensitive",
    "huber_with_scale",
]
ALL_LOSSES = [*SMOOTH_LOSSES, "ovr_normalized"]


def fd_gradient(loss, y, z, eps=EPS):
    """``d value_i / d z_ik``: rows are independent, so one column at a time."""
    cols = []
    for k in range(z.shape[1]):
        e = np.zeros_like(z)
        e[:, k] = eps
        cols.append((loss.value(y, z + e) - loss.value(y, z - e)) / (2 * eps))
    return np.stack(cols, axis=1)


def fd_hessian(loss, y, z, eps=EPS):
    """``d gradient_ik / d z_il`` as (n, K, K)."""
    cols = []
    for m in range(z.shape[1]):
        e = np.zeros_like(z)
        e[:, m] = eps
        cols.append((loss.gradient(y, z + e) - loss.gradient(y, z - e)) / (2 * eps))
    return np.stack(cols, axis=2)


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_gradient_matches_central_differences(name):
    loss, y, z = make_case(name)
    grad = loss.gradient(y, z)
    assert grad.shape == z.shape
    np.testing.assert_allclose(grad, fd_gradient(loss, y, z), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", SMOOTH_LOSSES)
def test_hessian_matches_central_differences(name):
    loss, y, z = make_case(name)
    hess = loss.hessian(y, z)
    assert hess.shape == (z.shape[0], z.shape[1], z.shape[1])
    np.testing.assert_allclose(hess, fd_hessian(loss, y, z), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", [n for n in SMOOTH_LOSSES if n != "squared_error_exp_link"])
def test_hessian_is_symmetric_positive_semidefinite(name):
    """Every training loss is convex in ``z`` (HuberWithScale jointly in the
    prediction and the scale); the log-link squared error is a test loss only."""
    loss, y, z = make_case(name)
    hess = loss.hessian(y, z)
    np.testing.assert_allclose(hess, np.swapaxes(hess, 1, 2), atol=1e-12)
    assert np.linalg.eigvalsh(hess).min() >= -1e-10


def test_ovr_normalized_loss_is_a_test_loss_only():
    with pytest.raises(NotImplementedError):
        OvRNormalizedLogLoss().hessian(np.eye(3), np.zeros((3, 3)))


# ------------------------------------------------------------------ values


def test_binomial_log_loss_matches_scikit_learn():
    loss, y, z = make_case("binomial_1out")
    ref = HalfBinomialLoss().loss(y_true=y[:, 0], raw_prediction=z[:, 0])
    np.testing.assert_allclose(loss.value(y, z), ref, rtol=1e-12)
    # and the textbook form with probabilities
    p = expit(z)
    np.testing.assert_allclose(
        loss.value(y, z), -(y * np.log(p) + (1 - y) * np.log1p(-p)).sum(axis=1), rtol=1e-10
    )


def test_multinomial_log_loss_is_negative_log_softmax():
    loss, y, z = make_case("multinomial")
    ref = -(y * log_softmax(z, axis=1)).sum(axis=1)
    np.testing.assert_allclose(loss.value(y, z), ref, rtol=1e-12)


def test_ovr_normalized_log_loss_matches_normalised_sigmoids():
    loss, y, z = make_case("ovr_normalized")
    s = expit(z)
    q = s / s.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(loss.value(y, z), -np.log((y * q).sum(axis=1)), rtol=1e-12)


def test_half_poisson_deviance_matches_scikit_learn():
    loss, y, z = make_case("half_poisson")
    ref = HalfPoissonLoss().loss(y_true=y[:, 0], raw_prediction=z[:, 0])
    np.testing.assert_allclose(loss.value(y, z), ref, rtol=1e-12)


def test_squared_error_scales():
    _, y, z = make_case("squared_error_half_2out")
    np.testing.assert_allclose(SquaredError(1.0).value(y, z), ((y - z) ** 2).sum(axis=1))
    np.testing.assert_allclose(SquaredError(0.5).value(y, z), 0.5 * ((y - z) ** 2).sum(axis=1))
    np.testing.assert_allclose(
        SquaredErrorExpLink().value(y[:, :1], z[:, :1]), (y[:, 0] - np.exp(z[:, 0])) ** 2
    )


def test_huber_matches_scikit_learn():
    loss, y, z = make_case("huber")
    ref = HuberLoss(delta=0.8).loss(y_true=y[:, 0], raw_prediction=z[:, 0])
    np.testing.assert_allclose(loss.value(y, z), ref, rtol=1e-12)


@pytest.mark.parametrize(
    "name, reference",
    [("modified_huber", SkModifiedHuber()), ("squared_hinge", SkSquaredHinge(1.0))],
)
def test_sgd_margin_losses_match_scikit_learn(name, reference):
    """scikit-learn's SGD losses take ``y`` in {-1, +1} and one output at a time."""
    loss, y, z = make_case(name)
    ref = np.array(
        [
            sum(reference.py_loss(float(z[i, k]), float(2 * y[i, k] - 1)) for k in range(2))
            for i in range(len(y))
        ]
    )
    np.testing.assert_allclose(loss.value(y, z), ref, rtol=1e-12)


def test_huber_with_scale_matches_documented_formula():
    """Owen's concomitant scale: ``sigma + sigma H_eps(r / sigma)`` with
    ``H_eps(u) = u^2`` inside and ``2 eps |u| - eps^2`` outside."""
    loss, y, z = make_case("huber_with_scale")
    eps = loss.epsilon
    r, sigma = y[:, 0] - z[:, 0], z[:, 1]
    u = np.abs(r / sigma)
    H = np.where(u <= eps, u**2, 2 * eps * u - eps**2)
    np.testing.assert_allclose(loss.value(y, z), sigma + sigma * H, rtol=1e-12)
    assert (u <= eps).any() and (u > eps).any()  # both branches exercised


@pytest.mark.parametrize(
    "smoothed, limit",
    [
        (
            lambda t: SmoothedHinge(t),
            lambda y, z: np.maximum(0.0, 1.0 - (2 * y - 1) * z).sum(axis=1),
        ),
        (
            lambda t: SmoothedEpsilonInsensitive(0.2, t),
            lambda y, z: np.maximum(0.0, np.abs(y - z) - 0.2).sum(axis=1),
        ),
    ],
    ids=["hinge", "epsilon_insensitive"],
)
def test_smoothed_losses_tend_to_their_nonsmooth_limits(smoothed, limit):
    rng = np.random.RandomState(3)
    y = rng.randint(0, 2, size=(50, 1)).astype(float)
    z = 2 * rng.normal(size=(50, 1))
    errors = [np.abs(smoothed(t).value(y, z) - limit(y, z)).max() for t in (1e-1, 1e-2, 1e-3)]
    # the gap is at most t log 2 per kink and shrinks with t
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] <= 2 * 1e-3 * np.log(2) + 1e-12


def test_multinomial_is_shift_invariant():
    loss, y, z = make_case("multinomial")
    assert loss.shift_invariant
    shifted = z + np.random.RandomState(1).normal(size=(len(z), 1))
    np.testing.assert_allclose(loss.value(y, shifted), loss.value(y, z), rtol=1e-12)
    hess = loss.hessian(y, z)
    np.testing.assert_allclose(hess @ np.ones(z.shape[1]), 0.0, atol=1e-14)
    assert not BinomialLogLoss().shift_invariant


@pytest.mark.parametrize(
    "loss, reference",
    [
        (BinomialLogLoss(), lambda y, z: (np.logaddexp(0.0, z) - y * z).sum(axis=1)),
        (MultinomialLogLoss(), lambda y, z: -(y * log_softmax(z, axis=1)).sum(axis=1)),
    ],
    ids=["binomial", "multinomial"],
)
def test_log_losses_are_finite_for_extreme_predictions(loss, reference):
    z = np.array([[800.0, -800.0, 0.0], [-800.0, 800.0, 1.0]])
    y = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    value, grad, hess = loss.value(y, z), loss.gradient(y, z), loss.hessian(y, z)
    assert np.all(np.isfinite(grad)) and np.all(np.isfinite(hess))
    np.testing.assert_allclose(value, reference(y, z), rtol=1e-12)
    assert value[0] > 700  # confidently wrong


# -------------------------------------------------------- test functions


@pytest.mark.parametrize("kind", ["raw", "exp", "sigmoid", "softmax", "ovr"])
def test_prediction_gradient_matches_central_differences(kind):
    rng = np.random.RandomState(4)
    K = 1 if kind in ("raw", "exp", "sigmoid") else 4
    y = np.ones((N_ROWS, 1)) if K == 1 else _onehot(N_ROWS, K, rng)
    z = rng.normal(size=(N_ROWS, K))
    pred = Prediction(kind)
    np.testing.assert_allclose(pred.gradient(y, z), fd_gradient(pred, y, z), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    "kind, reference",
    [
        ("raw", lambda z: z),
        ("exp", np.exp),
        ("softmax", lambda z: softmax(z, axis=1)),
        ("ovr", lambda z: expit(z) / expit(z).sum(axis=1, keepdims=True)),
    ],
)
def test_prediction_values_select_the_output_of_the_class(kind, reference):
    rng = np.random.RandomState(5)
    z = rng.normal(size=(N_ROWS, 3))
    labels = rng.randint(0, 3, size=N_ROWS)
    y = np.eye(3)[labels]
    np.testing.assert_allclose(
        Prediction(kind).value(y, z), reference(z)[np.arange(N_ROWS), labels], rtol=1e-12
    )


def test_binary_probability_follows_the_sign_of_the_selector():
    """``Prediction("sigmoid")`` with ``y = +1 / -1``: P(class 1) or P(class 0)."""
    rng = np.random.RandomState(5)
    z = rng.normal(size=(N_ROWS, 1))
    sign = rng.choice([-1.0, 1.0], size=(N_ROWS, 1))
    pred = Prediction("sigmoid")
    expected = np.where(sign[:, 0] > 0, expit(z[:, 0]), 1.0 - expit(z[:, 0]))
    np.testing.assert_allclose(pred.value(sign, z), expected, rtol=1e-12)
    np.testing.assert_allclose(
        pred.gradient(sign, z), fd_gradient(pred, sign, z), rtol=1e-6, atol=1e-8
    )


def test_first_outputs_ignores_the_scale_output():
    rng = np.random.RandomState(6)
    y, z = rng.normal(size=(N_ROWS, 1)), rng.normal(size=(N_ROWS, 2))
    loss = FirstOutputs(SquaredError(1.0))
    np.testing.assert_allclose(loss.value(y, z), (y[:, 0] - z[:, 0]) ** 2)
    grad = loss.gradient(y, z)
    np.testing.assert_allclose(grad, fd_gradient(loss, y, z), rtol=1e-6, atol=1e-8)
    assert np.all(grad[:, 1] == 0.0)
