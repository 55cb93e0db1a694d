"""Master batch records: list, authoring a draft, signing it through review, diff of versions."""

from __future__ import annotations

from typing import Any

from django import forms as django_forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from ebr.forms import ReasonedSignatureForm, ReasonForm, SignatureForm
from ebr.forms_master import (
    InstructionImageForm,
    InstructionsForm,
    MasterRecordForm,
    NewVersionForm,
    ParameterForm,
    StageForm,
    StepForm,
    StepMaterialChangeForm,
    StepMaterialForm,
)
from ebr.instructions import MAX_IMAGE_BYTES, ImageRefused, image_read
from ebr.models import MasterRecord, MasterRecordVersion, Stage, StepTemplate, VersionStatus
from ebr.models.master import InstructionImage
from ebr.selectors import step_instructions_html, version_diff
from ebr.services import master_records as services
from ebr.views.signing import SIGNING_REFUSED
from qms.forms import errors_onto, pk_or_404
from qms.models import Signature, User
from qms.permissions import capability_required
from qms.roles import Capability, can
from qms.signatures import Meaning, format_local, may_approve, signatures_for, username_required
from qms.staleness import record_version_read
from qms.ui.actions import forms_seen, seen_field


@capability_required(Capability.BATCH_VIEW)
def master_record_list(request: HttpRequest) -> HttpResponse:
    form = MasterRecordForm(request.POST or None)
    if request.method == "POST":
        if not can(request.user, Capability.MASTER_RECORD_AUTHOR):
            raise PermissionDenied("Your role does not allow authoring master records.")
        if form.is_valid():
            data = form.cleaned_data
            try:
                if data["product"]:
                    version = services.master_record_create(actor=request.user, product=data["product"],
                                                            code=data["code"], title=data["title"])
                else:
                    version = services.master_record_create_with_product(
                        actor=request.user, product_code=data["new_product_code"],
                        product_name=data["new_product_name"], code=data["code"], title=data["title"])
            except (ValidationError, PermissionDenied) as error:
                errors_onto(form, error)
            else:
                messages.success(request, f"{version} created as a draft.")
                return redirect("master_version", code=version.master_record.code, version=version.version)
    records = MasterRecord.objects.select_related("product").prefetch_related("versions")
    return render(request, "ebr/master_record_list.html", {
        "records": records, "form": form, "can_author": can(request.user, Capability.MASTER_RECORD_AUTHOR)},
        status=422 if form.errors else 200)


def _version(code: str, version: int) -> MasterRecordVersion:
    return get_object_or_404(MasterRecordVersion.objects.select_related("master_record__product", "created_by"),
                             master_record__code=code, version=version)


STEP_FORMS = {"material": StepMaterialForm, "material_change": StepMaterialChangeForm, "image": InstructionImageForm,
              "instructions": InstructionsForm}


def _step_forms(forms: dict[str, Any], seen: str) -> dict[str, Any]:
    """A blank form per step action; the one that failed keeps its step, values and errors."""
    failed = forms.get("step_action_form")
    return {"failed": failed, "failed_step": forms.get("step_action_step"),
            **{action: _blank(form_class, seen) for action, form_class in STEP_FORMS.items()}}


def _names(people: list[User]) -> str:
    return ", ".join(sorted({person.full_name for person in people}))


def _segregation(user: User, version: MasterRecordVersion) -> dict[str, Any]:
    """Whether segregation of duties lets `user` sign "reviewed" and "approved", read from the same
    signers `version_review` (not an author) and `version_approve` (neither author nor reviewer of
    the valid signatures) check, and whom it excludes: the page never offers what they refuse."""
    authors = services.version_signers(version, Meaning.AUTHORED)
    contributors = (services.version_signers(version, Meaning.AUTHORED, valid_only=True)
                    + services.version_signers(version, Meaning.REVIEWED, valid_only=True))
    return {"may_sign_review": may_approve(approver=user, authors=authors), "authors_named": _names(authors),
            "may_sign_approve": may_approve(approver=user, authors=contributors),
            "contributors_named": _names(contributors)}


def _versioned(form: django_forms.Form) -> django_forms.Form:
    """The form carries `seen`, the version of the version page it was read from (qms.staleness):
    the service refuses a signature over content changed since (21 CFR 11.50, 11.70), and an edit
    of a draft another author changed since (ALCOA+: an edit is made to the content its author read)."""
    form.fields["seen"] = seen_field()
    return form


