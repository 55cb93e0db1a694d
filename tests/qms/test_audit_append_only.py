"""Audit tables reject UPDATE, DELETE and TRUNCATE in the database itself (21 CFR 11.10(e))."""

import pytest
from django.apps import apps
from django.db import DatabaseError, connection, transaction

from qms.audit import Event, record_event
from qms.models import AuditedTable

pytestmark = pytest.mark.django_db

# table → a column to "update"
PROTECTED = {"qms_auditevent": "reason", "qms_signature": "reason", "qms_historicaluser": "full_name",
             "qms_auditchainentry": "row_digest", "qms_auditedtable": "pk_column"}


@pytest.fixture
def audited_rows(operator):
    from qms.signatures import Meaning, sign
    from tests.conftest import PASSWORD

    record_event(actor=operator, event=Event.LOGIN_SUCCEEDED, target=operator)
    with transaction.atomic():
        sign(signer=operator, password=PASSWORD, username=operator.username, meaning=Meaning.ACKNOWLEDGED,
             target=operator, reason="Role assignment read and understood")
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # chain the rows now, not at commit


def _refused(sql: str) -> str:
    with pytest.raises(DatabaseError) as refused, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)
    return str(refused.value)


@pytest.mark.parametrize("table", PROTECTED)
def test_update_is_refused(audited_rows, table):
    column = PROTECTED[table]
    message = _refused(f'UPDATE "{table}" SET {column} = {column}')

    assert "append-only" in message


@pytest.mark.parametrize("table", PROTECTED)
def test_delete_is_refused(audited_rows, table):
    assert "append-only" in _refused(f'DELETE FROM "{table}"')


@pytest.mark.parametrize("table", PROTECTED)
def test_truncate_is_refused(audited_rows, table):
    assert "append-only" in _refused(f'TRUNCATE "{table}" CASCADE')


def test_every_history_table_is_protected_and_chained():
    history_tables = {model._meta.db_table for model in apps.get_models()
                      if model.__name__.startswith("Historical")}
    chained = set(AuditedTable.objects.values_list("table_name", flat=True))

    assert history_tables, "no history tables found"
    assert history_tables | {"qms_auditevent", "qms_signature"} <= chained
    with connection.cursor() as cursor:
        cursor.execute("""SELECT c.relname, array_agg(t.tgname::text) FROM pg_trigger t
                          JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal GROUP BY c.relname""")
        triggers = dict(cursor.fetchall())
    for table in chained:
        assert {"qms_append_only_row", "qms_append_only_truncate", "qms_audit_chain"} <= set(triggers[table]), table
