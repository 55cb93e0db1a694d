"""Alarms on process data: one per excursion, escalation, deviations, feed gaps, signed acknowledgement."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from ebr.models import Alarm, AlarmKind, EvaluatedUntil, EvaluationWatchMark, ReadingPostEvaluation, StepExecution
from ebr.selectors import batch_audit_events
from ebr.services import batches as batch_services
from ebr.services.alarms import alarm_acknowledge, alarms_evaluate, alarms_evaluate_overdue, feed_gaps_check
from ebr.services.readings import readings_ingest
from ebr.tasks import alarms_evaluate as alarms_evaluate_task
from ebr.tasks import alarms_evaluate_posts as alarms_evaluate_posts_task
from qms.audit import Event
from qms.models import AuditEvent, Deviation, Signature
from qms.signatures import SignatureRefused
from tests.conftest import PASSWORD, login
from tests.ebr.process_builders import plant, reading

pytestmark = pytest.mark.django_db


@pytest.fixture
def site(db):  # type: ignore[no-untyped-def]
    return plant()


class Feed:
    """Posts readings for a site and evaluates them, as the API and the Celery task would."""

    def __init__(self, site) -> None:  # type: ignore[no-untyped-def]
        self.site, self.seq = site, 0
        self.start = (timezone.now() - timedelta(hours=6)).replace(second=0, microsecond=0)

    def at(self, minute: float):  # type: ignore[no-untyped-def]
        return self.start + timedelta(minutes=minute)

    def post(self, values: list[tuple[float, float]], parameter: str = "ph", evaluate: bool = True,  # type: ignore[no-untyped-def]
             lost: bool = False):
        """`lost`: its evaluation message never came; received long enough ago that evaluating a
        later post does not take it first (ebr.services.alarms._earlier_posts_evaluate)."""
        readings = []
        for minute, value in values:
            self.seq += 1
            readings.append(reading(self.seq, self.at(minute), parameter, value))
        received_at = timezone.now() - timedelta(hours=1) if lost else None
        result = readings_ingest(instrument=self.site.instrument, body=orjson.dumps({"readings": readings}),
                                 received_at=received_at)
        return alarms_evaluate(post_id=result.post.pk) if evaluate and not lost else result


@pytest.fixture
def feed(site):  # type: ignore[no-untyped-def]
    return Feed(site)


def batch_deviations(site):  # type: ignore[no-untyped-def]
    return Deviation.objects.filter(subjects__subject_type="ebr.batch", subjects__subject_id=str(site.batch.pk))


def alarms(site, **filters):  # type: ignore[no-untyped-def]
    return list(Alarm.objects.filter(batch=site.batch, **filters).order_by("opened_at", "id"))


# --- excursions ----------------------------------------------------------------------------------

def test_an_excursion_opens_one_alarm_not_one_per_reading_and_closes_back_within_limits(site, feed):
    feed.post([(m, 7.2) for m in range(5)] + [(m, 6.87 - m / 1000) for m in range(5, 15)] + [(15, 7.1), (16, 7.1)])

    (alarm,) = alarms(site)
    assert alarm.kind == AlarmKind.ALERT and alarm.parameter.code == "ph"
    assert (alarm.opened_at, alarm.closed_at) == (feed.at(5), feed.at(15))
    assert alarm.worst_value == pytest.approx(6.856) and alarm.worst_at == feed.at(14)
    assert alarm.limit_text == "alert 6.9–7.5, action 6.8–7.6 [pH]"  # stored with the UCUM code, as the API gives it
    assert alarm.limit_text_display == "alert 6.9–7.5, action 6.8–7.6 pH"
    assert not alarm.deviation_number
    events = AuditEvent.objects.filter(target_type="ebr.alarm", target_id=str(alarm.pk))
    assert {Event.ALARM_RAISED, Event.ALARM_CLEARED} <= set(events.values_list("event_type", flat=True))
    # its label, copied into blockers, flags and the PDF, gives the facility's time and names the zone
    opened = timezone.localtime(alarm.opened_at)
    assert str(alarm).endswith(f"at {opened:%Y-%m-%d %H:%M} {opened.tzname()}") and opened.tzname() != "UTC"


def test_an_alert_that_passes_the_action_limit_escalates_and_opens_a_deviation_on_a_critical_parameter(site, feed):
    result = feed.post([(0, 6.85), (1, 6.75), (2, 6.70), (3, 6.85)])

    (alarm,) = alarms(site)
    assert alarm.kind == AlarmKind.ACTION and alarm.is_open and alarm.critical
    assert result.escalated == 1 and result.deviations == [alarm.deviation_number]
    deviation = Deviation.objects.get(number=alarm.deviation_number)
    assert deviation.source == "instrument_alarm"
    assert deviation.occurred_at == feed.at(1)
    assert {(s.subject_type, s.subject_id) for s in deviation.subjects.all()} >= {
        ("ebr.batch", str(site.batch.pk)), ("ebr.equipment", str(site.equipment.pk))}
    assert "ph" in deviation.description and site.batch.number in deviation.title
    assert AuditEvent.objects.filter(event_type=Event.ALARM_ESCALATED, target_id=str(alarm.pk)).count() == 1


def test_an_action_excursion_of_a_critical_parameter_opens_exactly_one_deviation(site, feed):
    feed.post([(m, 6.6) for m in range(30)] + [(30, 7.2)])

    (alarm,) = alarms(site)
    assert alarm.kind == AlarmKind.ACTION and not alarm.is_open
    assert Deviation.objects.filter(source="instrument_alarm", number=alarm.deviation_number).count() == 1
    assert batch_deviations(site).count() == 1


def test_an_action_excursion_of_a_non_critical_parameter_opens_no_deviation(site, feed):
    feed.post([(0, 15.0), (1, 14.0), (2, 45.0)], parameter="do")

    (alarm,) = alarms(site)
    assert alarm.kind == AlarmKind.ACTION and not alarm.critical and not alarm.deviation_number
    assert not batch_deviations(site).exists()


def test_an_excursion_across_posts_stays_one_alarm(site, feed):
    feed.post([(0, 7.1), (1, 6.88), (2, 6.87)])
    feed.post([(3, 6.86), (4, 6.89)])
    feed.post([(5, 7.0)])

    (alarm,) = alarms(site)
    assert (alarm.opened_at, alarm.closed_at, alarm.worst_value) == (feed.at(1), feed.at(5), 6.86)


def test_two_excursions_are_two_alarms(site, feed):
    feed.post([(0, 6.88), (1, 7.1), (2, 7.55), (3, 7.1)])

    assert [(a.kind, a.opened_at, a.closed_at) for a in alarms(site)] == [
        ("alert", feed.at(0), feed.at(1)), ("alert", feed.at(2), feed.at(3))]


def test_a_late_post_s_excursion_ends_where_the_readings_after_it_are_back_within_limits(site, feed):
    late = feed.post([(0, 7.1), (1, 6.88), (2, 6.86)], lost=True)  # its evaluation is late (lost, retried)
    feed.post([(3, 7.0), (4, 7.1)])  # evaluated first: nothing open, nothing to close

    alarms_evaluate(post_id=late.post_id)

    (alarm,) = alarms(site)
    assert (alarm.kind, alarm.opened_at, alarm.closed_at, alarm.worst_value) == ("alert", feed.at(1), feed.at(3), 6.86)
    cleared = AuditEvent.objects.get(event_type=Event.ALARM_CLEARED, target_id=str(alarm.pk))
    assert "after the late one" in cleared.reason


def test_a_late_post_s_excursion_hands_over_to_the_alarm_of_readings_evaluated_before_it(site, feed):
    late = feed.post([(0, 7.1), (1, 6.88)], lost=True)
    feed.post([(2, 6.87), (3, 7.1)])  # evaluated first: its own alarm, 2 to 3

    alarms_evaluate(post_id=late.post_id)

    first, second = alarms(site)
    assert [(a.opened_at, a.closed_at) for a in (first, second)] == [(feed.at(1), feed.at(2)), (feed.at(2), feed.at(3))]
    cleared = AuditEvent.objects.get(event_type=Event.ALARM_CLEARED, target_id=str(first.pk))
    assert f"continues in alarm {second.pk}" in cleared.reason


def test_lost_posts_evaluated_oldest_first_make_one_alarm_that_closes(site, feed):
    first = feed.post([(1, 6.88)], lost=True)  # two posts lost in a row
    second = feed.post([(2, 6.86)], lost=True)
    feed.post([(3, 7.1)])  # back within limits, evaluated at once

    alarms_evaluate(post_id=first.post_id)  # the overdue watch, oldest first
    alarms_evaluate(post_id=second.post_id)

    (alarm,) = alarms(site)
    assert (alarm.opened_at, alarm.closed_at, alarm.worst_value, alarm.worst_at) == (
        feed.at(1), feed.at(3), 6.86, feed.at(2))


@pytest.mark.parametrize(("late_value", "then", "worst"), [
    (7.1, 6.87, 6.87),  # a late value within limits does not end the excursion recorded around it
    (6.87, 6.86, 6.86),  # a late value of the same excursion neither closes nor splits it
])
def test_a_late_value_inside_an_open_excursion_leaves_it_open(site, feed, late_value, then, worst):
    feed.post([(0, 6.88)])  # opens the alarm
    late = feed.post([(1, late_value)], lost=True)
    feed.post([(2, then)])  # evaluated first: continues the open alarm

    alarms_evaluate(post_id=late.post_id)

    (alarm,) = alarms(site)
    assert alarm.is_open and alarm.opened_at == feed.at(0) and alarm.worst_value == worst


def test_a_late_excursion_inside_a_recorded_alarm_joins_it_and_escalates_it_once(site, feed):
    feed.post([(0, 6.88)])  # opens an alert
    late = feed.post([(1, 6.86), (2, 6.6)], lost=True)  # down to the action limit of a critical parameter
    feed.post([(3, 7.1)])  # evaluated first: closes the alert at 3

    alarms_evaluate(post_id=late.post_id)

    (alarm,) = alarms(site)
    assert (alarm.kind, alarm.opened_at, alarm.closed_at, alarm.worst_value) == ("action", feed.at(0), feed.at(3), 6.6)
    assert alarm.deviation_number and batch_deviations(site).count() == 1
    assert alarms_evaluate(post_id=late.post_id).already_done
    assert batch_deviations(site).count() == 1


def test_late_readings_that_worsen_an_alarm_change_it_once_not_once_per_reading(site, feed):
    """A lost post of a long excursion may hold hundreds of ever-worse values: the alarm's worst
    value is one change in its history and audit trail, as in time order, not one per reading."""
    feed.post([(0, 6.89)])  # opens an alert
    late = feed.post([(1, 6.88), (2, 6.87), (3, 6.86), (4, 6.85)], lost=True)
    feed.post([(5, 6.89)])  # evaluated first: the alert goes on
    (alarm,) = alarms(site)
    alarm_events = AuditEvent.objects.filter(target_type="ebr.alarm", target_id=str(alarm.pk))
    events_before, history_before = alarm_events.count(), alarm.history.count()

    alarms_evaluate(post_id=late.post_id)

    alarm.refresh_from_db()
    assert (alarm.kind, alarm.worst_value, alarm.worst_at, alarm.is_open) == ("alert", 6.85, feed.at(4), True)
    changes = alarm_events.order_by("pk")[events_before:]
    assert [event.reason for event in changes] == ["Worst value of the excursion (readings received late)"]
    assert alarm.history.count() == history_before + 1


def test_a_late_excursion_raised_worsened_and_cleared_in_one_post_records_its_worst_value_with_the_clearing(
        site, feed):
    """History and audit trail must tell the same story: the clearing of an alarm whose worst
    value late readings changed carries that change, not a history row showing a worst value the
    audit trail records only afterwards."""
    feed.post([(0, 7.0)])
    late = feed.post([(1, 6.88), (2, 6.86), (3, 7.0)], lost=True)
    feed.post([(10, 7.0)])  # evaluated first: nothing recorded over minutes 1-3

    alarms_evaluate(post_id=late.post_id)

    (alarm,) = alarms(site)
    assert (alarm.opened_at, alarm.closed_at, alarm.worst_value, alarm.worst_at) == (
        feed.at(1), feed.at(3), 6.86, feed.at(2))
    events = list(AuditEvent.objects.filter(target_type="ebr.alarm", target_id=str(alarm.pk)).order_by("pk"))
    assert [event.event_type for event in events] == [Event.ALARM_RAISED, Event.ALARM_CLEARED]
    changes = {change["field"]: change for change in events[1].data["changes"]}
    assert (changes["worst_value"]["old"], changes["worst_value"]["new"]) == (6.88, 6.86)
    assert "closed_at" in changes
    raised_row, cleared_row = alarm.history.order_by("history_id")
    assert (raised_row.worst_value, raised_row.closed_at) == (6.88, None)
    assert (cleared_row.worst_value, cleared_row.closed_at) == (6.86, feed.at(3))


def test_a_post_partly_late_carries_the_excursion_its_late_readings_opened_into_its_own_later_ones(site, feed):
    late = feed.post([(1, 6.88), (3, 6.87), (5, 6.86), (6, 7.1)], lost=True)
    feed.post([(2, 6.89)])  # evaluated first: an alarm from 2, still open

    alarms_evaluate(post_id=late.post_id)  # 1 is late, 3 and 5 carry on, 6 closes

    assert [(a.opened_at, a.closed_at, a.worst_value) for a in alarms(site)] == [
        (feed.at(1), feed.at(2), 6.88), (feed.at(2), feed.at(6), 6.86)]
    assert not Alarm.objects.filter(batch=site.batch, closed_at__isnull=True).exists()


def test_a_value_within_limits_stored_between_late_readings_ends_their_excursion(site, feed):
    late = feed.post([(1, 6.88), (3, 6.87)], lost=True)
    feed.post([(2, 7.1), (4, 7.1)])  # evaluated first

    alarms_evaluate(post_id=late.post_id)

    assert [(a.opened_at, a.closed_at) for a in alarms(site)] == [(feed.at(1), feed.at(2)), (feed.at(3), feed.at(4))]


def test_a_post_taken_before_an_earlier_one_has_the_earlier_one_evaluated_first(site, feed):
    feed.post([(1, 6.88)])  # an alarm from 1
    earlier = feed.post([(2, 7.1)], evaluate=False)  # back within limits; its task is on another worker
    later = feed.post([(3, 6.87)], evaluate=False)

    alarms_evaluate(post_id=later.post_id)

    assert [(a.opened_at, a.closed_at) for a in alarms(site)] == [(feed.at(1), feed.at(2)), (feed.at(3), None)]
    assert alarms_evaluate(post_id=earlier.post_id).already_done


def test_celery_s_time_limit_stops_the_evaluation_of_earlier_posts_instead_of_being_logged(site, feed, monkeypatch):
    from celery.exceptions import SoftTimeLimitExceeded

    from ebr.services import alarms as alarm_services

    earlier = feed.post([(1, 6.88)], evaluate=False)
    later = feed.post([(2, 7.1)], evaluate=False)
    evaluate = alarm_services._post_evaluate

    def out_of_time(post, overdue_at):  # type: ignore[no-untyped-def]
        if post.pk == earlier.post_id:
            raise SoftTimeLimitExceeded()
        return evaluate(post, overdue_at)

    monkeypatch.setattr(alarm_services, "_post_evaluate", out_of_time)

    with pytest.raises(SoftTimeLimitExceeded):
        alarms_evaluate(post_id=later.post_id)


def test_a_timeout_on_an_earlier_post_counts_against_it_and_does_not_fail_the_posts_after_it(site, feed,
                                                                                            monkeypatch):
    """A post whose evaluation hits a statement or lock timeout may hit it every time: it must
    not fail every post of the instrument received in the ten minutes after it. Its failure is
    counted (it is set aside after five), and the next posts leave it to its own retries."""
    from django.db import OperationalError

    from ebr.models import EvaluationFailure
    from ebr.services import alarms as alarm_services

    earlier = feed.post([(1, 6.88)], evaluate=False)
    later = feed.post([(2, 7.1)], evaluate=False)
    evaluate, tried = alarm_services._post_evaluate, []

    def times_out(post, overdue_at):  # type: ignore[no-untyped-def]
        tried.append(post.pk)
        if post.pk == earlier.post_id:
            raise OperationalError("canceling statement due to statement timeout")
        return evaluate(post, overdue_at)

    monkeypatch.setattr(alarm_services, "_post_evaluate", times_out)

    assert not alarms_evaluate(post_id=later.post_id).already_done
    assert EvaluationFailure.objects.get(post_id=earlier.post_id).attempts == 1
    assert not EvaluationFailure.objects.filter(post_id=later.post_id).exists()
    third = feed.post([(3, 7.1)], evaluate=False)
    alarms_evaluate(post_id=third.post_id)
    assert tried == [earlier.post_id, later.post_id, third.post_id]  # the failing one is not tried again here
    assert not ReadingPostEvaluation.objects.filter(post_id=earlier.post_id).exists()


def test_the_request_s_short_wait_for_the_instrument_lock_is_not_left_on_the_work_after_it(site):
    """0.5 s for the instrument's lock; the work after it (the audit chain's lock at commit) may
    wait longer, but not without bound: a web request gives way rather than hang."""
    from django.db import connection, transaction

    from ebr.services.alarms import _lock

    with transaction.atomic(), connection.cursor() as cursor:
        _lock(site.instrument.pk, wait="500ms")
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] == "5s"


def test_a_timeout_is_counted_against_the_earlier_post_even_when_the_later_one_fails_too(site, feed,
                                                                                          monkeypatch):
    from django.db import OperationalError

    from ebr.models import EvaluationFailure
    from ebr.services import alarms as alarm_services

    earlier = feed.post([(1, 6.88)], evaluate=False)
    later = feed.post([(2, 7.1)], evaluate=False)

    def both_fail(post, overdue_at):  # type: ignore[no-untyped-def]
        if post.pk == earlier.post_id:
            raise OperationalError("canceling statement due to statement timeout")
        raise ValueError("the later post's own trouble")

    monkeypatch.setattr(alarm_services, "_post_evaluate", both_fail)

    with pytest.raises(ValueError):
        alarms_evaluate(post_id=later.post_id)
    assert EvaluationFailure.objects.get(post_id=earlier.post_id).attempts == 1


def test_one_ordinary_failure_keeps_a_post_in_time_order(site, feed):
    """A deadlock or another passing error once: the next post still evaluates it first (only a
    timeout, or a second failure, sets it apart)."""
    from ebr.services.alarms import _evaluation_failure_record

    feed.post([(1, 6.88)])  # an alarm from 1
    earlier = feed.post([(2, 7.1)], evaluate=False)  # back within limits
    _evaluation_failure_record(earlier.post_id, RuntimeError("deadlock detected"))
    later = feed.post([(3, 6.87)], evaluate=False)

    alarms_evaluate(post_id=later.post_id)

    assert [(a.opened_at, a.closed_at) for a in alarms(site)] == [(feed.at(1), feed.at(2)), (feed.at(3), None)]


def test_in_order_evaluation_keeps_track_of_how_far_it_got(site, feed):
    feed.post([(0, 7.1), (1, 7.2)])
    feed.post([(2, 7.1)])

    (until,) = EvaluatedUntil.objects.filter(batch=site.batch, instrument=site.instrument)
    assert until.ts == feed.at(2) and until.parameter.code == "ph"
    late = feed.post([(0.5, 7.0)], lost=True)
    alarms_evaluate(post_id=late.post_id)
    assert EvaluatedUntil.objects.get(pk=until.pk).ts == feed.at(2), "never moves back"


def test_parameters_without_limits_raise_nothing(site, feed):
    feed.post([(0, 0.1), (1, 99.0)], parameter="vcd")

    assert alarms(site) == []


def test_evaluation_runs_once_per_post_however_often_the_task_is_delivered(site, feed):
    result = feed.post([(0, 6.6), (1, 6.6)], evaluate=False)

    first = alarms_evaluate(post_id=result.post.pk)
    second = alarms_evaluate(post_id=result.post.pk)
    third = alarms_evaluate_task.apply(kwargs={"post_id": result.post.pk}).get()

    assert first.raised == 1 and second.already_done and third["already_done"]
    assert len(alarms(site)) == 1
    assert batch_deviations(site).count() == 1


def test_a_group_of_posts_is_evaluated_in_order_and_a_post_that_fails_holds_back_none_after_it(site, feed):
    posts = [feed.post(values, evaluate=False).post_id for values in ([(0, 7.1)], [(1, 6.4)], [(2, 7.1)])]
    missing = max(posts) + 1000  # a post that cannot be evaluated (a bug, a row gone)

    failed = alarms_evaluate_posts_task.apply(kwargs={"calls": [
        {"post_id": posts[0]}, {"post_id": missing}, {"post_id": posts[1]}, {"post_id": posts[2]}]})
    again = alarms_evaluate_posts_task.apply(kwargs={"calls": [{"post_id": pk} for pk in posts]}).get()

    assert failed.failed() and str(missing) in str(failed.result), "the group fails, naming the post"
    assert ReadingPostEvaluation.objects.filter(post_id__in=posts).count() == 3, "the posts after it were evaluated"
    (alarm,) = alarms(site)
    assert alarm.kind == AlarmKind.ACTION and alarm.closed_at is not None  # opened by the 2nd, closed by the 3rd
    assert again == {"posts": 3, "already_done": 3}
    assert batch_deviations(site).count() == 1


def test_limits_of_the_step_running_at_the_reading_apply(db):
    site = plant(receipt_limits=True)  # step 1.1: pH 7.0 to 7.4; the expansion step: 6.9 to 7.5
    feed = Feed(site)
    step = StepExecution.objects.get(batch=site.batch, sequence=1)
    assert step.opened_at is not None

    before = readings_ingest(instrument=site.instrument, body=orjson.dumps({"readings": [
        reading(1, step.opened_at - timedelta(hours=1), "ph", 7.42)]}))
    alarms_evaluate(post_id=before.post.pk)
    assert alarms(site) == []  # before the step opened: the master version's expansion limits apply

    during = readings_ingest(instrument=site.instrument, body=orjson.dumps({"readings": [
        reading(2, step.opened_at + timedelta(seconds=30), "ph", 7.42)]}))
    alarms_evaluate(post_id=during.post.pk)
    (alarm,) = alarms(site, kind=AlarmKind.ALERT)
    assert alarm.step_id == step.pk and alarm.limit_text.startswith("alert 7–7.4")
    assert feed.site is site


# --- feed gaps ---------------------------------------------------------------------------------

def test_a_hole_in_the_data_is_a_closed_feed_gap_alarm(site, feed):
    feed.post([(m, 7.1) for m in range(10)] + [(m, 7.1) for m in range(40, 45)])

    (gap,) = alarms(site, kind=AlarmKind.FEED_GAP)
    assert (gap.opened_at, gap.closed_at) == (feed.at(9), feed.at(40))
    assert gap.parameter is None and gap.limit_text == "no data for more than 10 min"


def test_a_hole_between_two_posts_is_found_too(site, feed):
    feed.post([(m, 7.1) for m in range(5)])
    feed.post([(m, 7.1) for m in range(9, 12)])  # 5 minutes: no gap
    feed.post([(m, 7.1) for m in range(30, 32)])

    (gap,) = alarms(site, kind=AlarmKind.FEED_GAP)
    assert (gap.opened_at, gap.closed_at) == (feed.at(11), feed.at(30))


def later(minutes: float = 11):  # type: ignore[no-untyped-def]
    return timezone.now() + timedelta(minutes=minutes)


def test_a_silent_instrument_raises_one_feed_gap_alarm_until_data_arrives(site, feed):
    feed_gaps_check()  # other instruments in the database may be silent; this one was just registered
    assert alarms(site, kind=AlarmKind.FEED_GAP) == []
    assert feed_gaps_check(now=later()) >= 1
    assert feed_gaps_check(now=later()) == 0
    (gap,) = alarms(site, kind=AlarmKind.FEED_GAP)
    assert gap.is_open and gap.opened_at == site.instrument.created_at  # no data since it was registered

    feed.post([(0, 7.1)])

    gap.refresh_from_db()
    assert gap.closed_at is not None
    assert alarms(site, kind=AlarmKind.FEED_GAP) == [gap]  # the outage is not counted twice


def test_no_feed_gap_while_data_is_flowing(site):
    readings_ingest(instrument=site.instrument, body=orjson.dumps({"readings": [
        reading(1, timezone.now() - timedelta(minutes=1))]}))

    feed_gaps_check(now=later(5))

    assert alarms(site, kind=AlarmKind.FEED_GAP) == []


def test_a_feed_gap_closes_when_the_equipment_is_released(site):
    feed_gaps_check(now=later())
    batch_services.equipment_release(actor=site.who.supervisor, use=site.batch.equipment_uses.get())

    feed_gaps_check(now=later(12))

    (gap,) = alarms(site, kind=AlarmKind.FEED_GAP)
    assert gap.closed_at is not None


def test_no_feed_gap_for_a_batch_on_hold(site):
    batch_services.batch_hold(actor=site.who.supervisor, batch=site.batch, reason="Waiting for QC")

    feed_gaps_check(now=later())

    assert alarms(site, kind=AlarmKind.FEED_GAP) == []


# --- acknowledgement -------------------------------------------------------------------------------

@pytest.fixture
def alarm(site, feed):  # type: ignore[no-untyped-def]
    feed.post([(0, 6.86), (1, 6.87)])
    return alarms(site)[0]


def test_a_supervisor_acknowledges_an_alarm_with_a_comment_and_a_signature(site, alarm):
    supervisor = site.who.supervisor

    alarm_acknowledge(actor=supervisor, alarm=alarm, comment="Probe recalibrated, culture checked.",
                      password=PASSWORD, username=supervisor.username)

    alarm.refresh_from_db()
    assert alarm.acknowledged_by == supervisor and alarm.acknowledgement_comment.startswith("Probe")
    signature = Signature.objects.get(pk=alarm.signature_id)
    assert signature.meaning == "acknowledged" and signature.target_id == str(alarm.pk)
    assert signature.reason == "Probe recalibrated, culture checked."
    assert AuditEvent.objects.filter(event_type=Event.ALARM_ACKNOWLEDGED, target_id=str(alarm.pk)).exists()
    from qms.signatures import signature_is_valid

    assert signature_is_valid(signature)


def test_the_acknowledgement_shows_who_signed_what_it_means_and_when(client, site, alarm):
    """21 CFR 11.50: name, date and time, and the meaning of the signature, wherever it is shown."""
    supervisor = site.who.supervisor
    alarm_acknowledge(actor=supervisor, alarm=alarm, comment="Probe recalibrated, culture checked.",
                      password=PASSWORD, username=supervisor.username)

    login(client, supervisor)
    page = client.get(f"/batches/{site.batch.number}/alarms/", HTTP_HX_REQUEST="true").content.decode()

    assert f"{supervisor.full_name} · acknowledged · " in page


def test_acknowledgement_needs_a_supervisor_a_comment_and_the_right_password(site, alarm):
    with pytest.raises(PermissionDenied):
        alarm_acknowledge(actor=site.who.operator, alarm=alarm, comment="ok", password=PASSWORD,
                          username=site.who.operator.username)
    with pytest.raises(ValidationError):
        alarm_acknowledge(actor=site.who.supervisor, alarm=alarm, comment="  ", password=PASSWORD,
                          username=site.who.supervisor.username)
    with pytest.raises(SignatureRefused):
        alarm_acknowledge(actor=site.who.supervisor, alarm=alarm, comment="checked", password="wrong",
                          username=site.who.supervisor.username)

    alarm.refresh_from_db()
    assert not alarm.acknowledged and alarm.signature_id is None


def test_a_closed_record_takes_no_acknowledgement_and_its_page_offers_none(client, site, alarm):
    """Release waits for every acknowledgement; after the decision (here an abort) the record,
    alarms included, is read-only."""
    supervisor = site.who.supervisor
    batch_services.batch_abort(actor=supervisor, batch=site.batch, reason="Culture contaminated",
                               password=PASSWORD, username=supervisor.username)

    with pytest.raises(ValidationError, match="its record is closed"):
        alarm_acknowledge(actor=supervisor, alarm=alarm, comment="Checked.", password=PASSWORD,
                          username=supervisor.username)

    alarm.refresh_from_db()
    assert not alarm.acknowledged and alarm.signature_id is None
    login(client, supervisor)
    page = client.get(f"/batches/{site.batch.number}/alarms/", HTTP_HX_REQUEST="true").content.decode()
    assert f"alarm-{alarm.pk}" in page and "Sign: acknowledged" not in page


def test_an_escalation_needs_a_new_acknowledgement(site, feed, alarm):
    alarm_acknowledge(actor=site.who.supervisor, alarm=alarm, comment="Watching it.", password=PASSWORD,
                      username=site.who.supervisor.username)

    feed.post([(2, 6.7)])

    alarm.refresh_from_db()
    assert alarm.kind == AlarmKind.ACTION and not alarm.acknowledged
    assert alarm.history.filter(acknowledged_at__isnull=False).exists()  # the first acknowledgement stays in history


# --- the batch page -----------------------------------------------------------------------------

def test_the_batch_page_loads_process_data_by_htmx(client, site, alarm):
    login(client, site.who.auditor)

    page = client.get(f"/batches/{site.batch.number}/")

    assert page.status_code == 200
    assert f'hx-get="/batches/{site.batch.number}/process-data/"'.encode() in page.content


def test_charts_are_inline_svg_with_limit_bands_and_alarms(client, site, alarm):
    login(client, site.who.auditor)

    fragment = client.get(f"/batches/{site.batch.number}/process-data/", HTTP_HX_REQUEST="true")

    html = fragment.content.decode()
    assert fragment.status_code == 200 and "<script" not in html
    assert html.count("<svg") == 1 and "<polyline" in html and 'class="alarm-span"' in html
    assert "within alert limits" in html and "alert 6.9–7.5, action 6.8–7.6 pH" in html


def test_the_alarm_list_offers_acknowledgement_to_supervisors_only(client, site, alarm):
    login(client, site.who.auditor)
    as_auditor = client.get(f"/batches/{site.batch.number}/alarms/", HTTP_HX_REQUEST="true").content.decode()
    client.logout()
    login(client, site.who.supervisor)
    as_supervisor = client.get(f"/batches/{site.batch.number}/alarms/", HTTP_HX_REQUEST="true").content.decode()

    assert f"alarm-{alarm.pk}" in as_auditor and "Sign: acknowledged" not in as_auditor
    assert "Sign: acknowledged" in as_supervisor


def test_acknowledging_through_the_page(client, site, alarm):
    login(client, site.who.supervisor)
    url = f"/batches/{site.batch.number}/alarms/{alarm.pk}/acknowledge/"

    refused = client.post(url, {"comment": "checked", "password": "wrong", "username": site.who.supervisor.username},
                          HTTP_HX_REQUEST="true")
    done = client.post(url, {"comment": "Checked the probe", "password": PASSWORD,
                             "username": site.who.supervisor.username}, HTTP_HX_REQUEST="true")

    assert refused.status_code == 200 and "Wrong password" in refused.content.decode()
    assert done.status_code == 200 and "Checked the probe" in done.content.decode()
    alarm.refresh_from_db()
    assert alarm.acknowledged


def test_operators_cannot_acknowledge_through_the_page(client, site, alarm):
    login(client, site.who.operator)

    response = client.post(f"/batches/{site.batch.number}/alarms/{alarm.pk}/acknowledge/",
                           {"comment": "x", "password": PASSWORD})

    assert response.status_code == 403


def test_the_process_data_page_works_without_htmx(client, site, alarm):
    login(client, site.who.auditor)

    page = client.get(f"/batches/{site.batch.number}/process-data/")

    assert page.status_code == 200 and b"<svg" in page.content and f"alarm-{alarm.pk}".encode() in page.content


def test_hourly_samples_are_drawn_as_dots_and_probes_as_a_line(client, site, feed):
    feed.post([(m, 7.1) for m in range(0, 300)], evaluate=False)  # a probe every minute
    feed.post([(m, 0.5 + m / 1000) for m in range(0, 300, 60)], parameter="vcd", evaluate=False)  # hourly counts
    login(client, site.who.auditor)

    html = client.get(f"/batches/{site.batch.number}/process-data/", HTTP_HX_REQUEST="true").content.decode()

    vcd = html[html.index('id="chart-vcd"'):]
    ph = html[html.index('id="chart-ph"'):html.index('id="chart-vcd"')] if html.index('id="chart-ph"') < html.index(
        'id="chart-vcd"') else html[html.index('id="chart-ph"'):]
    assert vcd[:vcd.index("</figure>")].count("<circle") == 5
    assert "<circle" not in ph[:ph.index("</figure>")] and "<polyline" in ph


def test_a_post_whose_evaluation_never_came_is_evaluated_by_the_overdue_watch(site, feed):
    now = timezone.now()

    def posted(minutes_ago: float, value: float):  # type: ignore[no-untyped-def]
        feed.seq += 1
        body = orjson.dumps({"readings": [reading(feed.seq, feed.at(feed.seq), "ph", value)]})
        return readings_ingest(instrument=site.instrument, body=body, received_at=now - timedelta(minutes=minutes_ago))

    lost = posted(20, 6.4)  # below the pH action limit; its message never reached a worker
    evaluated = posted(9, 7.1)
    alarms_evaluate(post_id=evaluated.post_id)
    recent = posted(1, 7.1)  # its message may still be on its way

    overdue = alarms_evaluate_overdue(now=now)

    assert lost.post_id in overdue
    assert evaluated.post_id not in overdue and recent.post_id not in overdue
    assert ReadingPostEvaluation.objects.filter(post_id=lost.post_id).exists()
    assert not ReadingPostEvaluation.objects.filter(post_id=recent.post_id).exists()
    assert [(alarm.kind, alarm.parameter.code) for alarm in alarms(site)] == [("action", "ph")]
    assert batch_deviations(site).count() == 1, "pH is critical: the late evaluation still opens the deviation"
    assert lost.post_id not in alarms_evaluate_overdue(now=now), "once per post"
    from django.conf import settings as django_settings

    from ebr.celery import app
    assert "ebr.alarms_evaluate_overdue" in {entry["task"] for entry in django_settings.CELERY_BEAT_SCHEDULE.values()}
    assert "ebr.alarms_evaluate_overdue" in app.tasks


def test_one_post_that_cannot_be_evaluated_does_not_hold_back_the_other_overdue_posts(site, feed, monkeypatch):
    from ebr.services import alarms as alarm_services

    now = timezone.now()
    posts = []
    for minutes_ago, value in ((40, 7.1), (25, 6.4), (10, 7.1)):
        feed.seq += 1
        body = orjson.dumps({"readings": [reading(feed.seq, feed.at(feed.seq), "ph", value)]})
        posts.append(readings_ingest(instrument=site.instrument, body=body,
                                     received_at=now - timedelta(minutes=minutes_ago)).post_id)
    broken, *others = posts
    evaluate = alarm_services.alarms_evaluate

    def evaluate_or_fail(*, post_id: int, **kwargs):  # type: ignore[no-untyped-def]
        if post_id == broken:
            raise RuntimeError("this post cannot be evaluated")
        return evaluate(post_id=post_id, **kwargs)

    monkeypatch.setattr(alarm_services, "alarms_evaluate", evaluate_or_fail)

    with pytest.raises(alarm_services.AlarmEvaluationFailed, match=str(broken)):
        alarm_services.alarms_evaluate_overdue(now=now)

    assert set(ReadingPostEvaluation.objects.filter(post_id__in=posts).values_list("post_id", flat=True)) == \
        set(others)
    assert [(alarm.kind, alarm.parameter.code) for alarm in alarms(site)] == [("action", "ph")]
    mark = EvaluationWatchMark.objects.get()
    assert mark.received_before == now - timedelta(minutes=40), "the post left unevaluated holds the mark"
    with pytest.raises(alarm_services.AlarmEvaluationFailed, match=str(broken)):
        alarm_services.alarms_evaluate_overdue(now=now + timedelta(minutes=1))  # tried again, every run
    monkeypatch.setattr(alarm_services, "alarms_evaluate", evaluate)  # mended
    assert alarm_services.alarms_evaluate_overdue(now=now + timedelta(minutes=2)) == [broken]
    assert EvaluationWatchMark.objects.get().received_before == now - timedelta(minutes=3)


def test_a_post_that_keeps_failing_is_set_aside_so_the_watch_reaches_newer_lost_posts(site, feed, monkeypatch):
    """Posts that fail for good must not keep the watch from every newer lost post: after
    EVALUATION_ATTEMPTS failures one is set aside (an audit event), tried hourly, and holds back
    its batch's release instead."""
    from ebr.process_data import posts_awaiting_evaluation
    from ebr.services import alarms as alarm_services

    monkeypatch.setattr(alarm_services, "OVERDUE_PER_RUN", 1)  # the oldest post alone fills a run
    now = timezone.now()
    broken = _lost_post(site, feed, now - timedelta(minutes=40), 7.1).post_id
    # An action excursion, received beyond the window in which a post's evaluation takes the
    # posts before it first (_earlier_posts_evaluate), so that only the watch can reach it.
    lost = _lost_post(site, feed, now - timedelta(minutes=25)).post_id
    evaluate = alarm_services.alarms_evaluate

    def evaluate_or_fail(*, post_id: int, **kwargs):  # type: ignore[no-untyped-def]
        if post_id == broken:
            raise RuntimeError("this post cannot be evaluated")
        return evaluate(post_id=post_id, **kwargs)

    monkeypatch.setattr(alarm_services, "alarms_evaluate", evaluate_or_fail)
    for minute in range(alarm_services.EVALUATION_ATTEMPTS):
        with pytest.raises(alarm_services.AlarmEvaluationFailed, match=str(broken)):
            alarms_evaluate_overdue(now=now + timedelta(minutes=minute))
        assert alarms(site) == [], "the failing post holds the watch while it is retried"

    assert alarms_evaluate_overdue(now=now + timedelta(minutes=5)) == [lost]
    assert [(alarm.kind, alarm.parameter.code) for alarm in alarms(site)] == [("action", "ph")]
    # Past the set-aside post, up to the end of this run (full: it held one post).
    assert EvaluationWatchMark.objects.get().received_before == now - timedelta(minutes=25)
    (event,) = AuditEvent.objects.filter(event_type=Event.ALARM_EVALUATION_FAILED)
    assert (event.target_type, event.target_id) == ("ebr.readingpost", str(broken))
    assert "failed 5 times" in event.reason and "RuntimeError" in event.data["error"]
    assert batch_audit_events(site.batch).filter(pk=event.pk).exists()  # in the batch's audit trail
    assert posts_awaiting_evaluation(site.batch) == 1  # release waits for it

    monkeypatch.setattr(alarm_services, "alarms_evaluate", evaluate)  # mended
    assert alarms_evaluate_overdue(now=timezone.now() + timedelta(minutes=30)) == []  # not yet: hourly
    assert alarms_evaluate_overdue(now=timezone.now() + timedelta(minutes=61)) == [broken]
    assert posts_awaiting_evaluation(site.batch) == 0
    assert AuditEvent.objects.filter(event_type=Event.ALARM_EVALUATION_FAILED).count() == 1


