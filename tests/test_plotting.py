"""Displays: scikit-learn's construction pattern and readable figures."""

from __future__ import annotations

import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.preprocessing import scale  # noqa: E402

from skinfluence import InfluenceExplainer  # noqa: E402
from skinfluence.cleaning import simulate_review  # noqa: E402
from skinfluence.plotting import AgreementDisplay, ReviewCurveDisplay  # noqa: E402
from skinfluence.retraining import leave_one_out  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    X = scale(X)[:, :8]
    return X[:200], y[:200], X[200:203], y[200:203]


def _inside_figure(artist, fig):
    fig.canvas.draw()
    box = artist.get_window_extent(fig.canvas.get_renderer())
    return box.x0 >= 0 and box.y0 >= 0 and box.x1 <= fig.bbox.x1 and box.y1 <= fig.bbox.y1


def test_agreement_from_predictions_keeps_labels_in_the_figure():
    """Small changes give long tick labels; the y label used to be pushed
    off the figure's left edge."""
    rng = np.random.default_rng(0)
    predicted = -1.2345e-4 + 1e-4 * rng.normal(size=(2, 15))
    actual = 1.1 * predicted + 1e-5 * rng.normal(size=(2, 15))
    disp = AgreementDisplay.from_predictions(actual, predicted, name="influence")
    assert disp.figure_ is disp.ax_.figure
    np.testing.assert_array_equal(disp.scatter_.get_offsets()[:, 0], predicted.ravel())
    np.testing.assert_array_equal(disp.scatter_.get_offsets()[:, 1], actual.ravel())
    assert _inside_figure(disp.ax_.yaxis.label, disp.figure_)
    assert _inside_figure(disp.ax_.xaxis.label, disp.figure_)
    slope = np.polyfit(predicted.ravel(), actual.ravel(), 1)[0]  # least squares with intercept
    assert disp.agreement.slope == pytest.approx(slope)


def test_agreement_from_estimator_equals_the_explainer_path(cancer):
    X, y, Xt, yt = cancer
    model = LogisticRegression(tol=1e-10, max_iter=1000).fit(X, y)
    coef = model.coef_.copy()
    disp = AgreementDisplay.from_estimator(
        model, X, y, Xt, yt, rows=6, approximation="newton", n_jobs=1
    )
    np.testing.assert_array_equal(model.coef_, coef)  # the fitted model is untouched
    exp = InfluenceExplainer(model, approximation="newton").fit(X, y)
    ref = leave_one_out(exp, Xt, yt, rows=6, n_jobs=1)
    np.testing.assert_allclose(disp.predicted, ref.predicted)
    np.testing.assert_allclose(disp.actual, ref.actual)
    assert disp.name == "newton"
    assert disp.agreement.pearson > 0.95


def test_matplotlib_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match="AgreementDisplay.from_predictions requires matplotlib"):
        AgreementDisplay.from_predictions(np.ones((1, 2)), np.ones((1, 2)))


@pytest.fixture(scope="module")
def review():
    X, y = load_breast_cancer(return_X_y=True)
    rng = np.random.default_rng(0)
    X_tr, y_tr, X_te, y_te = X[:400], y[:400], X[400:], y[400:]
    noisy = y_tr.copy()
    flip = rng.choice(400, 40, replace=False)
    noisy[flip] = 1 - noisy[flip]
    return simulate_review(
        None, X_tr, noisy, y_tr, X_test=X_te, y_test=y_te, methods=["random", "loo_loss"]
    )


def test_review_legend_hides_no_curve(review):
    disp = ReviewCurveDisplay.from_result(review)
    assert disp.axes_.shape == (2,)
    fig = disp.figure_
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in disp.axes_:
        legend = ax.get_legend().get_window_extent(renderer)
        # every point of every curve, the random one included, is outside the legend
        for line in ax.get_lines():
            pts = ax.transData.transform(np.column_stack(line.get_data()))
            inside = (
                (pts[:, 0] >= legend.x0)
                & (pts[:, 0] <= legend.x1)
                & (pts[:, 1] >= legend.y0)
                & (pts[:, 1] <= legend.y1)
            )
            assert not inside.any(), line.get_label()
        assert _inside_figure(ax.get_legend(), fig)
        assert _inside_figure(ax.yaxis.label, fig)


def test_review_from_estimator_accepts_a_fitted_model(review):
    X, y = load_breast_cancer(return_X_y=True)
    noisy = y.copy()
    noisy[:30] = 1 - noisy[:30]
    model = LogisticRegression(max_iter=5000).fit(scale(X), noisy)
    disp = ReviewCurveDisplay.from_estimator(
        model, scale(X), noisy, y, methods=["random", "training_loss"], metric="found"
    )
    assert disp.axes_.shape == (1,) and disp.ax_ is disp.axes_[0]
    found = disp.lines_[("found", "training_loss")].get_ydata()
    assert found[-1] > disp.lines_[("found", "random")].get_ydata()[-1]
