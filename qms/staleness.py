"""The version of a record a person read, so that nobody signs or saves over content they never saw.

21 CFR 11.50 and 11.70: a signature manifests what the signer approved and is linked to that
record; ALCOA+ (attributable, accurate): an edit is made to the record its author read. A form
that signs or edits a change control, a deviation or a CAPA therefore carries the version of the
record it was rendered from (`seen`), and the service, holding the record's row lock, refuses when
the record changed since: the person reviews the changes, then signs or saves again.

The version is the latest django-simple-history row of the record and of each child row its page
shows (tasks, linked records and their impact, extensions, CAPA links, a CAPA's actions and
effectiveness checks). Every change to those rows writes a history row (services save through
qms.audit's helpers only; bulk writes are refused by a code check), and history rows are
append-only, so any change moves the version.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db import models

from qms.models import (
    Capa,
    CapaAction,
    CapaDeviation,
    CapaEffectivenessCheck,
    ChangeControl,
    ChangeTask,
    Deviation,
    DeviationExtension,
    DeviationSubject,
    User,
)
from qms.signatures import format_local

M = TypeVar("M", bound=models.Model)
CHANGED_SINCE = "This record changed since you opened it"
HistoryParts = Callable[[Any], list[models.QuerySet[Any]]]


def _change_control_parts(change: ChangeControl) -> list[models.QuerySet[Any]]:
    return [ChangeControl.history.filter(id=change.pk), ChangeTask.history.filter(change_id=change.pk)]


def _deviation_parts(deviation: Deviation) -> list[models.QuerySet[Any]]:
    capas = CapaDeviation.objects.filter(deviation_id=deviation.pk).values("capa_id")
    return [Deviation.history.filter(id=deviation.pk),
            DeviationSubject.history.filter(deviation_id=deviation.pk),
            DeviationExtension.history.filter(deviation_id=deviation.pk),
            CapaDeviation.history.filter(deviation_id=deviation.pk),
            Capa.history.filter(id__in=capas)]  # its status is shown beside the link


def _capa_parts(capa: Capa) -> list[models.QuerySet[Any]]:
    # The page shows the linked deviations' numbers only (not their status): the links are its part.
    return [Capa.history.filter(id=capa.pk), CapaAction.history.filter(capa_id=capa.pk),
            CapaEffectivenessCheck.history.filter(capa_id=capa.pk), CapaDeviation.history.filter(capa_id=capa.pk)]


# What each record's page shows: the history of the record's row and of the child rows read with it.
PAGE_PARTS: dict[type[models.Model], HistoryParts] = {
    ChangeControl: _change_control_parts,
    Deviation: _deviation_parts,
    Capa: _capa_parts,
}


def page_parts_register(model: type[models.Model], parts: HistoryParts) -> None:
    """Another app's record page takes part (called from its AppConfig.ready), so that qms reads
    the version of, say, a master record version without importing ebr."""
    PAGE_PARTS[model] = parts


def _latest(record: models.Model) -> list[dict[str, Any] | None]:
    return [part.order_by("-history_id").values("history_id", "history_date", "history_user_id").first()
            for part in PAGE_PARTS[type(record)](record)]


def _token(latest: list[dict[str, Any] | None]) -> str:
    return ".".join(str(row["history_id"]) if row else "0" for row in latest)


def record_version(record: models.Model) -> str:
    """The version of `record` as stored now, e.g. "812.40.0.0.0" (one history id per part)."""
    return _token(_latest(record))


def record_version_read(record: M) -> str:
    """The record's version, then the record re-read, in that order: a change committed between
    the two makes the page show newer content than its version (a later save is refused and
    reviewed), never older content than its version (which would let it through unseen)."""
    version = record_version(record)
    record.refresh_from_db()
    return version


def _last_change(latest: list[dict[str, Any] | None]) -> tuple[str, datetime]:
    row = max((row for row in latest if row), key=lambda row: row["history_date"])
    user = User.objects.filter(pk=row["history_user_id"]).first() if row["history_user_id"] else None
    return (user.full_name if user else "the system"), row["history_date"]


def ensure_unchanged(record: models.Model, seen: str | None, *, again: str = "sign again") -> None:
    """Refuse unless `record` is still the version `seen` its page was rendered from.

    Call it with the record's row locked (qms.services._guards.locked), so that no change can
    slip in between this check and the signature or save. `seen` None means no page was read
    (a management command, the demo data, a test of another rule): there is nothing to compare.
    """
    if seen is None:
        return
    latest = _latest(record)
    if _token(latest) == seen:
        return
    who, when = _last_change(latest)
    raise ValidationError(f"{CHANGED_SINCE} ({who} at {format_local(when)}): "
                          f"review the changes, then {again}.")
