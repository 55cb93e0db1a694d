"""The audit trail at scale: chain one million events, verify them, page through them.

One module-scoped fill writes BENCH_AUDIT_ROWS (default 1,000,000) audit events in a single
`INSERT ... SELECT FROM generate_series` transaction; the deferred constraint trigger chains
every row at COMMIT, which is timed separately. Then:

- `audit_chain_verify()` over the whole chain, against the 30 s acceptance target;
- `audit_page()` for each filter of the audit trail screen, against a plain SELECT of the same
  rows by the same index, so the ratio is the selector's own overhead (ORM, formatting).

Rows vary over 20 users (real `User` rows, so the username filter resolves to actor ids),
20 event types and 50,000 records, so every filter is selective. The rows stay: the audit
tables are append-only, and `make bench` runs on a fresh `--create-db` database.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction

from qms.audit import Event
from qms.audit.chain import audit_chain_verify
from qms.models import User
from qms.selectors import PAGE_SIZE, AuditFilters, audit_page

ROWS = int(os.environ.get("BENCH_AUDIT_ROWS", "1000000"))
USERS = 20
EVENT_TYPES = [e.value for e in Event][:20]
RECORDS = 50_000
VERIFY_TARGET_SECONDS = 30.0
PAGE_REPEATS = 25

# Row g: actor g mod 20, event type (g / 20) mod 20 (all 400 pairs occur), record spread by a
# multiplier coprime to 50,000 so that no filter lines up with another.
FILL_SQL = """
INSERT INTO qms_auditevent (occurred_at, actor_id, actor_label, event_type, target_type, target_id,
                            target_label, reason, data)
SELECT now() - make_interval(secs => %(rows)s - g),
       (%(actor_ids)s::bigint[])[1 + g %% 20],
       (%(actor_labels)s::text[])[1 + g %% 20],
       (%(event_types)s::text[])[1 + (g / 20) %% 20],
       'ebr.batch',
       (1 + (g * 7919) %% 50000)::text,
       %(prefix)s || lpad((1 + (g * 7919) %% 50000)::text, 6, '0'),
       'bench fill ' || g,
       jsonb_build_object('changes', jsonb_build_array(jsonb_build_object(
           'field', 'status', 'old', 'in_progress', 'new', 'completed')), 'bench', g)
