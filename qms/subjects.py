"""What a deviation is about: generic links to batches, steps, equipment and materials.

The quality system never imports the manufacturing app (ebr uses qms, not the other way
round), so a deviation points at its subjects by type, id and a printed label. The
manufacturing app registers a resolver per subject type (in its AppConfig.ready) so that a
person reporting a deviation by hand can type a batch number or equipment code and get the
same `Subject` the manufacturing services pass in.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import ValidationError

BATCH = "ebr.batch"
STEP = "ebr.stepexecution"
EQUIPMENT = "ebr.equipment"
MATERIAL = "ebr.materiallot"

# Printed names of the subject types the quality system knows; others show their type.
SUBJECT_TYPE_NAMES: dict[str, str] = {
    BATCH: "Batch",
    STEP: "Step",
    EQUIPMENT: "Equipment",
    MATERIAL: "Material lot",
}

_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Subject:
    """A record a deviation concerns, e.g. Subject("ebr.batch", "12", "B-2026-0003")."""

    subject_type: str
    subject_id: str
    label: str

    def validate(self) -> None:
        if not _TYPE_PATTERN.match(self.subject_type or ""):
            raise ValidationError({"subjects": f"Subject type {self.subject_type!r} is not of the form app.model."})
        if not str(self.subject_id).strip():
            raise ValidationError({"subjects": f"A {self.type_name.lower()} subject needs an id."})
        if not self.label.strip() or len(self.label) > 200:
            raise ValidationError({"subjects": f"A {self.type_name.lower()} subject needs a label of 1 to 200 "
                                               "characters."})

    @property
    def type_name(self) -> str:
        return SUBJECT_TYPE_NAMES.get(self.subject_type, self.subject_type)


SubjectResolver = Callable[[str], "Subject | None"]


@dataclass(frozen=True)
class SubjectKind:
    subject_type: str
    name: str
    resolve: SubjectResolver
    url: Callable[[Subject], str] | None = None


_kinds: dict[str, SubjectKind] = {}


def subject_kind_register(subject_type: str, name: str, resolve: SubjectResolver,
                          url: Callable[[Subject], str] | None = None) -> None:
    """Let people reference `subject_type` by its printed reference (batch number, equipment code)."""
    _kinds[subject_type] = SubjectKind(subject_type, name, resolve, url)
    SUBJECT_TYPE_NAMES.setdefault(subject_type, name)


def subject_kind_unregister(subject_type: str) -> None:
    _kinds.pop(subject_type, None)


def subject_kind(subject_type: str) -> SubjectKind | None:
    """The registered kind of `subject_type`, if any."""
    return _kinds.get(subject_type)


def subject_kinds() -> list[SubjectKind]:
    return sorted(_kinds.values(), key=lambda kind: kind.name)


def subject_resolve(subject_type: str, reference: str) -> Subject:
    """The subject a person typed, or a ValidationError naming what was not found."""
    kind = _kinds.get(subject_type)
    if kind is None:
        raise ValidationError({"subjects": f"Records of type {subject_type} cannot be referenced here."})
    subject = kind.resolve(reference.strip())
    if subject is None:
        raise ValidationError({"subjects": f"No {kind.name.lower()} {reference.strip()!r} was found."})
    return subject


def subject_url(subject_type: str, subject_id: str, label: str) -> str:
    kind = _kinds.get(subject_type)
    if kind is None or kind.url is None:
        return ""
    return kind.url(Subject(subject_type, subject_id, label))
