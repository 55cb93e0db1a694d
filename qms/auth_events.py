"""Login, logout and lockout into the audit trail (21 CFR 11.300(d), Annex 11 §12).

These are authentication events raised by Django and django-axes, not business events, so
they arrive as signals; each handler records through the one audit writer.
"""

from __future__ import annotations

from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from qms.audit import Event, SystemActor, record_security_event


def _user_named(username: str | None) -> Any:
    if not username:
        return None
    return get_user_model()._default_manager.filter(username=username).first()


def client_details(request: Any) -> dict[str, str]:
    """Where an authentication came from, for its audit event: the client address and browser."""
    from axes.helpers import get_client_ip_address

    if request is None:
        return {}
    # axes resolves the client behind the configured proxies (TRUSTED_PROXY_COUNT).
    return {"ip": get_client_ip_address(request) or "", "user_agent": request.META.get("HTTP_USER_AGENT", "")[:200]}


@receiver(user_login_failed, dispatch_uid="qms.login_failed")
def login_failed_record(sender: Any, credentials: dict[str, Any], request: Any = None, **_: Any) -> None:
    if credentials.get("purpose") == "signature":
        return  # sign() records SIGNATURE_REFUSED itself
    username = credentials.get("username") or ""
    user = _user_named(username)
    # An unknown username is recorded too, without revealing to the client which it was.
    record_security_event(
        actor=user or SystemActor(f"anonymous:{username[:60]}"), event=Event.LOGIN_FAILED,
        target=user, target_label=username[:200], data=client_details(request),
    )


@receiver(user_locked_out, dispatch_uid="qms.user_locked")
def user_locked_record(sender: Any, request: Any = None, username: str | None = None, **_: Any) -> None:
    from django.conf import settings

    from qms.services.users import failed_attempts

    # axes signals on every attempt against a locked account; the lock happened only once.
    if failed_attempts(username or "") > settings.AXES_FAILURE_LIMIT:
        return
    user = _user_named(username)
    record_security_event(
        actor=SystemActor("system:lockout"), event=Event.USER_LOCKED, target=user,
        target_label=username or "", reason="Too many failed authentication attempts", data=client_details(request),
    )


def last_login_update(sender: Any, user: Any, **_: Any) -> None:
    """Django's update_last_login, without a reasonless history row for every login."""
    from django.utils import timezone

    user.last_login = timezone.now()
    user.skip_history_when_saving = True
    try:
        user.save(update_fields=["last_login"])
    finally:
        del user.skip_history_when_saving


def _replace_update_last_login() -> None:
    from django.contrib.auth.models import update_last_login

    user_logged_in.disconnect(update_last_login, dispatch_uid="update_last_login")
    user_logged_in.connect(last_login_update, dispatch_uid="qms.last_login")


_replace_update_last_login()


@receiver(user_logged_in, dispatch_uid="qms.logged_in")
def logged_in_record(sender: Any, request: Any, user: Any, **_: Any) -> None:
    from qms.audit import record_event

    record_event(actor=user, event=Event.LOGIN_SUCCEEDED, target=user, data=client_details(request))


@receiver(user_logged_out, dispatch_uid="qms.logged_out")
def logged_out_record(sender: Any, request: Any, user: Any, **_: Any) -> None:
    from qms.audit import record_event

    if user is not None:
        record_event(actor=user, event=Event.LOGGED_OUT, target=user, data=client_details(request))
