"""Forms of the quality-system screens."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone

from qms.models import (
    BatchImpact,
    Capa,
    CapaDecision,
    CapaSource,
    CapaStatus,
    ChangeControlStatus,
    ChangeType,
    Classification,
    Deviation,
    DeviationSource,
    DocumentKind,
    RootCauseCategory,
)
from qms.models.capa import ACTIVE_CAPA_STATUSES
from qms.risk import SCORE_LABELS
from qms.roles import Capability
from qms.selectors_deviations import STATUS_FILTER_CHOICES
from qms.selectors_people import users_active, users_who_train, users_with
from qms.subjects import Subject, subject_kinds, subject_resolve

DATETIME_FORMAT = "%Y-%m-%dT%H:%M"


def _text(rows: int = 3, **attrs: Any) -> forms.Textarea:
    return forms.Textarea(attrs={"rows": rows, **attrs})


def _date_field(label: str, required: bool = True, help_text: str = "") -> forms.DateField:
    return forms.DateField(label=label, required=required, help_text=help_text,
                           widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))


def _datetime_field(label: str, required: bool = True, help_text: str = "") -> forms.DateTimeField:
    return forms.DateTimeField(label=label, required=required, help_text=help_text, input_formats=[DATETIME_FORMAT],
                               widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_FORMAT))


def _reason(initial: str = "", help_text: str = "Recorded in the audit trail.") -> forms.CharField:
    return forms.CharField(max_length=2000, initial=initial, help_text=help_text, widget=_text(2))


class PersonChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.full_name} ({obj.username})"


class SignedForm(forms.Form):
    """Re-authentication at signing (21 CFR 11.200): password always; username at the first
    signing of the session."""

    username = forms.CharField(required=False, max_length=64, label="Your username",
                               widget=forms.TextInput(attrs={"autocomplete": "username", "autocapitalize": "none"}))
    password = forms.CharField(label="Your password",
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))
    signature_fields = ("username", "password")

    def __init__(self, *args: Any, needs_username: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if needs_username:
            self.fields["username"].required = True
        else:
            del self.fields["username"]
        # Signing fields last, just above the button.
        for name in self.signature_fields:
            if name in self.fields:
                self.fields[name] = self.fields.pop(name)

    def signing(self) -> dict[str, Any]:
        return {"password": self.cleaned_data["password"], "username": self.cleaned_data.get("username") or None}


class ReasonForm(forms.Form):
    reason = _reason()


class SignedReasonForm(SignedForm):
    reason = _reason()


# --- filters --------------------------------------------------------------------------------

class ListFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=100, label="Search")


class DeviationFilterForm(ListFilterForm):
    status = forms.ChoiceField(required=False, choices=STATUS_FILTER_CHOICES)
    classification = forms.ChoiceField(required=False, choices=[("", "any class"), *Classification.choices])
    source = forms.ChoiceField(required=False, choices=[("", "any source"), *DeviationSource.choices])
    root_cause_category = forms.ChoiceField(required=False, label="Root cause",
                                            choices=[("", "any root cause"), *RootCauseCategory.choices])
    overdue = forms.BooleanField(required=False, label="Overdue only")
    opened_from = _date_field("Reported from", required=False)
    opened_to = _date_field("Reported to", required=False)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("opened_from") and cleaned.get("opened_to") and cleaned["opened_from"] > cleaned["opened_to"]:
            self.add_error("opened_to", "The end date is before the start date.")
        return cleaned


class CapaFilterForm(ListFilterForm):
    status = forms.ChoiceField(required=False, choices=[("", "any status"), ("active", "open or checking"),
                                                        *CapaStatus.choices])
    source = forms.ChoiceField(required=False, choices=[("", "any source"), *CapaSource.choices])
    overdue = forms.BooleanField(required=False, label="Overdue only")


class ChangeFilterForm(ListFilterForm):
    status = forms.ChoiceField(required=False, choices=[("", "any status"), ("active", "not closed"),
                                                        *ChangeControlStatus.choices])
    change_type = forms.ChoiceField(required=False, label="Type", choices=[("", "any type"), *ChangeType.choices])


class TrainingFilterForm(ListFilterForm):
    document_kind = forms.ChoiceField(required=False, label="Document", choices=[("", "any"), *DocumentKind.choices])
    state = forms.ChoiceField(required=False, choices=[("", "any"), ("current", "current"), ("expired", "expired"),
                                                       ("awaiting_trainer", "awaiting the trainer"),
                                                       ("declined", "declined by the trainer"),
                                                       ("withdrawn", "withdrawn by the recorder")])


class MatrixFilterForm(forms.Form):
    people = forms.ChoiceField(required=False, choices=[("executors", "people who execute batches"),
                                                        ("all", "everyone")])
    document_kind = forms.ChoiceField(required=False, label="Document", choices=[("", "all"), *DocumentKind.choices])


# --- deviations -----------------------------------------------------------------------------

def subject_field_name(subject_type: str) -> str:
    return "subjects_" + subject_type.replace(".", "__")


class DeviationOpenForm(forms.Form):
    title = forms.CharField(max_length=200, help_text="One line: what departed from what was expected.")
    description = forms.CharField(widget=_text(5), help_text="What happened, where, who noticed, what was observed.")
    occurred_at = _datetime_field("When it happened")
    discovered_at = _datetime_field("When it was discovered", required=False, help_text="Leave empty for now.")
    immediate_actions = forms.CharField(required=False, widget=_text(3),
                                        help_text="What was done at once to contain it (quarantine, stop, segregate).")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for kind in subject_kinds():
            self.fields[subject_field_name(kind.subject_type)] = forms.CharField(
                required=False, max_length=500, label=f"{kind.name}(s) concerned",
                help_text="References separated by commas.")

    def subjects(self) -> list[Subject]:
        found = []
        for kind in subject_kinds():
            raw = self.cleaned_data.get(subject_field_name(kind.subject_type)) or ""
            for reference in (part.strip() for part in raw.split(",")):
                if reference:
                    try:
                        found.append(subject_resolve(kind.subject_type, reference))
                    except ValidationError as error:
                        self.add_error(subject_field_name(kind.subject_type), error.message_dict["subjects"])
        return found


def _score_field(name: str) -> forms.TypedChoiceField:
    return forms.TypedChoiceField(coerce=int, label=name.capitalize(), widget=forms.RadioSelect,
                                  choices=[(score, f"{score} – {text}") for score, text in SCORE_LABELS[name].items()])


class DeviationTriageForm(forms.Form):
    classification = forms.ChoiceField(choices=Classification.choices, widget=forms.RadioSelect)
    classification_rationale = forms.CharField(label="Rationale", widget=_text(3),
                                               help_text="Why this class: the risk to product and patient.")
    severity = _score_field("severity")
    occurrence = _score_field("occurrence")
    detectability = _score_field("detectability")
    owner = PersonChoiceField(queryset=users_with(Capability.DEVIATION_INVESTIGATE), label="Investigation owner")
    reason = _reason("Triage by QA")


class DeviationInvestigateForm(forms.Form):
    root_cause_category = forms.ChoiceField(required=False, label="Root-cause category",
                                            choices=[("", "not yet known"), *RootCauseCategory.choices])
    why_1 = forms.CharField(required=False, max_length=1000, label="Why? (1)")
    why_2 = forms.CharField(required=False, max_length=1000, label="Why? (2)")
    why_3 = forms.CharField(required=False, max_length=1000, label="Why? (3)")
    why_4 = forms.CharField(required=False, max_length=1000, label="Why? (4)")
    why_5 = forms.CharField(required=False, max_length=1000, label="Why? (5)")
    root_cause = forms.CharField(required=False, widget=_text(3), label="Root cause")
    product_impact = forms.CharField(required=False, widget=_text(3), label="Product impact assessment",
                                     help_text="Effect on quality, safety and efficacy of the product(s).")
    reason = _reason("Investigation recorded")

    def __init__(self, *args: Any, deviation: Deviation, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.linked = list(deviation.subjects.all())
        for subject in self.linked:
            self.fields[f"impact_{subject.pk}"] = forms.ChoiceField(
                choices=BatchImpact.choices, initial=subject.impact, label=f"Impact on {subject.type_name.lower()} "
                                                                           f"{subject.label}")
            self.fields[f"impact_note_{subject.pk}"] = forms.CharField(
                required=False, widget=_text(2), initial=subject.impact_assessment,
                label=f"Assessment for {subject.label}")
        self.fields["reason"] = self.fields.pop("reason")

    def whys(self) -> list[str]:
        return [self.cleaned_data.get(f"why_{n}") or "" for n in range(1, 6)]

    def subject_impacts(self) -> dict[int, tuple[str, str]]:
        return {s.pk: (self.cleaned_data[f"impact_{s.pk}"], self.cleaned_data.get(f"impact_note_{s.pk}") or "")
                for s in self.linked}


class CapaChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.number} — {obj.title}, {obj.get_status_display().lower()}"


class CapaDecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=CapaDecision.choices, widget=forms.RadioSelect, label="CAPA decision")
    rationale = forms.CharField(required=False, widget=_text(2), help_text="Required when no CAPA is needed.")
    capa = CapaChoiceField(required=False, label="CAPA", queryset=Capa.objects.none(),
                           help_text="CAPAs in progress, and any already addressing this deviation. A "
                                     "closed CAPA takes no new deviation: open a new one.")
    reason = _reason("CAPA decision")

    def __init__(self, *args: Any, deviation: Deviation | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only CAPAs that can take this deviation (qms.services.capa_rules.capa_takes_deviations): those in
        # progress, and one that already addresses it unless cancelled (its decision can be saved again).
        can_take = Q(status__in=ACTIVE_CAPA_STATUSES)
        if deviation is not None:
            can_take |= Q(deviation_links__deviation=deviation) & ~Q(status=CapaStatus.CANCELLED)
        self.fields["capa"].queryset = Capa.objects.filter(can_take).distinct().order_by("-number")

    def clean(self) -> dict[str, Any]:
        # The decision's own rules, with the form's, so that every error of one submission shows at once
        # (the service checks them again: deviation_capa_decide).
        from qms.services.deviations.investigation import NO_CAPA_NAMED, NO_CAPA_WHY

        cleaned = super().clean() or {}
        decision = cleaned.get("decision")
        if decision == CapaDecision.NOT_REQUIRED and not (cleaned.get("rationale") or "").strip():
            self.add_error("rationale", NO_CAPA_WHY)
        if decision == CapaDecision.REQUIRED and cleaned.get("capa") is None and "capa" not in self.errors:
            self.add_error("capa", NO_CAPA_NAMED)
        return cleaned


class SubjectAddForm(forms.Form):
    subject_type = forms.ChoiceField(label="Kind of record")
    reference = forms.CharField(max_length=200, help_text="Batch number, equipment code, lot number…")
    reason = _reason()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["subject_type"].choices = [(k.subject_type, k.name) for k in subject_kinds()]


class DeviationExtendForm(SignedForm):
    new_due_date = _date_field("New due date")
    reason = _reason(help_text="Justification of the extension (recorded with your signature).")


# --- CAPA -----------------------------------------------------------------------------------

class EvidenceSignedForm(SignedForm):
    evidence = forms.CharField(widget=_text(3), help_text="What shows it is done: document, record, date.")
    reason = _reason("Completed")


# --- change control -------------------------------------------------------------------------

class ChangeControlForm(forms.Form):
    title = forms.CharField(max_length=200)
    change_type = forms.ChoiceField(choices=ChangeType.choices, label="Type of change")
    description = forms.CharField(widget=_text(4), help_text="What changes, from what to what.")
    justification = forms.CharField(widget=_text(3), help_text="Why the change is needed.")
    affected_items = forms.CharField(required=False, widget=_text(2),
                                     help_text="Master records, SOPs, equipment concerned.")
    impact_validation = forms.CharField(required=False, widget=_text(2), label="Impact on validation")
    impact_training = forms.CharField(required=False, widget=_text(2), label="Impact on training")
    impact_documents = forms.CharField(required=False, widget=_text(2), label="Impact on documents")
    impact_ongoing_batches = forms.CharField(required=False, widget=_text(2), label="Impact on batches in progress")


class ChangeAssessForm(ChangeControlForm):
    reason = _reason("Impact assessment updated")


class TaskAddForm(forms.Form):
    description = forms.CharField(widget=_text(3))
    owner = PersonChoiceField(queryset=users_with(Capability.CHANGE_CONTROL_IMPLEMENT))
    due_date = _date_field("Due date")
    reason = _reason("Task planned")


class ChangeCloseForm(SignedForm):
    summary = forms.CharField(widget=_text(3), label="Post-implementation review",
                              help_text="Was the change implemented as approved, and did it work?")
    reason = _reason("Change closed")


# --- training -------------------------------------------------------------------------------

class TrainingRecordForm(SignedForm):
    """Recorded under the recorder's signature; nobody records their own training."""

    user = PersonChoiceField(queryset=users_active(), label="Person trained")
    document_kind = forms.ChoiceField(choices=DocumentKind.choices, label="Document")
    document_code = forms.CharField(max_length=64, label="Document code")
    version = forms.CharField(max_length=32)
    trained_on = _date_field("Trained on")
    trainer = PersonChoiceField(queryset=users_who_train())
    valid_until = _date_field("Valid until", required=False, help_text="Empty: valid until the document changes.")
    reason = _reason("Training recorded")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["trained_on"].initial = timezone.localdate()

