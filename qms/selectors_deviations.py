"""Reads of deviations shared by the screens, the CSV export and the manufacturing app."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from qms.models import Deviation, DeviationStatus
from qms.models.deviations import ACTIVE_DEVIATION_STATUSES


def deviations_open_for(subject_type: str, subject_id: str) -> list[Deviation]:
    """Deviations concerning this record that are neither closed nor cancelled (release blockers)."""
    return list(deviations_for_qs(subject_type, subject_id).filter(status__in=ACTIVE_DEVIATION_STATUSES))


def deviations_for(subject_type: str, subject_id: str) -> list[Deviation]:
    """Every deviation concerning this record, oldest number first."""
    return list(deviations_for_qs(subject_type, subject_id))


def deviations_for_qs(subject_type: str, subject_id: str) -> QuerySet[Deviation]:
    return (Deviation.objects.filter(subjects__subject_type=subject_type, subjects__subject_id=str(subject_id))
            .distinct().order_by("number"))


@dataclass(frozen=True)
class DeviationFilters:
    q: str = ""  # number, title or linked record label
    status: str = ""  # a DeviationStatus value, or "active"
    classification: str = ""
    source: str = ""
    root_cause_category: str = ""
    overdue: bool = False
    opened_from: date | None = None
    opened_to: date | None = None


DEVIATION_SORTS = {
    "number": "number", "opened": "opened_at", "due": "due_date", "status": "status",
    "classification": "classification", "rpn": "rpn", "title": "title",
}


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def deviation_list(filters: DeviationFilters, sort: str = "-number") -> QuerySet[Deviation]:
    deviations = Deviation.objects.select_related("owner", "capa")
    if filters.q:
        deviations = deviations.filter(Q(number__icontains=filters.q) | Q(title__icontains=filters.q)
                                       | Q(subjects__label__icontains=filters.q)).distinct()
    if filters.status == "active":
        deviations = deviations.filter(status__in=ACTIVE_DEVIATION_STATUSES)
    elif filters.status:
        deviations = deviations.filter(status=filters.status)
    for field in ("classification", "source", "root_cause_category"):
        if getattr(filters, field):
            deviations = deviations.filter(**{field: getattr(filters, field)})
    if filters.overdue:
        deviations = deviations.filter(status__in=ACTIVE_DEVIATION_STATUSES, due_date__lt=timezone.localdate())
    if filters.opened_from:
        deviations = deviations.filter(opened_at__gte=_day_start(filters.opened_from))
    if filters.opened_to:
        deviations = deviations.filter(opened_at__lt=_day_start(filters.opened_to + timedelta(days=1)))
    return deviations.order_by(*order_by(sort, DEVIATION_SORTS, "-number"))


def order_by(sort: str, allowed: dict[str, str], default: str) -> list[str]:
    """A whitelisted ordering from `?sort=name` / `?sort=-name`, with a stable tie-breaker."""
    descending = sort.startswith("-")
    field = allowed.get(sort.lstrip("-"))
    if field is None:
        return [default, "-id"]
    return [f"-{field}" if descending else field, "-id"]


def is_overdue(deviation: Deviation, today: date | None = None) -> bool:
    today = today or timezone.localdate()
    return deviation.is_active and deviation.due_date is not None and deviation.due_date < today


DEVIATION_CSV_HEADER = ["number", "title", "status", "source", "occurred_at", "discovered_at", "opened_at",
                        "reporter", "subjects", "classification", "severity", "occurrence", "detectability", "rpn",
                        "risk_level", "owner", "due_date", "root_cause_category", "root_cause", "capa_decision",
                        "capa", "closed_at", "transcribed_from_paper_record", "paper_opened_on"]


def _iso(moment: datetime | date | None) -> str:
    return moment.isoformat() if moment else ""


def deviation_csv_rows(deviations: QuerySet[Deviation]) -> Iterator[list[str]]:
    for deviation in deviations.prefetch_related("subjects").iterator(chunk_size=500):
        yield [
            deviation.number, deviation.title, deviation.get_status_display(), deviation.source,
            _iso(deviation.occurred_at), _iso(deviation.discovered_at), _iso(deviation.opened_at),
            deviation.reporter_label, "; ".join(s.label for s in deviation.subjects.all()),
            deviation.classification, str(deviation.severity or ""), str(deviation.occurrence or ""),
            str(deviation.detectability or ""), str(deviation.rpn or ""), deviation.risk_level,
            deviation.owner.username if deviation.owner else "", _iso(deviation.due_date),
            deviation.root_cause_category, deviation.root_cause, deviation.capa_decision,
            deviation.capa.number if deviation.capa else "", _iso(deviation.closed_at),
            deviation.paper_reference or "", _iso(deviation.paper_opened_on),
        ]


STATUS_FILTER_CHOICES = [("", "any status"), ("active", "not closed or cancelled"), *DeviationStatus.choices]
