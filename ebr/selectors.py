"""Reads shared by the tablet, the batch overview, the API and the PDF: one structure, one truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.urls import reverse

from ebr.instructions import FigureRef, instructions_html
from ebr.models import (
    Alarm,
    Batch,
    BatchStatus,
    CustodyEvent,
    Entry,
    EquipmentUse,
    MasterRecordVersion,
    Material,
    MaterialUse,
    ParameterSpec,
    Reading,
    ReadingPost,
    StepExecution,
    StepStatus,
    StepTemplate,
)
from qms.models import User
from qms.signatures import SignatureManifestation, format_local, is_apart_from, may_verify, signatures_for

# --- what signatures cover --------------------------------------------------------------------

def master_version_content(version: MasterRecordVersion) -> list[dict[str, Any]]:
    stages = version.stages.prefetch_related("steps__parameters", "steps__materials", "steps__instrument_limits",
                                             "steps__images")
    return [
        {"order": stage.order, "name": stage.name, "steps": [_step_content(step) for step in stage.steps.all()]}
        for stage in stages
    ]


def _step_content(step: StepTemplate) -> dict[str, Any]:
    content = {
        "code": step.code, "title": step.title, "instructions": step.instructions, "critical": step.critical,
        "verification": step.requires_verification, "equipment_type": step.equipment_type,
        "hold_time_limit": str(step.hold_time_limit or ""),
        "parameters": [_parameter_content(p) for p in step.parameters.all()],
        "materials": [[m.material_id, str(m.quantity), *([str(m.tolerance)] if m.tolerance is not None else [])]
                      for m in step.materials.all()],
        "instrument_limits": [[lim.parameter, str(lim.alert_low), str(lim.alert_high), str(lim.action_low),
                               str(lim.action_high), lim.critical] for lim in step.instrument_limits.all()]}
    # Only when present, so that versions signed before images existed keep their signed content.
    images = [[i.number, i.caption, i.sha256] for i in step.images.all()]
    if images:
        content["images"] = images
    return content


def step_figures(step: StepTemplate) -> list[FigureRef]:
    """The step's images as the instruction renderers need them (URL of the logged-in-only view)."""
    return [FigureRef(number=image.number, caption=image.caption, url=reverse("instruction_image", args=[image.pk]))
            for image in step.images.all()]


def step_instructions_html(step: StepTemplate) -> str:
    """Sanitised HTML of the step's instructions with its images (tablet and desktop)."""
    return instructions_html(step.instructions, step_figures(step))


def _parameter_content(p: ParameterSpec) -> dict[str, Any]:
    return {"code": p.code, "kind": p.kind, "unit": p.unit, "target": str(p.target), "low": str(p.lower_limit),
            "high": str(p.upper_limit), "alert_low": str(p.alert_low), "alert_high": str(p.alert_high),
            "critical": p.critical, "expected": p.expected, "choices": p.choices, "material": p.material_id}


def step_signed_content(step: StepExecution) -> dict[str, Any]:
    # Entries prefetched by batch_record()/batch_signed_content() are the same rows in the same order.
    entries = getattr(step, "entries_by_id", None)
    if entries is None:
        entries = Entry.objects.filter(step=step).select_related("parameter").order_by("id")
    return {
        "batch": step.batch.number, "step": step.template.code, "sequence": step.sequence,
        "entries": [[e.pk, e.parameter.code, e.value_text, e.unit, e.performed_at.isoformat(),
                     e.supersedes_id, e.correction_reason] for e in entries],
        "remarks": step.remarks,
    }


def batch_signed_content(batch: Batch) -> dict[str, Any]:
    """A release signature covers the identity of the batch and every step's content."""
    return {
        "number": batch.number, "coi": batch.coi, "din": batch.din, "patient_ref": batch.patient_ref,
        "master_version": str(batch.master_version),
        "steps": [step_signed_content(step) for step in batch.steps.select_related("template", "batch")
                  .prefetch_related(_entries_by_id("parameter"))],
    }


# --- the batch record ---------------------------------------------------------------------------

@dataclass(frozen=True)
class EntryView:
    id: int
    value: str
    unit: str
    in_spec: bool | None
    alert: bool
    comment: str
    performed_at: datetime
    performed_at_display: str
    entered_at_display: str
    late: bool
    entered_by: str                   # printed name
    entered_by_username: str          # the account: what the record fingerprint holds
    deviation_number: str
    correction_reason: str
    superseded: bool


@dataclass(frozen=True)
class ParameterRecord:
    parameter: ParameterSpec
    current: EntryView | None
    history: list[EntryView]          # every entry, oldest first, including superseded ones

    @property
    def corrected(self) -> bool:
        return len(self.history) > 1


