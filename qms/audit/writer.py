"""The one writer of the audit trail. Every service records through these functions.

`record_event` writes inside the caller's transaction, so an event exists exactly when the
change it describes was committed. `record_security_event` writes on a separate autocommit
connection, so that a refused signature or a failed login stays recorded even though the
business transaction that tried it is rolled back (21 CFR 11.300(d)).
"""

from __future__ import annotations

import getpass
import json
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone

from qms.audit.events import SECURITY_EVENTS, Event

SECURITY_DB = "security"


@dataclass(frozen=True)
class SystemActor:
    """A component acting on its own (a Celery task, beat, an instrument)."""

    label: str  # "system:celery-beat", "instrument:BR-01"

    @property
    def pk(self) -> None:
        return None


def command_actor(command: str) -> SystemActor:
    """Who ran a management command: the operating-system account, for the audit trail."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return SystemActor(f"system:{command} (os user {who})")


Actor = Any  # a qms.models.User or a SystemActor


def actor_label(actor: Actor) -> str:
    if actor is None:
        return "system:unknown"
    if isinstance(actor, SystemActor):
        return actor.label
    return str(actor.get_username())


def target_fields(target: models.Model | None, label: str | None = None) -> dict[str, str]:
    if target is None:
        return {"target_type": "", "target_id": "", "target_label": label or ""}
    return {
        "target_type": target._meta.label_lower,
        "target_id": str(target.pk),
        "target_label": (label or str(target))[:200],
    }


def _event_row(*, actor: Actor, event: Event, target: models.Model | None, reason: str,
               data: dict[str, Any] | None, target_label: str | None) -> dict[str, Any]:
    # Round-trip through JSON so that what is stored is what a reader will get back.
    clean = json.loads(json.dumps(data or {}, cls=DjangoJSONEncoder))
    return {
        "occurred_at": timezone.now(),
        "actor_id": getattr(actor, "pk", None),
        "actor_label": actor_label(actor),
        "event_type": str(event),
        "reason": reason,
        "data": clean,
        **target_fields(target, target_label),
    }


def record_event(*, actor: Actor, event: Event, target: models.Model | None = None,
                 reason: str = "", data: dict[str, Any] | None = None,
                 target_label: str | None = None) -> Any:
    """Record a business event in the caller's transaction (it commits or rolls back with it)."""
    from qms.models import AuditEvent

    return AuditEvent.objects.create(**_event_row(
        actor=actor, event=event, target=target, reason=reason, data=data, target_label=target_label,
    ))


def record_security_event(*, actor: Actor, event: Event, target: models.Model | None = None,
                          reason: str = "", data: dict[str, Any] | None = None,
                          target_label: str | None = None) -> Any:
    """Record a security event that must survive a rollback of the current transaction."""
    from qms.models import AuditEvent

    assert event in SECURITY_EVENTS, f"{event} is not a security event"
    row = _event_row(actor=actor, event=event, target=target, reason=reason, data=data,
                     target_label=target_label)
    with transaction.atomic(using=SECURITY_DB):
        return AuditEvent.objects.using(SECURITY_DB).create(**row)
