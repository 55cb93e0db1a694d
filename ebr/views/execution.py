"""The operator's tablet: one batch, one step at a time, big controls, nothing typed is lost."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from ebr.forms import CorrectionForm, EntryForm, PerformSignatureForm, SignatureForm, new_key
from ebr.models import Batch, Entry, ParameterSpec, StepExecution, StepStatus
from ebr.selectors import (
    batch_current_step,
    batches_for_execution,
    step_entrants,
    step_instructions_html,
    step_may_verify,
    step_record,
    step_training_gap,
)
from ebr.services.execution import entry_correct, entry_record, step_perform, step_verify
from ebr.views.signing import SIGNING_REFUSED
from qms.forms import errors_onto, pk_or_404
from qms.permissions import capability_required
from qms.roles import Capability
from qms.signatures import username_required


@capability_required(Capability.BATCH_EXECUTE)
def execution_list(request: HttpRequest) -> HttpResponse:
    return render(request, "ebr/execution_list.html", {"batches": batches_for_execution()})


def _step_context(request: HttpRequest, batch: Batch, step: StepExecution | None,
                  forms: dict[int, Any] | None = None, sign_form: Any = None) -> dict[str, Any]:
    record = step_record(step) if step else None
    entry_forms = forms or {}
    needs_username = username_required(request.session)
    if record:
        for parameter in record.parameters:
            if parameter.parameter.pk not in entry_forms:
                form_class = CorrectionForm if parameter.current else EntryForm
                entry_forms[parameter.parameter.pk] = form_class(initial={"idempotency_key": new_key()},
                                                                 prefix=f"p{parameter.parameter.pk}")
    return {
        "batch": batch, "step": step, "record": record, "entry_forms": entry_forms,
        "instructions_html": step_instructions_html(step.template) if step else "",
        "step_materials": list(step.template.materials.select_related("material")) if step else [],
        "sign_form": sign_form or (PerformSignatureForm if step and step.status == StepStatus.OPEN
                                   else SignatureForm)(username_required=needs_username),
        "total_steps": batch.steps.count(),
        # Who recorded this step's values: anyone else signs "performed" only with remarks.
        "step_entrant_ids": ([person.pk for person in step_entrants(step)]
                             if step is not None and step.status == StepStatus.OPEN else []),
        "may_verify": (step is not None and step.status == StepStatus.PERFORMED
                       and step_may_verify(step=step, user=request.user)),
        "training_gap": step_training_gap(user=request.user, batch=batch) if step else None,
    }


@capability_required(Capability.BATCH_EXECUTE)
def step_page(request: HttpRequest, number: str) -> HttpResponse:
    batch = get_object_or_404(Batch, number=number)
    step = batch_current_step(batch)
    return render(request, "ebr/step.html", _step_context(request, batch, step))


def _step_of(number: str, step_pk: int) -> StepExecution:
    return get_object_or_404(StepExecution.objects.select_related("batch", "template"), pk=step_pk,
                             batch__number=number)


def _render_parameter(request: HttpRequest, step: StepExecution, parameter: ParameterSpec, form: Any,
                      warnings: list[str] | None = None, status: int = 200) -> HttpResponse:
    record = step_record(step)
    current = next(p for p in record.parameters if p.parameter.pk == parameter.pk)
    return render(request, "ebr/_parameter.html", {"batch": step.batch, "step": step, "p": current, "form": form,
                                                   "warnings": warnings or []}, status=status)


@require_POST
@capability_required(Capability.BATCH_EXECUTE)
def entry_submit(request: HttpRequest, number: str, step_pk: int, parameter_pk: int) -> HttpResponse:
    """Record or correct one value. On error the typed value comes back with the message."""
    step = _step_of(number, step_pk)
    parameter = get_object_or_404(ParameterSpec, pk=parameter_pk, step=step.template)
    correcting = request.POST.get("entry")
    form_class = CorrectionForm if correcting else EntryForm
    form = form_class(request.POST, prefix=f"p{parameter.pk}")
    warnings: list[str] = []
    if form.is_valid():
        data = form.cleaned_data
        performed_at = data.get("performed_at")
        if performed_at and timezone.is_naive(performed_at):
            performed_at = timezone.make_aware(performed_at)
        try:
            if correcting:
                original = get_object_or_404(Entry, pk=pk_or_404(correcting), step=step)
                result = entry_correct(actor=request.user, entry=original, value=data["value"],
                                       reason=data["reason"], comment=data["comment"], performed_at=performed_at,
                                       idempotency_key=data["idempotency_key"])
            else:
                result = entry_record(actor=request.user, step=step, parameter=parameter, value=data["value"],
                                      comment=data["comment"], performed_at=performed_at,
                                      idempotency_key=data["idempotency_key"])
        except ValidationError as error:
            errors_onto(form, error)
        except PermissionDenied as error:
            form.add_error(None, str(error))
        else:
            warnings = result.warnings
            form = CorrectionForm(initial={"idempotency_key": new_key()}, prefix=f"p{parameter.pk}")
    if not request.htmx:
        for warning in warnings:
            messages.warning(request, warning)
        if form.errors:
            context = _step_context(request, step.batch, step, forms={parameter.pk: form})
            return render(request, "ebr/step.html", context, status=422)
        return redirect("step_page", number=number)
    return _render_parameter(request, step, parameter, form, warnings, status=422 if form.errors else 200)


def _sign_step(request: HttpRequest, number: str, step_pk: int, service: Any, done: str,
               form_class: type[SignatureForm] = SignatureForm) -> HttpResponse:
    step = _step_of(number, step_pk)
    form = form_class(request.POST, username_required=username_required(request.session))
    if form.is_valid():
        extra = {"remarks": form.cleaned_data["remarks"]} if "remarks" in form.cleaned_data else {}
        try:
            service(actor=request.user, step=step, password=form.cleaned_data["password"],
                    username=form.signing_username(), session=request.session, **extra)
        except (ValidationError, *SIGNING_REFUSED) as error:
            form.add_error(None, " ".join(getattr(error, "messages", [str(error)])))
        else:
            messages.success(request, done.format(code=step.template.code))
            return redirect("step_page", number=number)
    context = _step_context(request, step.batch, batch_current_step(step.batch), sign_form=form)
    return render(request, "ebr/step.html", context, status=422)


@require_POST
@capability_required(Capability.BATCH_EXECUTE)
def step_perform_submit(request: HttpRequest, number: str, step_pk: int) -> HttpResponse:
    return _sign_step(request, number, step_pk, step_perform, "Step {code} signed as performed.",
                      form_class=PerformSignatureForm)


@require_POST
@capability_required(Capability.BATCH_VERIFY)
def step_verify_submit(request: HttpRequest, number: str, step_pk: int) -> HttpResponse:
    return _sign_step(request, number, step_pk, step_verify, "Step {code} verified.")