def test_a_post_that_keeps_hitting_a_statement_timeout_is_set_aside_too(site, feed, monkeypatch):
    """A timeout stops a run at once (the next post could hit it as well), but while the database
    answers it may be the post's own doing, every time: it counts towards setting the post aside,
    or it would hold the watch for good."""
    from django.db import OperationalError

    from ebr.process_data import evaluation_waiting
    from ebr.services import alarms as alarm_services

    now = timezone.now()
    heavy = _lost_post(site, feed, now - timedelta(minutes=40), 7.1).post_id
    evaluate = alarm_services.alarms_evaluate

    def evaluate_or_time_out(*, post_id: int, **kwargs):  # type: ignore[no-untyped-def]
        if post_id == heavy:
            raise OperationalError("canceling statement due to statement timeout")
        return evaluate(post_id=post_id, **kwargs)

    monkeypatch.setattr(alarm_services, "alarms_evaluate", evaluate_or_time_out)
    for minute in range(alarm_services.EVALUATION_ATTEMPTS):
        with pytest.raises(OperationalError):
            alarms_evaluate_overdue(now=now + timedelta(minutes=minute))

    lost = _lost_post(site, feed, now - timedelta(minutes=25)).post_id
    assert alarms_evaluate_overdue(now=now + timedelta(minutes=5)) == [lost]  # past the set-aside post
    assert AuditEvent.objects.filter(event_type=Event.ALARM_EVALUATION_FAILED, target_id=str(heavy)).count() == 1
    waiting = evaluation_waiting(site.batch)
    assert (waiting.set_aside, "statement timeout" in (waiting.last_error or "")) == (1, True)