FROM generate_series(1, %(rows)s::bigint) AS g
"""


@dataclass(frozen=True)
class Fill:
    usernames: list[str]
    actor_ids: list[int]
    record_prefix: str
    first_id: int
    last_id: int
    insert_seconds: float
    commit_seconds: float
    analyze_seconds: float


@pytest.fixture(scope="module")
def million_events(django_db_setup, django_db_blocker) -> Iterator[Fill]:  # type: ignore[no-untyped-def]
    token = uuid.uuid4().hex[:6]
    with django_db_blocker.unblock():
        try:
            users = [User.objects.create_user(username=f"bench-{token}-op{k:02d}",
                                              full_name=f"Bench Operator {k:02d}", password=f"bench-{token}-{k}")
                     for k in range(USERS)]
            params = {"rows": ROWS, "actor_ids": [u.pk for u in users],
                      "actor_labels": [u.username for u in users], "event_types": EVENT_TYPES,
                      "prefix": f"B-{token}-"}
            started = time.perf_counter()
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(FILL_SQL, params)
                # One statement, no concurrent writer: its ids are contiguous.
                cursor.execute("SELECT currval(pg_get_serial_sequence('qms_auditevent', 'id'))")
                last_id = cursor.fetchone()[0]
                inserted = time.perf_counter()
            committed_at = time.perf_counter()
            # What autovacuum does to an insert-only table soon after such a load (PostgreSQL 13+):
            # without it the planner guesses, and the first reader of each page pays for setting
            # its hint bits, which would make verify measure a one-off write rather than itself.
            with connection.cursor() as cursor:
                cursor.execute("VACUUM (ANALYZE) qms_auditevent")
                cursor.execute("VACUUM (ANALYZE) qms_auditchainentry")
            analyzed = time.perf_counter()
        finally:
            connection.close()
    yield Fill(
        usernames=[u.username for u in users], actor_ids=[u.pk for u in users], record_prefix=f"B-{token}-",
        first_id=last_id - ROWS + 1, last_id=last_id, insert_seconds=inserted - started,
        commit_seconds=committed_at - inserted, analyze_seconds=analyzed - committed_at,
    )


def _server_cpu_seconds() -> float | None:
    """CPU time of this connection's PostgreSQL backend, when the server runs on this host."""
    if connection.settings_dict.get("HOST") not in ("", None, "127.0.0.1", "localhost", "::1"):
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        if not Path(f"/proc/{pid}/comm").read_text().startswith("postgres"):
            return None
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@pytest.mark.django_db
def test_audit_chain_trigger_installed() -> None:
    """Precondition, and the reason this module has a `django_db` test at all: pytest-django
    creates the test database only for aliases that some collected test marks with `django_db`;
    `committed` alone does not ask for it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_trigger WHERE tgname = 'qms_audit_chain' AND tgdeferrable "
                       "AND tgrelid = 'qms_auditevent'::regclass")
        assert cursor.fetchone()[0] == 1


def test_audit_chain_verify_million(committed, million_events: Fill) -> None:  # type: ignore[no-untyped-def]
    fill = million_events
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('qms_auditevent')), "
                       "pg_size_pretty(pg_total_relation_size('qms_auditchainentry'))")
        events_size, chain_size = cursor.fetchone()
    server_before, client_before = _server_cpu_seconds(), time.process_time()
    started = time.perf_counter()
    report = audit_chain_verify()
    seconds = time.perf_counter() - started
    client_cpu, server_after = time.process_time() - client_before, _server_cpu_seconds()
    server_cpu = f"{server_after - server_before:.1f} s" if server_after is not None and server_before is not None \
        else "n/a (remote server)"
    verdict = "PASS" if seconds <= VERIFY_TARGET_SECONDS else "FAIL"

    print(f"\n\nAudit chain at {ROWS:,} generated events (qms_auditevent {events_size}, chain {chain_size})")
    print(f"{'step':<52}{'seconds':>9}{'rows/s':>12}")
    for step, secs in (("INSERT ... SELECT generate_series (1 transaction)", fill.insert_seconds),
                       ("COMMIT: deferred chain trigger, 1 link per row", fill.commit_seconds)):
        print(f"{step:<52}{secs:>9.2f}{ROWS / secs:>12,.0f}")
    print(f"{'VACUUM (ANALYZE) qms_auditevent, qms_auditchainentry':<52}{fill.analyze_seconds:>9.2f}")
    print(f"{'audit_chain_verify(): links + row digests':<52}{seconds:>9.2f}{report.entries / seconds:>12,.0f}")
    print(f"verify: {report.entries:,} entries, {report.rows_checked:,} rows re-hashed, "
          f"intact={report.intact}; target {VERIFY_TARGET_SECONDS:.0f} s: {verdict} ({seconds:.1f} s)")
    print(f"verify CPU: client {client_cpu:.1f} s, server backend {server_cpu}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (wall time above CPU time means waiting)\n")

    assert report.intact, [str(b) for b in report.breaks]
    assert report.entries >= ROWS
    assert report.rows_checked == report.entries
    assert seconds <= VERIFY_TARGET_SECONDS, f"verify took {seconds:.1f} s for {report.entries:,} entries"


@dataclass(frozen=True)
class PageCase:
    label: str
    filters: AuditFilters
    before: int | None
    plain_sql: str
    plain_params: list[Any]


def _cases(fill: Fill) -> list[PageCase]:
    actor_id, username = fill.actor_ids[3], fill.usernames[3]
    event_type = EVENT_TYPES[5]
    record_id = 1 + (ROWS // 2 * 7919) % RECORDS  # the record of row g = ROWS / 2, as FILL_SQL spreads them
    label = f"{fill.record_prefix}{record_id:06d}"
    deep = fill.first_id + (fill.last_id - fill.first_id) // 10  # ~90 % of the way back
    top = "SELECT * FROM qms_auditevent WHERE {} ORDER BY id DESC LIMIT %s"
    limit = PAGE_SIZE + 1
    return [
        PageCase("no filter, first page", AuditFilters(), None,
                 "SELECT * FROM qms_auditevent ORDER BY id DESC LIMIT %s", [limit]),
        PageCase("username", AuditFilters(username=username), None,
                 top.format("actor_id = %s"), [actor_id, limit]),
        PageCase("event_type", AuditFilters(event_type=event_type), None,
                 top.format("event_type = %s"), [event_type, limit]),
        PageCase("record type:id", AuditFilters(record=f"ebr.batch:{record_id}"), None,
                 top.format("target_type = %s AND target_id = %s"), ["ebr.batch", str(record_id), limit]),
        PageCase("record label (no index on target_label)", AuditFilters(record=label), None,
                 top.format("target_label = %s"), [label, limit]),
        PageCase("no filter, deep page (before=)", AuditFilters(), deep,
                 top.format("id < %s"), [deep, limit]),
        PageCase("event_type, deep page (before=)", AuditFilters(event_type=event_type), deep,
                 top.format("event_type = %s AND id < %s"), [event_type, deep, limit]),
        PageCase("username, deep page (before=)", AuditFilters(username=username), deep,
                 top.format("actor_id = %s AND id < %s"), [actor_id, deep, limit]),
    ]


def _median_ms(operation: Callable[[], Any]) -> tuple[float, Any]:
    result = operation()  # warm-up, and the result to compare
    timings = []
    for _ in range(PAGE_REPEATS):
        started = time.perf_counter()
        operation()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000, result


def _plain(sql: str, params: list[Any]) -> Callable[[], list[tuple]]:
    def run() -> list[tuple]:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    return run


def test_audit_page_against_plain_select(committed, million_events: Fill) -> None:  # type: ignore[no-untyped-def]
    print(f"\n\nAudit trail page ({PAGE_SIZE} rows + 1 look-ahead) at {ROWS:,} events, "
          f"median of {PAGE_REPEATS}: audit_page() vs plain SELECT by the same index "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print(f"{'filter':<42}{'rows':>6}{'audit_page ms':>15}{'plain ms':>10}{'ratio':>8}")
    for case in _cases(million_events):
        page_ms, page = _median_ms(lambda c=case: audit_page(c.filters, before=c.before))
        plain_ms, plain = _median_ms(_plain(case.plain_sql, case.plain_params))
        print(f"{case.label:<42}{len(page.rows):>6}{page_ms:>15.2f}{plain_ms:>10.2f}{page_ms / plain_ms:>8.1f}")

        assert [row.id for row in page.rows] == [row[0] for row in plain[:PAGE_SIZE]], case.label
        assert page.rows, case.label
        assert (page.next_before is not None) == (len(plain) > PAGE_SIZE), case.label
    print()
