"""Authoring a draft master record version: stages, steps, parameters, instructions and images.

Every edit is made to a draft only (an approved version is frozen: EU GMP Part I 4.3) and to the
draft its author read (`seen`, qms.staleness; ALCOA+): the edit services lock the version's row
and refuse when another author changed the draft since the page was rendered (_drafts.py).
Materials and their quantity check are in materials.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from ebr.instructions import ImageRefused, image_inspect, image_store
from ebr.models import InstrumentLimit, MasterRecordVersion, ParameterKind, ParameterSpec, Stage, StepTemplate
from ebr.models.master import InstructionImage
from ebr.services.master_records._drafts import draft_step_locked, draft_version_locked
from ebr.services.master_records.materials import step_material_create
from qms.audit import create_with_reason, save_with_reason
from qms.models import User
from qms.roles import Capability
from qms.services._guards import ensure_can


@transaction.atomic
def stage_add(*, actor: User, version: MasterRecordVersion, name: str, seen: str | None = None) -> Stage:
    """Add a stage at the end of the draft its author read (`seen`)."""
    ensure_can(actor, Capability.MASTER_RECORD_AUTHOR, "author master records")
    version = draft_version_locked(version.pk, seen)
    order = (version.stages.order_by("-order").values_list("order", flat=True).first() or 0) + 1
    return create_with_reason(Stage, actor=actor, reason="Stage added to draft", version=version, order=order,
                              name=name)


@transaction.atomic
def step_add(*, actor: User, stage: Stage, code: str, title: str, instructions: str,
             parameters: Iterable[dict[str, Any]] = (), materials: Iterable[tuple[Any, ...]] = (),
             instrument_limits: Iterable[dict[str, Any]] = (), seen: str | None = None,
             **options: Any) -> StepTemplate:
    """Add a step with its parameters to the draft its author read (`seen`; frozen versions refuse).

    `materials`: (material or its code, quantity[, tolerance]) per material the step consumes;
    each gains a lot and a quantity parameter (see materials.material_parameters_ensure).
    """
    ensure_can(actor, Capability.MASTER_RECORD_AUTHOR, "author master records")
    draft_version_locked(stage.version_id, seen)
    reason = "Step added to draft"
    order = (stage.steps.order_by("-order").values_list("order", flat=True).first() or 0) + 1
    step = create_with_reason(StepTemplate, actor=actor, reason=reason, stage=stage, order=order, code=code,
                              title=title, instructions=instructions, **options)
    for position, spec in enumerate(parameters, start=1):
        _parameter_validate(spec)
        create_with_reason(ParameterSpec, actor=actor, reason=reason, step=step, order=position, **spec)
    for material, quantity, *tolerance in materials:
        step_material_create(actor=actor, step=step, material=material, quantity=quantity,
                             tolerance=tolerance[0] if tolerance else None, reason=reason)
    for limit in instrument_limits:
        create_with_reason(InstrumentLimit, actor=actor, reason=reason, step=step, **limit)
    return step


def _parameter_validate(spec: dict[str, Any]) -> None:
    low, high = spec.get("lower_limit"), spec.get("upper_limit")
    if low is not None and high is not None and low > high:
        raise ValidationError({"lower_limit": f"{spec.get('code')}: the lower limit is above the upper limit."})
    if spec.get("kind") == "choice" and not spec.get("choices"):
        raise ValidationError({"choices": f"{spec.get('code')}: a choice needs its answers."})


QUANTITY_FIXED = {"unit", "target", "lower_limit", "upper_limit"}
PARAMETER_EDITABLE = {"label", "unit", "target", "lower_limit", "upper_limit", "alert_low", "alert_high", "critical",
                      "required", "choices", "expected", "formula"}


@transaction.atomic
def parameter_update(*, actor: User, parameter: ParameterSpec, reason: str, seen: str | None = None,
                     **changes: Any) -> ParameterSpec:
    """Change a parameter (limits, unit, ...) of the draft its author read (`seen`); approved
    versions are frozen."""
    ensure_can(actor, Capability.MASTER_RECORD_AUTHOR, "author master records")
    unknown = set(changes) - PARAMETER_EDITABLE
    if unknown:
        raise ValidationError(f"These fields cannot be changed here: {', '.join(sorted(unknown))}.")
    draft_step_locked(parameter.step, seen)  # the version locked first: no approval slips in between
    parameter = ParameterSpec.objects.select_for_update().get(pk=parameter.pk)
    if parameter.material_id and parameter.kind == ParameterKind.NUMBER and changes.keys() & QUANTITY_FIXED:
        raise ValidationError("The limits of a material quantity come from the step's prescribed quantity "
                              "and tolerance.")
    for name, value in changes.items():
        setattr(parameter, name, value)
    _parameter_validate({f.name: getattr(parameter, f.name) for f in ParameterSpec._meta.concrete_fields})
    save_with_reason(parameter, actor=actor, reason=reason, update_fields=sorted(changes))
    return parameter


@transaction.atomic
def parameter_add(*, actor: User, step: StepTemplate, reason: str = "Parameter added to draft",
                  seen: str | None = None, **spec: Any) -> ParameterSpec:
    """Add a parameter to a step of the draft its author read (`seen`)."""
    ensure_can(actor, Capability.MASTER_RECORD_AUTHOR, "author master records")
    step = draft_step_locked(step, seen)
    if not spec.get("code") or not spec.get("label") or not spec.get("kind"):
        raise ValidationError("A parameter needs a code, a label and a type.")
    if step.parameters.filter(code=spec["code"]).exists():
        raise ValidationError({"code": f"{spec['code']} is already a parameter of this step."})
    _parameter_validate(spec)
    order = (step.parameters.order_by("-order").values_list("order", flat=True).first() or 0) + 1
    return create_with_reason(ParameterSpec, actor=actor, reason=reason, step=step, order=order, **spec)


# --- instructions and their images ------------------------------------------------------------------

@transaction.atomic
def step_instructions_update(*, actor: User, step: StepTemplate, instructions: str, reason: str,
                             seen: str | None = None) -> StepTemplate:
    """Rewrite the Markdown instructions of a step in the draft its author read (`seen`), e.g. to
    place a new image. The text is replaced whole: without the check, a second author saving an
    older text would silently erase the first author's change."""
    ensure_can(actor, Capability.MASTER_RECORD_AUTHOR, "author master records")
    step = draft_step_locked(step, seen)
    if not instructions.strip():
        raise ValidationError({"instructions": "A step needs instructions."})
    step.instructions = instructions
    save_with_reason(step, actor=actor, reason=reason, update_fields=["instructions"])
    return step


