"""One seeded facility for the security suite: people of every role, batches in several states,
process data with an alarm, an export, a review flag, a deviation, a CAPA, a change control and
notifications, all built through the services (as the product builds them).

Built once for the whole tests/security package inside a transaction that is rolled back at the
end (conftest.py), so nothing of it is committed; each test runs in a savepoint of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson
from django.test import Client
from django.utils import timezone

from ebr.models import Alarm, Batch, Equipment, MasterRecordVersion, Material, MaterialLot, PdfExport, StepExecution
from ebr.pdf.export import pdf_export_request
from ebr.services import batches as batch_services
from ebr.services import master_records as master_services
from ebr.services.alarms import alarms_evaluate
from ebr.services.instruments import Registration, instrument_register
from nlp_review.models import BatchReview, ReviewFlag
from qms.audit import create_with_reason
from qms.models import Capa, CapaAction, ChangeControl, ChangeTask, Deviation, Notification, User
from qms.roles import Role
from qms.services import capa as capa_services
from qms.services import change_control as cc_services
from qms.services.notifications import notify
from qms.subjects import Subject
from tests.conftest import PASSWORD, SEED, person, unique
from tests.ebr.conftest import build_version, create_batch, train
from tests.ebr.process_builders import bioreactor, expansion_version, reading
from tests.ebr.test_release import run_batch
from tests.qms import quality

# Every human principal of the matrix; "nobody" is a logged-in account without any role.
HUMAN_ROLES: tuple[Role, ...] = tuple(role for role in Role if role is not Role.INSTRUMENT)


@dataclass
class World:
    people: dict[str, User]
    verifier: User
    version: MasterRecordVersion
    draft: MasterRecordVersion
    in_review: MasterRecordVersion
    approved: MasterRecordVersion
    planned: Batch
    running: Batch
    completed: Batch
    step: StepExecution
    parameter_pk: int
    process_batch: Batch
    alarm: Alarm
    registration: Registration
    other_registration: Registration
    export: PdfExport
    flag: ReviewFlag
    image: Any
    deviation: Deviation
    capa: Capa
    capa_action: CapaAction
    change: ChangeControl
    change_task: ChangeTask
    notifications: dict[str, Notification] = field(default_factory=dict)
    sessions: dict[str, str] = field(default_factory=dict)

    def person(self, role: Role | str) -> User:
        return self.people[str(role)]

    @property
    def token(self) -> str:
        return self.registration.token


def _resources() -> dict[str, Any]:
    today = timezone.localdate()
    media = create_with_reason(Material, actor=SEED, reason="test", code=unique("MED"), name="Medium", unit="mL")
    lot = create_with_reason(MaterialLot, actor=SEED, reason="test", lot_number=unique("MED"), material=media,
                             expiry_date=today + timedelta(days=100), status="released")
    bsc = create_with_reason(Equipment, actor=SEED, reason="test", code=unique("BSC"), name="BSC",
                             equipment_type="bsc", calibration_due=today + timedelta(days=100), status="released")
    return {"media": media, "lot": lot, "bsc": bsc}


def _png() -> bytes:
    """A valid 1×1 PNG, written by hand (no imaging library needed)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
            + chunk(b"IEND", b""))


def _draft(supervisor: User) -> MasterRecordVersion:
    product = master_services.product_create(actor=supervisor, code=unique("P"), name="Draft product")
    version = master_services.master_record_create(actor=supervisor, product=product, code=unique("MBR-D"),
                                                   title="Draft process")
    stage = master_services.stage_add(actor=supervisor, version=version, name="Receipt")
    master_services.step_add(actor=supervisor, stage=stage, code="1.1", title="Receive", instructions="Check.",
                             parameters=[{"code": "ok", "label": "OK", "kind": "yes_no", "expected": "yes"}])
    return version


def _process_data(who: Any, supervisor: User) -> tuple[Batch, Registration, Registration, Alarm]:
    version = expansion_version(who)
    equipment, other_equipment = bioreactor(), bioreactor()
    batch = create_batch(supervisor, version)
    batch = batch_services.batch_start(actor=supervisor, batch=batch)
    batch_services.equipment_assign(actor=supervisor, batch=batch, equipment=equipment,
                                    started_at=timezone.now() - timedelta(days=2))
    registration = instrument_register(actor=SEED, name=unique("BR-ctl"), equipment=equipment)
    other = instrument_register(actor=SEED, name=unique("BR-other"), equipment=other_equipment)
    moment = timezone.now() - timedelta(minutes=30)
    body = {"readings": [reading(i, moment + timedelta(minutes=i), "do", 90.0 if i > 2 else 50.0)
                         for i in range(1, 6)]}
    response = Client().post("/api/v1/readings", data=orjson.dumps(body), content_type="application/json",
                             HTTP_AUTHORIZATION=f"Bearer {registration.token}")
    assert response.status_code == 201, response.content
    from ebr.models import ReadingPost

    alarms_evaluate(post_id=ReadingPost.objects.filter(instrument=registration.instrument).latest("pk").pk)
    alarm = Alarm.objects.filter(batch=batch).first()
    assert alarm is not None
    return batch, registration, other, alarm


