"""Home pages per role."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from ebr.models import BatchStatus
from ebr.selectors import batches_for_execution, batches_list
from qms.roles import Capability, Role, can, roles_for


def home(request: HttpRequest) -> HttpResponse:
    """One landing page; each role sees the panel it works from (DESIGN.md: users)."""
    user = request.user
    panels = {
        "execute": can(user, Capability.BATCH_EXECUTE),
        "review": can(user, Capability.REVIEW_QUEUE),
        "search": can(user, Capability.RECORD_SEARCH) and not can(user, Capability.REVIEW_QUEUE),
        "admin": can(user, Capability.USER_MANAGE),
    }
    context = {"panels": panels, "roles": roles_for(user), "is_auditor": user.has_role(Role.AUDITOR)}
    if panels["execute"]:
        context["execution_batches"] = list(batches_for_execution())
    if panels["review"]:
        context["review_batches"] = list(batches_list().filter(
            status__in=[BatchStatus.COMPLETED, BatchStatus.IN_REVIEW]))
    return render(request, "home.html", context)
