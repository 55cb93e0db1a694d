"""Each role is allowed or refused on each page exactly as qms/roles.py says."""

import pytest
from django.contrib.sessions.models import Session

from qms.audit import Event
from qms.models import AuditEvent
from qms.roles import MATRIX, WRITE_CAPABILITIES, Capability, Role
from tests.conftest import login

pytestmark = pytest.mark.django_db

# page → the capability it needs (None: any logged-in user)
PAGES: dict[str, Capability | None] = {
    "/": None,
    "/audit/": Capability.AUDIT_TRAIL_VIEW,
    "/audit/export.csv": Capability.AUDIT_TRAIL_EXPORT,
    "/audit/record/qms.user/1/": Capability.AUDIT_TRAIL_VIEW,
    "/users/": Capability.USER_MANAGE,
    "/api/schema/": None,
}
HUMAN_ROLES = [role for role in Role if role is not Role.INSTRUMENT]


@pytest.mark.parametrize("role", HUMAN_ROLES, ids=str)
@pytest.mark.parametrize("page", list(PAGES))
def test_page_allowed_or_refused_per_matrix(client, make_user, role, page):
    login(client, make_user(role))
    capability = PAGES[page]
    allowed = capability is None or role in MATRIX[capability]

    response = client.get(page)

    assert response.status_code == (200 if allowed else 403), f"{role} on {page}"


@pytest.mark.parametrize("page", [page for page in PAGES if not page.startswith("/api/")])
def test_anonymous_is_sent_to_login(client, page):
    response = client.get(page)

    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_anonymous_api_call_is_refused_with_an_error_list(client):
    response = client.get("/api/v1/batches/B-2026-0001/readings", headers={"Accept": "application/json"})

    assert response.status_code in (401, 403)
    assert response.json()["errors"][0]["message"]


def test_login_page_and_health_check_need_no_login(client):
    assert client.get("/login/").status_code == 200
    assert client.get("/healthz").status_code in (200, 503)


def test_auditor_holds_no_capability_that_changes_data():
    auditor_capabilities = {capability for capability, roles in MATRIX.items() if Role.AUDITOR in roles}

    assert not auditor_capabilities & WRITE_CAPABILITIES


def test_user_without_role_sees_only_home(client, make_user):
    login(client, make_user(None))

    assert client.get("/").status_code == 200
    assert client.get("/audit/").status_code == 403


@pytest.mark.parametrize(("role", "panel"), [
    (Role.OPERATOR, b"My batches to execute"),
    (Role.SUPERVISOR, b"My batches to execute"),
    (Role.QA_REVIEWER, b"Review queue"),
    (Role.QA_APPROVER, b"Review queue"),
    (Role.AUDITOR, b"Search records"),
    (Role.ADMIN, b"Users, roles and lockouts"),
])
def test_home_page_shows_the_panel_of_the_role(client, make_user, role, panel):
    login(client, make_user(role))

    assert panel in client.get("/").content


def test_navigation_shows_only_allowed_pages(client, make_user):
    login(client, make_user(Role.OPERATOR))

    content = client.get("/").content

    assert b'href="/audit/"' not in content
    assert b'href="/users/"' not in content


def test_deactivated_user_loses_access_at_the_next_request(client, make_user, admin_user):
    from qms.services.users import user_deactivate

    user = make_user(Role.AUDITOR)
    login(client, user)
    key = client.session.session_key
    user_deactivate(actor=admin_user, user=user, reason="Inspection ended")

    response = client.get("/audit/")

    assert response.status_code == 302
    # The session ended with the account, and the audit trail says when and why (not silently).
    ended = AuditEvent.objects.filter(event_type=Event.SESSION_ENDED_DEACTIVATED, target_id=str(user.pk))
    assert [(e.reason, e.actor_id) for e in ended] == [("The account was deactivated: Inspection ended",
                                                        admin_user.pk)]  # ended by the administrator
    assert not Session.objects.filter(session_key=key).exists()
