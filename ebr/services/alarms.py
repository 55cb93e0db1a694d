"""Alarms on instrument data: excursions beyond the master record's limits, and feed gaps.

The rules (EU GMP Annex 15 §9 and Annex 1 §9 on monitoring with alert and action limits;
EU GMP Annex 11 §13 incidents; EU GMP Part I 1.4(xiv) deviations; ALCOA+ complete):
- Limits are those of the batch step running at the reading's time, else the master version's
  own limits for the parameter (ebr.process_data.BatchLimits).
- An excursion opens ONE alarm per parameter, not one per reading: "alert" beyond the alert
  limits, escalated to "action" beyond the action limits; it closes at the first value back
  within the alert limits. Its worst value is kept. Readings evaluated late, after readings
  that follow them in time (a lost message, a retry), join the alarm recorded over their time,
  or open one that ends where the stored readings after them are back within the limits or the
  next alarm begins; a late value within the limits never shortens a recorded alarm. Readings at
  one instant are simultaneous, whatever their seq, post or order of evaluation: the values
  outside the limits at the instant an alarm closes belong to it, not to a second alarm.
- An action-limit excursion on a parameter the master record marks critical opens a deviation
  (qms deviation_open, source "instrument_alarm") linked to the batch and the equipment.
- No data from an instrument for longer than settings.INSTRUMENT_FEED_GAP is a feed gap:
  found in the data itself when a post leaves a hole in the time series (closed alarm over the
  hole), and found in real time by the beat task while its equipment is assigned to a running
  batch (open alarm from the last receipt until data is received again).
- A supervisor acknowledges an alarm with a comment and an e-signature (meaning acknowledged,
  21 CFR 11.50, 11.70, 11.200); an escalation needs a new acknowledgement.

Evaluation runs once per post (a ReadingPostEvaluation mark in the same transaction), under
a per-instrument advisory lock, so a re-delivered task or a concurrent one changes nothing.
Before a post, the instrument's posts received in the ten minutes before it that still wait are
evaluated, so that two workers or a retry keep evaluation in time order.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import orjson
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, OperationalError, connection, transaction
from django.http import HttpRequest
from django.utils import timezone

from ebr.models import (
    Alarm,
    AlarmKind,
    Batch,
    BatchStatus,
    EquipmentUse,
    EvaluatedUntil,
    EvaluationWatchMark,
    Instrument,
    InstrumentParameter,
    ReadingPost,
    ReadingPostEvaluation,
    StepExecution,
)
from ebr.process_data import EVALUATION_ATTEMPTS, BatchLimits, Limits
from ebr.states import BATCH_CLOSED
from ebr.units import unit_display
from qms.audit import Event, SystemActor, create_with_reason, record_event, save_with_reason
from qms.models import User
from qms.roles import Capability, can
from qms.signatures import Meaning, format_local, sign
from qms.subjects import BATCH, EQUIPMENT, STEP, Subject

log = logging.getLogger(__name__)
EVALUATOR = SystemActor("system:alarm-evaluation")
# What would fail every further post alike (the database unavailable, Celery's time limit): it
# stops a run of evaluations at once, for the caller to retry, instead of being logged per post.
STOP_EVALUATING = (OperationalError, SoftTimeLimitExceeded)
ALARM_LOCK = 7260201  # advisory lock class; the second key is the instrument id
ACK_FIELDS = ["acknowledged_by", "acknowledged_at", "acknowledgement_comment", "signature"]

POST_READINGS_SQL = """
SELECT batch_id, parameter_id, ts, value FROM ebr_reading
 WHERE instrument_id = %s AND seq = ANY(%s::bigint[]) AND post_id = %s
 ORDER BY ts, seq
"""
# How far evaluation has got per (batch, parameter) of an instrument; kept under the instrument's lock.
EVALUATED_UNTIL_SQL = """
INSERT INTO ebr_evaluateduntil (instrument_id, batch_id, parameter_id, ts)
SELECT %s, r.batch_id, r.parameter_id, r.ts FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[])
    AS r(batch_id, parameter_id, ts)
ON CONFLICT (instrument_id, batch_id, parameter_id) DO UPDATE SET ts = greatest(ebr_evaluateduntil.ts, excluded.ts)
"""
# The stored readings of (batch, parameter, instrument) from other posts from a moment on (those
# at that very moment included) and before another, or up to it (THROUGH).
_LATER_READINGS = """
SELECT r.ts, r.seq, r.value FROM ebr_reading r
 WHERE r.batch_id = %s AND r.parameter_id = %s AND r.instrument_id = %s AND r.post_id <> %s
   AND (r.ts, r.seq) > (%s, %s) AND r.ts {} %s
 ORDER BY r.ts, r.seq
 LIMIT %s
"""
LATER_READINGS_SQL = _LATER_READINGS.format("<")
LATER_READINGS_THROUGH_SQL = _LATER_READINGS.format("<=")
LATER_PAGE = 500
END_OF_TIME = datetime.max.replace(tzinfo=UTC)
PREVIOUS_TS_SQL = """
SELECT max(previous.ts) FROM ebr_instrumentparameter p
 CROSS JOIN LATERAL (SELECT r.ts FROM ebr_reading r
                      WHERE r.batch_id = %s AND r.parameter_id = p.id AND r.ts < %s
                        AND r.instrument_id = %s AND r.post_id <> %s
                      ORDER BY r.ts DESC LIMIT 1) previous
