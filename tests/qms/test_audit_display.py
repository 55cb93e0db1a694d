"""The audit trail reads as people read it: a changed moment in the facility's zone, a related
record by its name; the stored value stays as written (UTC, the id), and the CSV export keeps
one zone, UTC, in every column."""

import csv
import io
from datetime import UTC, date, datetime

import pytest

from qms.audit import Event, create_with_reason, save_with_reason
from qms.models import AuditEvent, TrainingRecord
from qms.selectors import audit_row
from tests.conftest import login

pytestmark = pytest.mark.django_db
MOMENT = datetime(2026, 7, 1, 6, 30, tzinfo=UTC)  # 08:30 in Paris (CEST)


def _latest(event_type, target):
    return AuditEvent.objects.filter(event_type=event_type, target_id=str(target.pk)).latest("id")


def test_related_records_are_recorded_with_their_name_and_shown_by_it(operator, admin_user):
    record = create_with_reason(
        TrainingRecord, actor=admin_user, reason="Training", event=Event.TRAINING_RECORDED, user=operator,
        document_kind="sop", document_code="SOP-017", version="3", trained_on=date(2026, 6, 1), trainer=admin_user,
        recorded_by=admin_user, recorded_at=MOMENT)

    event = _latest(Event.TRAINING_RECORDED, record)
    stored = {c["field"]: c for c in event.data["changes"]}
    assert stored["trainer"] == {"field": "trainer", "old": None, "new": admin_user.pk, "new_label": str(admin_user)}
    shown = {c["field"]: c for c in audit_row(event, None).changes}
    assert shown["trainer"]["new"] == str(admin_user) and shown["user"]["new"] == str(operator)
    assert shown["recorded_at"]["new"] == "2026-07-01 08:30:00 CEST"
    assert shown["trained_on"]["new"] == "2026-06-01"


def test_a_changed_moment_is_shown_in_the_facility_zone_and_exported_in_utc(operator, admin_user, auditor, client):
    operator.last_login = MOMENT
    save_with_reason(operator, actor=admin_user, reason="Last login imported", update_fields=["last_login"])
    event = _latest(Event.RECORD_CHANGED, operator)
    assert event.data["changes"] == [{"field": "last_login", "old": None, "new": "2026-07-01 06:30:00+00:00"}]

    assert audit_row(event, None).changes == [{"field": "last_login", "label": "last login", "old": "—",
                                               "new": "2026-07-01 08:30:00 CEST"}]  # the field named as people say it
    page = client_page(client, auditor, operator)
    assert "2026-07-01 08:30:00 CEST" in page and "06:30:00+00:00" not in page

    response = client.get("/audit/export.csv", {"username": admin_user.username, "event_type": "RECORD_CHANGED"})
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    line = next(r for r in rows[1:] if int(r[0]) == event.pk)
    assert line[1].endswith("+00:00") and line[8] == "last_login: — → 2026-07-01T06:30:00+00:00"


def client_page(client, auditor, operator):
    login(client, auditor)
    response = client.get(f"/audit/record/qms.user/{operator.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def test_a_moment_entered_in_the_facility_zone_is_recorded_in_utc(operator, admin_user):
    """A time from a form arrives in the facility's zone; the audit trail records it in UTC."""
    from zoneinfo import ZoneInfo

    operator.last_login = MOMENT.astimezone(ZoneInfo("Europe/Paris"))
    save_with_reason(operator, actor=admin_user, reason="Last login imported", update_fields=["last_login"])

    event = _latest(Event.RECORD_CHANGED, operator)
    assert event.data["changes"][0]["new"] == "2026-07-01 06:30:00+00:00"


def test_a_moment_recorded_with_an_offset_is_still_shown_locally_and_exported_in_utc():
    from qms.audit.display import audit_value_display

    assert audit_value_display("2026-07-01 08:30:00+02:00") == "2026-07-01 08:30:00 CEST"
    assert audit_value_display("2026-07-01 08:30:00+02:00", local=False) == "2026-07-01T06:30:00+00:00"


def test_events_read_as_words_on_the_page_and_in_the_filter_and_keep_their_code(operator, admin_user, auditor,
                                                                                 client):
    from qms.services import users as user_services

    user_services.password_reset(actor=admin_user, user=operator, password="violet-harbour-ninety-two",
                                 reason="Forgot password; identity checked in person")
    login(client, auditor)
    page = client.get("/audit/", {"event_type": Event.PASSWORD_RESET.value}).content.decode()

    assert '<option value="PASSWORD_RESET" selected>Password reset (PASSWORD_RESET)</option>' in page
    assert '<option value="CAPA_ACTION_COMPLETED">CAPA action completed (CAPA_ACTION_COMPLETED)</option>' in page
    row = page.split('class="audit-row"')[1].split("</tr>")[0]
    assert 'data-label="Event">Password reset<div class="muted"><code>PASSWORD_RESET</code>' in row
    response = client.get("/audit/export.csv", {"event_type": Event.PASSWORD_RESET.value})
    exported = b"".join(response.streaming_content).decode()
    assert ",PASSWORD_RESET," in exported  # the export carries the stored code
