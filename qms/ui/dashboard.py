"""The QA dashboard and the personal notifications page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from qms.models import Notification
from qms.permissions import capability_required
from qms.roles import Capability
from qms.selectors_dashboard import qa_dashboard
from qms.services.notifications import notification_read, notifications_read_all
from qms.ui.common import csv_response, page_of, wants_csv

OVERDUE_CSV_HEADER = ["what", "reference", "title", "owner", "due_date", "days_overdue",
                      "transcribed_from_paper_record"]


@capability_required(Capability.QA_DASHBOARD)
def dashboard(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    board = qa_dashboard()
    if wants_csv(request):  # the overdue list, for follow-up outside the screen
        rows = ([item.kind, item.reference, item.title, item.owner, item.due_date.isoformat(),
                 str(item.days_overdue), item.paper_reference] for item in board.overdue)
        return csv_response(request, name="overdue", header=OVERDUE_CSV_HEADER, rows=rows,
                            count=len(board.overdue), filters={})
    return render(request, "qms/dashboard.html", {"board": board})


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
