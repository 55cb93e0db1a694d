"""Logging in through the real form: each role lands on its own panel and sees only its pages.

21 CFR 11.10(d) (access limited to authorised individuals), 11.300 (identification codes and
passwords), EU GMP Annex 11 §12 (security); tablet-first layout for gloved hands (DESIGN.md).
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from qms.audit import Event
from qms.context_processors import NAVIGATION
from qms.models import AuditEvent
from qms.roles import MATRIX, Role
from tests.e2e.conftest import horizontal_overflow, log_in, log_out, screenshot, small_touch_targets

pytestmark = pytest.mark.e2e

PANELS = ["My batches to execute", "Review queue", "Search records", "Administration"]

# role: (its home panel, the control in that panel it starts its work from)
HOME = {
    Role.OPERATOR: ("My batches to execute", None),  # batch tiles or "No batch is waiting for you."
    Role.SUPERVISOR: ("My batches to execute", None),
    Role.QA_REVIEWER: ("Review queue", "Audit trail"),
    Role.QA_APPROVER: ("Review queue", "Audit trail"),
    Role.AUDITOR: ("Search records", "Search the audit trail"),
    Role.ADMIN: ("Administration", "Users, roles and lockouts"),
}
# Whatever else the navigation grows, these pages belong to these roles only.
ONLY_FOR = {
    "Users": {Role.ADMIN},
    "Audit trail": {Role.QA_REVIEWER, Role.QA_APPROVER, Role.AUDITOR},
}


def labels_broken_over_lines(links) -> list[str]:  # type: ignore[no-untyped-def]
    """Links whose label the browser wrapped onto a second line ("Audit / trail")."""
    lines = "e => { const r = document.createRange(); r.selectNodeContents(e); return r.getClientRects().length; }"
    return [link.inner_text() for link in links.all() if link.evaluate(lines) > 1]


def navigation_allowed(role: Role) -> list[str]:
    """The navigation labels the role matrix (qms/roles.py) gives this role, in menu order."""
    return [label for label, _, capability in NAVIGATION if capability is None or role in MATRIX[capability]]


@pytest.mark.parametrize("role", list(HOME), ids=[role.value for role in HOME])
def test_each_role_logs_in_to_its_own_panel_sees_only_its_pages_and_logs_out(role, tablet_page, e2e_user):
    page = tablet_page
    user = e2e_user(role, full_name=f"Persona {role.value}")
    panel, control = HOME[role]
    allowed = navigation_allowed(role)

    log_in(page, user.username)

    expect(page.get_by_role("heading", level=1)).to_have_text(user.full_name)
    expect(page.locator(".whoami .roles")).to_have_text(role.value)
    expect(page.get_by_role("heading", name=panel, level=2)).to_be_visible()
    if control is not None:
        section = page.locator("section.card").filter(has=page.get_by_role("heading", name=panel, level=2))
        expect(section.locator("a.btn, button", has_text=control)).to_be_visible()
    for other in PANELS:
        if other != panel:
            expect(page.get_by_role("heading", name=other, level=2)).to_have_count(0)
    navigation = page.get_by_role("navigation", name="Main").get_by_role("link")
    assert navigation.all_inner_texts() == allowed
    assert "Home" in allowed
    assert labels_broken_over_lines(navigation) == []
    for label, roles in ONLY_FOR.items():
        assert (label in allowed) == (role in roles), label
    # Touch targets and layout on the tablet the role works from; then the browser's own report.
    assert small_touch_targets(page) == []
    assert horizontal_overflow(page) <= 0
    assert page.log.csp_violations(page) == []
    assert page.log.page_errors == []
    assert page.log.console_errors_besides_favicon() == []
    screenshot(page, f"home-{role.value}")

    # What the navigation hides, the server refuses too: hiding a link is not access control.
    answers = {label: page.request.get(reverse(url_name), max_redirects=0).status
               for label, url_name, _ in NAVIGATION}
    assert answers == {label: 200 if label in allowed else 403 for label in answers}
    hidden = next(url_name for label, url_name, _ in NAVIGATION if label not in allowed)
    assert page.goto(reverse(hidden)).status == 403
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()

    page.goto("/")
    log_out(page)
    expect(page.get_by_role("status")).to_contain_text("You are logged out.")
    page.goto("/")
    assert re.search(r"/login/\?next=/$", page.url), page.url
    events = list(AuditEvent.objects.filter(actor_id=user.pk).order_by("id").values_list("event_type", flat=True))
    assert events == [Event.LOGIN_SUCCEEDED, Event.LOGGED_OUT]


def test_wrong_password_is_refused_with_one_message_and_keeps_the_username(tablet_page, e2e_user):
    page = tablet_page
    user = e2e_user(Role.OPERATOR)

    page.goto("/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill("not-the-password-42")
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("alert")).to_have_text("Username or password is not correct.")
    expect(page.get_by_label("Username")).to_have_value(user.username)
    expect(page.get_by_label("Password")).to_have_value("")  # never echoed back
    assert page.url.endswith("/login/")
    assert AuditEvent.objects.filter(event_type=Event.LOGIN_FAILED, actor_id=user.pk).count() == 1
    screenshot(page, "login-wrong-password")


def test_login_page_is_usable_with_gloves_on_a_tablet(tablet_page):
    page = tablet_page

    response = page.goto("/login/")

    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.get_by_label("Username")).to_be_focused()
    assert small_touch_targets(page) == []
    assert horizontal_overflow(page) <= 0
    assert page.log.csp_violations(page) == []
    assert page.log.page_errors == []
    screenshot(page, "login")


def test_pages_name_an_icon_so_browsers_do_not_ask_for_a_missing_one(tablet_page):
    page = tablet_page

    page.goto("/login/")
    declared = page.evaluate("() => document.querySelector('link[rel~=icon]')?.href ?? null")

    assert declared is not None
    assert declared.startswith("data:") or page.request.get(declared).ok
