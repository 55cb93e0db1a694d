"""Saving GxP rows with their reason and actor, so field history and the audit trail agree.

django-simple-history writes a history row on every `save()`, but `QuerySet.update()`,
`bulk_create` and `bulk_update` bypass it; services therefore save through these helpers
only (tests/qms/test_no_bulk_writes.py scans the code for the forbidden calls).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from django.db import models

from qms.audit.events import Event
from qms.audit.writer import Actor, SystemActor, record_event

M = TypeVar("M", bound=models.Model)
# Secrets never go into the audit trail's values (their change is still recorded as an event).
NEVER_RECORDED = frozenset({"password", "token_hash"})


class ReasonRequired(ValueError):
    """A change to existing GxP data was attempted without a reason (ALCOA+: attributable)."""


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: Any
    new: Any
    old_label: str | None = None
    new_label: str | None = None

    def as_recorded(self) -> dict[str, Any]:
        recorded = {"field": self.field, "old": self.old, "new": self.new}
        recorded.update({k: v for k, v in (("old_label", self.old_label), ("new_label", self.new_label)) if v})
        return recorded


def _stamp(instance: models.Model, actor: Actor, reason: str) -> None:
    instance._change_reason = reason  # type: ignore[attr-defined]
    instance._history_user = None if isinstance(actor, SystemActor) else actor  # type: ignore[attr-defined]


def _value(instance: models.Model, field: models.Field) -> Any:
    value = field.value_from_object(instance)
    if isinstance(value, datetime) and value.tzinfo is not None:
        # A moment from a form is in the facility's zone: recorded in UTC like every stored time.
        value = value.astimezone(UTC)
    return value if isinstance(value, (str, int, float, bool, type(None), list, dict)) else str(value)


def _label(instance: models.Model, field: models.Field) -> str | None:
    """The related record's name as it reads now, kept beside its id: a reader of the audit trail
    sees "BSC-02", not 7, even after the record is renamed (ALCOA+: legible, contemporaneous)."""
    if not field.is_relation or field.value_from_object(instance) is None:
        return None
    return str(getattr(instance, field.name))[:200]


def field_changes(instance: models.Model, fields: list[str] | None = None) -> list[FieldChange]:
    """What differs between `instance` and its stored row."""
    stored = type(instance)._default_manager.get(pk=instance.pk)
    concrete = [f for f in instance._meta.concrete_fields if not f.primary_key]
    if fields is not None:
        concrete = [f for f in concrete if f.name in fields or f.attname in fields]
    return [
        FieldChange(f.name, _value(stored, f), _value(instance, f), _label(stored, f), _label(instance, f))
        for f in concrete
        if f.name not in NEVER_RECORDED and _value(stored, f) != _value(instance, f)
    ]


def create_with_reason(model: type[M], *, actor: Actor, reason: str,
                       event: Event = Event.RECORD_CREATED, data: dict[str, Any] | None = None,
                       **fields: Any) -> M:
    """Create a tracked row, its first history entry and its audit event, in one transaction."""
    instance = model(**fields)
    _stamp(instance, actor, reason)
    instance.save(force_insert=True)
    # The starting values, so the audit trail shows what the record was created with (ALCOA+ original).
    initial = [FieldChange(f.name, None, _value(instance, f), None, _label(instance, f)).as_recorded()
               for f in instance._meta.concrete_fields
               if not f.primary_key and f.name not in NEVER_RECORDED and _value(instance, f) not in (None, "", [], {})]
    record_event(actor=actor, event=event, target=instance, reason=reason, data={"changes": initial, **(data or {})})
    return instance


def save_with_reason(instance: M, *, actor: Actor, reason: str, update_fields: list[str] | None = None,
                     event: Event = Event.RECORD_CHANGED, data: dict[str, Any] | None = None) -> list[FieldChange]:
    """Save a change to an existing GxP row. Refused without a reason (21 CFR 11.10(e))."""
    if not reason or not reason.strip():
        raise ReasonRequired(f"A reason is required to change {instance._meta.verbose_name} {instance}.")
    changes = field_changes(instance, update_fields)
    _stamp(instance, actor, reason)
    instance.save(update_fields=update_fields)
    record_event(
        actor=actor, event=event, target=instance, reason=reason,
        data={"changes": [c.as_recorded() for c in changes], **(data or {})},
    )
    return changes
