"""Authorisation generated from the role matrix: every URL × every role, no role, anonymous and an
instrument token is allowed or refused exactly as qms/roles.py says, and a refusal changes nothing.

(tests/qms/test_role_matrix.py checks a handful of pages and the matrix itself; this covers all.)
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import transaction
from django.test import Client

from qms.roles import MATRIX, Role
from qms.staleness import record_version
from tests.conftest import PASSWORD
from tests.security.routes import CASES, PRINCIPALS, Case, Principal, master_version_for, url_keys
from tests.security.world import World, snapshot

pytestmark = pytest.mark.django_db

MATRIX_ITEMS = [(case, method) for case in CASES for method in case.methods]


def test_every_url_pattern_is_classified():
    classified = {case.key for case in CASES}
    found = url_keys()

    assert found - classified == set(), "classify these new URL patterns in tests/security/routes.py"
    assert classified - found == set(), "these classified URL patterns no longer exist"


# Capabilities enforced only outside the web: the management command that uses each.
OUTSIDE_THE_WEB = {"paper_record_import": "manage.py import_paper_deviations"}


def test_every_capability_of_the_matrix_guards_some_url():
    from tests.security.routes import BATCH_ACTIONS, MASTER_ACTIONS

    guarded = {case.capability for case in CASES} | {
        capability for acts in [*BATCH_ACTIONS.values(), *MASTER_ACTIONS.values()]
        for capability, holders in MATRIX.items() if holders == acts}

    assert {capability.value for capability in set(MATRIX) - guarded} <= set(OUTSIDE_THE_WEB)


def test_the_action_tables_match_the_views():
    from ebr.views.batches import REASON_ACTIONS, SIGNED_ACTIONS
    from qms.ui.capa import CAPA_ACTIONS as CAPA_VIEW_ACTIONS
    from qms.ui.change_control import CHANGE_ACTIONS as CHANGE_VIEW_ACTIONS
    from qms.ui.deviations import DEVIATION_ACTIONS as DEVIATION_VIEW_ACTIONS
    from qms.views import USER_ACTIONS as USER_VIEW_ACTIONS
    from tests.security import routes

    assert set(routes.BATCH_ACTIONS) == set(SIGNED_ACTIONS) | set(REASON_ACTIONS)
    assert set(routes.DEVIATION_ACTIONS) == set(DEVIATION_VIEW_ACTIONS)
    assert set(routes.CAPA_ACTIONS) | set(routes.CAPA_ITEM_ACTIONS) == set(CAPA_VIEW_ACTIONS)
    assert set(routes.CHANGE_ACTIONS) | set(routes.CHANGE_ITEM_ACTIONS) == set(CHANGE_VIEW_ACTIONS)
    assert set(routes.USER_ACTIONS) == set(USER_VIEW_ACTIONS)


def expected(case: Case, principal: Principal) -> str:
    if case.kind == "public":
        return "allow"
    if case.kind == "admin":
        return "admin"  # nobody is staff: every role, anonymous and instruments are sent to a login form
    if case.kind == "api":
        if principal.name == "instrument":
            return "allow" if case.instrument else "api_refuse"
        if not principal.logged_in:
            return "api_refuse"
        return "allow" if case.allows(principal.role) else "api_refuse"
    if not principal.logged_in:
        return "login"  # an instrument token means nothing outside the API
    return "allow" if case.allows(principal.role) else "refuse"


def log_in_as(client: Client, world: World, principal: Principal) -> dict[str, str]:
    """Log the person in (before the snapshot: a login is itself audited); the instrument's header."""
    if principal.name == "instrument":
        return {"HTTP_AUTHORIZATION": f"Bearer {world.token}"}
    if principal.logged_in:
        client.cookies[settings.SESSION_COOKIE_NAME] = world.sessions[principal.role or "nobody"]
    return {}


