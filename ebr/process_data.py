"""Reads of process data shared by the API, the batch page and alarm evaluation.

Which limits apply, the readings and their per-bucket summaries, downsampled series for the
charts and the alarms: one structure each, so that the screen, the API and the alarm logic can
never disagree about a value or a limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Q

from ebr.models import (
    Alarm,
    Batch,
    Instrument,
    InstrumentLimit,
    InstrumentParameter,
    Reading,
    StepExecution,
)
from ebr.models.master import range_text
from ebr.units import unit_display
from qms.prepared import prepared_cursor

BUCKET_ORIGIN = datetime.fromisoformat("2000-01-01T00:00:00+00:00")


# --- limits ---------------------------------------------------------------------------------

def _number(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _range_text(low: float | None, high: float | None) -> str:
    def exact(value: float | None) -> Decimal | None:
        return None if value is None else Decimal(repr(value))

    return range_text(exact(low), exact(high)) or "none"


@dataclass(frozen=True)
class Limits:
    """The alert and action limits of one parameter as the master record sets them."""

    parameter: str
    unit: str
    alert_low: float | None
    alert_high: float | None
    action_low: float | None
    action_high: float | None
    critical: bool
    step_id: int | None  # the StepExecution running when they applied, None for the fallback

    @classmethod
    def of(cls, limit: InstrumentLimit, unit: str, step_id: int | None) -> Limits:
        return cls(limit.parameter, unit, _number(limit.alert_low), _number(limit.alert_high),
                   _number(limit.action_low), _number(limit.action_high), limit.critical, step_id)

    def level(self, value: float) -> str | None:
        """"action" outside the action limits, "alert" outside the alert limits, else None."""
        if (self.action_low is not None and value < self.action_low) or (
                self.action_high is not None and value > self.action_high):
            return "action"
        if (self.alert_low is not None and value < self.alert_low) or (
                self.alert_high is not None and value > self.alert_high):
            return "alert"
        return None

    def excess(self, value: float) -> float:
        """How far `value` lies outside the alert range (0 inside): ranks the worst value."""
        low = self.alert_low if self.alert_low is not None else self.action_low
        high = self.alert_high if self.alert_high is not None else self.action_high
        return max(0.0, (low - value) if low is not None else 0.0, (value - high) if high is not None else 0.0)

    @property
    def text(self) -> str:
        """'alert 6.9–7.5, action 6.8–7.6 pH', as people read it (the alarm's limit text)."""
        return self._text(unit_display(self.unit))

    @property
    def text_stored(self) -> str:
        """The same with the UCUM code: the record fingerprint's form (ebr/pdf/content.py)."""
        return self._text(self.unit)

    def _text(self, unit: str) -> str:
        unit = f" {unit}" if unit else ""
        return (f"alert {_range_text(self.alert_low, self.alert_high)}, "
                f"action {_range_text(self.action_low, self.action_high)}{unit}")


@dataclass
class _Window:
    step_id: int
    opened_at: datetime
    ended_at: datetime | None
    limits: dict[str, InstrumentLimit]


class BatchLimits:
    """Limits of a batch at any moment (EU GMP Annex 15 §9: the approved process ranges).

    The limits of the step running at `ts` (StepExecution opened_at up to performed_at) apply.
    When no running step sets limits for the parameter (the bioreactor runs across several
    steps, or data arrives before the step is opened in the record), the master version's own
    limits for it apply: those of a step made for this type of equipment first, else the
    first step in process order that sets them.
    """

    def __init__(self, batch: Batch, equipment_type: str = "") -> None:
        self.units = dict(InstrumentParameter.objects.values_list("code", "unit"))
        steps = (StepExecution.objects.filter(batch=batch, opened_at__isnull=False,
                                              template__instrument_limits__isnull=False)
                 .distinct().select_related("template").prefetch_related("template__instrument_limits"))
        self.windows = [_Window(step.pk, step.opened_at, step.performed_at,  # type: ignore[arg-type]
                                {lim.parameter: lim for lim in step.template.instrument_limits.all()})
                        for step in steps]
        self.fallback: dict[str, InstrumentLimit] = {}
        ordered = (InstrumentLimit.objects.filter(step__stage__version_id=batch.master_version_id)
                   .select_related("step").order_by("step__stage__order", "step__order"))
        for limit in sorted(ordered, key=lambda lim: lim.step.equipment_type != equipment_type):
            self.fallback.setdefault(limit.parameter, limit)

    def at(self, parameter: str, ts: datetime) -> Limits | None:
        unit = self.units.get(parameter, "")
        for window in self.windows:
            if window.opened_at <= ts and (window.ended_at is None or ts < window.ended_at) \
                    and parameter in window.limits:
                return Limits.of(window.limits[parameter], unit, window.step_id)
        limit = self.fallback.get(parameter)
        return Limits.of(limit, unit, None) if limit is not None else None


# How far in the future (by the server's clock) a reading's time may lie when it is received.
READINGS_FUTURE_TOLERANCE = timedelta(minutes=5)
# A post whose alarm evaluation failed this often is set aside by the overdue watch (ebr.services.alarms).
EVALUATION_ATTEMPTS = 5


# --- alarms ---------------------------------------------------------------------------------

def alarm_json(alarm: Alarm) -> dict[str, Any]:
    """An alarm as the API gives it (the batch page renders the same fields)."""
    return {
        "id": alarm.pk, "batch": alarm.batch.number, "instrument": alarm.instrument.name,
        "parameter": alarm.parameter.code if alarm.parameter is not None else None, "kind": alarm.kind,
        "critical": alarm.critical, "opened_at": rfc3339(alarm.opened_at),
        "closed_at": rfc3339(alarm.closed_at) if alarm.closed_at else None, "worst_value": alarm.worst_value,
        "limit": alarm.limit_text, "acknowledged": alarm.acknowledged, "deviation": alarm.deviation_number or None,
    }


OPEN_ALARMS_SQL = """
SELECT a.id, b.number, i.name, p.code, a.kind, a.critical, a.opened_at, a.closed_at, a.worst_value, a.limit_text,
       a.acknowledged_at IS NOT NULL, a.deviation_number
  FROM ebr_alarm a JOIN ebr_batch b ON b.id = a.batch_id JOIN ebr_instrument i ON i.id = a.instrument_id
  LEFT JOIN ebr_instrumentparameter p ON p.id = a.parameter_id
 WHERE a.batch_id = ANY(%(batches)s::bigint[])
   AND (a.parameter_id = ANY(%(parameters)s::bigint[]) OR (a.kind = 'feed_gap' AND a.instrument_id = %(instrument)s))
   AND (a.closed_at IS NULL OR a.id = ANY(%(changed)s::bigint[]))
 ORDER BY a.opened_at, a.id
"""


def alarms_open(*, batch_ids: list[int], parameter_ids: list[int], instrument: Instrument,
                changed: set[int] | frozenset[int] = frozenset()) -> list[dict[str, Any]]:
    """Open alarms on these batches for these parameters, and the instrument's open feed gaps, as
    `alarm_json` gives them (one plain query: it runs on every post); and the alarms in `changed`,
    those the post's readings raised, escalated, worsened or closed, open or not."""
    with prepared_cursor() as cursor:
        cursor.execute(OPEN_ALARMS_SQL, {"batches": batch_ids, "parameters": parameter_ids,
                                         "instrument": instrument.pk, "changed": sorted(changed)}, prepare=True)
        rows = cursor.fetchall()
    return [{"id": pk, "batch": number, "instrument": name, "parameter": code, "kind": kind, "critical": critical,
             "opened_at": rfc3339(opened_at), "closed_at": rfc3339(closed_at) if closed_at else None,
             "worst_value": worst, "limit": limit, "acknowledged": acknowledged, "deviation": deviation or None}
            for pk, number, name, code, kind, critical, opened_at, closed_at, worst, limit, acknowledged, deviation
            in rows]


def alarms_for_batch(batch: Batch) -> list[Alarm]:
    return list(Alarm.objects.filter(batch=batch)
                .select_related("batch", "instrument", "parameter", "acknowledged_by")
                .order_by("-opened_at", "-id"))


# --- readings and buckets --------------------------------------------------------------------

def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class ReadingsFilter:
    batch: Batch
    parameter: InstrumentParameter | None = None
    start: datetime | None = None
    end: datetime | None = None
    instrument: Instrument | None = None


@dataclass
class Page:
    count: int
    results: list[dict[str, Any]]
    next_cursor: tuple[Any, ...] | None = None


def _readings(where: ReadingsFilter) -> Any:
    readings = Reading.objects.filter(batch=where.batch)
    if where.parameter is not None:
        readings = readings.filter(parameter=where.parameter)
    if where.instrument is not None:
        readings = readings.filter(instrument=where.instrument)
    if where.start is not None:
        readings = readings.filter(ts__gte=where.start)
    if where.end is not None:
        readings = readings.filter(ts__lt=where.end)
    return readings


def readings_page(where: ReadingsFilter, *, after: tuple[datetime, int] | None, limit: int) -> Page:
    """Readings ordered by ts (then id), keyset-paginated: `after` is the last (ts, id) seen."""
    readings = _readings(where)
    count = readings.count()
    if after is not None:
        readings = readings.filter(Q(ts__gt=after[0]) | Q(ts=after[0], id__gt=after[1]))
    rows = list(readings.order_by("ts", "id").values_list(
        "id", "seq", "ts", "parameter__code", "value", "unit", "instrument__name")[:limit + 1])
    results = [{"seq": seq, "ts": rfc3339(ts), "parameter": code, "value": value, "unit": unit,
                "instrument": name} for _, seq, ts, code, value, unit, name in rows[:limit]]
    more = len(rows) > limit
    return Page(count, results, (rows[limit - 1][2], rows[limit - 1][0]) if more else None)


def _bucket_sql(where: ReadingsFilter, after: datetime | None) -> tuple[str, list[Any]]:
    assert where.parameter is not None
    clauses: list[str] = ["batch_id = %s", "parameter_id = %s"]
    params: list[Any] = [where.batch.pk, where.parameter.pk]
    for clause, value in (("instrument_id = %s", where.instrument.pk if where.instrument else None),
                          ("ts >= %s", where.start), ("ts < %s", where.end), ("ts >= %s", after)):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    return " AND ".join(clauses), params


def reading_buckets(where: ReadingsFilter, *, seconds: int, after: datetime | None, limit: int,
                    origin: datetime = BUCKET_ORIGIN) -> Page:
    """min/mean/max/n per time bucket of `seconds` (PostgreSQL date_bin), ordered by start."""
    interval: Any = timedelta(seconds=seconds)
    where_sql, params = _bucket_sql(where, None)
    page_sql, page_params = _bucket_sql(where, after + interval if after else None)
    bucket = "date_bin(%s, ts, %s)"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(DISTINCT {bucket}) FROM ebr_reading WHERE {where_sql}",  # noqa: S608
                       [interval, origin, *params])
        count = cursor.fetchone()[0]
        cursor.execute(f"SELECT {bucket} AS start, min(value), avg(value), max(value), count(*) "  # noqa: S608
                       f"FROM ebr_reading WHERE {page_sql} GROUP BY 1 ORDER BY 1 LIMIT %s",
                       [interval, origin, *page_params, limit + 1])
        rows = cursor.fetchall()
    results = [{"start": rfc3339(start), "min": low, "mean": mean, "max": high, "n": n}
               for start, low, mean, high, n in rows[:limit]]
    return Page(count, results, (rows[limit - 1][0],) if len(rows) > limit else None)


