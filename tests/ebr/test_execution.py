"""Executing a batch: entry checks at the moment of entry, corrections, signatures, verification."""

import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from ebr.models import BatchStatus, Entry, EquipmentUse, MaterialUse, StepStatus
from ebr.selectors import step_record
from ebr.services.execution import entry_correct, entry_record, step_perform, step_verify
from qms.audit import Event
from qms.models import AuditEvent, Signature
from qms.signatures import SegregationOfDuties, SignatureRefused
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def key() -> str:
    return uuid.uuid4().hex


def param(step, code):
    return step.template.parameters.get(code=code)


def record(actor, step, code, value, **kwargs):
    return entry_record(actor=actor, step=step, parameter=param(step, code), value=value,
                        idempotency_key=kwargs.pop("idempotency_key", key()), **kwargs)


def current_step(batch):
    return batch.steps.exclude(status=StepStatus.DONE).order_by("sequence").first()


def finish_step_one(batch, operator, verifier):
    step = current_step(batch)
    record(operator, step, "label_ok", "yes")
    record(operator, step, "temp", "5")
    step_perform(actor=operator, step=step, password=PASSWORD, username=operator.username)
    step_verify(actor=verifier, step=step, password=PASSWORD, username=verifier.username)
    return current_step(batch)


def test_value_in_spec_is_recorded_with_server_time_and_audit_entry(batch, operator):
    step = current_step(batch)

    result = record(operator, step, "temp", "5.5 Cel")

    entry = result.entry
    assert (entry.value_text, entry.unit, entry.in_spec, entry.alert, entry.late) == ("5.5", "Cel", True, False, False)
    assert abs((entry.entered_at - timezone.now()).total_seconds()) < 5
    assert AuditEvent.objects.filter(event_type=Event.ENTRY_RECORDED, target_id=str(entry.pk)).exists()


def test_the_unit_may_be_typed_as_printed_and_is_stored_as_its_ucum_code(batch, operator):
    """The tablet labels the field "Value (°C)": typing what it shows must not be refused."""
    entry = record(operator, current_step(batch), "temp", "5.5 °C").entry

    assert (entry.value_text, entry.unit) == ("5.5", "Cel")


def test_wrong_unit_and_wrong_type_are_refused_and_nothing_is_stored(batch, operator):
    step = current_step(batch)

    with pytest.raises(ValidationError, match="unit must be °C"):
        record(operator, step, "temp", "5 %")
    with pytest.raises(ValidationError, match="Enter a number"):
        record(operator, step, "temp", "cold")
    with pytest.raises(ValidationError, match="yes or no"):
        record(operator, step, "label_ok", "maybe")
    with pytest.raises(ValidationError, match="1,000 is ambiguous"):  # a thousand, or 1.000?
        record(operator, step, "temp", "1,000")
    assert not Entry.objects.filter(step=step).exists()
    assert record(operator, step, "temp", "4,5").entry.value_number == 4.5  # a decimal comma is no thousands separator


def test_out_of_spec_needs_a_comment_keeps_the_value_and_opens_a_deviation(batch, operator):
    from qms.selectors import deviations_open_for

    step = current_step(batch)
    with pytest.raises(ValidationError) as missing_comment:
        record(operator, step, "temp", "11")
    assert "comment" in missing_comment.value.message_dict

    result = record(operator, step, "temp", "11", comment="Shipper logger showed 11 °C on arrival")

    entry = result.entry
    assert entry.in_spec is False and entry.value_text == "11"
    deviations = deviations_open_for("ebr.batch", str(batch.pk))
    assert [d.number for d in deviations] == [entry.deviation_number]
    assert any("deviation" in warning for warning in result.warnings)


def test_outside_alert_limits_warns_and_is_recorded(batch, operator):
    result = record(operator, current_step(batch), "temp", "7.5")

    assert result.entry.alert is True and result.entry.in_spec is True
    assert "alert limits" in result.warnings[0]


def test_double_tap_with_the_same_key_creates_one_entry(batch, operator):
    step = current_step(batch)
    same = key()

    first = record(operator, step, "temp", "5", idempotency_key=same)
    again = record(operator, step, "temp", "5", idempotency_key=same)

    assert again.created is False and again.entry.pk == first.entry.pk
    assert Entry.objects.filter(step=step).count() == 1


