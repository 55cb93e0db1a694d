"""Reads of the audit trail shared by the screen, the CSV export and (later) the PDF."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils import timezone

from qms.audit.display import audit_change_display
from qms.audit.parts import record_condition, record_targets
from qms.models import AuditEvent, Signature, User
from qms.selectors_deviations import deviations_for, deviations_open_for  # noqa: F401  (used by ebr)
from qms.signatures import SignatureManifestation, format_local, signature_is_valid

PAGE_SIZE = 50


@dataclass(frozen=True)
class AuditFilters:
    record: str = ""          # the record's label (batch number, DEV-…) or "type:id"
    username: str = ""
    event_type: str = ""
    date_from: date | None = None
    date_to: date | None = None

    def as_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.__dict__.items() if v}


@dataclass(frozen=True)
class AuditRow:
    id: int
    occurred_at: datetime
    occurred_at_display: str
    actor: str
    event_type: str
    target_type: str
    target_id: str
    target_label: str
    reason: str
    changes: list[dict[str, str]]  # as a reader sees them: local time, related records by name
    signature: SignatureManifestation | None
    data: dict[str, Any] = field(default_factory=dict)  # as stored


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditRow]
    next_before: int | None


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def audit_events_filtered(filters: AuditFilters) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.all()
    if filters.record:
        # The record with its parts (a deviation's impact assessments, a batch's entries and
        # deviations, …): qms/audit/parts.py.
        if ":" in filters.record:
            target_type, _, target_id = filters.record.partition(":")
            records = [(target_type, target_id)]
        else:
            records = list(AuditEvent.objects.filter(target_label=filters.record).order_by()
                           .values_list("target_type", "target_id").distinct()[:20])
        targets: dict[str, set[str]] = {}
        for target_type, target_id in records:
            for kind, ids in record_targets(target_type, target_id).items():
                targets.setdefault(kind, set()).update(ids)
        events = events.filter(record_condition(targets))
    if filters.username:
        user_ids = list(User.objects.filter(username=filters.username).values_list("pk", flat=True))
        events = events.filter(actor_id__in=user_ids) if user_ids else events.filter(actor_label=filters.username)
    if filters.event_type:
        events = events.filter(event_type=filters.event_type)
    if filters.date_from:
        events = events.filter(occurred_at__gte=_day_start(filters.date_from))
    if filters.date_to:
        events = events.filter(occurred_at__lt=_day_start(filters.date_to + timedelta(days=1)))
    return events.order_by("-id")


def _signature_id(event: AuditEvent) -> int | None:
    """The signature a signed event names in its data (SIGNATURE_APPLIED and signed transitions)."""
    signature = event.data.get("signature") if isinstance(event.data, dict) else None
    return int(signature) if signature else None


def audit_rows(events: list[AuditEvent]) -> list[AuditRow]:
    """The events as rows, each with its signature manifestation (one query for all signatures)."""
    ids = [pk for pk in map(_signature_id, events) if pk is not None]
    signatures = {s.pk: s for s in Signature.objects.filter(pk__in=ids)} if ids else {}
    return [audit_row(e, signatures.get(pk) if (pk := _signature_id(e)) is not None else None) for e in events]


def audit_row(event: AuditEvent, signature: Signature | None) -> AuditRow:
    manifestation = None
    if signature is not None:
        manifestation = SignatureManifestation(
            signature_id=signature.pk, printed_name=signature.printed_name, username=signature.username,
            meaning=signature.meaning, signed_at=signature.signed_at,
            signed_at_display=format_local(signature.signed_at), valid=signature_is_valid(signature),
        )
    data = event.data if isinstance(event.data, dict) else {}
    return AuditRow(
        id=event.pk, occurred_at=event.occurred_at, occurred_at_display=format_local(event.occurred_at),
        actor=event.actor_label, event_type=event.event_type, target_type=event.target_type,
        target_id=event.target_id, target_label=event.target_label, reason=event.reason,
        changes=[audit_change_display(c, target_type=event.target_type) for c in data.get("changes", [])
                 if isinstance(c, dict)],
        signature=manifestation, data=data,
    )


def audit_page(filters: AuditFilters, *, before: int | None = None, size: int = PAGE_SIZE) -> AuditPage:
    """One page, newest first, by keyset (`id < before`): as fast on page 10,000 as on page 1."""
    events = audit_events_filtered(filters)
    if before is not None:
        events = events.filter(id__lt=before)
    batch = list(events[: size + 1])
    more = len(batch) > size
    batch = batch[:size]
    return AuditPage(rows=audit_rows(batch), next_before=batch[-1].pk if more and batch else None)


def audit_rows_all(filters: AuditFilters, chunk: int = 2000) -> Iterator[AuditRow]:
    """Every matching row, newest first, in chunks (for the CSV export)."""
    before: int | None = None
    while True:
        page = audit_page(filters, before=before, size=chunk)
        yield from page.rows
        if page.next_before is None:
            return
        before = page.next_before


def event_actor_name(target: Any, event: str) -> str | None:
    """The printed name (or system label) of who last recorded `event` on `target`: for a step
    whose model keeps when but not who (a change control's implementation)."""
    found = (AuditEvent.objects.filter(target_type=target._meta.label_lower, target_id=str(target.pk),
                                       event_type=event).select_related("actor").order_by("-id").first())
    if found is None:
        return None
    return found.actor.full_name if found.actor is not None else found.actor_label


def record_history(target_type: str, target_id: str) -> list[AuditRow]:
    return list(audit_rows_all(AuditFilters(record=f"{target_type}:{target_id}")))


def record_label(target_type: str, target_id: str, rows: list[AuditRow]) -> str:
    """What the record whose history is shown is called: the record itself as it stands (a batch
    by its number), else the label its own oldest event gave it. Never the label of the newest row:
    a record's history also holds its parts (entries, deviations), whose labels are their own. A
    record without audit events is not looked up (the page shows no other table's rows)."""
    if not rows:
        return f"{target_type} {target_id}"
    try:
        model = apps.get_model(target_type)
        found = model._default_manager.filter(pk=target_id).first()
    except (LookupError, ValueError, TypeError, ValidationError):
        found = None
    if found is not None:
        return str(found)[:200]
    own = [row.target_label for row in rows if row.target_type == target_type and row.target_id == target_id]
    return own[-1] if own else f"{target_type} {target_id}"
