"""The outcome of a deviation: QA return, signed approval and closure, cancellation, signed extension."""

from __future__ import annotations

from datetime import date, timedelta

from django.contrib.sessions.backends.base import SessionBase
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from qms.audit import Event, create_with_reason, save_with_reason
from qms.conf import deviation_due_days
from qms.links import record_link
from qms.models import (
    CapaDecision,
    CapaStatus,
    Classification,
    Deviation,
    DeviationExtension,
    DeviationSource,
    DeviationStatus,
    DeviationSubject,
    User,
)
from qms.roles import Capability
from qms.services._guards import ensure_can, locked, reason_required
from qms.services.deviations.investigation import ensure_investigation_complete
from qms.services.notifications import notify
from qms.signatures import ensure_approver_not_author, sign
from qms.staleness import ensure_unchanged
from qms.states import DEVIATION_STEPS, ensure_step


@transaction.atomic
def deviation_return(*, actor: User, deviation: Deviation, reason: str, seen: str | None = None) -> Deviation:
    """QA sends an incomplete or unconvincing investigation back, saying what is missing."""
    ensure_can(actor, Capability.DEVIATION_CLOSE, "return deviations to investigation")
    reason = reason_required(reason, "Say what the investigation must add or correct.")
    deviation = locked(deviation)
    ensure_unchanged(deviation, seen, again="save again")
    ensure_step(DEVIATION_STEPS, "return", deviation)
    deviation.status = DeviationStatus.INVESTIGATION
    save_with_reason(deviation, actor=actor, reason=reason, event=Event.DEVIATION_RETURNED, update_fields=["status"])
    if deviation.owner is not None and deviation.owner_id != actor.pk:
        notify(user=deviation.owner, text=f"{deviation.number} was returned to investigation: {reason}",
               link=record_link("deviation", deviation.number))
    return deviation


def _ensure_capa_decision_holds(deviation: Deviation) -> None:
    if not deviation.capa_decision:
        raise ValidationError(f"{deviation} has no CAPA decision: record whether a CAPA is required.")
    if deviation.capa_decision == CapaDecision.REQUIRED:
        capa = deviation.capa
        if capa is None or capa.status == CapaStatus.CANCELLED:
            raise ValidationError(f"{deviation} requires a CAPA but its CAPA is missing or cancelled: "
                                  "return it to investigation and record a new decision.")


@transaction.atomic
def deviation_close(*, actor: User, deviation: Deviation, password: str, reason: str, username: str | None = None,
                    session: SessionBase | None = None, request: HttpRequest | None = None,
                    seen: str | None = None) -> Deviation:
    """The QA approver approves the investigation and closes the deviation under signature
    (meaning "approved"; EU GMP Part I 1.4(xiv), 2.x independence of QA; 21 CFR 11.50, 11.200).

    Refused without a CAPA decision (a required CAPA must exist and not be cancelled), with an
    incomplete investigation, or when the approver investigated or submitted it themselves.
    """
    ensure_can(actor, Capability.DEVIATION_CLOSE, "close deviations")
    reason = reason_required(reason)
    deviation = locked(deviation)
    ensure_unchanged(deviation, seen)
    step = ensure_step(DEVIATION_STEPS, "close", deviation)
    _ensure_capa_decision_holds(deviation)
    ensure_investigation_complete(deviation)
    ensure_approver_not_author(approver=actor, authors=deviation_investigators(deviation))
    assert step.signature is not None
    signature = sign(signer=actor, password=password, meaning=step.signature, target=deviation, reason=reason,
                     username=username, session=session, request=request)
    deviation.status = DeviationStatus.CLOSED
    deviation.closed_by, deviation.closed_at = actor, timezone.now()
    save_with_reason(deviation, actor=actor, reason=reason, event=Event.DEVIATION_CLOSED,
                     update_fields=["status", "closed_by", "closed_at"], data={"signature": signature.pk})
    return deviation


def deviation_investigators(deviation: Deviation) -> list[User]:
    """Everyone who wrote any part of the investigation, not only the last to save it: whoever was
    recorded as investigating or submitting it at any time (its history), and whoever assessed
    the impact on a linked batch or record. None of them may approve it (EU GMP Part I 2.x, QA
    independent of the investigation; the same rule as change_control_contributors)."""
    history = deviation.history.all()
    ids = set(history.exclude(investigated_by=None).values_list("investigated_by_id", flat=True))
    ids |= set(history.exclude(submitted_by=None).values_list("submitted_by_id", flat=True))
    # The CAPA decision is part of the investigation, and its save leaves investigated_by as it was:
    # whoever changed the decision or its rationale shows in the history row of that change.
    decided: tuple[str, str] = ("", "")
    for user_id, decision, rationale in history.order_by("history_date", "history_id").values_list(
            "history_user_id", "capa_decision", "capa_rationale"):
        if (decision, rationale) != decided and user_id is not None:
            ids.add(user_id)
        decided = (decision, rationale)
    ids |= set(DeviationSubject.history.filter(deviation_id=deviation.pk, history_type="~")
               .exclude(history_user=None).values_list("history_user_id", flat=True))
    return list(User.objects.filter(pk__in=ids))


