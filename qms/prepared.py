"""Prepared statements for the few queries that run on every instrument post.

Django's PostgreSQL backend binds parameters on the client (psycopg's ClientCursor): each
execution sends the SQL text with the values written into it, which PostgreSQL parses and
plans again, and a bytea value travels as an escaped hex literal twice its size that the client
builds and the server decodes. The ingest path runs the same handful of statements on every
post, several posts a second per instrument. Prepared once per database connection, they are
neither parsed nor planned again, and their parameters travel in binary.

The cursor runs on Django's connection, inside whatever transaction is open there, and its
errors are Django's (IntegrityError, OperationalError ...), as with `connection.cursor()`. It
goes around Django's cursor wrapper: these statements are not in DEBUG's query log nor seen by
`CaptureQueriesContext`. Django leaves preparing off on its connections (`prepare_threshold`
None, for transaction-pooling proxies such as PgBouncer, which this deployment does not use);
its own cursors bind on the client and never prepare anyway, so turning it on for the connection
changes only the cursors made here. The statements name their result columns, so a migration
that adds a column does not invalidate them (PostgreSQL re-plans them itself); one that changes
the type of a column they return makes them fail ("cached plan must not change result type")
until the process reconnects, which is why an upgrade restarts every process after migrating
(deploy/README.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from django.db import connection

# psycopg's own default: a statement run this often without prepare=True is prepared too.
PREPARE_THRESHOLD = 5


@contextmanager
def prepared_cursor() -> Iterator[psycopg.Cursor[Any]]:
    """A server-side binding cursor: `execute(sql, params, prepare=True)` prepares `sql` on the
    connection the first time and reuses it afterwards.

    Placeholders are psycopg's (%s, %(name)s); a Python list is sent as an array.
    """
    # Django's cursor first: it opens the connection, or replaces one that failed its health check.
    with connection.cursor() as django_cursor, connection.wrap_database_errors:
        raw = django_cursor.cursor.connection
        if raw.prepare_threshold is None:  # Django's default: no statement would ever be prepared
            raw.prepare_threshold = PREPARE_THRESHOLD
        with psycopg.Cursor(raw) as cursor:
            yield cursor
