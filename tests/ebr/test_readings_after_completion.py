"""Instrument data that arrives after the batch was completed (an instrument's buffer, sent later).

A completed record, or one in QA review, still takes readings measured while the batch ran: the
original data belongs to the record. The review flags them, release waits for a review that saw
them, and once the QP released (or rejected, or production aborted) the record takes nothing new.
"""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.utils import timezone

from ebr.models import Alarm, BatchStatus, Reading
from ebr.process_data import evaluation_waiting
from ebr.selectors import batch_audit_events
from ebr.services import batches as batch_services
from ebr.services.alarms import alarm_acknowledge, alarms_evaluate
from ebr.services.instruments import instrument_register
from ebr.services.readings import ReadingsRefused, readings_ingest
from ebr.services.release import batch_audit_trail_review, batch_release, batch_review_start, release_blockers
from nlp_review.models import ReviewFlag
from qms.audit import Event
from qms.models import Signature
from qms.signatures import format_local
from tests.conftest import SEED, unique
from tests.ebr.process_builders import bioreactor, reading
from tests.ebr.test_release import review_by_exception, run_batch, sign_args

pytestmark = pytest.mark.django_db


@pytest.fixture
def monitored(batch, supervisor, operator, verifier):
    """A batch that ran for two hours in a monitored bioreactor and is now completed."""
    equipment = bioreactor()
    batch_services.equipment_assign(actor=supervisor, batch=batch, equipment=equipment,
                                    started_at=timezone.now() - timedelta(hours=2))
    registration = instrument_register(actor=SEED, name=unique("BR-ctl"), equipment=equipment)
    first = reading(1, timezone.now() - timedelta(minutes=61))  # no hole before the later ones
    ingest(registration, first)
    run_batch(batch, operator, verifier)
    assert batch.status == BatchStatus.COMPLETED
    return batch, registration, first


def ingest(registration, *readings, evaluate: bool = True):  # type: ignore[no-untyped-def]
    """Store readings and, unless `evaluate` is False, evaluate them as the worker does right after."""
    result = readings_ingest(instrument=registration.instrument, body=orjson.dumps({"readings": list(readings)}))
    if evaluate and result.accepted:
        alarms_evaluate(post_id=result.post_id)
    return result


def ready_for_release(batch, qa_reviewer):  # type: ignore[no-untyped-def]
    review_by_exception(batch, qa_reviewer)
    if batch.status == BatchStatus.COMPLETED:
        batch_review_start(actor=qa_reviewer, batch=batch)
    batch_audit_trail_review(actor=qa_reviewer, batch=batch, reason="Audit trail reviewed", **sign_args(qa_reviewer))


def test_late_readings_of_a_completed_batch_are_kept_and_flagged_by_the_review(monitored, qa_reviewer):
    batch, registration, _ = monitored

    result = ingest(registration, reading(2, timezone.now() - timedelta(minutes=60), value=6.61),
                    reading(3, timezone.now() - timedelta(minutes=59), value=6.62))

    assert (result.accepted, result.batch_ids) == (2, [batch.pk])
    review = review_by_exception(batch, qa_reviewer)
    late = ReviewFlag.objects.get(review=review, rule="structured.readings_after_completion")
    assert (late.category, late.severity) == ("data_integrity", "major")
    # Two, not three: the reading sent before completion is part of what the operators signed.
    assert f"2 reading(s) from {registration.instrument.name}" in late.evidence
    assert "after completion" in late.evidence


def test_release_waits_for_a_review_that_saw_late_readings(monitored, qa_reviewer, qa_approver):
    batch, registration, _ = monitored
    ready_for_release(batch, qa_reviewer)
    batch.refresh_from_db()
    assert release_blockers(batch) == []

    ingest(registration, reading(2, timezone.now() - timedelta(minutes=60)))

    blockers = release_blockers(batch)
    assert blockers == ["1 instrument reading(s) arrived after the latest review read the record: re-run the "
                        "review so that QA sees them."]
    with pytest.raises(ValidationError):
        batch_release(actor=qa_approver, batch=batch, reason="Meets specifications", **sign_args(qa_approver))
    batch.refresh_from_db()
    assert batch.status == BatchStatus.IN_REVIEW


