"""Late alarm evaluation at its edges (ebr.services.alarms._late_excursions and _late_alarm_close).

A post evaluated after later readings were (a lost message found by the overdue watch, a retry, an
instrument's buffer sent later) must leave the same excursion record as evaluation in time order
would: one alarm per excursion, closed at the first stored reading back within the limits of the
step running at that reading's time, never zero-length, never two open at once (EU GMP Annex 11
§13, Annex 15 §9; ALCOA+ complete and accurate). These tests cover a closing reading beyond a page
of later readings, limits that change with the running step, and several readings of one parameter
at the same instant.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from itertools import pairwise

import pytest

from ebr.models import AlarmKind, StepExecution
from ebr.services import alarms as alarm_services
from ebr.services.alarms import alarms_evaluate
from ebr.services.execution import entry_record, step_perform
from qms.audit import Event
from qms.models import AuditEvent
from tests.conftest import PASSWORD
from tests.ebr.conftest import train
from tests.ebr.process_builders import plant
from tests.ebr.test_alarms import Feed, alarms, batch_deviations

pytestmark = pytest.mark.django_db

EXPANSION_TEXT = "alert 6.9–7.5, action 6.8–7.6 [pH]"  # the master version's own pH limits (fallback)
RECEIPT_TEXT = "alert 7–7.4, action 6.95–7.45 [pH]"  # step 1.1 Receive, while it runs


@pytest.fixture
def site(db):  # type: ignore[no-untyped-def]
    return plant()


@pytest.fixture
def feed(site):  # type: ignore[no-untyped-def]
    return Feed(site)


def excursion_record(site):  # type: ignore[no-untyped-def]
    """The batch's excursion alarms, checked for what must hold whatever the order of evaluation:
    none zero-length, none overlapping another, at most one open (alarm_one_open_excursion)."""
    record = [alarm for alarm in alarms(site) if alarm.kind != AlarmKind.FEED_GAP]
    assert all(alarm.closed_at is None or alarm.closed_at > alarm.opened_at for alarm in record), "zero-length"
    assert all(a.closed_at is not None and a.closed_at <= b.opened_at for a, b in pairwise(record)), "overlap"
    return record


# --- 1. the closing reading lies beyond a page of later readings -----------------------------

def late_excursion_before_a_long_one(feed, outside: int):  # type: ignore[no-untyped-def]
    """A lost post with one value below the alert limit at minute 0; a second lost post with
    `outside` more values below it, then the first back within limits and one more; a post after
    them evaluated on time. Returns the lost posts and the time the excursion ends."""
    first = feed.post([(0, 6.85)], lost=True)
    minutes = [1 + n / 100 for n in range(outside + 2)]
    values = [6.86] * outside + [7.1, 7.2]
    second = feed.post(list(zip(minutes, values, strict=True)), lost=True)
    feed.post([(minutes[-1] + 1, 7.1)])  # evaluated at once: nothing open, nothing to close
    return first, second, feed.at(minutes[outside])


@pytest.mark.parametrize("outside", [
    2,  # back within limits on the last reading of the first page
    3,  # ... on the first reading of the second page
    10,  # ... several pages on
])
def test_a_late_excursion_closes_at_the_first_reading_back_within_limits_pages_after_it(
        site, feed, monkeypatch, outside):
    """The readings after a late excursion are read in pages: the alarm must close at the first one
    back within the limits wherever it lies, not at a page's end, and not stay open."""
    monkeypatch.setattr(alarm_services, "LATER_PAGE", 3)
    first, second, back = late_excursion_before_a_long_one(feed, outside)

    alarms_evaluate(post_id=first.post_id)  # the overdue watch, oldest first

    (alarm,) = excursion_record(site)
    assert (alarm.kind, alarm.opened_at, alarm.closed_at, alarm.worst_value) == ("alert", feed.at(0), back, 6.85)
    alarms_evaluate(post_id=second.post_id)
    (alarm,) = excursion_record(site)
    assert (alarm.opened_at, alarm.closed_at, alarm.worst_value, alarm.worst_at) == (feed.at(0), back, 6.85, feed.at(0))


