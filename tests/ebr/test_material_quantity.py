"""Materials a step consumes: the operator scans the lot and records the quantity used; a quantity
other than the prescribed one (± the master record's tolerance) is kept, needs a comment and
opens a deviation, exactly like any out-of-specification value."""

from __future__ import annotations

import uuid
from decimal import Decimal as D

import pytest
from django.core.exceptions import ValidationError

from ebr.models import Material, ParameterKind, StepStatus
from ebr.selectors import version_diff
from ebr.services import batches as batch_services
from ebr.services import master_records as master_services
from ebr.services.execution import entry_correct, entry_record, step_perform
from qms.audit import Event, create_with_reason
from qms.models import AuditEvent, Deviation
from qms.staleness import record_version
from tests.conftest import PASSWORD, login
from tests.ebr.conftest import SEED, create_batch, train

pytestmark = pytest.mark.django_db


def key() -> str:
    return uuid.uuid4().hex


def draft_with_materials(supervisor, resources, code="MBR-QTY-001"):
    product = master_services.product_create(actor=supervisor, code=f"P-{code}", name="Test CAR-T")
    version = master_services.master_record_create(actor=supervisor, product=product, code=code, title="Quantities")
    stage = master_services.stage_add(actor=supervisor, version=version, name="Activation")
    step = master_services.step_add(
        actor=supervisor, stage=stage, code="1.1", title="Seed the culture", instructions="Add **10 mL** medium.",
        parameters=[{"code": "medium_lot", "label": "Medium lot", "kind": "material_lot",
                     "material": resources["media"]}],
        materials=[(resources["media"], D("10")), (resources["wrong_lot"].material, D("2.0"), D("0.2"))])
    return version, step


@pytest.fixture
def quantity_batch(supervisor, qa_reviewer, qa_approver, resources, operator, verifier):
    version, _ = draft_with_materials(supervisor, resources)
    master_services.version_submit(actor=supervisor, version=version, password=PASSWORD, username=supervisor.username)
    master_services.version_review(actor=qa_reviewer, version=version, password=PASSWORD,
                                   username=qa_reviewer.username)
    master_services.version_approve(actor=qa_approver, version=version, password=PASSWORD,
                                    username=qa_approver.username)
    version = master_services.version_make_effective(actor=qa_approver, version=version)
    for person in (operator, verifier):
        train(person, version, qa_approver, supervisor)
    return batch_services.batch_start(actor=supervisor, batch=create_batch(supervisor, version))


def record(operator, step, code, value, comment=""):
    parameter = step.template.parameters.get(code=code)
    return entry_record(actor=operator, step=step, parameter=parameter, value=value, comment=comment,
                        idempotency_key=key())


def open_step(batch):
    return batch.steps.get(status=StepStatus.OPEN)


# --- the master record -------------------------------------------------------------------------------

def test_each_prescribed_material_gains_a_lot_and_a_quantity_parameter(supervisor, resources):
    _, step = draft_with_materials(supervisor, resources)

    parameters = {p.code: p for p in step.parameters.all()}
    assert set(parameters) == {"medium_lot", "qty-med", "lot-beads", "qty-beads"}  # the existing lot one is reused
    medium = parameters["qty-med"]
    assert (medium.kind, medium.unit, medium.lower_limit, medium.upper_limit) == ("number", "mL", D("10"), D("10"))
    assert medium.limits_text() == "= 10 mL" and medium.material == resources["media"]
    beads = parameters["qty-beads"]
    assert (beads.lower_limit, beads.upper_limit, beads.target) == (D("1.8"), D("2.2"), D("2.0"))
    assert parameters["lot-beads"].kind == ParameterKind.MATERIAL_LOT
    assert AuditEvent.objects.filter(event_type=Event.RECORD_CREATED, target_type="ebr.parameterspec",
                                     target_id=str(medium.pk), reason="Step added to draft").exists()


def test_quantity_limits_follow_the_prescription_and_cannot_be_edited_apart(supervisor, resources):
    _, step = draft_with_materials(supervisor, resources)

    with pytest.raises(ValidationError, match="prescribed quantity"):
        master_services.parameter_update(actor=supervisor, parameter=step.parameters.get(code="qty-med"),
                                         reason="Looser", upper_limit=D("12"))


