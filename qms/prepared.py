"""Prepared statements for the few queries that run on every instrument post.

Django's PostgreSQL backend binds parameters on the client (psycopg's ClientCursor): each
execution sends the SQL text with the values written into it, which PostgreSQL parses and
plans again, and a bytea value travels as an escaped hex literal twice its size that the client
builds and the server decodes. The ingest path runs the same handful of statements on every
post, several posts a second per instrument. Prepared once per database connection, they are
neither parsed nor planned again, and their parameters travel in binary.

The cursor runs on Django's connection, inside whatever transaction is open there, and its
errors are Django's (IntegrityError, OperationalError ...), as with `connection.cursor()`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from django.db import connection


@contextmanager
def prepared_cursor() -> Iterator[psycopg.Cursor[Any]]:
    """A server-side binding cursor: `execute(sql, params, prepare=True)` prepares `sql` on the
    connection the first time and reuses it afterwards.

    Placeholders are psycopg's (%s, %(name)s); a Python list is sent as an array.
    """
    # Django's cursor first: it opens the connection, or replaces one that failed its health check.
    with connection.cursor() as django_cursor, connection.wrap_database_errors, \
            psycopg.Cursor(django_cursor.cursor.connection) as cursor:
        yield cursor
