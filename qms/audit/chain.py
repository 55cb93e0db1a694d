"""Recompute the audit hash chain from the stored rows (21 CFR 11.10(e), Annex 11 §9).

The database computed each link when the row was committed; here the same digests and links are
computed again in Python from what is stored now. Any difference means a row was changed,
removed or slipped in behind the application's back (for example by a superuser who disabled
the triggers): `verify_audit_trail` names the first such entry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.db import connections, transaction

from qms.audit.dbtriggers import GENESIS_HASH

FETCH_ROWS = 20_000


@dataclass(frozen=True)
class ChainBreak:
    seq: int | None
    table_name: str
    row_pk: str
    problem: str

    def __str__(self) -> str:
        where = f"entry {self.seq}" if self.seq is not None else "no entry"
        return f"{where} ({self.table_name} {self.row_pk}): {self.problem}"


@dataclass
class ChainReport:
    entries: int = 0
    rows_checked: int = 0
    breaks: list[ChainBreak] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.breaks

    @property
    def first_break(self) -> ChainBreak | None:
        with_seq = [b for b in self.breaks if b.seq is not None]
        if with_seq:
            return min(with_seq, key=lambda b: b.seq or 0)
        return self.breaks[0] if self.breaks else None


def link_hash(prev_hash: str, seq: int, table_name: str, row_pk: str, digest: str) -> str:
    text = "|".join((prev_hash, str(seq), table_name, row_pk, digest))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _stream(cursor_factory, sql: str, params: tuple = ()) -> Iterator[tuple]:  # type: ignore[no-untyped-def]
    with cursor_factory() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(FETCH_ROWS):
            yield from rows


def _check_links(cursor_factory, report: ChainReport) -> None:  # type: ignore[no-untyped-def]
    expected_prev, expected_seq = GENESIS_HASH, 1
    sql = ("SELECT seq, table_name, row_pk, row_digest, prev_hash, entry_hash "
           "FROM qms_auditchainentry ORDER BY seq")
    for seq, table_name, row_pk, digest, prev_hash, entry_hash in _stream(cursor_factory, sql):
        report.entries += 1
        if seq != expected_seq:
            report.breaks.append(ChainBreak(expected_seq, table_name, row_pk,
                                            f"entry missing: chain jumps from {expected_seq - 1} to {seq}"))
        elif prev_hash != expected_prev:
            report.breaks.append(ChainBreak(seq, table_name, row_pk, "previous hash does not match"))
        elif link_hash(prev_hash, seq, table_name, row_pk, digest) != entry_hash:
            report.breaks.append(ChainBreak(seq, table_name, row_pk, "entry hash does not match its content"))
        if report.breaks:
            return
        expected_prev, expected_seq = entry_hash, seq + 1


def _check_rows(cursor_factory, report: ChainReport, table_name: str, pk_column: str) -> None:  # type: ignore[no-untyped-def]
    chained = (
        f'SELECT l.seq, l.row_pk, l.row_digest, jsonb_strip_nulls(to_jsonb(t))::text '  # noqa: S608
        f'FROM qms_auditchainentry l LEFT JOIN "{table_name}" t ON t."{pk_column}"::text = l.row_pk '
        f"WHERE l.table_name = %s ORDER BY l.seq"
    )
    checked = 0
    for seq, row_pk, digest, content in _stream(cursor_factory, chained, (table_name,)):
        checked += 1
        if content is None:
            report.breaks.append(ChainBreak(seq, table_name, row_pk, "row deleted"))
        elif hashlib.sha256(content.encode("utf-8")).hexdigest() != digest:
            report.breaks.append(ChainBreak(seq, table_name, row_pk, "row changed after it was recorded"))
        if report.breaks:
            return
    report.rows_checked += checked
    # Every chained row exists (checked above), so more rows than entries means some row was
    # written without the chain. Counting is cheap; only then look for which one.
    with cursor_factory() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{table_name}"')  # noqa: S608
        stored = cursor.fetchone()[0]
    if stored == checked:
        return
    unchained = (
        f'SELECT t."{pk_column}"::text FROM "{table_name}" t WHERE NOT EXISTS ('  # noqa: S608
        f"SELECT 1 FROM qms_auditchainentry l WHERE l.table_name = %s "
        f'AND l.row_pk = t."{pk_column}"::text) LIMIT 1'
    )
    for (row_pk,) in _stream(cursor_factory, unchained, (table_name,)):
        report.breaks.append(ChainBreak(None, table_name, row_pk,
                                        "row is not in the chain (written behind the application's back)"))


def audit_chain_verify(*, using: str = "default") -> ChainReport:
    """Walk the whole chain in one consistent snapshot; stop at the first break."""
    connection = connections[using]
    report = ChainReport()
    outer = connection.in_atomic_block
    with transaction.atomic(using=using):
        with connection.cursor() as cursor:
            if not outer:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            cursor.execute("SET LOCAL TimeZone TO 'UTC'")
            # The join of chain entries to rows sorts millions of keys: keep it in memory.
            cursor.execute("SET LOCAL work_mem = '256MB'")
            cursor.execute("SELECT table_name, pk_column FROM qms_auditedtable ORDER BY table_name")
            tables = cursor.fetchall()
        _check_links(connection.chunked_cursor, report)
        for table_name, pk_column in tables:
            if report.breaks:
                break
            _check_rows(connection.chunked_cursor, report, table_name, pk_column)
    return report
