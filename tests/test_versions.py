"""The oldest-versions check (``bash .ci/versions oldest``) pins what pyproject admits."""

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
from packaging.requirements import Requirement  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _lower_bounds():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    bounds = {}
    for line in project["dependencies"]:
        req = Requirement(line)
        lower = [s.version for s in req.specifier if s.operator == ">="]
        assert len(lower) == 1, f"{line!r}: give one lower bound (>=) for the oldest check"
        bounds[req.name.lower()] = lower[0]
    return bounds


def _oldest_pins():
    pins = {}
    for line in (ROOT / ".ci" / "oldest.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"{line!r}: .ci/oldest.txt pins with =="
            pins[req.name.lower()] = spec.version
    return pins


def test_oldest_pins_are_the_lower_bounds_of_pyproject():
    bounds = _lower_bounds()
    pins = _oldest_pins()
    assert set(pins) == set(bounds)
    for name, bound in bounds.items():
        # the pin is the bound's release line: ">=1.24" is checked at 1.24.x
        assert pins[name].split(".")[: len(bound.split("."))] == bound.split("."), name
