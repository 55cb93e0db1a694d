"""Executing a batch step by step on the tablet: entries, corrections, performed and verified signatures.

Rules enforced here, at the moment of entry: only trained people (EU GMP Part I 2.8), only the
open step, type/unit/limits checked, out-of-specification values kept with a comment and a
deviation (EU GMP Part I 1.4(xiv), 8.x), equipment and material status checked (3.41, 5.x),
contemporaneous entries with late ones marked (ALCOA+), corrections that never overwrite
(Annex 11 §8.2), second-person verification of critical steps (ATMP guidelines 10.x).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from ebr.models import (
    Batch,
    BatchStatus,
    Entry,
    Equipment,
    EquipmentType,
    EquipmentUse,
    MaterialLot,
    MaterialUse,
    ParameterKind,
    ParameterSpec,
    StepExecution,
    StepStatus,
)
from ebr.selectors import step_entrants
from ebr.units import duration_display, unit_display
from ebr.values import CheckedValue, ValueRefused, formula_evaluate, value_check
from qms.audit import Event, create_with_reason, record_event, record_security_event, save_with_reason
from qms.audit.writer import SECURITY_DB
from qms.models import User
from qms.roles import Capability, can
from qms.signatures import Meaning, ensure_not_among, ensure_verifier_not_performer, sign


@dataclass
class EntryResult:
    entry: Entry
    warnings: list[str] = field(default_factory=list)
    created: bool = True


def _training_ensure(actor: User, batch: Batch) -> None:
    from qms.services.training import training_is_current

    version = batch.master_version
    if not training_is_current(user=actor, document_kind="master_record", document_code=version.master_record.code,
                               version=str(version.version)):
        raise PermissionDenied(f"{actor.full_name} has no current training on {version}; "
                               "a trained person must do this step.")


def _locked_step(step: StepExecution) -> StepExecution:
    return (StepExecution.objects.select_for_update().select_related("batch__master_version__master_record",
                                                                      "template").get(pk=step.pk))


def _ensure_executable(step: StepExecution, *, statuses: set[str]) -> None:
    if step.batch.status != BatchStatus.IN_PROGRESS:
        raise ValidationError(f"Batch {step.batch.number} is {step.batch.get_status_display().lower()}: "
                              "no entries can be made.")
    if step.status not in statuses:
        raise ValidationError(f"Step {step.template.code} is {step.get_status_display().lower()}.")


def _performed_at_check(performed_at: datetime | None, step: StepExecution, now: datetime,
                        accepted: datetime | None = None) -> datetime:
    """Default now; may be set back (work done before it was typed) within the limit, never ahead.

    `accepted` is the time of the entry a correction supersedes: a correction that keeps it restates
    when the work was done, which was checked when it was first recorded, so the limit on setting
    a time back does not refuse a correction made the next day.
    """
    if performed_at is None:
        return now
    if accepted is not None and performed_at == accepted:
        return performed_at
    if performed_at > now + timedelta(minutes=1):
        raise ValidationError({"performed_at": "The time the work was done cannot be in the future."})
    if now - performed_at > settings.ENTRY_BACKDATE_LIMIT:
        limit = duration_display(settings.ENTRY_BACKDATE_LIMIT)
        raise ValidationError({"performed_at": f"It can be set back at most {limit}; older work needs a deviation."})
    if step.opened_at and performed_at < step.opened_at - timedelta(minutes=1):
        raise ValidationError({"performed_at": "The work cannot predate the opening of this step."})
    return performed_at


def _existing(idempotency_key: str) -> Entry | None:
    return Entry.objects.filter(idempotency_key=idempotency_key).select_related("step", "parameter").first()


def _equipment_type_wanted(parameter: ParameterSpec) -> str:
    """The type the step's master record asks for, when this is the step's only equipment field
    (a step names one equipment type; with several equipment fields, which is which is not said)."""
    template = parameter.step
    if not template.equipment_type:
        return ""
    fields = template.parameters.filter(kind=ParameterKind.EQUIPMENT_ID).count()
    return template.equipment_type if fields == 1 else ""


class ResourceRefused(ValueRefused):
    """A known lot or instrument that must not be used for this step (wrong material or type,
    quarantined, expired, out of calibration): the attempt itself is GMP evidence."""


def _resource_check(parameter: ParameterSpec, raw: str, today: Any) -> tuple[CheckedValue, Any]:
    code = raw.strip().upper()
    if parameter.kind == ParameterKind.MATERIAL_LOT:
        lot = MaterialLot.objects.select_related("material").filter(lot_number__iexact=code).first()
        if lot is None:
            raise ValueRefused(f"Unknown lot {raw.strip()}: scan the lot label again.")
        if parameter.material_id and lot.material_id != parameter.material_id:
            needed = parameter.material.name if parameter.material else "another material"
            raise ResourceRefused(f"Lot {lot.lot_number} is {lot.material.name}; this step needs {needed}.")
        problem = lot.unusable_reason(today)
        if problem:
            raise ResourceRefused(problem)
        return CheckedValue(lot.lot_number, None, "", True, False), lot
    equipment = Equipment.objects.filter(code__iexact=code).first()
    if equipment is None:
        raise ValueRefused(f"Unknown equipment {raw.strip()}: scan the asset label again.")
    wanted = _equipment_type_wanted(parameter)
    if wanted and equipment.equipment_type != wanted:
        # As a wrong material lot is: refused at the scan, not first noticed at signing.
        raise ResourceRefused(f"{equipment.code} is a {equipment.get_equipment_type_display()}; this step needs a "
                              f"{EquipmentType(wanted).label}.")
    problem = equipment.unusable_reason(today)
    if problem:
        raise ResourceRefused(problem)
    return CheckedValue(equipment.code, None, "", True, False), equipment


def _entry_checks(*, actor: User, step: StepExecution, parameter: ParameterSpec, value: str, comment: str,
                  performed_at: datetime | None, now: datetime, idempotency_key: str,
                  supersedes: Entry | None = None) -> tuple[CheckedValue, Any, datetime]:
    if parameter.step_id != step.template_id:
        raise ValidationError({"parameter": "This value does not belong to this step."})
    performed = _performed_at_check(performed_at, step, now, supersedes.performed_at if supersedes else None)
    resource = None
    try:
        if parameter.kind in {ParameterKind.MATERIAL_LOT, ParameterKind.EQUIPMENT_ID}:
            checked, resource = _resource_check(parameter, value, timezone.localdate(performed))
        elif parameter.kind == ParameterKind.CALCULATED:
            raise ValueRefused("A calculated value is computed by the system, not entered.")
        else:
            checked = value_check(parameter, value)
    except ResourceRefused as refused:
        _entry_refused_record(actor=actor, step=step, parameter=parameter, scanned=value, refusal=str(refused),
                              idempotency_key=idempotency_key)
        raise ValidationError({"value": str(refused)}) from refused
    except ValueRefused as refused:
        raise ValidationError({"value": str(refused)}) from refused
    if checked.in_spec is False and not comment.strip():
        raise ValidationError({"comment": _oos_comment_request(parameter)})
    return checked, resource, performed


def _entry_refused_record(*, actor: User, step: StepExecution, parameter: ParameterSpec, scanned: str,
                          refusal: str, idempotency_key: str) -> None:
    """Keep the refused scan in the batch's audit trail although nothing of the entry is saved:
    QA reviewing the record sees that a quarantined lot or an unusable instrument was presented
    (EU GMP Part I ch. 5, quarantined materials; Annex 11 §9; ALCOA+ complete). The same form
    sent again (a double tap, a retry: the same idempotency key) is the same attempt, recorded once."""
    from qms.models import AuditEvent

    resent = AuditEvent.objects.using(SECURITY_DB).filter(
        target_type="ebr.stepexecution", target_id=str(step.pk), event_type=Event.ENTRY_REFUSED,
        data__idempotency_key=idempotency_key).exists()
    if resent:
        return
    record_security_event(actor=actor, event=Event.ENTRY_REFUSED, target=step, reason=refusal,
                          target_label=f"{step.batch.number} step {step.template.code}",
                          data={"parameter": parameter.code, "scanned": scanned.strip()[:64],
                                "idempotency_key": idempotency_key})


def _oos_comment_request(parameter: ParameterSpec) -> str:
    # A material quantity is a number parameter generated from the step's StepMaterial (see
    # ebr/services/master_records/): a wrong quantity takes the same out-of-specification path.
    if parameter.material_id and parameter.kind == ParameterKind.NUMBER:
        return (f"{parameter.label} differs from the prescribed quantity ({parameter.limits_text()}): "
                "say why; a deviation will be opened.")
    return f"{parameter.label} is outside its specification ({parameter.limits_text()}): say what happened."


def _deviation_for_oos(*, actor: User, step: StepExecution, parameter: ParameterSpec, checked: CheckedValue,
                       comment: str, performed: datetime) -> str:
    """Out of specification: the value stays, and a deviation is opened automatically (EU GMP Part I 8.x)."""
    from qms.services.deviations import deviation_open
    from qms.subjects import Subject

    batch = step.batch
    deviation = deviation_open(
        actor=actor, title=f"OOS {parameter.label} {_value_text(checked)} on {batch.number}",
        description=(f"{parameter.label} recorded as {_value_text(checked)} in step {step.template.code} "
                     f"({step.template.title}); specification {parameter.limits_text()}. Operator comment: {comment}"),
        occurred_at=performed, source="oos_entry",
        subjects=[Subject("ebr.batch", str(batch.pk), batch.number),
                  Subject("ebr.stepexecution", str(step.pk), f"{batch.number} step {step.template.code}")],
        reason="Opened automatically by an out-of-specification entry",
    )
    return deviation.number


def _value_text(checked: CheckedValue) -> str:
    """'38.2 °C', '5' (a pure number): the value as the operator reads it on the tablet."""
    return f"{checked.text} {unit_display(checked.unit)}".strip()


def _warnings(parameter: ParameterSpec, checked: CheckedValue, late: bool, deviation: str) -> list[str]:
    warnings = []
    if checked.alert:
        warnings.append(f"{parameter.label} {_value_text(checked)} is outside the alert limits: "
                        "tell your supervisor.")
    if checked.in_spec is False:
        warnings.append(f"Out of specification: deviation {deviation} was opened.")
    if late:
        warnings.append("Recorded as a late entry.")
    return warnings


def _record(*, actor: User, step: StepExecution, parameter: ParameterSpec, value: str, comment: str,
            performed_at: datetime | None, idempotency_key: str, supersedes: Entry | None = None,
            correction_reason: str = "") -> EntryResult:
    now = timezone.now()
    checked, resource, performed = _entry_checks(actor=actor, step=step, parameter=parameter, value=value,
                                                 comment=comment, performed_at=performed_at, now=now,
                                                 idempotency_key=idempotency_key, supersedes=supersedes)
    if supersedes is not None and performed == supersedes.performed_at:
        late = supersedes.late  # the work's record was as timely as the original; the correction has its own time
    else:
        late = now - performed > settings.LATE_ENTRY_THRESHOLD
    deviation = ""
    if checked.in_spec is False:
        deviation = _deviation_for_oos(actor=actor, step=step, parameter=parameter, checked=checked,
                                       comment=comment, performed=performed)
    event = Event.ENTRY_CORRECTED if supersedes else Event.ENTRY_RECORDED
    reason = correction_reason or comment or "Value recorded"
    try:
        with transaction.atomic():
            entry = create_with_reason(
                Entry, actor=actor, reason=reason, event=event, step=step, parameter=parameter,
                value_text=checked.text, value_number=checked.number, unit=checked.unit, in_spec=checked.in_spec,
                alert=checked.alert, comment=comment.strip(), performed_at=performed, entered_at=now, late=late,
                entered_by=actor, supersedes=supersedes, correction_reason=correction_reason,
                idempotency_key=idempotency_key, deviation_number=deviation,
                data={"batch": step.batch.number, "step": step.template.code, "parameter": parameter.code,
                      "value": checked.text, "unit": checked.unit, "in_spec": checked.in_spec,
                      "late": late, "supersedes": supersedes.pk if supersedes else None},
            )
    except IntegrityError as error:
        # A concurrent resend with the same key won the race, or the original was corrected already.
        raise ValidationError("This value was just recorded or corrected by another submission; reload.") from error
    _resource_use(actor=actor, step=step, entry=entry, resource=resource, performed=performed)
    if supersedes is not None:
        _scan_withdrawn(actor=actor, step=step, original=supersedes)
    _hold_time_note(actor=actor, step=step, performed=performed)
    return EntryResult(entry=entry, warnings=_warnings(parameter, checked, late, deviation))


def _resource_use(*, actor: User, step: StepExecution, entry: Entry, resource: Any, performed: datetime) -> None:
    if isinstance(resource, MaterialLot):
        create_with_reason(MaterialUse, actor=actor, reason="Material lot used", batch=step.batch, step=step,
                           lot=resource, entry=entry, expiry_date=resource.expiry_date, recorded_by=actor)
    elif isinstance(resource, Equipment):
        from ebr.services.batches import equipment_assign

        equipment_assign(actor=actor, batch=step.batch, equipment=resource, started_at=performed, step=step,
                         reason=f"Scanned in step {step.template.code}")


def _scan_withdrawn(*, actor: User, step: StepExecution, original: Entry) -> None:
    """A corrected equipment scan releases the assignment the wrong scan made in this step, unless a
    current entry of the batch still names the equipment; an assignment made otherwise (a bioreactor
    reserved for the batch beforehand) is not the scan's to end. A wrong lot needs nothing here: the
    genealogy lists the lots of current entries only (ebr/selectors.py)."""
    from ebr.services.batches import equipment_release

    if original.parameter.kind != ParameterKind.EQUIPMENT_ID:
        return
    if Entry.objects.filter(step__batch=step.batch, parameter__kind=ParameterKind.EQUIPMENT_ID,
                            value_text=original.value_text, superseded_by__isnull=True).exists():
        return
    for use in EquipmentUse.objects.filter(batch=step.batch, step=step, equipment__code=original.value_text,
                                           ended_at__isnull=True):
        equipment_release(actor=actor, use=use, reason=f"Scan corrected in step {step.template.code}")


def _hold_time_note(*, actor: User, step: StepExecution, performed: datetime) -> None:
    """The first work in a step measures the hold time since the previous step finished."""
    if step.hold_time_exceeded_by is not None or step.entries.count() > 1:
        return
    previous = step.batch.steps.filter(sequence=step.sequence - 1).select_related("template").first()
    if previous is None or previous.template.hold_time_limit is None:
        return
    finished = previous.verified_at or previous.performed_at
    if finished is None:
        return
    over = performed - finished - previous.template.hold_time_limit
    if over > timedelta(0):
        step.hold_time_exceeded_by = over
        save_with_reason(step, actor=actor, reason=f"Hold time after step {previous.template.code} exceeded",
                         update_fields=["hold_time_exceeded_by"])


@transaction.atomic
def entry_record(*, actor: User, step: StepExecution, parameter: ParameterSpec, value: str, idempotency_key: str,
                 comment: str = "", performed_at: datetime | None = None) -> EntryResult:
    """Record one value in the open step. A resend with the same idempotency key returns the first entry."""
    existing = _existing(idempotency_key)
    if existing is not None:
        return _resent(existing, step, parameter)
    if not can(actor, Capability.BATCH_EXECUTE):
        raise PermissionDenied("Your role does not allow recording batch values.")
    step = _locked_step(step)
    existing = _existing(idempotency_key)  # a concurrent double tap may have committed meanwhile
    if existing is not None:
        return _resent(existing, step, parameter)
    _ensure_executable(step, statuses={StepStatus.OPEN})
    _training_ensure(actor, step.batch)
    if Entry.objects.filter(step=step, parameter=parameter, superseded_by__isnull=True).exists():
        raise ValidationError({"value": f"{parameter.label} is already recorded; use a correction to change it."})
    return _record(actor=actor, step=step, parameter=parameter, value=value, comment=comment,
                   performed_at=performed_at, idempotency_key=idempotency_key)


def _resent(existing: Entry, step: StepExecution, parameter: ParameterSpec) -> EntryResult:
    if existing.step_id != step.pk or existing.parameter_id != parameter.pk:
        raise ValidationError("This form was already used for another value; reload the page.")
    return EntryResult(entry=existing, created=False)


@transaction.atomic
def entry_correct(*, actor: User, entry: Entry, value: str, reason: str, idempotency_key: str,
                  comment: str = "", performed_at: datetime | None = None) -> EntryResult:
    """A correction is a new entry that supersedes the original, which stays visible (Annex 11 §8.2).

    Allowed until the step is verified; correcting a performed step re-opens it for a new signature.
    """
    if not can(actor, Capability.BATCH_EXECUTE):
        raise PermissionDenied("Your role does not allow correcting batch values.")
    existing = _existing(idempotency_key)
    if existing is not None:
        return _resent(existing, entry.step, entry.parameter)
    if not reason.strip():
        raise ValidationError({"reason": "A correction needs a reason."})
    step = _locked_step(entry.step)
    original = Entry.objects.select_related("parameter").get(pk=entry.pk)
    if Entry.objects.filter(supersedes=original).exists():
        raise ValidationError("This value was already corrected; correct the latest value.")
    _ensure_executable(step, statuses={StepStatus.OPEN, StepStatus.PERFORMED})
    _training_ensure(actor, step.batch)
    result = _record(actor=actor, step=step, parameter=original.parameter, value=value, comment=comment,
                     performed_at=performed_at or original.performed_at, idempotency_key=idempotency_key,
                     supersedes=original, correction_reason=reason.strip())
    if step.status == StepStatus.PERFORMED:
        step.status = StepStatus.OPEN
        save_with_reason(step, actor=actor, reason="Corrected after signing: the step must be signed again",
                         update_fields=["status"])
        result.warnings.append("The step's signature no longer matches: sign the step again.")
    return result


def _calculated_record(*, actor: User, step: StepExecution) -> None:
    """Compute the step's calculated values from its current entries, at signing.

    A value already computed from the same inputs stays; one whose inputs were corrected since is
    superseded by the new result (the old one stays visible, like any correction). A result outside
    its specification is kept and opens a deviation, exactly as a typed out-of-specification value.
    """
    current = {e.parameter.code: e.value_number for e in
               step.entries.filter(superseded_by__isnull=True).select_related("parameter")
               if e.value_number is not None}
    for parameter in step.template.parameters.filter(kind=ParameterKind.CALCULATED):
        try:
            number = formula_evaluate(parameter.formula, current)
        except ValueRefused as refused:
            raise ValidationError(str(refused)) from refused
        checked = value_check(parameter, format(number.quantize(number.__class__("0.001")), "f"))
        previous = step.entries.filter(parameter=parameter, superseded_by__isnull=True).first()
        if previous is not None and previous.value_text == checked.text:
            continue
        now = timezone.now()
        formula = f"= {parameter.formula}"
        deviation = ""
        if checked.in_spec is False:
            deviation = _deviation_for_oos(actor=actor, step=step, parameter=parameter, checked=checked,
                                           comment=f"calculated by the system {formula}", performed=now)
        recomputed = "Recomputed after its inputs were corrected" if previous else ""
        key = f"calc-{step.pk}-{parameter.pk}-{step.entries.filter(parameter=parameter).count()}"
        create_with_reason(Entry, actor=actor, reason=recomputed or f"Calculated: {parameter.formula}",
                           event=Event.ENTRY_CORRECTED if previous else Event.ENTRY_RECORDED,
                           step=step, parameter=parameter, value_text=checked.text, value_number=checked.number,
                           unit=parameter.unit, in_spec=checked.in_spec, alert=checked.alert, performed_at=now,
                           entered_at=now, entered_by=actor, supersedes=previous, correction_reason=recomputed,
                           idempotency_key=key, comment=formula, deviation_number=deviation)


def _missing(step: StepExecution) -> list[str]:
    recorded = set(step.entries.filter(superseded_by__isnull=True).values_list("parameter_id", flat=True))
    return [p.label for p in step.template.parameters.filter(required=True).exclude(kind=ParameterKind.CALCULATED)
            if p.pk not in recorded]


def _equipment_missing(step: StepExecution) -> str | None:
    wanted = step.template.equipment_type
    if not wanted:
        return None
    in_use = EquipmentUse.objects.filter(batch=step.batch, equipment__equipment_type=wanted, ended_at__isnull=True)
    return None if in_use.exists() else f"This step needs a {step.template.get_equipment_type_display()}: scan it."


@transaction.atomic
def step_perform(*, actor: User, step: StepExecution, password: str, username: str | None = None,
                 session: Any = None, remarks: str = "") -> StepExecution:
    """Sign the step as performed (21 CFR 11.50); a step needing verification waits for a second person.

    The signature says the signer did the work the values record (21 CFR 11.50(a)(3); ALCOA+
    attributable). Someone who recorded none of them (a step re-signed after a correction by the
    next shift, or an operator in the cabinet with a scribe recording) signs only with remarks that
    say how they come to sign it; the remarks become part of the signature's reason.
    """
    if not can(actor, Capability.BATCH_EXECUTE):
        raise PermissionDenied("Your role does not allow signing batch steps.")
    step = _locked_step(step)
    _ensure_executable(step, statuses={StepStatus.OPEN})
    _training_ensure(actor, step.batch)
    missing = _missing(step)
    if missing:
        raise ValidationError(f"Record every value first: {', '.join(missing)}.")
    remarks = remarks.strip()
    entrants = step_entrants(step)
    if entrants and actor not in entrants and not remarks:
        names = ", ".join(sorted(person.full_name or person.username for person in entrants))
        raise ValidationError(
            f"You recorded none of this step's values ({names} did). Sign as performed only if you did the work, "
            "and say in the remarks how (e.g. \"performed in the BSC, values recorded by my scribe\"); otherwise "
            "the person who did it signs.")
    problem = _equipment_missing(step)
    if problem:
        raise ValidationError(problem)
    _calculated_record(actor=actor, step=step)
    if remarks:
        step.remarks = remarks
    sign(signer=actor, password=password, meaning=Meaning.PERFORMED, target=step,
         reason=f"Step {step.template.code}" + (f": {remarks}" if remarks else ""), username=username, session=session)
    now = timezone.now()
    step.performed_by, step.performed_at = actor, now
    step.status = StepStatus.PERFORMED if step.template.needs_verification else StepStatus.DONE
    save_with_reason(step, actor=actor, reason="Step performed", event=Event.STEP_PERFORMED,
                     update_fields=["performed_by", "performed_at", "status", "remarks"])
    if step.status == StepStatus.DONE:
        _next_open(actor=actor, step=step, now=now)
    return step


@transaction.atomic
def step_verify(*, actor: User, step: StepExecution, password: str, username: str | None = None,
                session: Any = None) -> StepExecution:
    """Second-person verification: a different, trained person signs "verified" before the next step opens."""
    if not can(actor, Capability.BATCH_VERIFY):
        raise PermissionDenied("Your role does not allow verifying batch steps.")
    step = _locked_step(step)
    _ensure_executable(step, statuses={StepStatus.PERFORMED})
    ensure_verifier_not_performer(verifier=actor, performer=step.performed_by)
    ensure_not_among(actor, step_entrants(step),
                     "The verifier must not have recorded values in the step they verify.")
    _training_ensure(actor, step.batch)
    sign(signer=actor, password=password, meaning=Meaning.VERIFIED, target=step, reason=f"Step {step.template.code}",
         username=username, session=session)
    now = timezone.now()
    step.verified_by, step.verified_at, step.status = actor, now, StepStatus.DONE
    save_with_reason(step, actor=actor, reason="Step verified", event=Event.STEP_VERIFIED,
                     update_fields=["verified_by", "verified_at", "status"])
    _next_open(actor=actor, step=step, now=now)
    return step


# Equipment that holds the culture keeps its assignment (and its instrument data) until the batch
# completes; everything else is free again once the step that scanned it is done.
CONTINUOUS_EQUIPMENT = frozenset({"bioreactor", "incubator"})


def _step_equipment_release(*, actor: User, step: StepExecution, now: datetime) -> None:
    for use in (EquipmentUse.objects.filter(step=step, ended_at__isnull=True)
                .exclude(equipment__equipment_type__in=CONTINUOUS_EQUIPMENT)):
        use.ended_at = now
        save_with_reason(use, actor=actor, reason=f"Step {step.template.code} done", update_fields=["ended_at"])


def _next_open(*, actor: User, step: StepExecution, now: datetime) -> None:
    _step_equipment_release(actor=actor, step=step, now=now)
    following = step.batch.steps.filter(sequence=step.sequence + 1).first()
    if following is not None:
        following.status, following.opened_at = StepStatus.OPEN, now
        save_with_reason(following, actor=actor, reason=f"Opened after step {step.template.code}",
                         event=Event.STEP_OPENED, update_fields=["status", "opened_at"])
        return
    _batch_complete(actor=actor, batch=step.batch, now=now)


def _batch_complete(*, actor: User, batch: Batch, now: datetime) -> None:
    """The last step done: the batch is completed, equipment freed, QA told and the review queued."""
    from ebr.states import batch_transition_check
    from qms.outbox import enqueue

    batch = Batch.objects.select_for_update().get(pk=batch.pk)
    batch_transition_check(batch.status, BatchStatus.COMPLETED)
    batch.status, batch.completed_at = BatchStatus.COMPLETED, now
    save_with_reason(batch, actor=actor, reason="Last step done", event=Event.BATCH_COMPLETED,
                     update_fields=["status", "completed_at"])
    for use in batch.equipment_uses.filter(ended_at__isnull=True):
        use.ended_at = now
        save_with_reason(use, actor=actor, reason="Batch completed", update_fields=["ended_at"])
    for task_name in settings.BATCH_COMPLETED_TASKS:
        enqueue(task_name, batch_id=batch.pk)
    record_event(actor=actor, event=Event.BATCH_REVIEW_REQUESTED, target=batch,
                 data={"tasks": list(settings.BATCH_COMPLETED_TASKS)})
