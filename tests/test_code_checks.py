"""The code stays as STYLE.md asks on every run of the suite, not only when someone remembers
`make lint` and `make typecheck`: ruff clean, and the type-checked modules (services and
selectors of the Part 11 core) free of type errors."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("target", ["lint", "typecheck"])
def test_make_target_passes(target: str) -> None:
    result = subprocess.run(["make", "-s", target], cwd=ROOT, env=os.environ.copy(), capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
