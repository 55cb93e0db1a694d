"""Transcribing open paper deviations and CAPAs into the system at go-live (legacy paper records).

A hospital QA team that moves from paper to this system carries its open paper records over:
each is transcribed by QA with the dates written on the paper (occurred, discovered, opened on
paper, due) as data, and is flagged "transcribed from paper record <reference>" on every list,
page, CSV and PDF. What the system itself attests keeps server time: `opened_at` and the audit
entry (who transcribed it, when, from which paper reference, why) are stamped now, never
back-dated (21 CFR 11.10(e); ALCOA+ contemporaneous). A paper due date already past makes the
record overdue at once, so the dashboard and the reminders pick it up like any other.

Numbering: a transcribed record takes the next DEV/CAPA number of the *import* year (the
server's), from the same gap-free counter as every other record. A paper year would re-open a
register that may already have been reviewed as complete and would suggest the electronic
record existed then; the paper reference and dates carry the history instead.

Refused (nothing is written, no number is used): a missing or duplicate paper reference, a
historic date in the future, a due date before the paper opening date, and the usual checks of
the record's own fields (owner able to do the work, classification, ICH Q9 scores).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from qms.audit import Event, create_with_reason
from qms.links import record_link
from qms.models import (
    Capa,
    CapaActionKind,
    Classification,
    Deviation,
    DeviationSource,
    DeviationStatus,
    User,
)
from qms.numbering import number_next
from qms.risk import risk_assess
from qms.roles import Capability
from qms.services._guards import choice_required, created_once, ensure_can, person_able, reason_required, text_required
from qms.services.capa import action_record, deviation_link_record
from qms.services.capa_rules import capa_fields_clean
from qms.services.deviations.reporting import clean_report, clean_subjects, subject_create
from qms.services.notifications import notify
from qms.subjects import Subject

REFERENCE_MAX = 60
T = TypeVar("T")


@dataclass(frozen=True)
class PaperAction:
    """One corrective or preventive action as written on a paper CAPA."""

    kind: str
    description: str
    owner: User
    due_date: date


# --- guards ---------------------------------------------------------------------------------

def _reference(paper_reference: str | None, model: type[Deviation] | type[Capa], what: str) -> str:
    reference = (paper_reference or "").strip()
    if not reference:
        raise ValidationError({"paper_reference": f"Give the reference of the paper {what} being transcribed."})
    if len(reference) > REFERENCE_MAX:
        raise ValidationError({"paper_reference": f"Keep the paper reference to {REFERENCE_MAX} characters."})
    existing = model._default_manager.filter(paper_reference__iexact=reference).first()
    if existing is not None:
        raise ValidationError({"paper_reference": f"Paper record {reference} was already transcribed as {existing}."})
    return reference


def _day_past(value: Any, field: str, what: str, today: date) -> date:
    if not isinstance(value, date) or isinstance(value, datetime):
        raise ValidationError({field: f"Give the {what} as a date."})
    if value > today:
        raise ValidationError({field: f"The {what} is in the future: a paper record can only tell the past."})
    return value


def _due_from_paper(due_date: Any, opened_on: date, field: str = "due_date") -> date:
    if not isinstance(due_date, date) or isinstance(due_date, datetime):
        raise ValidationError({field: "Give the due date written on the paper record."})
    if due_date < opened_on:
        raise ValidationError({field: f"The due date {due_date:%Y-%m-%d} is before the record was opened on "
                                      f"paper ({opened_on:%Y-%m-%d})."})
    return due_date


def _unique(create: Callable[[], T], constraint: str, reference: str) -> T:
    """A concurrent duplicate gets the same refusal as a sequential one. The savepoint takes the
    number back with the refused insert, so no number is lost (the unique index makes the second
    transcriber wait for the first)."""
    return created_once(create, constraint, ValidationError(
        {"paper_reference": f"Paper record {reference} was already transcribed."}))


def _paper_data(reference: str, opened_on: date, due_date: date | None, source_file: str) -> dict[str, Any]:
    return {"paper_reference": reference, "paper_opened_on": opened_on, "paper_due_date": due_date,
            **({"source_file": source_file} if source_file else {})}


# --- deviations -----------------------------------------------------------------------------

@transaction.atomic
def deviation_import_from_paper(
        *, actor: User, paper_reference: str, title: str, description: str, occurred_at: datetime,
        discovered_at: datetime, opened_on: date, due_date: date, classification: str,
        classification_rationale: str, severity: int, occurrence: int, detectability: int, owner: User,
        immediate_actions: str = "", subjects: Iterable[Subject] = (), reason: str,
        source_file: str = "") -> Deviation:
    """Transcribe one open, already classified paper deviation: numbered DEV-<import year>-NNNN,
    triaged (classification, ICH Q9 scores and due date as on paper), owned, flagged as
    transcribed; overdue at once when its paper due date has passed."""
    ensure_can(actor, Capability.PAPER_RECORD_IMPORT, "transcribe paper records")
    reference = _reference(paper_reference, Deviation, "deviation")
    return _unique(lambda: _deviation_create(
        actor=actor, reference=reference, title=title, description=description, occurred_at=occurred_at,
        discovered_at=discovered_at, opened_on=opened_on, due_date=due_date, classification=classification,
        rationale=classification_rationale, scores=(severity, occurrence, detectability), owner=owner,
        immediate_actions=immediate_actions, subjects=list(subjects), reason=reason, source_file=source_file),
        "deviation_paper_reference_unique", reference)


def _deviation_facts(*, title: str, description: str, occurred_at: Any, discovered_at: Any, opened_on: Any,
                     due_date: Any) -> dict[str, Any]:
    # The rules of any deviation report first (title, description, times), then the paper's own.
    report = clean_report(title=title, description=description, occurred_at=occurred_at,
                          discovered_at=discovered_at, source=DeviationSource.PAPER_RECORD, now=timezone.now())
    opened_on = _day_past(opened_on, "opened_on", "date it was opened on paper", timezone.localdate())
    if opened_on < timezone.localdate(discovered_at):
        raise ValidationError({"opened_on": "It cannot have been opened on paper before it was discovered."})
    return {**report, "occurred_at": occurred_at, "discovered_at": discovered_at, "paper_opened_on": opened_on,
            "due_date": _due_from_paper(due_date, opened_on)}


@transaction.atomic
def _deviation_create(*, actor: User, reference: str, title: str, description: str, occurred_at: Any,
                      discovered_at: Any, opened_on: Any, due_date: Any, classification: str, rationale: str,
                      scores: tuple[int, int, int], owner: User, immediate_actions: str, subjects: list[Subject],
                      reason: str, source_file: str) -> Deviation:
    facts = _deviation_facts(title=title, description=description, occurred_at=occurred_at,
                             discovered_at=discovered_at, opened_on=opened_on, due_date=due_date)
    reason = reason_required(reason)
    classification = choice_required(classification, Classification, "classification", "classification")
    rationale = text_required(rationale, "classification_rationale", "Copy the classification rationale.")
    risk = risk_assess(severity=scores[0], occurrence=scores[1], detectability=scores[2])
    owner = person_able(owner, Capability.DEVIATION_INVESTIGATE, "owner", "investigation owner")
    subjects = clean_subjects(subjects)
    deviation = create_with_reason(
        Deviation, actor=actor, reason=reason, event=Event.DEVIATION_TRANSCRIBED,
        data=_paper_data(reference, facts["paper_opened_on"], facts["due_date"], source_file),
        number=number_next("DEV"), opened_at=timezone.now(), paper_reference=reference,
        immediate_actions=(immediate_actions or "").strip(), source=DeviationSource.PAPER_RECORD,
        reporter=actor, reporter_label=actor.username, status=DeviationStatus.TRIAGE, owner=owner,
        classification=classification, classification_rationale=rationale, severity=scores[0],
        occurrence=scores[1], detectability=scores[2], rpn=risk.rpn, risk_level=risk.level.value, **facts)
    for subject in subjects:
        subject_create(deviation, subject, actor, reason)
    notify(user=owner, text=f"You own the investigation of {deviation.number} ({deviation.transcribed_from}), "
                            f"due {deviation.due_date:%Y-%m-%d}: {deviation.title}",
           link=record_link("deviation", deviation.number))
    return deviation


# --- CAPA -----------------------------------------------------------------------------------

@transaction.atomic
def capa_import_from_paper(
        *, actor: User, paper_reference: str, title: str, problem_statement: str, source: str,
        source_reference: str = "", deviations: Iterable[Deviation] = (), owner: User, opened_on: date,
        actions: Sequence[PaperAction], effectiveness_criteria: str = "", effectiveness_due: date | None = None,
        reason: str, source_file: str = "") -> Capa:
    """Transcribe one open paper CAPA with its open actions (owner and due date as on paper):
    numbered CAPA-<import year>-NNNN, flagged as transcribed; an action whose paper due date
    has passed is overdue at once."""
    ensure_can(actor, Capability.PAPER_RECORD_IMPORT, "transcribe paper records")
    reference = _reference(paper_reference, Capa, "CAPA")
    return _unique(lambda: _capa_create(
        actor=actor, reference=reference, title=title, problem_statement=problem_statement, source=source,
        source_reference=source_reference, deviations=list({d.pk: d for d in deviations}.values()), owner=owner,
        opened_on=opened_on, actions=list(actions), effectiveness_criteria=effectiveness_criteria,
        effectiveness_due=effectiveness_due, reason=reason, source_file=source_file),
        "capa_paper_reference_unique", reference)


def _capa_checks(*, title: str, problem_statement: str, source: str, deviations: list[Deviation], opened_on: Any,
                 actions: list[PaperAction], effectiveness_due: date | None) -> tuple[str, date]:
    # The rules of any CAPA first; a cancelled deviation is refused when it is linked (deviation_link_record).
    title, _ = capa_fields_clean(title=title, problem_statement=problem_statement, source=source,
                                 deviations=deviations)
    opened_on = _day_past(opened_on, "opened_on", "date it was opened on paper", timezone.localdate())
    if not actions:
        raise ValidationError({"actions": "Transcribe at least one open action of the paper CAPA."})
    for number, action in enumerate(actions, start=1):
        choice_required(action.kind, CapaActionKind, "actions", f"kind of action {number}")
        text_required(action.description, "actions", f"Describe action {number}.")
        person_able(action.owner, Capability.CAPA_ACTION_COMPLETE, "actions", f"owner of action {number}")
        _due_from_paper(action.due_date, opened_on, "actions")
    if effectiveness_due is not None:
        _due_from_paper(effectiveness_due, opened_on, "effectiveness_due")
    return title, opened_on


@transaction.atomic
def _capa_create(*, actor: User, reference: str, title: str, problem_statement: str, source: str,
                 source_reference: str, deviations: list[Deviation], owner: User, opened_on: Any,
                 actions: list[PaperAction], effectiveness_criteria: str, effectiveness_due: date | None,
                 reason: str, source_file: str) -> Capa:
    title, opened_on = _capa_checks(title=title, problem_statement=problem_statement, source=source,
                                    deviations=deviations, opened_on=opened_on, actions=actions,
                                    effectiveness_due=effectiveness_due)
    reason = reason_required(reason)
    owner = person_able(owner, Capability.CAPA_ACTION_COMPLETE, "owner", "CAPA owner")
    capa = create_with_reason(
        Capa, actor=actor, reason=reason, event=Event.CAPA_TRANSCRIBED,
        data={**_paper_data(reference, opened_on, None, source_file), "deviations": [d.number for d in deviations]},
        number=number_next("CAPA"), title=title, problem_statement=problem_statement.strip(), source=source,
        source_reference=(source_reference or "").strip(), owner=owner, opened_by=actor, opened_at=timezone.now(),
        paper_reference=reference, paper_opened_on=opened_on,
        effectiveness_criteria=(effectiveness_criteria or "").strip(), effectiveness_due=effectiveness_due)
    for deviation in deviations:
        deviation_link_record(capa, deviation, actor, reason)
    for sequence, action in enumerate(actions, start=1):
        action_record(capa=capa, sequence=sequence, kind=action.kind, description=action.description.strip(),
                      owner=action.owner, due_date=action.due_date, actor=actor, reason=reason)
    return capa