"""


@dataclass
class Evaluation:
    """What one evaluation did (the task returns it; tests read it)."""

    already_done: bool = False
    raised: int = 0
    escalated: int = 0
    cleared: int = 0
    deviations: list[str] = field(default_factory=list)
    # Raised, escalated, worsened or closed by this evaluation: the alarms its readings changed,
    # which the 201 answer lists beside the open ones (an integrator sees an alarm end, too).
    alarm_ids: set[int] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        return {"already_done": self.already_done, "raised": self.raised, "escalated": self.escalated,
                "cleared": self.cleared, "deviations": self.deviations}


def _lock(instrument_id: int, wait: str | None = None, then: str = "5s") -> None:
    """Serialise alarm work per instrument (evaluation tasks and the feed-gap beat).

    `wait`: give up after that long (a PostgreSQL interval, e.g. '500ms') with a lock timeout;
    the locks the work takes after it (alarm rows, the audit chain's at commit) may wait up to
    `then`, longer but still bounded: a web request must give way, not hang."""
    with connection.cursor() as cursor:
        if wait is None:
            cursor.execute("SELECT pg_advisory_xact_lock(%s::int, %s::int)", [ALARM_LOCK, instrument_id])
            return
        assert connection.in_atomic_block, "a transaction-level lock and setting need a transaction"
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [wait])
        cursor.execute("SELECT pg_advisory_xact_lock(%s::int, %s::int)", [ALARM_LOCK, instrument_id])
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [then])


# --- deviations -----------------------------------------------------------------------------

def _deviation_open(*, batch: Batch, instrument: Instrument, parameter: InstrumentParameter, limits: Limits,
                    ts: datetime, value: float) -> str:
    from qms.services.deviations import deviation_open

    subjects = [Subject(BATCH, str(batch.pk), batch.number),
                Subject(EQUIPMENT, str(instrument.equipment_id), instrument.equipment.code)]
    if limits.step_id is not None:
        step = StepExecution.objects.select_related("template", "batch").get(pk=limits.step_id)
        subjects.append(Subject(STEP, str(step.pk), str(step)))
    deviation = deviation_open(
        actor=EVALUATOR, source="instrument_alarm", subjects=subjects,
        title=f"{parameter.meaning} outside action limits on {batch.number}"[:200],
        description=(f"Instrument {instrument.name} ({instrument.equipment.code}) reported {parameter.code} = "
                     f"{value:g} {unit_display(parameter.unit)} at {format_local(ts)}, outside the limits of master "
                     "record "
                     f"{batch.master_version} ({limits.text}). {parameter.meaning} is a critical parameter."),
        occurred_at=ts, discovered_at=max(timezone.now(), ts),
        reason="Action-limit excursion on a critical parameter (instrument alarm)")
    return deviation.number


# --- excursions -----------------------------------------------------------------------------

@dataclass
class _Context:
    batch: Batch
    instrument: Instrument
    parameter: InstrumentParameter
    result: Evaluation


def _raise(ctx: _Context, limits: Limits, level: str, ts: datetime, value: float,
           closed_at: datetime | None = None) -> Alarm:
    deviation = ""
    if level == AlarmKind.ACTION and limits.critical:
        deviation = _deviation_open(batch=ctx.batch, instrument=ctx.instrument, parameter=ctx.parameter,
                                    limits=limits, ts=ts, value=value)
        ctx.result.deviations.append(deviation)
    ctx.result.raised += 1
    alarm = create_with_reason(
        Alarm, actor=EVALUATOR, reason=f"{ctx.parameter.code} = {value:g} outside the {level} limits",
        event=Event.ALARM_RAISED, data={"value": value, "ts": ts.isoformat(), "deviation": deviation},
        batch=ctx.batch, instrument=ctx.instrument, parameter=ctx.parameter, step_id=limits.step_id, kind=level,
        critical=limits.critical, opened_at=ts, raised_at=timezone.now(), worst_value=value, worst_at=ts,
        limit_text=limits.text_stored[:200], deviation_number=deviation, closed_at=closed_at)
    ctx.result.alarm_ids.add(alarm.pk)
    return alarm


def _escalate(ctx: _Context, alarm: Alarm, limits: Limits, ts: datetime, value: float, pending: list[str]) -> None:
    """Alert became action: one alarm still, escalated, acknowledged again, deviation if critical."""
    alarm.kind, alarm.critical = AlarmKind.ACTION, limits.critical
    alarm.acknowledged_by, alarm.acknowledged_at, alarm.acknowledgement_comment, alarm.signature = None, None, "", None
    fields = [*pending, "kind", "critical", *ACK_FIELDS]
    if limits.critical and not alarm.deviation_number:
        alarm.deviation_number = _deviation_open(batch=ctx.batch, instrument=ctx.instrument, parameter=ctx.parameter,
                                                 limits=limits, ts=ts, value=value)
        ctx.result.deviations.append(alarm.deviation_number)
        fields.append("deviation_number")
    save_with_reason(alarm, actor=EVALUATOR, reason=f"{ctx.parameter.code} = {value:g} outside the action limits",
                     event=Event.ALARM_ESCALATED, update_fields=fields,
                     data={"value": value, "ts": ts.isoformat(), "deviation": alarm.deviation_number})
    ctx.result.escalated += 1
    ctx.result.alarm_ids.add(alarm.pk)


def _clear(ctx: _Context, alarm: Alarm, ts: datetime, value: float, pending: list[str],
           reason: str | None = None) -> None:
    if alarm.closed_at is not None and ts >= alarm.closed_at:
        # A late alarm raised already ending where a later one begins: closing it there (or
        # after) again would be an audit entry that changes nothing.
        if pending:
            save_with_reason(alarm, actor=EVALUATOR, reason="Worst value of the excursion (readings received late)",
                             update_fields=pending)
            ctx.result.alarm_ids.add(alarm.pk)
        return
    alarm.closed_at = ts
    reason = reason or f"{ctx.parameter.code} = {value:g} back within the limits"
    save_with_reason(alarm, actor=EVALUATOR, reason=reason,
                     event=Event.ALARM_CLEARED, update_fields=[*pending, "closed_at"])
    ctx.result.cleared += 1
    ctx.result.alarm_ids.add(alarm.pk)


def _worse(alarm: Alarm, limits: Limits, ts: datetime, value: float) -> bool:
    if alarm.worst_value is not None and limits.excess(value) <= limits.excess(alarm.worst_value):
        return False
    alarm.worst_value, alarm.worst_at = value, ts
    return True


def _open_excursions(batch: Batch, instrument: Instrument) -> dict[int, Alarm]:
    """The open excursion alarms of (batch, instrument) by parameter, locked for this evaluation."""
    alarms = (Alarm.objects.select_for_update().filter(batch=batch, instrument=instrument, closed_at__isnull=True)
              .exclude(kind=AlarmKind.FEED_GAP))
    return {alarm.parameter_id: alarm for alarm in alarms}  # type: ignore[misc]


def _excursions(ctx: _Context, rows: list[tuple[datetime, float]], limits: BatchLimits, alarm: Alarm | None,
                post_id: int, evaluated_until: datetime | None) -> None:
    """This post's readings of one parameter, in time order: alarms opened, escalated, closed.

    `alarm` is the parameter's open excursion alarm. Readings older than the latest reading
    already evaluated arrive late and are evaluated against the alarms recorded over their time
    (`_late_excursions`); the others carry on from the open alarm, or from the one the late
    readings left open.

    Readings at one instant are simultaneous, whatever their seq and whichever post or
    evaluation brought them: a value back within the limits closes the alarm at its instant
    (unless the alarm opened at that instant: never zero-length), and the values outside the
    limits at that instant still belong to that alarm, also when it was closed there by an
    earlier evaluation; a new excursion can only begin after it.
    """
    if evaluated_until is not None and rows[0][0] < evaluated_until:
        late = [row for row in rows if row[0] < evaluated_until]
        rows = rows[len(late):]
        left_open = _late_excursions(ctx, late, limits, post_id, alarm, before=rows[0][0] if rows else None)
        if left_open is not None and left_open.closed_at is None:
            alarm = left_open
    pending: list[str] = []
    # (instant, value) at which `alarm` closes: closed only once the readings of that instant are read.
    closing: tuple[datetime, float] | None = None
    for ts, value in rows:
        if alarm is not None and closing is not None and ts > closing[0]:
            _clear(ctx, alarm, closing[0], closing[1], pending)
            alarm, pending, closing = None, [], None
        applicable = limits.at(ctx.parameter.code, ts)
        if applicable is None:
            continue
        level = applicable.level(value)
        if level is None:
            if alarm is not None and closing is None and ts > alarm.opened_at:
                closing = (ts, value)
            continue
        if alarm is None:
            alarm = _closed_at(ctx, ts)
            if alarm is None:
                alarm = _raise(ctx, applicable, level, ts, value)
                continue
            closing = (ts, value)  # it stays closed at this instant
        if _worse(alarm, applicable, ts, value) and "worst_value" not in pending:
            pending += ["worst_value", "worst_at"]
        if level == AlarmKind.ACTION and alarm.kind == AlarmKind.ALERT:
            _escalate(ctx, alarm, applicable, ts, value, pending)
            pending = []
    if alarm is not None and closing is not None:
        _clear(ctx, alarm, closing[0], closing[1], pending)
    elif alarm is not None and pending:
        save_with_reason(alarm, actor=EVALUATOR, reason="Worst value of the excursion so far",
                         update_fields=pending)
        ctx.result.alarm_ids.add(alarm.pk)


def _closed_at(ctx: _Context, ts: datetime) -> Alarm | None:
    """The parameter's excursion alarm that closed at the instant `ts` (a value back within the
    limits at `ts` evaluated before this one), locked: a value outside the limits at the same
    instant belongs to it, not to a new alarm."""
    return (Alarm.objects.select_for_update()
            .filter(batch=ctx.batch, instrument=ctx.instrument, parameter=ctx.parameter, closed_at=ts)
            .exclude(kind=AlarmKind.FEED_GAP).order_by("opened_at", "id").first())


def _late_excursions(ctx: _Context, rows: list[tuple[datetime, float]], limits: BatchLimits, post_id: int,
                     open_alarm: Alarm | None, *, before: datetime | None) -> Alarm | None:
    """Readings that arrive after later ones were evaluated (a lost message found by the overdue
    watch, a retry): one excursion must still be one alarm, and no excursion may go unrecorded.

    - Outside the limits at a time an alarm already covers: that alarm's worst value and level
      (an escalation to action is acknowledged again and opens the deviation, as in time order).
    - Outside the limits where no alarm covers: an alarm from there, which closes where the
      stored readings after it come back within the limits or where the next alarm begins; while
      those readings end outside the limits it stays open, and their evaluation carries on.
    - Outside the limits at the instant a recorded alarm closed (and none opened there): that
      alarm's too, as above; readings at one instant are simultaneous (`_excursions`).
    - Within the limits inside a recorded alarm: the alarm is not shortened (what was recorded
      stays; the excursion is, if anything, overstated).
    The stored readings of other posts between and after these (up to `before`, this post's
    first reading in time order) are read as well; one that shares the instant of a late reading
    counts as following it. Returns the alarm left open, if any: this post's later readings carry
    on from it.
    """
    first, last = rows[0][0], rows[-1][0]
    recorded = list(Alarm.objects.select_for_update()
                    .filter(batch=ctx.batch, instrument=ctx.instrument, parameter=ctx.parameter, opened_at__lte=last)
                    .exclude(kind=AlarmKind.FEED_GAP).exclude(closed_at__lt=first).order_by("opened_at", "id"))
    recorded = [open_alarm if open_alarm is not None and alarm.pk == open_alarm.pk else alarm for alarm in recorded]
    raised: Alarm | None = None
    # Alarms whose worst value changed: saved once, with the alarm's next change or at the end,
    # so that each history row and its audit event show the same alarm.
    worsened: dict[int, Alarm] = {}
    previous = rows[0][0]
    for ts, value in rows:
        if raised is not None and _late_alarm_close(ctx, raised, previous, ts, limits, post_id, worsened):
            raised = None
        previous = ts
        if raised is not None:
            handover = next((alarm for alarm in recorded
                             if alarm is not raised and raised.opened_at < alarm.opened_at <= ts), None)
            if handover is not None:
                _clear(ctx, raised, handover.opened_at, value, _worst_pending(worsened, raised),
                       reason=f"The excursion continues in alarm {handover.pk}")
                raised = None
        applicable = limits.at(ctx.parameter.code, ts)
        if applicable is None:
            continue
        level = applicable.level(value)
        if level is None:
            if raised is not None and ts > raised.opened_at:
                _clear(ctx, raised, ts, value, _worst_pending(worsened, raised))
                raised = None
            continue
        alarm = _recorded_at(recorded, ts)
        if alarm is None:
            # An alarm open since later in time ends this one where it begins at the latest (one
            # open excursion alarm per parameter); readings back within limits may end it sooner.
            ends = open_alarm.opened_at if open_alarm is not None and open_alarm.opened_at > ts else None
            raised = _raise(ctx, applicable, level, ts, value, closed_at=ends)
            recorded.append(raised)
            continue
        if _worse(alarm, applicable, ts, value):
            worsened[alarm.pk] = alarm
        if level == AlarmKind.ACTION and alarm.kind == AlarmKind.ALERT:
            _escalate(ctx, alarm, applicable, ts, value, _worst_pending(worsened, alarm))
    if raised is not None and _late_alarm_close(ctx, raised, last, before, limits, post_id, worsened,
                                                through=True):
        raised = None
    for alarm in worsened.values():
        save_with_reason(alarm, actor=EVALUATOR, reason="Worst value of the excursion (readings received late)",
                         update_fields=["worst_value", "worst_at"])
        ctx.result.alarm_ids.add(alarm.pk)
    return raised


def _recorded_at(recorded: list[Alarm], ts: datetime) -> Alarm | None:
    """The recorded alarm a value outside the limits at `ts` belongs to: the one open at that
    instant (alarms cover [opened_at, closed_at)), else the one that closed at it."""
    return (next((alarm for alarm in recorded if alarm.covers(ts)), None)
            or next((alarm for alarm in recorded if alarm.closed_at == ts), None))


def _worst_pending(worsened: dict[int, Alarm], alarm: Alarm) -> list[str]:
    """The worst-value fields to save with the alarm's next change, if late readings worsened it."""
    return ["worst_value", "worst_at"] if worsened.pop(alarm.pk, None) is not None else []


