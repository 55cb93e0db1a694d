"""Helpers for the quality-system tests: a deviation, CAPA or change control in a given state."""

from __future__ import annotations

from datetime import date, timedelta

from django.utils import timezone

from qms.models import CapaDecision, CapaSource, ChangeType
from qms.services import capa as capa_services
from qms.services import change_control as cc_services
from qms.services import deviations as dev_services
from qms.subjects import Subject
from tests.conftest import PASSWORD

# Ids far above any real row: tests that commit (real workers) create real batches that must
# never be mistaken for these stand-ins.
BATCH = Subject("ebr.batch", "900012", "B-2026-0003")
STEP = Subject("ebr.stepexecution", "900055", "B-2026-0003 step 4.2")


def in_days(days: int) -> date:
    return timezone.localdate() + timedelta(days=days)


def deviation(reporter, *, title: str = "Incubator door left ajar", subjects=(BATCH, STEP), **extra):  # type: ignore[no-untyped-def]
    now = timezone.now()
    return dev_services.deviation_open(
        actor=reporter, title=title, description="The incubator door was found ajar during the 10:00 round.",
        occurred_at=extra.pop("occurred_at", now - timedelta(hours=2)),
        discovered_at=extra.pop("discovered_at", now - timedelta(hours=1)),
        immediate_actions="Door closed, temperature checked", subjects=list(subjects), **extra)


def triage(deviation_, qa, *, owner, classification: str = "major", scores=(4, 2, 3)):  # type: ignore[no-untyped-def]
    severity, occurrence, detectability = scores
    return dev_services.deviation_triage(
        actor=qa, deviation=deviation_, classification=classification, rationale="Open door: possible excursion",
        severity=severity, occurrence=occurrence, detectability=detectability, owner=owner, reason="Triage")


def investigate(deviation_, investigator):  # type: ignore[no-untyped-def]
    impacts = {s.pk: ("no_impact", "Temperature stayed within 36.5-37.5 °C") for s in deviation_.subjects.all()}
    return dev_services.deviation_investigate(
        actor=investigator, deviation=deviation_, root_cause_category="people",
        whys=["The door did not latch", "The operator was interrupted", "Phone call during the round"],
        root_cause="Interrupted round, door not checked", product_impact="None: temperature within limits",
        subject_impacts=impacts, reason="Investigation")


def decide_no_capa(deviation_, investigator):  # type: ignore[no-untyped-def]
    return dev_services.deviation_capa_decide(actor=investigator, deviation=deviation_,
                                              decision=CapaDecision.NOT_REQUIRED,
                                              rationale="Isolated event, retraining done", reason="Decision")


def submit(deviation_, investigator):  # type: ignore[no-untyped-def]
    return dev_services.deviation_submit(actor=investigator, deviation=deviation_, password=PASSWORD,
                                         username=investigator.username, reason="Investigation complete")


def pending_approval(reporter, qa, investigator, **extra):  # type: ignore[no-untyped-def]
    opened = deviation(reporter, **extra)
    triage(opened, qa, owner=investigator)
    investigate(opened, investigator)
    decide_no_capa(opened, investigator)
    return submit(opened, investigator)


def capa(qa, *, deviations=(), owner=None, source: str = CapaSource.AUDIT, **extra):  # type: ignore[no-untyped-def]
    return capa_services.capa_open(actor=qa, title=extra.pop("title", "Door alarm on incubators"),
                                   problem_statement="Incubator doors are left ajar", source=source,
                                   source_reference=extra.pop("source_reference", "AUD-2026-04"),
                                   deviations=list(deviations), owner=owner, **extra)


def change(author, **extra):  # type: ignore[no-untyped-def]
    fields = {"title": "New cell counter", "change_type": ChangeType.EQUIPMENT,
              "description": "Replace the NC-200 by the NC-250", "justification": "End of support",
              "impact_validation": "IQ/OQ of the new counter", "impact_training": "Operators trained on NC-250",
              "impact_documents": "SOP-017 v4", "impact_ongoing_batches": "None: switch between batches"}
    fields.update(extra)
    return cc_services.change_control_open(actor=author, **fields)
