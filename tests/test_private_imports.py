"""No private scikit-learn imports outside ``skinfluence/_compat.py``.

``sklearn_compat`` shims what moves between scikit-learn releases; what has no
public home and no shim is imported once, in ``skinfluence/_compat.py``. A
private import anywhere else in the package fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import skinfluence

PACKAGE = Path(skinfluence.__file__).resolve().parent
#: internal modules without a leading underscore (not in scikit-learn's API
#: reference; their helpers come and go between releases)
INTERNAL = {"sklearn.utils.fixes"}
#: the one module allowed to import them
HOME = "_compat.py"
#: private imports still to move to ``_compat`` or ``sklearn_compat`` in the
#: core being rewritten; remove an entry when its import goes
PENDING: set = set()


def _is_private(module: str, name: str | None) -> bool:
    parts = module.split(".")
    if parts[0] != "sklearn":
        return False
    return (
        module in INTERNAL or any(p.startswith("_") for p in parts) or (name or "").startswith("_")
    )


def _private_imports():
    found = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                pairs = [(node.module, alias.name) for alias in node.names]
            elif isinstance(node, ast.Import):
                pairs = [(alias.name, None) for alias in node.names]
            else:
                continue
            found |= {(rel, m, n) for m, n in pairs if _is_private(m, n)}
    return found


def test_private_sklearn_imports_only_in_compat():
    found = {f for f in _private_imports() if f[0] != HOME}
    new = sorted(found - PENDING)
    assert not new, (
        f"private scikit-learn imports {new}: use sklearn_compat's shim, or import "
        f"the name once in skinfluence/{HOME} and from there"
    )
    gone = sorted(PENDING - found)
    assert not gone, f"{gone} no longer imported: remove them from PENDING"


def test_scan_sees_private_imports():
    # the scan itself: _compat's own imports are found
    assert ("_compat.py", "sklearn.utils._param_validation", "Interval") in _private_imports()
