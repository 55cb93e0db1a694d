"""Own password change, role changes from the users page, and passwords that contain the username.

21 CFR 11.300(b) (passwords revised), 11.300(d) (attempts at unauthorised use detected and
counted), 11.10(e) and 11.10(g) (who changed which roles, when and why; only administrators).
"""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from qms.audit import Event
from qms.models import AuditEvent, User
from qms.passwords import ContainsUserAttributeValidator
from qms.roles import Role
from qms.services import users as user_services
from tests.conftest import PASSWORD, SEED, login, unique

pytestmark = pytest.mark.django_db

NEW = "amber-lantern-quietly-folds"
WRONG = "wrong-password-123"


def _change(client: Client, current: str = PASSWORD, new: str = NEW, again: str | None = None):  # type: ignore[no-untyped-def]
    return client.post("/account/password/", {"current_password": current, "new_password": new,
                                              "new_password_again": new if again is None else again})


def _events(event: Event, user: User) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(event_type=event, target_id=str(user.pk)).order_by("pk"))


# --- own password change --------------------------------------------------------------------------

def test_header_links_to_the_password_change_for_every_logged_in_person(client, operator):
    login(client, operator)

    home = client.get("/")

    assert home.status_code == 200
    assert 'href="/account/password/"' in home.content.decode()


def test_password_change_is_recorded_without_the_password_and_keeps_this_session_only(client, operator):
    other_session = Client()
    other_session.force_login(operator)
    login(client, operator)

    response = _change(client)

    assert response.status_code == 302
    operator.refresh_from_db()
    assert operator.check_password(NEW) and not operator.check_password(PASSWORD)
    [event] = _events(Event.PASSWORD_CHANGED, operator)
    assert event.actor_id == operator.pk and event.reason
    recorded = str(event.data) + event.reason
    assert NEW not in recorded and PASSWORD not in recorded and operator.password not in recorded
    assert client.get("/account/password/").status_code == 200  # update_session_auth_hash: still logged in
    assert other_session.get("/account/password/").status_code == 302  # a session of the old password ends


def test_wrong_current_password_is_refused_recorded_and_changes_nothing(client, operator):
    login(client, operator)
    failed_before = len(AuditEvent.objects.filter(event_type=Event.LOGIN_FAILED, actor_id=operator.pk))

    response = _change(client, current=WRONG)

    assert response.status_code == 422
    html = response.content.decode()
    assert "The current password is not correct" in html
    assert WRONG not in html and NEW not in html  # passwords are never sent back into the page
    operator.refresh_from_db()
    assert operator.check_password(PASSWORD)
    assert _events(Event.PASSWORD_CHANGED, operator) == []
    failed = AuditEvent.objects.filter(event_type=Event.LOGIN_FAILED, actor_id=operator.pk)
    assert failed.count() == failed_before + 1
    assert WRONG not in str(failed.latest("pk").data)


def test_five_wrong_current_passwords_lock_the_account_like_failed_logins(client, operator):
    login(client, operator)
    for _ in range(5):
        _change(client, current=WRONG)

    assert operator.username in user_services.user_locked_list()
    assert Client().post("/login/", {"username": operator.username, "password": PASSWORD}).status_code == 429
    ended = _change(client)  # the right password no longer helps either: the session is over
    assert ended.status_code == 302 and ended["Location"].startswith("/login/")
    operator.refresh_from_db()
    assert operator.check_password(PASSWORD)


def test_locking_an_account_ends_its_open_sessions(client, operator):
    """Found by exploratory QA: the locked account's open session went on reporting deviations."""
    other = Client()
    login(other, operator)  # e.g. the tablet, still logged in
    login(client, operator)
    for _ in range(5):
        _change(client, current=WRONG)

    for session in (client, other):
        response = session.get("/qms/deviations/new/")
        assert response.status_code == 302 and response["Location"].startswith("/login/")
        assert session.get("/batches/").status_code == 302  # logged out, not just refused once
    assert len(_events(Event.SESSION_ENDED_LOCKED, operator)) == 2
    assert not _events(Event.LOGGED_OUT, operator)  # one ending per session: nobody logged out


