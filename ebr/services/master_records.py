"""Master batch record versions: drafted, signed by author, reviewer and QA, made effective.

EU GMP Part I 4.3 and 4.4 (documents approved, signed and dated by appropriate people; a
master formula per product); 21 CFR 11.50/11.200 for the signatures.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from ebr.instructions import ImageRefused, image_inspect, image_numbers, image_store
from ebr.models import (
    InstrumentLimit,
    MasterRecord,
    MasterRecordVersion,
    Material,
    ParameterKind,
    ParameterSpec,
    Product,
    Stage,
    StepMaterial,
    StepTemplate,
    VersionStatus,
)
from ebr.models.master import InstructionImage
from ebr.states import version_transition_check
from qms.audit import Event, create_with_reason, save_with_reason
from qms.models import Signature, User
from qms.roles import Capability, can
from qms.services._guards import created_once, ensure_can, reason_required
from qms.signatures import (
    Meaning,
    SegregationOfDuties,
    ensure_approver_not_author,
    may_approve,
    sign,
    signature_is_valid,
)
from qms.staleness import ensure_unchanged


def _change_control_refusal(number: str, master_record: MasterRecord) -> str | None:
    """Why `number` cannot authorise a new version of `master_record` (None: it can)."""
    from qms.services import change_control

    if not change_control.change_control_is_approved(number):
        return f"{number or 'A change control'} is not approved: a new version needs an approved change control."
    # A withdrawn draft used nothing up: the approved change is still to be made, under that change control.
    earlier = master_record.versions.filter(change_control=number).exclude(status=VersionStatus.WITHDRAWN).first()
    if earlier is not None:
        return (f"{number} already authorised {earlier} ({earlier.get_status_display().lower()}): a further "
                "change needs its own change control.")
    return change_control.change_control_scope_refusal(number, master_record.code)


@transaction.atomic
def product_create(*, actor: User, code: str, name: str, reason: str = "New product") -> Product:
    ensure_can(actor, Capability.MASTER_RECORD_AUTHOR, "create products")
    duplicate = ValidationError({"new_product_code": f"A product {code} exists already: choose it from the list."})
    if Product.objects.filter(code__iexact=(code or "").strip()).exists():
        raise duplicate
    return created_once(lambda: create_with_reason(Product, actor=actor, reason=reason, code=code, name=name),
                        # two authors at once: a refusal, not a 500
                        ("ebr_product_code_key", "product_code_unique_any_case"), duplicate)


@transaction.atomic
def master_record_create(*, actor: User, product: Product, code: str, title: str,
                         reason: str = "New master record") -> MasterRecordVersion:
    """A new master record starts with a draft version 1 (no change control needed for a first issue)."""
    ensure_can(actor, Capability.MASTER_RECORD_AUTHOR, "author master records")
    duplicate = ValidationError({"code": f"A master record {code} exists already: start a new version of it."})
    if MasterRecord.objects.filter(code__iexact=(code or "").strip()).exists():
        raise duplicate
    record = created_once(lambda: create_with_reason(MasterRecord, actor=actor, reason=reason, product=product,
                                                     code=code, title=title),
                          ("ebr_masterrecord_code_key", "master_record_code_unique_any_case"),
                          duplicate)
    return create_with_reason(MasterRecordVersion, actor=actor, reason=reason, master_record=record, version=1,
                              created_by=actor)


@transaction.atomic
def master_record_create_with_product(*, actor: User, product_code: str, product_name: str, code: str,
                                      title: str) -> MasterRecordVersion:
    """A new product and its first master record, or neither: a refused record leaves no orphan product."""
    product = product_create(actor=actor, code=product_code, name=product_name)
    return master_record_create(actor=actor, product=product, code=code, title=title)


@transaction.atomic
def version_new_draft(*, actor: User, master_record: MasterRecord, change_control: str,
                      summary_of_changes: str) -> MasterRecordVersion:
    """A new version is a copy of the latest approved one and must cite the approved change control
    of that change: a process change naming the master record among its affected items, which has
    not authorised another version of it (EU GMP Part I 1.4(xii), Annex 15 §11). The change control
    cannot be declared implemented or closed before the version is effective (ebr/subjects.py)."""
    ensure_can(actor, Capability.MASTER_RECORD_AUTHOR, "author master records")
    change_control = (change_control or "").strip().upper()
    record = MasterRecord.objects.select_for_update().get(pk=master_record.pk)
    errors = {"change_control": _change_control_refusal(change_control, record),
              "summary_of_changes": None if summary_of_changes.strip() else "Say what changes in this version."}
    if any(errors.values()):
        raise ValidationError({field: message for field, message in errors.items() if message})
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
            # Images are copied as references: the new row points at the same stored file and SHA-256.
            for model, related in ((ParameterSpec, step.parameters), (StepMaterial, step.materials),
                                   (InstrumentLimit, step.instrument_limits), (InstructionImage, step.images)):
                for row in related.all():
                    values = {f.name: getattr(row, f.name) for f in model._meta.concrete_fields
                              if f.name not in {"id", "step"}}
                    create_with_reason(model, actor=actor, reason=reason, step=new_step, **values)
            # A step copied from a version made before the quantity check gains its parameters now.
            for step_material in new_step.materials.select_related("material"):
                _material_parameters_ensure(actor=actor, step=new_step, step_material=step_material, reason=reason)


def _ensure_draft(version: MasterRecordVersion) -> None:
    if version.status == VersionStatus.WITHDRAWN:
        raise ValidationError(f"{version} is withdrawn: it is never edited again; a change needs a new version.")
    if version.frozen:
        raise ValidationError(f"{version} is {version.get_status_display().lower()}: an approved version is frozen.")


@transaction.atomic
def stage_add(*, actor: User, version: MasterRecordVersion, name: str) -> Stage:
    ensure_can(actor, Capability.MASTER_RECORD_AUTHOR, "author master records")
    version = MasterRecordVersion.objects.select_for_update().get(pk=version.pk)
    _ensure_draft(version)
    order = (version.stages.order_by("-order").values_list("order", flat=True).first() or 0) + 1
    return create_with_reason(Stage, actor=actor, reason="Stage added to draft", version=version, order=order,
                              name=name)


@transaction.atomic
def step_add(*, actor: User, stage: Stage, code: str, title: str, instructions: str,
             parameters: Iterable[dict[str, Any]] = (), materials: Iterable[tuple[Any, ...]] = (),
             instrument_limits: Iterable[dict[str, Any]] = (), **options: Any) -> StepTemplate:
    """Add a step with its parameters to a draft version (frozen versions refuse).

    `materials`: (material or its code, quantity[, tolerance]) per material the step consumes;
    each gains a lot and a quantity parameter (see `_material_parameters_ensure`).
    """
    ensure_can(actor, Capability.MASTER_RECORD_AUTHOR, "author master records")
    version = MasterRecordVersion.objects.select_for_update().get(pk=stage.version_id)
    _ensure_draft(version)
    reason = "Step added to draft"
    order = (stage.steps.order_by("-order").values_list("order", flat=True).first() or 0) + 1
    step = create_with_reason(StepTemplate, actor=actor, reason=reason, stage=stage, order=order, code=code,
                              title=title, instructions=instructions, **options)
    for position, spec in enumerate(parameters, start=1):
        _parameter_validate(spec)
        create_with_reason(ParameterSpec, actor=actor, reason=reason, step=step, order=position, **spec)
    for material, quantity, *tolerance in materials:
        _step_material_create(actor=actor, step=step, material=material, quantity=quantity,
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


# --- materials and their quantity check -----------------------------------------------------------
#
# Why parameters: a prescribed quantity is checked at execution by generating, for each
# StepMaterial, a material-lot parameter (scan refused if expired, quarantined or the wrong
# material) and a number parameter whose limits are the quantity ± tolerance. Execution then
# needs no second path: the existing entry checks keep an out-of-specification value, require
# a comment and open a deviation; corrections, late entries, signatures, the PDF and the review
# treat the quantity like any other value, and the version's signatures cover the parameters.

def _material_get(material: Material | str) -> Material:
    if isinstance(material, Material):
        return material
    return Material.objects.get(code=material)


def _material_code(prefix: str, material: Material) -> str:
    return f"{prefix}-{slugify(material.code)}"[:40]


def _material_parameters_ensure(*, actor: User, step: StepTemplate, step_material: StepMaterial,
                                reason: str) -> None:
    material = step_material.material
    mine = step.parameters.filter(material=material)
    order = (step.parameters.order_by("-order").values_list("order", flat=True).first() or 0) + 1
    low, high = step_material.limits()
    quantity = mine.filter(kind=ParameterKind.NUMBER).first()
    if quantity is not None and (quantity.target, quantity.lower_limit, quantity.upper_limit) != (
            step_material.quantity, low, high):
        # A quantity recorded by hand with other limits would let the prescription go unchecked.
        raise ValidationError({"quantity": f"Step {step.code} already records a quantity of {material.code} "
                                           f"({quantity.code}) with other limits: remove that parameter first."})
    wanted: list[dict[str, Any]] = [] if mine.filter(kind=ParameterKind.MATERIAL_LOT).exists() else [
        {"code": _material_code("lot", material), "label": f"{material.name}: lot used",
         "kind": ParameterKind.MATERIAL_LOT}]
    if quantity is None:
        wanted.append({"code": _material_code("qty", material), "label": f"{material.name}: quantity used",
                       "kind": ParameterKind.NUMBER, "unit": material.unit, "target": step_material.quantity,
                       "lower_limit": low, "upper_limit": high})
    taken = set(step.parameters.filter(code__in=[spec["code"] for spec in wanted]).values_list("code", flat=True))
    if taken:
        raise ValidationError({"material": f"Step {step.code} already has a parameter {', '.join(sorted(taken))}: "
                                           "rename it before prescribing this material."})
    for offset, spec in enumerate(wanted):
        create_with_reason(ParameterSpec, actor=actor, reason=reason, step=step, order=order + offset,
                           material=material, **spec)


def _step_material_create(*, actor: User, step: StepTemplate, material: Material | str, quantity: Any,
                          tolerance: Any, reason: str) -> StepMaterial:
    material = _material_get(material)
    quantity, tolerance = _quantity_clean(quantity, tolerance)
    if step.materials.filter(material=material).exists():
        raise ValidationError({"material": f"{material.code} is already prescribed in step {step.code}."})
    step_material = create_with_reason(StepMaterial, actor=actor, reason=reason, step=step, material=material,
                                       quantity=quantity, tolerance=tolerance)
    _material_parameters_ensure(actor=actor, step=step, step_material=step_material, reason=reason)
    return step_material


@transaction.atomic
def step_material_add(*, actor: User, step: StepTemplate, material: Material, quantity: Decimal,
                      tolerance: Decimal | None = None,
                      reason: str = "Material added to draft") -> StepMaterial:
    """Prescribe a material and its quantity for a step of a draft version."""
    ensure_can(actor, Capability.MASTER_RECORD_AUTHOR, "author master records")
    step = _draft_step(step)
    return _step_material_create(actor=actor, step=step, material=material, quantity=quantity,
                                 tolerance=tolerance, reason=reason)


@transaction.atomic
def step_material_update(*, actor: User, step: StepTemplate, material: Material | str, quantity: Any,
                         tolerance: Any, reason: str) -> StepMaterial:
    """Change a prescribed quantity or tolerance in a draft, and with it the limits of the step's
    quantity parameter, so that the prescription and the check of the quantity used never disagree
    (EU GMP Part I 4.18: the master record states the quantity of each material; the version's
    approval signatures then cover the new values; the reason goes to the audit trail).
    """
    ensure_can(actor, Capability.MASTER_RECORD_AUTHOR, "author master records")
    reason = reason_required(reason, "Say why the prescription changes: it is recorded in the audit trail.")
    step = _draft_step(step)
    material = _material_get(material)
    step_material = step.materials.select_for_update().filter(material=material).first()
    if step_material is None:
        raise ValidationError({"material": f"{material.code} is not prescribed in step {step.code}: add it instead."})
    quantity, tolerance = _quantity_clean(quantity, tolerance)
    if (quantity, tolerance) == (step_material.quantity, step_material.tolerance):
        raise ValidationError({"quantity": "That is the prescription already: nothing changes."})
    old_low, old_high = step_material.limits()
    # The parameters that check this prescription are the ones with its quantity and limits; another
    # number about the same material (a top-up volume the author added) keeps its own.
    checks = list(step.parameters.select_for_update().filter(
        material=material, kind=ParameterKind.NUMBER, target=step_material.quantity, lower_limit=old_low,
        upper_limit=old_high))
    low, high = StepMaterial(quantity=quantity, tolerance=tolerance).limits()
    step_material.quantity, step_material.tolerance = quantity, tolerance
    save_with_reason(step_material, actor=actor, reason=reason, update_fields=["quantity", "tolerance"])
    for checked in checks:
        checked.target, checked.lower_limit, checked.upper_limit = quantity, low, high
        save_with_reason(checked, actor=actor, reason=reason, update_fields=["target", "lower_limit", "upper_limit"])
    return step_material


QUANTITY_CEILING, QUANTITY_STEP = Decimal("1e9"), Decimal("0.001")


def _quantity_clean(quantity: Any, tolerance: Any) -> tuple[Decimal, Decimal | None]:
    try:
        quantity = Decimal(str(quantity))
        tolerance = Decimal(str(tolerance)) if tolerance not in (None, "") else None
    except ArithmeticError:
        raise ValidationError({"quantity": "Give the quantity and the tolerance as numbers."}) from None
    if not quantity.is_finite() or quantity <= 0 or (tolerance is not None and (not tolerance.is_finite()
                                                                              or tolerance < 0)):
        raise ValidationError({"quantity": "The quantity must be positive and the tolerance not negative."})
    for value in (quantity, tolerance):
        # The columns hold 12 digits, 3 of them decimals: refuse rather than round a prescription.
        if value is not None and (value >= QUANTITY_CEILING or value != value.quantize(QUANTITY_STEP)):
            raise ValidationError({"quantity": "Use at most 3 decimals and less than 1,000,000,000."})
    return quantity, tolerance


def _draft_step(step: StepTemplate) -> StepTemplate:
    """The step, its version locked and checked to be a draft (frozen versions refuse every change)."""
    step = StepTemplate.objects.select_related("stage__version").get(pk=step.pk)
    version = MasterRecordVersion.objects.select_for_update().get(pk=step.stage.version_id)
    _ensure_draft(version)
    return step


# --- instructions and their images ------------------------------------------------------------------

@transaction.atomic
def step_instructions_update(*, actor: User, step: StepTemplate, instructions: str, reason: str) -> StepTemplate:
    """Rewrite the Markdown instructions of a step in a draft version (e.g. to place a new image)."""
    ensure_can(actor, Capability.MASTER_RECORD_AUTHOR, "author master records")
    step = _draft_step(step)
    if not instructions.strip():
        raise ValidationError({"instructions": "A step needs instructions."})
    step.instructions = instructions
    save_with_reason(step, actor=actor, reason=reason, update_fields=["instructions"])
    return step


@transaction.atomic
def instruction_image_add(*, actor: User, step: StepTemplate, content: bytes, caption: str,
                          reason: str = "Instruction image added to draft") -> InstructionImage:
    """Attach a PNG or JPEG figure to a step of a draft version; an approved version is frozen.

    The bytes are checked (size cap, type sniffed from the content, never from the name or the
    browser's claim) and stored once under their SHA-256; the audit event records the hash.
    """
    ensure_can(actor, Capability.MASTER_RECORD_AUTHOR, "author master records")
    step = _draft_step(step)
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


def version_signers(version: MasterRecordVersion, meaning: Meaning, *, valid_only: bool = False) -> list[User]:
    """Who signed `version` with `meaning` (only with signatures still valid for its content, if
    asked): the segregation rules of review and approval, and the page that offers them, read this."""
    signatures = Signature.objects.filter(target_type="ebr.masterrecordversion", target_id=str(version.pk),
                                          meaning=meaning).select_related("signer")
    return [s.signer for s in signatures if not valid_only or signature_is_valid(s, version)]


@transaction.atomic
def version_submit(*, actor: User, version: MasterRecordVersion, password: str, username: str | None = None,
                   session: Any = None, reason: str = "Submitted for review",
                   seen: str | None = None) -> MasterRecordVersion:
    """The author signs the draft ("authored") and sends it to review.

    Every signature of a version is refused when the version's content changed since the page it
    was signed from (`seen`, qms.staleness; 21 CFR 11.50, 11.70): checked under the version's row
    lock, which every edit of its stages, steps and limits takes too."""
    ensure_can(actor, Capability.MASTER_RECORD_AUTHOR, "submit master records")
    version = MasterRecordVersion.objects.select_for_update().get(pk=version.pk)
    ensure_unchanged(version, seen)
    meaning = version_transition_check(version.status, VersionStatus.IN_REVIEW)
    if not version.stages.filter(steps__isnull=False).exists():
        raise ValidationError("A master record needs at least one step.")
    _images_placed_exist(version)
    sign(signer=actor, password=password, meaning=meaning or Meaning.AUTHORED, target=version, reason=reason,
         username=username, session=session)
    version.status = VersionStatus.IN_REVIEW
    save_with_reason(version, actor=actor, reason=reason, update_fields=["status"])
    return version


def _images_placed_exist(version: MasterRecordVersion) -> None:
    """Every `image:N` a step's text places is an image of that step: a missing one would reach the
    operator as "image not available" in an approved, signed instruction."""
    problems = []
    for step in StepTemplate.objects.filter(stage__version=version).prefetch_related("images").order_by(
            "stage__order", "order"):
        missing = sorted(image_numbers(step.instructions) - {image.number for image in step.images.all()})
        if missing:
            problems.append(f"step {step.code} places image {', '.join(map(str, missing))}, which it does not have")
    if problems:
        raise ValidationError(f"Add the missing images or remove them from the text: {'; '.join(problems)}.")


@transaction.atomic
def version_review(*, actor: User, version: MasterRecordVersion, password: str, username: str | None = None,
                   session: Any = None, reason: str = "Reviewed", seen: str | None = None) -> Signature:
    """A reviewer (not the author) signs "reviewed" the version they read (`seen`); the state stays
    in review until QA approves."""
    ensure_can(actor, Capability.MASTER_RECORD_REVIEW, "review master records")
    version = MasterRecordVersion.objects.select_for_update().get(pk=version.pk)
    ensure_unchanged(version, seen)
    if version.status != VersionStatus.IN_REVIEW:
        raise ValidationError("Only a version in review can be reviewed.")
    ensure_approver_not_author(approver=actor, authors=version_signers(version, Meaning.AUTHORED))
    return sign(signer=actor, password=password, meaning=Meaning.REVIEWED, target=version, reason=reason,
                username=username, session=session)


@transaction.atomic
def version_approve(*, actor: User, version: MasterRecordVersion, password: str, username: str | None = None,
                    session: Any = None, reason: str = "Approved", seen: str | None = None) -> MasterRecordVersion:
    """QA approval of the version QA read (`seen`): needs valid author and reviewer signatures;
    three different people sign."""
    ensure_can(actor, Capability.MASTER_RECORD_APPROVE, "approve master records")
    version = MasterRecordVersion.objects.select_for_update().get(pk=version.pk)
    ensure_unchanged(version, seen)
    meaning = version_transition_check(version.status, VersionStatus.APPROVED)
    authors = version_signers(version, Meaning.AUTHORED, valid_only=True)
    reviewers = version_signers(version, Meaning.REVIEWED, valid_only=True)
    if not authors or not reviewers:
        raise ValidationError("Approval needs the author's and a reviewer's valid signatures first.")
    if not may_approve(approver=actor, authors=authors + reviewers):
        raise SegregationOfDuties("The QA approver must not be the author or the reviewer of this version.")
    sign(signer=actor, password=password, meaning=meaning or Meaning.APPROVED, target=version, reason=reason,
         username=username, session=session)
    version.status = VersionStatus.APPROVED
    save_with_reason(version, actor=actor, reason=reason, update_fields=["status"])
    return version


@transaction.atomic
def version_make_effective(*, actor: User, version: MasterRecordVersion, reason: str = "Made effective",
                           seen: str | None = None) -> MasterRecordVersion:
    """The approved version QA read (`seen`) becomes the only effective one; the previous effective
    is superseded."""
    ensure_can(actor, Capability.MASTER_RECORD_APPROVE, "make master records effective")
    version = MasterRecordVersion.objects.select_for_update().get(pk=version.pk)
    ensure_unchanged(version, seen, again="make it effective again")
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


QUANTITY_FIXED = {"unit", "target", "lower_limit", "upper_limit"}
PARAMETER_EDITABLE = {"label", "unit", "target", "lower_limit", "upper_limit", "alert_low", "alert_high", "critical",
                      "required", "choices", "expected", "formula"}


@transaction.atomic
def parameter_update(*, actor: User, parameter: ParameterSpec, reason: str, **changes: Any) -> ParameterSpec:
    """Change a parameter of a draft version (limits, unit, ...); approved versions are frozen."""
    ensure_can(actor, Capability.MASTER_RECORD_AUTHOR, "author master records")
    unknown = set(changes) - PARAMETER_EDITABLE
    if unknown:
        raise ValidationError(f"These fields cannot be changed here: {', '.join(sorted(unknown))}.")
    _draft_step(parameter.step)  # the version locked first: no approval slips in between
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
                  **spec: Any) -> ParameterSpec:
    """Add a parameter to a step of a draft version."""
    ensure_can(actor, Capability.MASTER_RECORD_AUTHOR, "author master records")
    step = _draft_step(step)
    if not spec.get("code") or not spec.get("label") or not spec.get("kind"):
        raise ValidationError("A parameter needs a code, a label and a type.")
    if step.parameters.filter(code=spec["code"]).exists():
        raise ValidationError({"code": f"{spec['code']} is already a parameter of this step."})
    _parameter_validate(spec)
    order = (step.parameters.order_by("-order").values_list("order", flat=True).first() or 0) + 1
    return create_with_reason(ParameterSpec, actor=actor, reason=reason, step=step, order=order, **spec)


@transaction.atomic
def version_return(*, actor: User, version: MasterRecordVersion, reason: str,
                   seen: str | None = None) -> MasterRecordVersion:
    """A reviewer or approver sends the version in review they read (`seen`) back to draft, saying why."""
    if not (can(actor, Capability.MASTER_RECORD_REVIEW) or can(actor, Capability.MASTER_RECORD_APPROVE)):
        raise PermissionDenied("Your role does not allow returning master records.")
    if not reason.strip():
        raise ValidationError({"reason": "Say what must change."})
    version = MasterRecordVersion.objects.select_for_update().get(pk=version.pk)
    ensure_unchanged(version, seen, again="return it again")
    version_transition_check(version.status, VersionStatus.DRAFT)
    version.status = VersionStatus.DRAFT
    save_with_reason(version, actor=actor, reason=reason, update_fields=["status"])
    return version


def _ensure_withdrawable(version: MasterRecordVersion) -> None:
    """Only a draft is withdrawn: what was submitted is being reviewed, and what was approved stays
    the signed record of an approval (it is retired or superseded, never withdrawn)."""
    status = version.get_status_display().lower()
    if version.status == VersionStatus.WITHDRAWN:
        raise ValidationError(f"{version} is withdrawn already.")
    if version.status == VersionStatus.IN_REVIEW:
        raise ValidationError(f"{version} is in review: only a draft can be withdrawn; a reviewer or QA returns it "
                              "to draft first.")
    if version.status != VersionStatus.DRAFT:
        raise ValidationError(f"{version} is {status}: it was approved under signature and stays on record; only a "
                              "draft that was never approved can be withdrawn.")


@transaction.atomic
def version_withdraw(*, actor: User, version: MasterRecordVersion, password: str, reason: str,
                     username: str | None = None, session: Any = None,
                     seen: str | None = None) -> MasterRecordVersion:
    """An author withdraws an abandoned draft under signature ("withdrawn"), saying why.

    The version is kept with its content, signatures and audit trail (EU GMP Part I 4.1, 4.10:
    a document's history is retained; 21 CFR 11.10(e), 11.50), but can never again be edited,
    submitted or executed, and its number is not reused. It no longer holds its change control:
    the change may be drafted again under it, or the change control cancelled (ebr/subjects.py).
    """
    ensure_can(actor, Capability.MASTER_RECORD_AUTHOR, "withdraw master record drafts")
    reason = reason_required(reason, "Say why the draft is withdrawn: it is recorded with the signature.")
    version = MasterRecordVersion.objects.select_for_update().get(pk=version.pk)
    ensure_unchanged(version, seen)
    _ensure_withdrawable(version)
    meaning = version_transition_check(version.status, VersionStatus.WITHDRAWN)
    signature = sign(signer=actor, password=password, meaning=meaning or Meaning.WITHDRAWN, target=version,
                     reason=reason, username=username, session=session)
    version.status = VersionStatus.WITHDRAWN
    save_with_reason(version, actor=actor, reason=reason, update_fields=["status"],
                     event=Event.MASTER_VERSION_WITHDRAWN,
                     data={"signature": signature.pk, "change_control": version.change_control})
    return version
