"""The production lock holds the runtime packages only, at the versions the tests ran with.

requirements.lock (runtime + development) is what `make test` installs and CI tests;
requirements-prod.lock is what the image and a server install. If the two pinned a package at
different versions, production would run code the suite never ran; if the production lock held
test tools or browser drivers, the validated system would carry software it does not need.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", re.MULTILINE)
DEVELOPMENT_ONLY = {"pytest", "pytest-django", "playwright", "hypothesis", "schemathesis", "ruff", "mypy",
                    "pip-audit", "factory-boy", "django-stubs", "pypdf"}


def _pins(name: str) -> dict[str, str]:
    return {_canonical(package): version for package, version in PIN.findall((ROOT / name).read_text())}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    return _canonical(re.split(r"[\[<>=!~;\s]", requirement, maxsplit=1)[0])


def test_the_production_lock_pins_what_the_tests_ran_with() -> None:
    full, production = _pins("requirements.lock"), _pins("requirements-prod.lock")

    assert production, "requirements-prod.lock pins nothing"
    assert {name: version for name, version in production.items() if full.get(name) != version} == {}


def test_the_production_lock_has_every_runtime_dependency_and_no_development_tool() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {_requirement_name(requirement) for requirement in project["dependencies"]}
    production = _pins("requirements-prod.lock")

    assert runtime - production.keys() == set(), "runtime dependencies missing from requirements-prod.lock"
    assert DEVELOPMENT_ONLY & production.keys() == set()
