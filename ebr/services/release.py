"""QA review, audit-trail review and release or rejection of a completed batch.

EU GMP Annex 16 (certification by a Qualified Person), draft Annex 11 (audit-trail review
before release), 21 CFR 11.10(e)/11.70 (no release on a signature whose record changed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Max, Q, QuerySet

from ebr.models import Alarm, Batch, BatchStatus
from ebr.process_data import (
    EVALUATION_ATTEMPTS,
    alarm_changes_recorded,
    alarms_changed_since,
    alarms_unacknowledged,
    evaluation_waiting,
    readings_received_after,
)
from ebr.review_hooks import record_review
from ebr.selectors import batch_audit_events, batch_executors
from ebr.services.batches import _transition
from qms.audit import Event, record_event
from qms.models import AuditEvent, Signature, User
from qms.roles import Capability, can
from qms.signatures import Meaning, ensure_releaser_not_executor, format_local, sign, signature_is_valid


def _locked(batch: Batch) -> Batch:
    return Batch.objects.select_for_update().select_related("master_version__master_record").get(pk=batch.pk)


@transaction.atomic
def batch_review_start(*, actor: User, batch: Batch, reason: str = "QA review started") -> Batch:
    """QA takes a completed record into review; from here on it is read-only for production."""
    if not can(actor, Capability.REVIEW_QUEUE):
        raise PermissionDenied("Only QA reviews batch records.")
    return _transition(_locked(batch), BatchStatus.IN_REVIEW, actor=actor, reason=reason,
                       event=Event.BATCH_REVIEW_STARTED)


def batch_signatures(batch: Batch) -> list[Signature]:
    """Every signature on the batch and on its steps."""
    step_ids = [str(pk) for pk in batch.steps.values_list("pk", flat=True)]
    return list(Signature.objects.filter(target_type="ebr.stepexecution", target_id__in=step_ids)) + list(
        Signature.objects.filter(target_type="ebr.batch", target_id=str(batch.pk)))


# --- the audit trail as a page showed it ---------------------------------------------------------

@dataclass(frozen=True)
class TrailMarker:
    """The batch's audit trail as a page showed it: how many entries it held, and the newest.

    A count, not a time: an entry saved before the page was read but committed after it is caught
    too, whatever the clocks of the processes. The newest id catches an entry that joins as
    another leaves (a part re-linked), which a count alone would miss. What it catches is what was
    committed by the time the signature's transaction reads the trail: deviation, flag and CAPA
    work does not lock the batch, so an entry committed just after a release is a change after the
    release (it stands in the trail after the release entry, for whoever reads it), never one the
    release silently covered.
    """

    entries: int
    last: int

    def __str__(self) -> str:  # the pages' hidden field
        return f"{self.entries}:{self.last}"

    @classmethod
    def parse(cls, text: str) -> TrailMarker | None:
        entries, colon, last = text.partition(":")
        if not (colon and entries.isascii() and entries.isdigit() and last.isascii() and last.isdigit()):
            return None
        return cls(int(entries), int(last))


# Entries that look at the record or decide on it without changing it: an audit-trail review's own
# signature and event, the release or rejection with its signature, a refused attempt to sign one of
# them (kept by 21 CFR 11.300(d), so that a mistyped password is not a change), and exports (reads,
# ebr/pdf/audit.py), and the notice to QA that the record awaits review (a message sent, which can
# come late after a broker outage). A CAPA's own work is shown in the trail but not counted: one CAPA
# serves deviations of many batches and runs for months, and its actions for another batch are no
# change to this record (this batch's deviation records its CAPA decision and link itself).
# Everything else in the trail is a change the review must have seen.
_DECISIONS = [Meaning.REVIEWED.value, Meaning.RELEASED.value, Meaning.REJECTED.value]
_NOT_CHANGES = Q(target_type="ebr.batch") & (
    Q(event_type__in=[Event.AUDIT_TRAIL_REVIEWED, Event.BATCH_RELEASED, Event.BATCH_REJECTED, Event.EXPORT_CREATED,
                      Event.QA_NOTIFIED])
    | Q(event_type__in=[Event.SIGNATURE_APPLIED, Event.SIGNATURE_REFUSED], data__meaning__in=_DECISIONS)
) | Q(target_type__in=["qms.capa", "qms.capaaction", "qms.capaeffectivenesscheck"])


def _trail_changes(batch: Batch) -> QuerySet[AuditEvent]:
    """The entries of the batch's audit trail (the set its page shows) that change the record."""
    return batch_audit_events(batch).exclude(_NOT_CHANGES)