def _late_alarm_close(ctx: _Context, alarm: Alarm, after: datetime, before: datetime | None, limits: BatchLimits,
                      post_id: int, worsened: dict[int, Alarm], *, through: bool = False) -> bool:
    """Close an alarm a late reading raised where the stored readings from `after` on (before
    `before`, or up to it `through`) take over: back within the limits, or the next alarm begins.
    Whether it closed.

    Stored readings at the very instant `after` count: a value back within the limits measured
    at the same time as the late ones ends the excursion there, as it does in time order.
    """
    following = (Alarm.objects.filter(batch=ctx.batch, instrument=ctx.instrument, parameter=ctx.parameter,
                                      opened_at__gt=after).exclude(kind=AlarmKind.FEED_GAP).exclude(pk=alarm.pk)
                 .order_by("opened_at", "id").values_list("pk", "opened_at").first())
    sql = LATER_READINGS_THROUGH_SQL if through else LATER_READINGS_SQL
    position: tuple[datetime, int] = (after, -1)
    while True:
        with connection.cursor() as cursor:
            cursor.execute(sql, [ctx.batch.pk, ctx.parameter.pk, ctx.instrument.pk, post_id,
                                 *position, before or END_OF_TIME, LATER_PAGE])
            later = cursor.fetchall()
        for ts, seq, value in later:
            if following is not None and ts >= following[1]:
                _clear(ctx, alarm, following[1], value, _worst_pending(worsened, alarm),
                       reason=f"The excursion continues in alarm {following[0]}")
                return True
            applicable = limits.at(ctx.parameter.code, ts)
            if applicable is not None and applicable.level(value) is None and ts > alarm.opened_at:
                _clear(ctx, alarm, ts, value, _worst_pending(worsened, alarm),
                       reason=f"{ctx.parameter.code} = {value:g} back within the limits (a reading after the late one)")
                return True
            position = (ts, seq)
        if len(later) < LATER_PAGE:
            return False  # the readings stored after it are still outside the limits: it stays open


