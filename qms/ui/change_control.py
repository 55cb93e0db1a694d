"""Change-control screens: list (filter, sort, CSV), proposal form, record page with its workflow."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from qms.audit import Event
from qms.models import ActionStatus, ChangeControl, ChangeTask
from qms.models.change_control import IMPACT_FIELDS
from qms.permissions import capability_required
from qms.roles import Capability, can
from qms.selectors import event_actor_name
from qms.selectors_capa import CHANGE_CSV_HEADER, ChangeFilters, change_control_csv_rows, change_control_list
from qms.services import change_control as services
from qms.signatures import signatures_for
from qms.staleness import record_version_read
from qms.states import CHANGE_CONTROL_STEPS, steps_possible
from qms.ui import forms as f
from qms.ui.actions import Action, action_form, action_post, form_key, forms_seen, item_actions, refusals, versioned
from qms.ui.common import csv_response, needs_username, page_of, run_service, signed_kwargs, wants_csv

DEFAULT_SORT = "-number"
# per-task buttons: label, button, signed, danger
ITEM_BUTTONS = {"task_complete": ("Mark done", "Sign as done", True, False),
                "task_cancel": ("Cancel task", "Cancel task", False, True)}
DEFINITION_FIELDS = ("title", "change_type", "description", "justification", "affected_items", *IMPACT_FIELDS)


@capability_required(Capability.CHANGE_CONTROL_VIEW)
def change_control_list_view(request: HttpRequest) -> HttpResponse:
    form = f.ChangeFilterForm(request.GET or None)
    data = form.cleaned_data if form.is_bound and form.is_valid() else {}
    filters = ChangeFilters(**{k: v for k, v in data.items() if v not in (None, "")})
    changes = change_control_list(filters, request.GET.get("sort", DEFAULT_SORT))
    if wants_csv(request):
        return csv_response(request, name="change-controls", header=CHANGE_CSV_HEADER,
                            rows=change_control_csv_rows(changes), count=changes.count(), filters=data)
    return render(request, "qms/change_control_list.html", {
        "form": form, "page": page_of(request, changes), "default_sort": DEFAULT_SORT,
        "can_open": can(request.user, Capability.CHANGE_CONTROL_AUTHOR),
    })


@capability_required(Capability.CHANGE_CONTROL_AUTHOR)
def change_control_new(request: HttpRequest) -> HttpResponse:
    form = f.ChangeControlForm(request.POST or None)
    if request.method == "POST":
        change = run_service(form, lambda data: services.change_control_open(
            actor=request.user, **{field: data.get(field, "") for field in DEFINITION_FIELDS}))
        if change:
            messages.success(request, f"{change.number} proposed.")
            return redirect("change_control_detail", number=change.number)
    return render(request, "qms/change_control_new.html", {"form": form}, status=422 if form.errors else 200)


def change_page(request: HttpRequest, change: ChangeControl, *, bound: dict[str, Any] | None = None,
                active: str = "", status: int = 200) -> HttpResponse:
    seen = record_version_read(change)  # before anything of it is read for the page
    possible = steps_possible(CHANGE_CONTROL_STEPS, change, request.user)
    forms = {action: action_form(CHANGE_ACTIONS, action, request, change, seen=seen)
             for action, spec in CHANGE_ACTIONS.items() if action in possible and not spec.per_item}
    for task in change.tasks.filter(status=ActionStatus.OPEN):
        if "task_complete" in possible and task.owner_id == request.user.pk:
            forms[form_key("task_complete", task)] = action_form(CHANGE_ACTIONS, "task_complete", request, change,
                                                                task, seen=seen)
        if "task_cancel" in possible:
            forms[form_key("task_cancel", task)] = action_form(CHANGE_ACTIONS, "task_cancel", request, change, task,
                                                               seen=seen)
    shown = dict(forms)
    forms_seen(bound, seen)
    forms.update(bound or {})
    tasks = [(task, signatures_for(task), item_actions(forms, task, "change_control_item_action", change.number,
                                                       ITEM_BUTTONS))
             for task in change.tasks.select_related("owner", "completed_by")]
    impacts = [(f.ChangeControlForm.base_fields[field].label, getattr(change, field)) for field in IMPACT_FIELDS]
    return render(request, "qms/change_control_detail.html", {
        "change": change, "tasks": tasks, "impacts": impacts, "signatures": signatures_for(change),
        "possible": possible, "forms": forms, "active": active, "approval_gaps": services.approval_gaps(change),
        "can_history": can(request.user, Capability.AUDIT_TRAIL_VIEW), "refusals": refusals(bound, shown),
        "implemented_by": event_actor_name(change, Event.CHANGE_CONTROL_IMPLEMENTED) if change.implemented_at else None,
        "citing": services.change_control_citing(change.number),
    }, status=status)


@capability_required(Capability.CHANGE_CONTROL_VIEW)
def change_control_detail(request: HttpRequest, number: str) -> HttpResponse:
    return change_page(request, get_object_or_404(ChangeControl.objects.select_related("author"), number=number))


@require_POST
@capability_required(Capability.CHANGE_CONTROL_VIEW)
def change_control_action(request: HttpRequest, number: str, action: str, item: int | None = None) -> HttpResponse:
    change = get_object_or_404(ChangeControl, number=number)
    spec = CHANGE_ACTIONS.get(action)
    if spec is None or spec.per_item != (item is not None):
        raise Http404("No such action.")
    task = get_object_or_404(ChangeTask, change=change, pk=item) if item is not None else None
    return action_post(request, record=change, item=task, action=action, actions=CHANGE_ACTIONS,
                       steps=CHANGE_CONTROL_STEPS, page=change_page,
                       detail_url=reverse("change_control_detail", args=[change.number]))


def _signed(form_class: type) -> Any:
    return lambda request, change, item, data: form_class(data, needs_username=needs_username(request))


CHANGE_ACTIONS: dict[str, Action] = versioned({
    "assess": Action(
        "assess",
        lambda request, c, item, data: f.ChangeAssessForm(data, initial={
            field: getattr(c, field) for field in DEFINITION_FIELDS}),
        lambda request, c, item, form, data: services.change_control_assess(
            actor=request.user, change=c, reason=data["reason"], seen=data["seen"],
            **{field: data.get(field, "") for field in DEFINITION_FIELDS}),
        "{record} updated."),
    "approve": Action(
        "approve", _signed(f.SignedReasonForm),
        lambda request, c, item, form, data: services.change_control_approve(
            actor=request.user, change=c, reason=data["reason"], seen=data["seen"], **signed_kwargs(request, form)),
        "{record} approved."),
    "reject": Action(
        "reject", _signed(f.SignedReasonForm),
        lambda request, c, item, form, data: services.change_control_reject(
            actor=request.user, change=c, reason=data["reason"], seen=data["seen"], **signed_kwargs(request, form)),
        "{record} rejected."),
    "task_add": Action(
        "task_add", lambda request, c, item, data: f.TaskAddForm(data),
        lambda request, c, item, form, data: services.change_control_task_add(
            actor=request.user, change=c, description=data["description"], owner=data["owner"],
            due_date=data["due_date"], reason=data["reason"], seen=data["seen"]),
        "Task added to {record}."),
    "task_complete": Action(
        "task_complete", _signed(f.EvidenceSignedForm),
        lambda request, c, item, form, data: services.change_control_task_complete(
            actor=request.user, task=item, evidence=data["evidence"], reason=data["reason"], seen=data["seen"],
            **signed_kwargs(request, form)),
        "{item} signed as done.", per_item=True),
    "task_cancel": Action(
        "task_cancel", lambda request, c, item, data: f.ReasonForm(data),
        lambda request, c, item, form, data: services.change_control_task_cancel(
            actor=request.user, task=item, reason=data["reason"], seen=data["seen"]),
        "{item} cancelled.", per_item=True),
    "implement": Action(
        "implement", lambda request, c, item, data: f.ReasonForm(data, initial={"reason": "All tasks done"}),
        lambda request, c, item, form, data: services.change_control_implement(
            actor=request.user, change=c, reason=data["reason"], seen=data["seen"]),
        "{record} implemented."),
    "close": Action(
        "close", _signed(f.ChangeCloseForm),
        lambda request, c, item, form, data: services.change_control_close(
            actor=request.user, change=c, summary=data["summary"], reason=data["reason"], seen=data["seen"],
            **signed_kwargs(request, form)),
        "{record} closed."),
    "cancel": Action(
        "cancel", lambda request, c, item, data: f.ReasonForm(data),
        lambda request, c, item, form, data: services.change_control_cancel(
            actor=request.user, change=c, reason=data["reason"], seen=data["seen"]),
        "{record} cancelled."),
})
