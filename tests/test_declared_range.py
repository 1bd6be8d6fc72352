"""The declared range is the tested range.

``make test-oldest`` installs the package with ``.ci/oldest-constraints.txt``:
every runtime dependency and test extra pinned at the ``>=`` floor that
``pyproject.toml`` declares. These tests keep the two files in step (a floor
raised in one place only fails here, in every job) and, inside the oldest job,
check that pip really installed the floors (``SKINFLUENCE_PINNED`` names the
constraints file the environment was installed from).
"""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / ".ci" / "oldest-constraints.txt"
#: the extras the oldest job installs (``-e ".[test]"``)
EXTRAS = ("test",)


def _pins(path: Path) -> dict[str, Version]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==", f"{path.name}: {line!r} is not an == pin"
        pins[canonicalize_name(req.name)] = Version(spec.version)
    return pins


def _requirements() -> list[str]:
    """Runtime and ``EXTRAS`` requirements: from ``pyproject.toml`` where
    ``tomllib`` exists (Python 3.11+), else from the installed metadata."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        reqs = [Requirement(text) for text in metadata.requires("skinfluence") or []]
        return [
            str(r)
            for r in reqs
            if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in EXTRAS)
        ]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return project["dependencies"] + [text for e in EXTRAS for text in extras[e]]


def _floors() -> dict[str, Version]:
    floors = {}
    for text in _requirements():
        req = Requirement(text)
        lower = [s for s in req.specifier if s.operator == ">="]
        if lower:
            floors[canonicalize_name(req.name)] = Version(lower[0].version)
    return floors


@pytest.mark.skipif(
    not (CONSTRAINTS.exists() and (ROOT / "pyproject.toml").exists()),
    reason="not run from a source checkout",
)
def test_constraints_pin_every_declared_floor():
    pins, floors = _pins(CONSTRAINTS), _floors()
    assert "numpy" in floors and "scikit-learn" in floors  # the metadata was read
    wrong = {
        name: (str(floor), str(pins.get(name)))
        for name, floor in floors.items()
        if pins.get(name) != floor
    }
    assert not wrong, (
        f"pyproject.toml floor vs {CONSTRAINTS.name} pin differ for {wrong}: "
        "pin each dependency at exactly its declared floor"
    )
    stray = sorted(set(pins) - set(floors))
    assert not stray, f"{CONSTRAINTS.name} pins undeclared packages: {stray}"


@pytest.mark.skipif(
    "SKINFLUENCE_PINNED" not in os.environ,
    reason="only in an environment installed with pinned constraints (make test-oldest)",
)
def test_installed_versions_are_the_pins():
    pins = _pins(ROOT / os.environ["SKINFLUENCE_PINNED"])
    installed = {name: Version(metadata.version(name)) for name in pins}
    wrong = {n: (str(installed[n]), str(v)) for n, v in pins.items() if installed[n] != v}
    assert not wrong, f"installed vs pinned versions differ: {wrong}"
