"""Allowed transitions and the signature each needs, as plain tables a validation engineer can read.

A transition not in a table is refused. `None` as meaning: no signature for that transition.
"""

from __future__ import annotations

from ebr.models import BatchStatus as B
from ebr.models import VersionStatus as V
from qms.signatures import Meaning
from qms.states import TransitionRefused

# Master record versions (EU GMP Part I 4.3: documents approved, signed and dated).
VERSION_TRANSITIONS: dict[tuple[V, V], Meaning | None] = {
    (V.DRAFT, V.IN_REVIEW): Meaning.AUTHORED,      # the author submits and signs
    (V.DRAFT, V.WITHDRAWN): Meaning.WITHDRAWN,     # an abandoned draft, never approved (reason recorded)
    (V.IN_REVIEW, V.DRAFT): None,                  # returned to the author (reason recorded)
    (V.IN_REVIEW, V.APPROVED): Meaning.APPROVED,   # after a reviewer's "reviewed" signature, QA approves
    (V.APPROVED, V.EFFECTIVE): None,               # made effective on a date; the previous one is superseded
    (V.EFFECTIVE, V.SUPERSEDED): None,             # only by a newer version becoming effective
    (V.EFFECTIVE, V.RETIRED): Meaning.APPROVED,
    (V.APPROVED, V.RETIRED): Meaning.APPROVED,
}

# Patient batches.
BATCH_TRANSITIONS: dict[tuple[B, B], Meaning | None] = {
    (B.PLANNED, B.IN_PROGRESS): None,
    (B.IN_PROGRESS, B.ON_HOLD): None,
    (B.ON_HOLD, B.IN_PROGRESS): None,
    (B.IN_PROGRESS, B.COMPLETED): None,            # when the last step is done
    (B.COMPLETED, B.IN_REVIEW): None,              # QA takes the record for review
    (B.IN_REVIEW, B.RELEASED): Meaning.RELEASED,   # Qualified Person (EU GMP Annex 16)
    (B.IN_REVIEW, B.REJECTED): Meaning.REJECTED,
    (B.PLANNED, B.ABORTED): Meaning.APPROVED,
    (B.IN_PROGRESS, B.ABORTED): Meaning.APPROVED,
    (B.ON_HOLD, B.ABORTED): Meaning.APPROVED,
}


def version_transition_check(current: str, target: V) -> Meaning | None:
    key = (V(current), target)
    if key not in VERSION_TRANSITIONS:
        raise TransitionRefused(f"A {V(current).label.lower()} version cannot become {target.label.lower()}.")
    return VERSION_TRANSITIONS[key]


def batch_transition_check(current: str, target: B) -> Meaning | None:
    key = (B(current), target)
    if key not in BATCH_TRANSITIONS:
        raise TransitionRefused(f"A batch that is {B(current).label.lower()} cannot become {target.label.lower()}.")
    return BATCH_TRANSITIONS[key]


# Batches whose record may still change; everything after completion is read-only.
BATCH_EXECUTABLE = frozenset({B.IN_PROGRESS})
BATCH_READ_ONLY = frozenset({B.COMPLETED, B.IN_REVIEW, B.RELEASED, B.REJECTED, B.ABORTED})
# Records certified or ended by QA: nothing is added to them any more, not even instrument data.
BATCH_CLOSED = frozenset({B.RELEASED, B.REJECTED, B.ABORTED})
# Completed records waiting for the QP's decision: QA may still review them again.
BATCH_AWAITING_DECISION = BATCH_READ_ONLY - BATCH_CLOSED
