"""Reporting a deviation, linking what it concerns, and QA triage with its ICH Q9 risk score."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from qms.audit import Event, SystemActor, create_with_reason, record_event, save_with_reason
from qms.conf import deviation_due_days
from qms.links import record_link
from qms.models import (
    Classification,
    Deviation,
    DeviationSource,
    DeviationStatus,
    DeviationSubject,
    User,
)
from qms.numbering import number_next
from qms.risk import risk_assess
from qms.roles import Capability, Role
from qms.services._guards import choice_required, ensure_can, locked, person_able, reason_required, text_required
from qms.services.notifications import notify, notify_all
from qms.staleness import ensure_unchanged
from qms.states import DEVIATION_STEPS, ensure_step
from qms.subjects import Subject

# Entries made on a tablet may carry a clock a little ahead of the server's.
CLOCK_SKEW = timedelta(minutes=5)


# --- reporting ------------------------------------------------------------------------------

def _ensure_may_report(actor: Any, source: str) -> None:
    if isinstance(actor, SystemActor):
        return  # a component (alarm evaluation, review) reporting on its own
    if source == DeviationSource.INSTRUMENT_ALARM and actor.is_active and actor.has_role(Role.INSTRUMENT):
        return  # an instrument account raising its own alarm
    ensure_can(actor, Capability.DEVIATION_OPEN, "report deviations")


def clean_report(*, title: str, description: str, occurred_at: Any, discovered_at: Any, source: str,
                  now: datetime) -> dict[str, Any]:
    errors: dict[str, str] = {}
    title = (title or "").strip()
    if not title:
        errors["title"] = "Give the deviation a short title."
    elif len(title) > 200:
        errors["title"] = "Keep the title to 200 characters; put details in the description."
    if not (description or "").strip():
        errors["description"] = "Describe what happened."
    for field, moment in (("occurred_at", occurred_at), ("discovered_at", discovered_at)):
        if not isinstance(moment, datetime) or timezone.is_naive(moment):
            errors[field] = "Give a date and time with its time zone."
        elif moment > now + CLOCK_SKEW:
            errors[field] = "This time is in the future."
    if "occurred_at" not in errors and "discovered_at" not in errors and discovered_at < occurred_at:
        errors["discovered_at"] = "It cannot have been discovered before it happened."
    if source not in DeviationSource.values:
        errors["source"] = f"Unknown source {source!r}."
    if errors:
        raise ValidationError(errors)
    return {"title": title, "description": description.strip()}


def clean_subjects(subjects: Iterable[Subject]) -> list[Subject]:
    unique: dict[tuple[str, str], Subject] = {}
    for subject in subjects:
        if not isinstance(subject, Subject):
            raise ValidationError({"subjects": "Subjects must be qms.subjects.Subject values."})
        subject.validate()
        unique.setdefault((subject.subject_type, str(subject.subject_id)), subject)
    return list(unique.values())


def subject_create(deviation: Deviation, subject: Subject, actor: Any, reason: str) -> DeviationSubject:
    return create_with_reason(DeviationSubject, actor=actor, reason=reason, deviation=deviation,
                              subject_type=subject.subject_type, subject_id=str(subject.subject_id),
                              label=subject.label.strip())


def _subject_data(subject: Subject) -> dict[str, str]:
    return {"type": subject.subject_type, "id": str(subject.subject_id), "label": subject.label}


@transaction.atomic
def deviation_open(*, actor: User | SystemActor, title: str, description: str, occurred_at: datetime,
                   discovered_at: datetime | None = None, immediate_actions: str = "",
                   source: str = DeviationSource.MANUAL, subjects: Iterable[Subject] = (),
                   reason: str = "") -> Deviation:
    """Report a deviation: numbered DEV-YYYY-NNNN without gaps, linked to what it concerns.

    Anyone on the floor reports what departs from approved instructions as soon as it is found
    (EU GMP Part I 1.4(xiv), 8.15); the time it happened and the time it was found are kept
    apart. Automated sources (OOS entry, instrument alarm, review flag) report the same way.
    """
    source = str(source)
    _ensure_may_report(actor, source)
    now = timezone.now()
    discovered_at = discovered_at or now
    cleaned = clean_report(title=title, description=description, occurred_at=occurred_at,
                            discovered_at=discovered_at, source=source, now=now)
    linked = clean_subjects(subjects)
    reason = (reason or "").strip() or "Deviation reported"
    deviation = create_with_reason(
        Deviation, actor=actor, reason=reason, event=Event.DEVIATION_OPENED,
        data={"source": source, "subjects": [_subject_data(s) for s in linked]},
        number=number_next("DEV"), occurred_at=occurred_at, discovered_at=discovered_at, opened_at=now,
        immediate_actions=(immediate_actions or "").strip(), source=source,
        reporter=None if isinstance(actor, SystemActor) else actor,
        reporter_label=actor.label if isinstance(actor, SystemActor) else actor.username, **cleaned)
    for subject in linked:
        subject_create(deviation, subject, actor, reason)
    _qa_tell(deviation)
    return deviation


def _qa_tell(deviation: Deviation) -> None:
    """QA sees a new deviation in its notifications (triage is its job, Part I 1.4(xiv))."""
    triagers = User.objects.filter(is_active=True, groups__name=Role.QA_REVIEWER.value).distinct()
    notify_all(users=triagers, text=f"New deviation {deviation.number} to triage: {deviation.title}",
               link=record_link("deviation", deviation.number))


@transaction.atomic
def deviation_subject_add(*, actor: User, deviation: Deviation, subject: Subject, reason: str,
                          seen: str | None = None) -> DeviationSubject:
    """Link one more batch, step, piece of equipment or material found to be concerned."""
    ensure_can(actor, Capability.DEVIATION_INVESTIGATE, "link records to deviations")
    reason = reason_required(reason)
    deviation = locked(deviation)
    ensure_unchanged(deviation, seen, again="save again")
    ensure_step(DEVIATION_STEPS, "subject_add", deviation)
    (subject,) = clean_subjects([subject])
    if deviation.subjects.filter(subject_type=subject.subject_type, subject_id=str(subject.subject_id)).exists():
        raise ValidationError({"subjects": f"{subject.label} is already linked to {deviation}."})
    linked = subject_create(deviation, subject, actor, reason)
    record_event(actor=actor, event=Event.DEVIATION_SUBJECT_LINKED, target=deviation, reason=reason,
                 data={"subject": _subject_data(subject)})
    return linked


# --- triage ---------------------------------------------------------------------------------

def _due_date(deviation: Deviation, classification: str) -> date:
    """Due date from the classification, never earlier than an extension already granted.

    A deviation transcribed from a paper record counts from the day it was opened on paper: a
    re-triage must not hand it a fresh period from the day it was typed in.
    """
    opened = deviation.paper_opened_on or timezone.localdate(deviation.opened_at)
    base = opened + timedelta(days=deviation_due_days(classification))
    extended = deviation.extensions.order_by("-granted_at", "-id").values_list("new_due_date", flat=True).first()
    return max(base, extended) if extended else base


@transaction.atomic
def deviation_triage(*, actor: User, deviation: Deviation, classification: str, rationale: str, severity: int,
                     occurrence: int, detectability: int, owner: User | None = None, reason: str,
                     seen: str | None = None) -> Deviation:
    """QA classifies the deviation (minor, major, critical) with a written rationale, scores its
    risk (ICH Q9(R1): RPN = severity x occurrence x detectability, level from qms/risk.py),
    sets the due date from the classification and names the investigation owner.

    QA may triage again before the investigation starts; the change is recorded with its reason.
    """
    ensure_can(actor, Capability.DEVIATION_TRIAGE, "triage deviations")
    reason = reason_required(reason)
    classification = choice_required(classification, Classification, "classification", "classification")
    rationale = text_required(rationale, "classification_rationale", "Write why this classification applies.")
    risk = risk_assess(severity=severity, occurrence=occurrence, detectability=detectability)
    deviation = locked(deviation)
    ensure_unchanged(deviation, seen, again="save again")  # two triagers must not overwrite each other
    ensure_step(DEVIATION_STEPS, "triage", deviation)
    owner = person_able(owner or deviation.owner or actor, Capability.DEVIATION_INVESTIGATE, "owner",
                        "investigation owner")
    previous_owner = deviation.owner_id
    deviation.status = DeviationStatus.TRIAGE
    deviation.classification, deviation.classification_rationale = classification, rationale
    deviation.severity, deviation.occurrence, deviation.detectability = severity, occurrence, detectability
    deviation.rpn, deviation.risk_level = risk.rpn, risk.level.value
    deviation.due_date = _due_date(deviation, classification)
    deviation.owner, deviation.triaged_by, deviation.triaged_at = owner, actor, timezone.now()
    save_with_reason(deviation, actor=actor, reason=reason, event=Event.DEVIATION_TRIAGED,
                     data={"rpn": risk.rpn, "risk_level": risk.level.value, "due_date": deviation.due_date})
    if owner.pk != previous_owner and owner.pk != actor.pk:
        notify(user=owner, text=f"You own the investigation of {deviation.number} ({classification}), due "
                                f"{deviation.due_date:%Y-%m-%d}: {deviation.title}",
               link=record_link("deviation", deviation.number))
    return deviation
