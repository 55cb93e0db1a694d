"""The audit-trail CSV export matches the filter, is itself recorded, and cannot carry formulas."""

import csv
import io

import pytest

from qms.audit import Event, record_event
from qms.models import AuditEvent
from tests.conftest import login

pytestmark = pytest.mark.django_db


def _export(client, **query):
    response = client.get("/audit/export.csv", query)
    assert response.status_code == 200
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_export_matches_the_filtered_rows_and_is_audit_logged(client, auditor, operator):
    for i in range(3):
        record_event(actor=operator, event=Event.RECORD_CHANGED, target=operator, reason=f"change {i}")
    login(client, auditor)

    rows = _export(client, username=operator.username, event_type="RECORD_CHANGED")

    expected = list(AuditEvent.objects.filter(actor_id=operator.pk, event_type="RECORD_CHANGED").order_by("-id"))
    assert [int(r[0]) for r in rows[1:]] == [e.pk for e in expected]
    assert [r[7] for r in rows[1:]] == [e.reason for e in expected]
    export = AuditEvent.objects.get(event_type=Event.EXPORT_CREATED, actor_id=auditor.pk)
    assert export.data["rows"] == 3 and export.data["filters"]["username"] == operator.username


def test_text_that_a_spreadsheet_would_run_is_neutralised(client, auditor, operator):
    record_event(actor=operator, event=Event.RECORD_CHANGED, target=operator, reason='=HYPERLINK("http://x")')
    login(client, auditor)

    rows = _export(client, username=operator.username)

    assert any(r[7] == '\'=HYPERLINK("http://x")' for r in rows[1:])
