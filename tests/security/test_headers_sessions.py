"""Headers and sessions: CSP, clickjacking, cookies, session rotation, CSRF on every form and HTMX
request, and the production settings (HSTS, secure cookies, HTTPS redirect).

Already covered elsewhere, not repeated here:
- the CSP and X-Frame-Options of *every* HTML answer: test_authorization.py checks them on each
  response of the URL × role matrix (assert_html_protected);
- the idle timeout: tests/qms/test_idle_timeout.py;
- `check --deploy` clean in production: tests/qms/test_settings_env.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.db import transaction
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client

from qms.roles import Role
from tests.conftest import PASSWORD, ROOT
from tests.security.routes import CASES, Case
from tests.security.test_authorization import assert_html_protected
from tests.security.world import snapshot

pytestmark = pytest.mark.django_db


def test_login_page_and_error_pages_carry_the_csp_and_refuse_framing(world, client):
    login_page = client.get("/login/")
    client.force_login(world.person(Role.OPERATOR))
    not_found = client.get("/batches/ZZ-1999-9999/")
    refused = client.get("/audit/")

    for response in (login_page, not_found, refused):
        assert response.get("Content-Type", "").startswith("text/html")
        assert_html_protected(response)
    assert (not_found.status_code, refused.status_code) == (404, 403)


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)
JAVASCRIPT_URL = re.compile(r"""(?:href|src|action)\s*=\s*["']\s*javascript:""", re.IGNORECASE)


def test_templates_hold_no_inline_script_that_the_csp_would_block():
    """The CSP forbids inline scripts; a template that needs one would silently break."""
    offenders = []
    for template in sorted((ROOT / "templates").rglob("*.html")):
        text = template.read_text()
        for pattern in (INLINE_SCRIPT, INLINE_HANDLER, JAVASCRIPT_URL):
            offenders += [f"{template.relative_to(ROOT)}: {match.group(0)[:60]}" for match in pattern.finditer(text)]

    assert offenders == []


def test_session_and_csrf_cookies_are_http_only_and_same_site(world, client):
    client.get("/login/")
    response = client.post("/login/", {"username": world.person(Role.AUDITOR).username, "password": PASSWORD})

    session = response.cookies[settings.SESSION_COOKIE_NAME]
    assert session["httponly"] is True and session["samesite"] == "Lax"
    assert client.cookies[settings.CSRF_COOKIE_NAME]["httponly"] is True
    assert settings.SESSION_EXPIRE_AT_BROWSER_CLOSE is True


def test_the_session_key_changes_at_login_and_the_old_one_is_dead(world, client):
    store = SessionStore()
    store["next"] = "/"
    store.save()
    client.cookies[settings.SESSION_COOKIE_NAME] = store.session_key

    response = client.post("/login/", {"username": world.person(Role.AUDITOR).username, "password": PASSWORD})

    assert response.status_code == 302
    new_key = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert new_key != store.session_key
    assert not SessionStore().exists(store.session_key)  # fixation: the planted key is gone
    planted = Client()
    planted.cookies[settings.SESSION_COOKIE_NAME] = store.session_key
    assert planted.get("/audit/").status_code == 302


def test_logout_ends_the_session_on_the_server(world, client):
    client.post("/login/", {"username": world.person(Role.AUDITOR).username, "password": PASSWORD})
    key = client.cookies[settings.SESSION_COOKIE_NAME].value

    client.post("/logout/")

    replay = Client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = key
    assert replay.get("/audit/").status_code == 302


def test_logout_is_post_only_so_a_link_cannot_log_someone_out(world, client):
    client.force_login(world.person(Role.AUDITOR))

    client.get("/logout/")

    assert client.get("/audit/").status_code == 200


# --- CSRF: every form, every HTMX request -------------------------------------------------------

POST_CASES = [case for case in CASES if "POST" in case.methods and case.kind == "page"]


def _allowed_role(case: Case) -> Role | None:
    if case.capability is None:
        return Role.OPERATOR
    return next(role for role in Role if role is not Role.INSTRUMENT and case.allows(role)
                and (case.acts is None or role in case.acts))


