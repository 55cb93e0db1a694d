"""Materials a step of a master record prescribes, and the parameters that check their quantity.

EU GMP Part I 4.18: the master formula states each material and its quantity; the version's
approval signatures then cover the prescription and its check.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.text import slugify

from ebr.models import Material, ParameterKind, ParameterSpec, StepMaterial, StepTemplate
from ebr.services.master_records._drafts import draft_step_locked
from qms.audit import create_with_reason, save_with_reason
from qms.models import User
from qms.roles import Capability
from qms.services._guards import ensure_can, reason_required

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


def material_parameters_ensure(*, actor: User, step: StepTemplate, step_material: StepMaterial,
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


def step_material_create(*, actor: User, step: StepTemplate, material: Material | str, quantity: Any,
                         tolerance: Any, reason: str) -> StepMaterial:
    material = _material_get(material)
    quantity, tolerance = _quantity_clean(quantity, tolerance)
    if step.materials.filter(material=material).exists():
        raise ValidationError({"material": f"{material.code} is already prescribed in step {step.code}."})
    step_material = create_with_reason(StepMaterial, actor=actor, reason=reason, step=step, material=material,
                                       quantity=quantity, tolerance=tolerance)
    material_parameters_ensure(actor=actor, step=step, step_material=step_material, reason=reason)
    return step_material


@transaction.atomic
def step_material_add(*, actor: User, step: StepTemplate, material: Material, quantity: Decimal,
                      tolerance: Decimal | None = None, reason: str = "Material added to draft",
                      seen: str | None = None) -> StepMaterial:
    """Prescribe a material and its quantity for a step of the draft its author read (`seen`)."""
    ensure_can(actor, Capability.MASTER_RECORD_AUTHOR, "author master records")
    step = draft_step_locked(step, seen)
    return step_material_create(actor=actor, step=step, material=material, quantity=quantity,
                                tolerance=tolerance, reason=reason)


@transaction.atomic
def step_material_update(*, actor: User, step: StepTemplate, material: Material | str, quantity: Any,
                         tolerance: Any, reason: str, seen: str | None = None) -> StepMaterial:
    """Change a prescribed quantity or tolerance in the draft its author read (`seen`), and with it
    the limits of the step's quantity parameter, so that the prescription and the check of the
    quantity used never disagree (EU GMP Part I 4.18: the master record states the quantity of
    each material; the version's approval signatures then cover the new values; the reason goes
    to the audit trail).
    """
    ensure_can(actor, Capability.MASTER_RECORD_AUTHOR, "author master records")
    reason = reason_required(reason, "Say why the prescription changes: it is recorded in the audit trail.")
    step = draft_step_locked(step, seen)
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
