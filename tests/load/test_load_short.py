"""The load run in its short form, in every CI run: 30 operators, 5 QA users and 20 bioreactors
against gunicorn + Celery for LOAD_SECONDS (default 45). It asserts what must hold under any load:
no error, nothing lost, nothing doubled. Latency targets live in the full run (`make bench`,
tests/bench/test_load.py); here the figures are only printed."""

from __future__ import annotations

import os
import time

import pytest

from tests.ebr.process_builders import LiveServer
from tests.load.harness import database_size, load_run, nothing_lost_or_doubled, site_build, table

SECONDS = float(os.environ.get("LOAD_SECONDS", "45"))

pytestmark = pytest.mark.worker


def test_short_load_run_has_no_errors_and_loses_nothing(committed, broker, worker, relay, tmp_path):
    site = site_build(operators=30, qa_users=5, bioreactors=20, steps=40)
    server = LiveServer(tmp_path / "gunicorn.log", broker_url=broker.url, gunicorn_workers=2).wait_ready()
    size_before = database_size()
    try:
        started = time.monotonic()
        results = load_run(server.url, site, SECONDS)
        elapsed = time.monotonic() - started
    finally:
        server.stop()

    print(f"\n\nLoad run (short form), {SECONDS:.0f} s\n{table(results, elapsed, size_before, database_size())}\n")
    assert not results.errors, results.errors[:5]
    assert not nothing_lost_or_doubled(site, results)
    assert results.entries_accepted > 0 and results.steps_signed > 0 and results.readings_sent > 0