@dataclass(frozen=True)
class StepRecord:
    step: StepExecution
    parameters: list[ParameterRecord]
    signatures: list[SignatureManifestation]
    equipment: list[str]
    materials: list[str]

    @property
    def complete(self) -> bool:
        return all(p.current is not None for p in self.parameters if p.parameter.required)


@dataclass(frozen=True)
class StageRecord:
    name: str
    order: int
    steps: list[StepRecord] = field(default_factory=list)


@dataclass(frozen=True)
class BatchRecord:
    batch: Batch
    stages: list[StageRecord]
    custody: list[CustodyEvent]
    custody_gaps: list[str]
    equipment_uses: list[EquipmentUse]
    material_uses: list[MaterialUse]
    signatures: list[SignatureManifestation]

    @property
    def steps(self) -> list[StepRecord]:
        return [step for stage in self.stages for step in stage.steps]


def _entry_view(entry: Entry) -> EntryView:
    return EntryView(
        id=entry.pk, value=entry.value_text, unit=entry.unit, in_spec=entry.in_spec, alert=entry.alert,
        comment=entry.comment, performed_at=entry.performed_at, performed_at_display=format_local(entry.performed_at),
        entered_at_display=format_local(entry.entered_at), late=entry.late, entered_by=entry.entered_by.full_name,
        entered_by_username=entry.entered_by.username, deviation_number=entry.deviation_number,
        correction_reason=entry.correction_reason,
        superseded=hasattr(entry, "superseded_by") and _has_successor(entry),
    )


def _has_successor(entry: Entry) -> bool:
    try:
        return entry.superseded_by is not None
    except Entry.DoesNotExist:
        return False


def _entries_by_id(*related: str) -> Prefetch:
    """A step's entries in id order with `related` rows: one query for all steps, not one per step."""
    entries = Entry.objects.select_related(*related).order_by("id")
    return Prefetch("entries", queryset=entries, to_attr="entries_by_id")


def step_record(step: StepExecution) -> StepRecord:
    entries = getattr(step, "entries_by_id", None)
    if entries is None:
        entries = list(step.entries.select_related("entered_by", "superseded_by").order_by("id"))
    parameters = []
    for parameter in step.template.parameters.all():
        mine = [e for e in entries if e.parameter_id == parameter.pk]
        views = [_entry_view(e) for e in mine]
        current = next((v for v in reversed(views) if not v.superseded), None)
        parameters.append(ParameterRecord(parameter=parameter, current=current, history=views))
    return StepRecord(
        step=step, parameters=parameters, signatures=signatures_for(step),
        equipment=[use.equipment.code for use in step.batch.equipment_uses.all() if use.step_id == step.pk],
        materials=[f"{use.lot.material.code} lot {use.lot.lot_number}" for use in step.material_uses.all()],
    )


def custody_gaps(events: list[CustodyEvent]) -> list[str]:
    """Hand-offs that do not connect: material received by someone other than who last held it."""
    gaps = []
    for previous, current in pairwise(events):
        if previous.to_party.strip().lower() != current.from_party.strip().lower():
            gaps.append(f"{format_local(current.occurred_at)}: handed over by {current.from_party}, "
                        f"but last held by {previous.to_party}")
    return gaps


def _current_material_uses() -> QuerySet[MaterialUse]:
    """The genealogy: lots of current entries only (a corrected scan's lot stays in the entry history)."""
    return MaterialUse.objects.filter(entry__superseded_by__isnull=True).select_related("lot__material")


def batch_record(batch: Batch) -> BatchRecord:
    steps = (batch.steps.select_related("template__stage", "performed_by", "verified_by", "batch")
             .prefetch_related("template__parameters", Prefetch("material_uses", queryset=_current_material_uses()),
                               _entries_by_id("parameter", "entered_by", "superseded_by"),
                               "batch__equipment_uses__equipment")
             .order_by("sequence"))
    stages: dict[int, StageRecord] = {}
    for step in steps:
        stage = step.template.stage
        record = stages.setdefault(stage.pk, StageRecord(name=stage.name, order=stage.order))
        record.steps.append(step_record(step))
    custody = list(batch.custody_events.select_related("recorded_by"))
    return BatchRecord(
        batch=batch, stages=sorted(stages.values(), key=lambda s: s.order), custody=custody,
        custody_gaps=custody_gaps(custody),
        equipment_uses=list(batch.equipment_uses.select_related("equipment")),
        material_uses=list(_current_material_uses().filter(batch=batch).select_related("step__template")),
        signatures=signatures_for(batch),
    )


def batch_find(number: str) -> Batch | None:
    """The batch a person named, however they cased it (numbers are stored upper case: B-2026-0001)."""
    return Batch.objects.filter(number__iexact=number).first()


