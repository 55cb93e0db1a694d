"""Builders for process-data tests: an effective master record with instrument limits, a running
batch with a bioreactor assigned, an instrument and its token.

All names are unique, so the same builders serve tests that roll back and tests that commit
(`committed` fixture: append-only tables cannot be emptied between tests).
"""

from __future__ import annotations

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
from qms.audit import create_with_reason
from qms.models import User
from qms.roles import Role
from tests.conftest import PASSWORD, SEED, person, unique
from tests.ebr.conftest import a_din

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


class LiveServer:
    """The application in its own process (runserver or gunicorn) on a free port, against the test
    database; readings posted to it are committed, as in production."""

    def __init__(self, log: Any, *, broker_url: str | None = None, gunicorn_workers: int = 0,
                 extra_env: dict[str, str] | None = None) -> None:
        import os
        import subprocess
        import sys

        from django.conf import settings

        from ebr.localservices import _free_port
        from tests.conftest import ROOT, database_url

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "DATABASE_URL": database_url(), "CELERY_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE,
               "DJANGO_DEBUG": "false", **(extra_env or {})}
        if broker_url:
            env["REDIS_URL"] = broker_url
        if gunicorn_workers:  # the production configuration (deploy/gunicorn.conf.py), on this port
            env.update({"GUNICORN_BIND": f"127.0.0.1:{self.port}", "GUNICORN_WORKERS": str(gunicorn_workers),
                        "LOG_LEVEL": "WARNING"})
            command = [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "ebr.wsgi:application"]
        else:
            command = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{self.port}", "--noreload",
                       "--skip-checks"]
        self.log = log
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)

    def wait_ready(self, seconds: float = 60) -> LiveServer:
        import time
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{self.url}/login/", timeout=2)  # noqa: S310
                return self
            except urllib.error.HTTPError:
                return self
            except OSError:
                time.sleep(0.3)
        raise TimeoutError(f"server not ready: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        from tests.conftest import process_stop

        process_stop(self.process)
