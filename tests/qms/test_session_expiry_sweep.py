"""Every session ends, and the audit trail says when (21 CFR 11.10(d), 11.10(e); Annex 11 §12):
a session idle past SESSION_IDLE_TIMEOUT whose person never comes back is ended by the idle sweep
(celery beat), with one SESSION_EXPIRED attributed to its person. The next request and the sweep
never both record it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings as django_settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from qms.audit import Event
from qms.middleware import LAST_ACTIVITY
from qms.models import AuditEvent, User
from qms.roles import Role
from qms.services import sessions as session_services
from qms.services.sessions import session_expire, sessions_expire_idle
from tests.conftest import login, person, while_held

REASON = f"idle for more than {django_settings.SESSION_IDLE_TIMEOUT}"


@pytest.fixture(autouse=True)
def _only_this_tests_sessions(request: pytest.FixtureRequest) -> None:
    """The sweep reads the whole session table. Sessions that tests with a live server committed
    earlier in the run (e2e, faults) are idle past the timeout by the time a long run gets here, and
    the sweep would end and count them too. Inside a test's own transaction they are set aside (the
    deletion rolls back with it); tests on committed data leave the table alone."""
    names = set(request.fixturenames)
    if "db" in names and not names & {"committed", "transactional_db", "live_server"}:
        request.getfixturevalue("db")
        Session.objects.all().delete()


def _active_at(client: Client, moment: float) -> str:
    """Mark the client's session as last active at `moment` (whole seconds: the audit trail
    stores milliseconds); returns its key."""
    session = client.session
    session[LAST_ACTIVITY] = float(int(moment))
    session.save()
    return session.session_key


def _idle(client: Client, seconds: float = 120) -> float:
    """Make the client's session idle for `seconds` past the timeout; returns its last activity."""
    last = float(int(time.time() - django_settings.SESSION_IDLE_TIMEOUT.total_seconds() - seconds))
    _active_at(client, last)
    return last


def _expired(user: User) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(event_type=Event.SESSION_EXPIRED, target_id=str(user.pk)).order_by("pk"))


def _ended(user: User) -> list[str]:
    """Every ending recorded for `user`'s sessions (an idle session must have exactly one)."""
    endings = [Event.SESSION_EXPIRED, Event.LOGGED_OUT, Event.SESSION_ENDED_LOCKED,
               Event.SESSION_ENDED_PASSWORD_CHANGED]
    return list(AuditEvent.objects.filter(event_type__in=endings, target_id=str(user.pk))
                .order_by("pk").values_list("event_type", flat=True))


def _logged_in(client: Client) -> bool:
    return client.get("/account/password/").status_code == 200


def _moment(recorded: str | None) -> datetime | None:
    return None if recorded is None else datetime.fromisoformat(recorded)


# --- the sweep ---------------------------------------------------------------------------------

@pytest.mark.django_db
def test_an_idle_session_whose_person_never_came_back_is_ended_and_recorded(operator):
    tablet = login(Client(), operator)
    last = _idle(tablet)
    key = tablet.session.session_key
    before = timezone.now() - timedelta(milliseconds=1)

    assert sessions_expire_idle() == 1

    [event] = _expired(operator)
    assert (event.actor_id, event.actor_label) == (operator.pk, operator.username)
    assert (event.target_type, event.target_label) == ("qms.user", str(operator))
    assert event.reason == REASON
    assert before <= event.occurred_at <= timezone.now()  # the sweep's time, server time
    assert _moment(event.data["last_activity"]) == datetime.fromtimestamp(last, UTC)
    assert _moment(event.data["expired_at"]) == datetime.fromtimestamp(last, UTC) + django_settings.SESSION_IDLE_TIMEOUT
    assert event.data["detected_by"] == "sweep"
    assert not Session.objects.filter(session_key=key).exists()
    assert not _logged_in(tablet)


