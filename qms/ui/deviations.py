"""Deviation screens: list (filter, sort, CSV), report form, record page with its workflow."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from qms.models import CapaDecision, Deviation, DeviationSource
from qms.permissions import capability_required
from qms.risk import RISK_MATRIX, SCORE_LABELS
from qms.roles import Capability, can
from qms.selectors_deviations import (
    DEVIATION_CSV_HEADER,
    DeviationFilters,
    deviation_csv_rows,
    deviation_list,
    is_overdue,
)
from qms.services import deviations as services
from qms.services.deviations.reporting import clean_report
from qms.signatures import signatures_for
from qms.staleness import record_version_read
from qms.states import DEVIATION_STEPS, steps_possible
from qms.subjects import subject_kinds, subject_resolve, subject_url
from qms.ui import forms as f
from qms.ui.actions import Action, action_form, action_post, forms_seen, refusals, versioned
from qms.ui.common import (
    csv_response,
    needs_username,
    page_of,
    run_service,
    signed_kwargs,
    wants_csv,
)

DEFAULT_SORT = "-number"


@capability_required(Capability.DEVIATION_VIEW)
def deviation_list_view(request: HttpRequest) -> HttpResponse:
    form = f.DeviationFilterForm(request.GET or None)
    data = form.cleaned_data if form.is_bound and form.is_valid() else {}
    filters = DeviationFilters(**{k: v for k, v in data.items() if v not in (None, "")})
    sort = request.GET.get("sort", DEFAULT_SORT)
    deviations = deviation_list(filters, sort)
    if wants_csv(request):
        return csv_response(request, name="deviations", header=DEVIATION_CSV_HEADER,
                            rows=deviation_csv_rows(deviations),
                            count=deviations.count(), filters=data)
    return render(request, "qms/deviation_list.html", {
        "form": form, "page": page_of(request, deviations), "default_sort": DEFAULT_SORT,
        "can_open": can(request.user, Capability.DEVIATION_OPEN), "today": timezone.localdate(),
    })


@capability_required(Capability.DEVIATION_OPEN)
def deviation_new(request: HttpRequest) -> HttpResponse:
    form = f.DeviationOpenForm(request.POST or None)
    if request.method == "POST" and form.is_bound:  # an empty POST leaves the form unbound: shown again
        valid = form.is_valid()
        subjects = form.subjects()
        if not valid or form.errors:
            _report_errors_onto(form)
        else:
            deviation = run_service(form, lambda data: services.deviation_open(
                actor=request.user, title=data["title"], description=data["description"],
                occurred_at=data["occurred_at"], discovered_at=data.get("discovered_at"),
                immediate_actions=data.get("immediate_actions", ""), source=DeviationSource.MANUAL,
                subjects=subjects))
            if deviation:
                messages.success(request, f"Deviation {deviation.number} reported. QA has been notified.")
                return redirect("deviation_detail", number=deviation.number)
    status = 422 if form.errors else 200
    return render(request, "qms/deviation_new.html", {"form": form, "has_kinds": bool(subject_kinds())},
                  status=status)


def _report_errors_onto(form: f.DeviationOpenForm) -> None:
    """Everything wrong in one answer: the report's own checks (times in the future, found before it
    happened) beside the form's and the subjects', not one more error per submit."""
    data = form.cleaned_data
    if "occurred_at" not in data:
        return
    try:
        clean_report(title=data.get("title", ""), description=data.get("description", ""),
                     occurred_at=data["occurred_at"], discovered_at=data.get("discovered_at") or timezone.now(),
                     source=DeviationSource.MANUAL, now=timezone.now())
    except ValidationError as error:
        for field, problems in error.message_dict.items():
            if field in form.fields and field not in form.errors:
                for problem in problems:
                    form.add_error(field, problem)


# --- the record page ------------------------------------------------------------------------

def _initial_triage(deviation: Deviation) -> dict[str, Any]:
    return {"classification": deviation.classification, "classification_rationale": deviation.classification_rationale,
            "severity": deviation.severity, "occurrence": deviation.occurrence,
            "detectability": deviation.detectability, "owner": deviation.owner_id}


def _initial_investigation(deviation: Deviation) -> dict[str, Any]:
    whys = {f"why_{n}": text for n, text in enumerate(deviation.root_cause_whys or [], start=1)}
    return {"root_cause_category": deviation.root_cause_category, "root_cause": deviation.root_cause,
            "product_impact": deviation.product_impact, **whys}


def _forms(request: HttpRequest, deviation: Deviation, possible: set[str], seen: str) -> dict[str, Any]:
    return {action: action_form(DEVIATION_ACTIONS, action, request, deviation, seen=seen)
            for action in possible if action in DEVIATION_ACTIONS}


def deviation_page(request: HttpRequest, deviation: Deviation, *, bound: dict[str, Any] | None = None,
                   active: str = "", status: int = 200) -> HttpResponse:
    seen = record_version_read(deviation)  # before anything of it is read for the page
    possible = steps_possible(DEVIATION_STEPS, deviation, request.user)
    if not subject_kinds():
        possible.discard("subject_add")
    if deviation.source in services.MEASURED_SOURCES:
        possible.discard("cancel")  # refused by the service: a form that can only fail is not offered
    shown = _forms(request, deviation, possible, seen)
    forms_seen(bound, seen)
    forms = {**shown, **(bound or {})}
    subjects = [(s, subject_url(s.subject_type, s.subject_id, s.label)) for s in deviation.subjects.all()]
    extensions = [(e, signatures_for(e)) for e in deviation.extensions.select_related("granted_by")]
    return render(request, "qms/deviation_detail.html", {
        "deviation": deviation, "subjects": subjects, "extensions": extensions,
        "capa_links": deviation.capa_links.select_related("capa"), "signatures": signatures_for(deviation),
        "possible": possible, "forms": forms, "active": active, "gaps": services.investigation_gaps(deviation),
        "overdue": is_overdue(deviation), "can_history": can(request.user, Capability.AUDIT_TRAIL_VIEW),
        "can_open_capa": can(request.user, Capability.CAPA_MANAGE),
        "risk_matrix": [(severity, RISK_MATRIX[severity]) for severity in sorted(RISK_MATRIX, reverse=True)],
        "score_labels": SCORE_LABELS, "refusals": refusals(bound, shown),
    }, status=status)


@capability_required(Capability.DEVIATION_VIEW)
def deviation_detail(request: HttpRequest, number: str) -> HttpResponse:
    deviation = get_object_or_404(Deviation.objects.select_related("owner", "capa"), number=number)
    return deviation_page(request, deviation)


@require_POST
@capability_required(Capability.DEVIATION_VIEW)
def deviation_action(request: HttpRequest, number: str, action: str) -> HttpResponse:
    deviation = get_object_or_404(Deviation, number=number)
    if action not in DEVIATION_ACTIONS:
        raise Http404("No such action.")
    return action_post(request, record=deviation, item=None, action=action, actions=DEVIATION_ACTIONS,
                       steps=DEVIATION_STEPS, page=deviation_page,
                       detail_url=reverse("deviation_detail", args=[deviation.number]))


def _signed(form_class: type) -> Any:
    return lambda request, deviation, item, data: form_class(data, needs_username=needs_username(request))


def _capa_call(request: HttpRequest, deviation: Deviation, item: Any, form: Any, data: dict[str, Any]) -> Any:
    if data["decision"] == CapaDecision.REQUIRED and data.get("capa") is None:
        raise ValidationError({"capa": "Choose the CAPA that addresses this deviation."})
    return services.deviation_capa_decide(actor=request.user, deviation=deviation, decision=data["decision"],
                                          rationale=data.get("rationale", ""), capa=data.get("capa"),
                                          reason=data["reason"], seen=data["seen"])


def _subject_call(request: HttpRequest, deviation: Deviation, item: Any, form: Any, data: dict[str, Any]) -> Any:
    subject = subject_resolve(data["subject_type"], data["reference"])
    return services.deviation_subject_add(actor=request.user, deviation=deviation, subject=subject,
                                          reason=data["reason"], seen=data["seen"])


DEVIATION_ACTIONS: dict[str, Action] = versioned({
    "triage": Action(
        "triage",
        lambda request, d, item, data: f.DeviationTriageForm(data, initial=_initial_triage(d)),
        lambda request, d, item, form, data: services.deviation_triage(
            actor=request.user, deviation=d, classification=data["classification"],
            rationale=data["classification_rationale"], severity=data["severity"], occurrence=data["occurrence"],
            detectability=data["detectability"], owner=data["owner"], reason=data["reason"], seen=data["seen"]),
        "{record} triaged."),
    "investigate": Action(
        "investigate",
        lambda request, d, item, data: f.DeviationInvestigateForm(data, deviation=d,
                                                                  initial=_initial_investigation(d)),
        lambda request, d, item, form, data: services.deviation_investigate(
            actor=request.user, deviation=d, root_cause_category=data["root_cause_category"],
            root_cause=data["root_cause"], whys=form.whys(), product_impact=data["product_impact"],
            subject_impacts=form.subject_impacts(), reason=data["reason"], seen=data["seen"]),
        "Investigation of {record} saved."),
    "capa_decide": Action(
        "capa_decide",
        lambda request, d, item, data: f.CapaDecisionForm(data, deviation=d, initial={
            "decision": d.capa_decision, "rationale": d.capa_rationale, "capa": d.capa_id}),
        _capa_call, "CAPA decision recorded for {record}."),
    "subject_add": Action(
        "subject_add", lambda request, d, item, data: f.SubjectAddForm(data), _subject_call,
        "Record linked to {record}."),
    "submit": Action(
        "submit", _signed(f.SignedReasonForm),
        lambda request, d, item, form, data: services.deviation_submit(
            actor=request.user, deviation=d, reason=data["reason"], seen=data["seen"],
            **signed_kwargs(request, form)),
        "{record} signed and submitted for QA approval."),
    "return": Action(
        "return", lambda request, d, item, data: f.ReasonForm(data),
        lambda request, d, item, form, data: services.deviation_return(
            actor=request.user, deviation=d, reason=data["reason"], seen=data["seen"]),
        "{record} returned to investigation."),
    "close": Action(
        "close", _signed(f.SignedReasonForm),
        lambda request, d, item, form, data: services.deviation_close(
            actor=request.user, deviation=d, reason=data["reason"], seen=data["seen"],
            **signed_kwargs(request, form)),
        "{record} approved and closed."),
    "extend": Action(
        "extend", _signed(f.DeviationExtendForm),
        lambda request, d, item, form, data: services.deviation_extend(
            actor=request.user, deviation=d, new_due_date=data["new_due_date"], reason=data["reason"],
            seen=data["seen"], **signed_kwargs(request, form)),
        "Due date of {record} extended."),
    "cancel": Action(
        "cancel", lambda request, d, item, data: f.ReasonForm(data),
        lambda request, d, item, form, data: services.deviation_cancel(
            actor=request.user, deviation=d, reason=data["reason"], seen=data["seen"]),
        "{record} cancelled."),
})

