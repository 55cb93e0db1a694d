"""An inspector reads the audit trail in a browser: who, when, old → new, why, and the signatures.

21 CFR 11.10(e) (secure, time-stamped audit trail of who changed what and why, available for
inspection and copying), 11.50 (signature manifestation: printed name, date and time, meaning),
11.70 (a signature shows as invalid once its record changes), EU GMP Annex 11 §9.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
from django.db import transaction
from playwright.sync_api import expect

from qms.audit import Event, record_event, save_with_reason
from qms.models import AuditEvent, Signature, User
from qms.roles import Role
from qms.signatures import Meaning, format_local, sign
from tests.conftest import PASSWORD
from tests.e2e.conftest import artifact, horizontal_overflow, log_in, path_is, screenshot, small_touch_targets

pytestmark = pytest.mark.e2e

LOCAL_TIME_WITH_ZONE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [A-Z][A-Za-z0-9+-]{1,5}")
CSV_HEADER = ["id", "occurred_at", "actor", "event", "record_type", "record_id", "record",
              "reason", "changes", "signature", "signature_status"]


@dataclass(frozen=True)
class InspectedRecord:
    admin: User
    subject: User
    signer: User
    change_reason: str
    reviewed: Signature  # applied before the change: must show as invalid now
    approved: Signature  # applied after the change: valid

    @property
    def record(self) -> str:
        return f"qms.user:{self.subject.pk}"

    def events_newest_first(self) -> list[AuditEvent]:
        return list(AuditEvent.objects.filter(target_type="qms.user", target_id=str(self.subject.pk))
                    .order_by("-id"))


def _sign(signer: User, target: User, meaning: Meaning, reason: str) -> Signature:
    with transaction.atomic():
        return sign(signer=signer, password=PASSWORD, username=signer.username, meaning=meaning,
                    target=target, reason=reason)


def _inspected_record(e2e_user) -> InspectedRecord:  # type: ignore[no-untyped-def]
    """An account whose job title an administrator changed with a reason, signed before and after."""
    admin = e2e_user(Role.ADMIN, full_name="Alice Admin")
    subject = e2e_user(Role.OPERATOR, full_name="Olivia Operator", job_title="Operator")
    signer = e2e_user(Role.QA_APPROVER, full_name="Claire Approver")
    reviewed = _sign(signer, subject, Meaning.REVIEWED, "Training record reviewed")
    subject.job_title = "Senior cleanroom operator"
    change_reason = f"Promotion after aseptic process simulation {subject.username}"
    save_with_reason(subject, actor=admin, reason=change_reason, update_fields=["job_title"])
    approved = _sign(signer, subject, Meaning.APPROVED, "Promotion approved by QA")
    return InspectedRecord(admin=admin, subject=subject, signer=signer, change_reason=change_reason,
                           reviewed=reviewed, approved=approved)


def _filter(page, *, user: str = "", record: str = "", event: str = "") -> None:  # type: ignore[no-untyped-def]
    form = page.locator("#audit-filters")
    form.get_by_label("User", exact=True).fill(user)
    form.get_by_label("Record", exact=True).fill(record)
    form.get_by_label("Event", exact=True).select_option(event)
    form.get_by_role("button", name="Filter").click()
    query = urlencode({"record": record, "username": user, "event_type": event, "date_from": "", "date_to": ""})
    page.wait_for_url(path_is(f"/audit/?{query}"))
    expect(page.locator("#audit-table")).to_be_visible()


def _row_ids(page) -> list[int]:  # type: ignore[no-untyped-def]
    return [int(row_id) for row_id in page.locator("#audit-rows tr.audit-row").evaluate_all(
        "rows => rows.map(r => r.dataset.id)")]


def _auditor_on_audit_trail(page, e2e_user) -> User:  # type: ignore[no-untyped-def]
    auditor = e2e_user(Role.AUDITOR, full_name="Arthur Auditor")
    log_in(page, auditor.username)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit trail").click()
    expect(page.get_by_role("heading", name="Audit trail", level=1)).to_be_visible()
    return auditor


def test_auditor_finds_who_changed_what_why_and_the_signatures_then_opens_the_record_history(
        tablet_page, e2e_user):
    page = tablet_page
    inspected = _inspected_record(e2e_user)
    _auditor_on_audit_trail(page, e2e_user)

    # By user: the administrator's one change, with old → new value and the reason.
    _filter(page, user=inspected.admin.username)
    change = page.locator("#audit-rows tr.audit-row")
    expect(change).to_have_count(1)
    expect(change).to_contain_text(Event.RECORD_CHANGED)
    expect(change.locator(".change")).to_have_text("job title: Operator → Senior cleanroom operator")
    expect(change.locator(".change del")).to_have_text("Operator")
    expect(change.locator(".change ins")).to_have_text("Senior cleanroom operator")
    expect(change).to_contain_text(inspected.change_reason)
    expect(change).to_contain_text(inspected.admin.username)
    assert LOCAL_TIME_WITH_ZONE.fullmatch(change.locator("td").first.inner_text().strip())
    screenshot(page, "audit-trail-by-user")

    # By user: the signer's two signatures, each with printed name, meaning, local time and zone.
    _filter(page, user=inspected.signer.username)
    signed = page.locator("#audit-rows tr.audit-row")
    expect(signed).to_have_count(2)
    approved, reviewed = signed.nth(0).locator(".signature"), signed.nth(1).locator(".signature")
    for shown, signature in ((approved, inspected.approved), (reviewed, inspected.reviewed)):
        expect(shown.locator("strong")).to_have_text("Claire Approver")
        expect(shown).to_contain_text(f"· {signature.meaning}")
        expect(shown.locator(".muted")).to_have_text(format_local(signature.signed_at))
        assert LOCAL_TIME_WITH_ZONE.fullmatch(shown.locator(".muted").inner_text().strip())
    expect(approved).to_have_class(re.compile(r"\bvalid\b"))
    expect(approved).not_to_contain_text("invalid")
    # The job title changed after this signature: the screen must say it no longer holds (11.70).
    expect(reviewed).to_have_class(re.compile(r"\binvalid\b"))
    expect(reviewed).to_contain_text("invalid — record changed after signing")

    # By record: every event of the account, newest first, exactly the database's rows.
    _filter(page, record=inspected.record)
    expected = inspected.events_newest_first()
    assert _row_ids(page) == [event.pk for event in expected]
    assert [event.event_type for event in expected] == [
        Event.SIGNATURE_APPLIED, Event.RECORD_CHANGED, Event.SIGNATURE_APPLIED,
        Event.USER_ROLES_CHANGED, Event.USER_CREATED]
    assert small_touch_targets(page) == []
    assert horizontal_overflow(page) <= 0
    screenshot(page, "audit-trail-by-record")

    # The record link leads to the per-record history, with the same entries.
    label = str(inspected.subject)
    page.locator("#audit-rows tr.audit-row").first.get_by_role("link", name=label).click()
    page.wait_for_url(f"**/audit/record/qms.user/{inspected.subject.pk}/")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"History of {label}")
    history = page.locator("table.audit tbody tr")
    expect(history).to_have_count(len(expected))
    expect(history.nth(1)).to_contain_text("job title: Operator → Senior cleanroom operator")
    expect(history.nth(1)).to_contain_text(inspected.change_reason)
    expect(history.nth(0).locator(".signature.valid")).to_contain_text("Claire Approver")
    expect(history.nth(2).locator(".signature.invalid")).to_contain_text("record changed after signing")
    assert page.log.console_errors_besides_favicon() == []
    assert page.log.csp_violations(page) == []
    screenshot(page, "record-history")


def test_csv_export_matches_the_database_and_is_itself_audited(tablet_page, e2e_user):
    page = tablet_page
    inspected = _inspected_record(e2e_user)
    auditor = _auditor_on_audit_trail(page, e2e_user)
    _filter(page, record=inspected.record)

    with page.expect_download() as waiting:
        page.get_by_role("link", name="Export CSV").click()
    download = waiting.value
    saved = artifact("audit-trail-export.csv")
    download.save_as(saved)

    assert re.fullmatch(r"audit-trail-\d{8}-\d{6}\.csv", download.suggested_filename)
    with saved.open(newline="", encoding="utf-8") as exported:
        header, *rows = list(csv.reader(exported))
    assert header == CSV_HEADER
    expected = inspected.events_newest_first()
    assert [int(row[0]) for row in rows] == [event.pk for event in expected]
    assert [row[3] for row in rows] == [event.event_type for event in expected]
    assert [row[7] for row in rows] == [event.reason for event in expected]
    assert {(row[4], row[5]) for row in rows} == {("qms.user", str(inspected.subject.pk))}
    by_id = {int(row[0]): dict(zip(header, row, strict=True)) for row in rows}
    change = next(event for event in expected if event.event_type == Event.RECORD_CHANGED)
    assert by_id[change.pk]["actor"] == inspected.admin.username
    assert by_id[change.pk]["changes"] == "job_title: Operator → Senior cleanroom operator"
    signatures = {event.data["signature"]: by_id[event.pk] for event in expected
                  if event.event_type == Event.SIGNATURE_APPLIED}
    approved, reviewed = signatures[inspected.approved.pk], signatures[inspected.reviewed.pk]
    # Every time in the CSV is ISO 8601 UTC, the signature's too (one zone in one file).
    assert approved["signature"] == (
        f"Approved by Claire Approver on {inspected.approved.signed_at.isoformat()} (valid)")
    assert approved["signature_status"] == "valid"
    assert reviewed["signature"].startswith(
        f"Reviewed by Claire Approver on {inspected.reviewed.signed_at.isoformat()}")
    assert reviewed["signature_status"] == "invalid — record changed after signing"

    # Taking records out is an auditable act: who exported what, and how many rows.
    export = AuditEvent.objects.get(event_type=Event.EXPORT_CREATED, actor_id=auditor.pk)
    assert export.data == {"filters": {"record": inspected.record}, "rows": len(expected), "format": "csv"}
    assert export.target_label == "audit trail (CSV)"


def test_older_entries_load_below_the_first_fifty_without_leaving_the_page(tablet_page, e2e_user):
    page = tablet_page
    busy = e2e_user(Role.SUPERVISOR, full_name="Busy Supervisor")
    with transaction.atomic():
        for number in range(60):
            record_event(actor=busy, event=Event.RECORD_CHANGED, target=busy, reason=f"entry {number:02d}")
    expected = list(AuditEvent.objects.filter(actor_id=busy.pk).order_by("-id").values_list("pk", flat=True))
    assert len(expected) == 60
    _auditor_on_audit_trail(page, e2e_user)
    _filter(page, user=busy.username)
    filtered_url = page.url

    assert _row_ids(page) == expected[:50]
    older = page.get_by_role("link", name="Older entries")
    expect(older).to_be_visible()
    assert older.bounding_box()["height"] >= 44
    with page.expect_request(lambda request: "before=" in request.url) as waiting:
        older.click()
    assert waiting.value.headers.get("hx-request") == "true"  # fetched by HTMX, not a new page
    expect(page.locator("#audit-rows tr.audit-row")).to_have_count(60)

    assert _row_ids(page) == expected
    expect(older).to_have_count(0)  # nothing older is left
    assert page.url == filtered_url
    expect(page.locator("#audit-rows tr.audit-row").last).to_contain_text("entry 00")
    assert page.log.console_errors_besides_favicon() == []
    assert page.log.csp_violations(page) == []
    page.locator("#audit-rows tr.audit-row").nth(50).scroll_into_view_if_needed()
    screenshot(page, "audit-trail-older-entries", full_page=False)  # rows 50 and 51 meet here