def _lost_post(site, feed, received_at, value: float = 6.4):  # type: ignore[no-untyped-def]
    feed.seq += 1
    body = orjson.dumps({"readings": [reading(feed.seq, feed.at(feed.seq), "ph", value)]})
    return readings_ingest(instrument=site.instrument, body=body, received_at=received_at)


def test_the_overdue_watch_catches_up_however_long_ago_the_message_was_lost(site, feed):
    now = timezone.now()
    assert alarms_evaluate_overdue(now=now - timedelta(hours=5)) == []  # the watch ran then, all well
    lost = _lost_post(site, feed, now - timedelta(hours=4, minutes=30))  # workers down for hours since

    assert alarms_evaluate_overdue(now=now) == [lost.post_id]

    assert [(alarm.kind, alarm.parameter.code) for alarm in alarms(site)] == [("action", "ph")]
    assert EvaluationWatchMark.objects.get().received_before == now - timedelta(minutes=5)
    event = AuditEvent.objects.get(event_type=Event.ALARM_EVALUATION_OVERDUE)
    assert (event.target_type, event.target_id, event.actor_label) == (
        "ebr.readingpost", str(lost.post_id), "system:alarm-evaluation")
    assert "270 min after receipt" in event.reason
    # QA's audit-trail review of the batch reads it: its alarms were raised late, and why.
    assert batch_audit_events(site.batch).filter(pk=event.pk).exists()