@pytest.mark.parametrize("new", ["short-pw1", "123456789012345", "password1234", "{username}{username}",
                                 "olivia-operator-2024"])
def test_new_password_must_meet_the_password_rules(client, operator, new):
    login(client, operator)
    new = new.format(username=operator.username)

    response = _change(client, new=new)

    assert response.status_code == 422
    assert response.context["form"].errors["new_password"]
    operator.refresh_from_db()
    assert operator.check_password(PASSWORD)
    assert _events(Event.PASSWORD_CHANGED, operator) == []


def test_the_new_password_typed_differently_twice_changes_nothing(client, operator):
    login(client, operator)

    response = _change(client, again=NEW + "x")

    assert response.status_code == 422
    assert "The two new passwords differ." in response.content.decode()
    operator.refresh_from_db()
    assert operator.check_password(PASSWORD)


def test_the_new_password_must_differ_from_the_current_one(operator):
    with pytest.raises(ValidationError, match="differ from the current"):
        user_services.password_change(actor=operator, current_password=PASSWORD, new_password=PASSWORD)

    assert _events(Event.PASSWORD_CHANGED, operator) == []


# --- passwords that contain the username or the printed name -------------------------------------

def test_the_username_typed_twice_is_refused_for_a_new_account(admin_user):
    username = unique("operator1")

    with pytest.raises(ValidationError, match="must not contain your username"):
        user_services.user_create(actor=admin_user, username=username, full_name="Otto Nobody",
                                  password=username + username, roles=[Role.OPERATOR])

    assert not User.objects.filter(username=username).exists()


def test_the_users_page_refuses_a_password_containing_the_username_and_keeps_the_form(client, admin_user):
    login(client, admin_user)
    username = unique("operator1")

    response = client.post("/users/", {"username": username, "full_name": "Otto Nobody", "roles": ["operator"],
                                       "password": username.upper() + username, "reason": "New starter"})

    assert response.status_code == 422  # refused: the form comes back with what was typed
    assert "must not contain your username" in response.content.decode()
    assert response.context["form"]["username"].value() == username
    assert not User.objects.filter(username=username).exists()


@pytest.mark.parametrize(("password", "refused"), [
    ("operator1operator1", True),
    ("xx-OPERATOR1-xx-long", True),
    ("martin-cleanroom-42", True),       # a word of the printed name, any case
    ("cleanroom-MARTIN-42", True),
    ("li-and-an-quietly-42", False),     # words shorter than four letters are not refused
    ("amber-lantern-quietly", False),
])
def test_the_validator_refuses_username_and_name_words(password, refused):
    person = User(username="operator1", full_name="Olivia Li-An Martin")
    validator = ContainsUserAttributeValidator()

    if refused:
        with pytest.raises(ValidationError):
            validator.validate(password, person)
    else:
        validator.validate(password, person)


def test_the_validator_is_one_of_the_password_rules():
    from django.contrib.auth.password_validation import get_default_password_validators

    assert any(isinstance(v, ContainsUserAttributeValidator) for v in get_default_password_validators())


# --- role changes from the users page -------------------------------------------------------------

def _roles_page(operator: User) -> str:
    return f"/users/{operator.pk}/roles/"


def test_the_users_page_links_to_each_accounts_roles_and_shows_them_checked(client, admin_user, operator):
    login(client, admin_user)

    assert _roles_page(operator) in client.get("/users/").content.decode()
    html = client.get(_roles_page(operator)).content.decode()
    assert re.search(r'value="operator"[^>]*checked', html)
    assert not re.search(r'value="supervisor"[^>]*checked', html)
    assert 'value="instrument"' not in html  # machine accounts are registered, not given roles here


