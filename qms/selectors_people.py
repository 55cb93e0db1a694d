"""People who may be named for a task (owners, trainers, trainees)."""

from __future__ import annotations

from django.db.models import QuerySet

from qms.models import User
from qms.roles import MATRIX, Capability


def users_with(capability: Capability) -> QuerySet[User]:
    """Active accounts whose roles hold `capability`, by printed name."""
    roles = [role.value for role in MATRIX[capability]]
    return User.objects.filter(is_active=True, groups__name__in=roles).distinct().order_by("full_name")


def users_active() -> QuerySet[User]:
    return User.objects.filter(is_active=True).order_by("full_name")