def test_a_recorded_value_cannot_be_recorded_again_only_corrected(batch, operator):
    step = current_step(batch)
    record(operator, step, "temp", "5")

    with pytest.raises(ValidationError, match="use a correction"):
        record(operator, step, "temp", "6")


def test_correction_keeps_the_original_and_needs_a_reason(batch, operator):
    step = current_step(batch)
    original = record(operator, step, "temp", "6").entry
    with pytest.raises(ValidationError, match="reason"):
        entry_correct(actor=operator, entry=original, value="5.8", reason=" ", idempotency_key=key())

    corrected = entry_correct(actor=operator, entry=original, value="5.8", reason="Transcription error",
                              idempotency_key=key()).entry

    assert corrected.supersedes_id == original.pk
    assert Entry.objects.get(pk=original.pk).value_text == "6"  # never overwritten
    view = next(p for p in step_record(step).parameters if p.parameter.code == "temp")
    assert [e.value for e in view.history] == ["6", "5.8"]
    assert view.history[0].superseded and view.current.value == "5.8"
    assert AuditEvent.objects.filter(event_type=Event.ENTRY_CORRECTED, reason="Transcription error").exists()


def test_a_correction_made_long_after_the_work_keeps_its_time_and_is_not_a_late_entry(batch, operator, settings):
    step = current_step(batch)
    original = record(operator, step, "temp", "6").entry
    # Time passes: the original is now older than any back-dating or late-entry limit.
    settings.ENTRY_BACKDATE_LIMIT = settings.LATE_ENTRY_THRESHOLD = timedelta(0)

    corrected = entry_correct(actor=operator, entry=original, value="5.8", reason="Transcription error",
                              idempotency_key=key()).entry

    assert corrected.performed_at == original.performed_at and corrected.late is original.late is False
    assert corrected.entered_at > original.entered_at


def test_a_correction_form_resent_with_another_value_s_key_is_refused(batch, operator):
    step = current_step(batch)
    temp = record(operator, step, "temp", "6").entry
    record(operator, step, "label_ok", "yes", idempotency_key="used-for-label")

    with pytest.raises(ValidationError, match="another value"):
        entry_correct(actor=operator, entry=temp, value="5.8", reason="Typo", idempotency_key="used-for-label")

    assert not Entry.objects.filter(supersedes=temp).exists()


def test_a_corrected_scan_leaves_the_genealogy_and_releases_the_wrongly_scanned_equipment(
        batch, operator, verifier, resources):
    from datetime import timedelta as td

    from ebr.models import Equipment, MaterialLot
    from ebr.selectors import batch_record
    from qms.audit import create_with_reason
    from tests.conftest import SEED

    today = timezone.localdate()
    bsc2 = create_with_reason(Equipment, actor=SEED, reason="test", code="BSC-T9", name="BSC-T9",
                              equipment_type="bsc", calibration_due=today + td(days=100))
    lot2 = create_with_reason(MaterialLot, actor=SEED, reason="test", lot_number="MED-2", material=resources["media"],
                              expiry_date=today + td(days=100), status="released")
    step = finish_step_one(batch, operator, verifier)
    wrong_bsc = record(operator, step, "bsc", "BSC-T1").entry
    wrong_lot = record(operator, step, "medium", "MED-1").entry

    entry_correct(actor=operator, entry=wrong_bsc, value=bsc2.code, reason="Wrong cabinet", idempotency_key=key())
    entry_correct(actor=operator, entry=wrong_lot, value=lot2.lot_number, reason="Wrong bottle", idempotency_key=key())

    open_uses = set(EquipmentUse.objects.filter(batch=batch, ended_at__isnull=True).values_list("equipment__code",
                                                                                                flat=True))
    assert "BSC-T1" not in open_uses and "BSC-T9" in open_uses
    assert [use.lot.lot_number for use in batch_record(batch).material_uses] == ["MED-2"]
    assert MaterialUse.objects.filter(batch=batch).count() == 2  # the wrong scan stays on record