def audit_trail_marker(batch: Batch, *, before: int | None = None) -> TrailMarker:
    """The batch's audit trail as it is now (or as it was before the entry `before`), to be carried
    by a page and compared when QA signs."""
    changes = _trail_changes(batch) if before is None else _trail_changes(batch).filter(id__lt=before)
    counted = changes.order_by().aggregate(entries=Count("id"), last=Max("id"))
    return TrailMarker(counted["entries"], counted["last"] or 0)


def _decision_event(batch: Batch) -> int | None:
    """The release or rejection of a decided batch: its review is judged on the record as it was
    decided on, not on the hand-offs to the ward recorded since (they change no signed content)."""
    if batch.status not in (BatchStatus.RELEASED, BatchStatus.REJECTED):
        return None
    return (AuditEvent.objects.filter(target_type="ebr.batch", target_id=str(batch.pk),
                                      event_type__in=[Event.BATCH_RELEASED, Event.BATCH_REJECTED])
            .order_by("id").values_list("id", flat=True).first())


# What a record's changes are called where QA reads them (others: the model's own name).
_RECORD_WORDS = {"ebr.stepexecution": "step", "ebr.alarm": "process alarm", "ebr.readingpost": "instrument post",
                 "qms.deviationsubject": "impact assessment", "nlp_review.batchreview": "record review",
                 "qms.capaaction": "CAPA action", "qms.capaeffectivenesscheck": "CAPA effectiveness check",
                 "qms.capadeviation": "CAPA link"}


def _record_words(target_type: str, label: str) -> str:
    try:
        kind = _RECORD_WORDS.get(target_type) or str(apps.get_model(target_type)._meta.verbose_name)
    except (LookupError, ValueError):
        kind = target_type
    return f"{kind} {label[:60]}".strip()


def _trail_added(batch: Batch, seen: TrailMarker, now: TrailMarker) -> tuple[int, str]:
    """How many entries joined the trail since `seen`, and on which records ("deviation DEV-…,
    review flag …"). The records named are those of the entries newer than the newest one seen; an
    entry committed late (an older id) is counted but cannot be told apart from those seen."""
    newer = _trail_changes(batch).filter(id__gt=seen.last).order_by("id").values_list("target_type", "target_label")
    records = list(dict.fromkeys(_record_words(kind, label) for kind, label in newer[:200]))
    named = ", ".join(records[:5]) + (f" and {len(records) - 5} more" if len(records) > 5 else "")
    return now.entries - seen.entries, named


def _entries_were(count: int) -> str:
    return "1 entry was" if count == 1 else f"{count} entries were"


# --- the audit-trail review -----------------------------------------------------------------------

def _reviews(batch: Batch) -> QuerySet[Signature]:
    return Signature.objects.filter(target_type="ebr.batch", target_id=str(batch.pk), meaning=Meaning.REVIEWED)


def _review_marker(batch: Batch, review: Signature) -> TrailMarker | None:
    """The trail as the review saw it; None for a review signed before the marker was kept."""
    data = (AuditEvent.objects.filter(event_type=Event.AUDIT_TRAIL_REVIEWED, target_type="ebr.batch",
                                      target_id=str(batch.pk), data__signature=review.pk)
            .values_list("data", flat=True).first()) or {}
    if "trail_entries" not in data or "trail_last" not in data:
        return None
    return TrailMarker(int(data["trail_entries"]), int(data["trail_last"]))


