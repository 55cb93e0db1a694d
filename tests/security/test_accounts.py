"""Accounts: no user enumeration, deactivated accounts are dead everywhere, password rules, and
every administrator action on an account is in the audit trail.

Already covered elsewhere, not repeated here: lockout after five failures and the admin unlock
(tests/qms/test_lockout.py), a deactivated user cannot sign (tests/qms/test_signatures.py,
test_deactivated_user_cannot_sign), a deactivated user's open session ends at the next page
(tests/qms/test_role_matrix.py). There is no self-service password reset (no URL for it:
test_authorization.py would flag one), so there is no reset form to enumerate users through.
"""

from __future__ import annotations

import inspect
import re

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from qms.audit import Event
from qms.models import AuditEvent, User
from qms.roles import Role
from qms.services import users as user_services
from tests.conftest import PASSWORD, SEED, unique
from tests.security.world import World, snapshot

pytestmark = pytest.mark.django_db

WRONG = "wrong-password-123"


def _normalised(response) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    """The answer as an attacker compares it, minus the per-request token and the echoed name."""
    html = response.content.decode()
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)
    html = re.sub(r'hx-headers=\'[^\']+\'', "", html)
    html = re.sub(r'name="username"[^>]*value="[^"]*"', 'name="username"', html)
    return response.status_code, html


def _deactivated(world: World) -> User:
    user = user_services.user_create(actor=SEED, username=unique("leaver"),
                                     full_name="Lee Leaver", password=PASSWORD, roles=[Role.OPERATOR])
    return user_services.user_deactivate(actor=world.person(Role.ADMIN), user=user, reason="Left the facility")


def test_login_answers_the_same_for_unknown_user_wrong_password_and_deactivated_account(world):
    attempts = {
        "unknown user": (unique("nobody-here"), WRONG),
        "wrong password": (world.person(Role.OPERATOR).username, WRONG),
        "deactivated, right password": (_deactivated(world).username, PASSWORD),
    }
    answers = {what: _normalised(Client().post("/login/", {"username": name, "password": password}))
               for what, (name, password) in attempts.items()}

    assert len(set(answers.values())) == 1, {what: answer[0] for what, answer in answers.items()}
    status, html = answers["unknown user"]
    assert status == 200 and "Username or password is not correct." in html


def test_a_locked_account_and_a_locked_unknown_name_answer_the_same(world):
    """Lockout counts per username, existing or not, so the lock message reveals nothing."""
    known, unknown = world.person(Role.AUDITOR).username, unique("nobody-here")
    for name in (known, unknown):
        for _ in range(5):
            Client().post("/login/", {"username": name, "password": WRONG})

    known_right = _normalised(Client().post("/login/", {"username": known, "password": PASSWORD}))
    known_wrong = _normalised(Client().post("/login/", {"username": known, "password": WRONG}))
    unknown_answer = _normalised(Client().post("/login/", {"username": unknown, "password": WRONG}))

    assert known_right == known_wrong == unknown_answer
    assert known_right[0] == 429


def test_a_deactivated_user_cannot_log_in_through_the_admin_login_either(world):
    client = Client()

    response = client.post("/admin/login/", {"username": _deactivated(world).username, "password": PASSWORD})

    assert response.status_code == 200  # the form again, with its error
    assert "_auth_user_id" not in client.session


def test_a_deactivated_users_open_session_cannot_use_the_api(world, client):
    user = user_services.user_create(actor=SEED, username=unique("leaver"),
                                     full_name="Lee Leaver", password=PASSWORD, roles=[Role.AUDITOR])
    client.force_login(user)
    url = f"/api/v1/batches/{world.process_batch.number}/readings"
    assert client.get(url).status_code == 200

    user_services.user_deactivate(actor=world.person(Role.ADMIN), user=user, reason="Left the facility")

    response = client.get(url, HTTP_ACCEPT="application/json")
    assert response.status_code in (401, 403)
    assert response.json()["errors"]
    assert client.get("/api/docs/").status_code in (302, 401, 403)


@pytest.mark.parametrize("password", ["short-pw", "1234567890123", "password1234", "leaver-account-x"])
def test_weak_passwords_are_refused_and_no_account_is_created(world, password):
    username = "leaver-account-x"
    events = AuditEvent.objects.count()

    with pytest.raises(ValidationError):
        user_services.user_create(actor=world.person(Role.ADMIN), username=username, full_name="Lee Leaver",
                                  password=password, roles=[Role.OPERATOR])

    assert not User.objects.filter(username=username).exists()
    assert AuditEvent.objects.count() == events


# --- administrator actions on accounts -----------------------------------------------------------

# Every service of qms/services/users.py that acts on an account, and the event it must leave.
AUDITED = {
    "user_create": Event.USER_CREATED,
    "user_roles_set": Event.USER_ROLES_CHANGED,
    "user_deactivate": Event.USER_DEACTIVATED,
    "user_reactivate": Event.USER_REACTIVATED,
    "user_unlock": Event.USER_UNLOCKED,
    "password_change": Event.PASSWORD_CHANGED,
    "password_reset": Event.PASSWORD_RESET,
}


def test_every_account_service_is_listed_as_audited():
    acting = {name for name, function in inspect.getmembers(user_services, inspect.isfunction)
              if function.__module__ == user_services.__name__ and not name.startswith("_")
              and "actor" in inspect.signature(function).parameters}

    assert acting == set(AUDITED)


