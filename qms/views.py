"""Accounts, user administration and the audit trail pages: thin adapters over services."""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from qms.audit.display import audit_change_display
from qms.forms import (
    AuditFilterForm,
    LoginForm,
    PasswordChangeForm,
    PasswordResetForm,
    ReasonForm,
    UserCreateForm,
    UserRolesForm,
    errors_onto,
)
from qms.models import User
from qms.permissions import capability_required
from qms.roles import Capability
from qms.selectors import AuditRow, audit_events_filtered, audit_page, audit_rows_all, record_history, record_label
from qms.services import users as user_services
from qms.ui.common import csv_response


class LoginView(auth_views.LoginView):
    form_class = LoginForm
    template_name = "registration/login.html"
    redirect_authenticated_user = True


def logout_view(request: HttpRequest) -> HttpResponse:
    from django.contrib.auth import logout

    if request.method == "POST":
        logout(request)
        messages.info(request, "You are logged out.")
    return redirect("login")


def password_change(request: HttpRequest) -> HttpResponse:
    """Any logged-in person changes their own password (the login is the middleware's)."""
    from django.contrib.auth import update_session_auth_hash

    form = PasswordChangeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user = user_services.password_change(actor=request.user, current_password=data["current_password"],
                                                 new_password=data["new_password"], request=request)
        except ValidationError as error:
            errors_onto(form, error, unplaced_field="new_password")
        else:
            update_session_auth_hash(request, user)  # this session stays; the holder's others end
            messages.success(request, "Your password is changed.")
            return redirect("home")
    return render(request, "qms/password_change.html", {"form": form, "set_by": user_services.password_set_by(
        request.user)}, status=422 if form.errors else 200)


# --- user administration --------------------------------------------------------------------

@capability_required(Capability.USER_MANAGE)
def user_list(request: HttpRequest) -> HttpResponse:
    form = UserCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user = user_services.user_create(
                actor=request.user, username=data["username"], full_name=data["full_name"],
                password=data["password"], roles=data["roles"], job_title=data["job_title"],
                email=data["email"], reason=data["reason"])
        except ValidationError as error:
            errors_onto(form, error, unplaced_field="password")
        else:
            messages.success(request, f"Account {user.username} created: give its holder the password in person; "
                                      f"it works for {settings.TEMPORARY_PASSWORD_HOURS} hours, until they choose "
                                      "their own.")
            return redirect("user_list")
    users = User.objects.prefetch_related("groups").order_by("username")
    return render(request, "qms/user_list.html", {
        "users": users, "locked": set(user_services.user_locked_list()), "form": form,
        "roles_mixed": set(user_services.users_roles_mixed()),
        "temporary_expired": user_services.users_temporary_password_expired(),
    }, status=422 if form.errors else 200)


USER_ACTIONS = {
    "unlock": (user_services.user_unlock, "unlocked"),
    "deactivate": (user_services.user_deactivate, "deactivated"),
    "reactivate": (user_services.user_reactivate, "reactivated"),
}


@require_POST
@capability_required(Capability.USER_MANAGE)
def user_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    user = get_object_or_404(User, pk=pk)
    if action not in USER_ACTIONS:
        return HttpResponse(status=404)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give a reason: it is recorded in the audit trail.")
        return redirect("user_list")
    service, done = USER_ACTIONS[action]
    try:
        service(actor=request.user, user=user, reason=form.cleaned_data["reason"])
    except (ValidationError, PermissionDenied) as error:  # e.g. deactivating one's own account
        messages.error(request, " ".join(getattr(error, "messages", [str(error)])))
    else:
        messages.success(request, f"{user.username} {done}.")
    return redirect("user_list")