def batch_get(number: str) -> Batch:
    return Batch.objects.select_related("master_version__master_record__product").get(number=number)


def batches_for_execution() -> QuerySet[Batch]:
    """Batches an operator can work on now, with their open step."""
    open_steps = StepExecution.objects.filter(status__in=[StepStatus.OPEN, StepStatus.PERFORMED]).select_related(
        "template")
    return (Batch.objects.filter(status__in=[BatchStatus.IN_PROGRESS, BatchStatus.ON_HOLD])
            .select_related("master_version__master_record__product")
            .prefetch_related(Prefetch("steps", queryset=open_steps, to_attr="open_steps"))
            .order_by("number"))


def batch_current_step(batch: Batch) -> StepExecution | None:
    """The one step an operator sees: the first one not done."""
    return (batch.steps.exclude(status=StepStatus.DONE).select_related("template__stage")
            .order_by("sequence").first())


def batch_executors(batch: Batch) -> set[int]:
    """Everyone who performed, verified or entered anything in the batch (segregation of duties)."""
    people = set(Entry.objects.filter(step__batch=batch).values_list("entered_by_id", flat=True))
    for performed, verified in batch.steps.values_list("performed_by_id", "verified_by_id"):
        people.update(p for p in (performed, verified) if p)
    return people


def step_training_gap(*, user: User, batch: Batch) -> str | None:
    """Why `user` may not record steps of `batch` for want of training on its master record version
    (the rule is ebr.services.execution._training_ensure), said before the operator types a value;
    None when their training is current."""
    from django.utils import timezone

    from qms.models import TrainingRecord
    from qms.models.training import TrainerConfirmation
    from qms.services.training import training_is_current

    version = batch.master_version
    document = {"document_kind": "master_record", "document_code": version.master_record.code,
                "version": str(version.version)}
    if training_is_current(user=user, document_kind="master_record", document_code=version.master_record.code,
                           version=str(version.version)):
        return None
    latest = (TrainingRecord.objects.filter(user=user, **document).select_related("trainer", "recorded_by")
              .order_by("-trained_on", "-id").first())
    if latest is None:
        return f"no training on {version} is recorded for you"
    state = latest.trainer_confirmation
    if state == TrainerConfirmation.DECLINED:
        return f"your training on {version} was declined by its trainer, {latest.trainer.full_name}"
    if state == TrainerConfirmation.WITHDRAWN:
        return f"your training record on {version} was withdrawn by {latest.recorded_by.full_name}, who recorded it"
    if state == TrainerConfirmation.AWAITING:
        return f"your training on {version} awaits the confirmation of its trainer, {latest.trainer.full_name}"
    if latest.valid_until is not None and latest.valid_until < timezone.localdate():
        return f"your training on {version} expired on {latest.valid_until:%Y-%m-%d}"
    return f"your training on {version} is not current"


def step_may_verify(*, step: StepExecution, user: User) -> bool:
    """Whether segregation of duties lets `user` verify `step`: the rules `step_verify` applies
    (not its performer, no values recorded in it), asked so that the tablet never offers a
    signature the service would refuse."""
    return may_verify(verifier=user, performer=step.performed_by) and is_apart_from(user, step_entrants(step))


def step_entrants(step: StepExecution) -> list[User]:
    """Everyone who recorded a value in the step (none of them may verify it)."""
    return list(User.objects.filter(pk__in=step.entries.values("entered_by")))


def batches_list(status: str | None = None) -> QuerySet[Batch]:
    batches = Batch.objects.select_related("master_version__master_record__product").order_by("-created_at")
    return batches.filter(status=status) if status else batches


# --- master record versions ---------------------------------------------------------------------

@dataclass(frozen=True)
class DiffRow:
    key: str
    left: str
    right: str

    @property
    def changed(self) -> bool:
        return self.left != self.right


