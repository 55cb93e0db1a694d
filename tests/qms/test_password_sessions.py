"""A password change ends the holder's other open sessions, and the audit trail says so: one
SESSION_ENDED_PASSWORD_CHANGED per ended session, attributed to the holder, at the moment of the
change, in the change's transaction (21 CFR 11.10(e), 11.300(b); Annex 11 §12).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.sessions.models import Session
from django.db import transaction
from django.test import Client
from django.utils import timezone

from qms.audit import Event
from qms.middleware import LAST_ACTIVITY
from qms.models import AuditEvent, User
from qms.services import users as user_services
from tests.conftest import PASSWORD, login

pytestmark = pytest.mark.django_db

NEW = "amber-lantern-quietly-folds"
WRONG = "wrong-password-123"
REASON = "The password was changed in another session of the account holder"


def _change(client: Client, current: str = PASSWORD, new: str = NEW):  # type: ignore[no-untyped-def]
    return client.post("/account/password/", {"current_password": current, "new_password": new,
                                              "new_password_again": new})


def _ended(user: User) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(event_type=Event.SESSION_ENDED_PASSWORD_CHANGED,
                                          target_id=str(user.pk)).order_by("pk"))


def _active_at(client: Client, moment: float) -> str:
    """Mark the client's session as last active at `moment`; returns its key."""
    session = client.session
    session[LAST_ACTIVITY] = moment
    session.save()
    return session.session_key


def _logged_in(client: Client) -> bool:
    response = client.get("/account/password/")
    return response.status_code == 200


def test_password_change_records_the_end_of_each_other_session_for_the_holder(client, operator):
    tablet, desktop = login(Client(), operator), login(Client(), operator)
    now = float(int(time.time()))  # whole seconds: the audit trail stores milliseconds
    tablet_key, desktop_key = _active_at(tablet, now - 120), _active_at(desktop, now - 60)
    login(client, operator)
    current_key = client.session.session_key
    before = timezone.now()

    response = _change(client)

    assert response.status_code == 302
    ended = _ended(operator)
    assert len(ended) == 2  # the tablet and the desktop; nothing for the session that changed it
    for event in ended:
        assert (event.actor_id, event.actor_label) == (operator.pk, operator.username)
        assert (event.target_type, event.target_label) == ("qms.user", str(operator))
        assert event.reason == REASON
        assert before <= event.occurred_at <= timezone.now()
        assert event.occurred_at.utcoffset() == timedelta(0)  # server time, stored in UTC
    recorded = sorted(datetime.fromisoformat(e.data["last_activity"]) for e in ended)
    assert recorded == [datetime.fromtimestamp(now - 120, UTC), datetime.fromtimestamp(now - 60, UTC)]
    [changed] = AuditEvent.objects.filter(event_type=Event.PASSWORD_CHANGED, target_id=str(operator.pk))
    assert all(event.pk > changed.pk for event in ended)  # the cause, then its effects
    assert not Session.objects.filter(session_key__in=[tablet_key, desktop_key]).exists()  # ended now
    assert current_key not in str([e.data for e in ended])
    assert _logged_in(client)
    assert not _logged_in(tablet) and not _logged_in(desktop)


def test_another_persons_session_is_neither_ended_nor_recorded(client, operator, verifier):
    colleague = login(Client(), verifier)
    login(client, operator)

    _change(client)

    assert _logged_in(colleague)
    assert _ended(verifier) == []
    assert _ended(operator) == []  # the holder had no other session: nothing ended, nothing recorded


@pytest.mark.parametrize(("current", "new"), [(WRONG, NEW), (PASSWORD, "short-pw1"), (PASSWORD, PASSWORD)])
def test_a_refused_password_change_ends_no_session_and_records_none(client, operator, current, new):
    tablet = login(Client(), operator)
    login(client, operator)

    response = _change(client, current=current, new=new)

    assert response.status_code == 422
    assert _ended(operator) == []
    assert _logged_in(tablet) and _logged_in(client)


def test_a_session_already_past_the_idle_timeout_is_not_recorded_as_ended_by_the_change(client, operator,
                                                                                       settings):
    """That session had already ended by the idle rule (IdleTimeoutMiddleware), not by the change."""
    idle, tablet = login(Client(), operator), login(Client(), operator)
    _active_at(idle, time.time() - settings.SESSION_IDLE_TIMEOUT.total_seconds() - 5)
    _active_at(tablet, time.time())
    login(client, operator)

    _change(client)

    assert len(_ended(operator)) == 1
    assert not _logged_in(idle) and not _logged_in(tablet)


def test_the_sessions_end_and_are_recorded_only_if_the_password_change_commits(operator):
    tablet = login(Client(), operator)

    with pytest.raises(RuntimeError), transaction.atomic():
        user_services.password_change(actor=operator, current_password=PASSWORD, new_password=NEW)
        raise RuntimeError("rolled back after the change")

    assert _ended(operator) == []
    assert _logged_in(tablet)


def test_a_change_made_outside_any_session_ends_every_session_of_the_holder(operator):
    tablet, desktop = login(Client(), operator), login(Client(), operator)

    user_services.password_change(actor=operator, current_password=PASSWORD, new_password=NEW)

    assert len(_ended(operator)) == 2
    assert not _logged_in(tablet) and not _logged_in(desktop)


def test_a_change_made_by_another_session_meanwhile_is_not_overwritten(operator, monkeypatch):
    """The current password is checked before the account is locked for the change: if another
    session changed it in between, whoever proved only the replaced password changes nothing."""
    from django.contrib.auth import authenticate
    from django.contrib.auth.hashers import make_password

    def authenticate_then_changed_elsewhere(*args, **kwargs):  # type: ignore[no-untyped-def]
        user = authenticate(*args, **kwargs)
        User.objects.filter(pk=operator.pk).update(password=make_password("changed-elsewhere-first-9"))
        return user

    monkeypatch.setattr(user_services, "authenticate", authenticate_then_changed_elsewhere)

    with pytest.raises(Exception, match="changed meanwhile"):
        user_services.password_change(actor=operator, current_password=PASSWORD, new_password=NEW)

    operator.refresh_from_db()  # (the other change rolls back with this one: both ran in one transaction here)
    assert not operator.check_password(NEW)
    assert not AuditEvent.objects.filter(event_type=Event.PASSWORD_CHANGED, target_id=str(operator.pk)).exists()