# --- series for the batch page ----------------------------------------------------------------

@dataclass(frozen=True)
class Bucket:
    start: datetime
    low: float
    mean: float
    high: float
    n: int


@dataclass
class Series:
    """One parameter's data over the batch, downsampled, with its limits and alarms."""

    parameter: InstrumentParameter
    buckets: list[Bucket]
    limits: Limits | None
    alarms: list[Alarm] = field(default_factory=list)

    @property
    def last(self) -> Bucket | None:
        return self.buckets[-1] if self.buckets else None


@dataclass
class ProcessData:
    batch: Batch
    start: datetime | None
    end: datetime | None
    bucket_seconds: int
    series: list[Series]
    alarms: list[Alarm]


def process_data(batch: Batch, *, points: int = 240, now: datetime | None = None) -> ProcessData:
    """Every parameter recorded for the batch, on one common time axis, about `points` buckets each."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT parameter_id, min(ts), max(ts) FROM ebr_reading WHERE batch_id = %s "
                       "GROUP BY parameter_id", [batch.pk])
        spans = {pk: (low, high) for pk, low, high in cursor.fetchall()}
    alarms = alarms_for_batch(batch)
    if not spans:
        return ProcessData(batch, None, None, 0, [], alarms)
    start = min(low for low, _ in spans.values())
    end = max(high for _, high in spans.values())
    seconds = max(1, math.ceil((end - start).total_seconds() / max(points, 1)))
    parameters = InstrumentParameter.objects.in_bulk(list(spans))
    equipment_type = (Instrument.objects.filter(equipment__uses__batch=batch)
                      .values_list("equipment__equipment_type", flat=True).first() or "")
    limits = BatchLimits(batch, equipment_type)
    moment = now or end
    series = []
    for pk in sorted(spans, key=lambda key: parameters[key].code):
        parameter = parameters[pk]
        page = reading_buckets(ReadingsFilter(batch=batch, parameter=parameter), seconds=seconds, after=None,
                               limit=points + 2, origin=start)
        buckets = [Bucket(datetime.fromisoformat(row["start"]), row["min"], row["mean"], row["max"], row["n"])
                   for row in page.results]
        series.append(Series(parameter, buckets, limits.at(parameter.code, min(moment, end)),
                             [alarm for alarm in alarms if alarm.parameter_id == pk]))
    return ProcessData(batch, start, end, seconds, series, alarms)


def readings_orphaned(limit: int = 10) -> list[int]:
    """Ids of readings whose batch, instrument, parameter or original post does not exist.

    Always empty by construction (see Reading): the proof for an inspector, or after a restore,
    that the readings table needs no database foreign keys to stay consistent. A full scan.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT r.id FROM ebr_reading r "
            "LEFT JOIN ebr_batch b ON b.id = r.batch_id LEFT JOIN ebr_instrument i ON i.id = r.instrument_id "
            "LEFT JOIN ebr_instrumentparameter p ON p.id = r.parameter_id "
            "LEFT JOIN ebr_readingpost o ON o.id = r.post_id "
            "WHERE b.id IS NULL OR i.id IS NULL OR p.id IS NULL OR o.id IS NULL ORDER BY r.id LIMIT %s", [limit])
        return [row[0] for row in cursor.fetchall()]


