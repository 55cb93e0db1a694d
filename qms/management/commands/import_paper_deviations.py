"""Transcribe the open paper deviations of a go-live from a CSV file, all or nothing.

    manage.py import_paper_deviations deviations.csv --user qa_reviewer [--reason TEXT]

One row per paper deviation, with a header row naming the columns (any order):
paper_reference, title, description, occurred_at, discovered_at, opened_on, due_date,
classification, classification_rationale, severity, occurrence, detectability, owner
(a username) and, optionally, immediate_actions. Times are ISO 8601 (`2025-10-03 14:20`, read in
the facility's time zone, or with an offset); dates are `YYYY-MM-DD`.

Exit 0 when every row was transcribed (one line `deviation <number> <paper reference> due <date>
[overdue]` each); 1 with one line when a row, the header or the user's role is refused, and then
nothing at all is imported; 2 with one line when the file or the user does not exist.
"""

from __future__ import annotations

import csv
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any, NoReturn

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.utils import timezone

from qms.models import Deviation, User
from qms.roles import Capability, can
from qms.services.legacy_import import deviation_import_from_paper

REQUIRED = ("paper_reference", "title", "description", "occurred_at", "discovered_at", "opened_on", "due_date",
            "classification", "classification_rationale", "severity", "occurrence", "detectability", "owner")
OPTIONAL = ("immediate_actions",)
DEFAULT_REASON = "Open paper deviation transcribed at go-live"


class FileUnreadable(Exception):
    """The file exists but cannot be opened (permissions, a directory): exit 2, like a missing file."""


class RowRefused(Exception):
    """A row that cannot be transcribed: the message names the line and the field."""


def _moment(text: str, field: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as error:
        raise ValidationError({field: f"{text!r} is not a date and time (YYYY-MM-DD HH:MM)."}) from error
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


def _day(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError as error:
        raise ValidationError({field: f"{text!r} is not a date (YYYY-MM-DD)."}) from error


def _score(text: str, field: str) -> int:
    try:
        return int(text.strip())
    except ValueError as error:
        raise ValidationError({field: f"{text!r} is not a whole number from 1 to 5."}) from error


def _owner(username: str) -> User:
    owner = User.objects.filter(username=username.strip()).first()
    if owner is None:
        raise ValidationError({"owner": f"No user {username.strip()!r}."})
    return owner


def _message(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return "; ".join(f"{field}: {' '.join(messages)}" for field, messages in error.message_dict.items())
    return " ".join(error.messages)


class Command(BaseCommand):
    help = "Transcribe open paper deviations from a CSV file, all or nothing (exit 1 refused, 2 unknown file/user)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("csv_path", help="The CSV file of paper deviations.")
        parser.add_argument("--user", required=True, help="Username of the QA person transcribing.")
        parser.add_argument("--reason", default=DEFAULT_REASON, help="Why (recorded with every audit entry).")

    def _fail(self, code: int, message: str) -> NoReturn:
        self.stderr.write(f"import_paper_deviations: {message}")
        sys.exit(code)

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["csv_path"])
        actor = User.objects.filter(username=options["user"], is_active=True).first()
        if actor is None:
            self._fail(2, f"unknown or inactive user {options['user']}")
        if not path.is_file():
            self._fail(2, f"no file {path}")
        if not can(actor, Capability.PAPER_RECORD_IMPORT):
            self._fail(1, f"refused, nothing imported: {actor.username}'s role may not transcribe paper records")
        try:
            imported = self._import(path, actor, options["reason"])
        except RowRefused as refusal:
            self._fail(1, f"refused, nothing imported: {refusal}")
        except FileUnreadable as unreadable:
            self._fail(2, str(unreadable))
        today = timezone.localdate()
        for deviation in imported:
            late = " overdue" if deviation.due_date and deviation.due_date < today else ""
            self.stdout.write(f"deviation {deviation.number} {deviation.paper_reference} "
                              f"due {deviation.due_date:%Y-%m-%d}{late}")

    @transaction.atomic
    def _import(self, path: Path, actor: User, reason: str) -> list[Deviation]:
        """Every row or none: the first refusal rolls the whole file back, numbers included."""
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                missing = [column for column in REQUIRED if column not in (reader.fieldnames or [])]
                if missing:
                    raise RowRefused(f"line 1: the header lacks {', '.join(missing)}")
                rows = [(reader.line_num, {k: (v or "") for k, v in row.items() if isinstance(k, str)})
                        for row in reader]
        except OSError as error:
            raise FileUnreadable(f"cannot read {path} ({error.strerror or error})") from error
        except (UnicodeDecodeError, csv.Error) as error:
            raise RowRefused(f"{path.name} is not a readable UTF-8 CSV file ({error})") from error
        for line, row in rows:
            if any("\x00" in value for value in row.values()):
                # The csv module lets a NUL through; PostgreSQL text cannot hold one.
                raise RowRefused(f"line {line}: a cell holds a NUL character (a binary file, or a broken export)")
        rows = [(line, row) for line, row in rows if any(value.strip() for value in row.values())]
        if not rows:
            raise RowRefused(f"{path.name} holds no paper deviation")
        return [self._row(line, row, actor, reason, path.name) for line, row in rows]

    def _row(self, line: int, row: dict[str, str], actor: User, reason: str, source_file: str) -> Deviation:
        try:
            return deviation_import_from_paper(
                actor=actor, paper_reference=row["paper_reference"], title=row["title"],
                description=row["description"], occurred_at=_moment(row["occurred_at"], "occurred_at"),
                discovered_at=_moment(row["discovered_at"], "discovered_at"),
                opened_on=_day(row["opened_on"], "opened_on"), due_date=_day(row["due_date"], "due_date"),
                classification=row["classification"].strip().lower(),
                classification_rationale=row["classification_rationale"],
                severity=_score(row["severity"], "severity"), occurrence=_score(row["occurrence"], "occurrence"),
                detectability=_score(row["detectability"], "detectability"), owner=_owner(row["owner"]),
                immediate_actions=row.get("immediate_actions") or "", reason=reason, source_file=source_file)
        except (ValidationError, PermissionDenied) as error:
            message = _message(error) if isinstance(error, ValidationError) else str(error)
            reference = (row.get("paper_reference") or "").strip() or "no paper reference"
            raise RowRefused(f"line {line} ({reference}): {message}") from error
