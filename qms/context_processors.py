"""Navigation per role: each entry is shown only to roles whose capability allows the page."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from qms.roles import Capability, can, roles_for

NAVIGATION: list[tuple[str, str, Capability | None]] = [
    ("Home", "home", None),
    ("Execute", "execution_list", Capability.BATCH_EXECUTE),
    ("Batches", "batch_list", Capability.BATCH_VIEW),
    ("Master records", "master_record_list", Capability.BATCH_VIEW),
    ("Deviations", "deviation_list", Capability.DEVIATION_VIEW),
    ("CAPA", "capa_list", Capability.CAPA_VIEW),
    ("Change control", "change_control_list", Capability.CHANGE_CONTROL_VIEW),
    ("Training", "training_matrix", Capability.TRAINING_VIEW),
    ("QA dashboard", "qa_dashboard", Capability.QA_DASHBOARD),
    ("Review queue", "review_queue", Capability.REVIEW_QUEUE),
    ("Search", "record_search", Capability.RECORD_SEARCH),
    ("Audit trail", "audit_trail", Capability.AUDIT_TRAIL_VIEW),
    ("Users", "user_list", Capability.USER_MANAGE),
]  # Notifications and the password are the person's own: beside their name (templates/base.html)


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