@pytest.mark.parametrize("outside", [499, 500, 1200])
def test_a_late_excursion_closes_beyond_the_real_page_of_later_readings(site, feed, outside):
    """The same with the page size production uses (500 readings): the return within limits as
    reading 500, 501 and 1201 after the late one."""
    assert alarm_services.LATER_PAGE == 500
    first, second, back = late_excursion_before_a_long_one(feed, outside)

    alarms_evaluate(post_id=first.post_id)
    alarms_evaluate(post_id=second.post_id)

    (alarm,) = excursion_record(site)
    assert (alarm.kind, alarm.opened_at, alarm.closed_at, alarm.worst_value) == ("alert", feed.at(0), back, 6.85)


def test_a_late_excursion_hands_over_to_an_alarm_that_begins_pages_after_it(site, feed, monkeypatch):
    """Later readings all outside the limits up to an alarm recorded in time: the late alarm ends
    where that one begins, however many pages on (one open excursion alarm per parameter)."""
    monkeypatch.setattr(alarm_services, "LATER_PAGE", 3)
    late = feed.post([(0, 6.85)], lost=True)
    feed.post([(1 + n / 100, 6.86) for n in range(10)], lost=True)  # not evaluated yet
    feed.post([(2, 6.87), (3, 7.1)])  # evaluated at once: an alarm from 2 to 3

    alarms_evaluate(post_id=late.post_id)

    first, second = excursion_record(site)
    assert [(a.opened_at, a.closed_at) for a in (first, second)] == [(feed.at(0), feed.at(2)), (feed.at(2), feed.at(3))]
    cleared = AuditEvent.objects.get(event_type=Event.ALARM_CLEARED, target_id=str(first.pk))
    assert f"continues in alarm {second.pk}" in cleared.reason


# --- 2. limits that change with the running step ---------------------------------------------

@pytest.fixture
def receiving(db):  # type: ignore[no-untyped-def]
    """A batch whose step 1.1 sets its own, narrower pH limits while it runs; the feed's minute 0
    is the moment the step opened (before it, the master version's own limits apply)."""
    site = plant(receipt_limits=True)
    feed = Feed(site)
    step = StepExecution.objects.get(batch=site.batch, sequence=1)
    feed.start = step.opened_at
    return site, feed, step


def test_a_late_reading_in_limits_for_its_own_time_raises_nothing_though_a_later_step_is_narrower(receiving):
    """pH 7.45 before step 1.1 opened is within the limits of that time (6.9–7.5), though outside
    those of the step running when the later readings were taken and evaluated (7.0–7.4)."""
    site, feed, _ = receiving
    feed.post([(0.5, 7.2), (1, 7.2)])  # step 1.1 running: evaluated on time
    late = feed.post([(-2, 7.2), (-1, 7.45)], evaluate=False)  # the instrument's buffer, sent later

    alarms_evaluate(post_id=late.post_id)

    assert excursion_record(site) == []


def test_a_late_excursion_is_judged_by_the_limits_of_its_own_time_not_a_later_step(receiving):
    """pH 6.85 before step 1.1 opened is an alert on a critical parameter (6.9–7.5); under the
    later step's limits it would be a non-critical action excursion of that step."""
    site, feed, _ = receiving
    feed.post([(0.5, 7.2), (1, 7.2)])
    late = feed.post([(-2, 7.2), (-1, 6.85)], evaluate=False)

    alarms_evaluate(post_id=late.post_id)

    (alarm,) = excursion_record(site)
    assert (alarm.kind, alarm.critical, alarm.step_id, alarm.limit_text) == ("alert", True, None, EXPANSION_TEXT)
    assert (alarm.opened_at, alarm.closed_at, alarm.worst_value) == (feed.at(-1), feed.at(0.5), 6.85)
    assert not alarm.deviation_number and not batch_deviations(site).exists()