MEASURED_SOURCES = frozenset({DeviationSource.OOS_ENTRY, DeviationSource.INSTRUMENT_ALARM})


@transaction.atomic
def deviation_cancel(*, actor: User, deviation: Deviation, reason: str, seen: str | None = None) -> Deviation:
    """QA cancels a deviation reported in error or twice; the reason is kept with the record.

    Not one the system raised from a measured result (an out-of-specification entry, an instrument
    alarm): that deviation is the formal record of the result and is closed through its
    investigation and a QA approver's signed closure, which may find an assignable error; a single
    unsigned cancellation would let the result leave the release blockers uninvestigated (EU GMP
    Part I 1.4(xiv), 6.35; MHRA OOS guidance).
    """
    ensure_can(actor, Capability.DEVIATION_CANCEL, "cancel deviations")
    reason = reason_required(reason, "Say why this deviation is cancelled (e.g. the duplicate's number).")
    deviation = locked(deviation)
    ensure_unchanged(deviation, seen, again="save again")
    ensure_step(DEVIATION_STEPS, "cancel", deviation)
    if deviation.source in MEASURED_SOURCES:
        kind = deviation.get_source_display().lower()
        raise ValidationError(f"{deviation} was raised from a measured result ({kind}): it is not cancelled but "
                              "investigated, and closed by a QA approver's signature, which may record that the "
                              "result had an assignable error.")
    deviation.status, deviation.cancelled_reason = DeviationStatus.CANCELLED, reason
    save_with_reason(deviation, actor=actor, reason=reason, event=Event.DEVIATION_CANCELLED,
                     update_fields=["status", "cancelled_reason"])
    return deviation


@transaction.atomic
def deviation_extend(*, actor: User, deviation: Deviation, new_due_date: date, password: str, reason: str,
                     username: str | None = None, session: SessionBase | None = None,
                     request: HttpRequest | None = None, seen: str | None = None) -> DeviationExtension:
    """QA grants a later due date under signature ("granted"), with its justification (the reason),
    so an overdue investigation is a decision on record rather than a silent slip (EU GMP Part I
    1.4(xiv)). One extension adds at most one investigation period of the deviation's class
    (DEVIATION_DUE_DAYS): a longer delay is granted step by step, each time justified again, not
    pushed years ahead at once."""
    ensure_can(actor, Capability.DEVIATION_EXTEND, "extend deviation due dates")
    justification = reason_required(reason, "Justify the extension.")
    deviation = locked(deviation)
    ensure_unchanged(deviation, seen)
    step = ensure_step(DEVIATION_STEPS, "extend", deviation)
    if deviation.due_date is None:
        raise ValidationError({"new_due_date": f"{deviation} has no due date yet."})
    if not isinstance(new_due_date, date) or new_due_date <= deviation.due_date:
        raise ValidationError({"new_due_date": f"The new due date must be after {deviation.due_date:%Y-%m-%d}."})
    if new_due_date < timezone.localdate():
        raise ValidationError({"new_due_date": "The new due date cannot be in the past."})
    kind = deviation.classification or Classification.CRITICAL  # unclassified: the critical class's period
    period = deviation_due_days(kind)
    latest = deviation.due_date + timedelta(days=period)
    if new_due_date > latest:
        raise ValidationError({"new_due_date": f"One extension adds at most {period} days (the investigation period "
                                               f"of a {kind} deviation): at most {latest:%Y-%m-%d}. Extend again "
                                               "then if it is still needed."})
    extension = create_with_reason(DeviationExtension, actor=actor, reason=justification, deviation=deviation,
                                   previous_due_date=deviation.due_date, new_due_date=new_due_date,
                                   justification=justification, granted_by=actor, granted_at=timezone.now())
    assert step.signature is not None
    signature = sign(signer=actor, password=password, meaning=step.signature, target=extension,
                     reason=justification, username=username, session=session, request=request)
    deviation.due_date = new_due_date
    save_with_reason(deviation, actor=actor, reason=justification, event=Event.DEVIATION_EXTENDED,
                     update_fields=["due_date"], data={"signature": signature.pk, "extension": extension.pk})
    return extension
