"""Structured checks on the batch record itself (no text): specs/nlp-review.md, "Structured checks".

Each check is a small pure function over a `CheckInput` (the shared `BatchRecord` plus the raw
entries and alarms it was built from) returning `CheckFlag`s with a rule id ``structured.<name>``,
a category and a severity per the spec. They are fixed, deterministic rules (draft EU GMP
Annex 22: static logic, stated intended use; Annex 11 §6 accuracy checks; ALCOA+). Their
output is advice for QA, who dispositions every flag.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from ebr.models import Batch, Entry, StepExecution
from ebr.process_data import LateReadings, readings_received_after
from ebr.selectors import BatchRecord
from ebr.units import unit_display

CHECKS_VERSION = "structured.1.2.0"


@dataclass(frozen=True)
class CheckFlag:
    """What a structured check found, in the same shape as a text flag."""

    rule: str
    category: str
    severity: str
    evidence: str
    step: StepExecution | None = None
    source_kind: str = "structured"
    source_id: str = ""
    explanation: str = ""


@dataclass(frozen=True)
class CheckInput:
    record: BatchRecord
    entries: list[Entry] = field(default_factory=list)  # every entry, corrections included, oldest first
    alarms: list[object] = field(default_factory=list)  # ebr.models.instruments.Alarm rows
    late_readings: list[LateReadings] = field(default_factory=list)  # stored after the batch completed
    late_threshold: timedelta = timedelta(minutes=30)
    record_end: datetime | None = None  # the batch's completion: the end of a use left open

    @property
    def steps(self) -> list[StepExecution]:
        return [record.step for record in self.record.steps]


def check_input(record: BatchRecord) -> CheckInput:
    """Everything the checks read, fetched once."""
    batch = record.batch
    entries = list(Entry.objects.filter(step__batch=batch)
                   .select_related("parameter", "entered_by", "step__template", "supersedes").order_by("id"))
    late = readings_received_after(batch, batch.completed_at) if batch.completed_at else []
    return CheckInput(record=record, entries=entries, alarms=_alarms(batch), late_readings=late,
                      late_threshold=settings.LATE_ENTRY_THRESHOLD, record_end=batch.completed_at)


def _alarms(batch: Batch) -> list[object]:
    try:
        from ebr.models.instruments import Alarm
    except ImportError:  # instruments not installed: nothing to check
        return []
    return list(Alarm.objects.filter(batch=batch).select_related("parameter", "instrument", "step"))


def _local(moment: datetime) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M}"


def _step_name(step: StepExecution) -> str:
    return f"step {step.template.code} ({step.template.title})"


# --- the checks ---------------------------------------------------------------------------------

def value_outside_limits(data: CheckInput) -> list[CheckFlag]:
    """A current value outside its specification; critical on a critical parameter (release spec)."""
    flags = []
    for step_record in data.record.steps:
        for parameter_record in step_record.parameters:
            current = parameter_record.current
            if current is None or current.in_spec is not False:
                continue
            parameter = parameter_record.parameter
            flags.append(CheckFlag(
                rule="structured.value_outside_limits", category="out_of_spec",
                severity="critical" if parameter.critical else "major", step=step_record.step,
                source_kind="entry_value", source_id=str(current.id),
                evidence=f"{parameter.label} = {current.value} {unit_display(current.unit)}".strip(),
                explanation=f"Outside the specification {parameter.limits_text()}."))
    return flags


def late_entry(data: CheckInput) -> list[CheckFlag]:
    """Entered longer after the work than the threshold (ALCOA+ contemporaneous).

    A correction is not a late entry: it is made after the value it corrects by its nature, keeps
    that value's time of work, and is reported as a correction (who, when, why); the value it
    corrects was judged on its own entry."""
    flags = []
    for entry in data.entries:
        if entry.supersedes is not None:
            continue
        delay = entry.entered_at - entry.performed_at
        if delay <= data.late_threshold:
            continue
        minutes = int(delay.total_seconds() // 60)
        flags.append(CheckFlag(
            rule="structured.late_entry", category="data_integrity",
            severity="major" if entry.parameter.critical else "minor", step=entry.step,
            source_kind="entry_value", source_id=str(entry.pk),
            evidence=f"{entry.parameter.label} entered {minutes} min after the work",
            explanation=f"Performed {_local(entry.performed_at)}, entered {_local(entry.entered_at)} by "
                        f"{entry.entered_by.full_name}; threshold {int(data.late_threshold.total_seconds() // 60)} "
                        "min."))
    return flags


def verification_missing(data: CheckInput) -> list[CheckFlag]:
    """A critical step (or one needing a second person) completed without a verifier."""
    flags = []
    for step in data.steps:
        needs = step.template.critical or step.template.requires_verification
        if needs and step.performed_at and step.verified_by_id is None:
            flags.append(CheckFlag(
                rule="structured.verification_missing", category="data_integrity",
                severity="critical" if step.template.critical else "major", step=step, source_id=str(step.pk),
                evidence=f"No second-person verification of {_step_name(step)}",
                explanation="The master record requires a second person to verify this step."))
    return flags


def same_performer_and_verifier(data: CheckInput) -> list[CheckFlag]:
    """Segregation of duties: the verifier must not be the performer (EU GMP Part I 4.x)."""
    return [
        CheckFlag(rule="structured.same_performer_verifier", category="data_integrity", severity="major",
                  step=step, source_id=str(step.pk),
                  evidence=f"{step.performed_by.full_name} performed and verified {_step_name(step)}",
                  explanation="Second-person verification by the performer is no verification.")
        for step in data.steps
        if step.performed_by is not None and step.performed_by_id == step.verified_by_id
    ]


def out_of_order(data: CheckInput) -> list[CheckFlag]:
    """Steps performed in a different order than their sequence, and hold times exceeded."""
    flags = []
    latest: StepExecution | None = None
    for step in sorted(data.steps, key=lambda s: s.sequence):
        if step.hold_time_exceeded_by:
            flags.append(CheckFlag(
                rule="structured.hold_time_exceeded", category="procedure", severity="major", step=step,
                source_id=str(step.pk), evidence=f"Hold time exceeded by {step.hold_time_exceeded_by} before "
                                                 f"{_step_name(step)}"))
        if step.performed_at is None:
            continue
        if latest is not None and latest.performed_at and step.performed_at < latest.performed_at:
            flags.append(CheckFlag(
                rule="structured.out_of_order", category="procedure", severity="major", step=step,
                source_id=str(step.pk),
                evidence=f"{_step_name(step)} performed before {_step_name(latest)}",
                explanation=f"Performed {_local(step.performed_at)}; the earlier step in sequence was performed "
                            f"{_local(latest.performed_at)}."))
        else:
            latest = step
    return flags


def corrections(data: CheckInput) -> list[CheckFlag]:
    """Every correction: what, by whom, why; major without a reason or on a critical parameter."""
    flags = []
    for entry in data.entries:
        original = entry.supersedes
        if original is None:
            continue
        reason = entry.correction_reason.strip()
        severity = "major" if (not reason or entry.parameter.critical) else "minor"
        flags.append(CheckFlag(
            rule="structured.correction", category="data_integrity", severity=severity, step=entry.step,
            source_kind="correction_reason", source_id=str(entry.pk),
            evidence=f"{entry.parameter.label} corrected from {original.value_text} to {entry.value_text} by "
                     f"{entry.entered_by.full_name}",
            explanation=f"Reason: {reason or '(none given)'}"))
    return flags


def expired_material_or_equipment(data: CheckInput) -> list[CheckFlag]:
    """Material used after its expiry date; equipment used after its calibration due date."""
    flags = []
    entries = {entry.pk: entry for entry in data.entries}
    for use in data.record.material_uses:
        entry = entries.get(use.entry_id)
        used_on = timezone.localtime(entry.performed_at if entry else use.recorded_at).date()
        if use.expiry_date < used_on:
            flags.append(CheckFlag(
                rule="structured.material_expired", category="material", severity="critical", step=use.step,
                source_id=str(use.pk), evidence=f"Lot {use.lot.lot_number} used {used_on}, expired {use.expiry_date}"))
    for equipment_use in data.record.equipment_uses:
        due = equipment_use.calibration_due
        used_on = timezone.localtime(equipment_use.started_at).date()
        # A bioreactor runs for days: its calibration may lapse during the use, not only before it.
        ended = getattr(equipment_use, "ended_at", None) or data.record_end
        used_until = timezone.localtime(ended).date() if ended else used_on
        if due and due < used_until:
            during = due >= used_on
            flags.append(CheckFlag(
                rule="structured.calibration_overdue", category="equipment", severity="major",
                step=equipment_use.step, source_id=str(equipment_use.pk),
                evidence=(f"{equipment_use.equipment.code} used {used_on} to {used_until}, calibration due {due}"
                          if during else f"{equipment_use.equipment.code} used {used_on}, calibration due {due}"),
                explanation=("The calibration lapsed while the equipment was in use for the batch; if it was "
                             "recalibrated in time, the equipment's record shows it." if during else
                             "The equipment was out of calibration when the batch began to use it.")))
    return flags


def alarm_not_acknowledged(data: CheckInput) -> list[CheckFlag]:
    """Instrument alarms nobody acknowledged (EU GMP Annex 15/Annex 11 §13: excursions handled)."""
    return [
        CheckFlag(rule="structured.alarm_unacknowledged", category="equipment",
                  severity="critical" if alarm.critical else "major", step=alarm.step,  # type: ignore[attr-defined]
                  source_kind="alarm_ack", source_id=str(alarm.pk),  # type: ignore[attr-defined]
                  evidence=f"{alarm} not acknowledged", explanation=alarm.limit_text_display)  # type: ignore[attr-defined]
        for alarm in data.alarms if getattr(alarm, "acknowledged_at", None) is None
    ]


def signature_invalidated(data: CheckInput) -> list[CheckFlag]:
    """A signature whose record changed after signing (21 CFR 11.70)."""
    flags = [
        CheckFlag(rule="structured.signature_invalid", category="data_integrity", severity="critical",
                  step=step_record.step, source_id=str(signature.signature_id),
                  evidence=f"{signature.meaning.capitalize()} signature by {signature.printed_name} on "
                           f"{_step_name(step_record.step)}: record changed after signing")
        for step_record in data.record.steps for signature in step_record.signatures if not signature.valid
    ]
    flags += [
        CheckFlag(rule="structured.signature_invalid", category="data_integrity", severity="critical",
                  source_id=str(signature.signature_id),
                  evidence=f"{signature.meaning.capitalize()} signature by {signature.printed_name} on the batch: "
                           "record changed after signing")
        for signature in data.record.signatures if not signature.valid and signature.meaning != "reviewed"
    ]
    return flags


def custody_gap(data: CheckInput) -> list[CheckFlag]:
    """Hand-offs that do not connect (EC GMP for ATMPs: traceability donor to patient)."""
    return [CheckFlag(rule="structured.custody_gap", category="identity", severity="critical", source_kind="custody",
                      evidence=gap) for gap in data.record.custody_gaps]


def readings_after_completion(data: CheckInput) -> list[CheckFlag]:
    """Instrument data stored after the batch was completed (ALCOA+ contemporaneous; EU GMP Annex 11
    §5): the operators signed completion without it, so QA looks at what it shows."""
    return [
        CheckFlag(rule="structured.readings_after_completion", category="data_integrity", severity="major",
                  source_id=str(late.post_id),  # the release gate reads it back
                  evidence=f"{late.count} reading(s) from {late.instrument} measured {_local(late.first_ts)} to "
                           f"{_local(late.last_ts)} were received {_local(late.received_at)}, after completion",
                  explanation="Check the values and any alarms they raised; the completion signatures did not "
                              "cover them.")
        for late in data.late_readings
    ]


CHECKS: tuple[Callable[[CheckInput], list[CheckFlag]], ...] = (
    value_outside_limits, late_entry, verification_missing, same_performer_and_verifier, out_of_order,
    corrections, expired_material_or_equipment, alarm_not_acknowledged, signature_invalidated, custody_gap,
    readings_after_completion,
)


def structured_flags(record: BatchRecord) -> list[CheckFlag]:
    """Run every structured check over one batch record."""
    data = check_input(record)
    return [flag for check in CHECKS for flag in check(data)]
