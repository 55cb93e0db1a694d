"""Forms of the CAPA page: each runs the CAPA step's own rules (qms/services/capa_rules.py) with its
field checks, so that every error of one submission shows at once, each on its field."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from qms.models import (
    Capa,
    CapaActionKind,
    CapaSource,
    Deviation,
    EffectivenessResult,
)
from qms.roles import Capability
from qms.selectors_people import users_with
from qms.services import capa_rules
from qms.ui.forms import PersonChoiceField, SignedForm, _date_field, _reason, _text


class CapaRulesForm(forms.Form):
    """A CAPA form whose service rules (the `*_check` functions of qms/services/capa_rules.py) run with
    its own field checks, so that one submission shows every problem at once, each on its field;
    the service checks them again under the CAPA's lock. `capa`: the record the form acts on."""

    def __init__(self, *args: Any, capa: Capa | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.capa = capa

    def rules(self, cleaned: dict[str, Any]) -> None:
        raise NotImplementedError

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        try:
            self.rules(cleaned)
        except ValidationError as refused:
            for field, errors in refused.update_error_dict({}).items():
                placed = field if field in self.fields else None
                if placed is None or placed not in self.errors:  # a field's own error says it first
                    self.add_error(placed, errors)
        return cleaned


class CapaOpenForm(CapaRulesForm):
    title = forms.CharField(max_length=200)
    problem_statement = forms.CharField(widget=_text(4))
    source = forms.ChoiceField(choices=CapaSource.choices)
    source_reference = forms.CharField(required=False, max_length=200,
                                       help_text="Audit report, complaint or trend report reference.")
    deviations = forms.CharField(required=False, max_length=500, label="Deviations addressed",
                                 help_text="DEV numbers separated by commas.")
    owner = PersonChoiceField(queryset=users_with(Capability.CAPA_ACTION_COMPLETE), label="CAPA owner")
    effectiveness_criteria = forms.CharField(required=False, widget=_text(2),
                                             help_text="How effectiveness will be judged (may be set later).")
    effectiveness_due = _date_field("Effectiveness check due", required=False)

    def clean_deviations(self) -> list[Deviation]:
        numbers = [n.strip().upper() for n in (self.cleaned_data.get("deviations") or "").split(",") if n.strip()]
        found = {d.number: d for d in Deviation.objects.filter(number__in=numbers)}
        missing = [n for n in numbers if n not in found]
        if missing:
            raise ValidationError(f"No deviation {', '.join(missing)}.")
        return [found[n] for n in numbers]

    def rules(self, cleaned: dict[str, Any]) -> None:
        capa_rules.capa_open_check(
            title=cleaned.get("title", ""), problem_statement=cleaned.get("problem_statement", ""),
            source=cleaned.get("source", ""), deviations=cleaned.get("deviations") or [], owner=cleaned.get("owner"),
            effectiveness_due=cleaned.get("effectiveness_due"))


class DeviationLinkForm(CapaRulesForm):
    deviation = forms.CharField(max_length=20, label="Deviation number", help_text="DEV-YYYY-NNNN")
    reason = _reason()

    def clean_deviation(self) -> Deviation:
        number = self.cleaned_data["deviation"].strip().upper()
        deviation = Deviation.objects.filter(number=number).first()
        if deviation is None:
            raise ValidationError(f"No deviation {number}.")
        return deviation

    def rules(self, cleaned: dict[str, Any]) -> None:
        if self.capa is not None:
            capa_rules.capa_deviation_link_check(capa=self.capa, deviation=cleaned.get("deviation"),
                                                 reason=cleaned.get("reason", ""))


class ActionAddForm(CapaRulesForm):
    kind = forms.ChoiceField(choices=CapaActionKind.choices, widget=forms.RadioSelect)
    description = forms.CharField(widget=_text(3))
    owner = PersonChoiceField(queryset=users_with(Capability.CAPA_ACTION_COMPLETE))
    due_date = _date_field("Due date")
    reason = _reason("Action planned")

    def rules(self, cleaned: dict[str, Any]) -> None:
        capa_rules.capa_action_check(kind=cleaned.get("kind", ""), description=cleaned.get("description", ""),
                                     owner=cleaned.get("owner"), due_date=cleaned.get("due_date"),
                                     reason=cleaned.get("reason", ""))


class EffectivenessPlanForm(CapaRulesForm):
    criteria = forms.CharField(widget=_text(3), help_text="Measurable: e.g. no recurrence in the next 10 batches.")
    due_date = _date_field("Check due on")
    reason = _reason("Effectiveness check planned")

    def rules(self, cleaned: dict[str, Any]) -> None:
        if self.capa is not None:
            capa_rules.capa_effectiveness_plan_check(capa=self.capa, criteria=cleaned.get("criteria", ""),
                                                     due_date=cleaned.get("due_date"),
                                                     reason=cleaned.get("reason", ""))


class EffectivenessRecordForm(CapaRulesForm, SignedForm):
    result = forms.ChoiceField(choices=EffectivenessResult.choices, widget=forms.RadioSelect)
    evidence = forms.CharField(widget=_text(3), help_text="What was checked against the criteria, or why a check is "
                                                          "not possible.")
    reason = _reason("Effectiveness checked")

    def rules(self, cleaned: dict[str, Any]) -> None:
        if self.capa is not None:
            capa_rules.capa_effectiveness_record_check(capa=self.capa, result=cleaned.get("result", ""),
                                                       evidence=cleaned.get("evidence", ""),
                                                       reason=cleaned.get("reason", ""))
