"""A small effective process, its resources and a started batch, committed for the browser tests.

Built through the services (tests/ebr/conftest.py's build_version), with codes unique per call, because
committed rows stay for the whole session. Steps: 1.1 critical with second-person verification
(label_ok yes/no, temp 2-8 Cel), 2.1 (BSC scan, medium lot scan, viability >= 70 %), 2.2 (cells,
volume, calculated concentration).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.utils import timezone

from ebr.models import Equipment, Material, MaterialLot
from ebr.services import batches as batch_services
from qms.audit import create_with_reason
from qms.roles import Role
from tests.ebr.conftest import SEED, build_version, create_batch, train


@dataclass
class E2EBatch:
    batch: Any
    version: Any
    operator: Any
    verifier: Any
    supervisor: Any
    qa_reviewer: Any
    qa_approver: Any
    good_lot: Any
    expired_lot: Any
    bsc: Any


def started_batch(e2e_user) -> E2EBatch:  # type: ignore[no-untyped-def]
    """Users, resources and an effective process (all uniquely named), and a started batch on it."""
    tag = uuid.uuid4().hex[:6].upper()
    today = timezone.localdate()
    supervisor = e2e_user(Role.SUPERVISOR, full_name="Sofia Supervisor")
    qa_reviewer = e2e_user(Role.QA_REVIEWER, full_name="Quentin Reviewer")
    qa_approver = e2e_user(Role.QA_APPROVER, full_name="Claire Approver")
    operator = e2e_user(Role.OPERATOR, full_name="Olivia Operator")
    verifier = e2e_user(Role.OPERATOR, full_name="Victor Verifier")

    media = create_with_reason(Material, actor=SEED, reason="test", code=f"MED-{tag}", name="Medium", unit="mL")

    def lot(number: str, days: int) -> MaterialLot:
        return create_with_reason(MaterialLot, actor=SEED, reason="test", lot_number=number, material=media,
                                  expiry_date=today + timedelta(days=days), status="released")

    good_lot, expired_lot = lot(f"MED-{tag}-1", 100), lot(f"MED-{tag}-OLD", -1)
    bsc = create_with_reason(Equipment, actor=SEED, reason="test", code=f"BSC-{tag}", name=f"BSC {tag}",
                             equipment_type="bsc", calibration_due=today + timedelta(days=100), status="released")
    version = build_version(supervisor, qa_reviewer, qa_approver, {"media": media}, code=f"MBR-E2E-{tag}")
    train(supervisor, version, qa_approver, qa_approver)
    for person in (operator, verifier):
        train(person, version, qa_approver, supervisor)
    batch = batch_services.batch_start(actor=supervisor, batch=create_batch(supervisor, version))
    return E2EBatch(batch=batch, version=version, operator=operator, verifier=verifier, supervisor=supervisor,
                    qa_reviewer=qa_reviewer, qa_approver=qa_approver, good_lot=good_lot, expired_lot=expired_lot,
                    bsc=bsc)
