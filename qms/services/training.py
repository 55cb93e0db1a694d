"""Training records: who is trained on which version of a master record or SOP, by whom, and
until when (EU GMP Part I 2.8-2.12: personnel trained on the procedures they carry out;
21 CFR 11.10(i)). The manufacturing side asks `training_is_current` before anyone executes.

A record counts only once the trainer it names has vouched for it under their own signature
(21 CFR 11.50, 11.70: the record is attributable to the person who vouches for it): at once when
the trainer records it themselves, else when they confirm it (`training_confirm`). A trainer who
did not give the training declines it (`training_confirm_decline`) and it never counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.contrib.sessions.backends.base import SessionBase
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from qms.audit import Event, create_with_reason, save_with_reason
from qms.links import page_link
from qms.models import DocumentKind, TrainingRecord, User
from qms.models.training import NOT_VOID, TrainerConfirmation
from qms.roles import Capability, can
from qms.services._guards import (
    choice_required,
    created_once,
    ensure_can,
    locked,
    problem_collect,
    reason_required,
    text_required,
)
from qms.services.notifications import notify
from qms.signatures import Meaning, sign

# A register of controlled documents answers "does this code and version exist?" with None, or
# with what is wrong ({"field": message}). The manufacturing app registers its master records
# (qms never imports ebr); SOPs live in the facility's document system and are not checked.
DocumentCheck = Callable[[str, str], "dict[str, str] | None"]
_document_registers: dict[str, DocumentCheck] = {}


@dataclass(frozen=True)
class DocumentVersionFacts:
    """What a register knows of one document version: the day it came into existence (None when
    unknown, e.g. an SOP kept outside the system) and who approved it (its bootstrap trainers)."""

    issued_on: date | None
    approver_ids: frozenset[int] = frozenset()


DocumentFacts = Callable[[str, str], "DocumentVersionFacts | None"]
_document_facts: dict[str, DocumentFacts] = {}


def training_document_register(document_kind: str, check: DocumentCheck) -> None:
    _document_registers[document_kind] = check


def training_document_unregister(document_kind: str) -> DocumentCheck | None:
    return _document_registers.pop(document_kind, None)


def training_document_facts_register(document_kind: str, facts: DocumentFacts) -> None:
    """The owning app tells when a version was created and who approved it (qms never imports ebr)."""
    _document_facts[document_kind] = facts


def training_document_facts_unregister(document_kind: str) -> DocumentFacts | None:
    return _document_facts.pop(document_kind, None)


def _clean_document(document_kind: str, document_code: str, version: str) -> tuple[str, str, str]:
    kind = choice_required(document_kind, DocumentKind, "document_kind", "kind of document")
    code = text_required(document_code, "document_code", "Give the document's code.").upper()
    version = text_required(str(version) if version is not None else "", "version", "Give the document version.")
    if len(code) > 64 or len(version) > 32:
        raise ValidationError({"document_code": "The code (64) or version (32 characters) is too long."})
    check = _document_registers.get(kind)
    problem = check(code, version) if check else None
    if problem:
        # Training on a document that does not exist would satisfy nothing, or later satisfy a
        # version it was never given on.
        raise ValidationError(problem)
    return kind, code, version


def _clean_people(actor: User, user: User, trainer: User | None) -> None:
    problems: dict[str, list[str]] = {}
    if not user.is_active:
        problems.setdefault("user", []).append(f"{user.full_name}'s account is deactivated.")
    if user.pk == actor.pk:
        # Segregation of duties (EU GMP Part I 2.8-2.11): a record of one's own training
        # would let anyone qualify themselves for the batch-execution gate.
        problems.setdefault("user", []).append(
            "You cannot record your own training: another person allowed to record training must do it.")
    if trainer is None or not trainer.is_active:
        problems.setdefault("trainer", []).append("Name an active trainer.")
    elif trainer.pk == user.pk:
        problems.setdefault("trainer", []).append("Nobody can be their own trainer.")
    if problems:
        raise ValidationError(problems)


def _clean_dates(trained_on: date, valid_until: date | None) -> None:
    if not isinstance(trained_on, date):
        raise ValidationError({"trained_on": "Give the training date."})
    if trained_on > timezone.localdate():
        raise ValidationError({"trained_on": "Training cannot be recorded before it happened."})
    if valid_until is not None and valid_until < trained_on:
        raise ValidationError({"valid_until": "Training cannot expire before it took place."})


def _trainer_qualified(trainer: User, kind: str, code: str, version: str, trained_on: date,
                       facts: DocumentVersionFacts | None) -> bool:
    """Qualified: trained and current on this very version on the training day; or a bootstrap
    trainer, who needs no training record because they approved the procedure: the version's
    own approver, or anyone whose role approves controlled procedures (the QA approver)."""
    if (facts is not None and trainer.pk in facts.approver_ids) or can(trainer, Capability.MASTER_RECORD_APPROVE):
        return True
    return TrainingRecord.objects.filter(training_current_q(trained_on), user=trainer, document_kind=kind,
                                         document_code=code, version=version).exists()


def _facts(kind: str, code: str, version: str) -> DocumentVersionFacts | None:
    facts_of = _document_facts.get(kind)
    return facts_of(code, version) if facts_of else None


def _clean_against_version(kind: str, code: str, version: str, trained_on: date, trainer: User) -> None:
    problems: dict[str, str] = {}
    facts = _facts(kind, code, version)
    if facts is not None and facts.issued_on is not None and trained_on < facts.issued_on:
        problems["trained_on"] = (f"{code} v{version} only exists since {facts.issued_on:%Y-%m-%d}: "
                                  "nobody can have been trained on it before.")
    if not _trainer_qualified(trainer, kind, code, version, trained_on, facts):
        problems["trainer"] = (f"{trainer.full_name} is not qualified to train on {code} v{version}: they hold "
                               "no current training on it and are not an approver of it.")
    if problems:
        raise ValidationError(problems)


@transaction.atomic
def training_record_add(*, actor: User, user: User, document_kind: str, document_code: str, version: str,
                        trained_on: date, trainer: User, valid_until: date | None, reason: str, password: str,
                        username: str | None = None, session: SessionBase | None = None,
                        request: HttpRequest | None = None) -> TrainingRecord:
    """Record, under the recorder's signature ("authored"), that `user` was trained on
    `document_code` version `version` by `trainer` (EU GMP Part I 2.8-2.12; 21 CFR 11.50).

    Records are never edited: retraining is a new record; the same training is recorded once.
    The rules, all checked before anything is refused so every problem shows at once:
    - segregation of duties: nobody records their own training, nobody trains themselves;
    - the trainer is qualified on the training day: they hold current training on this same
      document version, or they are a bootstrap trainer (the version's approver, or a person whose
      role approves controlled procedures, i.e. the QA approver, per qms/roles.py
      MASTER_RECORD_APPROVE), which is how the first training on a new version can happen;
    - the date is not in the future, nor before the version existed where its register knows
      that date (master records: the day the version was created); SOPs: the future check only.

    The record counts as training only once its trainer vouches for it (21 CFR 11.50, 11.70): a
    trainer who records it themselves does so with this one signature, and it counts at once;
    otherwise it awaits the trainer's confirmation (`training_confirm`), and the trainer is told.
    """
    ensure_can(actor, Capability.TRAINING_RECORD, "record training")
    problems: dict[str, Any] = {}
    document = problem_collect(problems, lambda: _clean_document(document_kind, document_code, version))
    problem_collect(problems, lambda: _clean_people(actor, user, trainer))
    problem_collect(problems, lambda: _clean_dates(trained_on, valid_until))
    if document is not None and "trainer" not in problems and isinstance(trained_on, date):
        checked_kind, checked_code, checked_version = document
        problem_collect(problems, lambda: _clean_against_version(checked_kind, checked_code, checked_version,
                                                                 trained_on, trainer))
    if problems:
        raise ValidationError(problems)
    kind, code, version = document
    duplicate = ValidationError(f"{user.full_name}'s training on {code} v{version} of {trained_on:%Y-%m-%d} "
                                "is already recorded.")
    if TrainingRecord.objects.filter(NOT_VOID, user=user, document_kind=kind, document_code=code, version=version,
                                     trained_on=trained_on).exists():
        raise duplicate
    reason = (reason or "").strip() or "Training recorded"
    now = timezone.now()
    # The trainer's own "authored" signature is their confirmation: one signature, no second step.
    by_trainer = trainer.pk == actor.pk
    record = created_once(lambda: create_with_reason(
        TrainingRecord, actor=actor, reason=reason, event=Event.TRAINING_RECORDED,
        data={"user": user.username, "document": f"{kind}:{code}:{version}", "trainer": trainer.username,
              "trainer_confirmation": TrainerConfirmation.CONFIRMED if by_trainer else TrainerConfirmation.AWAITING},
        user=user, document_kind=kind, document_code=code, version=version, trained_on=trained_on,
        trainer=trainer, valid_until=valid_until, recorded_by=actor, recorded_at=now,
        trainer_confirmed_at=now if by_trainer else None),
        "training_record_unique", duplicate)  # two submits at once: the second is refused, not a 500
    # Signed in the same transaction: a refused signature leaves no unsigned record behind.
    sign(signer=actor, password=password, meaning=Meaning.AUTHORED, target=record, reason=reason,
         username=username, session=session, request=request)
    if not by_trainer:
        notify(user=trainer, key=f"training-confirm-{record.pk}", link=page_link("training_list") + "#awaiting",
               text=f"{actor.full_name} recorded that you trained {user.full_name} on {record.document_label} "
                    f"on {trained_on:%Y-%m-%d}: confirm or decline it. Until you confirm, it does not count.")
    return record


def _awaiting_this_trainer(actor: User, record: TrainingRecord, what: str) -> None:
    if record.trainer_id != actor.pk:
        # Only the person named can vouch for what they did (21 CFR 11.50, 11.70); whoever else
        # knows of it may raise a deviation.
        raise PermissionDenied(f"Only {record.trainer.full_name}, the trainer named on this record, can {what} it.")
    state = record.trainer_confirmation
    if state != TrainerConfirmation.AWAITING:
        # Records are never edited: a confirmation or a decline is final.
        raise ValidationError(f"This training record is already {state.label.lower()}: a trainer's decision is final.")


@transaction.atomic
def training_confirm(*, actor: User, record: TrainingRecord, password: str, reason: str = "",
                     username: str | None = None, session: SessionBase | None = None,
                     request: HttpRequest | None = None) -> TrainingRecord:
    """The trainer named on a record confirms, under their signature ("confirmed"), that they gave
    this training as recorded; from then on it counts (EU GMP Part I 2.8-2.12; 21 CFR 11.50, 11.70).

    Only the named trainer, only while the record awaits them; their qualification on the training
    day was checked when the record was made (a trainer whose own training awaits confirmation
    cannot be named). The confirmation is final; nothing else of the record changes.
    """
    record = locked(record)  # one decision per record, even when two tabs submit at once
    _awaiting_this_trainer(actor, record, "confirm")
    reason = (reason or "").strip() or "I gave this training as recorded"
    signature = sign(signer=actor, password=password, meaning=Meaning.CONFIRMED, target=record, reason=reason,
                     username=username, session=session, request=request)
    record.trainer_confirmed_at = timezone.now()
    save_with_reason(record, actor=actor, reason=reason, update_fields=["trainer_confirmed_at"],
                     event=Event.TRAINING_CONFIRMED, data={"signature": signature.pk})
    return record


@transaction.atomic
def training_confirm_decline(*, actor: User, record: TrainingRecord, password: str, reason: str,
                             username: str | None = None, session: SessionBase | None = None,
                             request: HttpRequest | None = None) -> TrainingRecord:
    """The trainer named on a record states that they did not give this training as recorded.

    Signed ("rejected"), not merely audited: the decline is the trainer's own statement about a
    GMP record and decides that it will never count, so it is attributed as firmly as a
    confirmation would be (21 CFR 11.50, 11.200). The reason is required. The record is kept,
    marked declined, and never counts; the recorder is told, and may record the training again
    with the person who did give it. Only the named trainer, only while the record awaits them.
    """
    record = locked(record)
    _awaiting_this_trainer(actor, record, "decline")
    reason = reason_required(reason, "Say what is wrong with this record: it is kept with your reason.")
    signature = sign(signer=actor, password=password, meaning=Meaning.REJECTED, target=record, reason=reason,
                     username=username, session=session, request=request)
    record.trainer_declined_at = timezone.now()
    record.trainer_decline_reason = reason
    save_with_reason(record, actor=actor, reason=reason,
                     update_fields=["trainer_declined_at", "trainer_decline_reason"], event=Event.TRAINING_DECLINED,
                     data={"signature": signature.pk})
    notify(user=record.recorded_by, link=page_link("training_list"),
           text=f"{actor.full_name} declined the training record of {record.user.full_name} on "
                f"{record.document_label} ({record.trained_on:%Y-%m-%d}): {reason[:200]}")
    return record


@transaction.atomic
def training_record_withdraw(*, actor: User, record: TrainingRecord, password: str, reason: str,
                             username: str | None = None, session: SessionBase | None = None,
                             request: HttpRequest | None = None) -> TrainingRecord:
    """The recorder takes back a record still awaiting its trainer (the wrong trainer was named, or
    they left and will never answer), under signature ("withdrawn") with the reason (21 CFR 11.50,
    11.10(e)). The record is kept, never counts, and frees its place for the training to be
    recorded with the person who gave it. Only the recorder (another person who records training
    once the recorder's account is deactivated), and never after the trainer decided: a
    confirmation or a decline is the trainer's, and final.
    """
    ensure_can(actor, Capability.TRAINING_RECORD, "withdraw training records")
    record = locked(record)
    if actor.pk != record.recorded_by_id and record.recorded_by.is_active:
        raise PermissionDenied(f"Only {record.recorded_by.full_name}, who recorded it, withdraws this record.")
    state = record.trainer_confirmation
    if state != TrainerConfirmation.AWAITING:
        raise ValidationError(f"This training record is {state.label.lower()}: only a record still awaiting its "
                              "trainer is withdrawn.")
    reason = reason_required(reason, "Say why the record is withdrawn: it is kept with your reason.")
    signature = sign(signer=actor, password=password, meaning=Meaning.WITHDRAWN, target=record, reason=reason,
                     username=username, session=session, request=request)
    record.withdrawn_at, record.withdrawn_reason = timezone.now(), reason
    save_with_reason(record, actor=actor, reason=reason, update_fields=["withdrawn_at", "withdrawn_reason"],
                     event=Event.TRAINING_WITHDRAWN, data={"signature": signature.pk})
    if record.trainer.is_active and record.trainer_id != actor.pk:
        notify(user=record.trainer, link=page_link("training_list"),
               text=f"{actor.full_name} withdrew the training record of {record.user.full_name} on "
                    f"{record.document_label} that awaited your confirmation: {reason[:200]}")
    return record


def training_current_q(on: date) -> Q:
    """Records that count as training on day `on`: confirmed by their trainer (a record awaiting
    the trainer or declined by them never counts), trained on or before it, not expired."""
    return (Q(trainer_confirmed_at__isnull=False) & Q(trained_on__lte=on)
            & (Q(valid_until__isnull=True) | Q(valid_until__gte=on)))


def training_is_current(*, user: User, document_kind: str, document_code: str, version: str,
                        on: date | None = None) -> bool:
    """True when `user` holds a training record for exactly this document version that covers
    day `on` (today by default): confirmed by its trainer, trained on or before it, not expired
    (EU GMP Part I 2.8; 21 CFR 11.50)."""
    on = on or timezone.localdate()
    return TrainingRecord.objects.filter(
        training_current_q(on), user=user, document_kind=document_kind,
        document_code=(document_code or "").strip().upper(), version=str(version).strip(),
    ).exists()