def test_a_hand_made_quantity_with_other_limits_is_not_left_to_stand_for_the_prescription(supervisor, resources):
    _, step = draft_with_materials(supervisor, resources)
    media = resources["media"]
    other = master_services.step_add(
        actor=supervisor, stage=step.stage, code="1.2", title="Top up", instructions="Top up.",
        parameters=[{"code": "topup", "label": "Medium added", "kind": "number", "material": media,
                     "unit": "mL", "target": D("5"), "lower_limit": D("1"), "upper_limit": D("50")}])

    with pytest.raises(ValidationError, match="already records a quantity of"):
        master_services.step_material_add(actor=supervisor, step=other, material=media, quantity=D("5"))

    assert not other.materials.exists() and set(other.parameters.values_list("code", flat=True)) == {"topup"}


def test_a_generated_parameter_code_already_taken_is_a_clear_refusal(supervisor, resources):
    _, step = draft_with_materials(supervisor, resources)
    media = resources["media"]
    other = master_services.step_add(
        actor=supervisor, stage=step.stage, code="1.2", title="Top up", instructions="Top up.",
        parameters=[{"code": "lot-med", "label": "Some lot", "kind": "text"}])

    with pytest.raises(ValidationError, match="already has a parameter lot-med"):
        master_services.step_material_add(actor=supervisor, step=other, material=media, quantity=D("5"))

    assert not other.materials.exists() and other.parameters.count() == 1


def test_a_frozen_version_refuses_a_new_material(quantity_batch, supervisor, resources):
    step = quantity_batch.master_version.stages.get().steps.get()

    with pytest.raises(ValidationError, match="frozen"):
        master_services.step_material_add(actor=supervisor, step=step, material=resources["media"],
                                          quantity=D("1"))


def test_author_prescribes_a_material_with_tolerance_through_the_page(client, supervisor, resources):
    version, step = draft_with_materials(supervisor, resources, code="MBR-QTY-002")
    other = step.parameters.count()
    login(client, supervisor)
    base = f"/master-records/{version.master_record.code}/v1/"
    new_step = master_services.step_add(actor=supervisor, stage=step.stage, code="1.2", title="Feed",
                                        instructions="Feed the culture.")

    # `seen`: the version of the page read, which every edit form of the page carries (qms/staleness.py)
    added = client.post(f"{base}material/", {"step": new_step.pk, "material": resources["media"].pk,
                                             "quantity": "50", "tolerance": "5", "seen": record_version(version)})
    twice = client.post(f"{base}material/", {"step": new_step.pk, "material": resources["media"].pk,
                                             "quantity": "50", "seen": record_version(version)})

    assert added.status_code == 302
    assert twice.status_code == 422 and "already prescribed" in twice.content.decode()
    assert new_step.parameters.get(code="qty-med").limits_text() == "45–55 mL"
    assert step.parameters.count() == other
    assert "MED Medium 50 ± 5 mL" in client.get(base).content.decode()


def test_a_changed_prescription_moves_the_quantity_limits_with_it_and_keeps_the_reason(supervisor, resources):
    _, step = draft_with_materials(supervisor, resources)
    media = resources["media"]

    master_services.step_material_update(actor=supervisor, step=step, material=media, quantity=D("12.5"),
                                         tolerance=D("0.5"), reason="Validated feed volume (CC-2026-014)")

    prescribed = step.materials.get(material=media)
    checked = step.parameters.get(code="qty-med")
    assert (prescribed.quantity, prescribed.tolerance) == (D("12.5"), D("0.5"))
    assert (checked.target, checked.lower_limit, checked.upper_limit) == (D("12.5"), D("12.0"), D("13.0"))
    assert prescribed.history.latest().history_change_reason == "Validated feed volume (CC-2026-014)"
    assert checked.history.latest().history_change_reason == "Validated feed volume (CC-2026-014)"
    assert step.materials.get(material=resources["wrong_lot"].material).quantity == D("2.0"), "others untouched"


