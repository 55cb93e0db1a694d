"""Five wrong passwords lock an account until an administrator unlocks it, with a reason, on record.

21 CFR 11.300(d) (attempted unauthorised use detected and reported), 11.10(e) (the unlock is
in the audit trail with who, when and why), EU GMP Annex 11 §12.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from qms.audit import Event
from qms.models import AuditEvent
from qms.roles import Role
from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in, log_out, screenshot

pytestmark = pytest.mark.e2e

LOCKED = "Too many failed attempts. This account is locked until an administrator unlocks it."
WRONG = "Username or password is not correct."


def _attempt(page, username: str, password: str) -> None:  # type: ignore[no-untyped-def]
    if page.get_by_label("Password").count() == 0:  # a refused login shows the form again
        page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


def test_admin_unlocks_a_locked_account_with_a_reason_and_the_user_logs_in_again(open_page, e2e_user):
    operator = e2e_user(Role.OPERATOR, full_name="Locked Operator")
    admin = e2e_user(Role.ADMIN, full_name="Alice Admin")
    auditor = e2e_user(Role.AUDITOR, full_name="Arthur Auditor")
    tablet = open_page()  # the cleanroom tablet the operator uses

    for _ in range(4):
        _attempt(tablet, operator.username, "wrong-password-123")
        expect(tablet.get_by_role("alert")).to_have_text(WRONG)
    _attempt(tablet, operator.username, "wrong-password-123")
    expect(tablet.get_by_role("heading", name="Account locked")).to_be_visible()
    # Locked means locked: the right password does not get in either.
    _attempt(tablet, operator.username, PASSWORD)
    expect(tablet.get_by_role("alert")).to_have_text(LOCKED)
    assert tablet.url.endswith("/login/")
    screenshot(tablet, "account-locked")

    desk = open_page()  # the administrator's own session
    log_in(desk, admin.username)
    desk.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
    row = desk.locator(f'#user-table tr[data-username="{operator.username}"]')
    expect(row.locator(".tag.bad")).to_have_text("locked")
    reason = row.get_by_label(f"Reason for unlocking {operator.username}")
    unlock = row.get_by_role("button", name="Unlock")
    for target in (reason, unlock):
        assert target.bounding_box()["height"] >= 44
    screenshot(desk, "users-locked")
    unlock.click()  # without a reason the browser does not send the form (the server would refuse it too)
    assert reason.evaluate("e => e.validity.valueMissing")
    expect(row.locator(".tag.bad")).to_have_text("locked")
    reason.fill("Identity confirmed in person at the cleanroom door")
    unlock.click()
    expect(desk.get_by_role("status")).to_contain_text(f"{operator.username} unlocked.")
    expect(row.locator(".tag.ok")).to_have_text("active")
    expect(row.get_by_role("button", name="Unlock")).to_have_count(0)
    screenshot(desk, "users-unlocked")

    log_in(tablet, operator.username)
    expect(tablet.get_by_role("heading", name="My batches to execute")).to_be_visible()
    log_out(tablet)

    unlocked = AuditEvent.objects.get(event_type=Event.USER_UNLOCKED, target_id=str(operator.pk))
    assert unlocked.actor_id == admin.pk
    assert unlocked.reason == "Identity confirmed in person at the cleanroom door"
    assert unlocked.data["attempts_cleared"] >= 1
    history = list(AuditEvent.objects.filter(target_type="qms.user", target_id=str(operator.pk))
                   .exclude(event_type__in=[Event.USER_CREATED, Event.USER_ROLES_CHANGED])
                   .order_by("id").values_list("event_type", flat=True))
    before_unlock = history[:history.index(Event.USER_UNLOCKED)]
    # Four refusals, then the fifth locks; the right password on the locked account is refused too.
    assert before_unlock[:5] == [Event.LOGIN_FAILED] * 4 + [Event.USER_LOCKED]
    assert before_unlock.count(Event.LOGIN_FAILED) == 6
    assert Event.LOGIN_SUCCEEDED not in before_unlock
    assert history[-3:] == [Event.USER_UNLOCKED, Event.LOGIN_SUCCEEDED, Event.LOGGED_OUT]

    # An inspector finds the unlock, who did it and why, in the audit trail.
    inspector = open_page()
    log_in(inspector, auditor.username)
    inspector.goto(f"/audit/?record=qms.user:{operator.pk}&event_type={Event.USER_UNLOCKED}")
    shown = inspector.locator("#audit-rows tr.audit-row")
    expect(shown).to_have_count(1)
    expect(shown).to_contain_text(admin.username)
    expect(shown).to_contain_text("Identity confirmed in person at the cleanroom door")
    expect(shown.get_by_role("link", name=str(operator))).to_be_visible()
    screenshot(inspector, "audit-trail-unlock")
