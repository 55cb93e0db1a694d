"""Accounts an administrator created before first-login password changes were enforced are flagged
by migration qms/0010 (21 CFR 11.300(b)): the rule, tested on the migration's own function with
the current models."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps

from qms.audit import Event, SystemActor
from qms.models import AuditEvent
from qms.roles import Role
from qms.services import users as user_services

pytestmark = pytest.mark.django_db
GIVEN = "handed-over-by-admin-42"
OWN = "amber-lantern-quietly-folds"
migration = importlib.import_module("qms.migrations.0010_flag_initial_passwords")


def legacy_account(actor, username: str):  # type: ignore[no-untyped-def]
    """An account as it was before 0008: created without the flag."""
    user = user_services.user_create(actor=actor, username=username, full_name="Marc Lefevre", password=GIVEN,
                                     roles=[Role.OPERATOR], reason="Backup operator")
    type(user).objects.filter(pk=user.pk).update(must_change_password=False)
    user.refresh_from_db()
    return user


def test_accounts_an_administrator_created_and_never_changed_are_flagged_and_the_flag_is_recorded(admin_user):
    untouched = legacy_account(admin_user, "legacy-op1")
    changed = legacy_account(admin_user, "legacy-op2")
    user_services.password_change(actor=changed, current_password=GIVEN, new_password=OWN)
    seeded = legacy_account(SystemActor("system:seed"), "demo-op")
    away = legacy_account(admin_user, "legacy-op3")
    user_services.user_deactivate(actor=admin_user, user=away, reason="On leave during the upgrade")

    migration.initial_passwords_flag(apps, None)

    for account in (untouched, changed, seeded, away):
        account.refresh_from_db()
    assert (untouched.must_change_password, changed.must_change_password, seeded.must_change_password) == (
        True, False, False)
    # Back from leave, the account still cannot use the password the administrator chose.
    assert away.must_change_password
    event = AuditEvent.objects.get(event_type=Event.USER_CHANGED, target_id=str(untouched.pk))
    assert event.actor_label == "system:migration" and "never changed the password" in event.reason
    assert event.data["changes"] == [{"field": "must_change_password", "old": False, "new": True}]
    assert not AuditEvent.objects.filter(event_type=Event.USER_CHANGED, target_id=str(changed.pk)).exists()
