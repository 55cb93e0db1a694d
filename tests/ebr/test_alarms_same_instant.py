"""Readings of one parameter at the same instant, evaluated in different runs and orders.

An instrument may send several values of a parameter with the same ts (a burst, a re-sampled
buffer, a retry that crosses a newer post). Whatever their seq, whichever post carries them and
in whatever order the posts are evaluated (on time, late through the overdue watch, a retry
crossing a newer post), they are simultaneous: an excursion opens one alarm, which closes at an
instant with a value back within the limits (never at the instant it opened), and the values
outside the limits at that instant belong to it; they never open a second alarm there
(ebr.services.alarms, EU GMP Annex 15 §9, Annex 11 §13; ALCOA+ consistent).

Each test posts the same readings and evaluates the posts in every order: the excursion record
must be the same in all of them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import permutations

import orjson
import pytest
from django.utils import timezone

from ebr.models import Alarm, AlarmKind
from ebr.services.alarms import alarms_evaluate
from ebr.services.instruments import instrument_register
from ebr.services.readings import readings_ingest
from qms.audit import Event
from qms.models import AuditEvent
from tests.conftest import SEED, unique
from tests.ebr.process_builders import plant, reading
from tests.ebr.test_alarms import batch_deviations
from tests.ebr.test_alarms_late_edges import excursion_record

pytestmark = pytest.mark.django_db

Values = list[tuple[int, float, float]]  # (seq, minute, value)


@pytest.fixture
def site(db):  # type: ignore[no-untyped-def]
    return plant()


class Posts:
    """Posts with the seq the test gives each reading, evaluated when and in the order it says.

    Each post is received 30 minutes after the one before, hours ago: evaluating one never
    evaluates another first (ebr.services.alarms._earlier_waiting looks 10 minutes back), so the
    order of evaluation is exactly the test's."""

    def __init__(self, site, instrument=None) -> None:  # type: ignore[no-untyped-def]
        self.site, self.instrument = site, instrument or site.instrument
        self.start = (timezone.now() - timedelta(hours=6)).replace(second=0, microsecond=0)
        self.received = self.start + timedelta(minutes=30)

    def at(self, minute: float) -> datetime:
        return self.start + timedelta(minutes=minute)

    def post(self, values: Values, parameter: str = "ph") -> int:
        self.received += timedelta(minutes=30)
        body = orjson.dumps({"readings": [reading(seq, self.at(minute), parameter, value)
                                          for seq, minute, value in values]})
        return readings_ingest(instrument=self.instrument, body=body, received_at=self.received).post.pk


def evaluate_in_order(posts: Posts, order: tuple[Values, ...]) -> None:
    for post_id in [posts.post(values) for values in order]:
        alarms_evaluate(post_id=post_id)


def record_of(site, posts):  # type: ignore[no-untyped-def]
    """The excursion record in the terms the tests compare: minutes, kind, worst value."""
    def minute(moment):  # type: ignore[no-untyped-def]
        return None if moment is None else (moment - posts.start) / timedelta(minutes=1)

    return [(minute(alarm.opened_at), minute(alarm.closed_at), alarm.kind, alarm.worst_value, minute(alarm.worst_at))
            for alarm in excursion_record(site)]


def raised_and_cleared(site) -> list[str]:  # type: ignore[no-untyped-def]
    alarm_ids = [str(alarm.pk) for alarm in excursion_record(site)]
    return sorted(AuditEvent.objects.filter(target_type="ebr.alarm", target_id__in=alarm_ids,
                                            event_type__in=[Event.ALARM_RAISED, Event.ALARM_CLEARED])
                  .values_list("event_type", flat=True))


# --- 1. a value outside the limits at the instant an alarm closed ------------------------------

OPENS = [(1, 0, 6.88)]  # an alert from minute 0, evaluated first