def _blank(form_class: type[django_forms.Form], seen: str) -> django_forms.Form:
    """An empty edit form holding the version of the page it is shown on."""
    return _versioned(form_class(initial={"seen": seen}))


def _edit_valid(form: django_forms.Form) -> bool:
    """An edit form's checks; a missing `seen` is told on the form itself, since the hidden field's
    own errors are shown nowhere."""
    if form.is_valid():
        return True
    if "seen" in form.errors:
        form.add_error(None, form.errors["seen"])
    return False


def _withdrawal(version: MasterRecordVersion) -> dict[str, str] | None:
    """Who withdrew the version, when and why, from the withdrawal signature (None: not withdrawn)."""
    if version.status != VersionStatus.WITHDRAWN:
        return None
    signature = (Signature.objects.filter(target_type=version._meta.label_lower, target_id=str(version.pk),
                                          meaning=Meaning.WITHDRAWN).order_by("-signed_at").first())
    if signature is None:
        return {"by": "", "at": "", "reason": ""}
    return {"by": signature.printed_name, "at": format_local(signature.signed_at), "reason": signature.reason}


def _readiness(version: MasterRecordVersion, *, can_approve: bool) -> dict[str, Any]:
    """For QA about to make the version effective: how many operators its batches would admit
    today (services.version_trained_operator_count, the number the audit event records)."""
    if not can_approve or version.status != VersionStatus.APPROVED:
        return {}
    return {"trained_operators": services.version_trained_operator_count(version)}


def _version_context(request: HttpRequest, version: MasterRecordVersion, **forms: Any) -> dict[str, Any]:
    user = request.user
    seen = record_version_read(version)  # before anything of it is read for the page
    forms_seen({key: form for key, form in forms.items() if isinstance(form, django_forms.Form)}, seen)
    signatures = signatures_for(version)
    stages = version.stages.prefetch_related("steps__parameters", "steps__materials__material",
                                             "steps__instrument_limits", "steps__images")
    return {
        "version": version, "seen": seen, "stages": stages, "signatures": signatures, **_segregation(user, version),
        "withdrawal": _withdrawal(version),
        "instructions": {step.pk: step_instructions_html(step) for stage in stages for step in stage.steps.all()},
        "others": version.master_record.versions.exclude(pk=version.pk).order_by("version"),
        "can_author": can(user, Capability.MASTER_RECORD_AUTHOR) and version.status == VersionStatus.DRAFT,
        # offered where the service would allow it: a later draft (a first has nothing to start again from)
        "may_withdraw": (version.status == VersionStatus.DRAFT and version.based_on_id is not None
                         and services.version_may_withdraw(user, version)),
        "can_review": (can(user, Capability.MASTER_RECORD_REVIEW) and version.status == "in_review"
                       and user not in services.version_signers(version, Meaning.REVIEWED, valid_only=True)),
        "can_approve": can(user, Capability.MASTER_RECORD_APPROVE),
        "can_new_version": can(user, Capability.MASTER_RECORD_AUTHOR) and version.status == "effective",
        "stage_form": forms.get("stage_form") or _blank(StageForm, seen),
        "step_form": forms.get("step_form") or _blank(StepForm, seen), "step_stage": forms.get("step_stage"),
        "parameter_form": forms.get("parameter_form") or _blank(ParameterForm, seen),
        "parameter_step": forms.get("parameter_step"),
        "parameter_form_blank": _blank(ParameterForm, seen), "step_form_blank": _blank(StepForm, seen),
        "step_forms": _step_forms(forms, seen),
        **_readiness(version, can_approve=can(user, Capability.MASTER_RECORD_APPROVE)),
        "sign_form": forms.get("sign_form") or SignatureForm(username_required=username_required(request.session)),
        "reason_form": forms.get("reason_form") or ReasonForm(),
        "withdraw_form": forms.get("withdraw_form") or ReasonedSignatureForm(
            username_required=username_required(request.session)),
        "new_version_form": forms.get("new_version_form") or NewVersionForm(),
        "active_action": forms.get("action", ""),
    }


@capability_required(Capability.BATCH_VIEW)
def master_version_detail(request: HttpRequest, code: str, version: int) -> HttpResponse:
    return render(request, "ebr/master_version.html", _version_context(request, _version(code, version)))


def _sign_kwargs(request: HttpRequest, form: SignatureForm) -> dict[str, Any]:
    return {"password": form.cleaned_data["password"], "username": form.signing_username(),
            "session": request.session}