def test_a_corrected_scan_leaves_an_assignment_it_did_not_make(batch, operator, verifier, supervisor, resources):
    """Equipment reserved for the batch beforehand (instrument data follows it) stays assigned when a
    scan that named it is corrected: only the assignment the wrong scan made is the scan's to end."""
    from ebr.models import Equipment
    from ebr.services.batches import equipment_assign
    from qms.audit import create_with_reason
    from tests.conftest import SEED

    other = create_with_reason(Equipment, actor=SEED, reason="test", code="BSC-T9", name="BSC-T9", equipment_type="bsc",
                               calibration_due=timezone.localdate() + timedelta(days=100))
    reserved = equipment_assign(actor=supervisor, batch=batch, equipment=resources["bsc"])
    step = finish_step_one(batch, operator, verifier)
    wrong_bsc = record(operator, step, "bsc", "BSC-T1").entry

    entry_correct(actor=operator, entry=wrong_bsc, value=other.code, reason="Wrong cabinet", idempotency_key=key())

    reserved.refresh_from_db()
    assert reserved.ended_at is None


def test_entries_cannot_be_updated_or_deleted_in_the_database(batch, operator):
    from django.db import DatabaseError, connection, transaction

    entry = record(operator, current_step(batch), "temp", "5").entry
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE ebr_entry SET value_text = '4' WHERE id = %s", [entry.pk])


def test_performed_at_can_be_set_back_within_the_limit_and_late_entries_are_marked(batch, operator, settings):
    step = current_step(batch)
    step.opened_at = timezone.now() - timedelta(hours=3)
    step.save(update_fields=["opened_at"])

    late = record(operator, step, "temp", "5", performed_at=timezone.now() - timedelta(hours=2)).entry

    assert late.late is True
    with pytest.raises(ValidationError, match="future"):
        record(operator, step, "label_ok", "yes", performed_at=timezone.now() + timedelta(hours=1))
    with pytest.raises(ValidationError, match="set back at most"):
        record(operator, step, "label_ok", "yes", performed_at=timezone.now() - settings.ENTRY_BACKDATE_LIMIT
               - timedelta(minutes=5))


def test_untrained_operator_cannot_record(batch, make_user):
    from qms.roles import Role

    newcomer = make_user(Role.OPERATOR)

    with pytest.raises(PermissionDenied, match="no current training"):
        record(newcomer, current_step(batch), "temp", "5")


def test_roles_without_execution_cannot_record(batch, qa_reviewer, auditor):
    for person in (qa_reviewer, auditor):
        with pytest.raises(PermissionDenied):
            record(person, current_step(batch), "temp", "5")


def test_only_the_open_step_takes_entries(batch, operator):
    later = batch.steps.get(sequence=2)

    with pytest.raises(ValidationError, match="not yet open"):
        record(operator, later, "viability", "90")


def test_step_cannot_be_signed_with_values_missing(batch, operator):
    step = current_step(batch)
    record(operator, step, "temp", "5")

    with pytest.raises(ValidationError, match="Label matches COI"):
        step_perform(actor=operator, step=step, password=PASSWORD, username=operator.username)


def test_critical_step_waits_for_a_different_trained_verifier(batch, operator, verifier):
    step = current_step(batch)
    record(operator, step, "label_ok", "yes")
    record(operator, step, "temp", "5")

    step_perform(actor=operator, step=step, password=PASSWORD, username=operator.username)
    step.refresh_from_db()
    assert step.status == StepStatus.PERFORMED
    assert batch.steps.get(sequence=2).status == StepStatus.LOCKED  # next step not open before verification
    with pytest.raises(SegregationOfDuties):
        step_verify(actor=operator, step=step, password=PASSWORD, username=operator.username)

    step_verify(actor=verifier, step=step, password=PASSWORD, username=verifier.username)

    step.refresh_from_db()
    assert step.status == StepStatus.DONE and step.verified_by == verifier
    meanings = set(Signature.objects.filter(target_type="ebr.stepexecution", target_id=str(step.pk))
                   .values_list("meaning", flat=True))
    assert meanings == {"performed", "verified"}
    assert batch.steps.get(sequence=2).status == StepStatus.OPEN


def test_wrong_password_refuses_the_step_signature(batch, operator):
    step = current_step(batch)
    record(operator, step, "label_ok", "yes")
    record(operator, step, "temp", "5")

    with pytest.raises(SignatureRefused):
        step_perform(actor=operator, step=step, password="wrong-password-x", username=operator.username)

    step.refresh_from_db()
    assert step.status == StepStatus.OPEN and step.performed_by is None


