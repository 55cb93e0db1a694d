"""CAPA: corrective and preventive actions, each owned and completed with evidence under its
owner's signature, an effectiveness check against criteria set in advance, and QA closure
under signature (ICH Q10 3.2.2; EU GMP Part I 1.4(xiv); ICH Q9(R1) for the depth of action).

Every function is one step of CAPA_STEPS in qms/states.py: role, lock, state, change through
the history helpers with a catalogue event, signature where the table names one. Each step after
the opening takes `seen`, the version of the CAPA its page showed (qms/staleness.py), and is
refused when the CAPA, its actions, effectiveness checks or deviation links changed since; None
means no page was read (commands, demo data). A submission's problems are all refused at once,
each on its field; the `*_check` functions hold those rules, and the screens' forms run them too,
so that their own checks and these show together (qms/services/capa_rules.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from django.contrib.sessions.backends.base import SessionBase
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from qms.audit import Event, create_with_reason, record_event, save_with_reason
from qms.links import record_link
from qms.models import (
    ActionStatus,
    Capa,
    CapaAction,
    CapaDeviation,
    CapaEffectivenessCheck,
    CapaStatus,
    Deviation,
    EffectivenessResult,
    User,
)
from qms.numbering import number_next
from qms.roles import Capability
from qms.services._guards import (
    ensure_can,
    locked,
    problem_collect,
    reason_required,
    text_required,
)
from qms.services._owned_tasks import owned_item_cancel, owned_item_complete
from qms.services.capa_rules import (
    CLOSING_RESULTS,
    capa_action_check,
    capa_deviation_link_check,
    capa_effectiveness_plan_check,
    capa_effectiveness_record_check,
    capa_open_check,
    deviation_linkable,
    problems_refuse,
)
from qms.services.notifications import notify
from qms.signatures import ensure_not_among, sign
from qms.staleness import ensure_unchanged
from qms.states import CAPA_STEPS, ensure_step


def deviation_link_record(capa: Capa, deviation: Deviation, actor: User, reason: str,
                          field: str = "deviations") -> CapaDeviation:
    """Link a deviation to a CAPA, audit-logged, refused on the caller's form `field` unless
    `deviation_linkable`. The caller holds the CAPA's lock and checked the actor's role."""
    deviation = deviation_linkable(capa, deviation, field)
    link = create_with_reason(CapaDeviation, actor=actor, reason=reason, capa=capa, deviation=deviation)
    record_event(actor=actor, event=Event.CAPA_DEVIATION_LINKED, target=capa, reason=reason,
                 data={"deviation": deviation.number})
    return link


def action_record(*, capa: Capa, sequence: int, kind: str, description: str, owner: User, due_date: date,
                  actor: User, reason: str) -> CapaAction:
    """Create one action, audit it and tell its owner. The caller checked role, state and fields."""
    action = create_with_reason(CapaAction, actor=actor, reason=reason, capa=capa, sequence=sequence, kind=kind,
                                description=description, owner=owner, due_date=due_date)
    data: dict[str, object] = {"action": sequence, "kind": kind, "owner": owner.username, "due_date": due_date}
    origin = ""
    if capa.paper_reference:
        data["paper_reference"] = capa.paper_reference
        origin = f" ({capa.transcribed_from})"
    record_event(actor=actor, event=Event.CAPA_ACTION_ADDED, target=capa, reason=reason, data=data)
    notify(user=owner, text=f"{capa.number} action {sequence}{origin} is yours, due {due_date:%Y-%m-%d}: "
                            f"{description[:200]}", link=record_link("capa", capa.number))
    return action


@transaction.atomic
def capa_open(*, actor: User, title: str, problem_statement: str, source: str, source_reference: str = "",
              deviations: Iterable[Deviation] = (), owner: User | None = None, effectiveness_criteria: str = "",
              effectiveness_due: date | None = None, reason: str = "") -> Capa:
    """Open a CAPA numbered CAPA-YYYY-NNNN from a deviation, audit, complaint or trend (ICH Q10
    3.2.2). A CAPA from deviations names at least one; its owner answers for it."""
    ensure_can(actor, Capability.CAPA_MANAGE, "open CAPAs")
    title, linked, owner = capa_open_check(title=title, problem_statement=problem_statement, source=source,
                                           deviations=deviations, owner=owner or actor,
                                           effectiveness_due=effectiveness_due)
    reason = (reason or "").strip() or "CAPA opened"
    capa = create_with_reason(
        Capa, actor=actor, reason=reason, event=Event.CAPA_OPENED,
        data={"source": source, "deviations": [d.number for d in linked]},
        number=number_next("CAPA"), title=title, problem_statement=problem_statement.strip(), source=source,
        source_reference=(source_reference or "").strip(), owner=owner, opened_by=actor, opened_at=timezone.now(),
        effectiveness_criteria=(effectiveness_criteria or "").strip(), effectiveness_due=effectiveness_due)
    for deviation in linked:
        deviation_link_record(capa, deviation, actor, reason)
    if owner.pk != actor.pk:
        notify(user=owner, text=f"You own {capa.number}: {capa.title}", link=record_link("capa", capa.number))
    return capa


@transaction.atomic
def capa_deviation_link(*, actor: User, capa: Capa, deviation: Deviation, reason: str,
                        seen: str | None = None) -> CapaDeviation:
    """Link one more deviation the CAPA addresses while it is in progress (recurring problems share
    one CAPA); a closed or cancelled CAPA takes none (capa_takes_deviations)."""
    ensure_can(actor, Capability.CAPA_MANAGE, "link deviations to CAPAs")
    capa = locked(capa)
    ensure_unchanged(capa, seen, again="save again")
    ensure_step(CAPA_STEPS, "deviation_link", capa)
    deviation, reason = capa_deviation_link_check(capa=capa, deviation=deviation, reason=reason)
    return deviation_link_record(capa, deviation, actor, reason, "deviation")


@transaction.atomic
def capa_action_add(*, actor: User, capa: Capa, kind: str, description: str, owner: User, due_date: date,
                    reason: str, seen: str | None = None) -> CapaAction:
    """Add a corrective or preventive action with its owner and due date; its owner is told.
    A new action on a CAPA awaiting its effectiveness check re-opens it."""
    ensure_can(actor, Capability.CAPA_MANAGE, "add CAPA actions")
    kind, description, owner, due_date, reason = capa_action_check(kind=kind, description=description, owner=owner,
                                                                   due_date=due_date, reason=reason)
    capa = locked(capa)
    ensure_unchanged(capa, seen, again="save again")
    step = ensure_step(CAPA_STEPS, "action_add", capa)
    sequence = (capa.actions.order_by("-sequence").values_list("sequence", flat=True).first() or 0) + 1
    action = action_record(capa=capa, sequence=sequence, kind=kind, description=description, owner=owner,
                           due_date=due_date, actor=actor, reason=reason)
    if step.target and capa.status != step.target:
        capa.status = step.target
        save_with_reason(capa, actor=actor, reason=reason, update_fields=["status"])
    return action


def _actions_finished(capa: Capa) -> bool:
    """Every action done or cancelled, and at least one done."""
    statuses = set(capa.actions.values_list("status", flat=True))
    return ActionStatus.DONE in statuses and ActionStatus.OPEN not in statuses


def _advance_when_actions_finished(capa: Capa, actor: User, reason: str) -> None:
    if capa.status == CapaStatus.OPEN and _actions_finished(capa):
        capa.status = CapaStatus.EFFECTIVENESS_CHECK
        save_with_reason(capa, actor=actor, reason=reason, update_fields=["status"])
        if capa.owner_id != actor.pk:
            notify(user=capa.owner, text=f"All actions of {capa.number} are done: check its effectiveness.",
                   link=record_link("capa", capa.number))


@transaction.atomic
def capa_action_complete(*, actor: User, action: CapaAction, evidence: str, password: str, reason: str,
                         username: str | None = None, session: SessionBase | None = None,
                         request: HttpRequest | None = None, seen: str | None = None) -> CapaAction:
    """The action's owner records its completion with evidence and signs it ("performed";
    21 CFR 11.50) on the version of the CAPA they read. When the last open action is done the
    CAPA moves to its effectiveness check."""
    ensure_can(actor, Capability.CAPA_ACTION_COMPLETE, "complete CAPA actions")
    problems: dict[str, Any] = {}
    reason = problem_collect(problems, lambda: reason_required(reason))
    evidence = problem_collect(problems, lambda: text_required(
        evidence, "evidence", "Describe the evidence of completion (document, record, date)."))
    problems_refuse(problems)
    capa = locked(action.capa)
    ensure_unchanged(capa, seen)
    step = ensure_step(CAPA_STEPS, "action_complete", capa)
    assert step.signature is not None
    action, signature = owned_item_complete(
        actor=actor, item=action, noun="action", evidence=evidence, password=password, reason=reason,
        meaning=step.signature, username=username, session=session, request=request)
    record_event(actor=actor, event=Event.CAPA_ACTION_COMPLETED, target=capa, reason=reason,
                 data={"action": action.sequence, "signature": signature.pk})
    _advance_when_actions_finished(capa, actor, reason)
    return action


@transaction.atomic
def capa_action_cancel(*, actor: User, action: CapaAction, reason: str, seen: str | None = None) -> CapaAction:
    """QA withdraws an action that is no longer needed, saying why (it stays on record)."""
    ensure_can(actor, Capability.CAPA_MANAGE, "cancel CAPA actions")
    reason = reason_required(reason, "Say why this action is no longer needed.")
    capa = locked(action.capa)
    ensure_unchanged(capa, seen, again="save again")
    ensure_step(CAPA_STEPS, "action_cancel", capa)
    action = owned_item_cancel(actor=actor, item=action, reason=reason)
    record_event(actor=actor, event=Event.CAPA_ACTION_CANCELLED, target=capa, reason=reason,
                 data={"action": action.sequence})
    _advance_when_actions_finished(capa, actor, reason)
    return action


@transaction.atomic
def capa_effectiveness_plan(*, actor: User, capa: Capa, criteria: str, due_date: date, reason: str,
                            seen: str | None = None) -> Capa:
    """Set, before checking, how effectiveness will be judged and by when (ICH Q10 3.2.2)."""
    ensure_can(actor, Capability.CAPA_MANAGE, "plan CAPA effectiveness checks")
    capa = locked(capa)
    ensure_unchanged(capa, seen, again="save again")
    ensure_step(CAPA_STEPS, "effectiveness_plan", capa)
    criteria, due_date, reason = capa_effectiveness_plan_check(capa=capa, criteria=criteria, due_date=due_date,
                                                               reason=reason)
    capa.effectiveness_criteria, capa.effectiveness_due = criteria, due_date
    save_with_reason(capa, actor=actor, reason=reason, event=Event.CAPA_EFFECTIVENESS_PLANNED,
                     update_fields=["effectiveness_criteria", "effectiveness_due"])
    return capa


@transaction.atomic
def capa_effectiveness_record(*, actor: User, capa: Capa, result: str, evidence: str, password: str, reason: str,
                              username: str | None = None, session: SessionBase | None = None,
                              request: HttpRequest | None = None, seen: str | None = None) -> CapaEffectivenessCheck:
    """Record the effectiveness check against the planned criteria, signed ("reviewed"):
    effective; not effective (the CAPA re-opens for further actions); or not verifiable with a
    written justification (ICH Q10 3.2.2). "Effective" is not recorded before the planned date:
    an earlier check needs the plan changed first, with its reason (audited)."""
    ensure_can(actor, Capability.CAPA_MANAGE, "record CAPA effectiveness checks")
    capa = locked(capa)
    ensure_unchanged(capa, seen)
    step = ensure_step(CAPA_STEPS, "effectiveness_record", capa)
    result, evidence, reason = capa_effectiveness_record_check(capa=capa, result=result, evidence=evidence,
                                                               reason=reason)
    check = create_with_reason(CapaEffectivenessCheck, actor=actor, reason=reason, capa=capa, result=result,
                               evidence=evidence, checked_by=actor, checked_at=timezone.now())
    assert step.signature is not None
    signature = sign(signer=actor, password=password, meaning=step.signature, target=check, reason=reason,
                     username=username, session=session, request=request)
    if result == EffectivenessResult.NOT_EFFECTIVE:
        capa.status = CapaStatus.OPEN
        save_with_reason(capa, actor=actor, reason=reason, update_fields=["status"])
    record_event(actor=actor, event=Event.CAPA_EFFECTIVENESS_RECORDED, target=capa, reason=reason,
                 data={"result": result, "signature": signature.pk})
    return check


def capa_closure_gaps(capa: Capa) -> list[str]:
    """What still stands between this CAPA and its closure, in words."""
    gaps = []
    statuses = list(capa.actions.values_list("status", flat=True))
    if ActionStatus.DONE not in statuses:
        gaps.append("no action has been completed")
    if ActionStatus.OPEN in statuses:
        gaps.append(f"{statuses.count(ActionStatus.OPEN)} action(s) still open")
    latest = capa.latest_effectiveness()
    if latest is None:
        gaps.append("effectiveness has not been checked")
    elif latest.result not in CLOSING_RESULTS:
        gaps.append("the last effectiveness check found the CAPA not effective")
    return gaps


def _capa_doers(capa: Capa) -> list[User]:
    """Whoever opened, owned, carried out or judged the CAPA: its closure is an independent review of
    their work."""
    doers = [capa.opened_by, capa.owner]
    doers += [action.completed_by for action in capa.actions.select_related("completed_by") if action.completed_by]
    doers += [check.checked_by for check in capa.effectiveness_checks.select_related("checked_by")]
    return doers


@transaction.atomic
def capa_close(*, actor: User, capa: Capa, password: str, reason: str, username: str | None = None,
               session: SessionBase | None = None, request: HttpRequest | None = None,
               seen: str | None = None) -> Capa:
    """The QA approver closes the CAPA under signature ("approved") only when every action is
    done (or withdrawn) and effectiveness is confirmed or justified (ICH Q10 3.2.2), and only if
    they neither own it nor completed one of its actions nor checked its effectiveness: closure
    is an independent review of that work (EU GMP Part I 1.4(xiv), 2.x QA independence)."""
    ensure_can(actor, Capability.CAPA_CLOSE, "close CAPAs")
    reason = reason_required(reason)
    capa = locked(capa)
    ensure_unchanged(capa, seen)
    step = ensure_step(CAPA_STEPS, "close", capa)
    gaps = capa_closure_gaps(capa)
    if gaps:
        raise ValidationError(f"{capa} cannot be closed: {'; '.join(gaps)}.")
    ensure_not_among(actor, _capa_doers(capa), f"{capa} must be closed by someone other than who opened or owns "
                                               "it and the people who completed its actions or checked its "
                                               "effectiveness.")
    assert step.signature is not None
    signature = sign(signer=actor, password=password, meaning=step.signature, target=capa, reason=reason,
                     username=username, session=session, request=request)
    capa.status, capa.closed_by, capa.closed_at = CapaStatus.CLOSED, actor, timezone.now()
    save_with_reason(capa, actor=actor, reason=reason, event=Event.CAPA_CLOSED,
                     update_fields=["status", "closed_by", "closed_at"], data={"signature": signature.pk})
    return capa


@transaction.atomic
def capa_cancel(*, actor: User, capa: Capa, reason: str, seen: str | None = None) -> Capa:
    """The QA approver cancels a CAPA opened in error; a deviation relying on it then cannot be
    closed until it records a new CAPA decision."""
    ensure_can(actor, Capability.CAPA_CLOSE, "cancel CAPAs")
    reason = reason_required(reason, "Say why this CAPA is cancelled.")
    capa = locked(capa)
    ensure_unchanged(capa, seen, again="save again")
    ensure_step(CAPA_STEPS, "cancel", capa)
    capa.status, capa.cancelled_reason = CapaStatus.CANCELLED, reason
    save_with_reason(capa, actor=actor, reason=reason, event=Event.CAPA_CANCELLED,
                     update_fields=["status", "cancelled_reason"])
    return capa