# --- readings that arrived late -------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LateReadings:
    """Readings of one post stored for a batch after a given moment (an instrument's buffer, sent later)."""

    instrument: str
    post_id: int
    received_at: datetime
    count: int
    first_ts: datetime
    last_ts: datetime


LATE_READINGS_SQL = """
SELECT i.name, p.id, p.received_at, count(r.id), min(r.ts), max(r.ts)
  FROM ebr_readingpost p
  JOIN ebr_instrument i ON i.id = p.instrument_id
  JOIN ebr_reading r ON r.post_id = p.id AND r.batch_id = %(batch)s AND r.ts BETWEEN p.first_ts AND p.last_ts
 WHERE i.equipment_id IN (SELECT equipment_id FROM ebr_equipmentuse WHERE batch_id = %(batch)s)
   AND p.received_at > %(after)s AND p.accepted > 0
 GROUP BY i.name, p.id, p.received_at
 ORDER BY p.received_at, p.id
"""
# Starts from the few posts of the batch's instruments received after the moment (index on
# (instrument, received_at)), not from the batch's readings, which may be millions.


def readings_received_after(batch: Batch, moment: datetime) -> list[LateReadings]:
    """Readings stored for `batch` by posts received after `moment` (e.g. its completion)."""
    with connection.cursor() as cursor:
        cursor.execute(LATE_READINGS_SQL, {"batch": batch.pk, "after": moment})
        return [LateReadings(*row) for row in cursor.fetchall()]