def test_role_change_is_audited_with_who_why_and_the_roles_before_and_after(client, admin_user, operator):
    login(client, admin_user)

    response = client.post(_roles_page(operator), {"roles": ["operator", "supervisor"],
                                                   "reason": "Promoted to shift supervisor"})

    assert response.status_code == 302
    assert User.objects.get(pk=operator.pk).role_names == {"operator", "supervisor"}
    event = _events(Event.USER_ROLES_CHANGED, operator)[-1]
    assert (event.actor_id, event.reason) == (admin_user.pk, "Promoted to shift supervisor")
    assert event.data["changes"] == [{"field": "roles", "old": ["operator"], "new": ["operator", "supervisor"]}]


def test_a_role_the_page_does_not_offer_is_kept(client, admin_user, make_user):
    """The instrument role is not on the page; saving the page must not silently withdraw it."""
    from qms.roles import Role

    account = make_user(roles=[Role.INSTRUMENT, Role.OPERATOR])
    login(client, admin_user)

    response = client.post(_roles_page(account), {"roles": ["supervisor"], "reason": "Moved to supervision"})

    assert response.status_code == 302
    assert User.objects.get(pk=account.pk).role_names == {"instrument", "supervisor"}


def test_the_instrument_role_is_not_given_by_a_role_change(admin_user, operator):
    from qms.roles import Role

    with pytest.raises(ValidationError, match="registering an instrument"):
        user_services.user_roles_set(actor=admin_user, user=operator, roles=[Role.INSTRUMENT], reason="Shortcut")

    assert User.objects.get(pk=operator.pk).role_names == {"operator"}


@pytest.mark.parametrize("reason", ["", "   "])
def test_role_change_without_a_reason_changes_nothing_and_keeps_the_choices(client, admin_user, operator, reason):
    login(client, admin_user)
    events = AuditEvent.objects.filter(event_type=Event.USER_ROLES_CHANGED).count()

    response = client.post(_roles_page(operator), {"roles": ["supervisor", "qa_reviewer"], "reason": reason})

    assert response.status_code == 422
    html = response.content.decode()
    assert re.search(r'value="supervisor"[^>]*checked', html) and re.search(r'value="qa_reviewer"[^>]*checked', html)
    assert not re.search(r'value="operator"[^>]*checked', html)
    assert response.context["form"].errors["reason"]
    assert User.objects.get(pk=operator.pk).role_names == {"operator"}
    assert AuditEvent.objects.filter(event_type=Event.USER_ROLES_CHANGED).count() == events


def test_an_administrator_cannot_change_their_own_roles_from_the_page(client, admin_user):
    login(client, admin_user)

    response = client.post(_roles_page(admin_user), {"roles": ["admin", "qa_approver"], "reason": "Covering QA"})

    assert response.status_code == 422
    html = response.content.decode()
    assert "cannot change their own roles" in html and "Covering QA" in html
    assert User.objects.get(pk=admin_user.pk).role_names == {"admin"}


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.SUPERVISOR, Role.QA_APPROVER, Role.AUDITOR, None])
def test_only_an_administrator_may_open_or_post_the_roles_page(client, make_user, operator, role):
    login(client, make_user(role))
    events = AuditEvent.objects.filter(event_type=Event.USER_ROLES_CHANGED).count()

    assert client.get(_roles_page(operator)).status_code == 403
    response = client.post(_roles_page(operator), {"roles": ["admin"], "reason": "Let me in"})

    assert response.status_code == 403
    assert User.objects.get(pk=operator.pk).role_names == {"operator"}
    assert AuditEvent.objects.filter(event_type=Event.USER_ROLES_CHANGED).count() == events


def test_the_role_change_service_refuses_a_non_administrator(operator):
    """The service itself refuses a non-administrator, whatever page or command calls it."""
    from django.core.exceptions import PermissionDenied

    supervisor = user_services.user_create(actor=SEED, username=unique("supervisor"), full_name="Sam Sup",
                                           password=PASSWORD, roles=[Role.SUPERVISOR])
    with pytest.raises(PermissionDenied):
        user_services.user_roles_set(actor=supervisor, user=operator, roles=[Role.ADMIN], reason="Let me in")
