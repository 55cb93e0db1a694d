"""Reads of CAPAs and change controls shared by the screens and the CSV exports."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime

from django.db.models import Count, Min, Q, QuerySet
from django.utils import timezone

from qms.models import ActionStatus, Capa, ChangeControl
from qms.models.capa import ACTIVE_CAPA_STATUSES
from qms.models.change_control import ACTIVE_CHANGE_STATUSES
from qms.selectors_deviations import order_by


@dataclass(frozen=True)
class CapaFilters:
    q: str = ""
    status: str = ""  # a CapaStatus value, or "active"
    source: str = ""
    overdue: bool = False


CAPA_SORTS = {"number": "number", "opened": "opened_at", "status": "status", "title": "title",
              "effectiveness_due": "effectiveness_due", "next_due": "next_due", "owner": "owner__full_name"}


def capa_list(filters: CapaFilters, sort: str = "-number") -> QuerySet[Capa]:
    today = timezone.localdate()
    capas = Capa.objects.select_related("owner").annotate(
        open_actions=Count("actions", filter=Q(actions__status=ActionStatus.OPEN), distinct=True),
        overdue_actions=Count("actions", filter=Q(actions__status=ActionStatus.OPEN, actions__due_date__lt=today),
                              distinct=True),
        next_due=Min("actions__due_date", filter=Q(actions__status=ActionStatus.OPEN)),
    )
    if filters.q:
        capas = capas.filter(Q(number__icontains=filters.q) | Q(title__icontains=filters.q)
                             | Q(deviation_links__deviation__number__icontains=filters.q)).distinct()
    if filters.status == "active":
        capas = capas.filter(status__in=ACTIVE_CAPA_STATUSES)
    elif filters.status:
        capas = capas.filter(status=filters.status)
    if filters.source:
        capas = capas.filter(source=filters.source)
    if filters.overdue:
        capas = capas.filter(status__in=ACTIVE_CAPA_STATUSES).filter(
            Q(overdue_actions__gt=0) | Q(effectiveness_due__lt=today))
    return capas.order_by(*order_by(sort, CAPA_SORTS, "-number"))


CAPA_CSV_HEADER = ["number", "title", "status", "source", "source_reference", "deviations", "owner", "opened_at",
                   "actions", "open_actions", "effectiveness_criteria", "effectiveness_due", "effectiveness_result",
                   "closed_at", "transcribed_from_paper_record", "paper_opened_on"]


def _iso(moment: datetime | date | None) -> str:
    return moment.isoformat() if moment else ""


def capa_csv_rows(capas: QuerySet[Capa]) -> Iterator[list[str]]:
    for capa in capas.prefetch_related("deviation_links__deviation", "actions", "effectiveness_checks"):
        latest = max(capa.effectiveness_checks.all(), key=lambda c: (c.checked_at, c.pk), default=None)
        actions = list(capa.actions.all())
        yield [capa.number, capa.title, capa.get_status_display(), capa.source, capa.source_reference,
               "; ".join(link.deviation.number for link in capa.deviation_links.all()), capa.owner.username,
               _iso(capa.opened_at), str(len(actions)), str(sum(a.status == ActionStatus.OPEN for a in actions)),
               capa.effectiveness_criteria, _iso(capa.effectiveness_due), latest.result if latest else "",
               _iso(capa.closed_at), capa.paper_reference or "", _iso(capa.paper_opened_on)]


@dataclass(frozen=True)
class ChangeFilters:
    q: str = ""
    status: str = ""  # a ChangeControlStatus value, or "active"
    change_type: str = ""


CHANGE_SORTS = {"number": "number", "opened": "opened_at", "status": "status", "title": "title",
                "type": "change_type"}


def change_control_list(filters: ChangeFilters, sort: str = "-number") -> QuerySet[ChangeControl]:
    changes = ChangeControl.objects.select_related("author", "approved_by").annotate(
        open_tasks=Count("tasks", filter=Q(tasks__status=ActionStatus.OPEN)))
    if filters.q:
        changes = changes.filter(Q(number__icontains=filters.q) | Q(title__icontains=filters.q)
                                 | Q(affected_items__icontains=filters.q))
    if filters.status == "active":
        changes = changes.filter(status__in=ACTIVE_CHANGE_STATUSES)
    elif filters.status:
        changes = changes.filter(status=filters.status)
    if filters.change_type:
        changes = changes.filter(change_type=filters.change_type)
    return changes.order_by(*order_by(sort, CHANGE_SORTS, "-number"))


CHANGE_CSV_HEADER = ["number", "title", "type", "status", "author", "opened_at", "affected_items",
                     "impact_validation", "impact_training", "impact_documents", "impact_ongoing_batches",
                     "approved_by", "approved_at", "open_tasks", "closed_at", "closure_summary"]


def change_control_csv_rows(changes: QuerySet[ChangeControl]) -> Iterator[list[str]]:
    for change in changes:
        yield [change.number, change.title, change.change_type, change.get_status_display(), change.author.username,
               _iso(change.opened_at), change.affected_items, change.impact_validation, change.impact_training,
               change.impact_documents, change.impact_ongoing_batches,
               change.approved_by.username if change.approved_by else "", _iso(change.approved_at),
               str(getattr(change, "open_tasks", "")), _iso(change.closed_at), change.closure_summary]
