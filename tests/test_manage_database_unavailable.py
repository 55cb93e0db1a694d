"""manage.py with a database that cannot be reached: one line and exit 3, never a traceback, and never
the exit code a command gives to a real finding (verify_audit_trail's 1 means "the chain is broken")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command", [["verify_audit_trail"], ["review_batch", "B-2026-0001"],
                                     ["create_instrument", "probe", "--equipment", "BR-01"]])
def test_an_unreachable_database_is_one_line_and_exit_3(command: list[str]) -> None:
    env = {**os.environ, "DATABASE_URL": "postgres://postgres@127.0.0.1:1/ebr",
           "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")}

    result = subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)

    assert result.returncode == 3, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("manage.py: database error, the command stopped: ") and "127.0.0.1" in line
    assert result.stdout == ""
