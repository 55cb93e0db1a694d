"""Cost of one GxP save: a plain insert against the same insert with the Part 11 machinery.

Every variant is N single-row transactions (BEGIN, work, COMMIT), committed for real so the
deferred chain trigger runs at each COMMIT. The variants are interleaved in rounds so that
cache warm-up and disk drift fall on all of them alike; the figures are ratios within one run.

  (a)  one INSERT into `bench_plain`, an unaudited copy of qms_auditevent (same columns, indexes)
  (a2) two such INSERTs: the row count of (b) with no audit machinery
  (b2) (a) + a raw INSERT into qms_auditevent: (b2) - (a2) is the append-only and chain triggers
  (b)  (a) + `record_event(...)`: the audit event, written through the ORM, chained at COMMIT
  (c)  `save_with_reason` on a history-tracked User: field diff, history row, audit event, 2 links

Set BENCH_AUDIT_N to change N (default 2,000).
"""

from __future__ import annotations

import json
import os
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.db import connection, transaction

from qms.audit import Event, record_event, save_with_reason
from qms.audit.chain import audit_chain_verify
from qms.models import User

N = int(os.environ.get("BENCH_AUDIT_N", "2000"))
ROUNDS = 4
WARM_UP = 20

PLAIN_TABLE_SQL = """
CREATE TABLE bench_plain (
    id bigserial PRIMARY KEY,
    occurred_at timestamptz NOT NULL,
    actor_id bigint NULL,
    actor_label varchar(200) NOT NULL,
    event_type varchar(64) NOT NULL,
    target_type varchar(100) NOT NULL,
    target_id varchar(64) NOT NULL,
    target_label varchar(200) NOT NULL,
    reason text NOT NULL,
    data jsonb NOT NULL
);
CREATE INDEX bench_plain_occurred_idx ON bench_plain (occurred_at);
CREATE INDEX bench_plain_target_idx ON bench_plain (target_type, target_id, id DESC);
CREATE INDEX bench_plain_actor_idx ON bench_plain (actor_id, id DESC);
CREATE INDEX bench_plain_event_idx ON bench_plain (event_type, id DESC);
"""

COLUMNS = "occurred_at, actor_id, actor_label, event_type, target_type, target_id, target_label, reason, data"
PLAIN_INSERT = f"INSERT INTO bench_plain ({COLUMNS}) VALUES (now(), %s, %s, %s, %s, %s, %s, %s, %s)"
AUDIT_INSERT = f"INSERT INTO qms_auditevent ({COLUMNS}) VALUES (now(), %s, %s, %s, %s, %s, %s, %s, %s)"


@dataclass
class Variant:
    key: str
    label: str
    operation: Callable[[int], None]
    plain_per_op: int
    chain_per_op: int
    timings: list[float] = field(default_factory=list)
    chain_entries: int = 0

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.timings) * 1000

    def quantile_ms(self, q: int) -> float:
        return statistics.quantiles(self.timings, n=100)[q - 1] * 1000


def _chain_head() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(seq), 0) FROM qms_auditchainentry")
        return int(cursor.fetchone()[0])


def _variants(actor: User, subject: User) -> list[Variant]:
    def row(i: int) -> tuple:
        data = json.dumps({"changes": [{"field": "job_title", "old": f"Title {i - 1}", "new": f"Title {i}"}]})
        return (actor.pk, actor.username, Event.RECORD_CHANGED.value, "qms.user", str(subject.pk),
                str(subject)[:200], "bench: title change", data)

    def plain(i: int) -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(PLAIN_INSERT, row(i))

    def plain_twice(i: int) -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(PLAIN_INSERT, row(i))
            cursor.execute(PLAIN_INSERT, row(i))

    def plain_and_raw_audit(i: int) -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(PLAIN_INSERT, row(i))
            cursor.execute(AUDIT_INSERT, row(i))

    def plain_and_record_event(i: int) -> None:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(PLAIN_INSERT, row(i))
            record_event(actor=actor, event=Event.RECORD_CHANGED, target=subject, reason="bench: title change",
                         data={"changes": [{"field": "job_title", "old": f"Title {i - 1}", "new": f"Title {i}"}]})

    def history_save(i: int) -> None:
        with transaction.atomic():
            subject.job_title = f"Title {i}"
            save_with_reason(subject, actor=actor, reason="bench: title change", update_fields=["job_title"])

    return [
        Variant("a", "plain INSERT, unaudited table", plain, 1, 0),
        Variant("a2", "2 plain INSERTs (row count of b)", plain_twice, 2, 0),
        Variant("b2", "(a) + raw INSERT into qms_auditevent", plain_and_raw_audit, 1, 1),
        Variant("b", "(a) + record_event()", plain_and_record_event, 1, 1),
        Variant("c", "save_with_reason(User.job_title)", history_save, 0, 2),
    ]


