"""Which estimators are supported, and the spec that defines each one's objective."""

from __future__ import annotations

from ._estimators import LINEAR_SPECS
from ._kernel import KERNEL_SPECS
from ._svm import LINEAR_SVM_SPECS

_REGISTRY: dict = {}


def register(estimator_cls, spec_cls):
    """Declare that ``estimator_cls`` (and its subclasses) is described by
    ``spec_cls``, a :class:`ModelSpec` subclass or a factory returning one."""
    _REGISTRY[estimator_cls] = spec_cls


for _cls, _spec in {**LINEAR_SPECS, **LINEAR_SVM_SPECS, **KERNEL_SPECS}.items():
    register(_cls, _spec)


def supported_estimators() -> list[str]:
    return sorted(cls.__name__ for cls in _REGISTRY)


def spec_for(estimator, **options):
    """The :class:`ModelSpec` of a fitted final estimator.

    ``options`` (``temperature``) reach the specs that take them.
    """
    for cls in type(estimator).__mro__:
        if cls in _REGISTRY:
            return _REGISTRY[cls](estimator, **options)
    raise TypeError(
        f"{type(estimator).__name__} is not supported by skinfluence. Supported "
        f"final estimators (alone or as the last step of a Pipeline): "
        f"{', '.join(supported_estimators())}."
    )
