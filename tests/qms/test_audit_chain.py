"""The hash chain detects changes made behind the application's back; concurrent writers never fork it."""

import threading
import uuid

import pytest
from django.core.management import call_command
from django.db import connection, connections, transaction

from qms.audit import Event, SystemActor, record_event
from qms.audit.chain import audit_chain_verify
from qms.models import AuditChainEntry, AuditEvent


def _chain_now() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def _as_superuser_without_triggers(table: str, sql: str, params: list | None = None) -> None:
    """What an administrator with database superuser rights could do."""
    with connection.cursor() as cursor:
        cursor.execute(f'ALTER TABLE "{table}" DISABLE TRIGGER USER')
        cursor.execute(sql, params or [])
        cursor.execute(f'ALTER TABLE "{table}" ENABLE TRIGGER USER')


def _verify(capsys) -> tuple[int, str]:
    try:
        call_command("verify_audit_trail")
    except SystemExit as exit_:
        return int(exit_.code or 0), capsys.readouterr().err
    return 0, capsys.readouterr().out


@pytest.fixture
def chained_events(db, operator):
    events = [record_event(actor=operator, event=Event.LOGIN_SUCCEEDED, target=operator, reason=f"e{i}")
              for i in range(3)]
    _chain_now()
    return events


def test_intact_chain_verifies(chained_events, capsys):
    code, output = _verify(capsys)

    assert code == 0
    assert "audit trail intact" in output


def test_edited_row_is_detected_and_named(chained_events, capsys):
    target = chained_events[1]
    _as_superuser_without_triggers("qms_auditevent", "UPDATE qms_auditevent SET reason = 'nothing happened' "
                                   "WHERE id = %s", [target.pk])
    entry = AuditChainEntry.objects.get(table_name="qms_auditevent", row_pk=str(target.pk))

    code, output = _verify(capsys)

    assert code == 1
    assert f"entry {entry.seq} (qms_auditevent {target.pk}): row changed after it was recorded" in output


def test_deleted_row_is_detected(chained_events, capsys):
    target = chained_events[0]
    _as_superuser_without_triggers("qms_auditevent", "DELETE FROM qms_auditevent WHERE id = %s", [target.pk])

    code, output = _verify(capsys)

    assert code == 1
    assert f"(qms_auditevent {target.pk}): row deleted" in output


def test_row_inserted_without_the_chain_is_detected(chained_events, capsys):
    _as_superuser_without_triggers(
        "qms_auditevent",
        "INSERT INTO qms_auditevent (occurred_at, actor_label, event_type, target_type, target_id, target_label, "
        "reason, data) VALUES (now(), 'intruder', 'BATCH_RELEASED', '', '', 'B-0', '', '{}')")

    code, output = _verify(capsys)

    assert code == 1
    assert "not in the chain" in output


def test_rewritten_chain_entry_is_detected(chained_events, capsys):
    last = AuditChainEntry.objects.order_by("-seq").first()
    _as_superuser_without_triggers("qms_auditchainentry", "UPDATE qms_auditchainentry SET row_digest = %s "
                                   "WHERE seq = %s", ["0" * 64, last.seq])

    code, output = _verify(capsys)

    assert code == 1
    assert f"entry {last.seq}" in output


def test_removed_chain_entry_is_detected(chained_events, capsys):
    middle = AuditChainEntry.objects.get(table_name="qms_auditevent", row_pk=str(chained_events[1].pk))
    _as_superuser_without_triggers("qms_auditchainentry", "DELETE FROM qms_auditchainentry WHERE seq = %s",
                                   [middle.seq])

    code, output = _verify(capsys)

    assert code == 1
    assert f"entry {middle.seq}" in output


def test_eight_concurrent_writers_leave_one_valid_chain(committed):
    marker = uuid.uuid4().hex
    per_thread = 25
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def writer(n: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                with transaction.atomic():
                    record_event(actor=SystemActor(f"system:thread-{n}"), event=Event.RECORD_CHANGED,
                                 target_label=marker, reason=f"{n}-{i}")
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert not errors
    ids = [str(pk) for pk in AuditEvent.objects.filter(target_label=marker).values_list("pk", flat=True)]
    assert len(ids) == 8 * per_thread
    assert AuditChainEntry.objects.filter(table_name="qms_auditevent", row_pk__in=ids).count() == 8 * per_thread
    seqs = list(AuditChainEntry.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1)), "the chain has no gap and no fork"
    report = audit_chain_verify()
    assert report.intact, report.first_break


@pytest.mark.django_db
def test_a_column_an_audited_table_gains_is_nullable_so_rows_chained_before_keep_their_digest():
    """A chained row's digest leaves out its null columns (qms/audit/dbtriggers.py): a column added
    later must be NULL in the rows already chained, or every one of them reads as changed after it was
    recorded once a site upgrades. Checked on every migration that adds a column to a chained table."""
    from django.apps import apps
    from django.db.migrations.loader import MigrationLoader
    from django.db.migrations.operations import AddField, CreateModel

    with connection.cursor() as cursor:
        cursor.execute("SELECT table_name FROM qms_auditedtable")
        chained = {name for (name,) in cursor.fetchall()}
    added = []
    for (app_label, name), migration in MigrationLoader(connection).disk_migrations.items():
        created = {op.name.lower() for op in migration.operations if isinstance(op, CreateModel)}
        for operation in migration.operations:
            # A column added in the migration that creates its table (a foreign key, say) meets no chained row.
            if isinstance(operation, AddField) and operation.model_name.lower() not in created:
                table = apps.get_model(app_label, operation.model_name)._meta.db_table
                if table in chained:
                    added.append((f"{app_label}.{name}", table, operation.name, operation.field.null))

    assert added, "no migration adds a column to a chained table: the check checks nothing"
    assert [entry for entry in added if not entry[3]] == []