# --- what release waits for -------------------------------------------------------------------

AWAITING_EVALUATION_SQL = """
WITH unevaluated AS (
    SELECT p.id FROM ebr_readingpost p
     WHERE p.instrument_id IN (SELECT i.id FROM ebr_instrument i
                                 JOIN ebr_equipmentuse u ON u.equipment_id = i.equipment_id
                                WHERE u.batch_id = %(batch)s)
       AND p.received_at >= (SELECT min(u.started_at) FROM ebr_equipmentuse u WHERE u.batch_id = %(batch)s)
                            - %(future)s
       AND p.received_at <= (SELECT CASE WHEN bool_or(u.ended_at IS NULL) THEN 'infinity'::timestamptz
                                         ELSE max(u.ended_at) + %(max_age_ceiling)s END
                               FROM ebr_equipmentuse u WHERE u.batch_id = %(batch)s)
       AND p.accepted > 0
       AND NOT EXISTS (SELECT 1 FROM ebr_readingpostevaluation e WHERE e.post_id = p.id)
    UNION
    SELECT f.post_id FROM ebr_evaluationfailure f
     WHERE NOT EXISTS (SELECT 1 FROM ebr_readingpostevaluation e WHERE e.post_id = f.post_id)
)
SELECT count(*), count(f.post_id), (array_agg(f.last_error ORDER BY f.last_failed_at DESC)
                                    FILTER (WHERE f.post_id IS NOT NULL))[1]
  FROM unevaluated w
  JOIN ebr_readingpost p ON p.id = w.id
  LEFT JOIN ebr_evaluationfailure f ON f.post_id = p.id AND f.attempts >= %(attempts)s
 WHERE EXISTS (SELECT 1 FROM ebr_reading r
                WHERE r.post_id = p.id AND r.batch_id = %(batch)s
                  AND r.ts BETWEEN coalesce(p.first_ts, '-infinity') AND coalesce(p.last_ts, 'infinity'))
"""
# From the batch's instruments' posts received while its readings could come (index on
# (instrument, received_at)): a post is stamped on receipt, and its readings may lie up to the
# accepted future tolerance after that; once every assignment ended, no reading older than
# INSTRUMENT_MAX_AGE is accepted. The bound uses that setting's ceiling, not its value: the
# setting may be lowered after posts were accepted, and an assignment may be ended before the
# last readings of its time came in. Posts whose evaluation failed are few and counted
# wherever they were received. Readings have no index on post_id: the post's ts range lets the
# BRIN index on ts (and the batch's B-tree) find them.


