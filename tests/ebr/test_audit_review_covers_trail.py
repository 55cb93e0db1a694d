"""QA's audit-trail review covers the batch's whole audit trail, and a release or rejection is
signed on the record the page showed (draft EU GMP Annex 11 §9; 21 CFR 11.10(e), 11.50, 11.70).

The trail holds the batch's steps, values and signatures, its alarms, its deviations with their
impact assessments and CAPAs, and its review flags with their dispositions: an entry added while
QA reads it refuses the signature, one added after it makes the review stale, except the review's
own entries and the release's.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.test import Client
from django.utils import timezone

from ebr.models import Alarm, BatchStatus
from ebr.process_data import alarm_changes_recorded
from ebr.selectors import batch_audit_events
from ebr.services.alarms import alarm_acknowledge
from ebr.services.batches import custody_event_record
from ebr.services.release import (
    TRAIL_CHANGED,
    TrailMarker,
    audit_trail_marker,
    audit_trail_review_valid,
    batch_audit_trail_review,
    batch_reject,
    batch_release,
    batch_review_start,
    release_blockers,
)
from nlp_review.models import Disposition, ReviewFlag
from nlp_review.services import batch_review_run, flag_disposition
from qms.audit import Event, SystemActor, record_event
from qms.models import Deviation, Signature
from qms.signatures import Meaning, SignatureRefused, format_local, sign
from qms.subjects import Subject
from tests.conftest import PASSWORD, login
from tests.ebr.conftest import batch, resources, version
from tests.ebr.process_builders import reading
from tests.ebr.test_readings_after_completion import ingest, monitored
from tests.ebr.test_release import run_batch, sign_args
from tests.qms import quality

pytestmark = pytest.mark.django_db
FIXTURES = (batch, resources, version, monitored)  # from tests/ebr, which this file sits beside

GLOVE = "Glove torn during transfer in BSC, changed gloves."


def reviews(batch):  # type: ignore[no-untyped-def]
    return Signature.objects.filter(target_type="ebr.batch", target_id=str(batch.pk), meaning=Meaning.REVIEWED)


def dispose(flag, qa_reviewer):  # type: ignore[no-untyped-def]
    flag_disposition(actor=qa_reviewer, flag=flag, outcome=Disposition.NO_IMPACT, reason="Gloves changed at once",
                     **sign_args(qa_reviewer))


def flag_words(flag) -> str:  # type: ignore[no-untyped-def]
    return f"review flag {str(flag)[:60]}"


@pytest.fixture
def in_review(batch, operator, verifier, qa_reviewer):  # type: ignore[no-untyped-def]
    """A completed batch whose record review flagged a torn glove; QA dispositioned every flag but
    that one and took the record into review. Returns the batch and the flag still open."""
    run_batch(batch, operator, verifier, comments={"temp": GLOVE})
    review = batch_review_run(batch=batch, actor=SystemActor("system:tests"), request_id=uuid.uuid4().hex)
    glove, *others = ReviewFlag.objects.filter(review=review).order_by("-rule")
    assert glove.rule == "aseptic.glove_breach"
    for flag in others:
        dispose(flag, qa_reviewer)
    batch_review_start(actor=qa_reviewer, batch=batch)
    batch.refresh_from_db()
    return batch, glove


def page_marker(client, path: str) -> str:  # type: ignore[no-untyped-def]
    """The trail as the page QA reads shows it (the signed forms' hidden field)."""
    return re.search(r'name="trail_seen" value="(\d+:\d+)"', client.get(path).content.decode()).group(1)


# --- while QA reads the trail ----------------------------------------------------------------------

def test_a_flag_dispositioned_while_the_audit_trail_is_open_refuses_the_review(in_review, qa_reviewer):
    batch, glove = in_review
    client = login(Client(), qa_reviewer)
    trail = f"/batches/{batch.number}/audit-trail/"
    read = page_marker(client, trail)

    dispose(glove, qa_reviewer)  # in another tab, while the trail is open
    refused = client.post(f"/batches/{batch.number}/audit_review/", {
        "reason": "Audit trail reviewed", "password": PASSWORD, "username": qa_reviewer.username, "trail_seen": read})

    # The trail as it is now, on the page the review is signed on, with the refusal and the statement kept.
    shown = refused.content.decode().replace("&#x27;", "'")
    assert refused.status_code == 422 and refused.templates[0].name == "ebr/batch_audit_trail.html"
    assert (f"2 entries were added to the audit trail while it was open: {flag_words(glove)}, look at them, then sign "
            "again.") in shown
    assert "Audit trail reviewed</textarea>" in shown
    assert not reviews(batch).exists()
    now = re.search(r'name="trail_seen" value="(\d+:\d+)"', shown).group(1)
    assert now == page_marker(client, trail) != read
    signed = client.post(f"/batches/{batch.number}/audit_review/", {
        "reason": "Audit trail reviewed", "password": PASSWORD, "username": qa_reviewer.username,
        "trail_seen": now})
    assert signed.status_code == 302 and reviews(batch).count() == 1


def test_a_deviation_investigated_while_the_audit_trail_is_open_refuses_the_review(in_review, qa_reviewer,
                                                                                     supervisor, operator):
    batch, glove = in_review
    dispose(glove, qa_reviewer)
    deviation = quality.deviation(operator, subjects=[Subject("ebr.batch", str(batch.pk), batch.number)])
    quality.triage(deviation, qa_reviewer, owner=supervisor)
    read = audit_trail_marker(batch)

    quality.investigate(deviation, supervisor)  # root cause and impact on the batch, while QA reads

    with pytest.raises(ValidationError) as refused:
        batch_audit_trail_review(actor=qa_reviewer, batch=batch, reason="Reviewed", seen=read, **sign_args(qa_reviewer))
    (message,) = refused.value.messages
    assert refused.value.code == TRAIL_CHANGED
    assert message.startswith("2 entries were added to the audit trail while it was open: ")
    assert f"deviation {deviation.number}" in message and "impact assessment" in message
    assert not reviews(batch).exists()


# --- after QA signed the review ----------------------------------------------------------------

def test_an_entry_after_the_review_calls_for_a_new_review_before_release(in_review, qa_reviewer, qa_approver):
    """The flag is dispositioned after the audit-trail review: the review did not see how, so the
    QP cannot release on it until QA reviews the trail again."""
    batch, glove = in_review
    review = batch_audit_trail_review(actor=qa_reviewer, batch=batch, reason="Reviewed", **sign_args(qa_reviewer))
    dispose(glove, qa_reviewer)

    expected = (f"2 entries were added to the audit trail after the review of {format_local(review.signed_at)} "
                f"({flag_words(glove)}): review the audit trail again.")
    assert release_blockers(batch) == [expected]
    with pytest.raises(ValidationError) as refused:
        batch_release(actor=qa_approver, batch=batch, reason="Meets specifications", **sign_args(qa_approver))
    assert refused.value.messages == [expected]
    batch.refresh_from_db()
    assert batch.status == BatchStatus.IN_REVIEW

    batch_audit_trail_review(actor=qa_reviewer, batch=batch, reason="Reviewed again, disposition seen",
                             **sign_args(qa_reviewer))
    assert release_blockers(batch) == []
    assert batch_release(actor=qa_approver, batch=batch, reason="Meets specifications",
                         **sign_args(qa_approver)).status == BatchStatus.RELEASED


def test_the_reviews_own_entries_and_the_releases_do_not_make_it_stale(in_review, qa_reviewer, qa_approver,
                                                                          operator):
    batch, glove = in_review
    dispose(glove, qa_reviewer)
    batch_audit_trail_review(actor=qa_reviewer, batch=batch, reason="Reviewed", **sign_args(qa_reviewer))
    with pytest.raises(SignatureRefused):  # a mistyped password is kept in the trail, and changes nothing
        batch_audit_trail_review(actor=qa_reviewer, batch=batch, reason="Again", password="typo",
                                 username=qa_reviewer.username)
    batch_audit_trail_review(actor=qa_reviewer, batch=batch, reason="Second look", **sign_args(qa_reviewer))
    with pytest.raises(SignatureRefused):
        batch_release(actor=qa_approver, batch=batch, reason="Meets specifications", password="typo",
                      username=qa_approver.username)
    record_event(actor=qa_approver, event=Event.EXPORT_CREATED, target=batch, data={"format": "pdf"})  # a read
    record_event(actor=SystemActor("system:celery"), event=Event.QA_NOTIFIED, target=batch)  # a late e-mail

    assert audit_trail_review_valid(batch) and release_blockers(batch) == []
    released = batch_release(actor=qa_approver, batch=batch, reason="Meets specifications", **sign_args(qa_approver))
    custody_event_record(actor=operator, batch=released, from_party="Cell therapy unit", to_party="Courier",
                         location="Dispatch", occurred_at=timezone.now() - timedelta(minutes=1))

    # The review still covers the record as it was released (the hand-off to the ward came later).
    assert audit_trail_review_valid(released)


# --- the release and rejection are signed on the page as read ----------------------------------

def test_a_release_or_rejection_signed_on_a_stale_page_is_refused_and_keeps_the_reason(in_review, qa_reviewer,
                                                                                      qa_approver, operator):
    batch, glove = in_review
    dispose(glove, qa_reviewer)
    batch_audit_trail_review(actor=qa_reviewer, batch=batch, reason="Reviewed", **sign_args(qa_reviewer))
    client = login(Client(), qa_approver)
    read = page_marker(client, f"/batches/{batch.number}/")

    hand_off = custody_event_record(actor=operator, batch=batch, from_party="Cell therapy unit", to_party="QC lab",
                                    location="QC", occurred_at=timezone.now() - timedelta(minutes=1))
    for action, reason in (("release", "Meets specifications"), ("reject", "Viability doubtful")):
        response = client.post(f"/batches/{batch.number}/{action}/", {
            "reason": reason, "password": PASSWORD, "username": qa_approver.username, "trail_seen": read})

        html = response.content.decode().replace("&#x27;", "'")
        assert response.status_code == 422
        assert ("The batch record changed while this page was open: 1 entry was added to its audit trail (custody "
                f"event {hand_off}). Look at the batch as it is now, then sign again.") in html
        assert reason in html and PASSWORD not in html
        # The page now shows the record as it is: signing on it is signing on what is shown.
        assert re.search(r'name="trail_seen" value="(\d+:\d+)"', html).group(1) == str(audit_trail_marker(batch))
    batch.refresh_from_db()
    assert batch.status == BatchStatus.IN_REVIEW
    assert not Signature.objects.filter(target_type="ebr.batch", target_id=str(batch.pk),
                                        meaning__in=["released", "rejected"]).exists()

    with pytest.raises(ValidationError, match="changed while this page was open"):
        batch_reject(actor=qa_approver, batch=batch, reason="Viability doubtful", seen=TrailMarker.parse(read),
                     **sign_args(qa_approver))
    assert client.post(f"/batches/{batch.number}/release/", {  # no marker: a page from before the check
        "reason": "Meets specifications", "password": PASSWORD}).status_code == 422


# --- reviews signed before the trail marker was kept --------------------------------------------

@pytest.mark.parametrize("recorded", ["alarm count", "nothing"])
def test_a_review_signed_before_the_change_is_still_judged_by_the_alarms(monitored, supervisor, qa_reviewer,
                                                                         operator, recorded):
    batch, registration, _ = monitored
    ingest(registration, reading(2, timezone.now() - timedelta(minutes=60)))
    review = batch_review_run(batch=batch, actor=SystemActor("system:tests"), request_id=uuid.uuid4().hex)
    for flag in ReviewFlag.objects.filter(review=review):
        dispose(flag, qa_reviewer)
    batch_review_start(actor=qa_reviewer, batch=batch)
    with transaction.atomic():  # as the review was written before: the alarm count, or nothing
        signature = sign(signer=qa_reviewer, meaning=Meaning.REVIEWED, target=batch, reason="Reviewed",
                         **sign_args(qa_reviewer))
        kept = {"alarm_changes": alarm_changes_recorded(batch)} if recorded == "alarm count" else {}
        record_event(actor=qa_reviewer, event=Event.AUDIT_TRAIL_REVIEWED, target=batch, reason="Reviewed",
                     data={"signature": signature.pk, **kept})

    custody_event_record(actor=operator, batch=batch, from_party="Cell therapy unit", to_party="QC lab",
                         location="QC", occurred_at=timezone.now() - timedelta(minutes=1))
    assert audit_trail_review_valid(batch)  # the rule it was signed under: alarms only

    ingest(registration, reading(3, timezone.now() - timedelta(minutes=15)))  # late data: a feed-gap alarm
    (alarm,) = Alarm.objects.filter(batch=batch)
    alarm_acknowledge(actor=supervisor, alarm=alarm, comment="Network outage, culture checked",
                      **sign_args(supervisor))

    assert not audit_trail_review_valid(batch)
    assert (f"The process alarms changed after the audit-trail review of {format_local(signature.signed_at)} "
            in " ".join(release_blockers(batch)))


def test_the_batch_trail_marker_counts_the_deviations_raised_against_it(in_review, operator):
    batch, _ = in_review
    before = audit_trail_marker(batch)

    deviation = quality.deviation(operator, subjects=[Subject("ebr.batch", str(batch.pk), batch.number)])

    after = audit_trail_marker(batch)
    assert Deviation.objects.filter(pk=deviation.pk).exists()
    assert after.entries > before.entries and after.last > before.last


def test_the_audit_trail_is_reviewed_where_it_is_shown_and_each_signer_reads_what_they_certify(
        client, in_review, qa_reviewer, qa_approver):
    batch, _ = in_review

    login(client, qa_approver)
    page = client.get(f"/batches/{batch.number}/").content.decode()
    # From the batch page QA goes to the trail to sign its review: there is no review form without the trail.
    assert f'id="audit-review-link" href="/batches/{batch.number}/audit-trail/"' in page
    assert 'name="trail_seen"' in page.split('id="release-certification"')[1]  # the release form, not a review form
    assert page.count('action="/batches/' + batch.number + '/audit_review/"') == 0
    assert f"As Qualified Person I certify that batch {batch.number}" in page
    assert "legally binding equivalent of your handwritten signature" in page

    trail = client.get(f"/batches/{batch.number}/audit-trail/").content.decode()
    assert "I reviewed every entry of this batch's audit trail shown on this page" in trail


def test_work_on_a_shared_capa_for_another_batch_leaves_this_batchs_review_valid(
        in_review, operator, supervisor, qa_reviewer, qa_approver):
    from qms.models import CapaActionKind, CapaSource
    from qms.services import capa as capa_services

    batch, glove = in_review
    dispose(glove, qa_reviewer)
    ours = quality.deviation(operator, subjects=[Subject("ebr.batch", str(batch.pk), batch.number)])
    elsewhere = quality.deviation(operator, title="Another room, another batch")
    shared = quality.capa(qa_approver, deviations=[ours, elsewhere], source=CapaSource.DEVIATION, owner=supervisor)
    batch_audit_trail_review(actor=qa_reviewer, batch=batch, reason="Trail reviewed", **sign_args(qa_reviewer))

    # Weeks of CAPA work driven by the other deviation: nothing in this batch's record changes.
    capa_services.capa_action_add(actor=qa_approver, capa=shared, kind=CapaActionKind.PREVENTIVE,
                                  description="Door alarm in room 2", owner=supervisor,
                                  due_date=timezone.localdate() + timedelta(days=30), reason="From DEV elsewhere")

    assert audit_trail_review_valid(batch)
    page = batch_audit_events(batch).filter(target_type="qms.capaaction")
    assert page.exists()  # still shown in the batch's trail, only not counted as a change of its record


def test_a_release_refused_for_several_reasons_lists_them_all_instead_of_a_server_error(in_review, qa_approver):
    """The QP typed their password and the release was refused for more than one reason: the page
    must say which (it answered 500, indistinguishable from a fault, in a black-box review)."""
    batch, _glove = in_review
    client = login(Client(), qa_approver)
    read = page_marker(client, f"/batches/{batch.number}/")

    response = client.post(f"/batches/{batch.number}/release/", {
        "reason": "Meets specifications", "password": PASSWORD, "username": qa_approver.username, "trail_seen": read})

    html = response.content.decode().replace("&#x27;", "'")
    assert response.status_code == 422
    assert "audit trail" in html.lower() and "Meets specifications" in html
    batch.refresh_from_db()
    assert batch.status == BatchStatus.IN_REVIEW