def request_as(client: Client, world: World, case: Case, method: str, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    if case.kind == "api" and case.key != "api_docs":
        headers = {**headers, "HTTP_ACCEPT": "application/json"}
    path = case.path(world)
    if method == "GET":
        return client.get(path, **headers)
    if case.kind == "api":
        return client.post(path, data=b"", content_type="application/json", **headers)
    return client.post(path, {}, **headers)


def assert_html_protected(response) -> None:  # type: ignore[no-untyped-def]
    """Every HTML answer: a CSP without inline scripts, and no framing by other sites."""
    if not response.get("Content-Type", "").startswith("text/html"):
        return
    policy = response.get("Content-Security-Policy", "")
    directives = {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}
    script = directives.get("script-src", directives.get("default-src"))
    assert script is not None, f"no CSP script-src on {response.request['PATH_INFO']}"
    assert "'unsafe-inline'" not in script and "'unsafe-eval'" not in script
    assert directives.get("frame-ancestors") == ["'none'"] or response.get("X-Frame-Options") == "DENY"
    assert response.get("X-Frame-Options") == "DENY"


@pytest.mark.parametrize(("case", "method"), MATRIX_ITEMS, ids=[f"{c.id}-{m}" for c, m in MATRIX_ITEMS])
def test_url_allowed_or_refused_as_the_matrix_says(world, subtests, case, method):
    """Each principal in a savepoint of its own: what an allowed request changed is undone."""
    for principal in PRINCIPALS:
        with subtests.test(principal=principal.name), transaction.atomic():
            check_principal(world, case, method, principal)
            transaction.set_rollback(True)


def check_principal(world: World, case: Case, method: str, principal: Principal) -> None:
    client = Client()
    headers = log_in_as(client, world, principal)
    before = snapshot()
    verdict = expected(case, principal)

    response = request_as(client, world, case, method, headers)

    status = response.status_code
    where = f"{principal} {method} {case.path(world)}"
    assert status < 500 or (verdict == "allow" and status in case.ok), f"{where}: {status}"
    assert_html_protected(response)
    if verdict == "allow":
        if method == "GET":
            assert status in case.ok, f"{where}: {status}"
        else:
            assert status not in (401, 403), f"{where}: {status}"
        return
    if verdict == "refuse":
        assert status == case.refused_status, f"{where}: {status}"
        if status == 204:
            assert response.content == b""
    elif verdict == "login":
        assert status == 302 and response["Location"].startswith("/login/?next="), f"{where}: {status}"
    elif verdict == "admin":
        location = response["Location"] if status == 302 else ""
        assert location == "/admin/" or location.startswith(("/admin/login/", "/login/")), f"{where}: {status}"
    else:
        assert status in (401, 403), f"{where}: {status}"
        if "json" in response.get("Content-Type", ""):
            errors = response.json()["errors"]
            assert errors and all(error["message"] for error in errors)
    assert snapshot() == before, f"{where} was refused but changed data"


# --- the second layer: services refuse what the view lets every reader try ---------------------

def _valid_body(case: Case, world: World, user) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A form the view accepts, so that only the service's role check can refuse it."""
    signed = {"reason": "Security test", "password": PASSWORD, "username": user.username}
    if case.key == "batch_action":
        return signed
    stage = world.draft.stages.first()
    step = stage.steps.first()
    body = {"stage": {"name": "Extra stage"},
            "step": {"stage": str(stage.pk), "code": "9.9", "title": "Extra", "instructions": "Do it."},
            "parameter": {"step": str(step.pk), "code": "extra", "label": "Extra", "kind": "text"},
            "new_version": {"change_control": world.change.number, "summary_of_changes": "More"},
            "return": {"reason": "Security test"}, "effective": {"reason": "Security test"}}.get(case.label, signed)
    # the version of the page read, which the version's signed forms carry (qms/staleness.py)
    return {"seen": record_version(master_version_for(world, case.label)), **body}


def _batch_for(case: Case, world: World):  # type: ignore[no-untyped-def]
    """The batch in the state the action starts from, so that only the role can be the reason."""
    return {"start": world.planned, "review": world.completed}.get(case.label, world.running)


SERVICE_ITEMS = [(case, role) for case in CASES if case.acts is not None and case.key != "custody_add"
                 for role in Role if role is not Role.INSTRUMENT and case.allows(role) and role not in case.acts]


@pytest.mark.parametrize(("case", "role"), SERVICE_ITEMS, ids=[f"{c.id}-{r}" for c, r in SERVICE_ITEMS])
def test_service_refuses_a_valid_transition_from_a_role_without_the_capability(world, client, case, role):
    user = world.person(role)
    client.force_login(user)
    if case.key == "batch_action":
        target = _batch_for(case, world)
        path = case.path(world).replace(world.running.number, target.number)
    else:
        target = master_version_for(world, case.label)
        path = case.path(world)
    target.refresh_from_db()
    status_before = target.status
    before = snapshot()

    response = client.post(path, _valid_body(case, world, user))

    assert response.status_code in (403, 404, 422), f"{role} {path}: {response.status_code}"
    target.refresh_from_db()
    assert target.status == status_before
    assert snapshot() == before


def test_custody_hand_off_is_refused_to_readers_who_neither_manage_nor_execute(world, client):
    from ebr.models import CustodyEvent

    for role in (Role.QA_REVIEWER, Role.QA_APPROVER, Role.AUDITOR):
        client.force_login(world.person(role))
        before = (snapshot(), CustodyEvent.objects.count())

        response = client.post(f"/batches/{world.running.number}/custody/", {
            "from_party": "Courier", "to_party": "Cleanroom", "location": "Airlock", "condition": "intact",
            "occurred_at": "2026-01-01T10:00", "temperature_c": "4"})

        assert response.status_code in (403, 422), role
        assert (snapshot(), CustodyEvent.objects.count()) == before


# --- a refusal is an answer, never a server error ------------------------------------------------

WRONG_STATE = {
    "master version made effective while a draft": (
        Role.QA_APPROVER, lambda w: f"/master-records/{w.draft.master_record.code}/v{w.draft.version}/effective/"),
    "planned batch put on hold": (Role.SUPERVISOR, lambda w: f"/batches/{w.planned.number}/hold/"),
    "running batch started again": (Role.SUPERVISOR, lambda w: f"/batches/{w.running.number}/start/"),
}


@pytest.mark.parametrize("transition", list(WRONG_STATE))
def test_transition_from_the_wrong_state_is_a_422_with_the_message_not_a_500(world, client, transition):
    role, path = WRONG_STATE[transition]
    client.force_login(world.person(role))
    before = snapshot()

    response = client.post(path(world), {"reason": "Security test"})

    assert response.status_code == 422
    assert snapshot() == before


def test_an_invalid_alarm_acknowledgement_without_htmx_is_a_422_not_a_500(world, client):
    """Found by the matrix: the whole-page answer passed `batch` twice to _page (fixed in
    ebr/views/process_data.py)."""
    client.force_login(world.person(Role.SUPERVISOR))
    before = snapshot()

    response = client.post(f"/batches/{world.process_batch.number}/alarms/{world.alarm.pk}/acknowledge/",
                           {"comment": "", "password": "wrong"})

    assert response.status_code == 422
    assert snapshot() == before