def _review_stale(batch: Batch, review: Signature, now: TrailMarker) -> bool:
    seen = _review_marker(batch, review)
    if seen is None:
        return bool(alarm_changes_after_review(batch, review))  # the rule such a review was signed under
    return seen != now


def audit_trail_review_valid(batch: Batch) -> bool:
    """Reviewed, and nothing in the record changed since: the review signature is still valid and
    no entry joined the batch's audit trail after it other than the review's own and the decision's
    (the review covers the whole trail as it was: steps, values, alarms, deviations, their impact
    assessments and CAPAs, review flags and their dispositions; draft EU GMP Annex 11 §9)."""
    reviews = list(_reviews(batch))
    if not reviews:
        return False
    now = audit_trail_marker(batch, before=_decision_event(batch))
    return any(signature_is_valid(review, batch) and not _review_stale(batch, review, now) for review in reviews)


def alarm_changes_after_review(batch: Batch, review: Signature) -> int:
    """How many alarm changes an audit-trail review signed before the trail marker was kept did not see.

    Such a review recorded how many alarm changes its history held when QA signed; any difference
    is a change it did not see. A count, not a time: an evaluation that saved its changes before
    the signature but committed after it is caught too, whatever the clocks of the processes.
    """
    event = (AuditEvent.objects.filter(event_type=Event.AUDIT_TRAIL_REVIEWED, target_type="ebr.batch",
                                       target_id=str(batch.pk), data__signature=review.pk)
             .values_list("data", flat=True).first())
    if event is None or "alarm_changes" not in event:
        return alarms_changed_since(batch, review.signed_at)  # a review signed before the count was kept
    return alarm_changes_recorded(batch) - int(event["alarm_changes"])


TRAIL_CHANGED = "audit_trail_changed"  # the audit-trail page QA signs on is out of date
RECORD_CHANGED = "batch_record_changed"  # the batch page a release or rejection is signed on is out of date


@transaction.atomic
def batch_audit_trail_review(*, actor: User, batch: Batch, password: str, reason: str,
                             username: str | None = None, session: Any = None,
                             seen: TrailMarker | None = None) -> Signature:
    """QA signs that it reviewed the batch's audit trail (draft EU GMP Annex 11 §9, a release precondition).

    `seen`: the trail as the page QA reviewed on showed it (None: no page, e.g. a command). An
    entry added since (a deviation investigated, a flag dispositioned, an alarm acknowledged while
    QA read) refuses the signature: what is signed must be what was seen (21 CFR 11.50, 11.70).
    The review records the trail it covered, so that a later change makes it stale.
    """
    if not can(actor, Capability.AUDIT_TRAIL_REVIEW):
        raise PermissionDenied("Only QA reviews audit trails.")
    batch = _locked(batch)
    if batch.status != BatchStatus.IN_REVIEW:
        raise ValidationError("The audit trail is reviewed once the batch record is in QA review.")
    if not reason.strip():
        raise ValidationError({"reason": "Summarise what the audit-trail review found."})
    waiting = _process_data_blockers(batch)
    if waiting:
        raise ValidationError(["The audit trail is reviewed once every instrument post of the batch is evaluated "
                               "and every process alarm acknowledged by a supervisor.", *waiting])
    now = audit_trail_marker(batch)
    if seen is not None and seen != now:
        added, records = _trail_added(batch, seen, now)
        what = (f"{_entries_were(added)} added to the audit trail while it was open: {records}{', ' if records else ''}"
                if added > 0 else "The audit trail changed while it was open: ")
        them = "it" if added == 1 else "them"
        raise ValidationError(f"{what}look at {them}, then sign again.", code=TRAIL_CHANGED)
    signature = sign(signer=actor, password=password, meaning=Meaning.REVIEWED, target=batch, reason=reason,
                     username=username, session=session)
    record_event(actor=actor, event=Event.AUDIT_TRAIL_REVIEWED, target=batch, reason=reason,
                 data={"signature": signature.pk, "trail_entries": now.entries, "trail_last": now.last})
    return signature


