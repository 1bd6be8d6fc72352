"""``device="gpu"``: the CuPy path agrees with the NumPy path.

Tests marked ``gpu`` need CuPy and a CUDA device and are skipped otherwise
(the ``cp`` fixture). Each compares the same float64 computation on the GPU
and on the CPU, to ``RTOL`` relative to the largest entry: LogisticRegression
(binary, multinomial) and Ridge, a sparse CSR input, the solvers exact, CG and
full-batch LiSSA (fixed ``random_state``: the same NumPy random numbers on
both devices), both approximations, and the label cleaner; and
``dtype="float32"`` on both devices, to float32 round-off.

Without CuPy, ``device="gpu"`` must fail at ``fit`` with an ImportError that
says how to install it; that test runs on machines without CuPy (CI).
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from array_api_compat import is_cupy_namespace
from conftest import HELD_OUT
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from skinfluence import InfluenceExplainer
from skinfluence._backend import gpu_available
from skinfluence.cleaning import InfluenceLabelCleaner

RTOL = 1e-6

MODELS = sorted(HELD_OUT)

SOLVERS = {
    "exact": None,
    "cg": {"tol": 1e-12},
    # full batch (batch_size=None): the only randomness is the power-iteration
    # start vector, drawn by NumPy from random_state on both devices
    "lissa": {"random_state": 0, "tol": 1e-8},
}

PARAM_ROWS = [0, 3, 17, 42]

gpu = pytest.mark.gpu


def _cupy_importable() -> bool:
    try:
        import cupy  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def cp():
    """CuPy, where it imports and sees a CUDA device; the test is skipped otherwise."""
    cupy = pytest.importorskip("cupy")
    if not gpu_available():
        pytest.skip("CuPy is installed but sees no CUDA device")
    return cupy


def assert_close(got, want, name="", rtol=RTOL):
    """``got`` (host array) equals ``want`` to ``rtol`` relative to the largest
    entry of ``want`` (entries near 0 would otherwise dominate)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == np.float64, name
    assert got.shape == want.shape, name
    scale = float(np.max(np.abs(want)))
    assert scale > 0, name  # a comparison of zeros would prove nothing
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale, err_msg=name)


def _params(solver, approximation="influence"):
    return {
        "solver": solver,
        "solver_options": SOLVERS[solver],
        "approximation": approximation,
    }