def test_another_number_about_the_same_material_keeps_its_own_limits(supervisor, resources):
    _, step = draft_with_materials(supervisor, resources)
    master_services.parameter_add(actor=supervisor, step=step, code="topup", label="Medium topped up", kind="number",
                                  material=resources["media"], unit="mL", target=D("2"), lower_limit=D("0"),
                                  upper_limit=D("5"))

    master_services.step_material_update(actor=supervisor, step=step, material=resources["media"], quantity=D("12"),
                                         tolerance=None, reason="More medium")

    assert step.parameters.get(code="qty-med").limits_text() == "= 12 mL"
    assert step.parameters.get(code="topup").limits_text() == "0–5 mL"


@pytest.mark.parametrize(("material", "quantity", "tolerance", "reason", "message"), [
    ("media", D("12"), None, "", "Say why"),
    ("media", D("10"), None, "Same again", "nothing changes"),
    ("media", D("0"), None, "Zero", "must be positive"),
    ("media", D("12"), D("-1"), "Negative", "not negative"),
    ("media", D("12.0001"), None, "Too fine", "at most 3 decimals"),
    ("media", D("1e12"), None, "Too big", "less than 1,000,000,000"),
    ("other", D("12"), None, "Not in this step", "not prescribed in step 1.1"),
])
def test_a_prescription_change_that_makes_no_sense_is_refused_and_changes_nothing(
        supervisor, resources, material, quantity, tolerance, reason, message):
    _, step = draft_with_materials(supervisor, resources)
    target = resources["media"] if material == "media" else create_with_reason(
        Material, actor=SEED, reason="test", code="IL2", name="Interleukin-2", unit="ug")

    with pytest.raises(ValidationError, match=message):
        master_services.step_material_update(actor=supervisor, step=step, material=target, quantity=quantity,
                                             tolerance=tolerance, reason=reason)

    assert (step.materials.get(material=resources["media"]).quantity,
            step.parameters.get(code="qty-med").upper_limit) == (D("10"), D("10"))


def test_a_frozen_version_refuses_a_changed_prescription(quantity_batch, supervisor, resources):
    step = quantity_batch.master_version.stages.get().steps.get()

    with pytest.raises(ValidationError, match="frozen"):
        master_services.step_material_update(actor=supervisor, step=step, material=resources["media"],
                                             quantity=D("11"), tolerance=None, reason="Too late")


def test_a_new_version_changes_a_prescription_and_the_diff_names_the_material(quantity_batch, supervisor,
                                                                              resources, monkeypatch):
    from qms.services import change_control

    monkeypatch.setattr(change_control, "change_control_is_approved", lambda number: number == "CC-QTY")
    effective = quantity_batch.master_version
    draft = master_services.version_new_draft(actor=supervisor, master_record=effective.master_record,
                                              change_control="CC-QTY", summary_of_changes="More medium")
    step = draft.stages.get().steps.get()

    master_services.step_material_update(actor=supervisor, step=step, material=resources["media"],
                                         quantity=D("12"), tolerance=D("1"), reason="CC-QTY: more medium")

    changed = {row.key: (row.left, row.right) for row in version_diff(effective, draft) if row.changed}
    assert changed["step 1.1 · material MED"] == ("10.000", "12.000 ± 1.000")
    assert set(changed) == {"step 1.1 · material MED", "step 1.1 · qty-med"}
    assert "material=MED" in changed["step 1.1 · qty-med"][1] and "high=13.000" in changed["step 1.1 · qty-med"][1]
    assert effective.stages.get().steps.get().materials.get(material=resources["media"]).quantity == D("10")