def _ensure_decided_on_what_was_seen(batch: Batch, seen: TrailMarker | None) -> None:
    """A release or rejection signs the batch record the page showed (21 CFR 11.50, 11.70): every
    change of the record writes an entry in its audit trail, so a new entry means it changed."""
    if seen is None:
        return  # no page was read: a command, the seed
    now = audit_trail_marker(batch)
    if seen != now:
        added, records = _trail_added(batch, seen, now)
        what = (f": {_entries_were(added)} added to its audit trail" + (f" ({records})" if records else "")
                if added > 0 else "")
        raise ValidationError(f"The batch record changed while this page was open{what}. Look at the batch as it "
                              "is now, then sign again.", code=RECORD_CHANGED)


def release_blockers(batch: Batch) -> list[str]:
    """Everything that stands between this batch and release, in words QA can act on."""
    from qms.selectors import deviations_open_for

    blockers = []
    if batch.status != BatchStatus.IN_REVIEW:
        blockers.append(f"The batch is {batch.get_status_display().lower()}, not in QA review.")
    open_deviations = deviations_open_for("ebr.batch", str(batch.pk))
    if open_deviations:
        blockers.append("Open deviations: " + ", ".join(d.number for d in open_deviations) + ".")
    if not audit_trail_review_valid(batch):
        blockers.append(_audit_trail_review_missing(batch))
    invalid = [s for s in batch_signatures(batch) if s.meaning != Meaning.REVIEWED and not signature_is_valid(s)]
    if invalid:
        blockers.append(f"{len(invalid)} signature(s) are invalid: the record changed after signing.")
    blockers.extend(_process_data_blockers(batch))
    blockers.extend(_review_flag_blockers(batch))
    return blockers


def _audit_trail_review_missing(batch: Batch) -> str:
    latest = _reviews(batch).order_by("-signed_at").first()
    if latest is None or not signature_is_valid(latest, batch):
        return "The audit trail has not been reviewed since the record last changed."
    when = format_local(latest.signed_at)
    seen = _review_marker(batch, latest)
    if seen is None:
        changes = alarm_changes_after_review(batch, latest)
        return (f"The process alarms changed after the audit-trail review of {when} ({changes} change(s): raised, "
                "escalated, worsened, closed or acknowledged): review the audit trail again.")
    added, records = _trail_added(batch, seen, audit_trail_marker(batch))
    if added <= 0:
        return f"The audit trail changed after the review of {when}: review the audit trail again."
    named = f" ({records})" if records else ""
    return f"{_entries_were(added)} added to the audit trail after the review of {when}{named}: review the audit " \
           "trail again."


def _process_data_blockers(batch: Batch) -> list[str]:
    """Every instrument reading judged against its limits, and every alarm looked at by a
    supervisor (EU GMP Annex 15 §9, Annex 1 §9.4: excursions investigated; Annex 16 1.7.4: the
    QP confirms deviations from the process were assessed)."""
    blockers = []
    waiting = evaluation_waiting(batch)
    if waiting.posts > waiting.set_aside:
        blockers.append(f"{waiting.posts - waiting.set_aside} instrument post(s) of this batch have not been "
                        "evaluated against the alarm limits yet. Evaluation normally follows within seconds and "
                        "the overdue watch catches up within minutes; if this stays, the alarm evaluation is "
                        "failing (see the worker's log).")
    if waiting.set_aside:
        error = (waiting.last_error or "")[:300]
        blockers.append(f"{waiting.set_aside} instrument post(s) of this batch could not be evaluated against the "
                        f"alarm limits after {EVALUATION_ATTEMPTS} attempts (last error: {error}). "
                        "They are tried again every hour. Open a deviation, have the cause corrected (deploy/README "
                        "'Alarm evaluation set aside'); the batch can be released once they are evaluated, or "
                        "rejected.")
    unacknowledged = alarms_unacknowledged(batch)
    if unacknowledged:
        listed = ", ".join(_alarm_words(alarm) for alarm in unacknowledged[:5])
        more = f" and {len(unacknowledged) - 5} more" if len(unacknowledged) > 5 else ""
        blockers.append(f"{len(unacknowledged)} process alarm(s) not acknowledged by a supervisor: {listed}{more}.")
    return blockers


