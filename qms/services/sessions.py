"""Logged-in sessions: when each was last active, and its end by the idle rule, recorded once.

A session ends after SESSION_IDLE_TIMEOUT without a request (21 CFR 11.10(d), Annex 11 §12.1).
The audit trail must show that every session ended, and when (11.10(e), Annex 11 §12.4): the
session's next request ends it (IdleTimeoutMiddleware), and a person who never comes back has
theirs ended by `sessions_expire_idle`, run by celery beat. Both record one SESSION_EXPIRED,
attributed to the session's person, holding when the session was last active and when it
expired (last activity + SESSION_IDLE_TIMEOUT); the event time is when it was recorded.

One SESSION_EXPIRED per session, however the request and the sweep race: the session row is
deleted first, and the event recorded only if that delete removed the row, in one transaction.
A second deleter blocks on the first's row lock and then finds nothing to delete.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import import_module
from typing import Any, Literal

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.db import transaction
from django.utils import timezone

from qms.audit import Event, record_event
from qms.models import User

# The session key IdleTimeoutMiddleware keeps the time of the session's last request under
# (seconds since the epoch); set at login too, so that the idle clock starts there.
LAST_ACTIVITY = "last_activity"


@dataclass(frozen=True)
class StoredSession:
    """A stored session of a logged-in person, as read from the session table."""

    key: str
    user_pk: str
    last_activity: datetime | None
    expire_date: datetime  # when Django stops accepting it (the row's expire_date)

    @property
    def expired_at(self) -> datetime:
        """When the idle rule ends it. A session without a recorded activity (opened before the
        middleware stamped logins, or by a login that bypassed the middleware) ends when Django
        stops accepting it: its login time is not stored, and an earlier guess could be wrong."""
        return self.expire_date if self.last_activity is None else idle_expiry(self.last_activity)


def idle_expiry(last_activity: datetime) -> datetime:
    return last_activity + settings.SESSION_IDLE_TIMEOUT


def last_activity(session: Mapping[str, Any]) -> datetime | None:
    """When the session last served a page (or logged in), in UTC; None if it never recorded it."""
    moment = session.get(LAST_ACTIVITY)
    return datetime.fromtimestamp(moment, UTC) if moment is not None else None


def sessions_stored(*, user: User | None = None) -> list[StoredSession]:
    """The stored sessions of logged-in people (of `user` only, if given), expired rows included:
    Django leaves those in the table, and their end is still to be recorded."""
    return _logged_in(_rows(), user)


def _logged_in(rows: list[tuple[str, dict[str, Any], datetime]], user: User | None = None) -> list[StoredSession]:
    return [StoredSession(key=key, user_pk=owner, last_activity=last_activity(session), expire_date=expire_date)
            for key, session, expire_date in rows
            if (owner := session.get(SESSION_KEY)) is not None and (user is None or owner == str(user.pk))]


def _rows() -> list[tuple[str, dict[str, Any], datetime]]:
    """Every stored session, decoded one by one in Python: the session data is signed, and the
    table holds the open sessions of a facility (tens), the sweep removing the rest."""
    store = _session_store()
    return [(key, store().decode(data), expire_date)  # {} if the data is unreadable
            for key, data, expire_date in store.get_model_class().objects.values_list(
                "session_key", "session_data", "expire_date")]


def session_delete(session_key: str, *, expire_date: datetime | None = None) -> bool:
    """Delete a stored session; True only if this call removed the row (another ending that got
    there first leaves nothing). With `expire_date`, only the row as it was read: a session that
    served a page since then was saved with a later expire_date and is left alone."""
    rows = _session_store().get_model_class().objects.filter(session_key=session_key)
    if expire_date is not None:
        rows = rows.filter(expire_date=expire_date)
    deleted, _ = rows.delete()
    return deleted > 0


def session_expire(*, user: User, session_key: str, last_activity: datetime) -> bool:
    """The session's next request found it idle (IdleTimeoutMiddleware): end it and record
    SESSION_EXPIRED, unless the sweep or a password change ended it first. Returns whether this
    call ended it."""
    return _expire(user=user, session_key=session_key, expire_date=None, last_activity=last_activity,
                   expired_at=idle_expiry(last_activity), detected_by="request")


def sessions_expire_idle() -> int:
    """End the stored sessions idle past SESSION_IDLE_TIMEOUT whose person never came back; returns
    how many this run ended. Idempotent: an ended session is gone, so a second run finds nothing."""
    now = timezone.now()
    rows = _rows()
    _anonymous_expired_delete(rows, now)
    idle = [stored for stored in _logged_in(rows) if stored.expired_at < now]
    people = {str(pk): user for pk, user in User.objects.in_bulk({stored.user_pk for stored in idle}).items()}
    ended = 0
    for stored in idle:
        user = people.get(stored.user_pk)
        if user is None:
            continue  # no such account: nobody's session to record (left to Django's expiry)
        # Only the row as read: a request since then may have found it still active and saved it.
        ended += _expire(user=user, session_key=stored.key, expire_date=stored.expire_date,
                         last_activity=stored.last_activity, expired_at=stored.expired_at, detected_by="sweep")
    return ended


def _anonymous_expired_delete(rows: list[tuple[str, dict[str, Any], datetime]], now: datetime) -> None:
    """Expired sessions nobody logged in with (a login page's messages) have no end to record:
    removed, so that the table holds the open sessions only (Django's clearsessions is not run: it
    would also remove the expired sessions of people whose end is still to be recorded)."""
    keys = [key for key, session, expire_date in rows if SESSION_KEY not in session and expire_date < now]
    if keys:
        _session_store().get_model_class().objects.filter(session_key__in=keys, expire_date__lt=now).delete()


def session_end_locked(*, user: User, session_key: str) -> bool:
    """The account was locked while this session was open (21 CFR 11.300(d)): its next request
    ends it and records SESSION_ENDED_LOCKED, unless another ending got there first."""
    return session_end(user=user, session_key=session_key, expire_date=None, event=Event.SESSION_ENDED_LOCKED,
                reason="The account is locked after too many failed authentication attempts", data={})


def _expire(*, user: User, session_key: str, expire_date: datetime | None, last_activity: datetime | None,
            expired_at: datetime, detected_by: Literal["request", "sweep"]) -> bool:
    return session_end(user=user, session_key=session_key, expire_date=expire_date, event=Event.SESSION_EXPIRED,
                reason=f"idle for more than {settings.SESSION_IDLE_TIMEOUT}",
                data={"last_activity": last_activity, "expired_at": expired_at, "detected_by": detected_by})


@transaction.atomic
def session_end(*, user: User, session_key: str, event: Event, reason: str, data: dict[str, Any],
                expire_date: datetime | None = None, actor: User | None = None) -> bool:
    """End one session of `user` and record `event` for it, once: only if this call removed it.
    `actor` is who ended it when that is not the session's person (an administrator's deactivation)."""
    if not session_delete(session_key, expire_date=expire_date):
        return False  # ended meanwhile, and recorded by whoever ended it
    record_event(actor=actor or user, event=event, target=user, reason=reason, data=data)
    return True


def _session_store() -> Any:
    return import_module(settings.SESSION_ENGINE).SessionStore