def _flatten_version(version: MasterRecordVersion) -> dict[str, str]:
    lines: dict[str, str] = {}
    content = master_version_content(version)
    # The signed content names materials by id; a reader compares material codes.
    used = {m[0] for stage in content for step in stage["steps"] for m in step["materials"]} | {
        p["material"] for stage in content for step in stage["steps"] for p in step["parameters"] if p["material"]}
    codes = dict(Material.objects.filter(pk__in=used).values_list("pk", "code"))
    for stage in content:
        lines[f"stage {stage['order']}"] = stage["name"]
        for step in stage["steps"]:
            prefix = f"step {step['code']}"
            lines[f"{prefix} title"] = step["title"]
            lines[f"{prefix} instructions"] = step["instructions"]
            lines[f"{prefix} critical / verification"] = f"{step['critical']} / {step['verification']}"
            lines[f"{prefix} hold time"] = step["hold_time_limit"]
            for parameter in step["parameters"]:
                shown = {**parameter, "material": codes.get(parameter["material"], parameter["material"])}
                spec = ", ".join(f"{k}={v}" for k, v in shown.items()
                                 if k != "code" and v not in ("None", "", [], None))
                lines[f"{prefix} · {parameter['code']}"] = spec
            for material in step["materials"]:
                lines[f"{prefix} · material {codes.get(material[0], material[0])}"] = " ± ".join(material[1:])
            for number, caption, sha256 in step.get("images", []):
                lines[f"{prefix} · image {number}"] = f"{caption} (SHA-256 {sha256[:12]}…)"
            for limit in step["instrument_limits"]:
                lines[f"{prefix} · instrument {limit[0]}"] = " / ".join(str(v) for v in limit[1:])
    return lines


def version_diff(left: MasterRecordVersion, right: MasterRecordVersion) -> list[DiffRow]:
    """Side-by-side comparison of two versions, line by line (what changed, what was added/removed)."""
    a, b = _flatten_version(left), _flatten_version(right)
    keys = list(dict.fromkeys([*a, *b]))
    return [DiffRow(key, a.get(key, ""), b.get(key, "")) for key in keys]


# --- the batch's own audit trail ------------------------------------------------------------------

def batch_audit_events(batch: Batch) -> QuerySet[Any]:
    """Every audit event about the batch and the rows that make up its record, newest first: its
    own parts (batch_record_parts) and what other apps register for it (review flags), with the
    deviations raised against it and their CAPAs (qms/audit/parts.py)."""
    from qms.audit.parts import record_condition, record_targets
    from qms.models import AuditEvent

    return AuditEvent.objects.filter(record_condition(record_targets("ebr.batch", str(batch.pk)))).order_by("-id")


def batch_record_parts(batch_pk: str) -> dict[str, list[str]]:
    """The rows that make up a batch record, and the deviations and CAPAs about it, by target type."""
    from qms.models.capa import CapaDeviation
    from qms.selectors_deviations import deviations_for_qs

    def ids(queryset: QuerySet[Any]) -> list[str]:
        return [str(pk) for pk in queryset.values_list("pk", flat=True)]

    batch = Batch.objects.filter(pk=batch_pk).first()
    if batch is None:
        return {}
    deviations = deviations_for_qs("ebr.batch", str(batch.pk))
    return {
        "ebr.stepexecution": ids(batch.steps.all()),
        "ebr.entry": ids(Entry.objects.filter(step__batch=batch)),
        "ebr.custodyevent": ids(batch.custody_events.all()),
        "ebr.equipmentuse": ids(batch.equipment_uses.all()),
        "ebr.materialuse": ids(MaterialUse.objects.filter(batch=batch)),
        "ebr.alarm": ids(Alarm.objects.filter(batch=batch)),  # process alarms and their acknowledgements
        # instrument posts with readings of the batch whose alarm evaluation came late or failed
        "ebr.readingpost": _posts_with_events(batch),
        # deviations raised against the batch (with their impact assessments, qms parts) and their CAPAs
        "qms.deviation": ids(deviations),
        "qms.capa": sorted({str(pk) for pk in CapaDeviation.objects.filter(deviation__in=deviations)
                            .values_list("capa_id", flat=True)}
                           | {str(pk) for pk in deviations.exclude(capa=None).values_list("capa_id", flat=True)}),
    }


def _posts_with_events(batch: Batch) -> list[str]:
    """The instrument posts holding readings of `batch` that have audit events of their own (an
    evaluation overdue or set aside: few; a post that went well has none)."""
    from django.db.models import Exists, OuterRef

    from qms.models import AuditEvent

    # Only events since the batch was created can be about posts holding its readings: the scan
    # does not grow with the years of posts of earlier batches.
    with_events = {int(pk) for pk in AuditEvent.objects.filter(target_type="ebr.readingpost",
                                                               occurred_at__gte=batch.created_at)
                   .values_list("target_id", flat=True).distinct() if pk.isdigit()}
    if not with_events:
        return []
    of_batch = Reading.objects.filter(post_id=OuterRef("pk"), batch=batch, ts__gte=OuterRef("first_ts"),
                                      ts__lte=OuterRef("last_ts"))
    return [str(pk) for pk in ReadingPost.objects.filter(pk__in=with_events).filter(Exists(of_batch))
            .values_list("pk", flat=True)]


def batch_audit_rows(batch: Batch) -> list[Any]:
    from qms.selectors import audit_rows

    return audit_rows(list(batch_audit_events(batch)))
