"""Process data in the PDF record: one chart per instrument parameter, with its limits drawn.

The series, their limits and alarms come from `ebr.process_data.process_data()`, the structure
the batch page plots, so the screen and the record cannot disagree about a value or a limit
(readings are reduced to about 240 min/mean/max buckets per parameter by PostgreSQL; a batch of
50,000 readings never comes into Python row by row). The readings' full content enters the
record fingerprint through a SHA-256 the database computes over every reading in (instrument,
seq) order (EU GMP Annex 15 §9 monitored parameters; Annex 11 §5 and ALCOA+ complete).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.utils import timezone
from reportlab.lib.colors import Color
from reportlab.platypus import Flowable

from ebr.models import Alarm, Batch
from ebr.pdf.fonts import BODY, BOLD, text_width
from ebr.process_data import Series
from ebr.process_data import process_data as process_data_select
from ebr.units import unit_display
from qms.signatures import format_local

DIGEST_SQL = """
SELECT count(*),
       coalesce(encode(sha256(convert_to(string_agg(
           concat_ws('|', r.instrument_id, r.seq, to_char(r.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
                     p.code, r.value::text, r.unit),
           E'\\n' ORDER BY r.instrument_id, r.seq), 'UTF8')), 'hex'), '')
  FROM ebr_reading r JOIN ebr_instrumentparameter p ON p.id = r.parameter_id
 WHERE r.batch_id = %s
"""


@dataclass(frozen=True)
class ProcessRecord:
    series: list[Series]
    readings: int
    digest: str


def alarm_text(alarm: Alarm) -> str:
    closed = format_local(alarm.closed_at) if alarm.closed_at else "still open"
    who, when = alarm.acknowledged_by, alarm.acknowledged_at
    acknowledged = f"acknowledged by {who.full_name} {format_local(when)}" if who and when else "not acknowledged"
    worst = f", worst {alarm.worst_value:g}" if alarm.worst_value is not None else ""
    deviation = f", deviation {alarm.deviation_number}" if alarm.deviation_number else ""
    return (f"{alarm.get_kind_display()}{' (critical)' if alarm.critical else ''} {format_local(alarm.opened_at)} → "
            f"{closed} ({alarm.limit_text_display}{worst}); {acknowledged}{deviation}")


def process_record(batch: Batch) -> ProcessRecord:
    """The batch page's series (buckets, limits, alarms) and the digest of every reading."""
    data = process_data_select(batch)
    with connection.cursor() as cursor:
        cursor.execute(DIGEST_SQL, [batch.pk])
        total, digest = cursor.fetchone()
    return ProcessRecord(series=data.series, readings=int(total), digest=digest)


# --- drawing ------------------------------------------------------------------------------------

LINE = Color(0.12, 0.27, 0.5)
BAND = Color(0.75, 0.82, 0.93)
ALERT = Color(0.85, 0.55, 0.0)
ACTION = Color(0.8, 0.1, 0.1)
AXIS = Color(0.35, 0.35, 0.4)
GRID = Color(0.88, 0.88, 0.9)


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


class ProcessChart(Flowable):
    """Min–max band and mean line of one parameter; alert limits amber, action limits red, dashed."""

    def __init__(self, series: Series, width: float, height: float = 150.0) -> None:
        super().__init__()
        self.series = series
        self.width = width
        self.height = height

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:
        return self.width, self.height

    def _limit_values(self) -> list[tuple[float, Color, tuple[int, int]]]:
        limits = self.series.limits
        if limits is None:
            return []
        return [(value, colour, dash) for value, colour, dash in (
            (limits.alert_low, ALERT, (3, 2)), (limits.alert_high, ALERT, (3, 2)),
            (limits.action_low, ACTION, (6, 2)), (limits.action_high, ACTION, (6, 2))) if value is not None]

    def _y_range(self) -> tuple[float, float]:
        values = [v for b in self.series.buckets for v in (b.low, b.high)]
        values += [value for value, _, _ in self._limit_values()]
        low, high = min(values), max(values)
        pad = (high - low) * 0.08 or abs(high) * 0.1 or 1.0
        return low - pad, high + pad

    def draw(self) -> None:
        canvas = self.canv
        buckets = self.series.buckets
        if not buckets:
            return
        left, bottom, right, top = 42.0, 22.0, self.width - 8.0, self.height - 6.0
        t0, t1 = buckets[0].start.timestamp(), buckets[-1].start.timestamp()
        t1 = t1 if t1 > t0 else t0 + 1.0
        v0, v1 = self._y_range()

        def x(t: float) -> float:
            return left + (min(max(t, t0), t1) - t0) / (t1 - t0) * (right - left)

        def y(v: float) -> float:
            return bottom + (v - v0) / (v1 - v0) * (top - bottom)

        self._axes(canvas, x, y, (t0, t1), (v0, v1), (left, right))
        self._band_and_mean(canvas, x, y)
        canvas.setLineWidth(0.8)
        for value, colour, dash in self._limit_values():
            canvas.setStrokeColor(colour)
            canvas.setDash(*dash)
            canvas.line(left, y(value), right, y(value))
        canvas.setDash()
        canvas.setStrokeColor(AXIS)
        canvas.setLineWidth(0.6)
        canvas.rect(left, bottom, right - left, top - bottom, stroke=1, fill=0)
        canvas.saveState()
        canvas.translate(9, (top + bottom) / 2)
        canvas.rotate(90)
        canvas.setFont(BOLD, 6.5)
        canvas.setFillColor(AXIS)
        code, shown = self.series.parameter.code, unit_display(self.series.parameter.unit)
        canvas.drawCentredString(0, 0, f"{code} ({shown})" if shown else code)
        canvas.restoreState()

    def _axes(self, canvas: Any, x: Any, y: Any, times: tuple[float, float], values: tuple[float, float],
              edges: tuple[float, float]) -> None:
        (t0, t1), (v0, v1), (left, right) = times, values, edges
        canvas.setFont(BODY, 6.5)
        canvas.setLineWidth(0.4)
        for tick in _nice_ticks(v0, v1):
            canvas.setStrokeColor(GRID)
            canvas.line(left, y(tick), right, y(tick))
            canvas.setFillColor(AXIS)
            label = f"{tick:g}"
            canvas.drawString(left - 3 - text_width(label, BODY, 6.5), y(tick) - 2.2, label)
        zone = timezone.get_current_timezone()
        for index in range(5):
            moment = t0 + (t1 - t0) * index / 4
            text = f"{datetime.fromtimestamp(moment, tz=zone):%d %b %H:%M}"
            width = text_width(text, BODY, 6.5)
            canvas.drawString(min(max(x(moment) - width / 2, left - 10), right - width), 12, text)

    def _band_and_mean(self, canvas: Any, x: Any, y: Any) -> None:
        buckets = self.series.buckets
        path = canvas.beginPath()
        path.moveTo(x(buckets[0].start.timestamp()), y(buckets[0].high))
        for bucket in buckets[1:]:
            path.lineTo(x(bucket.start.timestamp()), y(bucket.high))
        for bucket in reversed(buckets):
            path.lineTo(x(bucket.start.timestamp()), y(bucket.low))
        path.close()
        canvas.setFillColor(BAND)
        canvas.setStrokeColor(BAND)
        canvas.drawPath(path, stroke=1, fill=1)
        mean = canvas.beginPath()
        mean.moveTo(x(buckets[0].start.timestamp()), y(buckets[0].mean))
        for bucket in buckets[1:]:
            mean.lineTo(x(bucket.start.timestamp()), y(bucket.mean))
        canvas.setStrokeColor(LINE)
        canvas.setLineWidth(0.8)
        canvas.drawPath(mean, stroke=1, fill=0)
