"""Five failed logins lock an account until an administrator unlocks it (21 CFR 11.300(d))."""

import pytest

from qms.audit import Event
from qms.models import AuditEvent
from qms.services.users import user_locked_list, user_unlock
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def _fail(client, username: str, times: int) -> None:
    for _ in range(times):
        client.post("/login/", {"username": username, "password": "wrong-password-123"})


def test_account_locks_after_five_failures_even_with_the_right_password(client, operator):
    _fail(client, operator.username, 5)

    response = client.post("/login/", {"username": operator.username, "password": PASSWORD})

    assert response.status_code == 429
    assert b"locked" in response.content
    assert operator.username in user_locked_list()
    # locked once, although axes signals again on the refused attempt
    assert AuditEvent.objects.filter(event_type=Event.USER_LOCKED, target_label=operator.username).count() == 1
    # the five failures and the refused attempt on the locked account are all on record
    assert AuditEvent.objects.filter(event_type=Event.LOGIN_FAILED, actor_id=operator.pk).count() == 6


def test_four_failures_do_not_lock(client, operator):
    _fail(client, operator.username, 4)

    response = client.post("/login/", {"username": operator.username, "password": PASSWORD})

    assert response.status_code == 302
    assert operator.username not in user_locked_list()


def test_admin_unlock_is_audit_logged_and_lets_the_user_in(client, operator, admin_user):
    _fail(client, operator.username, 5)

    user_unlock(actor=admin_user, user=operator, reason="Identity confirmed by phone")

    event = AuditEvent.objects.get(event_type=Event.USER_UNLOCKED, target_id=str(operator.pk))
    assert event.actor_id == admin_user.pk
    assert event.reason == "Identity confirmed by phone"
    response = client.post("/login/", {"username": operator.username, "password": PASSWORD})
    assert response.status_code == 302


def test_unlock_from_the_users_page(client, operator, admin_user):
    from tests.conftest import login

    _fail(client, operator.username, 5)
    login(client, admin_user)

    page = client.get("/users/")
    assert b"locked" in page.content
    response = client.post(f"/users/{operator.pk}/unlock/", {"reason": "Verified at the desk"})

    assert response.status_code == 302
    assert operator.username not in user_locked_list()


def test_unknown_user_and_wrong_password_get_the_same_answer(client, operator):
    unknown = client.post("/login/", {"username": "nobody-here", "password": "wrong-password-123"})
    wrong = client.post("/login/", {"username": operator.username, "password": "wrong-password-123"})

    assert unknown.status_code == wrong.status_code == 200
    assert b"Username or password is not correct." in unknown.content
    assert b"Username or password is not correct." in wrong.content


def test_deactivated_user_cannot_log_in(client, operator, admin_user):
    from qms.services.users import user_deactivate

    user_deactivate(actor=admin_user, user=operator, reason="Left the facility")

    response = client.post("/login/", {"username": operator.username, "password": PASSWORD})

    assert response.status_code == 200
    assert b"Username or password is not correct." in response.content
