"""The header reads at a glance: on a 1280 px desktop the menu is one line under the facility's name
and the account, for the role with the most entries; on a 768 px tablet its entries keep 48 px touch
targets (EU GMP Annex 11 §6, usability of the system by its users)."""

from __future__ import annotations

import pytest

from qms.roles import Role
from tests.e2e.conftest import log_in, screenshot

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("role", [Role.QA_APPROVER, Role.QA_REVIEWER, Role.SUPERVISOR])
def test_the_menu_is_one_line_on_a_desktop(open_page, e2e_user, role):
    page = open_page()
    page.set_viewport_size({"width": 1280, "height": 800})
    log_in(page, e2e_user(role).username)

    entries = page.locator(".mainnav a")
    tops = {round(box["y"]) for box in (entries.nth(i).bounding_box() for i in range(entries.count()))}
    screenshot(page, f"header-1280-{role.value}")
    assert entries.count() >= 8 and len(tops) == 1, f"{entries.count()} entries on {len(tops)} lines"


def test_on_a_tablet_the_menu_keeps_its_touch_targets(open_page, e2e_user):
    page = open_page()  # 768 x 1024
    log_in(page, e2e_user(Role.QA_APPROVER).username)

    entries = page.locator(".mainnav a")
    heights = {round(entries.nth(i).bounding_box()["height"]) for i in range(entries.count())}
    assert min(heights) >= 48


def test_the_audit_trail_fits_a_desktop_screen_with_long_values(open_page, e2e_user):
    from qms.audit import Event, SystemActor, record_event

    auditor = e2e_user(Role.AUDITOR)
    long_value = "sha256:" + "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" * 2
    record_event(actor=SystemActor("system:tests"), event=Event.SESSION_ENDED_PASSWORD_CHANGED, target=auditor,
                 reason="The password was changed in another session of the account holder",
                 data={"changes": [{"field": "content_hash_of_the_signed_record", "old": long_value,
                                    "new": long_value[::-1]}]})
    page = open_page()
    page.set_viewport_size({"width": 1280, "height": 800})
    log_in(page, auditor.username)
    page.goto("/audit/")

    width = page.evaluate("document.documentElement.scrollWidth")
    screenshot(page, "audit-1280")
    assert width <= 1280, f"the page is {width} px wide: Reason and Signature need scrolling"


def test_the_deviation_trend_chart_starts_at_the_left_of_its_card(open_page, e2e_user):
    """On a wide screen the full-width trend chart is held to its greatest height; its bars and month
    labels begin at the card's left edge instead of floating in the middle with a blank band before them
    (browser QA pass, 2026-11-29)."""
    page = open_page()
    page.set_viewport_size({"width": 1600, "height": 900})
    log_in(page, e2e_user(Role.QA_APPROVER).username)
    page.goto("/qms/dashboard/")

    card = page.locator("#trend").bounding_box()
    first_month = page.locator("#trend svg.chart-svg text.label").first.bounding_box()
    screenshot(page, "dashboard-1600")
    assert first_month["x"] - card["x"] < 110, f"the chart begins {first_month['x'] - card['x']:.0f} px into its card"