@pytest.mark.parametrize("seqs", [(2, 3), (3, 2)], ids=["sent-before-the-value-back", "sent-after-it"])
@pytest.mark.parametrize("then", [[], [(4, 2, 7.1)]], ids=["nothing-after", "a-reading-after"])
@pytest.mark.parametrize("first", ["outside", "back"])
def test_a_value_outside_the_limits_at_the_instant_an_alarm_closed_joins_that_alarm(site, seqs, then, first):
    """pH 6.85 and 7.1 both at minute 1, in two posts, inside an alert open since minute 0: the
    alert closes at minute 1 with 6.85 as its worst value, whichever post is evaluated first and
    whichever the instrument sent first. Before the fix, the post evaluated second opened a
    second alarm at minute 1 (left open when no reading followed)."""
    posts = Posts(site)
    outside, back = [(seqs[0], 1, 6.85)], [(seqs[1], 1, 7.1), *then]
    evaluate_in_order(posts, (OPENS, outside, back) if first == "outside" else (OPENS, back, outside))

    assert record_of(site, posts) == [(0, 1, AlarmKind.ALERT, 6.85, 1)]
    assert raised_and_cleared(site) == [Event.ALARM_CLEARED, Event.ALARM_RAISED]


@pytest.mark.parametrize("then", [[], [(4, 2, 7.1)]], ids=["nothing-after", "a-reading-after"])
@pytest.mark.parametrize("first", ["outside", "back"])
def test_an_action_value_at_the_instant_an_alert_closed_escalates_it_once_with_one_deviation(site, then, first):
    posts = Posts(site)
    outside, back = [(2, 1, 6.7)], [(3, 1, 7.1), *then]
    evaluate_in_order(posts, (OPENS, outside, back) if first == "outside" else (OPENS, back, outside))

    assert record_of(site, posts) == [(0, 1, AlarmKind.ACTION, 6.7, 1)]
    assert batch_deviations(site).count() == 1
    (alarm,) = excursion_record(site)
    assert AuditEvent.objects.filter(event_type=Event.ALARM_ESCALATED, target_id=str(alarm.pk)).count() == 1


@pytest.mark.parametrize("burst", [[7.1, 6.85], [6.85, 7.1], [7.1, 6.7, 7.2, 6.85]])
def test_in_one_post_values_at_the_instant_an_alarm_closes_belong_to_it_whatever_their_seq(site, burst):
    """The same in a single post evaluated in time order: a value back within the limits and
    values outside them at one instant end the excursion there, with the worst of them."""
    posts = Posts(site)
    values = [(1, 0, 6.88), *[(2 + n, 1, value) for n, value in enumerate(burst)], (9, 2, 7.1)]
    evaluate_in_order(posts, (values,))

    worst = min(burst)
    level = AlarmKind.ACTION if worst < 6.8 else AlarmKind.ALERT
    assert record_of(site, posts) == [(0, 1, level, worst, 1)]
    assert batch_deviations(site).count() == (1 if level == AlarmKind.ACTION else 0)


# --- 2. a buffered post whose last instant is the instant evaluation has reached ----------------

@pytest.mark.parametrize("on_time", [[(4, 2, 7.1)], [(4, 2, 7.1), (5, 3, 7.1)]], ids=["partly-late", "all-late"])
@pytest.mark.parametrize("first", ["on-time", "buffered"])
def test_a_buffered_excursion_ending_at_the_instant_of_a_value_back_within_limits_is_one_alarm(
        site, on_time, first):
    """A buffered post holds 6.85 at minute 1 and 6.86, 6.7 at minute 2; a post sent after it
    holds 7.1 at minute 2. One action alarm from 1 to 2, nothing left open, one deviation, in
    every order. Before the fix, evaluating the on-time post first (its last reading at minute 2,
    so the buffered values at 2 were not 'late') gave an alert from 1 to 2 and a second, action
    alarm opened at 2 and left open."""
    posts = Posts(site)
    buffered = [(1, 1, 6.85), (2, 2, 6.86), (3, 2, 6.7)]
    evaluate_in_order(posts, (on_time, buffered) if first == "on-time" else (buffered, on_time))

    assert record_of(site, posts) == [(1, 2, AlarmKind.ACTION, 6.7, 2)]
    assert batch_deviations(site).count() == 1


# --- 3. values outside the limits at one instant in several posts -------------------------------

@pytest.mark.parametrize("order", list(permutations(range(3))))
def test_values_outside_the_limits_at_one_instant_in_three_posts_make_one_alarm_in_any_order(site, order):
    posts = Posts(site)
    each = ([(1, 1, 6.85)], [(2, 1, 6.7)], [(3, 1, 7.1), (4, 2, 7.1)])  # the third: back within limits at 2
    evaluate_in_order(posts, tuple(each[n] for n in order))

    assert record_of(site, posts) == [(1, 2, AlarmKind.ACTION, 6.7, 1)]
    assert batch_deviations(site).count() == 1


