"""manage.py's own errors, each one line on standard error: a database that cannot be reached (exit 3,
never a traceback, and never the exit code a command gives to a real finding: verify_audit_trail's 1
means "the chain is broken"), and a bad or missing argument (exit 2, no usage block)."""

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


@pytest.mark.parametrize(("command", "says"), [
    (["create_instrument", "probe"], "the following arguments are required: --equipment"),
    (["simulate_bioreactor", "--batch", "B-1", "--hours", "1", "--excursion", "zz:6.6@12h"], "unknown parameter 'zz'"),
    (["simulate_bioreactor", "--batch", "B-1", "--hours", "1", "--excursion", "ph:6.6"], "PARAMETER:VALUE@TIME"),
    (["export_batch_pdf", "B-1"], "the following arguments are required: --output"),
])
def test_a_bad_argument_is_one_line_and_exit_2(command: list[str], says: str) -> None:
    result = subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=dict(os.environ),
                            capture_output=True, text=True, timeout=120)

    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"manage.py {command[0]}: ") and says in line and line.endswith("(see --help)")