def _run(variants: list[Variant]) -> None:
    for variant in variants:
        for i in range(WARM_UP):
            variant.operation(-1 - i)
    per_round = N // ROUNDS
    for round_no in range(ROUNDS):
        for variant in variants:
            head = _chain_head()
            for i in range(round_no * per_round, (round_no + 1) * per_round):
                started = time.perf_counter()
                variant.operation(i)
                variant.timings.append(time.perf_counter() - started)
            variant.chain_entries += _chain_head() - head


def _print_table(variants: list[Variant], chain_seconds: float, chain_entries: int, unanalysed: int) -> None:
    base, base_p50 = variants[0].mean_ms, variants[0].quantile_ms(50)
    ratios = {v.key: v.mean_ms / base for v in variants}
    print(f"\n\nGxP save cost: {N:,} single-row committed transactions per variant, "
          f"interleaved in {ROUNDS} rounds (PostgreSQL {connection.pg_version // 10000}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print(f"{'variant':<46}{'mean ms':>9}{'p50 ms':>9}{'p95 ms':>9}{'chain/op':>10}{'x(a) mean':>11}{'x(a) p50':>10}")
    for v in variants:
        print(f"({v.key}){'':<{4 - len(v.key)}}{v.label:<40}{v.mean_ms:>9.3f}{v.quantile_ms(50):>9.3f}"
              f"{v.quantile_ms(95):>9.3f}{v.chain_entries / len(v.timings):>10.2f}{ratios[v.key]:>11.2f}"
              f"{v.quantile_ms(50) / base_p50:>10.2f}")
    by_key = {v.key: v for v in variants}
    print(f"(b) vs (a): {ratios['b']:.2f}x   (c) vs (a): {ratios['c']:.2f}x   (mean ms per transaction)")
    print(f"triggers alone, (b2) - (a2): {by_key['b2'].mean_ms - by_key['a2'].mean_ms:+.3f} ms/op; "
          f"ORM + record_event in Python, (b) - (b2): {by_key['b'].mean_ms - by_key['b2'].mean_ms:+.3f} ms/op")
    print(f"audit_chain_verify() afterwards: {chain_entries:,} entries in {chain_seconds:.2f} s, intact "
          f"({unanalysed} of 3 audit tables not yet analysed by autovacuum)\n")


@pytest.mark.django_db
def test_audit_chain_trigger_installed() -> None:
    """Precondition, and the reason this module has a `django_db` test at all: pytest-django
    creates the test database only for aliases that some collected test marks with `django_db`;
    `committed` alone does not ask for it, so `pytest tests/bench/<this file>` would otherwise
    run against the development database."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_trigger WHERE tgname = 'qms_audit_chain' AND tgdeferrable "
                       "AND tgrelid IN ('qms_auditevent'::regclass, 'qms_historicaluser'::regclass)")
        assert cursor.fetchone()[0] == 2


def test_audit_cost_per_gxp_save(committed) -> None:  # type: ignore[no-untyped-def]
    token = uuid.uuid4().hex[:6]
    actor = User.objects.create_user(username=f"bench-qa-{token}", full_name="Bench Approver", password=None)
    subject = User.objects.create_user(username=f"bench-op-{token}", full_name="Bench Operator", password=None)
    with connection.cursor() as cursor:
        cursor.execute(PLAIN_TABLE_SQL)
    try:
        variants = _variants(actor, subject)
        _run(variants)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM bench_plain")
            plain_rows = cursor.fetchone()[0]
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS bench_plain")

    with connection.cursor() as cursor:
        # Whether autovacuum has analysed the audit tables yet changes verify's plans (see report).
        cursor.execute("SELECT count(*) FROM pg_class WHERE reltuples < 0 AND relname IN "
                       "('qms_auditevent', 'qms_auditchainentry', 'qms_historicaluser')")
        unanalysed = cursor.fetchone()[0]
    started = time.perf_counter()
    report = audit_chain_verify()
    chain_seconds = time.perf_counter() - started
    _print_table(variants, chain_seconds, report.entries, unanalysed)

    assert report.intact, [str(b) for b in report.breaks]
    # Sanity: each variant did what its label says (this is a benchmark, not a timing test).
    assert plain_rows == sum(v.plain_per_op * (len(v.timings) + WARM_UP) for v in variants)
    for v in variants:
        assert v.chain_entries == v.chain_per_op * len(v.timings), v.key
