"""Reads of training: the matrix (who may execute what), expiring training, the record list.

The quality system does not know which master record versions are effective (that is ebr's
data), so the documents of the matrix come from providers the manufacturing app registers
(`training_documents_provider_register`, in its AppConfig.ready). Without one, the matrix shows
the latest version of every document someone has been trained on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from qms.conf import training_expiry_warning_days
from qms.models import DocumentKind, TrainingRecord, User
from qms.models.training import NOT_VOID, TrainerConfirmation
from qms.selectors_deviations import order_by
from qms.services.training import training_current_q

# What counts, and what a later record renews: a record counts once its trainer confirmed it; one
# they declined never will (qms.services.training).
CONFIRMED = Q(trainer_confirmed_at__isnull=False)
AWAITING_TRAINER = Q(trainer_confirmed_at__isnull=True) & NOT_VOID  # TrainerConfirmation.AWAITING, as a query


@dataclass(frozen=True)
class TrainingDocument:
    kind: str
    code: str
    version: str
    title: str = ""

    @property
    def label(self) -> str:
        return f"{self.code} v{self.version}"

    @property
    def kind_label(self) -> str:
        return DocumentKind(self.kind).label if self.kind in DocumentKind.values else self.kind


DocumentsProvider = Callable[[], Iterable[TrainingDocument]]
_providers: list[DocumentsProvider] = []


def training_documents_provider_register(provider: DocumentsProvider) -> None:
    """Let another app say which document versions are in force (e.g. effective master records)."""
    if provider not in _providers:
        _providers.append(provider)


def training_documents_provider_unregister(provider: DocumentsProvider) -> None:
    if provider in _providers:
        _providers.remove(provider)


def _version_key(version: str) -> list[tuple[int, int | str]]:
    # "10" after "9", "2.1" after "2": compare numbers as numbers.
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", version) if part]


def training_documents() -> list[TrainingDocument]:
    """The documents of the matrix, by kind and code."""
    if _providers:
        documents = {(d.kind, d.code, d.version): d for provider in _providers for d in provider()}
        return sorted(documents.values(), key=lambda d: (d.kind, d.code))
    latest: dict[tuple[str, str], str] = {}
    for kind, code, version in TrainingRecord.objects.values_list("document_kind", "document_code",
                                                                  "version").distinct():
        current = latest.get((kind, code))
        if current is None or _version_key(version) > _version_key(current):
            latest[(kind, code)] = version
    return [TrainingDocument(kind, code, version) for (kind, code), version in sorted(latest.items())]


CELL_LABELS = {"current": "Current", "expiring": "Expiring", "expired": "Expired",
               "awaiting_trainer": "Awaiting trainer", "other_version": "Other version", "missing": "Not trained"}


@dataclass(frozen=True)
class MatrixCell:
    status: str  # current | expiring | expired | awaiting_trainer | other_version | missing
    text: str
    valid_until: date | None = None

    @property
    def label(self) -> str:
        return CELL_LABELS[self.status]


@dataclass(frozen=True)
class MatrixRow:
    user: User
    cells: list[MatrixCell]


@dataclass(frozen=True)
class TrainingMatrix:
    documents: list[TrainingDocument]
    rows: list[MatrixRow]
    on: date


def _cell(records: list[TrainingRecord], document: TrainingDocument, on: date, warn_until: date) -> MatrixCell:
    awaiting = [r for r in records if r.version == document.version and r.trained_on <= on
                and r.trainer_confirmation == TrainerConfirmation.AWAITING]
    records = [r for r in records if r.trainer_confirmation == TrainerConfirmation.CONFIRMED]
    same = [r for r in records if r.version == document.version and r.trained_on <= on]
    valid = [r for r in same if r.valid_until is None or r.valid_until >= on]
    if valid:
        best = max(valid, key=lambda r: r.valid_until or date.max)
        if best.valid_until is not None and best.valid_until <= warn_until:
            return MatrixCell("expiring", f"until {best.valid_until_label}", best.valid_until)
        return MatrixCell("current", f"until {best.valid_until_label}", best.valid_until)
    if awaiting:
        # Recorded, but it does not count until the trainer confirms it: say so, not "not trained".
        first = min(awaiting, key=lambda r: r.recorded_at)
        return MatrixCell("awaiting_trainer", f"{first.trainer.full_name} to confirm")
    if same:
        last = max(same, key=lambda r: r.valid_until or date.max)
        return MatrixCell("expired", f"expired {last.valid_until:%Y-%m-%d}", last.valid_until)
    others = sorted({r.version for r in records}, key=_version_key)
    if others:
        return MatrixCell("other_version", "trained on v" + ", v".join(others))
    return MatrixCell("missing", "no training record")


def training_matrix(*, users: Iterable[User], documents: list[TrainingDocument] | None = None,
                    on: date | None = None) -> TrainingMatrix:
    """For each person and document in force: may they execute it on `on` (EU GMP Part I 2.8)?"""
    on = on or timezone.localdate()
    documents = training_documents() if documents is None else documents
    people = list(users)
    warn_until = on + timedelta(days=training_expiry_warning_days())
    records: dict[tuple[int, str, str], list[TrainingRecord]] = {}
    codes = {d.code for d in documents}
    for record in TrainingRecord.objects.filter(NOT_VOID, user__in=people,
                                                document_code__in=codes).select_related("trainer"):
        records.setdefault((record.user_id, record.document_kind, record.document_code), []).append(record)
    rows = [MatrixRow(person, [_cell(records.get((person.pk, d.kind, d.code), []), d, on, warn_until)
                               for d in documents]) for person in people]
    return TrainingMatrix(documents=documents, rows=rows, on=on)


def _renewed() -> Exists:
    """A later confirmed training record for the same person and document version exists: one still
    awaiting its trainer renews nothing yet (the trainer may never act, and the lapse must still be
    seen and reminded), one the trainer declined never will."""
    return Exists(TrainingRecord.objects.filter(
        CONFIRMED, user=OuterRef("user"), document_kind=OuterRef("document_kind"),
        document_code=OuterRef("document_code"), version=OuterRef("version"), trained_on__gt=OuterRef("trained_on")))


def training_expiring(*, on: date | None = None, days: int | None = None) -> QuerySet[TrainingRecord]:
    """Training that runs out within `days` and has not been renewed, soonest first."""
    on = on or timezone.localdate()
    days = training_expiry_warning_days() if days is None else days
    return (TrainingRecord.objects.filter(CONFIRMED, valid_until__gte=on, valid_until__lte=on + timedelta(days=days),
                                          user__is_active=True)
            .annotate(renewed=_renewed()).filter(renewed=False)
            .select_related("user", "trainer").order_by("valid_until", "user__full_name"))


def training_expired(*, on: date | None = None, within_days: int = 90) -> QuerySet[TrainingRecord]:
    """Training that ran out in the last `within_days` days and was not renewed."""
    on = on or timezone.localdate()
    return (TrainingRecord.objects.filter(CONFIRMED, valid_until__lt=on,
                                          valid_until__gte=on - timedelta(days=within_days), user__is_active=True)
            .annotate(renewed=_renewed()).filter(renewed=False)
            .select_related("user", "trainer").order_by("-valid_until", "user__full_name"))


@dataclass(frozen=True)
class TrainingFilters:
    q: str = ""  # person, code
    document_kind: str = ""
    state: str = ""  # current | expired | awaiting_trainer | declined | ""


TRAINING_SORTS = {"person": "user__full_name", "code": "document_code", "trained_on": "trained_on",
                  "valid_until": "valid_until", "trainer": "trainer__full_name"}


def training_list(filters: TrainingFilters, sort: str = "-trained_on") -> QuerySet[TrainingRecord]:
    on = timezone.localdate()
    records = TrainingRecord.objects.select_related("user", "trainer", "recorded_by")
    if filters.q:
        records = records.filter(Q(user__full_name__icontains=filters.q) | Q(user__username__icontains=filters.q)
                                 | Q(document_code__icontains=filters.q))
    if filters.document_kind:
        records = records.filter(document_kind=filters.document_kind)
    if filters.state == "current":
        records = records.filter(training_current_q(on))
    elif filters.state == "expired":
        records = records.filter(CONFIRMED, valid_until__lt=on)
    elif filters.state == "awaiting_trainer":
        records = records.filter(AWAITING_TRAINER)
    elif filters.state == "declined":
        records = records.filter(trainer_declined_at__isnull=False)
    elif filters.state == "withdrawn":
        records = records.filter(withdrawn_at__isnull=False)
    return records.order_by(*order_by(sort, TRAINING_SORTS, "-trained_on"))


def training_awaiting_trainer(trainer: User) -> QuerySet[TrainingRecord]:
    """Records that name `trainer` and wait for them to confirm or decline, oldest first."""
    return (TrainingRecord.objects.filter(AWAITING_TRAINER, trainer=trainer)
            .select_related("user", "recorded_by").order_by("recorded_at", "id"))


def training_awaiting_others(recorder: User) -> QuerySet[TrainingRecord]:
    """Records `recorder` made that still wait for another person to confirm them: the recorder may
    withdraw one (a wrong trainer named, a trainer who left), oldest first."""
    return (TrainingRecord.objects.filter(AWAITING_TRAINER, recorded_by=recorder)
            .exclude(trainer=recorder).select_related("user", "trainer").order_by("recorded_at", "id"))


TRAINING_CSV_HEADER = ["person", "username", "document_kind", "document_code", "version", "trained_on", "trainer",
                       "valid_until", "recorded_by", "recorded_at", "trainer_confirmation", "trainer_decided_at",
                       "trainer_decline_reason", "withdrawn_at", "withdrawn_reason"]


def training_csv_rows(records: QuerySet[TrainingRecord]) -> Iterator[list[str]]:
    for record in records.iterator(chunk_size=500):
        decided = record.trainer_confirmed_at or record.trainer_declined_at
        yield [record.user.full_name, record.user.username, record.document_kind, record.document_code,
               record.version, record.trained_on.isoformat(), record.trainer.username,
               record.valid_until.isoformat() if record.valid_until else "", record.recorded_by.username,
               record.recorded_at.isoformat(), record.trainer_confirmation.value,
               decided.isoformat() if decided else "", record.trainer_decline_reason or "",
               record.withdrawn_at.isoformat() if record.withdrawn_at else "", record.withdrawn_reason or ""]
