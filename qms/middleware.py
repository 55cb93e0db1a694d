"""Session idle timeout, sessions of locked accounts, the Content-Security-Policy header, and no
NUL bytes in paths."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import cast

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound
from django.shortcuts import redirect

from qms.models import User
from qms.services.sessions import LAST_ACTIVITY, session_end_locked, session_expire
from qms.services.users import account_locked


class NulPathMiddleware:
    """A NUL byte in the path names no record (PostgreSQL text cannot hold one, so a lookup with
    it would fail as a server error): answer 404 before any view reads it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path:
            return HttpResponseNotFound("Not found.", content_type="text/plain")
        return self.get_response(request)


class IdleTimeoutMiddleware:
    """End a session idle for longer than SESSION_IDLE_TIMEOUT (21 CFR 11.10(d), Annex 11 §12.1).

    The idle clock starts at login and restarts at every request. A session's next request after
    the timeout ends it here; a session that never makes one is ended by the idle sweep
    (qms.services.sessions). Either records one SESSION_EXPIRED, never both. An HTMX request gets
    an HX-Redirect so that the whole page goes to the login form, not a fragment of it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            now = time.time()
            last = request.session.get(LAST_ACTIVITY, now)
            if now - last > settings.SESSION_IDLE_TIMEOUT.total_seconds():
                return self._expire(request, last)
            request.session[LAST_ACTIVITY] = now
            return self.get_response(request)
        response = self.get_response(request)
        # This request logged in (a session login, not an API token: SESSION_KEY is set).
        if request.user.is_authenticated and SESSION_KEY in request.session:
            request.session[LAST_ACTIVITY] = time.time()
        return response

    def _expire(self, request: HttpRequest, last: float) -> HttpResponse:
        # Only called for an authenticated person, whose session is stored.
        session_expire(user=cast(User, request.user), session_key=request.session.session_key or "",
                       last_activity=datetime.fromtimestamp(last, UTC))
        # Not logout(): that records LOGGED_OUT, a second ending the person never asked for.
        request.session.flush()
        request.user = AnonymousUser()
        messages.info(request, "Your session ended after a period of inactivity. Please log in again.")
        return _to_login(request)


def _to_login(request: HttpRequest) -> HttpResponse:
    login_url = f"{settings.LOGIN_URL_PATH}?next={request.path}"
    if request.headers.get("HX-Request"):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = login_url
        return response
    return redirect(login_url)


class LockedAccountMiddleware:
    """End the open sessions of a locked account (21 CFR 11.300(d)): five wrong passwords at a
    signature, a password change or another login lock the account, and a session already open
    must not go on creating records under it until an administrator unlocks it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated and account_locked(request.user.get_username()):
            session_end_locked(user=cast(User, request.user), session_key=request.session.session_key or "")
            # Not logout(): that records LOGGED_OUT, a second ending the person never asked for.
            request.session.flush()
            request.user = AnonymousUser()
            messages.error(request, "Your account is locked after too many failed attempts: your session has "
                                    "ended. An administrator must unlock it.")
            return _to_login(request)
        return self.get_response(request)


class InitialPasswordMiddleware:
    """An account an administrator created changes its password before anything else (21 CFR
    11.300(b)): until then every page leads to the password change; signing is refused too
    (qms.signatures.sign). The API is left alone: instruments use tokens, and readings are read-only."""

    ALLOWED = ("/account/password/", "/logout/", "/static/", "/healthz", "/api/")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if (user.is_authenticated and getattr(user, "must_change_password", False)
                and not request.path.startswith(self.ALLOWED)):
            messages.info(request, "Choose your own password before you go on: the one you were given is known "
                                   "to the administrator who set it.")
            if request.headers.get("HX-Request"):
                response = HttpResponse(status=204)
                response["HX-Redirect"] = "/account/password/"
                return response
            return redirect("/account/password/")
        return self.get_response(request)


class ContentSecurityPolicyMiddleware:
    """No inline scripts, nothing from other origins (the UI uses no CDN)."""

    policy = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "font-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
        "base-uri 'none'; object-src 'none'"
    )

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", self.policy)
        return response
