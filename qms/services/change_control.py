"""Change control: a change is described and justified, its impact on validation, training,
documents and batches in progress assessed, approved under signature by a QA approver who did
not write it, implemented through owned tasks completed under signature, and closed by QA
(EU GMP Part I 1.4(xii); Annex 15 §11; ICH Q10 3.2.3; ICH Q9(R1) for the depth of assessment).

Every step after the proposal takes `seen`, the version of the change control its page showed
(qms/staleness.py), and is refused when the record changed since; None means no page was read
(demo data, commands).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from django.contrib.sessions.backends.base import SessionBase
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from qms.audit import Event, create_with_reason, record_event, save_with_reason
from qms.links import record_link
from qms.models import ActionStatus, ChangeControl, ChangeControlStatus, ChangeTask, ChangeType, User
from qms.models.change_control import APPROVED_CHANGE_STATUSES, IMPACT_FIELDS
from qms.numbering import number_next
from qms.roles import Capability
from qms.services._guards import (
    date_not_past,
    ensure_can,
    locked,
    person_able,
    reason_required,
    text_required,
)
from qms.services._owned_tasks import owned_item_cancel, owned_item_complete
from qms.services.notifications import notify
from qms.signatures import ensure_approver_not_author, sign
from qms.staleness import ensure_unchanged
from qms.states import CHANGE_CONTROL_STEPS, ensure_step

IMPACT_LABELS = {
    "impact_validation": "validation and qualification",
    "impact_training": "training",
    "impact_documents": "documents (master records, SOPs)",
    "impact_ongoing_batches": "batches in progress",
}
EDITABLE_FIELDS = ("title", "change_type", "description", "justification", "affected_items", *IMPACT_FIELDS)


def _clean_definition(*, title: str, change_type: str, description: str, justification: str) -> dict[str, str]:
    errors: dict[str, str] = {}
    title = (title or "").strip()
    if not title or len(title) > 200:
        errors["title"] = "Give a title of 1 to 200 characters."
    if change_type not in ChangeType.values:
        errors["change_type"] = "Choose what kind of change this is."
    if not (description or "").strip():
        errors["description"] = "Describe what changes, from what to what."
    if not (justification or "").strip():
        errors["justification"] = "Say why the change is needed."
    if errors:
        raise ValidationError(errors)
    return {"title": title, "change_type": change_type, "description": description.strip(),
            "justification": justification.strip()}


@transaction.atomic
def change_control_open(*, actor: User, title: str, change_type: str, description: str, justification: str,
                        affected_items: str = "", impact_validation: str = "", impact_training: str = "",
                        impact_documents: str = "", impact_ongoing_batches: str = "",
                        reason: str = "") -> ChangeControl:
    """Propose a change, numbered CC-YYYY-NNNN: what changes and why (EU GMP Part I 1.4(xii),
    Annex 15 §11.2). The impact assessment may be completed before approval."""
    ensure_can(actor, Capability.CHANGE_CONTROL_AUTHOR, "propose changes")
    definition = _clean_definition(title=title, change_type=change_type, description=description,
                                   justification=justification)
    impacts = {"impact_validation": impact_validation, "impact_training": impact_training,
               "impact_documents": impact_documents, "impact_ongoing_batches": impact_ongoing_batches}
    reason = (reason or "").strip() or "Change proposed"
    return create_with_reason(
        ChangeControl, actor=actor, reason=reason, event=Event.CHANGE_CONTROL_OPENED,
        data={"change_type": definition["change_type"]}, number=number_next("CC"), author=actor,
        opened_at=timezone.now(), affected_items=(affected_items or "").strip(),
        **{field: (value or "").strip() for field, value in impacts.items()}, **definition)


@transaction.atomic
def change_control_assess(*, actor: User, change: ChangeControl, title: str, change_type: str, description: str,
                          justification: str, affected_items: str, impact_validation: str, impact_training: str,
                          impact_documents: str, impact_ongoing_batches: str, reason: str,
                          seen: str | None = None) -> ChangeControl:
    """Revise the proposal and its impact assessment while it awaits approval; every revision
    is kept in its history, and whoever revised it cannot approve it."""
    ensure_can(actor, Capability.CHANGE_CONTROL_AUTHOR, "revise change controls")
    reason = reason_required(reason)
    definition = _clean_definition(title=title, change_type=change_type, description=description,
                                   justification=justification)
    change = locked(change)
    ensure_unchanged(change, seen, again="save again")
    ensure_step(CHANGE_CONTROL_STEPS, "assess", change)
    values = {**definition, "affected_items": affected_items, "impact_validation": impact_validation,
              "impact_training": impact_training, "impact_documents": impact_documents,
              "impact_ongoing_batches": impact_ongoing_batches}
    for field in EDITABLE_FIELDS:
        setattr(change, field, (values[field] or "").strip())
    save_with_reason(change, actor=actor, reason=reason, event=Event.CHANGE_CONTROL_ASSESSED,
                     update_fields=list(EDITABLE_FIELDS))
    return change


def change_control_contributors(change: ChangeControl) -> list[User]:
    """The author and everyone who revised the proposal: none of them may approve it."""
    # The proposal can change only while open: its history rows in that state are its writers.
    editor_ids = set(change.history.filter(status=ChangeControlStatus.OPEN, history_user__isnull=False)
                     .values_list("history_user_id", flat=True))
    return list(User.objects.filter(pk__in=editor_ids | {change.author_id}))


def approval_gaps(change: ChangeControl) -> list[str]:
    return [f"the impact on {IMPACT_LABELS[field]}" for field in IMPACT_FIELDS if not getattr(change, field).strip()]


@transaction.atomic
def change_control_approve(*, actor: User, change: ChangeControl, password: str, reason: str,
                           username: str | None = None, session: SessionBase | None = None,
                           request: HttpRequest | None = None, seen: str | None = None) -> ChangeControl:
    """The QA approver approves the change under signature ("approved") once every impact is
    assessed; never the author or a reviser of it (EU GMP Annex 15 §11; 21 CFR 11.50, 11.200).
    No implementation task can be completed before this approval."""
    ensure_can(actor, Capability.CHANGE_CONTROL_APPROVE, "approve changes")
    reason = reason_required(reason)
    change = locked(change)
    ensure_unchanged(change, seen)
    step = ensure_step(CHANGE_CONTROL_STEPS, "approve", change)
    gaps = approval_gaps(change)
    if gaps:
        raise ValidationError(f"{change} cannot be approved yet: assess {', '.join(gaps)} (write \"none\" and why "
                              "if there is no impact).")
    ensure_approver_not_author(approver=actor, authors=change_control_contributors(change))
    assert step.signature is not None
    signature = sign(signer=actor, password=password, meaning=step.signature, target=change, reason=reason,
                     username=username, session=session, request=request)
    change.status, change.approved_by, change.approved_at = ChangeControlStatus.APPROVED, actor, timezone.now()
    save_with_reason(change, actor=actor, reason=reason, event=Event.CHANGE_CONTROL_APPROVED,
                     update_fields=["status", "approved_by", "approved_at"], data={"signature": signature.pk})
    if change.author_id != actor.pk:
        notify(user=change.author, text=f"{change.number} is approved: implementation may start.",
               link=record_link("change_control", change.number))
    return change


@transaction.atomic
def change_control_reject(*, actor: User, change: ChangeControl, password: str, reason: str,
                          username: str | None = None, session: SessionBase | None = None,
                          request: HttpRequest | None = None, seen: str | None = None) -> ChangeControl:
    """The QA approver rejects the proposal under signature ("rejected"), saying why."""
    ensure_can(actor, Capability.CHANGE_CONTROL_APPROVE, "reject changes")
    reason = reason_required(reason, "Say why the change is rejected.")
    change = locked(change)
    ensure_unchanged(change, seen)
    step = ensure_step(CHANGE_CONTROL_STEPS, "reject", change)
    ensure_approver_not_author(approver=actor, authors=change_control_contributors(change))
    assert step.signature is not None
    signature = sign(signer=actor, password=password, meaning=step.signature, target=change, reason=reason,
                     username=username, session=session, request=request)
    change.status, change.outcome_reason = ChangeControlStatus.REJECTED, reason
    save_with_reason(change, actor=actor, reason=reason, event=Event.CHANGE_CONTROL_REJECTED,
                     update_fields=["status", "outcome_reason"], data={"signature": signature.pk})
    return change


@transaction.atomic
def change_control_task_add(*, actor: User, change: ChangeControl, description: str, owner: User, due_date: date,
                            reason: str, seen: str | None = None) -> ChangeTask:
    """Plan an implementation task with its owner and due date; its owner is told."""
    ensure_can(actor, Capability.CHANGE_CONTROL_AUTHOR, "plan change implementation tasks")
    reason = reason_required(reason)
    description = text_required(description, "description", "Describe the task.")
    owner = person_able(owner, Capability.CHANGE_CONTROL_IMPLEMENT, "owner", "task owner")
    due_date = date_not_past(due_date, "due_date", "due date")
    change = locked(change)
    ensure_unchanged(change, seen, again="save again")
    ensure_step(CHANGE_CONTROL_STEPS, "task_add", change)
    sequence = (change.tasks.order_by("-sequence").values_list("sequence", flat=True).first() or 0) + 1
    task = create_with_reason(ChangeTask, actor=actor, reason=reason, change=change, sequence=sequence,
                              description=description, owner=owner, due_date=due_date)
    record_event(actor=actor, event=Event.CHANGE_CONTROL_TASK_ADDED, target=change, reason=reason,
                 data={"task": sequence, "owner": owner.username, "due_date": due_date})
    notify(user=owner, text=f"{change.number} task {sequence} is yours, due {due_date:%Y-%m-%d}: {description[:200]}",
           link=record_link("change_control", change.number))
    return task


@transaction.atomic
def change_control_task_complete(*, actor: User, task: ChangeTask, evidence: str, password: str, reason: str,
                                 username: str | None = None, session: SessionBase | None = None,
                                 request: HttpRequest | None = None, seen: str | None = None) -> ChangeTask:
    """The task's owner records it done with evidence and signs ("performed"). Refused before
    the change is approved (Annex 15 §11: no implementation without approval)."""
    ensure_can(actor, Capability.CHANGE_CONTROL_IMPLEMENT, "complete change tasks")
    reason = reason_required(reason)
    evidence = text_required(evidence, "evidence", "Describe the evidence of completion.")
    change = locked(task.change)
    ensure_unchanged(change, seen)
    step = ensure_step(CHANGE_CONTROL_STEPS, "task_complete", change)
    assert step.signature is not None
    task, signature = owned_item_complete(
        actor=actor, item=task, noun="task", evidence=evidence, password=password, reason=reason,
        meaning=step.signature, username=username, session=session, request=request)
    record_event(actor=actor, event=Event.CHANGE_CONTROL_TASK_COMPLETED, target=change, reason=reason,
                 data={"task": task.sequence, "signature": signature.pk})
    return task


@transaction.atomic
def change_control_task_cancel(*, actor: User, task: ChangeTask, reason: str, seen: str | None = None) -> ChangeTask:
    """Withdraw a task that turned out unnecessary, saying why (it stays on record)."""
    ensure_can(actor, Capability.CHANGE_CONTROL_AUTHOR, "cancel change tasks")
    reason = reason_required(reason, "Say why this task is no longer needed.")
    change = locked(task.change)
    ensure_unchanged(change, seen, again="save again")
    ensure_step(CHANGE_CONTROL_STEPS, "task_cancel", change)
    task = owned_item_cancel(actor=actor, item=task, reason=reason)
    record_event(actor=actor, event=Event.CHANGE_CONTROL_TASK_CANCELLED, target=change, reason=reason,
                 data={"task": task.sequence})
    return task


@transaction.atomic
def change_control_implement(*, actor: User, change: ChangeControl, reason: str,
                             seen: str | None = None) -> ChangeControl:
    """Declare the change implemented once every task is done (or withdrawn), at least one done."""
    ensure_can(actor, Capability.CHANGE_CONTROL_AUTHOR, "declare changes implemented")
    reason = reason_required(reason)
    change = locked(change)
    ensure_unchanged(change, seen, again="save again")
    ensure_step(CHANGE_CONTROL_STEPS, "implement", change)
    _ensure_no_pending_work(change, "declared implemented")
    abandoned = [why for check in _abandoned for why in check(change.number)]
    if abandoned:
        raise ValidationError(f"{change} cannot be declared implemented: {'; '.join(abandoned)}.")
    statuses = list(change.tasks.values_list("status", flat=True))
    if ActionStatus.DONE not in statuses:
        raise ValidationError(f"{change} has no completed implementation task.")
    if ActionStatus.OPEN in statuses:
        raise ValidationError(f"{change} still has {statuses.count(ActionStatus.OPEN)} open task(s).")
    change.status, change.implemented_at = ChangeControlStatus.IMPLEMENTED, timezone.now()
    save_with_reason(change, actor=actor, reason=reason, event=Event.CHANGE_CONTROL_IMPLEMENTED,
                     update_fields=["status", "implemented_at"])
    return change


@transaction.atomic
def change_control_close(*, actor: User, change: ChangeControl, summary: str, password: str, reason: str,
                         username: str | None = None, session: SessionBase | None = None,
                         request: HttpRequest | None = None, seen: str | None = None) -> ChangeControl:
    """The QA approver closes the implemented change under signature ("approved") with a
    summary of the post-implementation review (Annex 15 §11.7; ICH Q10 3.2.3)."""
    ensure_can(actor, Capability.CHANGE_CONTROL_APPROVE, "close change controls")
    reason = reason_required(reason)
    summary = text_required(summary, "summary", "Summarise the post-implementation review.")
    change = locked(change)
    ensure_unchanged(change, seen)
    step = ensure_step(CHANGE_CONTROL_STEPS, "close", change)
    ensure_approver_not_author(approver=actor, authors=change_control_contributors(change))
    _ensure_no_pending_work(change, "closed")
    assert step.signature is not None
    signature = sign(signer=actor, password=password, meaning=step.signature, target=change,
                     reason=f"{reason}\n{summary}", username=username, session=session, request=request)
    change.status, change.closure_summary = ChangeControlStatus.CLOSED, summary
    change.closed_by, change.closed_at = actor, timezone.now()
    save_with_reason(change, actor=actor, reason=reason, event=Event.CHANGE_CONTROL_CLOSED,
                     update_fields=["status", "closure_summary", "closed_by", "closed_at"],
                     data={"signature": signature.pk})
    return change


@transaction.atomic
def change_control_cancel(*, actor: User, change: ChangeControl, reason: str,
                          seen: str | None = None) -> ChangeControl:
    """The QA approver cancels a change that will not be made, saying why."""
    ensure_can(actor, Capability.CHANGE_CONTROL_APPROVE, "cancel change controls")
    reason = reason_required(reason, "Say why the change is cancelled.")
    change = locked(change)
    ensure_unchanged(change, seen, again="save again")
    ensure_step(CHANGE_CONTROL_STEPS, "cancel", change)
    _ensure_no_pending_work(change, "cancelled")
    change.status, change.outcome_reason = ChangeControlStatus.CANCELLED, reason
    save_with_reason(change, actor=actor, reason=reason, event=Event.CHANGE_CONTROL_CANCELLED,
                     update_fields=["status", "outcome_reason"])
    return change


# Work that other apps do under a change control and that is not finished yet, e.g. ebr's master
# record versions not yet effective: a change is not implemented, nor closed, before it.
PendingWork = Callable[[str], list[str]]
_pending_work: list[PendingWork] = []


def change_control_pending_register(check: PendingWork) -> None:
    """Register `check(number) -> descriptions of unfinished work under that change control`."""
    if check not in _pending_work:
        _pending_work.append(check)


_abandoned: list[PendingWork] = []


def change_control_abandoned_register(check: PendingWork) -> None:
    """Register `check(number) -> why the change it authorised was never made` (e.g. every master
    record version drafted under it was withdrawn): such a change control is cancelled, or the change
    drafted again under it, never declared implemented (Annex 15 §11: the record says what changed)."""
    if check not in _abandoned:
        _abandoned.append(check)


Citing = Callable[[str], list[tuple[str, str, str]]]
_citing: list[Citing] = []


def change_control_citing_register(find: Citing) -> None:
    """Register `find(number) -> (label, state, url) of each record created under that change control`
    (another app's records, e.g. master record versions), so that its page lists them."""
    if find not in _citing:
        _citing.append(find)


def change_control_citing(number: str) -> list[tuple[str, str, str]]:
    """Every record that cites change control `number` as its authorisation (EU GMP Annex 15 §11:
    the change and what it changed are traceable both ways)."""
    return [row for find in _citing for row in find(number)]


def _ensure_no_pending_work(change: ChangeControl, doing: str) -> None:
    pending = [item for check in _pending_work for item in check(change.number)]
    if pending:
        raise ValidationError(f"{change} cannot be {doing} while work it authorises is unfinished: "
                              f"{'; '.join(pending)}.")


def change_control_scope_refusal(number: str, item_code: str, change_type: str = ChangeType.PROCESS) -> str | None:
    """Why change control `number` does not authorise a change of `item_code`, or None: it must be
    a change of that type that names the item among its affected items (EU GMP Part I 1.4(xii),
    Annex 15 §11: a document changes under the change control that assessed that change, not
    under any approved one). Approval itself is change_control_is_approved's."""
    # Locked: implementing, closing or cancelling it waits for the new work to be recorded, and
    # then sees it (_ensure_no_pending_work).
    change = ChangeControl.objects.select_for_update().filter(number=(number or "").strip().upper()).first()
    if change is None:
        return None
    if change.status != ChangeControlStatus.APPROVED:
        return (f"{change.number} is {change.get_status_display().lower()}: no further work is authorised under "
                "it; a new change needs its own change control.")
    if change.change_type != change_type:
        return (f"{change.number} is a change of {change.get_change_type_display().lower()}: "
                f"{item_code} changes under a change control of type "
                f"{ChangeType(change_type).label.lower()}.")
    named = {word.strip(" .;:()").upper() for word in change.affected_items.replace(",", " ").split()}
    if item_code.upper() not in named:
        return f"{change.number} does not name {item_code} among its affected items."
    return None


def change_control_exists(number: str) -> bool:
    return ChangeControl.objects.filter(number=(number or "").strip().upper()).exists()


def change_control_is_approved(number: str) -> bool:
    """True when change control `number` (e.g. "CC-2026-0001") has been approved and not since
    rejected or cancelled: approved, implemented or closed. Master record versioning relies on
    it (EU GMP Part I 4.x, Annex 15 §11: documents change only under approved change control)."""
    return ChangeControl.objects.filter(number=(number or "").strip().upper(),
                                        status__in=APPROVED_CHANGE_STATUSES).exists()