def test_later_readings_close_a_late_excursion_by_the_limits_of_their_own_step(receiving):
    """The readings after a late excursion are judged by the step running at each of them: pH
    6.97 while step 1.1 runs is still outside its limits (7.0–7.4), though within the limits
    that applied to the late reading; the excursion ends at the 7.2 after it."""
    site, feed, _ = receiving
    feed.post([(1.5, 7.2)])
    late = feed.post([(-1, 6.85)], evaluate=False)
    between = feed.post([(0.5, 6.97), (1, 7.2)], evaluate=False)  # received after it: evaluated after it

    alarms_evaluate(post_id=late.post_id)

    (alarm,) = excursion_record(site)
    assert (alarm.opened_at, alarm.closed_at, alarm.step_id) == (feed.at(-1), feed.at(1), None)
    alarms_evaluate(post_id=between.post_id)  # 6.97 joins the recorded alarm, which stays as it is
    (alarm,) = excursion_record(site)
    assert (alarm.opened_at, alarm.closed_at, alarm.worst_value) == (feed.at(-1), feed.at(1), 6.85)


def test_a_late_excursion_of_a_step_ends_at_a_reading_within_the_wider_limits_after_the_step(receiving):
    """pH 7.42 while step 1.1 runs is an alert of that step (7.0–7.4); once the step is performed
    the wider limits apply again (6.9–7.5), and 7.45 after it is back within limits."""
    site, feed, step = receiving
    operator = site.who.operator
    train(operator, site.version, site.who.qa_approver, site.who.supervisor)
    entry_record(actor=operator, step=step, parameter=step.template.parameters.get(code="bag_ok"), value="yes",
                 idempotency_key=uuid.uuid4().hex)
    step = step_perform(actor=operator, step=step, password=PASSWORD, username=operator.username)
    performed = (step.performed_at - step.opened_at) / timedelta(minutes=1)
    feed.post([(performed + 0.5, 7.45), (performed + 1, 7.45)])  # after the step: within limits
    late = feed.post([(performed / 2, 7.42)], evaluate=False)

    alarms_evaluate(post_id=late.post_id)

    (alarm,) = excursion_record(site)
    assert (alarm.kind, alarm.step_id, alarm.limit_text) == ("alert", step.pk, RECEIPT_TEXT)
    assert (alarm.opened_at, alarm.closed_at) == (feed.at(performed / 2), feed.at(performed + 0.5))


# --- 3. several readings of one parameter at the same instant --------------------------------

SAME_INSTANT = [
    [6.85, 7.1, 6.7],  # outside, within, further outside
    [7.1, 6.85, 6.7],  # within first
    [6.85, 6.7, 7.1],  # within last
    [6.7, 7.2, 6.85, 7.1, 6.86],  # five, the worst first
]


@pytest.mark.parametrize("late", [False, True], ids=["in-time-order", "late"])
@pytest.mark.parametrize("values", SAME_INSTANT)
def test_readings_at_one_instant_make_one_alarm_with_the_worst_of_them(site, feed, values, late):
    """An instrument may send several values of one parameter with the same ts (a burst, a
    re-sampled buffer). Whether evaluated in time order or late, they are one excursion: one
    alarm from that instant to the next reading back within limits, never a zero-length one, at
    the action level with the worst value, and one deviation (pH is critical)."""
    burst = [(1, value) for value in values]
    if late:
        post = feed.post(burst, lost=True)
        feed.post([(2, 7.1), (3, 7.1)])
        alarms_evaluate(post_id=post.post_id)
    else:
        feed.post([(0, 7.1), *burst, (2, 7.1), (3, 7.1)])

    (alarm,) = excursion_record(site)
    assert (alarm.kind, alarm.opened_at, alarm.closed_at) == (AlarmKind.ACTION, feed.at(1), feed.at(2))
    assert (alarm.worst_value, alarm.worst_at) == (6.7, feed.at(1))
    assert batch_deviations(site).count() == 1


