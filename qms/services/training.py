"""Training records: who is trained on which version of a master record or SOP, by whom, and
until when (EU GMP Part I 2.8-2.12: personnel trained on the procedures they carry out;
21 CFR 11.10(i)). The manufacturing side asks `training_is_current` before anyone executes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from qms.audit import Event, create_with_reason
from qms.models import DocumentKind, TrainingRecord, User
from qms.roles import Capability
from qms.services._guards import choice_required, created_once, ensure_can, text_required

# A register of controlled documents answers "does this code and version exist?" with None, or
# with what is wrong ({"field": message}). The manufacturing app registers its master records
# (qms never imports ebr); SOPs live in the facility's document system and are not checked.
DocumentCheck = Callable[[str, str], "dict[str, str] | None"]
_document_registers: dict[str, DocumentCheck] = {}


def training_document_register(document_kind: str, check: DocumentCheck) -> None:
    _document_registers[document_kind] = check


def training_document_unregister(document_kind: str) -> DocumentCheck | None:
    return _document_registers.pop(document_kind, None)


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


def _clean_people(user: User, trainer: User) -> None:
    if not user.is_active:
        raise ValidationError({"user": f"{user.full_name}'s account is deactivated."})
    if trainer is None or not trainer.is_active:
        raise ValidationError({"trainer": "Name an active trainer."})
    if trainer.pk == user.pk:
        raise ValidationError({"trainer": "Nobody can be their own trainer."})


def _clean_dates(trained_on: date, valid_until: date | None) -> None:
    if not isinstance(trained_on, date):
        raise ValidationError({"trained_on": "Give the training date."})
    if trained_on > timezone.localdate():
        raise ValidationError({"trained_on": "Training cannot be recorded before it happened."})
    if valid_until is not None and valid_until < trained_on:
        raise ValidationError({"valid_until": "Training cannot expire before it took place."})


@transaction.atomic
def training_record_add(*, actor: User, user: User, document_kind: str, document_code: str, version: str,
                        trained_on: date, trainer: User, valid_until: date | None, reason: str) -> TrainingRecord:
    """Record that `user` was trained on `document_code` version `version` by `trainer` (EU GMP
    Part I 2.8-2.12). Records are never edited: retraining is a new record. Nobody trains
    themselves; the date cannot be in the future; the same training is recorded once."""
    ensure_can(actor, Capability.TRAINING_RECORD, "record training")
    kind, code, version = _clean_document(document_kind, document_code, version)
    _clean_people(user, trainer)
    _clean_dates(trained_on, valid_until)
    duplicate = ValidationError(f"{user.full_name}'s training on {code} v{version} of {trained_on:%Y-%m-%d} "
                                "is already recorded.")
    if TrainingRecord.objects.filter(user=user, document_kind=kind, document_code=code, version=version,
                                     trained_on=trained_on).exists():
        raise duplicate
    return created_once(lambda: create_with_reason(
        TrainingRecord, actor=actor, reason=(reason or "").strip() or "Training recorded",
        event=Event.TRAINING_RECORDED,
        data={"user": user.username, "document": f"{kind}:{code}:{version}", "trainer": trainer.username},
        user=user, document_kind=kind, document_code=code, version=version, trained_on=trained_on,
        trainer=trainer, valid_until=valid_until, recorded_by=actor, recorded_at=timezone.now()),
        "training_record_unique", duplicate)  # two submits at once: the second is refused, not a 500


def training_current_q(on: date) -> Q:
    return Q(trained_on__lte=on) & (Q(valid_until__isnull=True) | Q(valid_until__gte=on))


def training_is_current(*, user: User, document_kind: str, document_code: str, version: str,
                        on: date | None = None) -> bool:
    """True when `user` holds a training record for exactly this document version that covers
    day `on` (today by default): trained on or before it, not expired (EU GMP Part I 2.8)."""
    on = on or timezone.localdate()
    return TrainingRecord.objects.filter(
        training_current_q(on), user=user, document_kind=document_kind,
        document_code=(document_code or "").strip().upper(), version=str(version).strip(),
    ).exists()