WAITING = ("1 instrument post(s) of this batch have not been evaluated against the alarm limits yet. Evaluation "
           "normally follows within seconds and the overdue watch catches up within minutes; if this stays, the "
           "alarm evaluation is failing (see the worker's log).")


def audit_trail_review(batch, qa_reviewer):  # type: ignore[no-untyped-def]
    return batch_audit_trail_review(actor=qa_reviewer, batch=batch, reason="Audit trail reviewed",
                                    **sign_args(qa_reviewer))


def test_release_waits_until_every_post_of_the_batch_is_evaluated_against_its_limits(monitored, qa_reviewer):
    """Readings whose alarm evaluation has not run (a worker down, a message lost) may hide an
    excursion: the QP does not certify a batch whose process data was never checked, and QA does
    not sign an audit-trail review that could not see its alarms."""
    batch, registration, _ = monitored
    posted = ingest(registration, reading(2, timezone.now() - timedelta(minutes=60)), evaluate=False)
    review_by_exception(batch, qa_reviewer)
    batch_review_start(actor=qa_reviewer, batch=batch)
    batch.refresh_from_db()

    with pytest.raises(ValidationError) as refused:
        audit_trail_review(batch, qa_reviewer)
    assert WAITING in refused.value.messages
    assert not Signature.objects.filter(target_type="ebr.batch", target_id=str(batch.pk), meaning="reviewed").exists()
    assert WAITING in release_blockers(batch)

    alarms_evaluate(post_id=posted.post_id)
    audit_trail_review(batch, qa_reviewer)
    assert release_blockers(batch) == []


def test_release_waits_until_a_supervisor_acknowledged_every_alarm(monitored, supervisor, qa_reviewer,
                                                                    qa_approver):
    """Every alarm (here the instrument's data stopped for 40 minutes) is looked at by a supervisor,
    with a signed comment, before QA reviews the audit trail and the QP may certify the batch."""
    batch, registration, first = monitored
    ingest(registration, reading(2, timezone.now() - timedelta(minutes=20)))
    (alarm,) = Alarm.objects.filter(batch=batch)
    assert alarm.kind == "feed_gap" and alarm.opened_at.isoformat().replace("+00:00", "Z") == first["ts"]
    review_by_exception(batch, qa_reviewer)
    batch_review_start(actor=qa_reviewer, batch=batch)
    batch.refresh_from_db()
    unacknowledged = (f"1 process alarm(s) not acknowledged by a supervisor: no data from "
                      f"{registration.instrument.name} from {format_local(alarm.opened_at)}.")

    with pytest.raises(ValidationError) as refused:
        audit_trail_review(batch, qa_reviewer)
    assert unacknowledged in refused.value.messages
    assert release_blockers(batch) == ["The audit trail has not been reviewed since the record last changed.",
                                       unacknowledged]
    with pytest.raises(ValidationError):
        batch_release(actor=qa_approver, batch=batch, reason="Meets specifications", **sign_args(qa_approver))

    alarm_acknowledge(actor=supervisor, alarm=alarm, comment="Controller network switch restarted; the culture "
                      "was checked at the bioreactor, no impact", **sign_args(supervisor))
    audit_trail_review(batch, qa_reviewer)
    assert release_blockers(batch) == []
    batch_release(actor=qa_approver, batch=batch, reason="Meets specifications", **sign_args(qa_approver))
    batch.refresh_from_db()
    assert batch.status == BatchStatus.RELEASED


