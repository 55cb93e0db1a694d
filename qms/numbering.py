"""Gap-free, human-readable record numbers: DEV-2026-0001, CAPA-2026-0001, CC-2026-0001.

GMP readers check a register for completeness by its numbers, so a number must never be
skipped. The counter for (prefix, year) is incremented in the caller's transaction under a row
lock (SELECT ... FOR UPDATE): concurrent creators queue on the lock, and a creation that rolls
back takes its increment with it, so the next creator gets the same number.
"""

from __future__ import annotations

from django.db import connection, transaction
from django.utils import timezone

from qms.models import NumberSequence

WIDTH = 4


def number_next(prefix: str, year: int | None = None) -> str:
    """The next number for `prefix` in `year` (the facility's current year by default)."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("number_next() must run inside the transaction that creates the record")
    year = year or timezone.localdate().year
    table = NumberSequence._meta.db_table
    with connection.cursor() as cursor:
        # Create the counter once; a concurrent creator's insert makes this one do nothing.
        cursor.execute(f'INSERT INTO "{table}" (prefix, year, last_value) VALUES (%s, %s, 0) '  # noqa: S608
                       "ON CONFLICT (prefix, year) DO NOTHING", [prefix, year])
    sequence = NumberSequence.objects.select_for_update().get(prefix=prefix, year=year)
    sequence.last_value += 1
    sequence.save(update_fields=["last_value"])
    return f"{prefix}-{year}-{sequence.last_value:0{WIDTH}d}"
