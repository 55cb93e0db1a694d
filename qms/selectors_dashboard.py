"""The QA dashboard: open deviations by class and age, overdue work, CAPA status, trends.

Charts are computed here as plain geometry (rectangles, labels, ticks) and drawn by the
template as inline SVG: no JavaScript, no chart library, nothing from another origin (the
Content-Security-Policy forbids both), and the same numbers as the tables beside them.
Trending deviations by root cause supports management review (ICH Q10 4.1; EU GMP Part I 1.4(xiv)).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time

from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from qms.links import record_link
from qms.models import (
    ActionStatus,
    Capa,
    CapaAction,
    CapaEffectivenessCheck,
    CapaStatus,
    ChangeTask,
    Classification,
    Deviation,
    DeviationStatus,
    EffectivenessResult,
    RootCauseCategory,
)
from qms.models.capa import ACTIVE_CAPA_STATUSES
from qms.models.change_control import ChangeControlStatus
from qms.models.deviations import ACTIVE_DEVIATION_STATUSES

AGE_BUCKETS: list[tuple[int, int | None, str]] = [(0, 7, "0–7 days"), (8, 30, "8–30 days"),
                                                   (31, 90, "31–90 days"), (91, None, "over 90 days")]
UNCLASSIFIED = "unclassified"
NOT_INVESTIGATED = "not_investigated"
TREND_MONTHS = 12


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass(frozen=True)
class AxisLabel:
    x: float
    y: float
    text: str


@dataclass(frozen=True)
class Chart:
    """A stacked bar chart, already laid out in SVG user units."""

    title: str
    width: int
    height: int
    plot_left: int
    plot_bottom: int
    plot_right: int
    bars: list[Bar]
    x_labels: list[AxisLabel]
    y_ticks: list[AxisLabel]
    legend: list[tuple[str, str]]  # (css class, label)
    empty: bool


@dataclass(frozen=True)
class ClassAgeRow:
    key: str
    label: str
    counts: list[int]

    @property
    def total(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class OverdueItem:
    kind: str
    reference: str
    title: str
    owner: str
    due_date: date
    days_overdue: int
    link: str
    paper_reference: str = ""  # the paper record it was transcribed from, if any


@dataclass(frozen=True)
class Dashboard:
    today: date
    open_by_class: list[ClassAgeRow]
    age_labels: list[str]
    open_chart: Chart
    overdue: list[OverdueItem]
    capa_status: list[tuple[str, int]]
    capa_open_actions: int
    capa_overdue_actions: int
    pending_approval: int
    trend_chart: Chart
    trend_table: list[tuple[str, list[int], int]]
    trend_categories: list[str]

    @property
    def open_total(self) -> int:
        return sum(row.total for row in self.open_by_class)

    @property
    def critical_open(self) -> int:
        return sum(row.total for row in self.open_by_class if row.key == Classification.CRITICAL)


def _nice_step(maximum: int) -> int:
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000):
        if maximum / step <= 5:
            return step
    return max(1, maximum // 5)


def stacked_bars(*, title: str, columns: list[str], series: list[tuple[str, str]],
                 values: dict[tuple[str, str], int], column_labels: list[str] | None = None,
                 width: int = 720, height: int = 280) -> Chart:
    """Lay out one stacked bar per column, one segment per series (in order, bottom up)."""
    left, right, top, bottom = 40, width - 10, 10, height - 40
    totals = [sum(values.get((column, key), 0) for key, _ in series) for column in columns]
    peak = max(totals, default=0)
    step = _nice_step(max(peak, 1))
    scale_max = max(step, -(-peak // step) * step)
    slot = (right - left) / max(len(columns), 1)
    bar_width = slot * 0.7
    bars: list[Bar] = []
    for index, column in enumerate(columns):
        x = left + index * slot + (slot - bar_width) / 2
        base = float(bottom)
        for key, label in series:
            count = values.get((column, key), 0)
            if not count:
                continue
            bar_height = (bottom - top) * count / scale_max
            base -= bar_height
            name = (column_labels or columns)[index]
            bars.append(Bar(round(x, 1), round(base, 1), round(bar_width, 1), round(bar_height, 1),
                            f"series-{key}", f"{name}: {label} {count}"))
    x_labels = [AxisLabel(round(left + i * slot + slot / 2, 1), bottom + 18, text)
                for i, text in enumerate(column_labels or columns)]
    y_ticks = [AxisLabel(left - 6, round(bottom - (bottom - top) * value / scale_max, 1), str(value))
               for value in range(0, scale_max + 1, step)]
    return Chart(title=title, width=width, height=height, plot_left=left, plot_bottom=bottom, plot_right=right,
                 bars=bars, x_labels=x_labels, y_ticks=y_ticks, legend=[(f"series-{k}", label) for k, label in series],
                 empty=peak == 0)


def _bucket(age_days: int) -> int:
    for index, (low, high, _) in enumerate(AGE_BUCKETS):
        if age_days >= low and (high is None or age_days <= high):
            return index
    return len(AGE_BUCKETS) - 1


def _open_by_class(today: date) -> list[ClassAgeRow]:
    keys = [c.value for c in reversed(Classification)] + [UNCLASSIFIED]
    labels = {**{c.value: c.label for c in Classification}, UNCLASSIFIED: "Not yet classified"}
    counts = {key: [0] * len(AGE_BUCKETS) for key in keys}
    for classification, opened_at, paper_opened_on in (
            Deviation.objects.filter(status__in=ACTIVE_DEVIATION_STATUSES)
            .values_list("classification", "opened_at", "paper_opened_on")):
        age = (today - _opened_on(opened_at, paper_opened_on)).days
        counts[classification or UNCLASSIFIED][_bucket(age)] += 1
    return [ClassAgeRow(key, labels[key], counts[key]) for key in keys]


def _opened_on(opened_at: datetime, paper_opened_on: date | None) -> date:
    """The day a deviation was opened: on paper, for one transcribed from a paper record."""
    return paper_opened_on or timezone.localdate(opened_at)


def _open_chart(rows: list[ClassAgeRow]) -> Chart:
    series = [(f"age{index}", label) for index, (_, _, label) in enumerate(AGE_BUCKETS)]
    values = {(row.key, f"age{index}"): count for row in rows for index, count in enumerate(row.counts)}
    return stacked_bars(title="Open deviations by classification and age", columns=[row.key for row in rows],
                        column_labels=[row.label for row in rows], series=series, values=values,
                        width=440, height=260)  # drawn beside its table: half a page wide, labels at full size


def _overdue(today: date) -> list[OverdueItem]:
    items: list[OverdueItem] = []
    for deviation in (Deviation.objects.filter(status__in=ACTIVE_DEVIATION_STATUSES, due_date__lt=today)
                      .select_related("owner")):
        due = deviation.due_date
        assert due is not None  # filtered on it
        items.append(OverdueItem("Deviation", deviation.number, deviation.title,
                                 deviation.owner.full_name if deviation.owner else "", due, (today - due).days,
                                 record_link("deviation", deviation.number), deviation.paper_reference or ""))
    for action in (CapaAction.objects.filter(status=ActionStatus.OPEN, due_date__lt=today,
                                             capa__status__in=ACTIVE_CAPA_STATUSES).select_related("owner", "capa")):
        items.append(OverdueItem("CAPA action", str(action), action.description[:120], action.owner.full_name,
                                 action.due_date, (today - action.due_date).days,
                                 record_link("capa", action.capa.number), action.capa.paper_reference or ""))
    settled = CapaEffectivenessCheck.objects.filter(
        capa=OuterRef("pk"), result__in=[EffectivenessResult.EFFECTIVE, EffectivenessResult.JUSTIFIED])
    for capa in (Capa.objects.filter(status__in=ACTIVE_CAPA_STATUSES, effectiveness_due__lt=today)
                 .annotate(settled=Exists(settled)).filter(settled=False).select_related("owner")):
        assert capa.effectiveness_due is not None
        items.append(OverdueItem("Effectiveness check", capa.number, capa.title, capa.owner.full_name,
                                 capa.effectiveness_due, (today - capa.effectiveness_due).days,
                                 record_link("capa", capa.number), capa.paper_reference or ""))
    for task in (ChangeTask.objects.filter(status=ActionStatus.OPEN, due_date__lt=today,
                                           change__status__in=[ChangeControlStatus.OPEN, ChangeControlStatus.APPROVED])
                 .select_related("owner", "change")):
        items.append(OverdueItem("Change task", str(task), task.description[:120], task.owner.full_name,
                                 task.due_date, (today - task.due_date).days,
                                 record_link("change_control", task.change.number)))
    return sorted(items, key=lambda item: (-item.days_overdue, item.reference))


def _months(today: date, count: int) -> list[date]:
    months = []
    year, month = today.year, today.month
    for _ in range(count):
        months.append(date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return list(reversed(months))


def _trend(today: date) -> tuple[Chart, list[tuple[str, list[int], int]], list[str]]:
    months = _months(today, TREND_MONTHS)
    start = timezone.make_aware(datetime.combine(months[0], time.min))
    rows = (Deviation.objects.exclude(status=DeviationStatus.CANCELLED)
            .filter(Q(opened_at__gte=start) | Q(paper_opened_on__gte=months[0]))
            .values_list("opened_at", "paper_opened_on", "root_cause_category"))
    values: Counter[tuple[str, str]] = Counter()
    for opened_at, paper_opened_on, root_cause in rows:
        opened = _opened_on(opened_at, paper_opened_on)
        if opened >= months[0]:  # a paper record opened before the window stays out of it
            values[(f"{opened:%Y-%m}", root_cause or NOT_INVESTIGATED)] += 1
    series = [(c.value, c.label) for c in RootCauseCategory] + [(NOT_INVESTIGATED, "Not yet investigated")]
    columns = [f"{m:%Y-%m}" for m in months]
    chart = stacked_bars(title="Deviations reported per month, by root-cause category", columns=columns,
                         column_labels=[f"{m:%b %y}" for m in months], series=series, values=dict(values),
                         width=860, height=270)  # twelve months across a full-width card
    table = [(label, [values.get((column, key), 0) for column in columns],
              sum(values.get((column, key), 0) for column in columns)) for key, label in series]
    return chart, table, [f"{m:%b %y}" for m in months]


def qa_dashboard(today: date | None = None) -> Dashboard:
    """Everything on the QA dashboard, as of `today` (the facility's date)."""
    today = today or timezone.localdate()
    by_class = _open_by_class(today)
    capa_counts = dict(Capa.objects.values_list("status").annotate(total=Count("id")))
    open_actions = CapaAction.objects.filter(status=ActionStatus.OPEN, capa__status__in=ACTIVE_CAPA_STATUSES)
    trend_chart, trend_table, trend_months = _trend(today)
    return Dashboard(
        today=today, open_by_class=by_class, age_labels=[label for _, _, label in AGE_BUCKETS],
        open_chart=_open_chart(by_class), overdue=_overdue(today),
        capa_status=[(status.label, capa_counts.get(status.value, 0)) for status in CapaStatus],
        capa_open_actions=open_actions.count(), capa_overdue_actions=open_actions.filter(due_date__lt=today).count(),
        pending_approval=Deviation.objects.filter(status=DeviationStatus.PENDING_APPROVAL).count(),
        trend_chart=trend_chart, trend_table=trend_table, trend_categories=trend_months,
    )
