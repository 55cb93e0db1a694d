"""The investigation of a deviation: root cause, impact per batch, CAPA decision, signed submission."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from django.contrib.sessions.backends.base import SessionBase
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from qms.audit import Event, save_with_reason
from qms.models import (
    BatchImpact,
    Capa,
    CapaDecision,
    CapaDeviation,
    CapaStatus,
    Deviation,
    DeviationStatus,
    RootCauseCategory,
    User,
)
from qms.roles import Capability
from qms.services._guards import choice_required, ensure_can, locked, reason_required, text_required
from qms.services.capa import deviation_link_record
from qms.signatures import sign
from qms.staleness import ensure_unchanged
from qms.states import DEVIATION_STEPS, ensure_step
from qms.subjects import BATCH

MAX_WHYS = 5


# --- investigation --------------------------------------------------------------------------

def _clean_whys(whys: Sequence[str]) -> list[str]:
    cleaned = [why.strip() for why in whys]
    while cleaned and not cleaned[-1]:
        cleaned.pop()
    if len(cleaned) > MAX_WHYS:
        raise ValidationError({"root_cause_whys": f"A 5-why analysis has at most {MAX_WHYS} answers."})
    if any(not why for why in cleaned):
        raise ValidationError({"root_cause_whys": "Answer each why in order, without gaps."})
    return cleaned


def _subject_impacts_apply(deviation: Deviation, impacts: Mapping[int, tuple[str, str]], actor: User,
                           reason: str) -> list[str]:
    subjects = {subject.pk: subject for subject in deviation.subjects.select_for_update()}
    changed = []
    for subject_pk, (impact, assessment) in impacts.items():
        subject = subjects.get(int(subject_pk))
        if subject is None:
            raise ValidationError({"subjects": f"Record {subject_pk} is not linked to {deviation}."})
        impact = choice_required(impact, BatchImpact, "subjects", f"impact on {subject.label}")
        assessment = (assessment or "").strip()
        if impact != BatchImpact.NOT_ASSESSED and not assessment:
            raise ValidationError({"subjects": f"Explain the impact assessment for {subject.label}."})
        if (subject.impact, subject.impact_assessment) != (impact, assessment):
            subject.impact, subject.impact_assessment = impact, assessment
            save_with_reason(subject, actor=actor, reason=reason, update_fields=["impact", "impact_assessment"])
            changed.append(subject.label)
    return changed


@transaction.atomic
def deviation_investigate(*, actor: User, deviation: Deviation, root_cause_category: str, root_cause: str,
                          whys: Sequence[str] = (), product_impact: str,
                          subject_impacts: Mapping[int, tuple[str, str]] | None = None,
                          reason: str, seen: str | None = None) -> Deviation:
    """Record the investigation (it may be saved as it progresses): root-cause category (people,
    method, machine, material, environment, measurement), the 5-why chain and the root cause,
    the product-quality impact, and the impact on each linked batch (EU GMP Part I 1.4(xiv), 8.15;
    ICH Q10 3.2.2). Completeness is checked when it is submitted.
    """
    ensure_can(actor, Capability.DEVIATION_INVESTIGATE, "investigate deviations")
    reason = reason_required(reason)
    if root_cause_category:
        choice_required(root_cause_category, RootCauseCategory, "root_cause_category", "root-cause category")
    cleaned_whys = _clean_whys(whys)
    deviation = locked(deviation)
    ensure_unchanged(deviation, seen, again="save again")
    ensure_step(DEVIATION_STEPS, "investigate", deviation)
    changed_subjects = _subject_impacts_apply(deviation, subject_impacts or {}, actor, reason)
    deviation.status = DeviationStatus.INVESTIGATION
    deviation.root_cause_category, deviation.root_cause = root_cause_category or "", (root_cause or "").strip()
    deviation.root_cause_whys, deviation.product_impact = cleaned_whys, (product_impact or "").strip()
    deviation.investigated_by, deviation.investigated_at = actor, timezone.now()
    save_with_reason(deviation, actor=actor, reason=reason, event=Event.DEVIATION_INVESTIGATED,
                     data={"subjects_assessed": changed_subjects})
    return deviation


NO_CAPA_WHY = "Write why no CAPA is needed."
NO_CAPA_NAMED = "Name the CAPA that addresses this deviation (open one first if needed)."


@transaction.atomic
def deviation_capa_decide(*, actor: User, deviation: Deviation, decision: str, rationale: str = "",
                          capa: Capa | None = None, reason: str, seen: str | None = None) -> Deviation:
    """Decide whether the root cause needs a CAPA (ICH Q10 3.2.2): "required" names the CAPA and
    links it; "not required" needs a written rationale. Closure is refused until decided.
    """
    ensure_can(actor, Capability.DEVIATION_INVESTIGATE, "decide on CAPA for deviations")
    reason = reason_required(reason)
    decision = choice_required(decision, CapaDecision, "capa_decision", "CAPA decision")
    rationale = (rationale or "").strip()
    if decision == CapaDecision.NOT_REQUIRED:
        rationale = text_required(rationale, "capa_rationale", NO_CAPA_WHY)
        capa = None
    elif capa is not None:
        capa = locked(capa)  # its state now, and no one closes or cancels it meanwhile
    if decision == CapaDecision.REQUIRED and capa is None:
        raise ValidationError({"capa": NO_CAPA_NAMED})
    if capa is not None and capa.status == CapaStatus.CANCELLED:
        raise ValidationError({"capa": f"{capa} is cancelled and cannot address a deviation."})
    deviation = locked(deviation)
    ensure_unchanged(deviation, seen, again="save again")
    ensure_step(DEVIATION_STEPS, "capa_decide", deviation)
    if capa is not None and not CapaDeviation.objects.filter(capa=capa, deviation=deviation).exists():
        # A new link changes the CAPA's signed content: only a CAPA in progress takes one (a closed
        # CAPA is refused here, on the form's CAPA field; one it already addresses stays named).
        deviation_link_record(capa, deviation, actor, reason, "capa")
    deviation.capa_decision, deviation.capa_rationale, deviation.capa = decision, rationale, capa
    save_with_reason(deviation, actor=actor, reason=reason, event=Event.DEVIATION_CAPA_DECIDED,
                     update_fields=["capa_decision", "capa_rationale", "capa"],
                     data={"decision": decision, "capa": capa.number if capa else ""})
    return deviation


def investigation_gaps(deviation: Deviation) -> list[str]:
    """What is still missing before the investigation can be submitted, in words."""
    gaps = []
    if not deviation.root_cause_category:
        gaps.append("the root-cause category")
    if not deviation.root_cause:
        gaps.append("the root cause")
    if not deviation.product_impact:
        gaps.append("the product impact assessment")
    unassessed = [s.label for s in deviation.subjects.filter(subject_type=BATCH, impact=BatchImpact.NOT_ASSESSED)]
    if unassessed:
        gaps.append("the impact on batch " + ", ".join(unassessed))
    if not deviation.capa_decision:
        gaps.append("the CAPA decision")
    return gaps


def ensure_investigation_complete(deviation: Deviation) -> None:
    gaps = investigation_gaps(deviation)
    if gaps:
        raise ValidationError(f"{deviation} is not complete: give {'; '.join(gaps)}.")


@transaction.atomic
def deviation_submit(*, actor: User, deviation: Deviation, password: str, reason: str, username: str | None = None,
                     session: SessionBase | None = None, request: HttpRequest | None = None,
                     seen: str | None = None) -> Deviation:
    """The investigator signs the complete investigation (meaning "authored") and submits it
    for QA approval (21 CFR 11.50, 11.200; EU GMP Part I 1.4(xiv))."""
    ensure_can(actor, Capability.DEVIATION_INVESTIGATE, "submit deviation investigations")
    reason = reason_required(reason)
    deviation = locked(deviation)
    ensure_unchanged(deviation, seen)
    step = ensure_step(DEVIATION_STEPS, "submit", deviation)
    ensure_investigation_complete(deviation)
    assert step.signature is not None
    signature = sign(signer=actor, password=password, meaning=step.signature, target=deviation, reason=reason,
                     username=username, session=session, request=request)
    deviation.status = DeviationStatus.PENDING_APPROVAL
    deviation.submitted_by, deviation.submitted_at = actor, timezone.now()
    save_with_reason(deviation, actor=actor, reason=reason, event=Event.DEVIATION_SUBMITTED,
                     update_fields=["status", "submitted_by", "submitted_at"], data={"signature": signature.pk})
    return deviation