def test_an_alarm_raised_after_the_audit_trail_review_calls_for_a_new_review(monitored, supervisor,
                                                                             qa_reviewer, qa_approver):
    """QA's audit-trail review covers the alarms and their acknowledgements as they were when it
    was signed: late data that raises an alarm afterwards (here the instrument's buffer showing a
    40-minute hole) needs the supervisor's acknowledgement and a new review before release."""
    batch, registration, _ = monitored
    ingest(registration, reading(2, timezone.now() - timedelta(minutes=60)))
    ready_for_release(batch, qa_reviewer)
    batch.refresh_from_db()
    review = Signature.objects.get(target_type="ebr.batch", target_id=str(batch.pk), meaning="reviewed")
    assert release_blockers(batch) == []

    ingest(registration, reading(3, timezone.now() - timedelta(minutes=15)))
    (alarm,) = Alarm.objects.filter(batch=batch)
    alarm_acknowledge(actor=supervisor, alarm=alarm, comment="Buffer flushed after a network outage; the "
                      "culture was checked at the bioreactor, no impact", **sign_args(supervisor))
    review_by_exception(batch, qa_reviewer)  # the record review reads the late reading

    (blocker,) = release_blockers(batch)
    assert f"entries were added to the audit trail after the review of {format_local(review.signed_at)} (process " \
           "alarm" in blocker and blocker.endswith(": review the audit trail again.")
    with pytest.raises(ValidationError):
        batch_release(actor=qa_approver, batch=batch, reason="Meets specifications", **sign_args(qa_approver))

    # What the new review reads: the alarm and its acknowledgement are in the batch's audit trail.
    alarm_events = batch_audit_events(batch).filter(target_type="ebr.alarm", target_id=str(alarm.pk))
    assert {Event.ALARM_RAISED, Event.ALARM_ACKNOWLEDGED} <= set(alarm_events.values_list("event_type", flat=True))
    audit_trail_review(batch, qa_reviewer)
    assert release_blockers(batch) == []


def test_an_alarm_change_committed_after_the_review_is_caught_whatever_time_it_carries(monitored, supervisor,
                                                                                       qa_reviewer, monkeypatch):
    """An evaluation that began before QA signed the audit-trail review saves its alarm (and the
    supervisor acknowledges it) with times before the signature, but commits after it: the review
    did not see it. The review keeps the number of audit-trail entries it saw (every alarm change
    writes one), so the difference, not the clock, makes it stale; nothing else about the alarm
    stands in the way here (post evaluated, alarm acknowledged), so without that check the QP could
    certify on a review that missed an alarm."""
    batch, registration, _ = monitored
    ingest(registration, reading(2, timezone.now() - timedelta(minutes=60)))
    ready_for_release(batch, qa_reviewer)
    batch.refresh_from_db()
    review = Signature.objects.get(target_type="ebr.batch", target_id=str(batch.pk), meaning="reviewed")
    assert release_blockers(batch) == []

    late = ingest(registration, reading(3, timezone.now() - timedelta(minutes=15)), evaluate=False)  # a 45-min hole
    before_signature = review.signed_at - timedelta(seconds=2)
    monkeypatch.setattr(timezone, "now", lambda: before_signature)
    alarms_evaluate(post_id=late.post_id)
    (alarm,) = Alarm.objects.filter(batch=batch)
    alarm_acknowledge(actor=supervisor, alarm=alarm, comment="Network outage, culture checked at the bioreactor",
                      **sign_args(supervisor))
    monkeypatch.undo()
    review_by_exception(batch, qa_reviewer)  # the record review reads the late reading

    assert Alarm.history.filter(batch_id=batch.pk, history_date__gt=review.signed_at).count() == 0
    (blocker,) = release_blockers(batch)
    assert f"entries were added to the audit trail after the review of {format_local(review.signed_at)} (process " \
           "alarm" in blocker and blocker.endswith(": review the audit trail again.")


def test_a_post_received_long_after_the_batch_ended_still_holds_release_until_evaluated(monitored, qa_reviewer,
                                                                                       settings):
    """An instrument's buffer sent two days after the equipment was released, with readings from the
    run, and a site that since lowered INSTRUMENT_MAX_AGE to one day: the post was accepted under
    the age limit of its day, so the release check must still find it while it waits for evaluation
    (it looks as far as the setting's ceiling, not its current value)."""
    batch, registration, _ = monitored
    result = readings_ingest(instrument=registration.instrument, received_at=timezone.now() + timedelta(days=2),
                             body=orjson.dumps({"readings": [reading(2, timezone.now() - timedelta(minutes=30))]}))
    assert result.batch_ids == [batch.pk]
    settings.INSTRUMENT_MAX_AGE = timedelta(days=1)

    assert evaluation_waiting(batch).posts == 1
    assert WAITING in release_blockers(batch)

    alarms_evaluate(post_id=result.post_id)
    assert evaluation_waiting(batch).posts == 0


