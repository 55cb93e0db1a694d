"""Accounts: created, given roles, deactivated, unlocked, always with the administrator's reason;
and the holder's own password change.

Users are never deleted (21 CFR 11.10(e)): a deactivated user keeps every record attributable.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet, Sum
from django.http import HttpRequest
from django.utils import timezone

from qms.audit import Event, SystemActor, create_with_reason, record_event, save_with_reason
from qms.models import User
from qms.roles import GMP_DATA_ROLES, MACHINE_ROLES, Capability, Role, admin_with_gmp, can
from qms.services._guards import locked, reason_required
from qms.services.sessions import session_end, sessions_stored
from qms.signatures import request_for_authentication


def _ensure_admin(actor: User | SystemActor) -> None:
    # A management command run on the server (seed_demo, bootstrap) acts as the system.
    if isinstance(actor, SystemActor):
        return
    if not can(actor, Capability.USER_MANAGE):
        raise PermissionDenied("Only an administrator manages user accounts.")


def _roles_apply(user: User, roles: Iterable[Role | str]) -> list[str]:
    chosen = {Role(role) for role in roles}
    if admin_with_gmp({role.value for role in chosen}):
        raise ValidationError({"roles": "The administrator role cannot go with a role that records or signs GMP "
                                        f"data ({', '.join(sorted(r.value for r in chosen & GMP_DATA_ROLES))}): "
                                        "administration stays apart from the records (EU GMP Annex 11 §12.1)."})
    names = sorted(role.value for role in chosen)
    user.groups.set(Group.objects.filter(name__in=names))
    user.__dict__.pop("_role_names", None)
    return names


@transaction.atomic
def user_create(*, actor: User | SystemActor, username: str, full_name: str, password: str,
                roles: Iterable[Role | str], job_title: str = "", email: str = "",
                reason: str = "New account") -> User:
    """Create an account with its roles; the password must meet the password rules. An account an
    administrator creates must change its password at first login, before anything else: the
    administrator knows it (21 CFR 11.300(b), 11.10(d)). Accounts created by the system (the demo
    seed, tests) are not flagged."""
    _ensure_admin(actor)
    if User.objects.filter(username=username).exists():
        raise ValidationError({"username": "This username is taken (usernames are never reused)."})
    candidate = User(username=username, full_name=full_name, email=email, job_title=job_title)
    validate_password(password, candidate)
    candidate.set_password(password)
    user = create_with_reason(User, actor=actor, reason=reason, event=Event.USER_CREATED,
                              username=username, full_name=full_name, email=email,
                              job_title=job_title, password=candidate.password,
                              must_change_password=isinstance(actor, User))
    names = _roles_apply(user, roles)
    record_event(actor=actor, event=Event.USER_ROLES_CHANGED, target=user, reason=reason,
                 data={"changes": [{"field": "roles", "old": [], "new": names}]})
    return user


@transaction.atomic
def user_roles_set(*, actor: User, user: User, roles: Iterable[Role | str], reason: str) -> User:
    """Change a user's roles, saying why; nobody changes their own (segregation of duties). The
    instrument role is neither given nor taken here (it belongs to instrument registration)."""
    _ensure_admin(actor)
    reason = reason_required(reason)
    if actor.pk == user.pk:
        raise PermissionDenied("Administrators cannot change their own roles.")
    locked(user)  # one role change at a time; the caller's instance is updated below
    user.__dict__.pop("_role_names", None)  # read the roles as they are now that we hold the lock
    before = sorted(user.role_names)
    requested = {Role(role) for role in roles}
    machine = {role for role in MACHINE_ROLES if role.value in before}
    if (requested & MACHINE_ROLES) - machine:
        raise ValidationError({"roles": "The instrument role comes with registering an instrument "
                                        "(create_instrument), not with a role change."})
    # A machine role the account holds stays: a role change is about what a person may do.
    after = _roles_apply(user, (requested - MACHINE_ROLES) | machine)
    record_event(actor=actor, event=Event.USER_ROLES_CHANGED, target=user, reason=reason,
                 data={"changes": [{"field": "roles", "old": before, "new": after}]})
    return user


@transaction.atomic
def password_change(*, actor: User, current_password: str, new_password: str,
                    request: HttpRequest | None = None) -> User:
    """The account holder changes their own password (21 CFR 11.300(b): periodic revision).

    The current password is checked through django-axes like a login or a signing, so a wrong one
    is refused, recorded as LOGIN_FAILED on the security connection (auth_events.py) and counts
    toward the lockout (11.300(d)). The event records who and when, never the password or its hash.

    The holder's other open sessions end with the change: a password is revised because it may be
    known to someone else, so a session opened with it must not outlive it (11.10(d), 11.300(b)).
    Each is deleted now, not at its next request, and recorded as one SESSION_ENDED_PASSWORD_CHANGED
    attributed to the holder, after PASSWORD_CHANGED (11.10(e)): one event per session, like the
    other session endings. The session of `request` stays (the view keeps it with
    update_session_auth_hash); without a request every session ends. These are business events in
    this transaction, not security events: if the change rolls back, no session ended.
    """
    authenticated = authenticate(request_for_authentication(request), username=actor.username,
                                 password=current_password, purpose="password_change")
    if authenticated is None or authenticated.pk != actor.pk:
        raise ValidationError({"current_password": "The current password is not correct: nothing was changed."})
    if new_password == current_password:
        raise ValidationError({"new_password": "The new password must differ from the current one."})
    user = User.objects.select_for_update().get(pk=actor.pk)  # `actor` may be request.user's lazy proxy
    if user.password != authenticated.password:
        # The current password was checked before the lock: a change from another session in between would be
        # overwritten by someone who proved only the password it replaced.
        raise ValidationError({"current_password": "The password was changed meanwhile: nothing was changed."})
    validate_password(new_password, user)
    user.set_password(new_password)
    user.must_change_password = False
    # The password is never recorded (NEVER_RECORDED): the event says that it changed, not to what.
    save_with_reason(user, actor=actor, reason="Password changed by the account holder",
                     event=Event.PASSWORD_CHANGED, update_fields=["password", "must_change_password"])
    current = getattr(request, "session", None)
    _sessions_end_open(user=user, keep=current.session_key if current is not None else None,
                       event=Event.SESSION_ENDED_PASSWORD_CHANGED,
                       reason="The password was changed in another session of the account holder")
    return user


def _sessions_end_open(*, user: User, event: Event, reason: str, keep: str | None = None,
                       actor: User | None = None) -> None:
    """End `user`'s open sessions other than `keep` now, recording `event` for each.

    Without this, Django would refuse them at their next request (a changed password's session
    hash, an inactive account), silently. A session idle past SESSION_IDLE_TIMEOUT has already
    ended by the idle rule and is left alone (its SESSION_EXPIRED comes from the idle sweep). A
    session that another ending removed meanwhile (session_delete finds it gone) is not recorded twice.
    """
    now = timezone.now()
    for stored in sessions_stored(user=user):
        if stored.key == keep or stored.expired_at < now:
            continue
        session_end(user=user, session_key=stored.key, event=event, reason=reason, actor=actor,
                    data={"last_activity": stored.last_activity})


@transaction.atomic
def user_deactivate(*, actor: User, user: User, reason: str) -> User:
    """Deactivate instead of delete; a deactivated user can neither log in nor sign.

    The account's open sessions end with it, each recorded as SESSION_ENDED_DEACTIVATED (21 CFR
    11.10(d), 11.10(e)): a person who left must not go on working in a session opened before."""
    _ensure_admin(actor)
    if actor.pk == user.pk:
        raise PermissionDenied("Administrators cannot deactivate their own account.")
    user = locked(user)
    if not user.is_active:
        raise ValidationError("This account is already deactivated.")
    user.is_active = False
    user.deactivated_at = timezone.now()
    save_with_reason(user, actor=actor, reason=reason, event=Event.USER_DEACTIVATED,
                     update_fields=["is_active", "deactivated_at"])
    _sessions_end_open(user=user, event=Event.SESSION_ENDED_DEACTIVATED, actor=actor,
                       reason=f"The account was deactivated: {reason}")
    return user


@transaction.atomic
def user_reactivate(*, actor: User, user: User, reason: str) -> User:
    _ensure_admin(actor)
    user = locked(user)
    if user.is_active:
        raise ValidationError("This account is already active.")
    user.is_active = True
    user.deactivated_at = None
    save_with_reason(user, actor=actor, reason=reason, event=Event.USER_REACTIVATED,
                     update_fields=["is_active", "deactivated_at"])
    return user


@transaction.atomic
def password_reset(*, actor: User, user: User, password: str, reason: str) -> User:
    """An administrator gives a person who lost or forgot their password a new one (21 CFR
    11.300(c): loss management; EU GMP Annex 11 §12.1).

    The administrator verified the holder's identity (the reason says how) and knows the new
    password, so the holder must change it before anything else, signing included (11.300(b));
    every open session of the account ends now, recorded as SESSION_ENDED_PASSWORD_RESET (a
    session opened with the old password must not outlive it, 11.10(d)); and a lockout the lost
    password caused is cleared with it (the failed attempts cleared are recorded). Nobody resets
    their own password: they change it, proving the current one (password_change)."""
    from axes.utils import reset

    _ensure_admin(actor)
    reason = reason_required(reason, "Say why the password is reset and how you verified the holder's identity.")
    if actor.pk == user.pk:
        raise PermissionDenied("Change your own password under My account: nobody resets their own.")
    user = locked(user)
    if not user.is_active:
        raise ValidationError("This account is deactivated: reactivate it first, then reset its password.")
    if user.has_role(*MACHINE_ROLES):
        raise ValidationError("An instrument authenticates with its token, not a password: revoke it and "
                              "register it again (revoke_instrument, create_instrument).")
    validate_password(password, user)
    user.set_password(password)
    user.must_change_password = True
    save_with_reason(user, actor=actor, reason=reason, event=Event.PASSWORD_RESET,
                     update_fields=["password", "must_change_password"])
    cleared = reset(username=user.username)
    if cleared:
        record_event(actor=actor, event=Event.USER_UNLOCKED, target=user, reason=reason,
                     data={"attempts_cleared": cleared, "with": Event.PASSWORD_RESET.value})
    _sessions_end_open(user=user, event=Event.SESSION_ENDED_PASSWORD_RESET, actor=actor,
                       reason=f"An administrator reset the password: {reason}")
    return user


@transaction.atomic
def user_unlock(*, actor: User, user: User, reason: str) -> int:
    """Clear the failed-login lockout (django-axes) for `user`; returns attempts cleared."""
    from axes.utils import reset

    _ensure_admin(actor)
    reason = reason_required(reason, "Give the reason for unlocking this account.")
    cleared = reset(username=user.username)
    record_event(actor=actor, event=Event.USER_UNLOCKED, target=user, reason=reason,
                 data={"attempts_cleared": cleared})
    return cleared


def _failures() -> QuerySet[Any]:
    """Failed authentications per username, as django-axes counts them (by username, no cool-off)."""
    from axes.models import AccessAttempt

    return AccessAttempt.objects.values("username").annotate(total=Sum("failures_since_start"))


def failed_attempts(username: str) -> int:
    totals = _failures().filter(username=username).values_list("total", flat=True)
    return next(iter(totals), 0) or 0


def account_locked(username: str) -> bool:
    """Locked after AXES_FAILURE_LIMIT failed logins, signings or password changes (21 CFR 11.300(d))."""
    return failed_attempts(username) >= settings.AXES_FAILURE_LIMIT


def _password_set_events(user_ids: Iterable[int]) -> QuerySet[Any]:
    """The audit events that set a password its holder must change: the account's creation by an
    administrator, a password reset."""
    from qms.models import AuditEvent

    return AuditEvent.objects.filter(target_type="qms.user", target_id__in=[str(pk) for pk in user_ids],
                                     event_type__in=[Event.PASSWORD_RESET, Event.USER_CREATED])


def _password_set(user: User) -> Any:
    """The event that set the password `user` must change, or None when they chose their own."""
    if not getattr(user, "must_change_password", False):
        return None
    return _password_set_events([user.pk]).select_related("actor").order_by("-id").first()


def _temporary_password_expired(set_at: datetime) -> bool:
    """A password an administrator set at `set_at` opens the account for TEMPORARY_PASSWORD_HOURS only."""
    return timezone.now() >= set_at + timedelta(hours=settings.TEMPORARY_PASSWORD_HOURS)


def password_set_by(user: User) -> str | None:
    """Who set the password `user` must change, and when ("Ada Admin on 2026-11-29 14:02 CET"), so the
    holder sees who else knew it (21 CFR 11.300(b)); None when they chose their own."""
    from qms.signatures import format_local

    event = _password_set(user)
    if event is None or event.actor is None:
        return None
    done = "reset it" if event.event_type == Event.PASSWORD_RESET else "created your account"
    return f"{event.actor.full_name} {done} on {format_local(event.occurred_at)}"


def users_temporary_password_expired() -> set[str]:
    """Usernames of active accounts whose administrator-set password has expired unused: the holder
    cannot log in until an administrator sets a new one (login_temporary_password_check)."""
    from django.db.models import Max

    waiting = dict(User.objects.filter(must_change_password=True, is_active=True).values_list("pk", "username"))
    latest = _password_set_events(waiting).values("target_id").annotate(set_at=Max("occurred_at"))
    return {waiting[int(row["target_id"])] for row in latest if _temporary_password_expired(row["set_at"])}


def login_temporary_password_check(user: User, *, request: HttpRequest | None = None) -> None:
    """A password an administrator set opens the account for TEMPORARY_PASSWORD_HOURS only.

    The administrator who created the account or reset its password knows that password until the
    holder chooses their own at the first login (InitialPasswordMiddleware). The shorter it works,
    the smaller the window in which anyone but the holder could log in with it (21 CFR 11.300(b),
    identification codes and passwords periodically checked, recalled or revised; EU GMP Annex 11
    §12.1). Past it the login is refused, recorded as a failed login with its cause, and an
    administrator sets a new one. Accounts flagged by migration qms/0010 (created long before,
    password never changed) therefore need a reset before their next login. Every login form
    calls it (LoginForm, and the admin's AdminLoginForm).
    """
    from qms.audit import record_security_event
    from qms.auth_events import client_details

    event = _password_set(user)
    if event is None or not _temporary_password_expired(event.occurred_at):
        return
    record_security_event(actor=user, event=Event.LOGIN_FAILED, target=user,
                          reason="The password an administrator set has expired",
                          data={"cause": "temporary_password_expired", "set_at": event.occurred_at.isoformat(),
                                **client_details(request)})
    raise ValidationError(
        f"The password you were given has expired: it worked for {settings.TEMPORARY_PASSWORD_HOURS} hours after it "
        "was set. Ask an administrator to set a new one.", code="temporary_password_expired")


def users_roles_mixed() -> list[str]:
    """Usernames holding the administrator role with a GMP role: given before the two were kept
    apart (_roles_apply). Such an account cannot sign (qms.signatures.sign) until one is removed."""
    mixed = User.objects.filter(groups__name=Role.ADMIN.value).filter(
        groups__name__in=[role.value for role in GMP_DATA_ROLES])
    return sorted(set(mixed.values_list("username", flat=True)))


def user_locked_list() -> list[str]:
    rows = _failures().filter(total__gte=settings.AXES_FAILURE_LIMIT)
    return sorted(row["username"] for row in rows if row["username"])