@pytest.mark.django_db
def test_an_idle_session_past_djangos_own_expiry_is_still_recorded(operator):
    """The common case: the session row outlives Django's expiry (SESSION_COOKIE_AGE is the timeout
    plus a minute) until someone deletes it; that it ended is still to be recorded."""
    tablet = login(Client(), operator)
    last = _idle(tablet, seconds=3600)
    key = tablet.session.session_key
    Session.objects.filter(session_key=key).update(expire_date=timezone.now() - timedelta(minutes=59))

    assert sessions_expire_idle() == 1

    [event] = _expired(operator)
    assert _moment(event.data["expired_at"]) == datetime.fromtimestamp(last, UTC) + django_settings.SESSION_IDLE_TIMEOUT
    assert not Session.objects.filter(session_key=key).exists()


@pytest.mark.django_db
def test_a_second_sweep_ends_and_records_nothing_more(operator):
    _idle(login(Client(), operator))
    sessions_expire_idle()

    assert sessions_expire_idle() == 0

    assert _ended(operator) == [Event.SESSION_EXPIRED]


@pytest.mark.django_db
def test_an_active_session_is_left_alone(operator):
    tablet = login(Client(), operator)
    key = _active_at(tablet, time.time() - django_settings.SESSION_IDLE_TIMEOUT.total_seconds() + 60)

    sessions_expire_idle()

    assert _expired(operator) == []
    assert Session.objects.filter(session_key=key).exists()
    assert _logged_in(tablet)


@pytest.mark.django_db
def test_only_the_idle_session_ends_and_its_event_names_its_own_person(operator, verifier):
    idle_tablet, colleague = login(Client(), operator), login(Client(), verifier)
    own_desktop = login(Client(), operator)
    _idle(idle_tablet)

    sessions_expire_idle()

    assert len(_expired(operator)) == 1
    assert _expired(verifier) == []
    assert _logged_in(colleague) and _logged_in(own_desktop)
    assert not _logged_in(idle_tablet)


@pytest.mark.django_db
def test_a_session_that_served_a_page_after_the_sweep_read_it_is_not_ended(operator, monkeypatch):
    """The sweep deletes a session only as it read it: a request in between restarted its idle clock."""
    tablet = login(Client(), operator)
    _idle(tablet)
    read = session_services._rows

    def read_then_the_person_comes_back():  # type: ignore[no-untyped-def]
        stored = read()
        _active_at(tablet, time.time())
        return stored

    monkeypatch.setattr(session_services, "_rows", read_then_the_person_comes_back)

    assert sessions_expire_idle() == 0

    assert _expired(operator) == []
    assert _logged_in(tablet)


@pytest.mark.django_db
def test_a_session_without_recorded_activity_ends_when_django_stops_accepting_it(operator):
    """Its login time is not stored (a login that bypassed the middleware): the sweep waits for the
    session's own expiry rather than guess, and records that moment."""
    tablet = Client()
    tablet.force_login(operator)
    key = tablet.session.session_key
    assert LAST_ACTIVITY not in tablet.session

    assert sessions_expire_idle() == 0  # Django still accepts it
    expiry = (timezone.now() - timedelta(minutes=3)).replace(microsecond=0)
    Session.objects.filter(session_key=key).update(expire_date=expiry)

    assert sessions_expire_idle() == 1

    [event] = _expired(operator)
    assert event.data["last_activity"] is None
    assert _moment(event.data["expired_at"]) == expiry
    assert not Session.objects.filter(session_key=key).exists()


@pytest.mark.django_db
def test_a_login_starts_the_idle_clock(operator):
    before = time.time()

    tablet = login(Client(), operator)

    assert before <= tablet.session[LAST_ACTIVITY] <= time.time()


# --- the next request and the sweep: one SESSION_EXPIRED -------------------------------------