def _fit(estimator, X, y, sample_weight=None, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return InfluenceExplainer(estimator, **params).fit(X, y, sample_weight=sample_weight)


def _fit_pair(estimator, X, y, sample_weight=None, **params):
    """The same explainer fitted with device="cpu" and device="gpu"."""
    cpu = _fit(estimator, X, y, sample_weight, device="cpu", **params)
    gpu_ = _fit(estimator, X, y, sample_weight, device="gpu", **params)
    assert not is_cupy_namespace(cpu.xp_)
    assert is_cupy_namespace(gpu_.xp_)
    return cpu, gpu_


def _compare_methods(cpu, gpu_, X_test, y_test):
    """influence (loss and prediction), self_influence and influence_params
    agree; NumPy input gives NumPy output after GPU work."""
    pairs = {
        "influence": (gpu_.influence(X_test, y_test), cpu.influence(X_test, y_test)),
        "influence-prediction": (
            gpu_.influence(X_test, y_test, target="prediction"),
            cpu.influence(X_test, y_test, target="prediction"),
        ),
        "self_influence": (gpu_.self_influence(), cpu.self_influence()),
        "influence_params": (
            gpu_.influence_params(rows=PARAM_ROWS),
            cpu.influence_params(rows=PARAM_ROWS),
        ),
    }
    for name, (got, want) in pairs.items():
        assert isinstance(got, np.ndarray), (name, type(got))
        assert_close(got, want, name)


@gpu
@pytest.mark.parametrize("approximation", ["influence", "newton"])
@pytest.mark.parametrize("solver", sorted(SOLVERS))
@pytest.mark.parametrize("model", MODELS)
def test_gpu_matches_cpu(cp, held_out_case, model, solver, approximation):
    case, X_test, y_test = held_out_case(model)
    cpu, gpu_ = _fit_pair(
        case.estimator, case.X, case.y, case.sample_weight, **_params(solver, approximation)
    )
    _compare_methods(cpu, gpu_, X_test, y_test)


@gpu
def test_gpu_refuses_sparse_input_clearly(cp, data):
    """Sparse input on the GPU is refused with a message naming the two ways
    that work (sparse on the CPU, dense on the GPU), instead of failing deep
    inside a sparse product."""
    import cupyx.scipy.sparse as csp

    split = data("digits_1v7")
    X, y = sp.csr_matrix(split.X_train[:200]), split.y_train[:200]
    est = LogisticRegression(C=1.0, tol=1e-12, solver="newton-cg", max_iter=10_000).fit(X, y)
    for X_in, device in ((X, "gpu"), (csp.csr_matrix(X), "auto")):
        with pytest.raises(ValueError, match="sparse input is supported on the CPU only"):
            InfluenceExplainer(est, device=device).fit(X_in, y)


@gpu
@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_gpu_decremental_path_matches_cpu(cp, data, kernel):
    """approximation="path" on a hinge SVM: the path itself runs on the host,
    the design's products on the device; the same exact removals."""
    from sklearn.svm import SVC

    split = data("digits_1v7")
    X, y = split.X_train[:120], split.y_train[:120]
    est = SVC(kernel=kernel, gamma=0.05, tol=1e-10).fit(X, y)
    cpu, gpu_ = _fit_pair(est, X, y, solver="exact", approximation="path")
    assert_close(gpu_.influence(X[:5], y[:5]), cpu.influence(X[:5], y[:5]), "path")
    assert_close(gpu_.self_influence(), cpu.self_influence(), "path self_influence")


@gpu
@pytest.mark.parametrize("solver", ["exact", "cg"])
@pytest.mark.parametrize("model", MODELS)
def test_gpu_float32_matches_cpu_float32(cp, held_out_case, model, solver):
    """``dtype="float32"`` on the GPU: float32 results that agree with the CPU's
    float32 path to float32 round-off (the two devices sum in other orders)."""
    case, X_test, y_test = held_out_case(model)
    params = {"solver": solver, "solver_options": SOLVERS[solver], "dtype": "float32"}
    cpu, gpu_ = _fit_pair(case.estimator, case.X, case.y, case.sample_weight, **params)
    for name, got, want in [
        ("influence", gpu_.influence(X_test, y_test), cpu.influence(X_test, y_test)),
        ("self_influence", gpu_.self_influence(), cpu.self_influence()),
    ]:
        assert got.dtype == np.float32, name
        assert_close(got.astype(np.float64), want, name, rtol=1e-4)


@gpu
@pytest.mark.parametrize("solver", sorted(SOLVERS))
@pytest.mark.parametrize("model", MODELS)
def test_cupy_input_gives_cupy_output(cp, held_out_case, model, solver):
    """CuPy training rows: the work stays on the GPU (whatever ``device``
    says) and every result is a CuPy array, equal to the NumPy path's."""
    case, X_test, y_test = held_out_case(model)
    params = _params(solver)
    cpu = _fit(case.estimator, case.X, case.y, case.sample_weight, device="cpu", **params)
    on_gpu = _fit(case.estimator, cp.asarray(case.X), case.y, case.sample_weight, **params)
    assert is_cupy_namespace(on_gpu.xp_)
    results = {
        "influence": (
            on_gpu.influence(cp.asarray(X_test), y_test),
            cpu.influence(X_test, y_test),
        ),
        # NumPy test rows are moved to the device the explainer was fitted on
        "influence-numpy-test-rows": (
            on_gpu.influence(X_test, y_test),
            cpu.influence(X_test, y_test),
        ),
        "self_influence": (on_gpu.self_influence(), cpu.self_influence()),
        "influence_params": (
            on_gpu.influence_params(rows=PARAM_ROWS),
            cpu.influence_params(rows=PARAM_ROWS),
        ),
    }
    for name, (got, want) in results.items():
        assert isinstance(got, cp.ndarray), (name, type(got))
        assert_close(cp.asnumpy(got), want, name)


@gpu
@pytest.mark.parametrize(
    "method", ["loo_newton", "validation_influence", "iterative", "noise_aware"]
)
def test_cleaner_gpu_matches_cpu(cp, data, method):
    """InfluenceLabelCleaner has no ``device`` of its own; it passes
    ``explainer_params={"device": "gpu"}`` to its explainers."""
    split = data("breast_cancer")
    X, y = split.X_train, split.y_train.copy()
    flipped = np.random.default_rng(0).choice(len(y), 30, replace=False)
    y[flipped] = 1 - y[flipped]
    val = {"X_val": split.X_test[:50], "y_val": split.y_test[:50]}
    cleaners = {
        device: InfluenceLabelCleaner(
            method=method, fraction=0.1, explainer_params={"device": device}
        ).fit(X, y, **val)
        for device in ("cpu", "gpu")
    }
    got, want = cleaners["gpu"], cleaners["cpu"]
    assert isinstance(got.scores_, np.ndarray)
    assert_close(got.scores_, want.scores_)
    np.testing.assert_array_equal(got.suggested_labels_, want.suggested_labels_)
    # the flagged rows are the 10% highest scores: the same rows unless two
    # scores tie at the cut-off within the tolerance
    k = want.n_flagged_
    top = np.sort(want.scores_)[::-1]
    if top[k - 1] - top[k] > RTOL * np.max(np.abs(top)):
        np.testing.assert_array_equal(got.flagged_, want.flagged_)


# ------------------------------------------------------- without CuPy (CI)


def _assert_install_hint(exc_info):
    message = str(exc_info.value)
    assert "CuPy" in message
    assert "pip install" in message
    assert "skinfluence[gpu]" in message or "cupy-cuda" in message


@pytest.mark.skipif(_cupy_importable(), reason="CuPy is installed")
def test_gpu_without_cupy_raises_import_error(family):
    """No CuPy: fit with device="gpu" refuses, saying how to install CuPy."""
    case = family("logreg-bin-newton-cg")
    with pytest.raises(ImportError) as exc_info:
        InfluenceExplainer(case.estimator, device="gpu").fit(case.X, case.y)
    _assert_install_hint(exc_info)


def test_gpu_with_cupy_hidden_raises_import_error(family, monkeypatch):
    """The same on every machine, CuPy hidden from the import system; and
    device="auto" falls back to the CPU without it."""
    monkeypatch.setitem(sys.modules, "cupy", None)  # ``import cupy`` raises ImportError
    case = family("logreg-bin-newton-cg")
    with pytest.raises(ImportError) as exc_info:
        InfluenceExplainer(case.estimator, device="gpu").fit(case.X, case.y)
    _assert_install_hint(exc_info)
    auto = InfluenceExplainer(case.estimator, device="auto").fit(case.X, case.y)
    assert not is_cupy_namespace(auto.xp_)
    assert isinstance(auto.self_influence(), np.ndarray)


def test_sparse_input_on_gpu_is_refused_before_cupy_is_needed(data):
    """Runs everywhere (CI has no GPU): the sparse refusal comes first, so a
    user without CuPy learns the real limitation, not an install hint."""
    split = data("digits_1v7")
    X, y = sp.csr_matrix(split.X_train[:100]), split.y_train[:100]
    est = LogisticRegression(C=1.0).fit(X, y)
    with pytest.raises(ValueError, match="device='cpu'"):
        InfluenceExplainer(est, device="gpu").fit(X, y)
