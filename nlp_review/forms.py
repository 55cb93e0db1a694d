"""Forms of the batch review pages: flag disposition (signed), re-run, record search."""

from __future__ import annotations

from django import forms

from ebr.forms import ReasonedSignatureForm
from ebr.models import Product
from nlp_review.models import Disposition, FlagCategory

# Worded as the reviewer's choice; the stored value is the Disposition.
OUTCOME_CHOICES = [(Disposition.NO_IMPACT.value, "No impact"),
                   (Disposition.DEVIATION_RAISED.value, "Raise a deviation"),
                   (Disposition.DEVIATION_LINKED.value, "Link to deviation")]


class DispositionForm(ReasonedSignatureForm):
    """One per open flag on the review page. Field names stay plain (each flag has its own <form>),
    but ids carry the flag, so every label points at its own flag's field and ids are unique."""

    outcome = forms.ChoiceField(choices=OUTCOME_CHOICES, widget=forms.RadioSelect)
    deviation = forms.CharField(required=False, max_length=32, label="Deviation number (for a link)")

    def __init__(self, *args, flag_pk: int, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, auto_id=f"id_flag-{flag_pk}-%s", **kwargs)
        self.flag_pk = flag_pk

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("outcome") == Disposition.DEVIATION_LINKED and not (data.get("deviation") or "").strip():
            self.add_error("deviation", "Give the number of the deviation to link.")
        return data


class SearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Words",
                        widget=forms.TextInput(attrs={"type": "search", "placeholder": "e.g. clumping"}))
    product = forms.ModelChoiceField(queryset=Product.objects.all(), required=False)
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    step = forms.CharField(required=False, max_length=100, label="Stage or step",
                           widget=forms.TextInput(attrs={"placeholder": "e.g. expansion"}))
    category = forms.ChoiceField(required=False, choices=[("", "any"), *FlagCategory.choices],
                                 label="Flag category")
