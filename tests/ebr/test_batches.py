"""Creating and moving patient batches: identity checked, numbers without gaps, states enforced."""

from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from ebr.models import Batch, BatchStatus, CustodyEvent, StepStatus
from ebr.selectors import batch_record
from ebr.services import batches as batch_services
from ebr.states import TransitionRefused
from qms.audit import Event
from qms.models import AuditEvent
from qms.signatures import SignatureRefused
from tests.conftest import PASSWORD
from tests.ebr.conftest import create_batch

pytestmark = pytest.mark.django_db


def test_batch_is_created_from_the_effective_version_with_site_year_sequence(supervisor, version, settings):
    first = create_batch(supervisor, version)
    second = create_batch(supervisor, version)

    year = timezone.localdate().year
    prefix = f"{settings.FACILITY_SITE_CODE}-{year}-"
    assert first.number.startswith(prefix) and second.number.startswith(prefix)
    assert int(second.number[-4:]) == int(first.number[-4:]) + 1
    assert first.status == BatchStatus.PLANNED
    assert [s.template.code for s in first.steps.order_by("sequence")] == ["1.1", "2.1", "2.2"]
    assert AuditEvent.objects.filter(event_type=Event.BATCH_CREATED, target_id=str(first.pk)).exists()


def test_identity_errors_are_all_reported_and_nothing_is_saved(supervisor, version):
    before = Batch.objects.count()

    with pytest.raises(ValidationError) as refused:
        create_batch(supervisor, version, coi="COI-AAAA-BBBB-C", coi_confirmation="COI-AAAA-BBBB-D",
                     din="W123426000001X", patient_ref="Jean Dupont", collecting_hospital=" ")

    assert set(refused.value.message_dict) == {"coi", "din", "patient_ref", "collecting_hospital"}
    assert Batch.objects.count() == before


@pytest.mark.parametrize("hospital", ["Jean Dupont, City Hospital", "city hospital ward 4", ""])
def test_the_collecting_hospital_comes_from_the_facilitys_list(supervisor, version, hospital):
    """Free text here could carry a patient's name into the record and the PDF."""
    before = Batch.objects.count()

    with pytest.raises(ValidationError) as refused:
        create_batch(supervisor, version, collecting_hospital=hospital)

    assert "facility's list" in refused.value.message_dict["collecting_hospital"][0]
    assert Batch.objects.count() == before


def test_a_coi_cannot_be_used_for_two_batches(supervisor, version):
    first = create_batch(supervisor, version)

    with pytest.raises(ValidationError, match="already belongs"):
        create_batch(supervisor, version, coi=first.coi, coi_confirmation=first.coi)


def test_only_supervisors_create_batches(operator, version):
    with pytest.raises(PermissionDenied):
        create_batch(operator, version)


def test_start_opens_the_first_step(supervisor, version):
    batch = batch_services.batch_start(actor=supervisor, batch=create_batch(supervisor, version))

    assert batch.status == BatchStatus.IN_PROGRESS and batch.started_at
    assert batch.steps.get(sequence=1).status == StepStatus.OPEN


def test_hold_and_resume_and_refused_transitions(supervisor, version):
    batch = batch_services.batch_start(actor=supervisor, batch=create_batch(supervisor, version))
    batch_services.batch_hold(actor=supervisor, batch=batch, reason="Incubator alarm under investigation")
    with pytest.raises(TransitionRefused):
        batch_services.batch_hold(actor=supervisor, batch=batch, reason="again")
    batch = batch_services.batch_resume(actor=supervisor, batch=batch, reason="Alarm closed")

    assert batch.status == BatchStatus.IN_PROGRESS
    assert AuditEvent.objects.filter(event_type=Event.BATCH_HELD, reason="Incubator alarm under investigation").exists()


def test_abort_needs_reason_and_signature(supervisor, version):
    batch = create_batch(supervisor, version)
    with pytest.raises(ValidationError):
        batch_services.batch_abort(actor=supervisor, batch=batch, reason="", password=PASSWORD,
                                   username=supervisor.username)
    with pytest.raises(SignatureRefused):
        batch_services.batch_abort(actor=supervisor, batch=batch, reason="Patient withdrawn",
                                   password="wrong-password-x", username=supervisor.username)

    aborted = batch_services.batch_abort(actor=supervisor, batch=batch, reason="Patient withdrawn",
                                         password=PASSWORD, username=supervisor.username)
    assert aborted.status == BatchStatus.ABORTED


def test_custody_events_are_recorded_and_gaps_flagged(supervisor, version):
    batch = create_batch(supervisor, version)
    now = timezone.now()
    for giver, taker, hours in (("Apheresis unit", "Courier", 4), ("Courier B", "Goods-in", 2)):
        batch_services.custody_event_record(actor=supervisor, batch=batch, from_party=giver, to_party=taker,
                                            location="Dock", occurred_at=now - timezone.timedelta(hours=hours),
                                            temperature_c=5)

    gaps = batch_record(batch).custody_gaps
    assert len(gaps) == 1 and "last held by Courier" in gaps[0]
    assert CustodyEvent.objects.filter(batch=batch).count() == 2
    with pytest.raises(ValidationError):
        batch_services.custody_event_record(actor=supervisor, batch=batch, from_party="", to_party="x",
                                            location="y", occurred_at=now + timezone.timedelta(hours=1))


def test_bioreactor_cannot_serve_two_batches_at_once(supervisor, version, resources):
    first = batch_services.batch_start(actor=supervisor, batch=create_batch(supervisor, version))
    second = batch_services.batch_start(actor=supervisor, batch=create_batch(supervisor, version))
    batch_services.equipment_assign(actor=supervisor, batch=first, equipment=resources["bioreactor"])

    with pytest.raises(ValidationError, match="in use by batch"):
        batch_services.equipment_assign(actor=supervisor, batch=second, equipment=resources["bioreactor"])


@pytest.mark.parametrize(("field", "changes"), [
    ("to_party", {"to_party": "Mrs Marie Dupont, room 12"}),
    ("location", {"location": "Ward 4, bed of Marie Dupont"}),
    ("occurred_at", {"occurred_at": "before collection"}),
    ("temperature_c", {"temperature_c": Decimal(400)}),
    ("temperature_c", {"temperature_c": Decimal(-250)}),
])
def test_a_hand_off_that_cannot_be_true_is_refused_before_it_is_kept_for_good(supervisor, version, field, changes):
    """Custody rows are append-only: a patient's name, a hand-off before the material existed or a
    400 °C bag would stay on the record for good."""
    batch = create_batch(supervisor, version)
    if changes.get("occurred_at") == "before collection":
        changes["occurred_at"] = batch.collected_at - timezone.timedelta(days=1)
    hand_off = {"from_party": "Apheresis unit", "to_party": "World Courier", "location": "Dock 2",
                "occurred_at": timezone.now() - timezone.timedelta(hours=1), "temperature_c": Decimal(5), **changes}

    with pytest.raises(ValidationError) as refused:
        batch_services.custody_event_record(actor=supervisor, batch=batch, **hand_off)

    assert set(refused.value.message_dict) == {field}
    assert not CustodyEvent.objects.filter(batch=batch).exists()


def test_liquid_nitrogen_and_a_named_courier_company_are_fine(supervisor, version):
    batch = create_batch(supervisor, version)

    event = batch_services.custody_event_record(actor=supervisor, batch=batch, from_party="Cryo store",
                                                to_party="World Courier (dry shipper)", location="Goods-in, room 3",
                                                occurred_at=timezone.now(), temperature_c=Decimal("-196"))

    assert event.temperature_c == Decimal("-196")
