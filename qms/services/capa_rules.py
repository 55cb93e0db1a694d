"""The rules of each CAPA step, checked before anything is written: every problem of one submission
is collected and refused at once, each on its field (qms/services/_guards.problem_collect). The
steps themselves (qms/services/capa.py) run them under the CAPA's lock; the screens' forms
(qms/ui/forms.py) run them too, so that their own checks and these show together.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from functools import partial
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone

from qms.models import (
    Capa,
    CapaActionKind,
    CapaDeviation,
    CapaSource,
    CapaStatus,
    Deviation,
    DeviationStatus,
    EffectivenessResult,
    User,
)
from qms.roles import Capability
from qms.services._guards import (
    choice_required,
    date_not_past,
    person_able,
    problem_collect,
    reason_required,
    text_required,
)
from qms.states import CAPA_STEPS

CLOSING_RESULTS = (EffectivenessResult.EFFECTIVE, EffectivenessResult.JUSTIFIED)


def problems_refuse(problems: dict[str, Any]) -> None:
    if problems:
        raise ValidationError(problems)


def deviation_addressable(deviation: Deviation, field: str = "deviations") -> Deviation:
    """The deviation as stored now (not the caller's copy), refused when cancelled."""
    deviation = Deviation.objects.get(pk=deviation.pk)
    if deviation.status == DeviationStatus.CANCELLED:
        raise ValidationError({field: f"{deviation} is cancelled: a CAPA cannot address it."})
    return deviation


def capa_takes_deviations(capa: Capa, field: str = "deviations") -> None:
    """Only a CAPA in progress takes a new deviation (CAPA_STEPS["deviation_link"]; ICH Q10 3.2.2):
    a closed CAPA's actions and effectiveness check are done and signed for the deviations it had,
    so a recurrence needs a CAPA of its own; a cancelled CAPA addresses nothing."""
    if str(capa.status) in CAPA_STEPS["deviation_link"].sources:
        return
    if capa.status == CapaStatus.CLOSED:
        raise ValidationError({field: f"{capa} is closed: its actions and effectiveness check are done, so it "
                                      "cannot take another deviation. Open a new CAPA for this one."})
    raise ValidationError({field: f"{capa} is {capa.get_status_display().lower()}: it cannot address a deviation."})


def deviation_linkable(capa: Capa, deviation: Deviation, field: str = "deviations") -> Deviation:
    """The deviation as stored now, when `capa` can take it: the CAPA in progress, the deviation not
    cancelled and not already linked to it."""
    capa_takes_deviations(capa, field)
    deviation = deviation_addressable(deviation, field)
    if CapaDeviation.objects.filter(capa=capa, deviation=deviation).exists():
        raise ValidationError({field: f"{deviation} is already linked to {capa}."})
    return deviation


def capa_fields_clean(*, title: str, problem_statement: str, source: str,
                      deviations: Iterable[Deviation]) -> tuple[str, list[Deviation]]:
    """What every CAPA needs, opened here or transcribed from paper: a title, the problem, a known
    source, and the deviation(s) when it comes from deviations. Returns the title and the deviations,
    each once."""
    errors: dict[str, str] = {}
    title = (title or "").strip()
    if not title or len(title) > 200:
        errors["title"] = "Give a title of 1 to 200 characters."
    if not (problem_statement or "").strip():
        errors["problem_statement"] = "State the problem this CAPA addresses."
    if source not in CapaSource.values:
        errors["source"] = "Choose the source: deviation, audit, complaint or trend."
    linked = list({d.pk: d for d in deviations}.values())
    if source == CapaSource.DEVIATION and not linked:
        errors["deviations"] = "Name the deviation(s) this CAPA addresses."
    if errors:
        raise ValidationError(errors)
    return title, linked


def capa_open_check(*, title: str, problem_statement: str, source: str, deviations: Iterable[Deviation],
                    owner: User | None, effectiveness_due: date | None) -> tuple[str, list[Deviation], User]:
    """Every rule of a new CAPA's fields at once: those of any CAPA (capa_fields_clean), deviations
    a CAPA can address, an owner able to own it, an effectiveness date not in the past. Returns
    the title, the deviations (each once) and the owner."""
    problems: dict[str, Any] = {}
    deviations = list(deviations)
    fields = problem_collect(problems, lambda: capa_fields_clean(title=title, problem_statement=problem_statement,
                                                          source=source, deviations=deviations))
    for deviation in {d.pk: d for d in deviations}.values():
        problem_collect(problems, partial(deviation_addressable, deviation))
    owner = problem_collect(problems,
                            lambda: person_able(owner, Capability.CAPA_ACTION_COMPLETE, "owner", "CAPA owner"))
    if effectiveness_due is not None:
        problem_collect(problems,
                        lambda: date_not_past(effectiveness_due, "effectiveness_due", "effectiveness check date"))
    problems_refuse(problems)
    return fields[0], fields[1], owner


def capa_action_check(*, kind: str, description: str, owner: User | None, due_date: date | None,
                      reason: str) -> tuple[str, str, User, date, str]:
    """Every rule of a new action at once: its kind, what it is, an owner able to complete it, a
    due date not in the past, the reason. Returns them cleaned, in that order."""
    problems: dict[str, Any] = {}
    cleaned = (problem_collect(problems, lambda: choice_required(kind, CapaActionKind, "kind", "kind of action")),
               problem_collect(problems, lambda: text_required(description, "description", "Describe the action.")),
               problem_collect(problems, lambda: person_able(owner, Capability.CAPA_ACTION_COMPLETE, "owner",
                                                      "action owner")),
               problem_collect(problems, lambda: date_not_past(due_date, "due_date", "due date")),
               problem_collect(problems, lambda: reason_required(reason)))
    problems_refuse(problems)
    return cleaned


def capa_deviation_link_check(*, capa: Capa, deviation: Deviation | None, reason: str) -> tuple[Deviation, str]:
    """Every rule of a deviation link at once: a deviation `capa` can take (deviation_linkable), the
    reason."""
    problems: dict[str, Any] = {}
    cleaned = problem_collect(problems, lambda: reason_required(reason))
    found: Any = None
    if deviation is None:
        problems["deviation"] = [ValidationError("Name the deviation.")]
    else:
        named = deviation
        found = problem_collect(problems, lambda: deviation_linkable(capa, named, "deviation"))
    problems_refuse(problems)
    return found, cleaned


def _criteria_open(capa: Capa) -> None:
    latest = capa.latest_effectiveness()
    if latest is not None and latest.result in CLOSING_RESULTS:
        # Criteria are set before the check (ICH Q10 3.2.2): once a check has settled the CAPA on
        # them, rewriting them would change what that signed result means. (After a check that found
        # the CAPA not effective, new actions and new criteria for the next check are the point.)
        raise ValidationError({"criteria": f"{capa} was found {latest.get_result_display().lower()} on these "
                                           "criteria: they can no longer change."})


def capa_effectiveness_plan_check(*, capa: Capa, criteria: str, due_date: date | None,
                                  reason: str) -> tuple[str, date, str]:
    """Every rule of an effectiveness plan at once: criteria stated and not yet settled by a check,
    a date not in the past, the reason. Returns the criteria, the date and the reason."""
    problems: dict[str, Any] = {}
    cleaned = (problem_collect(problems, lambda: text_required(criteria, "criteria",
                                                        "State the criteria that show the CAPA worked.")),
               problem_collect(problems, lambda: date_not_past(due_date, "due_date", "effectiveness check date")),
               problem_collect(problems, lambda: reason_required(reason)))
    problem_collect(problems, lambda: _criteria_open(capa))
    problems_refuse(problems)
    return cleaned


def _result_possible(capa: Capa, result: str) -> None:
    if not capa.effectiveness_criteria:
        raise ValidationError({"criteria": f"Plan the effectiveness criteria of {capa} before checking."})
    if result == EffectivenessResult.EFFECTIVE and capa.effectiveness_due and \
            timezone.localdate() < capa.effectiveness_due:
        # Effective means the criteria held over the planned time; judged earlier, they could not have.
        raise ValidationError({"result": f"The effectiveness check of {capa} is planned for "
                                         f"{capa.effectiveness_due:%Y-%m-%d}: it cannot be found effective "
                                         "before. To check earlier, first change the planned date, saying why."})


def capa_effectiveness_record_check(*, capa: Capa, result: str, evidence: str, reason: str) -> tuple[str, str, str]:
    """Every rule of an effectiveness result at once: a known result, possible now (criteria planned,
    "effective" not before the planned date), its evidence, the reason. Returns them cleaned."""
    problems: dict[str, Any] = {}
    cleaned = (problem_collect(problems, lambda: choice_required(result, EffectivenessResult, "result", "result")),
               problem_collect(problems, lambda: text_required(
                   evidence, "evidence", "Describe what was checked, or justify why it cannot be.")),
               problem_collect(problems, lambda: reason_required(reason)))
    problem_collect(problems, lambda: _result_possible(capa, result))
    problems_refuse(problems)
    return cleaned
