"""Inline SVG geometry for the process-data charts: pure Python, no JavaScript, no library.

`chart_for(series, start, end)` turns one downsampled series into coordinates the template
draws: the mean as a line, the min-max envelope as an area, alert and action limits as bands,
alarm periods as marked spans, and axes with readable ticks. The page's CSP forbids inline
scripts and styles; SVG presentation attributes are neither, so the charts render everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise

from django.utils import timezone

from ebr.models import Alarm
from ebr.process_data import Bucket, Limits, Series
from ebr.units import unit_display

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 14, 30
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
ALARM_COLOURS = {"alert": "#f0a202", "action": "#c62828", "feed_gap": "#6b7785"}


@dataclass(frozen=True)
class Band:
    y: float
    height: float
    fill: str
    label: str


@dataclass(frozen=True)
class Line:
    y: float
    stroke: str
    label: str


@dataclass(frozen=True)
class Span:
    x: float
    width: float
    fill: str
    label: str


@dataclass(frozen=True)
class Tick:
    position: float
    label: str
    anchor: str = "middle"


@dataclass
class Chart:
    code: str
    title: str
    unit: str
    last_value: str
    segments: list[str] = field(default_factory=list)  # polyline points of the mean, one per run of data
    envelopes: list[str] = field(default_factory=list)  # polygon points of min..max
    dots: list[tuple[float, float]] = field(default_factory=list)  # sampled values (hourly counts)
    bands: list[Band] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    limits_text: str = ""
    width: int = WIDTH
    height: int = HEIGHT
    plot_left: int = LEFT
    plot_top: int = TOP
    plot_width: int = PLOT_W
    plot_height: int = PLOT_H
    plot_bottom: int = TOP + PLOT_H
    plot_right: int = LEFT + PLOT_W


def _nice_step(span: float, count: int = 5) -> float:
    raw = span / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


def _limit_values(limits: Limits | None) -> list[float]:
    if limits is None:
        return []
    return [v for v in (limits.alert_low, limits.alert_high, limits.action_low, limits.action_high) if v is not None]


def _y_range(buckets: list[Bucket], limits: Limits | None) -> tuple[float, float]:
    values = [b.low for b in buckets] + [b.high for b in buckets] + _limit_values(limits)
    low, high = min(values), max(values)
    if math.isclose(low, high):
        low, high = low - (abs(low) * 0.05 or 1), high + (abs(high) * 0.05 or 1)
    pad = (high - low) * 0.08
    return low - pad, high + pad


class _Scale:
    def __init__(self, start: datetime, end: datetime, low: float, high: float) -> None:
        self.start, self.seconds = start, max((end - start).total_seconds(), 1.0)
        self.low, self.high = low, high

    def x(self, moment: datetime) -> float:
        fraction = (moment - self.start).total_seconds() / self.seconds
        return round(LEFT + min(max(fraction, 0.0), 1.0) * PLOT_W, 1)

    def y(self, value: float) -> float:
        fraction = (value - self.low) / (self.high - self.low)
        return round(TOP + PLOT_H - min(max(fraction, 0.0), 1.0) * PLOT_H, 1)


def _spacing(buckets: list[Bucket], step: timedelta) -> timedelta:
    """The series' usual distance between values: one bucket for probes, an hour for samples."""
    distances = sorted(later.start - earlier.start for earlier, later in pairwise(buckets))
    return max(distances[len(distances) // 2], step) if distances else step


def _runs(buckets: list[Bucket], spacing: timedelta) -> list[list[Bucket]]:
    """Consecutive values; a hole of more than twice the usual spacing starts a new run, so that no
    line is drawn across a time without data."""
    runs: list[list[Bucket]] = []
    for bucket in buckets:
        if runs and bucket.start - runs[-1][-1].start <= 2 * spacing:
            runs[-1].append(bucket)
        else:
            runs.append([bucket])
    return runs


def _band(scale: _Scale, low: float | None, high: float | None, fill: str, label: str) -> Band:
    top = scale.y(high) if high is not None else TOP
    bottom = scale.y(low) if low is not None else TOP + PLOT_H
    return Band(top, round(bottom - top, 1), fill, label)


def _limits(chart: Chart, scale: _Scale, limits: Limits) -> None:
    chart.limits_text = limits.text
    if limits.action_low is not None or limits.action_high is not None:
        chart.bands.append(_band(scale, limits.action_low, limits.action_high, "#fdf1dc", "within action limits"))
    if limits.alert_low is not None or limits.alert_high is not None:
        chart.bands.append(_band(scale, limits.alert_low, limits.alert_high, "#e3f3e6", "within alert limits"))
    for value, colour, name in ((limits.action_low, "#c62828", "action low"), (limits.action_high, "#c62828",
                                "action high"), (limits.alert_low, "#f0a202", "alert low"),
                                (limits.alert_high, "#f0a202", "alert high")):
        if value is not None:
            chart.lines.append(Line(scale.y(value), colour, f"{name} {value:g}"))


def _ticks(chart: Chart, scale: _Scale, start: datetime, end: datetime) -> None:
    step = _nice_step(scale.high - scale.low)
    value = math.ceil(scale.low / step) * step
    while value <= scale.high:
        chart.y_ticks.append(Tick(scale.y(value), f"{value:g}"))
        value += step
    for i, anchor in enumerate(("start", "middle", "middle", "middle", "end")):
        moment = start + (end - start) * i / 4
        chart.x_ticks.append(Tick(scale.x(moment), f"{timezone.localtime(moment):%d %b %H:%M}", anchor))


def chart_for(series: Series, start: datetime, end: datetime, step_seconds: int,
              now: datetime | None = None) -> Chart:
    """The drawing of one parameter over [start, end] (the whole batch's data span)."""
    parameter, buckets = series.parameter, series.buckets
    last = series.last
    chart = Chart(code=parameter.code, title=parameter.meaning, unit=parameter.unit,
                  last_value=f"{last.mean:.4g} {unit_display(parameter.unit)}".strip() if last else "—")
    if not buckets:
        return chart
    scale = _Scale(start, end, *_y_range(buckets, series.limits))
    if series.limits is not None:
        _limits(chart, scale, series.limits)
    step = timedelta(seconds=step_seconds)
    half, spacing = step / 2, _spacing(buckets, step)
    for run in _runs(buckets, spacing):
        chart.segments.append(" ".join(f"{scale.x(b.start + half)},{scale.y(b.mean)}" for b in run))
        upper = [f"{scale.x(b.start + half)},{scale.y(b.high)}" for b in run]
        lower = [f"{scale.x(b.start + half)},{scale.y(b.low)}" for b in reversed(run)]
        chart.envelopes.append(" ".join(upper + lower))
        if len(run) == 1 or spacing > 2 * step:  # samples (or a lone value): a dot for each
            chart.dots += [(scale.x(b.start + half), scale.y(b.mean)) for b in run]
    for alarm in series.alarms:
        left = scale.x(alarm.opened_at)
        right = scale.x(alarm.closed_at or now or end)
        chart.spans.append(Span(left, max(round(right - left, 1), 2.0), ALARM_COLOURS.get(alarm.kind, "#6b7785"),
                                f"{alarm.get_kind_display()} from {timezone.localtime(alarm.opened_at):%d %b %H:%M}"))
    _ticks(chart, scale, start, end)
    return chart


def gap_spans(alarms: list[Alarm], start: datetime, end: datetime, now: datetime | None = None) -> list[Span]:
    """Feed gaps, drawn on every chart (they concern the instrument, not one parameter)."""
    scale = _Scale(start, end, 0.0, 1.0)
    spans = []
    for alarm in alarms:
        if alarm.kind != "feed_gap":
            continue
        left, right = scale.x(alarm.opened_at), scale.x(alarm.closed_at or now or end)
        spans.append(Span(left, max(round(right - left, 1), 2.0), ALARM_COLOURS["feed_gap"],
                          f"No data from {timezone.localtime(alarm.opened_at):%d %b %H:%M}"))
    return spans
