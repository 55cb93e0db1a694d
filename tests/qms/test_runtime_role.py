"""The database role the application runs as (qms/dbroles.py, `grant_runtime_role`).

It can do the application's work (a batch with a bioreactor, readings posted, alarms raised and
acknowledged, the audit chain appended at commit) and cannot rewrite the record: no UPDATE,
DELETE or TRUNCATE on append-only tables, no dropping or disabling of their triggers. Each test
creates its role inside its own transaction, so nothing outlives it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import orjson
import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from psycopg import sql

from ebr.models import Alarm, Reading
from ebr.services.alarms import alarm_acknowledge, alarms_evaluate
from ebr.services.readings import readings_ingest
from qms.models import AuditChainEntry, AuditEvent
from tests.conftest import PASSWORD
from tests.ebr.process_builders import plant, reading

pytestmark = pytest.mark.django_db


def _role(options: str = "NOLOGIN") -> str:
    name = f"ebr_runtime_{uuid.uuid4().hex[:10]}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        if not cursor.fetchone()[0]:  # make test's embedded server and CI's run as a superuser
            pytest.skip("the test database's user cannot create and become other roles")
        cursor.execute(sql.SQL("CREATE ROLE {} " + options).format(sql.Identifier(name)))
    return name


@pytest.fixture
def runtime_role() -> str:
    name = _role()
    call_command("grant_runtime_role", name)
    return name


@contextmanager
def acting_as(role: str) -> Iterator[None]:
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")


def test_the_runtime_role_does_the_application_s_work(runtime_role):
    chained = AuditChainEntry.objects.count()
    with acting_as(runtime_role):
        site = plant()
        start = timezone.now() - timedelta(hours=1)
        body = {"readings": [reading(n, start + timedelta(minutes=n), value=value)
                             for n, value in enumerate([7.1, 6.5, 6.5, 7.1], start=1)]}
        result = readings_ingest(instrument=site.instrument, body=orjson.dumps(body))
        alarms_evaluate(post_id=result.post_id)
        (alarm,) = Alarm.objects.filter(batch=site.batch)
        alarm_acknowledge(actor=site.who.supervisor, alarm=alarm, comment="Probe checked, pH back in range",
                          password=PASSWORD, username=site.who.supervisor.username)
        with connection.cursor() as cursor:  # the chain trigger runs at commit; fire it now, as this role
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")

    assert Reading.objects.filter(instrument=site.instrument).count() == 4
    assert alarm.deviation_number and AuditEvent.objects.filter(event_type="ALARM_ACKNOWLEDGED").exists()
    assert AuditChainEntry.objects.count() > chained


@pytest.mark.parametrize("statement", [
    "UPDATE qms_auditevent SET reason = 'rewritten'",
    "DELETE FROM qms_auditevent",
    "TRUNCATE qms_auditevent CASCADE",
    "DELETE FROM ebr_reading",
    "UPDATE qms_signature SET printed_name = 'someone else'",
    "DELETE FROM qms_auditchainentry",
    "ALTER TABLE qms_auditevent DISABLE TRIGGER ALL",
    "DROP TRIGGER qms_append_only_row ON qms_auditevent",
    "ALTER TABLE ebr_reading DISABLE TRIGGER qms_append_only_row",
    "SET session_replication_role = replica",
])
def test_the_runtime_role_cannot_rewrite_the_record_or_remove_its_protection(runtime_role, statement):
    with (acting_as(runtime_role), pytest.raises(DatabaseError, match=r"permission denied|must be owner"),
          transaction.atomic(), connection.cursor() as cursor):
        cursor.execute(statement)


def test_the_command_refuses_a_role_that_could_undo_the_protection(capsys):
    with pytest.raises(SystemExit) as unknown:
        call_command("grant_runtime_role", "no_such_role_x1")
    assert unknown.value.code == 2
    assert capsys.readouterr().err.strip() == ("grant_runtime_role: no database role no_such_role_x1: create it "
                                               "first (CREATE ROLE no_such_role_x1 LOGIN PASSWORD ...)")

    for role, why in ((_role("SUPERUSER"), "superuser"), (_role("CREATEROLE"), "may create roles")):
        with pytest.raises(SystemExit) as refused:
            call_command("grant_runtime_role", role)
        assert refused.value.code == 1 and why in capsys.readouterr().err

    owner = _role()
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE TABLE {} (id int); ALTER TABLE {} OWNER TO {}").format(
            sql.Identifier(f"t_{owner}"), sql.Identifier(f"t_{owner}"), sql.Identifier(owner)))
    with pytest.raises(SystemExit) as owns:
        call_command("grant_runtime_role", owner)
    assert owns.value.code == 1 and "owns tables" in capsys.readouterr().err

    member = _role()  # a member of the owner can act as the owner: drop or disable its triggers
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(owner), sql.Identifier(member)))
    with pytest.raises(SystemExit) as through_membership:
        call_command("grant_runtime_role", member)
    assert through_membership.value.code == 1 and "owns tables" in capsys.readouterr().err


def test_the_command_says_what_it_granted(capsys):
    role = _role()
    call_command("grant_runtime_role", role)

    line = capsys.readouterr().out.strip()
    assert line.startswith(f"role {role}: rows of ") and "append-only (read and insert only)" in line
    with connection.cursor() as cursor:
        cursor.execute("SELECT has_table_privilege(%s, 'qms_auditevent', 'INSERT'), "
                       "has_table_privilege(%s, 'qms_auditevent', 'UPDATE'), "
                       "has_table_privilege(%s, 'ebr_batch', 'UPDATE')", [role, role, role])
        assert cursor.fetchone() == (True, False, True)