@require_POST
@capability_required(Capability.BATCH_VIEW)
def master_version_action(request: HttpRequest, code: str, version: int, action: str) -> HttpResponse:
    """Authoring and workflow of one version; each action is one service call."""
    row = _version(code, version)
    post = request.POST
    forms: dict[str, Any] = {"action": action}
    try:
        target = _master_action(request, row, action, post, forms)
    except (ValidationError, *SIGNING_REFUSED) as error:
        failed = next((f for key, f in forms.items() if key.endswith("_form")), None)
        if failed is None:
            raise
        errors_onto(failed, error)
        target = None
    if target is not None:
        return redirect("master_version", code=target.master_record.code, version=target.version)
    context = _version_context(request, row, **forms)
    context["unsaved"] = _unsaved(row, forms)
    return render(request, "ebr/master_version.html", context, status=422)


EDIT_FORMS = ("stage_form", "step_form", "parameter_form", "step_action_form")


def _unsaved(row: MasterRecordVersion, forms: dict[str, Any]) -> dict[str, Any] | None:
    """An edit refused because the version stopped being a draft while its author typed (submitted or
    withdrawn meanwhile): the page no longer shows edit forms, so what was typed and why it was not
    saved are shown on their own, for the author to copy into a new draft; nothing typed is lost."""
    row.refresh_from_db(fields=["status"])
    failed = next((forms[key] for key in EDIT_FORMS if key in forms), None)
    if failed is None or row.status == VersionStatus.DRAFT or not failed.is_bound:
        return None
    typed = [(failed[name].label or name, value) for name in failed.fields if name != "seen"
             and isinstance(value := failed.data.get(failed.add_prefix(name)), str) and value.strip()]
    errors = [str(error) for errors in failed.errors.values() for error in errors]
    return {"typed": typed, "errors": errors}


def _master_action(request: HttpRequest, row: MasterRecordVersion, action: str, post: Any,
                   forms: dict[str, Any]) -> MasterRecordVersion | None:
    user = request.user
    if action in {"stage", "step", "parameter"}:
        return _structure_action(request, row, action, forms)
    if action in STEP_FORMS:
        return _step_action(request, row, action, forms)
    if action in {"submit", "review", "approve"}:
        form = forms["sign_form"] = _versioned(SignatureForm(post, username_required=username_required(
            request.session)))
        if form.is_valid():
            service = {"submit": services.version_submit, "review": services.version_review,
                       "approve": services.version_approve}[action]
            service(actor=user, version=row, seen=form.cleaned_data["seen"], **_sign_kwargs(request, form))
            messages.success(request, f"{row}: {action} signed.")
            return row
    elif action == "withdraw":
        return _withdraw(request, row, forms)
    elif action == "return":
        form = forms["reason_form"] = _versioned(ReasonForm(post))
        if form.is_valid():
            services.version_return(actor=user, version=row, reason=form.cleaned_data["reason"],
                                    seen=form.cleaned_data["seen"])
            return row
    elif action == "effective":
        form = forms["reason_form"] = _versioned(ReasonForm(post))
        if form.is_valid():
            services.version_make_effective(actor=user, version=row, reason=form.cleaned_data["reason"],
                                            seen=form.cleaned_data["seen"])
            messages.success(request, f"{row} is now effective.")
            if not services.version_trained_operator_count(row):
                messages.warning(request, f"No operator is trained on v{row.version} yet: operators will be refused at "
                                          "the first step until their training is recorded.")
            return row
    elif action == "new_version":
        form = forms["new_version_form"] = NewVersionForm(post)
        if form.is_valid():
            draft = services.version_new_draft(actor=user, master_record=row.master_record, **form.cleaned_data)
            messages.success(request, f"{draft} started as a copy of v{row.version}: edit it, then sign and submit it.")
            return draft
    else:
        raise PermissionDenied("Unknown action.")
    return None


def _structure_action(request: HttpRequest, row: MasterRecordVersion, action: str,
                      forms: dict[str, Any]) -> MasterRecordVersion | None:
    """Stages, steps and parameters of the draft the author read (`seen`): one service call each."""
    post, user = request.POST, request.user
    if action == "stage":
        form = forms["stage_form"] = _versioned(StageForm(post))
        if _edit_valid(form):
            stage = services.stage_add(actor=user, version=row, name=form.cleaned_data["name"],
                                       seen=form.cleaned_data["seen"])
            messages.success(request, f"Stage {stage.order}. {stage.name} added.")
            return row
    elif action == "step":
        stage = get_object_or_404(Stage, pk=pk_or_404(post.get("stage")), version=row)
        form = forms["step_form"] = _versioned(StepForm(post))
        forms["step_stage"] = stage.pk
        if _edit_valid(form):
            step = services.step_add(actor=user, stage=stage, seen=form.cleaned_data["seen"], **form.step_fields())
            messages.success(request, f"Step {step.code} {step.title} added to {stage.name}.")
            return row
    else:
        step = get_object_or_404(StepTemplate, pk=pk_or_404(post.get("step")), stage__version=row)
        form = forms["parameter_form"] = _versioned(ParameterForm(post))
        forms["parameter_step"] = step.pk
        if _edit_valid(form):
            spec = form.spec()
            parameter = services.parameter_add(actor=user, step=step, seen=spec.pop("seen"), **spec)
            messages.success(request, f"Parameter {parameter.code} added to step {step.code}.")
            return row
    return None