# --- feed gaps ------------------------------------------------------------------------------

def _gap_text() -> str:
    return f"no data for more than {int(settings.INSTRUMENT_FEED_GAP.total_seconds() // 60)} min"


def _gap_raise(batch: Batch, instrument: Instrument, start: datetime, end: datetime | None, reason: str) -> Alarm:
    return create_with_reason(
        Alarm, actor=EVALUATOR, reason=reason, event=Event.ALARM_RAISED,
        data={"kind": AlarmKind.FEED_GAP, "from": start.isoformat(), "to": end.isoformat() if end else None},
        batch=batch, instrument=instrument, kind=AlarmKind.FEED_GAP, opened_at=start, closed_at=end,
        raised_at=timezone.now(), limit_text=_gap_text())


def _data_gaps(batch: Batch, post: ReadingPost, moments: list[datetime], result: Evaluation) -> None:
    """Holes in the data of this post, and between it and the instrument's previous reading."""
    instrument, gap = post.instrument, settings.INSTRUMENT_FEED_GAP
    with connection.cursor() as cursor:
        cursor.execute(PREVIOUS_TS_SQL, [batch.pk, moments[0], instrument.pk, post.pk])
        previous = cursor.fetchone()[0]
    spans = [(previous, moments[0])] if previous is not None and moments[0] - previous > gap else []
    open_gap = (Alarm.objects.select_for_update()
                .filter(batch=batch, instrument=instrument, kind=AlarmKind.FEED_GAP, closed_at__isnull=True).first())
    if open_gap is not None:
        open_gap.closed_at = max(post.received_at, open_gap.opened_at)
        save_with_reason(open_gap, actor=EVALUATOR, reason="Data received again", event=Event.ALARM_CLEARED,
                         update_fields=["closed_at"])
        result.cleared += 1
        result.alarm_ids.add(open_gap.pk)
        spans = []  # the hole before this post is the outage that alarm already records
    spans += [(earlier, later) for earlier, later in pairwise(moments) if later - earlier > gap]
    for start, end in spans:
        result.alarm_ids.add(_gap_raise(batch, instrument, start, end, "Gap in the instrument's data").pk)
        result.raised += 1


