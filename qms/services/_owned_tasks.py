"""Owned work items with evidence: CAPA actions and change-control tasks follow one rule.

Only the item's owner completes it, with evidence of completion, signed "performed" (21 CFR
11.50, 11.200); an item is completed or withdrawn once, and stays on record either way.
"""

from __future__ import annotations

from typing import Any

from django.contrib.sessions.backends.base import SessionBase
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest
from django.utils import timezone

from qms.audit import save_with_reason
from qms.models import ActionStatus, Signature, User
from qms.services._guards import locked
from qms.signatures import Meaning, sign


def _ensure_open(item: Any) -> None:
    if item.status != ActionStatus.OPEN:
        raise ValidationError(f"{item} is already {item.get_status_display().lower()}.")


def owned_item_complete(*, actor: User, item: Any, noun: str, evidence: str, password: str, reason: str,
                        meaning: Meaning, username: str | None, session: SessionBase | None,
                        request: HttpRequest | None) -> tuple[Any, Signature]:
    """Lock `item`, check the actor owns it and it is open, record it done with its evidence, sign.
    The caller holds the parent record's lock and checked its state and the actor's role."""
    item = locked(item)
    if item.owner_id != actor.pk:
        raise PermissionDenied(f"Only the {noun}'s owner, {item.owner.full_name}, can complete it.")
    _ensure_open(item)
    item.status, item.completion_evidence = ActionStatus.DONE, evidence
    item.completed_by, item.completed_at = actor, timezone.now()
    save_with_reason(item, actor=actor, reason=reason)
    signature = sign(signer=actor, password=password, meaning=meaning, target=item, reason=reason,
                     username=username, session=session, request=request)
    return item, signature


def owned_item_cancel(*, actor: User, item: Any, reason: str) -> Any:
    """Lock `item`, check it is open, withdraw it with the reason (it stays on record)."""
    item = locked(item)
    _ensure_open(item)
    item.status, item.cancelled_reason = ActionStatus.CANCELLED, reason
    save_with_reason(item, actor=actor, reason=reason, update_fields=["status", "cancelled_reason"])
    return item