def _alarm_words(alarm: Alarm) -> str:
    if alarm.parameter is None:
        return f"no data from {alarm.instrument.name} from {format_local(alarm.opened_at)}"
    return f"{alarm.parameter.code} beyond the {alarm.kind} limit from {format_local(alarm.opened_at)}"


def _review_flag_blockers(batch: Batch) -> list[str]:
    """Review by exception: the review must have run and QA must have dispositioned every flag."""
    review = record_review()
    if not review.review_finished(batch.pk):
        return ["The batch record review has not run yet, or its latest run has not finished (it is queued "
                "when the batch completes; a re-run must finish before release)."]
    blockers = []
    if batch.completed_at:
        seen = review.review_readings_seen(batch.pk)
        unseen = [late for late in readings_received_after(batch, batch.completed_at) if late.post_id not in seen]
        if unseen:
            blockers.append(f"{sum(late.count for late in unseen)} instrument reading(s) arrived after the latest "
                            "review read the record: re-run the review so that QA sees them.")
    count = review.open_flags_count(batch.pk)
    if count:
        blockers.append(f"{count} review flag(s) are not dispositioned.")
    return blockers


@transaction.atomic
def batch_release(*, actor: User, batch: Batch, password: str, reason: str, username: str | None = None,
                  session: Any = None, seen: TrailMarker | None = None) -> Batch:
    """QP release with signature; refused while any blocker remains, or when the record changed since
    the page it is signed on was read (`seen`; None: no page). A released batch is read-only."""
    if not can(actor, Capability.BATCH_RELEASE):
        raise PermissionDenied("Only a QA approver (Qualified Person) releases batches.")
    batch = _locked(batch)
    ensure_releaser_not_executor(releaser=actor, executors=User.objects.filter(pk__in=batch_executors(batch)))
    _ensure_decided_on_what_was_seen(batch, seen)
    blockers = release_blockers(batch)
    if blockers:
        raise ValidationError(blockers)
    return _transition(batch, BatchStatus.RELEASED, actor=actor, reason=reason or "Released",
                       event=Event.BATCH_RELEASED, password=password, username=username, session=session,
                       statement=qp_certification(batch))


def qp_certification(batch: Batch) -> str:
    """What the QP certifies by the release signature, shown at signing and kept with the signature
    (21 CFR 11.50: the manifestation says what the signature means; EU GMP Annex 16 §1.7)."""
    return (f"As Qualified Person I certify that batch {batch.number} was manufactured and checked in compliance "
            "with GMP, its master record and the patient's prescription, that its deviations were assessed, and "
            "that it may be released for this patient only (EU GMP Annex 16; Part IV, ATMP).")


@transaction.atomic
def batch_reject(*, actor: User, batch: Batch, password: str, reason: str, username: str | None = None,
                 session: Any = None, seen: TrailMarker | None = None) -> Batch:
    """QP rejection with signature and reason; possible with open deviations (that is often why).
    Refused when the record changed since the page it is signed on was read (`seen`; None: no page)."""
    if not can(actor, Capability.BATCH_RELEASE):
        raise PermissionDenied("Only a QA approver (Qualified Person) rejects batches.")
    if not reason.strip():
        raise ValidationError({"reason": "Give the reason for rejecting the batch."})
    batch = _locked(batch)
    ensure_releaser_not_executor(releaser=actor, executors=User.objects.filter(pk__in=batch_executors(batch)))
    _ensure_decided_on_what_was_seen(batch, seen)
    return _transition(batch, BatchStatus.REJECTED, actor=actor, reason=reason, event=Event.BATCH_REJECTED,
                       password=password, username=username, session=session)