@capability_required(Capability.USER_MANAGE)
def user_roles(request: HttpRequest, pk: int) -> HttpResponse:
    account = get_object_or_404(User, pk=pk)
    form = UserRolesForm(request.POST or None, initial={"roles": sorted(account.role_names)})
    if request.method == "POST" and form.is_valid():
        try:
            user_services.user_roles_set(actor=request.user, user=account, roles=form.cleaned_data["roles"],
                                         reason=form.cleaned_data["reason"])
        except (ValidationError, PermissionDenied) as error:  # e.g. an administrator's own roles
            errors_onto(form, error)
        else:
            messages.success(request, f"Roles of {account.username} changed.")
            return redirect("user_list")
    return render(request, "qms/user_roles.html", {"account": account, "form": form},
                  status=422 if form.errors else 200)


@capability_required(Capability.USER_MANAGE)
def user_password_reset(request: HttpRequest, pk: int) -> HttpResponse:
    account = get_object_or_404(User, pk=pk)
    if account.pk == request.user.pk:
        messages.error(request, "Nobody resets their own password: change it here, with your current one.")
        return redirect("password_change")
    form = PasswordResetForm(request.POST or None, account=account)
    if request.method == "POST" and form.is_valid():
        try:
            user_services.password_reset(actor=request.user, user=account, password=form.cleaned_data["new_password"],
                                         reason=form.cleaned_data["reason"])
        except (ValidationError, PermissionDenied) as error:
            errors_onto(form, error, unplaced_field="new_password")
        else:
            messages.success(request, f"Password of {account.username} reset: they choose their own at their next "
                                      f"login, within {settings.TEMPORARY_PASSWORD_HOURS} hours.")
            return redirect("user_list")
    return render(request, "qms/user_password_reset.html", {
        "account": account, "form": form, "temporary_hours": settings.TEMPORARY_PASSWORD_HOURS},
        status=422 if form.errors else 200)


# --- audit trail ----------------------------------------------------------------------------

@capability_required(Capability.AUDIT_TRAIL_VIEW)
def audit_trail(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    page = None
    if form.is_valid():
        page = audit_page(form.filters(), before=_int_or_none(request.GET.get("before")))
    query = request.GET.copy()
    query.pop("before", None)
    template = "qms/_audit_rows.html" if request.htmx and request.GET.get("before") else "qms/audit_trail.html"
    return render(request, template, {"form": form, "page": page, "query": query.urlencode()})


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


CSV_HEADER = ["id", "occurred_at", "actor", "event", "record_type", "record_id", "record",
              "reason", "changes", "signature", "signature_status"]


def _csv_line(row: AuditRow) -> list[str]:
    """Every time in the export is ISO 8601 UTC, as occurred_at is: one zone in one file."""
    changes = "; ".join(f"{c['field']}: {c['old']} → {c['new']}" for c in (
        audit_change_display(recorded, local=False) for recorded in row.data.get("changes", [])
        if isinstance(recorded, dict)))
    signature = row.signature
    signed = (f"{signature.meaning.capitalize()} by {signature.printed_name} on {signature.signed_at.isoformat()} "
              f"({signature.status})" if signature else "")
    return [str(row.id), row.occurred_at.isoformat(), row.actor, row.event_type, row.target_type,
            row.target_id, row.target_label, row.reason, changes, signed, signature.status if signature else ""]


@capability_required(Capability.AUDIT_TRAIL_EXPORT)
def audit_trail_csv(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return HttpResponse("Invalid filter: " + json.dumps(form.errors), status=400, content_type="text/plain")
    filters = form.filters()
    return csv_response(request, name="audit-trail", label="audit trail", header=CSV_HEADER,
                        rows=(_csv_line(row) for row in audit_rows_all(filters)),
                        count=audit_events_filtered(filters).count(), filters=filters.as_dict())


@capability_required(Capability.AUDIT_TRAIL_VIEW)
def record_history_view(request: HttpRequest, target_type: str, target_id: str) -> HttpResponse:
    rows = record_history(target_type, target_id)
    return render(request, "qms/record_history.html", {
        "rows": rows, "target_type": target_type, "target_id": target_id,
        "target_label": record_label(target_type, target_id, rows),
    })
