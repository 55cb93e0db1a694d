"""`manage.py review_text`: the stable contract of shared/specs/nlp-review.md, run as a real process.

DATABASE_URL points at a port where nothing listens: the command must not need a connection.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "DATABASE_URL": "postgres://postgres@127.0.0.1:9/ebr_nlp", "REDIS_URL": "redis://127.0.0.1:6379/11"}
SPEC_OUTPUT = {"id": "e1", "risk": "critical",
               "flags": [{"category": "contamination", "severity": "critical", "start": 0, "end": 10,
                          "evidence": "Glove torn", "rule": "aseptic.glove_breach"}]}


def run(stdin: str, *args: str) -> list[dict[str, object]]:
    done = subprocess.run([sys.executable, "manage.py", "review_text", *args], cwd=ROOT, env=ENV, input=stdin.encode(),
                          capture_output=True, check=True, timeout=300)
    return [json.loads(line) for line in done.stdout.decode().splitlines()]


@pytest.fixture(scope="module")
def mixed_output() -> list[dict[str, object]]:
    lines = [
        '{"id": "e1", "text": "Glove torn during transfer in BSC, changed gloves."}',
        "this is not json",
        '{"id": "no-text"}',
        '{"id": 3, "text": "no growth observed"}',
        '{"text": "label not checked"}',
        '["a", "list"]',
        '{"id": "num", "text": 42}',
        '{"id": "e8", "text": "viability 61% (limit ≥70%)"}',
        "",
        '{"id": "last", "text": "Flask 3 turbid d5"}',
    ]
    return run("\n".join(lines) + "\n")


def test_spec_example_output_exactly(mixed_output: list[dict[str, object]]) -> None:
    assert mixed_output[0] == SPEC_OUTPUT
    assert list(mixed_output[0]) == ["id", "risk", "flags"]
    assert list(mixed_output[0]["flags"][0]) == ["category", "severity", "start", "end", "evidence", "rule"]  # type: ignore[index]


def test_one_line_out_per_line_in_same_order(mixed_output: list[dict[str, object]]) -> None:
    assert len(mixed_output) == 10
    assert [line.get("id") for line in mixed_output] == ["e1", None, "no-text", 3, None, None, "num", "e8", None,
                                                        "last"]
    assert mixed_output[3] == {"id": 3, "risk": "none", "flags": []}
    assert mixed_output[7]["risk"] == "critical"
    assert mixed_output[9]["risk"] == "critical"


def test_bad_lines_get_an_error_and_the_command_goes_on(mixed_output: list[dict[str, object]]) -> None:
    errors = {index: line for index, line in enumerate(mixed_output) if "error" in line}
    assert sorted(errors) == [1, 2, 5, 6, 8]
    assert errors[1]["id"] is None and "invalid JSON" in str(errors[1]["error"])
    assert errors[2] == {"id": "no-text", "error": 'missing "text"'}
    assert errors[6]["id"] == "num"
    assert all(set(line) == {"id", "error"} for line in errors.values())


def test_flags_carry_only_the_contract_keys(mixed_output: list[dict[str, object]]) -> None:
    for line in mixed_output:
        for flag in line.get("flags", []):  # type: ignore[union-attr]
            assert set(flag) == {"category", "severity", "start", "end", "evidence", "rule"}


def test_order_is_kept_across_batches() -> None:
    texts = ["glove torn", "no growth observed", "label not checked", "cells counted"] * 150
    stdin = "".join(json.dumps({"id": i, "text": text}) + "\n" for i, text in enumerate(texts))
    output = run(stdin, "--batch-size", "7")
    assert [line["id"] for line in output] == list(range(len(texts)))
    assert [line["risk"] for line in output[:4]] == ["critical", "none", "critical", "none"]


def test_it_streams_one_answer_per_line_before_input_ends() -> None:
    process = subprocess.Popen([sys.executable, "manage.py", "review_text"], cwd=ROOT, env=ENV, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE)
    assert process.stdin is not None and process.stdout is not None
    try:
        for entry_id, text in (("a", "glove torn"), ("b", "no leaks")):
            process.stdin.write((json.dumps({"id": entry_id, "text": text}) + "\n").encode())
            process.stdin.flush()
            answer = json.loads(process.stdout.readline())
            assert answer["id"] == entry_id
    finally:
        process.stdin.close()
        process.wait(timeout=60)
    assert process.returncode == 0


def test_a_final_line_without_newline_is_answered() -> None:
    assert run('{"id": "x", "text": "no leaks"}') == [{"id": "x", "risk": "none", "flags": []}]


def test_rules_only_and_baseline_keep_the_same_shape() -> None:
    stdin = '{"id": "e1", "text": "Glove torn during transfer in BSC, changed gloves."}\n'
    assert run(stdin, "--rules-only") == [SPEC_OUTPUT]
    baseline = run(stdin, "--baseline")[0]
    assert set(baseline) == {"id", "risk", "flags"}
    assert all(set(flag) == {"category", "severity", "start", "end", "evidence", "rule"}
               for flag in baseline["flags"])  # type: ignore[union-attr]


def test_it_runs_with_no_server_configured() -> None:
    """As an integrator runs it on a fresh checkout: no DATABASE_URL or REDIS_URL at all. manage.py
    then uses the embedded servers under .local/ (started for the command if none runs, stopped
    after), and nothing but the answers reaches standard output."""
    env = {name: value for name, value in os.environ.items() if name not in ("DATABASE_URL", "REDIS_URL")}
    done = subprocess.run([sys.executable, "manage.py", "review_text"], cwd=ROOT, env=env, capture_output=True,
                          input=b'{"id": "e1", "text": "Glove torn during transfer in BSC, changed gloves."}\n',
                          check=True, timeout=300)
    assert [json.loads(line) for line in done.stdout.decode().splitlines()] == [SPEC_OUTPUT]