def test_late_readings_at_one_instant_inside_an_open_alarm_join_it_and_leave_it_open(site, feed):
    """Values within limits among them never shorten or split the alarm recorded around them; the
    worst one escalates it, and it stays the parameter's one open alarm."""
    feed.post([(0, 6.88)])  # opens an alert
    late = feed.post([(1, 7.1), (1, 6.6), (1, 7.2), (1, 6.87)], lost=True)
    feed.post([(2, 6.89)])  # evaluated first: the alert goes on

    alarms_evaluate(post_id=late.post_id)

    (alarm,) = excursion_record(site)
    assert (alarm.kind, alarm.opened_at, alarm.closed_at, alarm.worst_value, alarm.worst_at) == (
        AlarmKind.ACTION, feed.at(0), None, 6.6, feed.at(1))
    assert batch_deviations(site).count() == 1


@pytest.mark.parametrize("on_time", [[(2, 7.1), (3, 7.1)], [(2, 7.1)]], ids=["all-late", "partly-late"])
def test_a_late_excursion_ends_at_a_reading_back_within_limits_at_the_instant_of_its_last_values(
        site, feed, on_time):
    """A buffered post (lost message) ends with two values outside the limits at minute 2; the post
    evaluated on time holds pH 7.1 at that same minute, sent after them (higher seq). The stored
    data is back within limits at minute 2, so the excursion that began at minute 1 ends there,
    as it does when the same posts are evaluated in time order (whichever way the readings that
    share minute 2 are ordered, the alarm opened at minute 1 closes at minute 2)."""
    late = feed.post([(1, 6.85), (2, 6.86), (2, 6.7)], lost=True)
    feed.post(on_time)

    alarms_evaluate(post_id=late.post_id)

    record = excursion_record(site)
    (opened_at_1,) = [alarm for alarm in record if alarm.opened_at == feed.at(1)]
    assert opened_at_1.closed_at == feed.at(2)
    assert any(alarm.kind == AlarmKind.ACTION and alarm.worst_value == 6.7 for alarm in record)


def test_late_readings_at_the_instant_a_recorded_alarm_closed_keep_their_action_level(site, feed):
    """An alert recorded from minute 0 to minute 1 (pH 7.1 at 1, on time); a buffered post holds
    6.85, 6.7 and 7.2 at minute 1. The record may end that alert at minute 1 (an alarm covers
    [opened, closed)), but the late action value must not be lost: an action alarm with 6.7, one
    deviation (pH is critical), no overlap, no zero-length alarm, nothing left open."""
    late = feed.post([(1, 6.85), (1, 6.7), (1, 7.2)], lost=True)
    feed.post([(0, 6.88), (1, 7.1), (2, 7.1)])

    alarms_evaluate(post_id=late.post_id)

    record = excursion_record(site)
    assert record[0].opened_at == feed.at(0) and all(alarm.closed_at is not None for alarm in record)
    assert [(a.kind, a.worst_value) for a in record if a.kind == AlarmKind.ACTION] == [(AlarmKind.ACTION, 6.7)]
    assert record[-1].closed_at <= feed.at(2)
    assert batch_deviations(site).count() == 1


def test_a_late_excursion_before_an_open_alarm_is_recorded_closed_once(site, feed):
    """A buffered post holds pH 6.85 at minute 0; pH 6.86 from minute 2 on was evaluated in time and
    its alarm is still open. The late alarm is raised already ending where the open one begins (one
    open excursion alarm per parameter): its audit trail and history say so once, with no second
    'cleared' that changes nothing (an inspector reads each entry as a change of the record)."""
    late = feed.post([(0, 6.85)], lost=True)
    feed.post([(2, 6.86), (3, 6.87)])

    alarms_evaluate(post_id=late.post_id)

    late_alarm, open_alarm = excursion_record(site)
    assert (late_alarm.opened_at, late_alarm.closed_at, open_alarm.closed_at) == (feed.at(0), feed.at(2), None)
    events = list(AuditEvent.objects.filter(target_type="ebr.alarm", target_id=str(late_alarm.pk))
                  .values_list("event_type", flat=True))
    assert events == [Event.ALARM_RAISED]
    assert late_alarm.history.count() == 1
