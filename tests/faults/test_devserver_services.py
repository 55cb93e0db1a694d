"""`make run` against real servers: a missing database is created (as the embedded server's is),
and a server that cannot be used stops the start with one line saying why, never a traceback
or a password."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from django.db import connection

from ebr import devserver


def _server_url(dbname: str) -> str:
    settings = connection.settings_dict
    return f"postgres://{settings['USER']}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{dbname}"


@pytest.mark.django_db
def test_a_missing_database_is_created_once(capsys):
    name = f"devserver_{uuid.uuid4().hex[:10]}"
    url = _server_url(name)
    try:
        devserver.database_ready(url)
        devserver.database_ready(url)  # the second start finds it

        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (name,)
        assert capsys.readouterr().out.count(f"created database {name}") == 1
    finally:
        with psycopg.connect(_server_url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.mark.parametrize(("ready", "url", "said"), [
    (devserver.database_ready, "postgres://ebr:s3cret-pass@127.0.0.1:1/ebr",
     "cannot use the database postgres://ebr@127.0.0.1:1/ebr: "),
    (devserver.redis_ready, "redis://:s3cret-pass@127.0.0.1:1/0", "cannot use Redis at redis://127.0.0.1:1/0: "),
])
def test_an_unreachable_server_is_one_line_without_the_password(ready, url: str, said: str):
    with pytest.raises(devserver.ServiceUnusable) as refused:
        ready(url)

    message = str(refused.value)
    assert message.startswith(said)
    assert "\n" not in message and "s3cret-pass" not in message


def test_the_start_stops_with_that_line_and_exit_1(monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", "postgres://ebr:s3cret-pass@127.0.0.1:1/ebr")
    monkeypatch.setattr(devserver.subprocess, "run", lambda *a, **k: pytest.fail("migrate must not run"))

    assert devserver.main() == 1
    err = capsys.readouterr().err
    assert err.startswith("devserver: cannot use the database postgres://ebr@127.0.0.1:1/ebr") and err.count("\n") == 1
