"""Workflows of the quality records: which step is allowed from which state, by whom, signed how.

One table per record type, readable in one screen by a validation engineer. A service looks
its step up here (`ensure_step`), checks the actor's capability and the record's state, and
applies the signature the table names. `target` None means the step leaves the state as it is.
No state-machine library: the table is the specification.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError

from qms.models.capa import CapaStatus
from qms.models.change_control import ChangeControlStatus
from qms.models.deviations import DeviationStatus
from qms.roles import Capability, can
from qms.signatures import Meaning


@dataclass(frozen=True)
class Step:
    sources: frozenset[str]
    target: str | None
    capability: Capability
    signature: Meaning | None = None
    label: str = ""


class TransitionRefused(ValidationError):
    """The record is not in a state where this step is allowed (QMS records, master records and
    batches alike). A ValidationError, so that every screen shows it beside the form the user
    filled in, like any other refusal."""


def _from(*states: str) -> frozenset[str]:
    return frozenset(str(state) for state in states)


D = DeviationStatus
_D_ACTIVE = _from(D.OPEN, D.TRIAGE, D.INVESTIGATION, D.PENDING_APPROVAL)

# EU GMP Part I 1.4(xiv), 8.15; ICH Q9(R1); ICH Q10 3.2.2
DEVIATION_STEPS: dict[str, Step] = {
    "subject_add": Step(_from(D.OPEN, D.TRIAGE, D.INVESTIGATION), None, Capability.DEVIATION_INVESTIGATE,
                        label="link a record"),
    "triage": Step(_from(D.OPEN, D.TRIAGE), D.TRIAGE, Capability.DEVIATION_TRIAGE, label="triage"),
    "investigate": Step(_from(D.TRIAGE, D.INVESTIGATION), D.INVESTIGATION, Capability.DEVIATION_INVESTIGATE,
                        label="record the investigation"),
    "capa_decide": Step(_from(D.INVESTIGATION), None, Capability.DEVIATION_INVESTIGATE,
                        label="record the CAPA decision"),
    "submit": Step(_from(D.INVESTIGATION), D.PENDING_APPROVAL, Capability.DEVIATION_INVESTIGATE,
                   Meaning.AUTHORED, label="submit for approval"),
    "return": Step(_from(D.PENDING_APPROVAL), D.INVESTIGATION, Capability.DEVIATION_CLOSE,
                   label="return to investigation"),
    "close": Step(_from(D.PENDING_APPROVAL), D.CLOSED, Capability.DEVIATION_CLOSE, Meaning.APPROVED,
                  label="approve and close"),
    # "granted", not "approved": QA reviewers may extend, and an approval is a QA approver's act.
    "extend": Step(_from(D.TRIAGE, D.INVESTIGATION, D.PENDING_APPROVAL), None, Capability.DEVIATION_EXTEND,
                   Meaning.GRANTED, label="extend the due date"),
    "cancel": Step(_D_ACTIVE, D.CANCELLED, Capability.DEVIATION_CANCEL, label="cancel"),
}

C = CapaStatus
_C_ACTIVE = _from(C.OPEN, C.EFFECTIVENESS_CHECK)

# ICH Q10 3.2.2
CAPA_STEPS: dict[str, Step] = {
    "deviation_link": Step(_C_ACTIVE, None, Capability.CAPA_MANAGE, label="link a deviation"),
    "action_add": Step(_C_ACTIVE, C.OPEN, Capability.CAPA_MANAGE, label="add an action"),
    "action_cancel": Step(_from(C.OPEN), None, Capability.CAPA_MANAGE, label="cancel an action"),
    # The last open action done moves the CAPA on to its effectiveness check (service decides).
    "action_complete": Step(_from(C.OPEN), None, Capability.CAPA_ACTION_COMPLETE, Meaning.PERFORMED,
                            label="complete an action"),
    "effectiveness_plan": Step(_C_ACTIVE, None, Capability.CAPA_MANAGE, label="plan the effectiveness check"),
    # "Not effective" sends the CAPA back to open for further actions (service decides).
    "effectiveness_record": Step(_from(C.EFFECTIVENESS_CHECK), None, Capability.CAPA_MANAGE, Meaning.REVIEWED,
                                 label="record the effectiveness check"),
    "close": Step(_from(C.EFFECTIVENESS_CHECK), C.CLOSED, Capability.CAPA_CLOSE, Meaning.APPROVED,
                  label="approve and close"),
    "cancel": Step(_C_ACTIVE, C.CANCELLED, Capability.CAPA_CLOSE, label="cancel"),
}

CC = ChangeControlStatus

# EU GMP Part I 1.4(xii), Annex 15 §11; ICH Q10 3.2.3
CHANGE_CONTROL_STEPS: dict[str, Step] = {
    "assess": Step(_from(CC.OPEN), None, Capability.CHANGE_CONTROL_AUTHOR, label="update the impact assessment"),
    "approve": Step(_from(CC.OPEN), CC.APPROVED, Capability.CHANGE_CONTROL_APPROVE, Meaning.APPROVED,
                    label="approve"),
    "reject": Step(_from(CC.OPEN), CC.REJECTED, Capability.CHANGE_CONTROL_APPROVE, Meaning.REJECTED,
                   label="reject"),
    "task_add": Step(_from(CC.OPEN, CC.APPROVED), None, Capability.CHANGE_CONTROL_AUTHOR,
                     label="add an implementation task"),
    "task_cancel": Step(_from(CC.OPEN, CC.APPROVED), None, Capability.CHANGE_CONTROL_AUTHOR,
                        label="cancel a task"),
    # No implementation before approval (Annex 15 §11.4).
    "task_complete": Step(_from(CC.APPROVED), None, Capability.CHANGE_CONTROL_IMPLEMENT, Meaning.PERFORMED,
                          label="complete a task"),
    "implement": Step(_from(CC.APPROVED), CC.IMPLEMENTED, Capability.CHANGE_CONTROL_AUTHOR,
                      label="declare implemented"),
    "close": Step(_from(CC.IMPLEMENTED), CC.CLOSED, Capability.CHANGE_CONTROL_APPROVE, Meaning.APPROVED,
                  label="approve and close"),
    "cancel": Step(_from(CC.OPEN, CC.APPROVED), CC.CANCELLED, Capability.CHANGE_CONTROL_APPROVE, label="cancel"),
}


def ensure_step(steps: Mapping[str, Step], action: str, record: Any) -> Step:
    """The step `action` of `record`'s workflow, or TransitionRefused saying why not now."""
    step = steps[action]
    if str(record.status) not in step.sources:
        raise TransitionRefused(
            f"{record} is {record.get_status_display().lower()}: you cannot {step.label or action} now.")
    return step


def step_possible(steps: Mapping[str, Step], action: str, record: Any, user: Any) -> bool:
    """For screens: would `user` be offered `action` on `record` (state and role)?"""
    step = steps[action]
    return str(record.status) in step.sources and can(user, step.capability)


def steps_possible(steps: Mapping[str, Step], record: Any, user: Any) -> set[str]:
    return {action for action in steps if step_possible(steps, action, record, user)}
