"""QA review, audit-trail review and release or rejection of a completed batch.

EU GMP Annex 16 (certification by a Qualified Person), draft Annex 11 (audit-trail review
before release), 21 CFR 11.10(e)/11.70 (no release on a signature whose record changed).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

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
from ebr.selectors import batch_executors
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


def audit_trail_review_valid(batch: Batch) -> bool:
    """Reviewed, and nothing in the record changed since: the review signature is still valid
    and no process alarm of the batch was raised or changed after it (the review covers the
    alarms and their acknowledgements as they were; draft EU GMP Annex 11 §9)."""
    reviews = Signature.objects.filter(target_type="ebr.batch", target_id=str(batch.pk), meaning=Meaning.REVIEWED)
    return any(signature_is_valid(review, batch) and not alarm_changes_after_review(batch, review)
               for review in reviews)


def alarm_changes_after_review(batch: Batch, review: Signature) -> int:
    """How many alarm changes the audit-trail review `review` did not see.

    The review records how many alarm changes its history held when QA signed; any difference
    is a change it did not see. A count, not a time: an evaluation that saved its changes before
    the signature but committed after it is caught too, whatever the clocks of the processes.
    """
    event = (AuditEvent.objects.filter(event_type=Event.AUDIT_TRAIL_REVIEWED, target_type="ebr.batch",
                                       target_id=str(batch.pk), data__signature=review.pk)
             .values_list("data", flat=True).first())
    if event is None or "alarm_changes" not in event:
        return alarms_changed_since(batch, review.signed_at)  # a review signed before the count was kept
    return alarm_changes_recorded(batch) - int(event["alarm_changes"])


ALARMS_CHANGED = "alarms_changed"


@transaction.atomic
def batch_audit_trail_review(*, actor: User, batch: Batch, password: str, reason: str,
                             username: str | None = None, session: Any = None,
                             alarm_changes_seen: int | None = None) -> Signature:
    """QA signs that it reviewed the batch's audit trail (draft EU GMP Annex 11 §9, a release precondition).

    `alarm_changes_seen`: how many alarm changes the page QA reviewed on showed. A change since
    (an alarm raised, escalated, closed or acknowledged while QA read) refuses the signature:
    what is signed must be what was seen (21 CFR 11.50, 11.70).
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
    changes = alarm_changes_recorded(batch)
    if alarm_changes_seen is not None and alarm_changes_seen != changes:
        missed = abs(changes - alarm_changes_seen)
        raise ValidationError(f"The process alarms changed while the audit trail was open ({missed} change(s): "
                              "raised, escalated, worsened, closed or acknowledged): look at them, then sign again.",
                              code=ALARMS_CHANGED)
    signature = sign(signer=actor, password=password, meaning=Meaning.REVIEWED, target=batch, reason=reason,
                     username=username, session=session)
    record_event(actor=actor, event=Event.AUDIT_TRAIL_REVIEWED, target=batch, reason=reason,
                 data={"signature": signature.pk, "alarm_changes": changes})
    return signature


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
    latest = (Signature.objects.filter(target_type="ebr.batch", target_id=str(batch.pk), meaning=Meaning.REVIEWED)
              .order_by("-signed_at").first())
    if latest is not None and signature_is_valid(latest, batch):
        changes = alarm_changes_after_review(batch, latest)
        return (f"The process alarms changed after the audit-trail review of {format_local(latest.signed_at)} "
                f"({changes} change(s): raised, escalated, worsened, closed or acknowledged): review the audit "
                "trail again.")
    return "The audit trail has not been reviewed since the record last changed."


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
                  session: Any = None) -> Batch:
    """QP release with signature; refused while any blocker remains. A released batch is read-only."""
    if not can(actor, Capability.BATCH_RELEASE):
        raise PermissionDenied("Only a QA approver (Qualified Person) releases batches.")
    batch = _locked(batch)
    ensure_releaser_not_executor(releaser=actor, executors=User.objects.filter(pk__in=batch_executors(batch)))
    blockers = release_blockers(batch)
    if blockers:
        raise ValidationError(blockers)
    return _transition(batch, BatchStatus.RELEASED, actor=actor, reason=reason or "Released",
                       event=Event.BATCH_RELEASED, password=password, username=username, session=session)


@transaction.atomic
def batch_reject(*, actor: User, batch: Batch, password: str, reason: str, username: str | None = None,
                 session: Any = None) -> Batch:
    """QP rejection with signature and reason; possible with open deviations (that is often why)."""
    if not can(actor, Capability.BATCH_RELEASE):
        raise PermissionDenied("Only a QA approver (Qualified Person) rejects batches.")
    if not reason.strip():
        raise ValidationError({"reason": "Give the reason for rejecting the batch."})
    batch = _locked(batch)
    ensure_releaser_not_executor(releaser=actor, executors=User.objects.filter(pk__in=batch_executors(batch)))
    return _transition(batch, BatchStatus.REJECTED, actor=actor, reason=reason, event=Event.BATCH_REJECTED,
                       password=password, username=username, session=session)
