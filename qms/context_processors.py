"""Navigation per role: each entry is shown only to roles whose capability allows the page."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from qms.roles import Capability, can, roles_for

NAVIGATION: list[tuple[str, str, Capability | None]] = [
    ("Home", "home", None),
    ("Audit trail", "audit_trail", Capability.AUDIT_TRAIL_VIEW),
    ("Users", "user_list", Capability.USER_MANAGE),
]


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"facility_name": settings.FACILITY_NAME, "TIME_ZONE": settings.TIME_ZONE, "nav": []}
    return {
        "facility_name": settings.FACILITY_NAME,
        "TIME_ZONE": settings.TIME_ZONE,
        "nav": [(label, url) for label, url, capability in NAVIGATION
                if capability is None or can(user, capability)],
        "user_roles": [role.value for role in roles_for(user)],
    }