# --- evaluation of one post -------------------------------------------------------------------

def _post_rows(post: ReadingPost) -> list[tuple[int, int, datetime, float]]:
    """The readings this post stored, found through (instrument, seq) from the original body."""
    seqs = sorted({reading["seq"] for reading in orjson.loads(post.original())["readings"]})
    with connection.cursor() as cursor:
        cursor.execute(POST_READINGS_SQL, [post.instrument_id, seqs, post.pk])
        return cursor.fetchall()


def alarms_evaluate(*, post_id: int, overdue_at: datetime | None = None) -> Evaluation:
    """Evaluate the readings one post stored against the batch's limits; once per post.

    `overdue_at`: the overdue watch found the post's evaluation missing at that time; the late
    evaluation is recorded in the audit trail with how late it is (ALCOA+ complete: the record
    shows that the alarms of these readings were raised late, not when they were received).
    """
    stopped: list[tuple[int, BaseException]] = []
    try:
        return _alarms_evaluate(post_id, overdue_at, stopped)
    except BaseException:
        # The earlier posts' timeouts were counted in the transaction that just rolled back:
        # count them again outside it, or the post at fault would never be set aside.
        for earlier_id, error in stopped:
            _evaluation_failure_record(earlier_id, error)
        raise


@transaction.atomic
def _alarms_evaluate(post_id: int, overdue_at: datetime | None, stopped: list[tuple[int, BaseException]]
                     ) -> Evaluation:
    post = ReadingPost.objects.select_related("instrument__equipment").get(pk=post_id)
    _lock(post.instrument_id)
    if ReadingPostEvaluation.objects.filter(post_id=post_id).exists():
        return Evaluation(already_done=True)
    _earlier_posts_evaluate(post, _earlier_waiting(post), stopped)
    return _post_evaluate(post, overdue_at)


class _GiveWay(Exception):
    """The request leaves the post to the worker."""


def alarms_evaluate_now(*, post_id: int) -> set[int] | None:
    """Evaluate a small post in the request that stored it (already committed), so that the
    instrument's answer lists the alarms its readings raised (specs/instrument-api.md). The
    queued task then finds it done. The alarms this evaluation raised or escalated, or None when
    the post was not evaluated here.

    Gives way, and leaves the post to the worker and the overdue watch, when another evaluation
    holds the instrument's lock for more than a moment, when earlier posts of the instrument
    still wait (they go first, in time order, and may be large: not in a web request), or when
    anything fails: the answer to the instrument must not depend on the evaluation.
    """
    try:
        with transaction.atomic():
            post = ReadingPost.objects.select_related("instrument__equipment").get(pk=post_id)
            _lock(post.instrument_id, wait="500ms")
            if ReadingPostEvaluation.objects.filter(post_id=post_id).exists():
                return None  # by the worker, already: what it changed is not this request's to list
            if _earlier_waiting(post, at_most=1):
                raise _GiveWay
            return _post_evaluate(post, None).alarm_ids
    except _GiveWay:
        log.info("alarm evaluation of post %s left to the worker: earlier posts of its instrument wait", post_id)
        return None
    except Exception:  # the post stays queued: the worker evaluates it and reports what fails
        log.warning("alarm evaluation of post %s in the request failed; left to the worker", post_id,
                    exc_info=True)
        return None


# Posts of the same instrument received shortly before, still waiting for their evaluation. A
# post whose evaluation hit a statement or lock timeout, or failed twice, is left to its own
# retries and to the overdue watch (which sets it aside after EVALUATION_ATTEMPTS): it must not
# fail the posts that follow it. One ordinary failure (a deadlock, say) keeps it in time order.
EARLIER_WAITING_SQL = """
SELECT p.id FROM ebr_readingpost p
 WHERE p.instrument_id = %s AND p.received_at >= %s AND p.received_at <= %s AND p.id <> %s AND p.accepted > 0
   AND NOT EXISTS (SELECT 1 FROM ebr_readingpostevaluation e WHERE e.post_id = p.id)
   AND NOT EXISTS (SELECT 1 FROM ebr_evaluationfailure f WHERE f.post_id = p.id
                    AND (f.attempts >= 2 OR f.last_error LIKE '%%canceling statement due to%%'))
 ORDER BY p.received_at, p.id
 LIMIT %s
"""
EARLIER_WINDOW = timedelta(minutes=10)
EARLIER_AT_MOST = 20


def _earlier_waiting(post: ReadingPost, at_most: int = EARLIER_AT_MOST) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(EARLIER_WAITING_SQL, [post.instrument_id, post.received_at - EARLIER_WINDOW, post.received_at,
                                             post.pk, at_most])
        return [row[0] for row in cursor.fetchall()]