@pytest.mark.django_db
def test_the_next_request_records_the_same_event_and_no_logout(operator):
    tablet = login(Client(), operator)
    last = _idle(tablet)

    response = tablet.get("/account/password/")

    assert response.status_code == 302 and response["Location"].startswith("/login/")
    [event] = _expired(operator)
    assert event.reason == REASON
    assert event.data == {
        "last_activity": datetime.fromtimestamp(last, UTC).isoformat().replace("+00:00", "Z"),
        "expired_at": (datetime.fromtimestamp(last, UTC) + django_settings.SESSION_IDLE_TIMEOUT)
        .isoformat().replace("+00:00", "Z"),
        "detected_by": "request",
    }
    assert _ended(operator) == [Event.SESSION_EXPIRED]  # the person did not log out


@pytest.mark.django_db
def test_the_next_request_then_the_sweep_record_one_expiry(operator):
    tablet = login(Client(), operator)
    _idle(tablet)
    tablet.get("/account/password/")

    assert sessions_expire_idle() == 0

    assert _ended(operator) == [Event.SESSION_EXPIRED]


@pytest.mark.django_db
def test_the_sweep_then_the_next_request_record_one_expiry(operator):
    tablet = login(Client(), operator)
    _idle(tablet)
    sessions_expire_idle()

    response = tablet.get("/account/password/")

    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert _ended(operator) == [Event.SESSION_EXPIRED]


@pytest.mark.parametrize("first", ["request", "sweep"])
def test_the_request_and_the_sweep_racing_record_one_expiry(committed, first):
    """Whichever deletes the session row first records the event; the other waits on that row's
    lock, then finds nothing to delete and records nothing."""
    holder = person(Role.OPERATOR, "Olivia Operator")
    tablet = login(Client(), holder)
    last = _idle(tablet)
    key = tablet.session.session_key

    def request_path() -> bool:
        return session_expire(user=holder, session_key=key, last_activity=datetime.fromtimestamp(last, UTC))

    hold, attempt = (request_path, sessions_expire_idle) if first == "request" else (sessions_expire_idle, request_path)
    outcome = while_held(hold, attempt)

    assert not isinstance(outcome, Exception), outcome
    [event] = _expired(holder)
    assert event.data["detected_by"] == first  # the one that got there first recorded it
    assert _ended(holder) == [Event.SESSION_EXPIRED]
    assert not Session.objects.filter(session_key=key).exists()


# --- celery beat ---------------------------------------------------------------------------------

def test_the_sweep_is_scheduled_on_celery_beat():
    schedule = {entry["task"] for entry in django_settings.CELERY_BEAT_SCHEDULE.values()}

    assert "qms.sessions_expire_idle" in schedule


@pytest.mark.worker
def test_the_beat_task_ends_an_idle_session_through_a_real_worker(worker):
    from qms.tasks import sessions_expire_idle as task

    holder = person(Role.OPERATOR, "Olivia Operator")
    tablet = login(Client(), holder)
    _idle(tablet)
    key = tablet.session.session_key

    task.delay()

    deadline = time.monotonic() + 60
    while not _expired(holder) and time.monotonic() < deadline:
        time.sleep(0.25)
    task.delay()  # a second run ends nothing more
    time.sleep(2)
    assert _ended(holder) == [Event.SESSION_EXPIRED]
    assert not Session.objects.filter(session_key=key).exists()


@pytest.mark.django_db
def test_the_sweep_removes_expired_sessions_nobody_logged_in_with_and_keeps_the_rest():
    """A login page's session (messages, no person) has no end to record: once expired it is
    removed, so the table the sweep reads holds the open sessions only. Unexpired ones stay."""
    from django.contrib.sessions.backends.db import SessionStore

    expired, current = SessionStore(), SessionStore()
    for session in (expired, current):
        session["_messages"] = "[]"
        session.create()
    Session.objects.filter(session_key=expired.session_key).update(expire_date=timezone.now() - timedelta(minutes=1))

    sessions_expire_idle()

    assert not Session.objects.filter(session_key=expired.session_key).exists()
    assert Session.objects.filter(session_key=current.session_key).exists()