@dataclass(frozen=True)
class EvaluationWaiting:
    """The batch's instrument posts not yet evaluated against the alarm limits."""

    posts: int
    set_aside: int  # of them, evaluation failed EVALUATION_ATTEMPTS times: tried hourly
    last_error: str | None


def evaluation_waiting(batch: Batch) -> EvaluationWaiting:
    """The instrument posts with readings of `batch` not evaluated against the alarm limits yet
    (normally none a few seconds after a post; the overdue watch catches up within minutes), and
    how many of them the watch set aside after repeated failures."""
    parameters: dict[str, Any] = {"batch": batch.pk, "future": READINGS_FUTURE_TOLERANCE,
                                  "max_age_ceiling": settings.INSTRUMENT_MAX_AGE_CEILING,
                                  "attempts": EVALUATION_ATTEMPTS}  # intervals as timedelta (psycopg adapts them)
    with connection.cursor() as cursor:
        cursor.execute(AWAITING_EVALUATION_SQL, parameters)
        posts, set_aside, last_error = cursor.fetchone()
    return EvaluationWaiting(posts, set_aside, last_error)


def posts_awaiting_evaluation(batch: Batch) -> int:
    """How many instrument posts with readings of `batch` have not been evaluated yet."""
    return evaluation_waiting(batch).posts


def alarm_changes_recorded(batch: Batch) -> int:
    """How many changes to the batch's alarms (raised, escalated, worsened, closed, acknowledged)
    are recorded in their history, which is append-only. For audit-trail reviews signed before
    the review recorded the whole trail (ebr.services.release.audit_trail_marker), which holds
    every alarm change: each writes its audit event with its history row."""
    return Alarm.history.filter(batch_id=batch.pk).count()


def alarms_changed_since(batch: Batch, moment: datetime) -> int:
    """How many changes to the batch's alarms were recorded after `moment` (their history, server
    time). For reviews signed before the review recorded the count (alarm_changes_recorded)."""
    return Alarm.history.filter(batch_id=batch.pk, history_date__gt=moment).count()


def alarms_unacknowledged(batch: Batch) -> list[Alarm]:
    """The batch's alarms no supervisor has acknowledged yet, oldest first."""
    return list(Alarm.objects.filter(batch=batch, acknowledged_at__isnull=True)
                .select_related("parameter", "instrument").order_by("opened_at", "id"))
