"""CAPA screens: list (filter, sort, CSV), opening form, record page with actions and checks."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from qms.models import ActionStatus, Capa, CapaAction, CapaSource
from qms.permissions import capability_required
from qms.roles import Capability, can
from qms.selectors_capa import CAPA_CSV_HEADER, CapaFilters, capa_csv_rows, capa_list
from qms.services import capa as services
from qms.signatures import signatures_for
from qms.staleness import record_version_read
from qms.states import CAPA_STEPS, steps_possible
from qms.ui import forms as f
from qms.ui import forms_capa as fc
from qms.ui.actions import Action, action_form, action_post, form_key, forms_seen, item_actions, refusals, versioned
from qms.ui.common import (
    csv_response,
    needs_username,
    page_of,
    run_service,
    signed_kwargs,
    wants_csv,
)

DEFAULT_SORT = "-number"
# per-action buttons: label, button, signed, danger
ITEM_BUTTONS = {"action_complete": ("Mark done", "Sign as done", True, False),
                "action_cancel": ("Cancel action", "Cancel action", False, True)}


@capability_required(Capability.CAPA_VIEW)
def capa_list_view(request: HttpRequest) -> HttpResponse:
    form = f.CapaFilterForm(request.GET or None)
    data = form.cleaned_data if form.is_bound and form.is_valid() else {}
    filters = CapaFilters(**{k: v for k, v in data.items() if v not in (None, "")})
    capas = capa_list(filters, request.GET.get("sort", DEFAULT_SORT))
    if wants_csv(request):
        return csv_response(request, name="capa", header=CAPA_CSV_HEADER,
                            rows=capa_csv_rows(capas), count=capas.count(), filters=data)
    return render(request, "qms/capa_list.html", {
        "form": form, "page": page_of(request, capas), "default_sort": DEFAULT_SORT,
        "can_open": can(request.user, Capability.CAPA_MANAGE),
    })


@capability_required(Capability.CAPA_MANAGE)
def capa_new(request: HttpRequest) -> HttpResponse:
    initial: dict[str, Any] = {"owner": request.user.pk}
    if request.GET.get("deviation"):
        initial.update(deviations=request.GET["deviation"], source=CapaSource.DEVIATION)
    form = fc.CapaOpenForm(request.POST or None, initial=initial)
    if request.method == "POST":
        capa = run_service(form, lambda data: services.capa_open(
            actor=request.user, title=data["title"], problem_statement=data["problem_statement"],
            source=data["source"], source_reference=data.get("source_reference", ""), deviations=data["deviations"],
            owner=data["owner"], effectiveness_criteria=data.get("effectiveness_criteria", ""),
            effectiveness_due=data.get("effectiveness_due")))
        if capa:
            messages.success(request, f"{capa.number} opened.")
            return redirect("capa_detail", number=capa.number)
    return render(request, "qms/capa_new.html", {"form": form}, status=422 if form.errors else 200)


def _item_forms(request: HttpRequest, capa: Capa, possible: set[str], seen: str) -> dict[str, Any]:
    forms: dict[str, Any] = {}
    for action in capa.actions.filter(status=ActionStatus.OPEN):
        if "action_complete" in possible and action.owner_id == request.user.pk:
            forms[form_key("action_complete", action)] = action_form(CAPA_ACTIONS, "action_complete", request,
                                                                    capa, action, seen=seen)
        if "action_cancel" in possible:
            forms[form_key("action_cancel", action)] = action_form(CAPA_ACTIONS, "action_cancel", request, capa,
                                                                  action, seen=seen)
    return forms


def capa_page(request: HttpRequest, capa: Capa, *, bound: dict[str, Any] | None = None, active: str = "",
              status: int = 200) -> HttpResponse:
    seen = record_version_read(capa)  # before anything of it is read for the page
    possible = steps_possible(CAPA_STEPS, capa, request.user)
    forms = {action: action_form(CAPA_ACTIONS, action, request, capa, seen=seen)
             for action, spec in CAPA_ACTIONS.items() if action in possible and not spec.per_item}
    forms.update(_item_forms(request, capa, possible, seen))
    shown = dict(forms)
    forms_seen(bound, seen)
    forms.update(bound or {})
    actions = [(action, signatures_for(action),
                item_actions(forms, action, "capa_item_action", capa.number, ITEM_BUTTONS))
               for action in capa.actions.select_related("owner", "completed_by")]
    checks = [(check, signatures_for(check)) for check in capa.effectiveness_checks.select_related("checked_by")]
    return render(request, "qms/capa_detail.html", {
        "capa": capa, "actions": actions, "checks": checks,
        "deviation_links": capa.deviation_links.select_related("deviation"), "signatures": signatures_for(capa),
        "possible": possible, "forms": forms, "active": active, "gaps": services.capa_closure_gaps(capa),
        "can_history": can(request.user, Capability.AUDIT_TRAIL_VIEW), "refusals": refusals(bound, shown),
    }, status=status)


@capability_required(Capability.CAPA_VIEW)
def capa_detail(request: HttpRequest, number: str) -> HttpResponse:
    return capa_page(request, get_object_or_404(Capa.objects.select_related("owner"), number=number))


@require_POST
@capability_required(Capability.CAPA_VIEW)
def capa_action(request: HttpRequest, number: str, action: str, item: int | None = None) -> HttpResponse:
    capa = get_object_or_404(Capa, number=number)
    spec = CAPA_ACTIONS.get(action)
    if spec is None or spec.per_item != (item is not None):
        raise Http404("No such action.")
    capa_item = get_object_or_404(CapaAction, capa=capa, pk=item) if item is not None else None
    return action_post(request, record=capa, item=capa_item, action=action, actions=CAPA_ACTIONS, steps=CAPA_STEPS,
                       page=capa_page, detail_url=reverse("capa_detail", args=[capa.number]))


def _signed(form_class: type) -> Any:
    return lambda request, capa, item, data: form_class(data, needs_username=needs_username(request))


CAPA_ACTIONS: dict[str, Action] = versioned({
    "deviation_link": Action(
        "deviation_link", lambda request, c, item, data: fc.DeviationLinkForm(data, capa=c),
        lambda request, c, item, form, data: services.capa_deviation_link(
            actor=request.user, capa=c, deviation=data["deviation"], reason=data["reason"], seen=data["seen"]),
        "Deviation linked to {record}."),
    "action_add": Action(
        "action_add", lambda request, c, item, data: fc.ActionAddForm(data, capa=c),
        lambda request, c, item, form, data: services.capa_action_add(
            actor=request.user, capa=c, kind=data["kind"], description=data["description"], owner=data["owner"],
            due_date=data["due_date"], reason=data["reason"], seen=data["seen"]),
        "Action added to {record}."),
    "action_complete": Action(
        "action_complete", _signed(f.EvidenceSignedForm),
        lambda request, c, item, form, data: services.capa_action_complete(
            actor=request.user, action=item, evidence=data["evidence"], reason=data["reason"], seen=data["seen"],
            **signed_kwargs(request, form)),
        "{item} signed as done.", per_item=True),
    "action_cancel": Action(
        "action_cancel", lambda request, c, item, data: f.ReasonForm(data),
        lambda request, c, item, form, data: services.capa_action_cancel(
            actor=request.user, action=item, reason=data["reason"], seen=data["seen"]),
        "{item} cancelled.", per_item=True),
    "effectiveness_plan": Action(
        "effectiveness_plan",
        lambda request, c, item, data: fc.EffectivenessPlanForm(data, capa=c, initial={
            "criteria": c.effectiveness_criteria, "due_date": c.effectiveness_due}),
        lambda request, c, item, form, data: services.capa_effectiveness_plan(
            actor=request.user, capa=c, criteria=data["criteria"], due_date=data["due_date"], reason=data["reason"],
            seen=data["seen"]),
        "Effectiveness check of {record} planned."),
    "effectiveness_record": Action(
        "effectiveness_record",
        lambda request, c, item, data: fc.EffectivenessRecordForm(data, capa=c,
                                                                 needs_username=needs_username(request)),
        lambda request, c, item, form, data: services.capa_effectiveness_record(
            actor=request.user, capa=c, result=data["result"], evidence=data["evidence"], reason=data["reason"],
            seen=data["seen"], **signed_kwargs(request, form)),
        "Effectiveness check of {record} recorded."),
    "close": Action(
        "close", _signed(f.SignedReasonForm),
        lambda request, c, item, form, data: services.capa_close(
            actor=request.user, capa=c, reason=data["reason"], seen=data["seen"], **signed_kwargs(request, form)),
        "{record} approved and closed."),
    "cancel": Action(
        "cancel", lambda request, c, item, data: f.ReasonForm(data),
        lambda request, c, item, form, data: services.capa_cancel(actor=request.user, capa=c, reason=data["reason"],
                                                                 seen=data["seen"]),
        "{record} cancelled."),
})