def test_correction_after_signing_reopens_the_step_and_invalidates_the_signature(batch, operator):
    from qms.signatures import signatures_for

    step = current_step(batch)
    record(operator, step, "label_ok", "yes")
    temp = record(operator, step, "temp", "5").entry
    step_perform(actor=operator, step=step, password=PASSWORD, username=operator.username)

    entry_correct(actor=operator, entry=temp, value="5.1", reason="Read the display again", idempotency_key=key())

    step.refresh_from_db()
    assert step.status == StepStatus.OPEN
    assert [s.valid for s in signatures_for(step)] == [False]


def test_expired_quarantined_and_wrong_material_lots_are_refused(batch, operator, verifier, resources):
    step = finish_step_one(batch, operator, verifier)

    with pytest.raises(ValidationError, match="expired"):
        record(operator, step, "medium", "MED-OLD")
    with pytest.raises(ValidationError, match="quarantined"):
        record(operator, step, "medium", "MED-Q")
    with pytest.raises(ValidationError, match="this step needs Medium"):
        record(operator, step, "medium", "BEADS-1")
    with pytest.raises(ValidationError, match="Unknown lot"):
        record(operator, step, "medium", "NOPE-1")
    record(operator, step, "medium", "med-1")  # scanner casing does not matter
    assert MaterialUse.objects.get(step=step).lot == resources["good_lot"]


def test_a_refused_lot_or_instrument_stays_in_the_batch_audit_trail(batch, operator, verifier, resources):
    """Nothing of the refused entry is saved, but QA sees that a quarantined lot and an
    out-of-calibration cabinet were presented for this patient's batch; a typo is not evidence."""
    from ebr.selectors import batch_audit_events

    step = finish_step_one(batch, operator, verifier)
    for code, scanned in (("medium", "MED-Q"), ("bsc", "BSC-T2"), ("bsc", "BR-T1"), ("medium", "NOPE-1")):
        with pytest.raises(ValidationError):
            record(operator, step, code, scanned)

    refused = AuditEvent.objects.using("security").filter(event_type=Event.ENTRY_REFUSED, target_id=str(step.pk))
    assert [(e.data["parameter"], e.data["scanned"], e.actor_id) for e in refused.order_by("id")] == [
        ("medium", "MED-Q", operator.pk), ("bsc", "BSC-T2", operator.pk), ("bsc", "BR-T1", operator.pk)]
    assert "quarantined" in refused.order_by("id").first().reason
    assert not Entry.objects.filter(step=step).exists()
    assert {e.pk for e in refused} <= {e.pk for e in batch_audit_events(batch)}


def test_the_same_refused_form_sent_twice_is_one_refused_attempt(batch, operator, verifier, resources):
    """A double tap on a quarantined lot is one attempt; scanning it again (a new form) is another."""
    step = finish_step_one(batch, operator, verifier)
    tapped = key()
    for idempotency_key in (tapped, tapped, key()):
        with pytest.raises(ValidationError, match="quarantined"):
            record(operator, step, "medium", "MED-Q", idempotency_key=idempotency_key)

    refused = AuditEvent.objects.using("security").filter(event_type=Event.ENTRY_REFUSED, target_id=str(step.pk))
    assert refused.count() == 2


def test_equipment_out_of_calibration_or_under_maintenance_is_refused(batch, operator, verifier, resources):
    step = finish_step_one(batch, operator, verifier)

    with pytest.raises(ValidationError, match="out of calibration"):
        record(operator, step, "bsc", "BSC-T2")
    with pytest.raises(ValidationError, match="under maintenance"):
        record(operator, step, "bsc", "BSC-T3")
    record(operator, step, "bsc", "BSC-T1")
    assert EquipmentUse.objects.filter(batch=batch, equipment=resources["bsc"], ended_at__isnull=True).exists()


def test_equipment_of_the_wrong_type_is_refused_at_the_scan(batch, operator, verifier, resources):
    """As a wrong material lot is: the step asks for a BSC, a bioreactor is no BSC, and it is not
    assigned to the batch."""
    step = finish_step_one(batch, operator, verifier)

    with pytest.raises(ValidationError, match="BR-T1 is a Bioreactor; this step needs a Biosafety cabinet"):
        record(operator, step, "bsc", "BR-T1")
    assert not EquipmentUse.objects.filter(batch=batch, equipment=resources["bioreactor"]).exists()


