"""An idle session ends after SESSION_IDLE_TIMEOUT (21 CFR 11.10(d), Annex 11 §12)."""

import time

import pytest

from qms.audit import Event
from qms.middleware import LAST_ACTIVITY
from qms.models import AuditEvent
from tests.conftest import login

pytestmark = pytest.mark.django_db


def _idle(client, seconds: float) -> None:
    session = client.session
    session[LAST_ACTIVITY] = time.time() - seconds
    session.save()


def test_session_ends_after_the_idle_timeout(client, qa_reviewer, settings):
    login(client, qa_reviewer)
    _idle(client, settings.SESSION_IDLE_TIMEOUT.total_seconds() + 5)

    response = client.get("/audit/")

    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
    assert client.get("/audit/").status_code == 302  # logged out, not just redirected once
    assert AuditEvent.objects.filter(event_type=Event.SESSION_EXPIRED, actor_id=qa_reviewer.pk).exists()


def test_activity_within_the_timeout_keeps_the_session(client, qa_reviewer, settings):
    login(client, qa_reviewer)
    _idle(client, settings.SESSION_IDLE_TIMEOUT.total_seconds() - 30)

    assert client.get("/audit/").status_code == 200
    assert client.get("/audit/").status_code == 200


def test_timeout_is_configurable(client, qa_reviewer, settings):
    from datetime import timedelta

    settings.SESSION_IDLE_TIMEOUT = timedelta(minutes=2)
    login(client, qa_reviewer)
    _idle(client, 150)

    assert client.get("/audit/").status_code == 302


def test_htmx_request_after_timeout_redirects_the_whole_page(client, qa_reviewer, settings):
    login(client, qa_reviewer)
    _idle(client, settings.SESSION_IDLE_TIMEOUT.total_seconds() + 5)

    response = client.get("/audit/", headers={"HX-Request": "true"})

    assert response["HX-Redirect"].startswith("/login/")
