"""Building the demo facility through the services, as people would (used by `seed_demo`)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ebr import demo
from ebr.identity import mod37_2
from ebr.models import (
    Batch,
    BatchStatus,
    Equipment,
    MasterRecord,
    MasterRecordVersion,
    Material,
    MaterialLot,
    Product,
    StepStatus,
    VersionStatus,
)
from ebr.services import batches as batch_services
from ebr.services import master_records as master_services
from ebr.services.execution import entry_record, step_perform, step_verify
from qms.audit import SystemActor, create_with_reason
from qms.models import User

SEEDER = SystemActor("system:seed_demo")


def demo_coi(n: int) -> str:
    core = f"DEMO{n:04d}"
    return f"COI-{core[:4]}-{core[4:]}-{mod37_2(core)}"


def demo_din(n: int) -> str:
    number = f"W1234{timezone.localdate().year % 100:02d}{n:06d}"
    return number + mod37_2(number)


def resources_ensure() -> None:
    today = timezone.localdate()
    for code, name, kind, due_days, status in demo.EQUIPMENT:
        if not Equipment.objects.filter(code=code).exists():
            create_with_reason(Equipment, actor=SEEDER, reason="Demo facility", code=code, name=name,
                               equipment_type=kind, status=status, calibration_due=today + timedelta(days=due_days),
                               location="Cleanroom suite A")
    for code, name, unit in demo.MATERIALS:
        if not Material.objects.filter(code=code).exists():
            create_with_reason(Material, actor=SEEDER, reason="Demo facility", code=code, name=name, unit=unit)
    for lot, material, expiry_days, status in demo.LOTS:
        if not MaterialLot.objects.filter(lot_number=lot).exists():
            create_with_reason(MaterialLot, actor=SEEDER, reason="Demo facility", lot_number=lot,
                               material=Material.objects.get(code=material), status=status,
                               expiry_date=today + timedelta(days=expiry_days), supplier="Demo supplier")


def master_record_ensure(people: dict[str, tuple[User, str]]) -> MasterRecordVersion:
    existing = MasterRecordVersion.objects.filter(master_record__code=demo.MASTER_RECORD[0],
                                                  status=VersionStatus.EFFECTIVE).first()
    if existing is not None:
        return existing
    author, author_password = people["supervisor"]
    reviewer, reviewer_password = people["qa_reviewer"]
    approver, approver_password = people["qa_approver"]
    with transaction.atomic():
        product = Product.objects.filter(code=demo.PRODUCT[0]).first() or master_services.product_create(
            actor=author, code=demo.PRODUCT[0], name=demo.PRODUCT[1])
        record = MasterRecord.objects.filter(code=demo.MASTER_RECORD[0]).first()
        version = (record.versions.order_by("-version").first() if record else
                   master_services.master_record_create(actor=author, product=product, code=demo.MASTER_RECORD[0],
                                                        title=demo.MASTER_RECORD[1]))
        materials = {m.code: m for m in Material.objects.all()}
        for stage_name, steps in demo.PROCESS:
            stage = master_services.stage_add(actor=author, version=version, name=stage_name)
            for step in steps:
                spec = dict(step)
                parameters = [dict(p, material=materials[p["material"]]) if "material" in p else p
                              for p in spec.pop("parameters")]
                limits = spec.pop("instrument_limits", [])
                master_services.step_add(actor=author, stage=stage, parameters=parameters,
                                         instrument_limits=limits, **spec)
        master_services.version_submit(actor=author, version=version, password=author_password,
                                       username=author.username)
        master_services.version_review(actor=reviewer, version=version, password=reviewer_password,
                                       username=reviewer.username)
        master_services.version_approve(actor=approver, version=version, password=approver_password,
                                        username=approver.username)
        return master_services.version_make_effective(actor=approver, version=version)


def training_ensure(version: MasterRecordVersion, people: dict[str, tuple[User, str]]) -> None:
    """The QA approver (who approved the version) trains the supervisor, who trains the operators.
    Each trainer records and signs the training they gave, so that their signature confirms it and
    the operators may execute at once (nobody records their own training)."""
    from qms.services.training import training_is_current, training_record_add

    # Not before the version existed: a freshly seeded version is trained on the day it was created.
    trained_on = max(timezone.localdate() - timedelta(days=30), timezone.localdate(version.created_at))
    for key in ("supervisor", "operator", "operator2"):
        user = people[key][0]
        trainer, password = people["qa_approver" if key == "supervisor" else "supervisor"]
        if not training_is_current(user=user, document_kind="master_record",
                                   document_code=version.master_record.code, version=str(version.version)):
            training_record_add(actor=trainer, user=user, document_kind="master_record",
                                document_code=version.master_record.code, version=str(version.version),
                                trained_on=trained_on, trainer=trainer,
                                valid_until=timezone.localdate() + timedelta(days=335),
                                reason="Demo facility: initial training", password=password,
                                username=trainer.username)


def _demo_patient_ref(n: int) -> str:
    """A reference in the facility's format: its example with the last digits numbered (PT-4821
    gives PT-4801, PT-4802; HSP004821 gives HSP004801)."""
    example = settings.PATIENT_REF_EXAMPLE.strip().upper()
    return re.sub(r"\d{2}$", f"{n:02d}", example) if re.search(r"\d{2}$", example) else example


def _demo_hospital(name: str) -> str:
    """The demo's hospital where the facility lists it, else the facility's first."""
    return name if name in settings.COLLECTING_HOSPITALS else settings.COLLECTING_HOSPITALS[0]


def _batch(n: int, version: MasterRecordVersion, supervisor: User, hospital: str) -> Batch:
    coi = demo_coi(n)
    existing = Batch.objects.filter(coi=coi).first()
    if existing is not None:
        return existing
    return batch_services.batch_create(
        actor=supervisor, version=version, coi=coi, coi_confirmation=coi, din=demo_din(n),
        patient_ref=_demo_patient_ref(n), collecting_hospital=_demo_hospital(hospital),
        collected_at=timezone.now() - timedelta(hours=20))


def _execute_step(batch: Batch, values: dict[str, str], comments: dict[str, str],
                  people: dict[str, tuple[User, str]]) -> None:
    step = batch.steps.exclude(status=StepStatus.DONE).order_by("sequence").first()
    if step is None:
        return
    operator, password = people["operator"]
    if step.status == StepStatus.OPEN:
        for parameter in step.template.parameters.exclude(kind="calculated"):
            if step.entries.filter(parameter=parameter).exists():
                continue
            entry_record(actor=operator, step=step, parameter=parameter, value=values[parameter.code],
                         comment=comments.get(parameter.code, ""), idempotency_key=f"demo-{step.pk}-{parameter.pk}")
        step_perform(actor=operator, step=step, password=password, username=operator.username)
        step.refresh_from_db()
    if step.status == StepStatus.PERFORMED:
        verifier, verifier_password = people["operator2"]
        step_verify(actor=verifier, step=step, password=verifier_password, username=verifier.username)


def batches_ensure(version: MasterRecordVersion, people: dict[str, tuple[User, str]]) -> list[Batch]:
    supervisor = people["supervisor"][0]
    # Completed batch: two out-of-specification values, each opening a deviation.
    completed = _batch(1, version, supervisor, "University Hospital Haematology, Apheresis unit")
    if completed.status == BatchStatus.PLANNED:
        batch_services.custody_event_record(actor=supervisor, batch=completed, from_party="Apheresis unit",
                                            to_party="Courier (Bio-Logistics)", location="Hospital loading bay",
                                            occurred_at=timezone.now() - timedelta(hours=19),
                                            temperature_c=5, condition="sealed shipper")
        batch_services.custody_event_record(actor=supervisor, batch=completed, from_party="Courier (Bio-Logistics)",
                                            to_party="ATMP unit goods-in", location="Goods-in, ATMP unit",
                                            occurred_at=timezone.now() - timedelta(hours=17),
                                            temperature_c=6, condition="intact, logger in range")
        batch_services.batch_start(actor=supervisor, batch=completed)
    values = dict(demo.GOOD_VALUES, viability_d7="64", endotoxin="0.4", harvest_cells="430")
    comments = {"viability_d7": "Viability lower than usual, culture looked clumpy on day 6; supervisor informed.",
                "harvest_cells": "Yield below target after wash; possible loss in second wash."}
    for _ in range(completed.steps.count() * 2):
        completed.refresh_from_db()
        if completed.status != BatchStatus.IN_PROGRESS:
            break
        _execute_step(completed, values, comments, people)
    # In-progress batch: bioreactor assigned from its start, two steps done.
    running = _batch(2, version, supervisor, "Regional Cancer Centre, Cell Therapy unit")
    if running.status == BatchStatus.PLANNED:
        batch_services.custody_event_record(actor=supervisor, batch=running, from_party="Apheresis unit",
                                            to_party="ATMP unit goods-in", location="Goods-in, ATMP unit",
                                            occurred_at=timezone.now() - timedelta(hours=18), temperature_c=4)
        running = batch_services.batch_start(actor=supervisor, batch=running)
        batch_services.equipment_assign(actor=supervisor, batch=running, equipment=Equipment.objects.get(code="BR-01"),
                                        started_at=running.started_at, reason="Bioreactor reserved for the batch")
        running_values = dict(demo.GOOD_VALUES, receipt_temp="4.8")
        for _ in range(2):
            _execute_step(running, running_values, {}, people)
    return [Batch.objects.get(pk=completed.pk), Batch.objects.get(pk=running.pk)]


def facility_seed(people: dict[str, tuple[User, str]]) -> dict[str, Any]:
    resources_ensure()
    version = master_record_ensure(people)
    training_ensure(version, people)
    batches = batches_ensure(version, people)
    quality_records_ensure(people, batches)
    return {"version": version, "batches": batches, "equipment": list(Equipment.objects.order_by("code"))}


def quality_records_ensure(people: dict[str, tuple[User, str]], batches: list[Batch]) -> None:
    """A closed deviation, an open CAPA on the completed batch's deviations, a closed CAPA, an
    approved change control, and an overdue deviation and CAPA transcribed from paper records."""
    from qms.models import CapaDecision, CapaSource, ChangeControl, ChangeType, Deviation
    from qms.models.capa import Capa
    from qms.services import capa as capa_services
    from qms.services import change_control as cc_services
    from qms.services import deviations as dev_services
    from qms.subjects import Subject

    supervisor, supervisor_password = people["supervisor"]
    reviewer = people["qa_reviewer"][0]
    approver, approver_password = people["qa_approver"]
    title = "Incubator INC-02 used past its calibration due date"
    if not Deviation.objects.filter(title=title).exists():
        incubator = Equipment.objects.get(code="INC-02")
        now = timezone.now()
        with transaction.atomic():
            deviation = dev_services.deviation_open(
                actor=supervisor, title=title, occurred_at=now - timedelta(days=2),
                discovered_at=now - timedelta(days=1),
                description="INC-02 held media for 2 h on the day its calibration fell due; no batch in it.",
                immediate_actions="INC-02 blocked; media discarded.", subjects=[Subject("ebr.equipment",
                                                                                        str(incubator.pk), "INC-02")])
            dev_services.deviation_triage(actor=reviewer, deviation=deviation, classification="minor",
                                          rationale="No product exposed", severity=2, occurrence=2, detectability=2,
                                          owner=supervisor, reason="Triage")
            dev_services.deviation_investigate(
                actor=supervisor, deviation=deviation, root_cause_category="machine",
                whys=["Calibration reminder went to a shared mailbox", "Nobody owned the mailbox"],
                root_cause="Calibration reminders not assigned to a person", product_impact="None",
                subject_impacts={s.pk: ("no_impact", "Only media, discarded") for s in deviation.subjects.all()},
                reason="Investigation")
            dev_services.deviation_capa_decide(actor=supervisor, deviation=deviation,
                                               decision=CapaDecision.NOT_REQUIRED,
                                               rationale="Reminders now assigned to the metrology owner",
                                               reason="Decision")
            dev_services.deviation_submit(actor=supervisor, deviation=deviation, password=supervisor_password,
                                          username=supervisor.username, reason="Investigation complete")
            dev_services.deviation_close(actor=approver, deviation=deviation, password=approver_password,
                                         username=approver.username, reason="Investigation accepted")
    completed = batches[0]
    open_deviations = list(Deviation.objects.filter(subjects__subject_type="ebr.batch",
                                                    subjects__subject_id=str(completed.pk)).distinct())
    if open_deviations and not Capa.objects.filter(title="Low viability and yield in expansion").exists():
        with transaction.atomic():
            capa = capa_services.capa_open(
                actor=reviewer, title="Low viability and yield in expansion", source=CapaSource.DEVIATION,
                problem_statement="Day-7 viability and harvest yield below specification on the same batch.",
                deviations=open_deviations, owner=supervisor, reason="CAPA for the expansion deviations")
            capa_services.capa_action_add(actor=reviewer, capa=capa, kind="corrective",
                                          description="Review agitation profile of the expansion program",
                                          owner=supervisor, due_date=timezone.localdate() + timedelta(days=14),
                                          reason="Corrective action")
    _closed_capa_ensure(people)
    paper_records_ensure(people)
    if not ChangeControl.objects.filter(title="Replace cell counter CC-01").exists():
        with transaction.atomic():
            change = cc_services.change_control_open(
                actor=supervisor, title="Replace cell counter CC-01", change_type=ChangeType.EQUIPMENT,
                description="Replace the automated cell counter by the next model", justification="End of support",
                impact_validation="IQ/OQ/PQ of the new counter", impact_training="Operators trained on it",
                impact_documents="SOP-017 and the master record step 1.2",
                impact_ongoing_batches="None: switched between batches")
            cc_services.change_control_approve(actor=approver, change=change, password=approver_password,
                                               username=approver.username, reason="Impact assessed and acceptable")


def _closed_capa_ensure(people: dict[str, tuple[User, str]]) -> None:
    """A CAPA from an internal audit, its action done, effectiveness confirmed, closed by the QP."""
    from qms.models import CapaSource
    from qms.models.capa import Capa
    from qms.services import capa as capa_services

    title = "Gowning observations from the internal audit"
    if Capa.objects.filter(title=title).exists():
        return
    supervisor, supervisor_password = people["supervisor"]
    reviewer, reviewer_password = people["qa_reviewer"]
    approver, approver_password = people["qa_approver"]
    with transaction.atomic():
        capa = capa_services.capa_open(
            actor=reviewer, title=title, source=CapaSource.AUDIT, source_reference="Internal audit IA-03",
            problem_statement="Two gowning steps were skipped at the grade B entry during the audit.",
            owner=supervisor, reason="CAPA for the audit observations")
        action = capa_services.capa_action_add(
            actor=reviewer, capa=capa, kind="corrective", description="Retrain the cleanroom team on SOP-004",
            owner=supervisor, due_date=timezone.localdate() + timedelta(days=7), reason="Corrective action")
        capa_services.capa_action_complete(actor=supervisor, action=action, password=supervisor_password,
                                           username=supervisor.username, reason="Training done",
                                           evidence="Training records of 6 operators, SOP-004 v3")
        capa_services.capa_effectiveness_plan(actor=reviewer, capa=capa, criteria="No gowning finding in "
                                              "the next gowning qualification round",
                                              due_date=timezone.localdate(), reason="Plan")
        capa_services.capa_effectiveness_record(actor=reviewer, capa=capa, result="effective",
                                                evidence="Gowning qualification round passed without finding",
                                                password=reviewer_password, username=reviewer.username,
                                                reason="Effectiveness checked")
        capa_services.capa_close(actor=approver, capa=capa, password=approver_password, username=approver.username,
                                 reason="Actions done and effective")


# Open paper records a facility carries over at go-live; due dates already past, so they are overdue.
PAPER_DEVIATION = "PAPER-DEV-031"
PAPER_CAPA = "PAPER-CAPA-012"


def paper_records_ensure(people: dict[str, tuple[User, str]]) -> None:
    """An overdue deviation and an overdue CAPA, transcribed from paper as QA does at go-live.

    Services stamp server time and cannot be back-dated; the paper path carries historic dates
    as data (qms/services/legacy_import.py), which is how a seed can honestly show overdue work.
    """
    from qms.models import CapaSource, Deviation
    from qms.models.capa import Capa
    from qms.services.legacy_import import PaperAction, capa_import_from_paper, deviation_import_from_paper

    supervisor = people["supervisor"][0]
    reviewer = people["qa_reviewer"][0]
    today, now = timezone.localdate(), timezone.now()
    deviation = Deviation.objects.filter(paper_reference=PAPER_DEVIATION).first()
    if deviation is None:
        with transaction.atomic():
            deviation = deviation_import_from_paper(
                actor=reviewer, paper_reference=PAPER_DEVIATION,
                title="Particle count alert in grade A isolator not escalated",
                description="EM particle counter in ISO-01 reached the alert limit twice in one session; the "
                            "paper log was signed but QA was not informed until the weekly review.",
                occurred_at=now - timedelta(days=75), discovered_at=now - timedelta(days=74),
                opened_on=today - timedelta(days=73), due_date=today - timedelta(days=43),
                classification="major", classification_rationale="Grade A environment; escalation route failed",
                severity=4, occurrence=2, detectability=3, owner=supervisor,
                immediate_actions="Isolator sanitised; session's batch placed on hold pending review.",
                reason="Open paper deviation transcribed at go-live")
    if not Capa.objects.filter(paper_reference=PAPER_CAPA).exists():
        with transaction.atomic():
            capa_import_from_paper(
                actor=reviewer, paper_reference=PAPER_CAPA, title="EM alert escalation on paper logs",
                problem_statement="Alert-level particle counts on paper logs reach QA late.",
                source=CapaSource.DEVIATION, deviations=[deviation], owner=supervisor,
                opened_on=today - timedelta(days=60),
                actions=[PaperAction("corrective", "Add a QA call-out box to the EM paper log", supervisor,
                                     today - timedelta(days=20)),
                         PaperAction("preventive", "Route particle counter alerts to QA by e-mail", supervisor,
                                     today + timedelta(days=25))],
                reason="Open paper CAPA transcribed at go-live")