@transaction.atomic
def instruction_image_add(*, actor: User, step: StepTemplate, content: bytes, caption: str,
                          reason: str = "Instruction image added to draft",
                          seen: str | None = None) -> InstructionImage:
    """Attach a PNG or JPEG figure to a step of the draft its author read (`seen`); an approved
    version is frozen.

    The bytes are checked (size cap, type sniffed from the content, never from the name or the
    browser's claim) and stored once under their SHA-256; the audit event records the hash.
    """
    ensure_can(actor, Capability.MASTER_RECORD_AUTHOR, "author master records")
    step = draft_step_locked(step, seen)
    if not caption.strip():
        raise ValidationError({"caption": "Say what the image shows (it is also the text read aloud)."})
    try:
        facts = image_inspect(content)
    except ImageRefused as refused:
        raise ValidationError({"image": str(refused)}) from refused
    number = (step.images.order_by("-number").values_list("number", flat=True).first() or 0) + 1
    stored = image_store(content, facts)
    data = {"step": step.code, "reference": f"![{caption.strip()}](image:{number})"}
    if stored.repaired:
        data["repaired_altered_file"] = stored.name  # the stored file no longer matched its hash
    return create_with_reason(
        InstructionImage, actor=actor, reason=reason, step=step, number=number, caption=caption.strip(),
        file=stored.name, content_type=facts.content_type, sha256=facts.sha256, size=facts.size,
        width=facts.width, height=facts.height, data=data)

