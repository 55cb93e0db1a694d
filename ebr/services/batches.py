"""Patient batches: created from the effective master record with a verified chain of identity.

EC GMP guidelines for ATMPs (2017) 6.x and 11.x: traceability from donor to patient; the chain
of identity is checked at creation (COI entered twice or scanned, DIN check character).
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from ebr.identity import IdentityError, batch_number, coi_validate, din_validate, patient_ref_validate
from ebr.models import (
    Batch,
    BatchCounter,
    BatchStatus,
    CustodyEvent,
    Equipment,
    EquipmentType,
    EquipmentUse,
    MasterRecordVersion,
    StepExecution,
    StepStatus,
    StepTemplate,
    VersionStatus,
)
from ebr.review_hooks import record_review
from ebr.states import BATCH_READ_ONLY, batch_transition_check
from qms.audit import Event, create_with_reason, save_with_reason
from qms.models import User
from qms.roles import Capability, can
from qms.services._guards import ensure_can, locked
from qms.signatures import format_local, sign

# A patient's culture is in one of these at a time (its instrument data follows the assignment).
CULTURE_VESSELS = frozenset({EquipmentType.BIOREACTOR})


def _ensure_manager(actor: User, what: str) -> None:
    if not can(actor, Capability.BATCH_MANAGE):
        raise PermissionDenied(f"Only a supervisor may {what}.")


def _next_number(year: int) -> str:
    site = settings.FACILITY_SITE_CODE
    counter, _ = BatchCounter.objects.select_for_update().get_or_create(site=site, year=year)
    counter.last += 1
    counter.save(update_fields=["last"])  # a counter, not GxP data: the batch row records the number
    return batch_number(site, year, counter.last)


@transaction.atomic
def batch_create(*, actor: User, version: MasterRecordVersion, coi: str, coi_confirmation: str, din: str,
                 patient_ref: str, collecting_hospital: str, collected_at: datetime,
                 reason: str = "New patient batch") -> Batch:
    """Create a planned batch from the effective version; identity checked before anything is saved."""
    _ensure_manager(actor, "create batches")
    errors: dict[str, str] = {}
    checks = {"coi": lambda: coi_validate(coi, coi_confirmation), "din": lambda: din_validate(din),
              "patient_ref": lambda: patient_ref_validate(patient_ref)}
    values: dict[str, str] = {}
    for field, check in checks.items():
        try:
            values[field] = check()
        except IdentityError as error:
            errors[field] = str(error)
    if collecting_hospital.strip() not in settings.COLLECTING_HOSPITALS:
        errors["collecting_hospital"] = ("Choose the collecting hospital from the facility's list "
                                         "(COLLECTING_HOSPITALS).")
    if collected_at > timezone.now():
        errors["collected_at"] = "The collection cannot be in the future."
    version = MasterRecordVersion.objects.select_related("master_record").get(pk=version.pk)
    if version.status != VersionStatus.EFFECTIVE:
        errors["version"] = f"{version} is not effective; batches use the effective master record only."
    if "coi" in values and Batch.objects.filter(coi=values["coi"]).exists():
        errors["coi"] = "This chain-of-identity code already belongs to another batch."
    if errors:
        raise ValidationError(errors)
    number = _next_number(timezone.localdate().year)
    batch = create_with_reason(
        Batch, actor=actor, reason=reason, event=Event.BATCH_CREATED, number=number, master_version=version,
        coi=values["coi"], din=values["din"], patient_ref=values["patient_ref"],
        collecting_hospital=collecting_hospital.strip(), collected_at=collected_at, created_by=actor)
    templates = StepTemplate.objects.filter(stage__version=version).order_by("stage__order", "order")
    for sequence, template in enumerate(templates, start=1):
        create_with_reason(StepExecution, actor=actor, reason=f"Step {template.code} of {number}", batch=batch,
                           template=template, sequence=sequence)
    return batch


def _transition(batch: Batch, target: BatchStatus, *, actor: User, reason: str, event: Event,
                password: str | None = None, username: str | None = None, session: Any = None,
                extra_fields: dict[str, Any] | None = None, statement: str = "") -> Batch:
    """`statement`: what the signer certifies (the QP's), kept with the signature before the reason."""
    meaning = batch_transition_check(batch.status, target)
    if meaning is not None:
        if password is None:
            raise ValidationError({"password": "This change needs your electronic signature."})
        sign(signer=actor, password=password, meaning=meaning, target=batch,
             reason=f"{statement}\nReason: {reason}" if statement else reason, username=username, session=session)
    batch.status = target
    batch.status_reason = reason
    for name, value in (extra_fields or {}).items():
        setattr(batch, name, value)
    save_with_reason(batch, actor=actor, reason=reason, event=event, data=_decision_data(batch, target),
                     update_fields=["status", "status_reason", *(extra_fields or {})])
    return batch


DECISIONS = (BatchStatus.RELEASED, BatchStatus.REJECTED, BatchStatus.ABORTED)


def _decision_data(batch: Batch, target: BatchStatus) -> dict[str, Any] | None:
    """A release, rejection or abort names the record review it was decided on (the latest
    finished run's version), so the record shows that review later whatever finishes after."""
    if target not in DECISIONS:
        return None
    return {"review_version": record_review().review_version_finished(batch.pk)}


@transaction.atomic
def batch_start(*, actor: User, batch: Batch, reason: str = "Batch started") -> Batch:
    """Start execution: the first step opens."""
    _ensure_manager(actor, "start batches")
    batch = locked(batch)
    now = timezone.now()
    batch = _transition(batch, BatchStatus.IN_PROGRESS, actor=actor, reason=reason, event=Event.BATCH_STARTED,
                        extra_fields={"started_at": now})
    first = batch.steps.order_by("sequence").first()
    if first is not None:
        first.status = StepStatus.OPEN
        first.opened_at = now
        save_with_reason(first, actor=actor, reason="First step opened", update_fields=["status", "opened_at"])
    return batch


@transaction.atomic
def batch_hold(*, actor: User, batch: Batch, reason: str) -> Batch:
    _ensure_manager(actor, "put batches on hold")
    return _transition(locked(batch), BatchStatus.ON_HOLD, actor=actor, reason=reason, event=Event.BATCH_HELD)


@transaction.atomic
def batch_resume(*, actor: User, batch: Batch, reason: str) -> Batch:
    _ensure_manager(actor, "resume batches")
    return _transition(locked(batch), BatchStatus.IN_PROGRESS, actor=actor, reason=reason,
                       event=Event.BATCH_RESUMED)


@transaction.atomic
def batch_abort(*, actor: User, batch: Batch, reason: str, password: str, username: str | None = None,
                session: Any = None) -> Batch:
    """Abort with a reason and a signature; the record stays, read-only."""
    _ensure_manager(actor, "abort batches")
    if not reason.strip():
        raise ValidationError({"reason": "Give the reason for aborting the batch."})
    return _transition(locked(batch), BatchStatus.ABORTED, actor=actor, reason=reason, event=Event.BATCH_ABORTED,
                       password=password, username=username, session=session)


# A title before a capitalised word ("Mrs Dupont"), or "bed of" before one: how a patient's name
# gets into free text. Staff, wards and companies are not written this way.
PERSONAL_NAME = re.compile(r"\b(?i:mr|mrs|ms|miss|mme|mlle|herr|frau|sr|sra)\.?\s+[A-Z][a-z]|"
                           r"\b(?i:bed|room|home) of\s+[A-Z][a-z]")
CUSTODY_TEMPERATURE = (Decimal(-200), Decimal(60))


@transaction.atomic
def custody_event_record(*, actor: User, batch: Batch, from_party: str, to_party: str, location: str,
                         occurred_at: datetime, temperature_c: Decimal | None = None,
                         condition: str = "intact") -> CustodyEvent:
    """Record a hand-off of the patient's material (who, to whom, where, when, how cold, in what state).

    Open in every state of the record: the chain of custody runs from the donor to the patient
    (EC GMP for ATMPs 15.4, traceability), so it goes on after release (shipment to the ward,
    receipt, administration) and after a rejection or abort (quarantine, destruction). A hand-off
    changes no signed content: the release signature stays valid; the audit trail holds it.
    Rows are append-only, so what cannot be true is refused before it is kept for good: a
    hand-off before the material was collected, a temperature no material here is kept at, and a
    party or place written with the patient's name (the record is pseudonymised; parties are
    named by role, site or organisation).
    """
    ensure_can(actor, Capability.BATCH_EXECUTE, "record custody events")
    batch = locked(batch)
    errors = {name: "Required." for name, value in
              (("from_party", from_party), ("to_party", to_party), ("location", location)) if not value.strip()}
    for name, value in (("from_party", from_party), ("to_party", to_party), ("location", location)):
        if name not in errors and PERSONAL_NAME.search(value):
            errors[name] = (f"Name the party or place by role, site or organisation (e.g. Ward 4B, the courier "
                            f"company), never the patient: the patient is {batch.patient_ref} in this record.")
    if occurred_at > timezone.now():
        errors["occurred_at"] = "A hand-off cannot be in the future."
    elif occurred_at < batch.collected_at:
        errors["occurred_at"] = (f"A hand-off cannot be before the material was collected "
                                 f"({format_local(batch.collected_at)}).")
    if temperature_c is not None and not CUSTODY_TEMPERATURE[0] <= temperature_c <= CUSTODY_TEMPERATURE[1]:
        errors["temperature_c"] = (f"A temperature from {CUSTODY_TEMPERATURE[0]} to {CUSTODY_TEMPERATURE[1]} °C "
                                   "(liquid nitrogen to a warm day); check the reading and its sign.")
    if errors:
        raise ValidationError(errors)
    return create_with_reason(CustodyEvent, actor=actor, reason="Chain of custody", event=Event.CUSTODY_RECORDED,
                              batch=batch, from_party=from_party.strip(), to_party=to_party.strip(),
                              location=location.strip(), occurred_at=occurred_at, temperature_c=temperature_c,
                              condition=condition.strip() or "intact", recorded_by=actor)


@transaction.atomic
def equipment_assign(*, actor: User, batch: Batch, equipment: Equipment, started_at: datetime | None = None,
                     step: StepExecution | None = None, reason: str = "Equipment assigned") -> EquipmentUse:
    """Assign equipment to a batch; refused unless released and in calibration (EU GMP Part I 3.41),
    and refused for a completed or closed record: instrument data follows the assignment, and a
    record that is no longer executed must not start collecting readings."""
    ensure_can(actor, Capability.BATCH_EXECUTE, "assign equipment")
    batch = locked(batch)
    if batch.status in BATCH_READ_ONLY:
        raise ValidationError({"equipment": f"Batch {batch.number} is {batch.get_status_display().lower()}: "
                                            "equipment can no longer be assigned to it."})
    equipment = Equipment.objects.select_for_update().get(pk=equipment.pk)
    started_at = started_at or timezone.now()
    problem = equipment.unusable_reason(timezone.localdate(started_at))
    if problem:
        raise ValidationError({"equipment": problem})
    busy = EquipmentUse.objects.filter(equipment=equipment, ended_at__isnull=True).exclude(batch=batch).first()
    if busy is not None:
        raise ValidationError({"equipment": f"{equipment.code} is in use by batch {busy.batch.number}."})
    current = EquipmentUse.objects.filter(equipment=equipment, batch=batch, ended_at__isnull=True).first()
    if current is not None:
        return current
    if equipment.equipment_type in CULTURE_VESSELS:
        # Instrument data follows the assignment: two vessels of one kind at once would mix two
        # cultures' data (and alarms, and deviations) in one patient's record.
        other = (EquipmentUse.objects.filter(batch=batch, ended_at__isnull=True,
                                             equipment__equipment_type=equipment.equipment_type)
                 .select_related("equipment").first())
        if other is not None:
            raise ValidationError({"equipment": f"Batch {batch.number} is in {other.equipment.code} since "
                                                f"{format_local(other.started_at)}: a culture is in one "
                                                f"{equipment.get_equipment_type_display().lower()} at a time. "
                                                f"End that assignment first, with the reason for the move."})
    return create_with_reason(EquipmentUse, actor=actor, reason=reason, event=Event.EQUIPMENT_ASSIGNED, batch=batch,
                              equipment=equipment, step=step, started_at=started_at, assigned_by=actor,
                              calibration_due=equipment.calibration_due)


@transaction.atomic
def equipment_release(*, actor: User, use: EquipmentUse, ended_at: datetime | None = None,
                      reason: str = "Equipment released from the batch") -> EquipmentUse:
    """End an equipment assignment: instrument data from then on no longer belongs to the batch."""
    ensure_can(actor, Capability.BATCH_EXECUTE, "release equipment from a batch")
    use = EquipmentUse.objects.select_for_update().get(pk=use.pk)
    if use.ended_at is not None:
        return use
    use.ended_at = ended_at or timezone.now()
    save_with_reason(use, actor=actor, reason=reason, update_fields=["ended_at"])
    return use