def _event(event: Event, user: User) -> AuditEvent:
    return AuditEvent.objects.filter(event_type=event, target_id=str(user.pk)).latest("pk")


def test_account_created_from_the_users_page_is_audited_with_its_roles(world, client):
    admin = world.person(Role.ADMIN)
    client.force_login(admin)
    username = unique("newcomer")

    response = client.post("/users/", {"username": username, "full_name": "Nina Newcomer", "roles": ["auditor"],
                                       "password": "a-long-enough-passphrase", "reason": "Inspection next week"})

    assert response.status_code == 302
    user = User.objects.get(username=username)
    created, roles = _event(Event.USER_CREATED, user), _event(Event.USER_ROLES_CHANGED, user)
    assert created.actor_id == roles.actor_id == admin.pk
    assert created.reason == "Inspection next week"
    assert "a-long-enough-passphrase" not in str(created.data) + str(roles.data)


@pytest.mark.parametrize(("action", "event"), [("deactivate", Event.USER_DEACTIVATED),
                                               ("unlock", Event.USER_UNLOCKED)])
def test_account_actions_from_the_users_page_are_audited_with_the_reason(world, client, action, event):
    admin, operator = world.person(Role.ADMIN), world.person(Role.OPERATOR)
    client.force_login(admin)

    response = client.post(f"/users/{operator.pk}/{action}/", {"reason": f"Security test {action}"})

    assert response.status_code == 302
    row = _event(event, operator)
    assert (row.actor_id, row.reason) == (admin.pk, f"Security test {action}")


def test_reactivation_and_role_changes_are_audited(world):
    admin, operator = world.person(Role.ADMIN), world.person(Role.OPERATOR)
    user_services.user_deactivate(actor=admin, user=operator, reason="Long leave")

    user_services.user_reactivate(actor=admin, user=operator, reason="Back from leave")
    user_services.user_roles_set(actor=admin, user=operator, roles=[Role.OPERATOR, Role.SUPERVISOR],
                                 reason="Promoted")

    reactivated, changed = _event(Event.USER_REACTIVATED, operator), _event(Event.USER_ROLES_CHANGED, operator)
    assert (reactivated.actor_id, reactivated.reason) == (admin.pk, "Back from leave")
    assert (changed.actor_id, changed.reason) == (admin.pk, "Promoted")
    assert changed.data["changes"] == [{"field": "roles", "old": ["operator"], "new": ["operator", "supervisor"]}]


def test_a_role_change_records_the_roles_held_when_it_was_made_not_a_stale_copy(world):
    admin, other_admin, operator = world.person(Role.ADMIN), world.person(Role.ADMIN), world.person(Role.OPERATOR)
    stale = User.objects.get(pk=operator.pk)
    assert stale.role_names == {"operator"}  # read (and cached) before someone else's change
    user_services.user_roles_set(actor=other_admin, user=operator, roles=[Role.OPERATOR, Role.SUPERVISOR],
                                 reason="Cover for the night shift")

    user_services.user_roles_set(actor=admin, user=stale, roles=[Role.OPERATOR], reason="Night shift over")

    changes = [event.data["changes"][0] for event in AuditEvent.objects.filter(
        event_type=Event.USER_ROLES_CHANGED, target_id=str(operator.pk)).order_by("id")]
    assert changes[-1] == {"field": "roles", "old": ["operator", "supervisor"], "new": ["operator"]}


def test_an_account_action_without_a_reason_changes_nothing(world, client):
    admin, operator = world.person(Role.ADMIN), world.person(Role.OPERATOR)
    client.force_login(admin)
    events = AuditEvent.objects.count()

    client.post(f"/users/{operator.pk}/deactivate/", {"reason": ""})

    operator.refresh_from_db()
    assert operator.is_active and AuditEvent.objects.count() == events


def test_an_administrator_cannot_deactivate_their_own_account(world, client):
    admin = world.person(Role.ADMIN)
    client.force_login(admin)

    client.post(f"/users/{admin.pk}/deactivate/", {"reason": "Oops"})

    admin.refresh_from_db()
    assert admin.is_active


def test_an_overlong_username_at_login_is_refused_not_a_500(world):
    """Found by test_forms_fuzz: the name reached django-axes' varchar(255) column (a 500)."""
    for length in (65, 256, 5000):
        response = Client().post("/login/", {"username": "9" * length, "password": WRONG})

        assert response.status_code == 200
        assert "Username or password is not correct." in response.content.decode()


def test_an_admin_cannot_change_their_own_roles_and_roles_change_only_with_a_reason(world):
    from django.core.exceptions import PermissionDenied, ValidationError

    from qms.services.users import user_roles_set

    admin, operator = world.person(Role.ADMIN), world.person(Role.OPERATOR)
    before = snapshot()

    with pytest.raises(PermissionDenied):
        user_roles_set(actor=admin, user=admin, roles=[Role.ADMIN, Role.QA_APPROVER], reason="Covering QA")
    with pytest.raises(ValidationError):
        user_roles_set(actor=admin, user=operator, roles=[Role.SUPERVISOR], reason=" ")

    assert snapshot() == before
    admin.refresh_from_db()
    assert Role.QA_APPROVER.value not in admin.role_names