def test_a_post_set_aside_after_failed_evaluations_tells_qa_how_to_go_on(monitored, qa_reviewer, monkeypatch):
    """The release blocker for a post the overdue watch gave up on (five failed evaluations) says
    so, with the error, and what to do: it must not read like a delay that will pass by itself."""
    from ebr.services import alarms as alarm_services

    batch, registration, _ = monitored
    posted = ingest(registration, reading(2, timezone.now() - timedelta(minutes=60)), evaluate=False)

    def evaluation_broken(**kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("limits of step 3 unreadable")

    monkeypatch.setattr(alarm_services, "alarms_evaluate", evaluation_broken)
    for minute in range(alarm_services.EVALUATION_ATTEMPTS):
        with pytest.raises(alarm_services.AlarmEvaluationFailed):
            alarm_services.alarms_evaluate_overdue(now=timezone.now() + timedelta(minutes=6 + minute))

    blockers = release_blockers(batch)
    (set_aside,) = [blocker for blocker in blockers if "could not be evaluated" in blocker]
    assert set_aside.startswith("1 instrument post(s) of this batch could not be evaluated against the alarm limits "
                                "after 5 attempts (last error: RuntimeError: limits of step 3 unreadable).")
    assert "Open a deviation" in set_aside and "deploy/README" in set_aside
    assert WAITING not in blockers, "a post set aside is not reported as merely waiting"

    monkeypatch.undo()
    alarms_evaluate(post_id=posted.post_id)  # the cause corrected: evaluated at once, as deploy/README says
    assert not [blocker for blocker in release_blockers(batch) if "evaluated against the alarm limits" in blocker]


def test_late_readings_the_review_saw_do_not_hold_release(monitored, qa_reviewer):
    """An instrument flushing its buffer right at completion, before the review ran: the review flags
    the readings, QA dispositions the flag, and nothing more stands in the way."""
    batch, registration, _ = monitored
    ingest(registration, reading(2, timezone.now() - timedelta(minutes=60)))

    ready_for_release(batch, qa_reviewer)

    batch.refresh_from_db()
    assert release_blockers(batch) == []


def test_a_released_record_takes_no_new_readings_but_a_resend_stays_a_duplicate(monitored, qa_reviewer,
                                                                                  qa_approver):
    batch, registration, before = monitored  # `before`: the reading stored while the batch ran
    ready_for_release(batch, qa_reviewer)
    batch_release(actor=qa_approver, batch=batch, reason="Meets specifications", **sign_args(qa_approver))
    stored = Reading.objects.filter(batch=batch).count()

    with pytest.raises(ReadingsRefused) as refused:
        ingest(registration, before, reading(2, timezone.now() - timedelta(minutes=60)))

    assert refused.value.status == 409
    assert refused.value.errors == [{"index": 1, "field": "batch", "message": f"Batch {batch.number} is released: "
                                     "its record is closed and takes no new readings."}]
    assert Reading.objects.filter(batch=batch).count() == stored
    # An instrument retrying what was already stored is answered as before: a duplicate, nothing new.
    again = ingest(registration, before)
    assert (again.accepted, again.duplicates) == (0, 1)


def test_the_api_answers_409_for_an_aborted_record(batch, supervisor):
    equipment = bioreactor()
    batch_services.equipment_assign(actor=supervisor, batch=batch, equipment=equipment,
                                    started_at=timezone.now() - timedelta(hours=2))
    registration = instrument_register(actor=SEED, name=unique("BR-ctl"), equipment=equipment)
    batch_services.batch_abort(actor=supervisor, batch=batch, reason="Donor material lost", **sign_args(supervisor))

    response = Client().post("/api/v1/readings", content_type="application/json",
                             data=orjson.dumps({"readings": [reading(5, timezone.now() - timedelta(minutes=30))]}),
                             HTTP_AUTHORIZATION=f"Bearer {registration.token}")

    assert response.status_code == 409
    assert response.json()["errors"][0]["field"] == "batch"
    assert "aborted" in response.json()["errors"][0]["message"]
    assert not Reading.objects.filter(instrument=registration.instrument).exists()


def test_equipment_is_not_assigned_to_a_completed_record(monitored, supervisor):
    batch, _, _ = monitored

    with pytest.raises(ValidationError) as refused:
        batch_services.equipment_assign(actor=supervisor, batch=batch, equipment=bioreactor())

    assert "can no longer be assigned" in str(refused.value)
    assert batch.equipment_uses.filter(ended_at__isnull=True).count() == 0


def test_only_production_roles_release_equipment_from_a_batch(batch, supervisor, qa_reviewer):
    use = batch_services.equipment_assign(actor=supervisor, batch=batch, equipment=bioreactor())

    with pytest.raises(PermissionDenied):
        batch_services.equipment_release(actor=qa_reviewer, use=use)

    use.refresh_from_db()
    assert use.ended_at is None


def test_an_alarm_change_while_qa_reads_the_audit_trail_refuses_the_signature(monitored, supervisor, qa_reviewer):
    """The signature states what QA saw: an alarm acknowledged by a supervisor (or raised by late
    data) between the page QA read and the signature is not covered by it. Reloaded, the page
    shows the change, and QA signs then."""
    import re

    from tests.conftest import PASSWORD, login

    batch, registration, _ = monitored
    ingest(registration, reading(2, timezone.now() - timedelta(minutes=20)))  # a 40-minute hole: feed gap
    (alarm,) = Alarm.objects.filter(batch=batch)
    review_by_exception(batch, qa_reviewer)
    batch_review_start(actor=qa_reviewer, batch=batch)
    client = login(Client(), qa_reviewer)

    def seen() -> str:
        page = client.get(f"/batches/{batch.number}/audit-trail/").content.decode()
        return re.search(r'name="trail_seen" value="(\d+:\d+)"', page).group(1)

    def sign(count: str):  # type: ignore[no-untyped-def]
        return client.post(f"/batches/{batch.number}/audit_review/", {
            "reason": "Audit trail reviewed", "password": PASSWORD, "username": qa_reviewer.username,
            "trail_seen": count})

    read = seen()  # QA reads the trail; meanwhile the supervisor acknowledges the alarm
    alarm_acknowledge(actor=supervisor, alarm=alarm, comment="Network switch restarted; no impact",
                      **sign_args(supervisor))

    typo = client.post(f"/batches/{batch.number}/audit_review/", {
        "reason": "", "password": PASSWORD, "username": qa_reviewer.username, "trail_seen": read})
    assert typo.status_code == 422  # the form again: it still carries what QA saw, not the new count
    # … on the audit-trail page, where that form is, with the refusal beside it (the QA pass found
    # it re-rendered the batch page, which has no such form: the refusal was never seen)
    assert "This field is required." in typo.content.decode() and typo.templates[0].name == "ebr/batch_audit_trail.html"
    assert re.search(r'name="trail_seen" value="(\d+:\d+)"', typo.content.decode()).group(1) == read
    refused = sign(read)

    assert refused.status_code == 422  # the trail as it is now, the statement kept
    page = refused.content.decode()
    # the acknowledgement and its signature
    assert "2 entries were added to the audit trail while it was open: process alarm" in page
    assert not Signature.objects.filter(target_type="ebr.batch", target_id=str(batch.pk), meaning="reviewed").exists()
    assert sign("").status_code == 422  # no marker: a page from before this check, or a hand-made post
    for crafted in ("²", "-1", "3", "1:²"):
        assert sign(crafted).status_code == 422
    assert sign(seen()).status_code == 302
    assert Signature.objects.filter(target_type="ebr.batch", target_id=str(batch.pk), meaning="reviewed").exists()