def _earlier_posts_evaluate(post: ReadingPost, earlier: list[int],
                            stopped: list[tuple[int, BaseException]] | None = None) -> None:
    """Evaluate first the instrument's posts received just before `post` that still wait.

    Two workers, or a retried group, can take a later post before an earlier one. Evaluated in
    time order, an excursion ends at the earlier post's first value back within the limits
    instead of running on over it (a late value never shortens a recorded alarm). A message
    lost within the window is recovered here too. Each in a savepoint: one that cannot be
    evaluated is left to its own task and to the overdue watch, which report it. A statement
    or lock timeout on an earlier post counts as that post's failure (the next posts no longer
    wait for it); the database gone, or the task out of time, stops the run.
    """
    for earlier_id in earlier:
        try:
            with transaction.atomic():
                _post_evaluate(ReadingPost.objects.select_related("instrument__equipment").get(pk=earlier_id), None)
        except STOP_EVALUATING as error:
            if isinstance(error, SoftTimeLimitExceeded) or not _post_at_fault(error):
                raise
            log.exception("alarm evaluation of post %s (before post %s) stopped", earlier_id, post.pk)
            _evaluation_failure_record(earlier_id, error)
            if stopped is not None:
                stopped.append((earlier_id, error))
        except Exception:
            log.exception("alarm evaluation of post %s (before post %s) failed", earlier_id, post.pk)


def _post_evaluate(post: ReadingPost, overdue_at: datetime | None) -> Evaluation:
    if overdue_at is not None:
        late = timezone.now() - post.received_at
        record_event(actor=EVALUATOR, event=Event.ALARM_EVALUATION_OVERDUE, target=post,
                     reason=f"Alarm evaluation of post {post.pk} had not come 5 min after receipt; evaluated "
                            f"{int(late.total_seconds() // 60)} min after receipt by the overdue watch",
                     data={"received_at": post.received_at.isoformat(), "found_at": overdue_at.isoformat()})
    result = Evaluation()
    grouped: dict[int, dict[int, list[tuple[datetime, float]]]] = defaultdict(lambda: defaultdict(list))
    for batch_id, parameter_id, ts, value in _post_rows(post):
        grouped[batch_id][parameter_id].append((ts, value))
    parameters = InstrumentParameter.objects.in_bulk([pk for by in grouped.values() for pk in by])
    evaluated_until = {(batch_id, parameter_id): ts for batch_id, parameter_id, ts in EvaluatedUntil.objects.filter(
        instrument_id=post.instrument_id, batch_id__in=list(grouped)).values_list("batch_id", "parameter_id", "ts")}
    for batch_id, by_parameter in grouped.items():
        batch = Batch.objects.select_related("master_version").get(pk=batch_id)
        limits = BatchLimits(batch, post.instrument.equipment.equipment_type)
        open_alarms = _open_excursions(batch, post.instrument)
        for parameter_id, rows in by_parameter.items():
            _excursions(_Context(batch, post.instrument, parameters[parameter_id], result), rows, limits,
                        open_alarms.get(parameter_id), post.pk, evaluated_until.get((batch_id, parameter_id)))
        moments = sorted({ts for rows in by_parameter.values() for ts, _ in rows})
        _data_gaps(batch, post, moments, result)
    latest = [(batch_id, parameter_id, rows[-1][0]) for batch_id, by_parameter in grouped.items()
              for parameter_id, rows in by_parameter.items()]
    if latest:
        with connection.cursor() as cursor:
            cursor.execute(EVALUATED_UNTIL_SQL, [post.instrument_id, *map(list, zip(*latest, strict=True))])
    ReadingPostEvaluation.objects.create(post=post)
    return result


# --- evaluations that never came (celery beat) ---------------------------------------------

# A post's evaluation normally runs within a second of its commit. Five minutes later it is
# overdue: its message was lost (a worker of an older release dropped a task it did not know,
# Redis lost data it had acknowledged, workers were down). Once a minute the watch looks two
# hours back, and further back from its mark (EvaluationWatchMark: every post before it is
# evaluated or set aside) after an outage, over a BRIN index on received_at, and moves the mark
# up to the first post it could not evaluate: a lost message is found within minutes however
# long ago it was lost.
EVALUATION_OVERDUE = timedelta(minutes=5)
EVALUATION_WATCH = timedelta(hours=2)
OVERDUE_PER_RUN = 200
WATCH_MARK = "alarm-evaluation"
WATCH_LOCK = 7260202  # advisory lock: one watch run at a time
OVERDUE_SQL = """
SELECT p.id, p.received_at FROM ebr_readingpost p
 WHERE p.received_at >= %s AND p.received_at < %s AND p.accepted > 0
   AND NOT EXISTS (SELECT 1 FROM ebr_readingpostevaluation e WHERE e.post_id = p.id)
   AND NOT EXISTS (SELECT 1 FROM ebr_evaluationfailure f WHERE f.post_id = p.id AND f.attempts >= %s)
 ORDER BY p.received_at, p.id
 LIMIT %s
"""
# A post whose evaluation failed this often is set aside: it no longer holds the watch's mark, so
# a few posts that fail for good (a defect, data the evaluation cannot take) cannot keep the watch
# from every newer lost post. It is tried again hourly, and holds back its batch's release.
SET_ASIDE_RETRY = timedelta(hours=1)
SET_ASIDE_PER_RUN = 20
SET_ASIDE_SQL = """
SELECT f.post_id FROM ebr_evaluationfailure f
 WHERE f.attempts >= %s AND f.last_failed_at < %s
   AND NOT EXISTS (SELECT 1 FROM ebr_readingpostevaluation e WHERE e.post_id = f.post_id)
 ORDER BY f.last_failed_at, f.post_id
 LIMIT %s
"""
FAILURE_SQL = """
INSERT INTO ebr_evaluationfailure (post_id, attempts, first_failed_at, last_failed_at, last_error)
SELECT p.id, 1, %s, %s, %s FROM ebr_readingpost p WHERE p.id = %s
ON CONFLICT (post_id) DO UPDATE SET attempts = ebr_evaluationfailure.attempts + 1,
    last_failed_at = excluded.last_failed_at, last_error = excluded.last_error
RETURNING attempts
"""


