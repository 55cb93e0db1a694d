"""People who may be named for a task (owners, trainers, trainees)."""

from __future__ import annotations

from django.db.models import QuerySet

from qms.models import User
from qms.roles import GMP_DATA_ROLES, MATRIX, Capability, Role


def users_with(capability: Capability) -> QuerySet[User]:
    """Active accounts whose roles hold `capability`, by printed name. An account holding the
    administrator role with a GMP role acts with neither GMP role (qms.roles.can): not offered."""
    roles = [role.value for role in MATRIX[capability]]
    people = User.objects.filter(is_active=True, groups__name__in=roles)
    if Role.ADMIN not in MATRIX[capability]:
        people = people.exclude(groups__name=Role.ADMIN.value)
    return people.distinct().order_by("full_name")


def users_who_train() -> QuerySet[User]:
    """Who may be named trainer: active people who work on GMP records (the training rules then ask
    that they hold current training on the version, approved it, or are a QA approver)."""
    return (User.objects.filter(is_active=True, groups__name__in=[role.value for role in GMP_DATA_ROLES])
            .exclude(groups__name=Role.ADMIN.value).distinct().order_by("full_name"))


def users_active() -> QuerySet[User]:
    return User.objects.filter(is_active=True).order_by("full_name")
