"""numpydoc validation of the public API: every public class, function and
method documents its parameters and what it returns.

Checked codes: GL08 (no docstring), PR01 (parameter not documented), PR02
(documented parameter that does not exist), PR07 (parameter without a
description), RT01 (no Returns section), RT03 (return value without a
description).
"""

from __future__ import annotations

import inspect

import pytest

import skinfluence
from skinfluence import retraining

validate = pytest.importorskip("numpydoc.validate").validate

CODES = {"GL08", "PR01", "PR02", "PR07", "RT01", "RT03"}


def _public_api():
    names = []
    for module, public in ((skinfluence, skinfluence.__all__), (retraining, ["leave_one_out"])):
        for name in public:
            obj = getattr(module, name)
            if name.startswith("__"):
                continue
            path = f"{module.__name__}.{name}"
            if inspect.isclass(obj):
                names.append(path)
                for method, _ in inspect.getmembers(obj, predicate=inspect.isfunction):
                    if not method.startswith("_"):
                        names.append(f"{path}.{method}")
            elif callable(obj):
                names.append(path)
    return names


@pytest.mark.parametrize("name", _public_api())
def test_public_docstring(name):
    errors = [(code, msg) for code, msg in validate(name)["errors"] if code in CODES]
    assert not errors, f"{name}: {errors}"