def _withdraw(request: HttpRequest, row: MasterRecordVersion, forms: dict[str, Any]) -> MasterRecordVersion | None:
    form = forms["withdraw_form"] = _versioned(ReasonedSignatureForm(
        request.POST, username_required=username_required(request.session)))
    if not form.is_valid():
        return None
    services.version_withdraw(actor=request.user, version=row, reason=form.cleaned_data["reason"],
                              seen=form.cleaned_data["seen"], **_sign_kwargs(request, form))
    released = f" {row.change_control} may authorise a new draft again." if row.change_control else ""
    messages.success(request, f"{row} is withdrawn.{released}")
    return row


def _step_action(request: HttpRequest, row: MasterRecordVersion, action: str,
                 forms: dict[str, Any]) -> MasterRecordVersion | None:
    """Materials, instructions and images of one step of the draft: one service call each."""
    step = get_object_or_404(StepTemplate, pk=pk_or_404(request.POST.get("step")), stage__version=row)
    form = forms["step_action_form"] = _versioned(STEP_FORMS[action](request.POST, request.FILES))
    forms["step_action_step"] = step.pk
    if not _edit_valid(form):
        return None
    data = form.cleaned_data
    if action == "material":
        services.step_material_add(actor=request.user, step=step, material=data["material"],
                                   quantity=data["quantity"], tolerance=data["tolerance"], seen=data["seen"])
        messages.success(request, f"{data['material'].code} is prescribed in step {step.code}.")
    elif action == "material_change":
        services.step_material_update(actor=request.user, step=step, material=data["material"],
                                      quantity=data["quantity"], tolerance=data["tolerance"], reason=data["reason"],
                                      seen=data["seen"])
        messages.success(request, f"The prescription of {data['material'].code} in {step.code} is changed.")
    elif action == "instructions":
        services.step_instructions_update(actor=request.user, step=step, instructions=data["instructions"],
                                          reason=data["reason"], seen=data["seen"])
        messages.success(request, f"Instructions of step {step.code} saved.")
    else:
        upload = data["image"]
        if upload.size > MAX_IMAGE_BYTES:  # refused before reading it into memory
            raise ValidationError({"image": f"The image is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB."})
        image = services.instruction_image_add(actor=request.user, step=step, content=upload.read(),
                                               caption=data["caption"], seen=data["seen"])
        messages.success(request, f"Image {image.number} added to {step.code}: place it with "
                                  f"![{image.caption}](image:{image.number}).")
    return row


@require_GET
@capability_required(Capability.BATCH_VIEW)
def instruction_image(request: HttpRequest, pk: int) -> HttpResponse:
    """An instruction image, to logged-in readers only (never public static files)."""
    image = get_object_or_404(InstructionImage, pk=pk)
    try:
        content = image_read(image.file, image.sha256)
    except FileNotFoundError as error:
        raise Http404(f"The file of image {image.number} of step {image.step.code} is missing.") from error
    except ImageRefused as error:  # altered on disk: never show what was not approved
        raise PermissionDenied(str(error)) from error
    response = HttpResponse(content, content_type=image.content_type)
    response["Content-Disposition"] = f'inline; filename="step-image-{image.pk}.{image.file.rsplit(".", 1)[-1]}"'
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@capability_required(Capability.BATCH_VIEW)
def master_version_diff(request: HttpRequest, code: str, old: int, new: int) -> HttpResponse:
    record = get_object_or_404(MasterRecord, code=code)
    left = get_object_or_404(MasterRecordVersion, master_record=record, version=old)
    right = get_object_or_404(MasterRecordVersion, master_record=record, version=new)
    return render(request, "ebr/master_diff.html", {"record": record, "left": left, "right": right,
                                                    "rows": version_diff(left, right)})