def alarms_evaluate_overdue(*, now: datetime | None = None) -> list[int]:
    """Evaluate the posts whose evaluation is overdue, oldest first; returns their ids.

    Every stored reading is evaluated against its limits (EU GMP Annex 11 §13 / Annex 15 §9:
    an excursion must not go unnoticed because background work was lost on its way); each late
    evaluation is an audit event. Evaluation is once per post, so a post whose message is merely
    late is not evaluated twice. A post that cannot be evaluated holds the mark: it is tried
    again every minute, and the run fails naming it; after EVALUATION_ATTEMPTS failures it is set
    aside (an audit event), tried hourly, and holds back its batch's release instead of the watch.
    """
    now = now or timezone.now()
    until = now - EVALUATION_OVERDUE
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [WATCH_LOCK])
        if not cursor.fetchone()[0]:
            log.warning("alarm evaluation watch: skipped, the previous run is still going")
            return []
    try:
        mark, _ = EvaluationWatchMark.objects.get_or_create(
            name=WATCH_MARK, defaults={"received_before": until - EVALUATION_WATCH})
        # Two hours back at least, whatever the mark says: a post is stamped when its request
        # arrives and may commit later (a wait on a batch lock), or on a web server whose clock
        # is behind the worker's; the mark reaches further back after an outage.
        since = min(mark.received_before, until - EVALUATION_WATCH)
        with connection.cursor() as cursor:
            cursor.execute(OVERDUE_SQL, [since, until, EVALUATION_ATTEMPTS, OVERDUE_PER_RUN])
            rows = cursor.fetchall()
            cursor.execute(SET_ASIDE_SQL, [EVALUATION_ATTEMPTS, now - SET_ASIDE_RETRY, SET_ASIDE_PER_RUN])
            set_aside = [row[0] for row in cursor.fetchall()]
        overdue = [post_id for post_id, _ in rows]
        if overdue:
            log.warning("alarm evaluation overdue for %d posts (their messages were lost or are late): %s",
                        len(overdue), overdue[:20])
        failures = []
        for posts in (overdue, set_aside):
            try:
                alarms_evaluate_each(posts, overdue_at=now)
            except AlarmEvaluationFailed as error:
                failures.append(str(error))
        _watch_mark_move(mark, rows, until)
        if failures:
            raise AlarmEvaluationFailed("; ".join(failures))
        return overdue + set_aside
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [WATCH_LOCK])
        except DatabaseError:  # the connection is gone, and the session's lock with it
            log.exception("alarm evaluation watch: could not release its lock")


def _watch_mark_move(mark: EvaluationWatchMark, rows: list[tuple[int, datetime]], until: datetime) -> None:
    """Up to the first post of this run left unevaluated; else past the run (a full one) or to `until`."""
    evaluated = set(ReadingPostEvaluation.objects.filter(post_id__in=[pk for pk, _ in rows])
                    .values_list("post_id", flat=True))
    left = next((received for pk, received in rows if pk not in evaluated), None)
    if len(rows) == OVERDUE_PER_RUN and not evaluated:
        log.error("alarm evaluation watch: none of the %d oldest overdue posts could be evaluated; newer overdue "
                  "posts wait until they are, or until they are set aside after %d attempts", len(rows),
                  EVALUATION_ATTEMPTS)
    if left is not None:
        moved = left
    elif len(rows) == OVERDUE_PER_RUN:
        moved = rows[-1][1]  # posts received at that same moment beyond the limit are found next run
    else:
        moved = until
    if moved > mark.received_before:
        mark.received_before = moved
        mark.save(update_fields=["received_before", "moved_at"])


class AlarmEvaluationFailed(Exception):
    """Posts that could not be evaluated; the others were."""


def alarms_evaluate_each(post_ids: list[int], *, overdue_at: datetime | None = None) -> list[Evaluation]:
    """Evaluate the posts in the order given, each in its own transaction (`alarms_evaluate`).

    A post that cannot be evaluated does not keep the posts after it from being evaluated: they
    are, and AlarmEvaluationFailed names it at the end. What would fail every post alike (the
    database unavailable, Celery's time limit) stops the run at once, for the caller to retry.
    """
    evaluations, failed = [], []
    for post_id in post_ids:
        try:
            evaluations.append(alarms_evaluate(post_id=post_id, overdue_at=overdue_at))
        except STOP_EVALUATING as error:
            if _post_at_fault(error):
                # A statement or time limit hit while the database answers: this post may hit it
                # every time, so it counts towards setting it aside, or it would hold the watch.
                log.exception("alarm evaluation of post %s stopped", post_id)
                _evaluation_failure_record(post_id, error)
            raise
        except Exception as error:
            log.exception("alarm evaluation of post %s failed", post_id)
            failed.append(post_id)
            _evaluation_failure_record(post_id, error)
    if failed:
        raise AlarmEvaluationFailed(f"alarm evaluation failed for posts {failed} (of {len(post_ids)})")
    return evaluations


def _post_at_fault(error: BaseException) -> bool:
    """Whether an error that stops a run may be the post's own doing (Celery's time limit, or a
    statement or lock timeout) rather than the database being away (then it answers no query)."""
    if isinstance(error, SoftTimeLimitExceeded):
        return True
    try:
        return connection.is_usable()
    except DatabaseError:
        return False