def test_author_changes_a_prescription_through_the_page(client, supervisor, resources):
    version, step = draft_with_materials(supervisor, resources, code="MBR-QTY-003")
    login(client, supervisor)
    base = f"/master-records/{version.master_record.code}/v1/"
    page = client.get(base).content.decode()
    media = resources["media"].pk

    seen = record_version(version)  # the version of the page read, which its edit forms carry
    unexplained = client.post(f"{base}material_change/", {"step": step.pk, "material": media, "quantity": "20",
                                                          "seen": seen})
    changed = client.post(f"{base}material_change/", {"step": step.pk, "material": media, "quantity": "20",
                                                      "tolerance": "1", "reason": "Scale-up", "seen": seen})

    assert "Change a prescribed quantity in 1.1" in page
    assert unexplained.status_code == 422 and 'value="20"' in unexplained.content.decode()
    assert changed.status_code == 302
    assert step.parameters.get(code="qty-med").limits_text() == "19–21 mL"
    assert "MED Medium 20 ± 1 mL" in client.get(base).content.decode()


# --- execution ----------------------------------------------------------------------------------------

def test_the_prescribed_quantity_is_recorded_without_a_deviation(quantity_batch, operator):
    step = open_step(quantity_batch)
    record(operator, step, "medium_lot", "MED-1")

    result = record(operator, step, "qty-med", "10.0 mL")

    assert (result.entry.in_spec, result.entry.deviation_number, result.warnings) == (True, "", [])


def test_a_quantity_within_the_tolerance_is_in_specification(quantity_batch, operator):
    result = record(operator, open_step(quantity_batch), "qty-beads", "2.15")

    assert result.entry.in_spec is True


def test_a_wrong_quantity_needs_a_comment_then_is_kept_and_opens_a_deviation(quantity_batch, operator):
    step = open_step(quantity_batch)

    with pytest.raises(ValidationError) as refused:
        record(operator, step, "qty-med", "12")
    assert "differs from the prescribed quantity (= 10 mL)" in str(refused.value.message_dict["comment"])
    assert not step.entries.exists()

    result = record(operator, step, "qty-med", "12", comment="Second bottle partly used; supervisor informed.")

    entry = result.entry
    assert (entry.value_text, entry.unit, entry.in_spec) == ("12", "mL", False)
    deviation = Deviation.objects.get(number=entry.deviation_number)
    assert quantity_batch.number in deviation.title and "12 mL" in deviation.title
    assert any("deviation" in warning for warning in result.warnings)
    assert AuditEvent.objects.filter(event_type=Event.ENTRY_RECORDED, target_id=str(entry.pk),
                                     reason="Second bottle partly used; supervisor informed.").exists()
    assert AuditEvent.objects.filter(event_type=Event.DEVIATION_OPENED, target_id=str(deviation.pk)).exists()


def test_a_corrected_quantity_keeps_the_original_visible(quantity_batch, operator):
    step = open_step(quantity_batch)
    original = record(operator, step, "qty-beads", "2.0").entry

    corrected = entry_correct(actor=operator, entry=original, value="3", reason="Typo: a second vial was used",
                              comment="Second vial needed", idempotency_key=key()).entry

    assert corrected.supersedes == original and corrected.in_spec is False and corrected.deviation_number


def test_the_lot_of_the_wrong_material_is_refused(quantity_batch, operator, resources):
    with pytest.raises(ValidationError, match="this step needs Medium"):
        record(operator, open_step(quantity_batch), "medium_lot", resources["wrong_lot"].lot_number)


def test_the_step_cannot_be_signed_before_every_lot_and_quantity_is_recorded(quantity_batch, operator):
    step = open_step(quantity_batch)
    record(operator, step, "medium_lot", "MED-1")
    record(operator, step, "qty-med", "10")
    record(operator, step, "lot-beads", "BEADS-1")

    with pytest.raises(ValidationError, match="Beads: quantity used"):
        step_perform(actor=operator, step=step, password=PASSWORD, username=operator.username)

    record(operator, step, "qty-beads", "2")
    assert step_perform(actor=operator, step=step, password=PASSWORD, username=operator.username).status == "done"


def test_the_tablet_lists_the_prescribed_materials(client, operator, quantity_batch):
    login(client, operator)

    page = client.get(f"/execute/{quantity_batch.number}/").content.decode()

    assert "Medium 10 mL" in page and "Beads 2 ± 0.2 mL" in page
    assert "Medium: quantity used" in page and "Specification = 10 mL" in page
