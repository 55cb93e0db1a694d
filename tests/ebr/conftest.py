"""A small effective master record, trained people and started batches, built through the services."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.utils import timezone

from ebr.identity import coi_generate, mod37_2
from ebr.models import Equipment, Material, MaterialLot
from ebr.services import batches as batch_services
from ebr.services import master_records as master_services
from qms.audit import create_with_reason
from tests.conftest import PASSWORD, SEED

_din_counter = iter(range(100000, 999999))


def a_din() -> str:
    number = f"W1234{timezone.localdate().year % 100:02d}{next(_din_counter):06d}"
    return number + mod37_2(number)


@pytest.fixture
def resources(db):
    today = timezone.localdate()
    media = create_with_reason(Material, actor=SEED, reason="test", code="MED", name="Medium", unit="mL")
    other = create_with_reason(Material, actor=SEED, reason="test", code="BEADS", name="Beads", unit="mL")

    def lot(number, material, days, status="released"):
        return create_with_reason(MaterialLot, actor=SEED, reason="test", lot_number=number, material=material,
                                  expiry_date=today + timedelta(days=days), status=status)

    def equipment(code, kind, due_days=100, status="released"):
        return create_with_reason(Equipment, actor=SEED, reason="test", code=code, name=code, equipment_type=kind,
                                  calibration_due=today + timedelta(days=due_days), status=status)

    return {
        "media": media, "good_lot": lot("MED-1", media, 100), "expired_lot": lot("MED-OLD", media, -1),
        "quarantined_lot": lot("MED-Q", media, 100, "quarantined"), "wrong_lot": lot("BEADS-1", other, 100),
        "bsc": equipment("BSC-T1", "bsc"), "bsc_overdue": equipment("BSC-T2", "bsc", due_days=-1),
        "bsc_maintenance": equipment("BSC-T3", "bsc", status="maintenance"),
        "bioreactor": equipment("BR-T1", "bioreactor"),
    }


def a_draft(author, code="MBR-DRAFT-001"):  # type: ignore[no-untyped-def]
    """A draft master record version with one stage and one step with a numeric parameter."""
    product = master_services.product_create(actor=author, code=f"P-{code}", name="Draft product")
    version = master_services.master_record_create(actor=author, product=product, code=code, title="Draft")
    stage = master_services.stage_add(actor=author, version=version, name="Receipt")
    master_services.step_add(actor=author, stage=stage, code="1.1", title="Receive", instructions="Check the label.",
                             parameters=[{"code": "temp", "label": "Temperature", "kind": "number", "unit": "Cel",
                                          "lower_limit": D("2"), "upper_limit": D("8")}])
    return version


def build_version(supervisor, qa_reviewer, qa_approver, resources, code="MBR-TEST-001"):
    product = master_services.product_create(actor=supervisor, code=f"P-{code}", name="Test CAR-T")
    version = master_services.master_record_create(actor=supervisor, product=product, code=code, title="Test process")
    receipt = master_services.stage_add(actor=supervisor, version=version, name="Receipt")
    master_services.step_add(
        actor=supervisor, stage=receipt, code="1.1", title="Receive the bag", instructions="Check the label.",
        critical=True, requires_verification=True, hold_time_limit=timedelta(hours=1),
        parameters=[{"code": "label_ok", "label": "Label matches COI", "kind": "yes_no", "expected": "yes"},
                    {"code": "temp", "label": "Temperature", "kind": "number", "unit": "Cel",
                     "lower_limit": D("2"), "upper_limit": D("8"), "alert_low": D("3"), "alert_high": D("7")}])
    processing = master_services.stage_add(actor=supervisor, version=version, name="Processing")
    master_services.step_add(
        actor=supervisor, stage=processing, code="2.1", title="Seed the culture", instructions="In the BSC.",
        equipment_type="bsc",
        parameters=[{"code": "bsc", "label": "BSC", "kind": "equipment_id"},
                    {"code": "medium", "label": "Medium lot", "kind": "material_lot", "material": resources["media"]},
                    {"code": "viability", "label": "Viability", "kind": "number", "unit": "%",
                     "lower_limit": D("70"), "upper_limit": D("100")}])
    master_services.step_add(
        actor=supervisor, stage=processing, code="2.2", title="Formulate", instructions="Dilute.",
        parameters=[{"code": "cells", "label": "Cells", "kind": "number", "unit": "10*6"},
                    {"code": "volume", "label": "Volume", "kind": "number", "unit": "mL", "lower_limit": D("1")},
                    {"code": "conc", "label": "Concentration", "kind": "calculated", "unit": "10*6/mL",
                     "formula": "cells / volume"}])
    master_services.version_submit(actor=supervisor, version=version, password=PASSWORD, username=supervisor.username)
    master_services.version_review(actor=qa_reviewer, version=version, password=PASSWORD,
                                   username=qa_reviewer.username)
    master_services.version_approve(actor=qa_approver, version=version, password=PASSWORD,
                                    username=qa_approver.username)
    return master_services.version_make_effective(actor=qa_approver, version=version)


def train(user, version, qa_approver, trainer):
    """Training that counts at once, today: recorded and signed by the trainer where their role
    records training (their signature confirms it), else by the QA approver and then confirmed by
    the trainer. Under the training rules the trainer must be trained on the version first (or be
    a QA approver): a trainer who is not is trained here first."""
    from qms.roles import Capability, can
    from qms.services.training import training_confirm, training_is_current, training_record_add

    document = {"document_kind": "master_record", "document_code": version.master_record.code,
                "version": str(version.version)}
    if training_is_current(user=user, **document):
        return
    if not can(trainer, Capability.MASTER_RECORD_APPROVE) and not training_is_current(user=trainer, **document):
        train(trainer, version, qa_approver, qa_approver)
    recorder = trainer if can(trainer, Capability.TRAINING_RECORD) else qa_approver
    record = training_record_add(actor=recorder, user=user, **document, trained_on=timezone.localdate(),
                                 trainer=trainer, valid_until=timezone.localdate() + timedelta(days=365),
                                 reason="Initial training", password=PASSWORD, username=recorder.username)
    if recorder != trainer:
        training_confirm(actor=trainer, record=record, password=PASSWORD, username=trainer.username)


@pytest.fixture
def version(supervisor, qa_reviewer, qa_approver, resources, operator, verifier):
    effective = build_version(supervisor, qa_reviewer, qa_approver, resources)
    train(supervisor, effective, qa_approver, qa_approver)
    for person in (operator, verifier):
        train(person, effective, qa_approver, supervisor)
    return effective


def create_batch(supervisor, version, **overrides):
    coi = overrides.pop("coi", coi_generate())
    values = {"coi": coi, "coi_confirmation": coi, "din": a_din(), "patient_ref": "PT-0042",
              "collecting_hospital": "City Hospital", "collected_at": timezone.now() - timedelta(hours=5)}
    values.update(overrides)
    return batch_services.batch_create(actor=supervisor, version=version, **values)


@pytest.fixture
def batch(supervisor, version):
    planned = create_batch(supervisor, version)
    return batch_services.batch_start(actor=supervisor, batch=planned)
