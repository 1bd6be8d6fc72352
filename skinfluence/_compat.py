"""The scikit-learn names skinfluence needs that have no public home.

``sklearn_compat`` (a dependency) shims what moved or changed between
scikit-learn releases, and is used directly for those names (``validate_data``,
``check_array``, ``get_tags``, ``_safe_indexing``). The names below are private
in every supported scikit-learn release and ``sklearn_compat`` has no shim for
them (checked in 0.1.3 and 0.1.6): the parameter-constraint classes behind
``_parameter_constraints`` (third-party estimators such as imbalanced-learn
import them from the same place) and ``_check_sample_weight``. They are
imported here only, so a scikit-learn release that moves them breaks one
module; ``tests/test_private_imports.py`` keeps private scikit-learn imports
out of the rest of the package.
"""

from __future__ import annotations

import re

import sklearn
from sklearn.utils._param_validation import HasMethods, Interval, Options, StrOptions
from sklearn.utils.validation import _check_sample_weight

#: ``(major, minor)`` of the installed scikit-learn, for behaviour that changed
#: between releases without a name to detect (e.g. ``newton-cholesky``
#: logistic regression became multinomial in 1.6)
SKLEARN_VERSION: tuple[int, int] = tuple(
    int(part) for part in re.match(r"(\d+)\.(\d+)", sklearn.__version__).groups()
)

__all__ = [
    "SKLEARN_VERSION",
    "HasMethods",
    "Interval",
    "Options",
    "StrOptions",
    "_check_sample_weight",
]
