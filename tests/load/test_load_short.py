"""The load run in its short form, in every CI run: 30 operators, 5 QA users and 20 bioreactors
against gunicorn + Celery for LOAD_SECONDS (default 45). It asserts what must hold under any load:
no error, nothing lost, nothing doubled. Latency targets live in the full run (`make bench`,
tests/bench/test_load.py); here the figures are only printed."""

from __future__ import annotations

import os

import pytest

from tests.load.harness import load_measured, nothing_lost_or_doubled

SECONDS = float(os.environ.get("LOAD_SECONDS", "45"))

pytestmark = pytest.mark.worker


def test_short_load_run_has_no_errors_and_loses_nothing(committed, broker, worker, relay, tmp_path):
    report = load_measured(broker.url, tmp_path / "gunicorn.log", SECONDS, steps=40)

    print(f"\n\nLoad run (short form), {SECONDS:.0f} s\n{report.text}\n")
    assert not report.results.errors, report.results.errors[:5]
    assert not nothing_lost_or_doubled(report.site, report.results)
    assert report.results.entries_accepted > 0 and report.results.steps_signed > 0
    assert report.results.readings_sent > 0
