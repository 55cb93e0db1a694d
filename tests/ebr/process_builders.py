"""Builders for process-data tests: an effective master record with instrument limits, a running
batch with a bioreactor assigned, an instrument and its token.

All names are unique, so the same builders serve tests that roll back and tests that commit
(`committed` fixture: append-only tables cannot be emptied between tests).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

from django.utils import timezone

from ebr.identity import coi_generate
from ebr.models import Batch, Equipment, MasterRecordVersion
from ebr.services import batches as batch_services
from ebr.services import master_records as master_services
from ebr.services.instruments import Registration, instrument_register
from qms.audit import SystemActor, create_with_reason
from qms.models import User
from qms.roles import Role
from qms.services.users import user_create
from tests.conftest import PASSWORD
from tests.ebr.conftest import a_din

SEED = SystemActor("system:tests")

EXPANSION_LIMITS: list[dict[str, Any]] = [
    {"parameter": "ph", "alert_low": D("6.90"), "alert_high": D("7.50"), "action_low": D("6.80"),
     "action_high": D("7.60"), "critical": True},
    {"parameter": "do", "alert_low": D("30"), "alert_high": D("70"), "action_low": D("20"), "action_high": D("80")},
    {"parameter": "temp", "alert_low": D("36.5"), "alert_high": D("37.5"), "action_low": D("36.0"),
     "action_high": D("38.0"), "critical": True},
]
# Limits of the first step: different, so tests can tell which step's limits applied.
RECEIPT_LIMITS: list[dict[str, Any]] = [
    {"parameter": "ph", "alert_low": D("7.00"), "alert_high": D("7.40"), "action_low": D("6.95"),
     "action_high": D("7.45"), "critical": False},
]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def person(role: Role, name: str) -> User:
    username = unique(role.value)
    return user_create(actor=SEED, username=username, full_name=name, password=PASSWORD, roles=[role])


@dataclass
class People:
    supervisor: User
    qa_reviewer: User
    qa_approver: User
    operator: User
    auditor: User


def people() -> People:
    return People(person(Role.SUPERVISOR, "Sofia Supervisor"), person(Role.QA_REVIEWER, "Quentin Reviewer"),
                  person(Role.QA_APPROVER, "Claire Approver"), person(Role.OPERATOR, "Olivia Operator"),
                  person(Role.AUDITOR, "Arthur Auditor"))


def expansion_version(who: People, *, receipt_limits: bool = False) -> MasterRecordVersion:
    """1.1 receipt (optionally with its own pH limits), 2.1 expansion in the bioreactor with limits."""
    code = unique("MBR-PD")
    product = master_services.product_create(actor=who.supervisor, code=unique("P"), name="Test CAR-T")
    version = master_services.master_record_create(actor=who.supervisor, product=product, code=code,
                                                   title="Process-data test process")
    receipt = master_services.stage_add(actor=who.supervisor, version=version, name="Receipt")
    master_services.step_add(
        actor=who.supervisor, stage=receipt, code="1.1", title="Receive", instructions="Check the bag.",
        parameters=[{"code": "bag_ok", "label": "Bag intact", "kind": "yes_no", "expected": "yes"}],
        instrument_limits=RECEIPT_LIMITS if receipt_limits else [])
    expansion = master_services.stage_add(actor=who.supervisor, version=version, name="Expansion")
    master_services.step_add(
        actor=who.supervisor, stage=expansion, code="2.1", title="Expand in the bioreactor", instructions="Run.",
        equipment_type="bioreactor", instrument_limits=EXPANSION_LIMITS,
        parameters=[{"code": "bioreactor", "label": "Bioreactor", "kind": "equipment_id"}])
    master_services.version_submit(actor=who.supervisor, version=version, password=PASSWORD,
                                   username=who.supervisor.username)
    master_services.version_review(actor=who.qa_reviewer, version=version, password=PASSWORD,
                                   username=who.qa_reviewer.username)
    master_services.version_approve(actor=who.qa_approver, version=version, password=PASSWORD,
                                     username=who.qa_approver.username)
    return master_services.version_make_effective(actor=who.qa_approver, version=version)


def bioreactor() -> Equipment:
    return create_with_reason(Equipment, actor=SEED, reason="test", code=unique("BR"), name="Bioreactor",
                              equipment_type="bioreactor", calibration_due=timezone.localdate() + timedelta(days=90))


def running_batch(who: People, version: MasterRecordVersion, equipment: Equipment | None,
                  assigned_since: timedelta = timedelta(days=2)) -> Batch:
    coi = coi_generate()
    batch = batch_services.batch_create(
        actor=who.supervisor, version=version, coi=coi, coi_confirmation=coi, din=a_din(), patient_ref="PT-0042",
        collecting_hospital="City Hospital", collected_at=timezone.now() - timedelta(days=3))
    batch = batch_services.batch_start(actor=who.supervisor, batch=batch)
    if equipment is not None:
        batch_services.equipment_assign(actor=who.supervisor, batch=batch, equipment=equipment,
                                        started_at=timezone.now() - assigned_since)
    return batch


@dataclass
class Plant:
    """Everything a process-data test needs."""

    who: People
    version: MasterRecordVersion
    equipment: Equipment
    batch: Batch
    registration: Registration

    @property
    def instrument(self) -> Any:
        return self.registration.instrument

    @property
    def token(self) -> str:
        return self.registration.token

    @property
    def auth(self) -> dict[str, str]:
        return {"HTTP_AUTHORIZATION": f"Bearer {self.token}"}


def plant(*, receipt_limits: bool = False) -> Plant:
    who = people()
    version = expansion_version(who, receipt_limits=receipt_limits)
    equipment = bioreactor()
    batch = running_batch(who, version, equipment)
    registration = instrument_register(actor=SEED, name=unique("BR-ctl"), equipment=equipment)
    return Plant(who, version, equipment, batch, registration)


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def reading(seq: int, ts: datetime, parameter: str = "ph", value: float = 7.1, unit: str | None = None
            ) -> dict[str, Any]:
    units = {"ph": "[pH]", "do": "%", "temp": "Cel", "vcd": "10*6/mL", "glucose": "g/L"}
    return {"seq": seq, "ts": stamp(ts), "parameter": parameter, "value": value, "unit": unit or units[parameter]}