def _evaluation_failure_record(post_id: int, error: BaseException) -> None:
    """Count a failed evaluation of the post; at EVALUATION_ATTEMPTS it is set aside, an audit
    event (ALCOA+ complete: the record shows readings that were not evaluated, and why)."""
    now = timezone.now()
    text = f"{type(error).__name__}: {error}"[:2000]
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(FAILURE_SQL, [now, now, text, post_id])
            row = cursor.fetchone()  # None: no such post
            if row is not None and row[0] == EVALUATION_ATTEMPTS:
                attempts = row[0]
                post = ReadingPost.objects.get(pk=post_id)
                log.error("alarm evaluation of post %s failed %d times: set aside, tried again hourly", post_id,
                          attempts)
                record_event(actor=EVALUATOR, event=Event.ALARM_EVALUATION_FAILED, target=post,
                             reason=f"Alarm evaluation of post {post_id} failed {attempts} times; the readings are "
                                    "stored but not evaluated against their limits, and the batch cannot be "
                                    "released until they are. Tried again hourly.",
                             data={"error": text[:500], "received_at": post.received_at.isoformat()})
    except DatabaseError:  # the database itself failing: the evaluation's error is logged already
        log.exception("alarm evaluation failure of post %s not recorded", post_id)


# --- feed gaps in real time (celery beat) --------------------------------------------------

@transaction.atomic
def _feed_gap_check(use: EquipmentUse, instrument: Instrument, now: datetime) -> int:
    _lock(instrument.pk)
    last = (ReadingPost.objects.filter(instrument=instrument, accepted__gt=0).order_by("-received_at")
            .values_list("received_at", flat=True).first())
    since = max(moment for moment in (last, use.started_at, instrument.created_at) if moment is not None)
    if now - since <= settings.INSTRUMENT_FEED_GAP:
        return 0
    if Alarm.objects.filter(batch=use.batch, instrument=instrument, kind=AlarmKind.FEED_GAP,
                            closed_at__isnull=True).exists():
        return 0
    _gap_raise(use.batch, instrument, since, None, f"No data received from {instrument.name} since {since:%H:%M} UTC")
    return 1


@transaction.atomic
def _feed_gap_end(alarm: Alarm, now: datetime, why: str) -> None:
    _lock(alarm.instrument_id)
    alarm = Alarm.objects.select_for_update().get(pk=alarm.pk)
    if alarm.closed_at is None:
        alarm.closed_at = max(now, alarm.opened_at)
        save_with_reason(alarm, actor=EVALUATOR, reason=why, event=Event.ALARM_CLEARED, update_fields=["closed_at"])


def feed_gaps_check(*, now: datetime | None = None) -> int:
    """Raise a feed-gap alarm for every active instrument whose equipment is assigned to a running
    batch and that sent nothing for longer than INSTRUMENT_FEED_GAP; close those that no longer
    watch a running batch. Returns how many alarms it raised. Safe to run at any time, twice."""
    now = now or timezone.now()
    for alarm in Alarm.objects.filter(kind=AlarmKind.FEED_GAP, closed_at__isnull=True).select_related(
            "batch", "instrument"):
        assigned = EquipmentUse.objects.filter(batch=alarm.batch, equipment_id=alarm.instrument.equipment_id,
                                               ended_at__isnull=True).exists()
        if alarm.instrument.revoked_at is not None:
            _feed_gap_end(alarm, now, "Instrument revoked")
        elif not assigned or alarm.batch.status != BatchStatus.IN_PROGRESS:
            _feed_gap_end(alarm, now, "Equipment no longer assigned to a running batch")
    raised = 0
    uses = EquipmentUse.objects.filter(ended_at__isnull=True, batch__status=BatchStatus.IN_PROGRESS).select_related(
        "batch", "equipment")
    for use in uses:
        for instrument in Instrument.objects.filter(equipment=use.equipment, revoked_at__isnull=True):
            raised += _feed_gap_check(use, instrument, now)
    return raised


# --- acknowledgement ------------------------------------------------------------------------

@transaction.atomic
def alarm_acknowledge(*, actor: User, alarm: Alarm, comment: str, password: str, username: str | None = None,
                      session: SessionBase | None = None, request: HttpRequest | None = None) -> Alarm:
    """A supervisor acknowledges an alarm: a comment (what was checked or done) and an
    e-signature with the meaning "acknowledged" (21 CFR 11.50, 11.70, 11.200; EU GMP Annex 11 §14).
    Acknowledging does not close an excursion; the data does."""
    if not can(actor, Capability.BATCH_MANAGE):
        raise PermissionDenied("Only a supervisor may acknowledge alarms.")
    comment = (comment or "").strip()
    if not comment:
        raise ValidationError({"comment": "Say what was checked or done about the alarm."})
    alarm = (Alarm.objects.select_for_update(of=("self",)).select_related("batch", "instrument", "parameter")
             .get(pk=alarm.pk))
    if alarm.acknowledged_at is not None:
        raise ValidationError("This alarm is already acknowledged.")
    with connection.cursor() as cursor:
        # Shared with instrument posts, exclusive of a release: no acknowledgement after the decision.
        cursor.execute("SELECT status FROM ebr_batch WHERE id = %s FOR SHARE", [alarm.batch_id])
        alarm.batch.status = cursor.fetchone()[0]
    if alarm.batch.status in BATCH_CLOSED:
        raise ValidationError(f"Batch {alarm.batch.number} is {alarm.batch.get_status_display().lower()}: its record "
                              "is closed, and its alarms can no longer be acknowledged.")
    signature = sign(signer=actor, password=password, meaning=Meaning.ACKNOWLEDGED, target=alarm, reason=comment,
                     username=username, session=session, request=request)
    alarm.acknowledged_by, alarm.acknowledged_at = actor, timezone.now()
    alarm.acknowledgement_comment, alarm.signature = comment, signature
    save_with_reason(alarm, actor=actor, reason=comment, event=Event.ALARM_ACKNOWLEDGED, update_fields=ACK_FIELDS,
                     data={"signature": signature.pk})
    return alarm