@pytest.mark.parametrize("order", list(permutations(range(2))))
def test_values_outside_the_limits_at_one_instant_join_an_alarm_open_across_it(site, order):
    """The alarm opened at minute 0 is evaluated first (a late value before a recorded alarm ends
    where that one begins: tests/ebr/test_alarms.py, the hand-over)."""
    posts = Posts(site)
    each = ([(2, 1, 6.86), (3, 1, 6.7)], [(4, 1, 6.87), (5, 2, 7.1)])
    evaluate_in_order(posts, ([(1, 0, 6.88)], *(each[n] for n in order)))

    assert record_of(site, posts) == [(0, 2, AlarmKind.ACTION, 6.7, 1)]
    assert batch_deviations(site).count() == 1


# --- 4. values back within the limits at an alarm's boundaries ---------------------------------

@pytest.mark.parametrize("first", ["outside", "back"])
def test_a_value_within_the_limits_at_the_instant_an_alarm_opened_never_closes_it_there(site, first):
    """An alarm is never zero-length: 7.1 at the instant 6.85 opened it leaves it open to 7.2 at
    minute 2, whichever is evaluated first."""
    posts = Posts(site)
    outside, back = [(1, 1, 6.85)], [(2, 1, 7.1)]
    evaluate_in_order(posts, (outside, back) if first == "outside" else (back, outside))
    assert record_of(site, posts) == [(1, None, AlarmKind.ALERT, 6.85, 1)]

    evaluate_in_order(posts, ([(3, 2, 7.2)],))

    assert record_of(site, posts) == [(1, 2, AlarmKind.ALERT, 6.85, 1)]


def test_a_late_value_within_the_limits_at_the_instant_an_alarm_closed_changes_nothing(site):
    posts = Posts(site)
    evaluate_in_order(posts, ([(1, 0, 6.88), (3, 1, 7.1), (4, 2, 7.1)], [(2, 1, 7.2)]))

    assert record_of(site, posts) == [(0, 1, AlarmKind.ALERT, 6.88, 0)]
    assert raised_and_cleared(site) == [Event.ALARM_CLEARED, Event.ALARM_RAISED]


def test_a_late_value_at_the_instant_one_alarm_hands_over_to_the_next_joins_the_next(site):
    """A late alarm ends where the alarm recorded after it begins (minute 2); a value outside the
    limits at minute 2, evaluated later still, belongs to the alarm open from that instant."""
    posts = Posts(site)
    evaluate_in_order(posts, ([(5, 2, 6.86), (6, 3, 6.87)], [(1, 0, 6.85)]))
    assert record_of(site, posts) == [(0, 2, AlarmKind.ALERT, 6.85, 0), (2, None, AlarmKind.ALERT, 6.86, 2)]

    evaluate_in_order(posts, ([(4, 2, 6.7)],))

    assert record_of(site, posts) == [(0, 2, AlarmKind.ALERT, 6.85, 0), (2, None, AlarmKind.ACTION, 6.7, 2)]
    assert batch_deviations(site).count() == 1


# --- 5. two instruments on the same equipment -----------------------------------------------------

def test_each_instrument_s_values_at_one_instant_are_its_own_excursion_record(site):
    """Alarms are kept per instrument (alarm_one_open_excursion): a second probe on the same
    bioreactor reading 7.1 at the instant the first reads 6.85 neither closes nor splits the
    first one's alarm, and its own 6.7 at that instant is its own alarm."""
    second = instrument_register(actor=SEED, name=unique("BR-probe2"), equipment=site.equipment).instrument
    first_probe, second_probe = Posts(site), Posts(site, second)
    second_probe.start = first_probe.start
    evaluate_in_order(first_probe, ([(1, 0, 6.88)],))
    evaluate_in_order(second_probe, ([(1, 1, 7.1), (2, 2, 7.1)],))
    evaluate_in_order(first_probe, ([(2, 1, 6.85)],))
    evaluate_in_order(second_probe, ([(3, 1, 6.7)],))

    (mine,) = Alarm.objects.filter(batch=site.batch, instrument=site.instrument)
    (theirs,) = Alarm.objects.filter(batch=site.batch, instrument=second)
    assert (mine.opened_at, mine.closed_at, mine.worst_value) == (first_probe.at(0), None, 6.85)
    assert (theirs.kind, theirs.opened_at, theirs.closed_at, theirs.worst_value) == (
        AlarmKind.ACTION, first_probe.at(1), first_probe.at(2), 6.7)
