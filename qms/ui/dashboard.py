"""The QA dashboard and the personal notifications page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from qms.models import Notification
from qms.permissions import capability_required
from qms.roles import Capability
from qms.selectors_dashboard import qa_dashboard
from qms.services.notifications import notification_read, notifications_read_all
from qms.ui.common import page_of


@capability_required(Capability.QA_DASHBOARD)
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "qms/dashboard.html", {"board": qa_dashboard()})


def notifications(request: HttpRequest) -> HttpResponse:
    """Every logged-in person's own notifications (no capability: each sees only theirs)."""
    mine = Notification.objects.filter(user=request.user)
    return render(request, "qms/notifications.html", {
        "page": page_of(request, mine), "unread": mine.filter(read_at__isnull=True).count(),
    })


@require_POST
def notification_mark_read(request: HttpRequest, pk: int) -> HttpResponse:
    notification_read(user=request.user, notification_id=pk)
    target = Notification.objects.filter(pk=pk, user=request.user).values_list("link", flat=True).first()
    if request.POST.get("open") and target:
        return redirect(target)
    return redirect("notifications")


@require_POST
def notifications_mark_all_read(request: HttpRequest) -> HttpResponse:
    notifications_read_all(user=request.user)
    return redirect("notifications")
