"""Guards shared by the quality-system services: role, text, dates, people."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any, TypeVar

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from qms.audit import SystemActor
from qms.roles import Capability, can

M = TypeVar("M", bound=models.Model)
T = TypeVar("T")


def ensure_can(actor: Any, capability: Capability, what: str) -> None:
    """PermissionDenied unless the actor's roles hold `capability` (qms/roles.py MATRIX)."""
    if isinstance(actor, SystemActor) or not can(actor, capability):
        raise PermissionDenied(f"Your role does not allow you to {what}.")


def locked(instance: M) -> M:
    """The row again, locked until the end of the transaction (one writer at a time)."""
    return type(instance)._default_manager.select_for_update().get(pk=instance.pk)


def text_required(value: str | None, field: str, message: str) -> str:
    cleaned = (value or "").strip()
    if not cleaned:
        raise ValidationError({field: message})
    return cleaned


def reason_required(reason: str | None, message: str = "Give the reason: it is recorded in the audit trail.") -> str:
    return text_required(reason, "reason", message)


def choice_required(value: str | None, choices: type[models.TextChoices], field: str, what: str) -> str:
    if value not in choices.values:
        allowed = ", ".join(label.lower() for label in choices.labels)
        raise ValidationError({field: f"Choose the {what}: {allowed}."})
    return str(value)


def date_not_past(value: date | None, field: str, what: str) -> date:
    if not isinstance(value, date):
        raise ValidationError({field: f"Give the {what}."})
    if value < timezone.localdate():
        raise ValidationError({field: f"The {what} cannot be in the past."})
    return value


def person_able(user: Any, capability: Capability, field: str, what: str) -> Any:
    """A named person (owner, trainer) must be an active account allowed to do the work."""
    if user is None or not getattr(user, "pk", None):
        raise ValidationError({field: f"Name the {what}."})
    if not user.is_active:
        raise ValidationError({field: f"{user.full_name} is deactivated and cannot be the {what}."})
    if not can(user, capability):
        raise ValidationError({field: f"{user.full_name}'s role does not allow them to be the {what}."})
    return user


def created_once(create: Callable[[], T], constraint: str | tuple[str, ...], refusal: ValidationError) -> T:
    """Run `create` in a savepoint and turn a concurrent duplicate (a unique `constraint` firing
    after a check-then-insert race) into the same refusal as a sequential one, instead of a 500."""
    names = (constraint,) if isinstance(constraint, str) else constraint
    try:
        with transaction.atomic():
            return create()
    except IntegrityError as error:
        if any(name in str(error) for name in names):
            raise refusal from error
        raise


def problem_collect(problems: dict[str, Any], check: Callable[[], Any]) -> Any:
    """Run one rule and keep its refusal in `problems` (field → messages) instead of raising, so that
    a service can show every problem of one submission at once, each on its field; None if refused."""
    try:
        return check()
    except ValidationError as error:
        error.update_error_dict(problems)
        return None
