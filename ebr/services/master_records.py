"""Master batch record versions: drafted, signed by author, reviewer and QA, made effective.

EU GMP Part I 4.3 and 4.4 (documents approved, signed and dated by appropriate people; a
master formula per product); 21 CFR 11.50/11.200 for the signatures.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from ebr.models import (
    InstrumentLimit,
    MasterRecord,
    MasterRecordVersion,
    ParameterSpec,
    Product,
    Stage,
    StepMaterial,
    StepTemplate,
    VersionStatus,
)
from ebr.states import version_transition_check
from qms.audit import Event, create_with_reason, save_with_reason
from qms.models import Signature, User
from qms.roles import Capability, can
from qms.signatures import Meaning, SegregationOfDuties, ensure_approver_not_author, sign, signature_is_valid


def _ensure(actor: User, capability: Capability, what: str) -> None:
    if not can(actor, capability):
        raise PermissionDenied(f"Your role does not allow you to {what}.")


def _change_control_approved(number: str) -> bool:
    from qms.services.change_control import change_control_is_approved

    return change_control_is_approved(number)


@transaction.atomic
def product_create(*, actor: User, code: str, name: str, reason: str = "New product") -> Product:
    _ensure(actor, Capability.MASTER_RECORD_AUTHOR, "create products")
    return create_with_reason(Product, actor=actor, reason=reason, code=code, name=name)


@transaction.atomic
def master_record_create(*, actor: User, product: Product, code: str, title: str,
                         reason: str = "New master record") -> MasterRecordVersion:
    """A new master record starts with a draft version 1 (no change control needed for a first issue)."""
    _ensure(actor, Capability.MASTER_RECORD_AUTHOR, "author master records")
    record = create_with_reason(MasterRecord, actor=actor, reason=reason, product=product, code=code, title=title)
    return create_with_reason(MasterRecordVersion, actor=actor, reason=reason, master_record=record, version=1,
                              created_by=actor)


@transaction.atomic
def version_new_draft(*, actor: User, master_record: MasterRecord, change_control: str,
                      summary_of_changes: str) -> MasterRecordVersion:
    """A new version is a copy of the latest approved one and must cite an approved change control."""
    _ensure(actor, Capability.MASTER_RECORD_AUTHOR, "author master records")
    if not _change_control_approved(change_control):
        raise ValidationError({"change_control": f"{change_control or 'A change control'} is not approved: "
                                                 "a new version needs an approved change control."})
    if not summary_of_changes.strip():
        raise ValidationError({"summary_of_changes": "Say what changes in this version."})
    record = MasterRecord.objects.select_for_update().get(pk=master_record.pk)
    if record.versions.filter(status__in=[VersionStatus.DRAFT, VersionStatus.IN_REVIEW]).exists():
        raise ValidationError("A draft or a version in review already exists; finish it first.")
    base = (record.versions.filter(status__in=[VersionStatus.EFFECTIVE, VersionStatus.APPROVED])
            .order_by("-version").first())
    if base is None:
        raise ValidationError("There is no approved version to start from.")
    number = (record.versions.order_by("-version").values_list("version", flat=True).first() or 0) + 1
    reason = f"New version under {change_control}: {summary_of_changes}"
    version = create_with_reason(MasterRecordVersion, actor=actor, reason=reason, master_record=record,
                                 version=number, based_on=base, change_control=change_control,
                                 summary_of_changes=summary_of_changes, created_by=actor)
    _copy_content(base, version, actor=actor, reason=reason)
    return version


def _copy_content(source: MasterRecordVersion, target: MasterRecordVersion, *, actor: User, reason: str) -> None:
    for stage in source.stages.all():
        new_stage = create_with_reason(Stage, actor=actor, reason=reason, version=target, order=stage.order,
                                       name=stage.name)
        for step in stage.steps.all():
            fields = {f.name: getattr(step, f.name) for f in StepTemplate._meta.concrete_fields
                      if f.name not in {"id", "stage"}}
            new_step = create_with_reason(StepTemplate, actor=actor, reason=reason, stage=new_stage, **fields)
            for model, related in ((ParameterSpec, step.parameters), (StepMaterial, step.materials),
                                   (InstrumentLimit, step.instrument_limits)):
                for row in related.all():
                    values = {f.name: getattr(row, f.name) for f in model._meta.concrete_fields
                              if f.name not in {"id", "step"}}
                    create_with_reason(model, actor=actor, reason=reason, step=new_step, **values)


def _ensure_draft(version: MasterRecordVersion) -> None:
    if version.frozen:
        raise ValidationError(f"{version} is {version.get_status_display().lower()}: an approved version is frozen.")


@transaction.atomic
def stage_add(*, actor: User, version: MasterRecordVersion, name: str) -> Stage:
    _ensure(actor, Capability.MASTER_RECORD_AUTHOR, "author master records")
    version = MasterRecordVersion.objects.select_for_update().get(pk=version.pk)
    _ensure_draft(version)
    order = (version.stages.order_by("-order").values_list("order", flat=True).first() or 0) + 1
    return create_with_reason(Stage, actor=actor, reason="Stage added to draft", version=version, order=order,
                              name=name)


@transaction.atomic
def step_add(*, actor: User, stage: Stage, code: str, title: str, instructions: str,
             parameters: Iterable[dict[str, Any]] = (), materials: Iterable[tuple[Any, Any]] = (),
             instrument_limits: Iterable[dict[str, Any]] = (), **options: Any) -> StepTemplate:
    """Add a step with its parameters to a draft version (frozen versions refuse)."""
    _ensure(actor, Capability.MASTER_RECORD_AUTHOR, "author master records")
    version = MasterRecordVersion.objects.select_for_update().get(pk=stage.version_id)
    _ensure_draft(version)
    reason = "Step added to draft"
    order = (stage.steps.order_by("-order").values_list("order", flat=True).first() or 0) + 1
    step = create_with_reason(StepTemplate, actor=actor, reason=reason, stage=stage, order=order, code=code,
                              title=title, instructions=instructions, **options)
    for position, spec in enumerate(parameters, start=1):
        _parameter_validate(spec)
        create_with_reason(ParameterSpec, actor=actor, reason=reason, step=step, order=position, **spec)
    for material, quantity in materials:
        create_with_reason(StepMaterial, actor=actor, reason=reason, step=step, material=material, quantity=quantity)
    for limit in instrument_limits:
        create_with_reason(InstrumentLimit, actor=actor, reason=reason, step=step, **limit)
    return step


def _parameter_validate(spec: dict[str, Any]) -> None:
    low, high = spec.get("lower_limit"), spec.get("upper_limit")
    if low is not None and high is not None and low > high:
        raise ValidationError({"lower_limit": f"{spec.get('code')}: the lower limit is above the upper limit."})
    if spec.get("kind") == "choice" and not spec.get("choices"):
        raise ValidationError({"choices": f"{spec.get('code')}: a choice needs its answers."})


def _version_signatures(version: MasterRecordVersion) -> list[Signature]:
    return list(Signature.objects.filter(target_type="ebr.masterrecordversion", target_id=str(version.pk)))


@transaction.atomic
def version_submit(*, actor: User, version: MasterRecordVersion, password: str, username: str | None = None,
                   session: Any = None, reason: str = "Submitted for review") -> MasterRecordVersion:
    """The author signs the draft ("authored") and sends it to review."""
    _ensure(actor, Capability.MASTER_RECORD_AUTHOR, "submit master records")
    version = MasterRecordVersion.objects.select_for_update().get(pk=version.pk)
    meaning = version_transition_check(version.status, VersionStatus.IN_REVIEW)
    if not version.stages.filter(steps__isnull=False).exists():
        raise ValidationError("A master record needs at least one step.")
    sign(signer=actor, password=password, meaning=meaning or Meaning.AUTHORED, target=version, reason=reason,
         username=username, session=session)
    version.status = VersionStatus.IN_REVIEW
    save_with_reason(version, actor=actor, reason=reason, update_fields=["status"])
    return version


@transaction.atomic
def version_review(*, actor: User, version: MasterRecordVersion, password: str, username: str | None = None,
                   session: Any = None, reason: str = "Reviewed") -> Signature:
    """A reviewer (not the author) signs "reviewed"; the state stays in review until QA approves."""
    _ensure(actor, Capability.MASTER_RECORD_REVIEW, "review master records")
    version = MasterRecordVersion.objects.select_for_update().get(pk=version.pk)
    if version.status != VersionStatus.IN_REVIEW:
        raise ValidationError("Only a version in review can be reviewed.")
    authors = [s.signer for s in _version_signatures(version) if s.meaning == Meaning.AUTHORED]
    ensure_approver_not_author(approver=actor, authors=authors)
    return sign(signer=actor, password=password, meaning=Meaning.REVIEWED, target=version, reason=reason,
                username=username, session=session)


@transaction.atomic
def version_approve(*, actor: User, version: MasterRecordVersion, password: str, username: str | None = None,
                    session: Any = None, reason: str = "Approved") -> MasterRecordVersion:
    """QA approval: needs valid author and reviewer signatures; three different people sign."""
    _ensure(actor, Capability.MASTER_RECORD_APPROVE, "approve master records")
    version = MasterRecordVersion.objects.select_for_update().get(pk=version.pk)
    meaning = version_transition_check(version.status, VersionStatus.APPROVED)
    signatures = [s for s in _version_signatures(version) if signature_is_valid(s, version)]
    authors = {s.signer_id for s in signatures if s.meaning == Meaning.AUTHORED}
    reviewers = {s.signer_id for s in signatures if s.meaning == Meaning.REVIEWED}
    if not authors or not reviewers:
        raise ValidationError("Approval needs the author's and a reviewer's valid signatures first.")
    if actor.pk in authors | reviewers:
        raise SegregationOfDuties("The QA approver must not be the author or the reviewer of this version.")
    sign(signer=actor, password=password, meaning=meaning or Meaning.APPROVED, target=version, reason=reason,
         username=username, session=session)
    version.status = VersionStatus.APPROVED
    save_with_reason(version, actor=actor, reason=reason, update_fields=["status"])
    return version


@transaction.atomic
def version_make_effective(*, actor: User, version: MasterRecordVersion,
                           reason: str = "Made effective") -> MasterRecordVersion:
    """The approved version becomes the only effective one; the previous effective is superseded."""
    _ensure(actor, Capability.MASTER_RECORD_APPROVE, "make master records effective")
    version = MasterRecordVersion.objects.select_for_update().get(pk=version.pk)
    version_transition_check(version.status, VersionStatus.EFFECTIVE)
    for previous in (MasterRecordVersion.objects.select_for_update()
                     .filter(master_record=version.master_record, status=VersionStatus.EFFECTIVE)):
        version_transition_check(previous.status, VersionStatus.SUPERSEDED)
        previous.status = VersionStatus.SUPERSEDED
        save_with_reason(previous, actor=actor, reason=f"Superseded by {version}", update_fields=["status"])
    version.status = VersionStatus.EFFECTIVE
    version.effective_at = timezone.now()
    save_with_reason(version, actor=actor, reason=reason, update_fields=["status", "effective_at"],
                     event=Event.RECORD_CHANGED)
    return version


PARAMETER_EDITABLE = {"label", "unit", "target", "lower_limit", "upper_limit", "alert_low", "alert_high", "critical",
                      "required", "choices", "expected", "formula"}


@transaction.atomic
def parameter_update(*, actor: User, parameter: ParameterSpec, reason: str, **changes: Any) -> ParameterSpec:
    """Change a parameter of a draft version (limits, unit, ...); approved versions are frozen."""
    _ensure(actor, Capability.MASTER_RECORD_AUTHOR, "author master records")
    unknown = set(changes) - PARAMETER_EDITABLE
    if unknown:
        raise ValidationError(f"These fields cannot be changed here: {', '.join(sorted(unknown))}.")
    parameter = ParameterSpec.objects.select_for_update().select_related("step__stage__version").get(pk=parameter.pk)
    _ensure_draft(parameter.step.stage.version)
    for name, value in changes.items():
        setattr(parameter, name, value)
    _parameter_validate({f.name: getattr(parameter, f.name) for f in ParameterSpec._meta.concrete_fields})
    save_with_reason(parameter, actor=actor, reason=reason, update_fields=sorted(changes))
    return parameter


@transaction.atomic
def parameter_add(*, actor: User, step: StepTemplate, reason: str = "Parameter added to draft",
                  **spec: Any) -> ParameterSpec:
    """Add a parameter to a step of a draft version."""
    _ensure(actor, Capability.MASTER_RECORD_AUTHOR, "author master records")
    step = StepTemplate.objects.select_related("stage__version").get(pk=step.pk)
    MasterRecordVersion.objects.select_for_update().get(pk=step.stage.version_id)
    _ensure_draft(step.stage.version)
    if not spec.get("code") or not spec.get("label") or not spec.get("kind"):
        raise ValidationError("A parameter needs a code, a label and a type.")
    if step.parameters.filter(code=spec["code"]).exists():
        raise ValidationError({"code": f"{spec['code']} is already a parameter of this step."})
    _parameter_validate(spec)
    order = (step.parameters.order_by("-order").values_list("order", flat=True).first() or 0) + 1
    return create_with_reason(ParameterSpec, actor=actor, reason=reason, step=step, order=order, **spec)


@transaction.atomic
def version_return(*, actor: User, version: MasterRecordVersion, reason: str) -> MasterRecordVersion:
    """A reviewer or approver sends a version in review back to draft, saying why."""
    if not (can(actor, Capability.MASTER_RECORD_REVIEW) or can(actor, Capability.MASTER_RECORD_APPROVE)):
        raise PermissionDenied("Your role does not allow returning master records.")
    if not reason.strip():
        raise ValidationError({"reason": "Say what must change."})
    version = MasterRecordVersion.objects.select_for_update().get(pk=version.pk)
    version_transition_check(version.status, VersionStatus.DRAFT)
    version.status = VersionStatus.DRAFT
    save_with_reason(version, actor=actor, reason=reason, update_fields=["status"])
    return version
