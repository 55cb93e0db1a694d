"""Which audit events make up a record's history: the record's own and those of its parts.

A deviation's batch impact assessments (its DeviationSubject rows) and due-date extensions, a
CAPA's actions and effectiveness checks, a change control's tasks, a batch's steps, entries,
alarms, deviations and review flags are audited under their own rows; a record's history that
left them out would hide who assessed the impact or dispositioned a flag (21 CFR 11.10(e);
EU GMP Annex 11 §9: the audit trail of a record is reviewable as a whole). Each app registers
the parts of the records it knows; an app that builds on another (nlp_review on ebr) registers
parts of the other's records, so no app imports one that must not depend on it.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db.models import Q

# parts(target_id) -> {child target_type: [child target ids]}
RecordParts = Callable[[str], dict[str, list[str]]]
_parts: dict[str, list[RecordParts]] = {}
DEPTH = 3  # batch → deviation → its batch impact rows; deeper parts are records of their own


def record_parts_register(target_type: str, parts: RecordParts) -> None:
    providers = _parts.setdefault(target_type, [])
    if parts not in providers:
        providers.append(parts)


def record_targets(target_type: str, target_id: str) -> dict[str, set[str]]:
    """The record and its parts, as {target_type: {target ids}}."""
    found: dict[str, set[str]] = {target_type: {target_id}}
    frontier = [(target_type, target_id)]
    for _ in range(DEPTH):
        following = []
        for kind, pk in frontier:
            if not (pk.isascii() and pk.isdigit()):
                continue  # no such row (ids are numbers): the record has no parts
            for parts in _parts.get(kind, []):
                for child_type, child_ids in parts(pk).items():
                    new = {str(child) for child in child_ids} - found.setdefault(child_type, set())
                    found[child_type] |= new
                    following += [(child_type, child) for child in new]
        frontier = following
    return found


def record_condition(targets: dict[str, set[str]]) -> Q:
    """The filter on AuditEvent for these targets (nothing matches an empty set)."""
    condition = Q(pk__in=[])
    for target_type, ids in targets.items():
        if ids:
            condition |= Q(target_type=target_type, target_id__in=sorted(ids))
    return condition