def test_a_full_run_of_overdue_posts_is_followed_by_the_next_from_where_it_stopped(site, feed, monkeypatch):
    from ebr.services import alarms as alarm_services

    monkeypatch.setattr(alarm_services, "OVERDUE_PER_RUN", 2)
    now = timezone.now()
    posts = [_lost_post(site, feed, now - timedelta(minutes=30 - n), 7.1).post_id for n in range(5)]

    marks = []
    for _ in range(3):
        marks.append((alarms_evaluate_overdue(now=now), EvaluationWatchMark.objects.get().received_before))

    assert marks == [(posts[:2], now - timedelta(minutes=29)), (posts[2:4], now - timedelta(minutes=27)),
                     (posts[4:], now - timedelta(minutes=5))]
    assert alarms_evaluate_overdue(now=now) == []


def test_a_post_committed_after_the_mark_passed_its_arrival_is_still_found(site, feed):
    now = timezone.now()
    assert alarms_evaluate_overdue(now=now) == []  # the mark moves up to five minutes ago
    slow = _lost_post(site, feed, now - timedelta(minutes=20))  # stamped at arrival, committed late

    assert alarms_evaluate_overdue(now=now + timedelta(minutes=1)) == [slow.post_id]


def test_only_one_overdue_watch_runs_at_a_time(site, feed):
    import psycopg
    from django.db import connection

    from ebr.services.alarms import WATCH_LOCK

    lost = _lost_post(site, feed, timezone.now() - timedelta(minutes=10))
    params = connection.get_connection_params()
    with psycopg.connect(**{k: v for k, v in params.items() if k in ("host", "port", "user", "password", "dbname")},
                         autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [WATCH_LOCK])  # a run still going elsewhere
        assert alarms_evaluate_overdue() == []
        other.execute("SELECT pg_advisory_unlock(%s)", [WATCH_LOCK])  # that run ends
    assert alarms_evaluate_overdue() == [lost.post_id]