@pytest.mark.parametrize("case", POST_CASES, ids=[case.id for case in POST_CASES])
def test_every_form_post_needs_the_csrf_token(world, subtests, case):
    """Without the token: 403 and nothing changed, as a form post and as an HTMX request; with the
    token in the HTMX header (as base.html sends it) the same request gets past the check."""
    role = _allowed_role(case)
    path = case.path(world)
    for variant, headers in (("form", {}), ("htmx", {"HTTP_HX_REQUEST": "true"})):
        with subtests.test(variant=variant), transaction.atomic():
            client = Client(enforce_csrf_checks=True)
            client.cookies[settings.SESSION_COOKIE_NAME] = world.sessions[role]
            client.cookies[settings.CSRF_COOKIE_NAME] = _get_new_csrf_string()  # as a browser would hold it
            before = snapshot()

            forged = client.post(path, {}, **headers)

            assert forged.status_code == 403, f"{variant} {path}: {forged.status_code}"
            assert b"CSRF" in forged.content
            assert snapshot() == before
            token = client.cookies[settings.CSRF_COOKIE_NAME].value
            genuine = client.post(path, {}, HTTP_X_CSRFTOKEN=token, **headers)
            assert genuine.status_code != 403 or b"CSRF" not in genuine.content, path
            transaction.set_rollback(True)


def test_login_form_needs_the_csrf_token(world):
    client = Client(enforce_csrf_checks=True)

    response = client.post("/login/", {"username": world.person(Role.AUDITOR).username, "password": PASSWORD})

    assert response.status_code == 403
    assert settings.SESSION_COOKIE_NAME not in response.cookies


def test_pages_give_htmx_the_csrf_token(world, client):
    client.force_login(world.person(Role.OPERATOR))

    html = client.get("/").content.decode()

    header = re.search(r"hx-headers='([^']+)'", html)
    assert header is not None
    assert json.loads(header.group(1))["X-CSRFToken"]


# --- production ---------------------------------------------------------------------------------

PRODUCTION_PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client
names = ["DEBUG", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY", "CSRF_COOKIE_HTTPONLY",
         "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_PROXY_SSL_HEADER",
         "X_FRAME_OPTIONS", "SECURE_CONTENT_TYPE_NOSNIFF"]
values = {name: getattr(settings, name) for name in names}
# An answer that renders no template: production static files need collectstatic first.
plain = Client().get("/api/schema/", HTTP_HOST="ebr.example.org")
secure = Client().get("/api/schema/", secure=True, HTTP_HOST="ebr.example.org")
values["http_status"] = plain.status_code
values["http_location"] = plain.get("Location", "")
values["hsts"] = secure.get("Strict-Transport-Security", "")
print(json.dumps(values))
"""


def test_production_sends_hsts_redirects_to_https_and_marks_cookies_secure(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in {"SECRET_KEY", "DJANGO_DEBUG"}}
    env.update({"DJANGO_ENV": "production", "SECRET_KEY": "k3y-" + "a1b2c3d4e5f6g7h8i9j0" * 3,
                "ALLOWED_HOSTS": "ebr.example.org", "EBR_LOCAL_DIR": str(tmp_path),
                "DJANGO_SETTINGS_MODULE": "ebr.settings"})
    result = subprocess.run([sys.executable, "-c", PRODUCTION_PROBE], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)

    assert result.returncode == 0, result.stderr[-3000:]
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["DEBUG"] is False
    assert values["SESSION_COOKIE_SECURE"] is True and values["CSRF_COOKIE_SECURE"] is True
    assert values["SESSION_COOKIE_HTTPONLY"] is True and values["CSRF_COOKIE_HTTPONLY"] is True
    assert values["SECURE_SSL_REDIRECT"] is True and values["SECURE_HSTS_SECONDS"] >= 31536000
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["X_FRAME_OPTIONS"] == "DENY" and values["SECURE_CONTENT_TYPE_NOSNIFF"] is True
    assert values["http_status"] == 301 and values["http_location"].startswith("https://ebr.example.org/")
    assert values["hsts"].startswith("max-age=") and "includeSubDomains" in values["hsts"]