def test_a_second_bioreactor_is_refused_while_the_culture_is_in_one(batch, supervisor, resources):
    """Instrument data follows the assignment: two bioreactors at once would put two vessels'
    readings, alarms and deviations in one patient's record."""
    from ebr.models import Equipment
    from ebr.services.batches import equipment_assign, equipment_release
    from qms.audit import create_with_reason
    from tests.conftest import SEED

    second = create_with_reason(Equipment, actor=SEED, reason="test", code="BR-T2", name="BR-T2",
                                equipment_type="bioreactor", calibration_due=timezone.localdate() + timedelta(days=9),
                                status="released")
    first = equipment_assign(actor=supervisor, batch=batch, equipment=resources["bioreactor"])

    with pytest.raises(ValidationError, match=r"is in BR-T1 since .*End that assignment first"):
        equipment_assign(actor=supervisor, batch=batch, equipment=second)
    equipment_release(actor=supervisor, use=first, reason="Bag moved to BR-T2: rocker fault on BR-T1")
    assert equipment_assign(actor=supervisor, batch=batch, equipment=second).equipment == second


def test_exceeded_hold_time_is_recorded_on_the_next_step(batch, operator, verifier):
    step = finish_step_one(batch, operator, verifier)
    previous = batch.steps.get(sequence=1)
    previous.verified_at = timezone.now() - timedelta(hours=3)
    previous.save(update_fields=["verified_at"])

    record(operator, step, "viability", "90")

    step.refresh_from_db()
    assert step.hold_time_exceeded_by is not None and step.hold_time_exceeded_by > timedelta(hours=1, minutes=50)


def test_completing_the_last_step_completes_the_batch_and_queues_qa_notification(batch, operator, verifier):
    from qms.models import OutboxMessage

    step = finish_step_one(batch, operator, verifier)
    for code, value in (("bsc", "BSC-T1"), ("medium", "MED-1"), ("viability", "91")):
        record(operator, step, code, value)
    step_perform(actor=operator, step=step, password=PASSWORD, username=operator.username)
    last = current_step(batch)
    record(operator, last, "cells", "300")
    record(operator, last, "volume", "60")
    step_perform(actor=operator, step=last, password=PASSWORD, username=operator.username)

    batch.refresh_from_db()
    assert batch.status == BatchStatus.COMPLETED and batch.completed_at is not None
    calculated = Entry.objects.get(step=last, parameter__code="conc")
    assert calculated.value_text == "5"
    assert not EquipmentUse.objects.filter(batch=batch, ended_at__isnull=True).exists()
    assert OutboxMessage.objects.filter(task_name="ebr.batch_completed_notify", kwargs__batch_id=batch.pk).exists()
    with pytest.raises(ValidationError, match="completed"):
        record(operator, last, "cells", "1")


def test_someone_who_recorded_none_of_the_values_signs_performed_only_saying_how(batch, operator, verifier):
    """A performed signature says the signer did the work its values record (21 CFR 11.50): after a
    correction reopened the step, another operator could re-sign it as if they had done it."""
    step = current_step(batch)
    record(operator, step, "label_ok", "yes")
    record(operator, step, "temp", "5")

    with pytest.raises(ValidationError, match="recorded none of this step"):
        step_perform(actor=verifier, step=step, password=PASSWORD, username=verifier.username)
    step.refresh_from_db()
    assert step.status == StepStatus.OPEN and not Signature.objects.filter(target_id=str(step.pk)).exists()

    step_perform(actor=verifier, step=step, password=PASSWORD, username=verifier.username,
                 remarks="Performed in the BSC; values recorded by O. Operator as scribe")

    step.refresh_from_db()
    assert step.performed_by == verifier and "scribe" in step.remarks
    signature = Signature.objects.get(target_id=str(step.pk), meaning="performed")
    assert signature.reason.endswith("values recorded by O. Operator as scribe")


def test_the_operator_who_recorded_the_values_signs_performed_without_remarks(batch, operator):
    step = current_step(batch)
    record(operator, step, "label_ok", "yes")
    record(operator, step, "temp", "5")

    step_perform(actor=operator, step=step, password=PASSWORD, username=operator.username)

    step.refresh_from_db()
    assert step.performed_by == operator and step.remarks == ""
