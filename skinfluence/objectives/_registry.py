"""Which estimators are supported, and the spec that defines each one's objective."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from ._estimators import LINEAR_SPECS, ModelSpec
from ._kernel import KERNEL_SPECS
from ._svm import LINEAR_SVM_SPECS

_REGISTRY: dict = {}


def register_estimator(estimator_cls: type, spec: Callable[..., ModelSpec]) -> None:
    """Declare how an estimator family defines its training objective.

    The public extension point: after ``register_estimator(MyModel,
    MyModelSpec)``, ``InfluenceExplainer`` explains fitted ``MyModel``
    instances (and those of its subclasses), alone or at the end of a
    ``Pipeline``, with every solver and approximation the policy table
    allows for a smooth objective.

    Parameters
    ----------
    estimator_cls : type
        The estimator class.
    spec : ModelSpec subclass or callable
        Called as ``spec(estimator, temperature=...)`` with a fitted
        estimator; returns a :class:`ModelSpec` stating the objective
        ``sum_i w_i l(y_i, z_i) + (lambda / 2) theta^T R theta`` that the
        estimator minimises: the pointwise ``train_loss`` and ``test_loss``,
        the ``prediction`` that ``target="prediction"`` explains, the
        penalty (``coef_penalty``, ``intercept_penalty``, ``strength``), the
        row weights (``row_scale``, class and sample weights) and how to read
        the fitted parameters (``theta``; ``coef_`` and ``intercept_`` by
        default). See ``LeastSquaresSpec`` for a short example, and check a
        new spec with :func:`skinfluence.retraining.leave_one_out`.

    Examples
    --------
    >>> from sklearn.linear_model import Ridge
    >>> from skinfluence import register_estimator
    >>> from skinfluence.objectives import ModelSpec, Prediction, SquaredError
    >>> class ScaledRidge(Ridge):  # minimises ||y - Xw - b||^2 + alpha ||w||^2
    ...     pass
    >>> class ScaledRidgeSpec(ModelSpec):
    ...     def __init__(self, est, *, temperature=None):
    ...         super().__init__(est, temperature=temperature)
    ...         self.coef_penalty = 2.0 * est.alpha
    ...         self.train_loss = self.test_loss = SquaredError(1.0)
    ...         self.prediction = Prediction("raw")
    >>> register_estimator(ScaledRidge, ScaledRidgeSpec)
    """
    if not isinstance(estimator_cls, type):
        raise TypeError(f"estimator_cls must be a class, got {estimator_cls!r}.")
    if not callable(spec):
        raise TypeError(
            f"spec must be a ModelSpec subclass or a callable returning one, got {spec!r}."
        )
    _REGISTRY[estimator_cls] = spec


for _cls, _spec in {**LINEAR_SPECS, **LINEAR_SVM_SPECS, **KERNEL_SPECS}.items():
    register_estimator(_cls, _spec)

#: top-level package -> (module of specs, its ``{estimator: spec}`` table):
#: families of optional packages, registered on the first estimator seen
#: from them (importing them with skinfluence would import those packages)
_ON_FIRST_USE = {"dask_ml": (".objectives._dask_ml", "DASK_ML_SPECS")}


def _register_on_first_use(cls: type) -> None:
    for klass in cls.__mro__:
        entry = _ON_FIRST_USE.pop(klass.__module__.split(".")[0], None)
        if entry is not None:
            module = importlib.import_module(entry[0], "skinfluence")
            for estimator_cls, spec in getattr(module, entry[1]).items():
                register_estimator(estimator_cls, spec)


def supported_estimators() -> list[str]:
    """Names of the estimator classes skinfluence explains.

    Returns
    -------
    list of str
        Sorted class names, including families added by
        :func:`register_estimator`; dask-ml's ``LogisticRegression`` and
        ``LinearRegression`` are added once the first dask-ml estimator is
        explained (importing dask-ml earlier would slow every import).
    """
    return sorted(cls.__name__ for cls in _REGISTRY)


def spec_for(estimator, **options):
    """The :class:`ModelSpec` of a fitted final estimator.

    ``options`` (``temperature``) reach the specs that take them.
    """
    _register_on_first_use(type(estimator))
    for cls in type(estimator).__mro__:
        if cls in _REGISTRY:
            spec = _REGISTRY[cls](estimator, **options)
            if not isinstance(spec, ModelSpec):
                raise TypeError(
                    f"the spec registered for {cls.__name__} returned "
                    f"{type(spec).__name__}, not a ModelSpec."
                )
            return spec
    raise TypeError(
        f"{type(estimator).__name__} is not supported by skinfluence. Supported "
        f"final estimators (alone or as the last step of a Pipeline): "
        f"{', '.join(supported_estimators())}."
    )