def _review_flag(batch: Batch) -> ReviewFlag:
    """A finished review with one open flag, written directly: the NLP pipeline itself (and its
    cost) is not what these tests are about, and its tests live in tests/nlp_review/."""
    review = BatchReview.objects.create(batch=batch, version=1, status="done", request_id=unique("sec"),
                                        requested_by_label="system:tests", finished_at=timezone.now(),
                                        major_count=1)
    step = batch.steps.order_by("sequence").first()
    text = "Glove torn during transfer, changed gloves."
    return ReviewFlag.objects.create(review=review, batch=batch, step=step, source_kind="entry_comment",
                                     source_text=text, category="contamination", severity="major", start=0, end=10,
                                     evidence="Glove torn", rule="security-test", rule_version="1")


def build_world() -> World:
    people = {role.value: person(role, f"{role.value.replace('_', ' ').title()} Person") for role in HUMAN_ROLES}
    people["nobody"] = person(None, "Nora Nobody")
    verifier = person(Role.OPERATOR, "Victor Verifier")
    supervisor, reviewer, approver = people["supervisor"], people["qa_reviewer"], people["qa_approver"]
    operator, auditor = people["operator"], people["auditor"]

    resources = _resources()
    version = build_version(supervisor, reviewer, approver, resources, code=unique("MBR-SEC"))
    for trainee in (operator, verifier):
        train(trainee, version, approver, supervisor)
    train(supervisor, version, approver, reviewer)

    planned = create_batch(supervisor, version)
    running = batch_services.batch_start(actor=supervisor, batch=create_batch(supervisor, version))
    step = running.steps.order_by("sequence").first()
    parameter_pk = step.template.parameters.exclude(kind="calculated").first().pk
    started = batch_services.batch_start(actor=supervisor, batch=create_batch(supervisor, version))
    completed = run_batch(started, operator, verifier,
                          values={"bsc": resources["bsc"].code, "medium": resources["lot"].lot_number},
                          comments={"temp": "Glove torn during transfer, changed gloves."})
    flag = _review_flag(completed)

    draft = _draft(supervisor)
    image = master_services.instruction_image_add(actor=supervisor, step=draft.stages.first().steps.first(),
                                                  content=_png(), caption="The label")
    in_review = _draft(supervisor)
    master_services.version_submit(actor=supervisor, version=in_review, password=PASSWORD,
                                   username=supervisor.username)
    in_review.refresh_from_db()
    approved = _draft(supervisor)
    master_services.version_submit(actor=supervisor, version=approved, password=PASSWORD,
                                   username=supervisor.username)
    master_services.version_review(actor=reviewer, version=approved, password=PASSWORD, username=reviewer.username)
    master_services.version_approve(actor=approver, version=approved, password=PASSWORD, username=approver.username)
    approved.refresh_from_db()

    who = type("Who", (), {"supervisor": supervisor, "qa_reviewer": reviewer, "qa_approver": approver,
                           "operator": operator, "auditor": auditor})()
    process_batch, registration, other, alarm = _process_data(who, supervisor)
    export = pdf_export_request(actor=auditor, batch=running)

    deviation = quality.deviation(operator, subjects=[Subject("ebr.batch", str(running.pk), running.number)])
    capa = quality.capa(reviewer, owner=reviewer)
    capa_action = capa_services.capa_action_add(actor=reviewer, capa=capa, kind="corrective",
                                                description="Fit door alarms", owner=operator,
                                                due_date=quality.in_days(30), reason="Plan")
    change = quality.change(supervisor)
    change_task = cc_services.change_control_task_add(actor=supervisor, change=change, description="IQ/OQ",
                                                      owner=operator, due_date=quality.in_days(30), reason="Plan")
    notifications = {name: notify(user=people[name], text=f"Private note for {name}",
                                  link=f"/batches/{running.number}/", email=False)
                     for name in ("operator", "auditor")}
    world = World(people=people, verifier=verifier, version=version, draft=draft, in_review=in_review,
                 approved=approved, planned=planned, running=running, completed=completed, step=step,
                 parameter_pk=parameter_pk, process_batch=process_batch, alarm=alarm, registration=registration,
                 other_registration=other, export=export, flag=flag, image=image, deviation=deviation, capa=capa,
                 capa_action=capa_action, change=change, change_task=change_task, notifications=notifications)
    world.sessions = sessions_open(world)
    return world


# Models that must not change when a request is refused. The audit trail records every GxP
# change; the others are side effects that are not all audited (outbox, exports, notifications).
def snapshot() -> tuple[int, ...]:
    from django.db import connection

    from ebr.models import Reading
    from qms.models import AuditEvent, OutboxMessage, Signature

    counts = [f"(SELECT COUNT(*) FROM {model._meta.db_table})"
              for model in (AuditEvent, Signature, OutboxMessage, PdfExport, Reading)]
    counts.append(f"(SELECT COUNT(*) FROM {Notification._meta.db_table} WHERE read_at IS NULL)")
    counts.append(f"(SELECT COUNT(*) FROM {User._meta.db_table} WHERE is_active)")
    with connection.cursor() as cursor:  # one round trip: this runs twice per request checked
        cursor.execute("SELECT " + ", ".join(counts))
        return tuple(cursor.fetchone())


def sessions_open(world: World) -> dict[str, str]:
    """A logged-in session per person, made once: logging in is itself audited, and costs."""
    opened = {}
    for name, user in world.people.items():
        client = Client()
        client.force_login(user)
        opened[name] = client.cookies["sessionid"].value
    return opened
