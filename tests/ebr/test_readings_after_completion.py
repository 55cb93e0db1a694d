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
from ebr.services import batches as batch_services
from ebr.services.alarms import alarm_acknowledge, alarms_evaluate
from ebr.services.instruments import instrument_register
from ebr.services.readings import ReadingsRefused, readings_ingest
from ebr.services.release import batch_audit_trail_review, batch_release, batch_review_start, release_blockers
from nlp_review.models import ReviewFlag
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


def test_release_waits_until_every_post_of_the_batch_is_evaluated_against_its_limits(monitored, qa_reviewer):
    """Readings whose alarm evaluation has not run (a worker down, a message lost) may hide an
    excursion: the QP does not certify a batch whose process data was never checked."""
    batch, registration, _ = monitored
    posted = ingest(registration, reading(2, timezone.now() - timedelta(minutes=60)), evaluate=False)
    ready_for_release(batch, qa_reviewer)
    batch.refresh_from_db()

    assert release_blockers(batch) == [
        "1 instrument post(s) of this batch have not been evaluated against the alarm limits yet. Evaluation "
        "normally follows within seconds and the overdue watch catches up within minutes; if this stays, the "
        "alarm evaluation is failing (see the worker's log)."]

    alarms_evaluate(post_id=posted.post_id)
    assert release_blockers(batch) == []


def test_release_waits_until_a_supervisor_acknowledged_every_alarm(monitored, supervisor, qa_reviewer,
                                                                    qa_approver):
    """Every alarm (here the instrument's data stopped for 40 minutes) is looked at by a supervisor,
    with a signed comment, before the QP may certify the batch."""
    batch, registration, first = monitored
    ingest(registration, reading(2, timezone.now() - timedelta(minutes=20)))
    (alarm,) = Alarm.objects.filter(batch=batch)
    assert alarm.kind == "feed_gap" and alarm.opened_at.isoformat().replace("+00:00", "Z") == first["ts"]
    ready_for_release(batch, qa_reviewer)
    batch.refresh_from_db()

    blockers = release_blockers(batch)
    assert blockers == [f"1 process alarm(s) not acknowledged by a supervisor: no data from "
                        f"{registration.instrument.name} from {format_local(alarm.opened_at)}."]
    with pytest.raises(ValidationError):
        batch_release(actor=qa_approver, batch=batch, reason="Meets specifications", **sign_args(qa_approver))

    alarm_acknowledge(actor=supervisor, alarm=alarm, comment="Controller network switch restarted; the culture "
                      "was checked at the bioreactor, no impact", **sign_args(supervisor))
    assert release_blockers(batch) == []
    batch_release(actor=qa_approver, batch=batch, reason="Meets specifications", **sign_args(qa_approver))
    batch.refresh_from_db()
    assert batch.status == BatchStatus.RELEASED


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
