"""Forms of the manufacturing side: what the tablet and the desktop post."""

from __future__ import annotations

import uuid

from django import forms
from django.conf import settings
from django.utils import timezone

from ebr.models import MasterRecordVersion, VersionStatus


def new_key() -> str:
    return uuid.uuid4().hex


class SignatureForm(forms.Form):
    """Re-authentication at signing: password always, username at the session's first signing."""

    username = forms.CharField(required=False, max_length=64,
                               widget=forms.TextInput(attrs={"autocomplete": "username", "autocapitalize": "none"}))
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))

    def __init__(self, *args, username_required: bool = True, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.username_required = username_required
        self.fields["username"].required = username_required
        if not username_required:
            self.fields["username"].widget = forms.HiddenInput()

    def signing_username(self) -> str | None:
        return self.cleaned_data.get("username") or None


class PerformSignatureForm(SignatureForm):
    remarks = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


class ReasonedSignatureForm(SignatureForm):
    reason = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


class EntryForm(forms.Form):
    value = forms.CharField(max_length=500, widget=forms.TextInput(attrs={"autocomplete": "off"}))
    comment = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))
    performed_at = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                       help_text="Leave empty for now; set it back if the work was done earlier.")
    idempotency_key = forms.CharField(max_length=64, widget=forms.HiddenInput())


class CorrectionForm(EntryForm):
    reason = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2}),
                             help_text="Why the original value is wrong. The original stays visible.")


class BatchCreateForm(forms.Form):
    version = forms.ModelChoiceField(queryset=MasterRecordVersion.objects.filter(status=VersionStatus.EFFECTIVE),
                                     label="Master record (effective version)")
    coi = forms.CharField(label="Chain-of-identity code", max_length=32,
                          widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters"}))
    coi_confirmation = forms.CharField(label="Chain-of-identity code again (scan or type)", max_length=32,
                                       widget=forms.TextInput(attrs={"autocomplete": "off"}))
    din = forms.CharField(label="Donation identification number (ISBT 128)", max_length=32,
                          help_text="e.g. W1234 26 123456 with its check character")
    patient_ref = forms.CharField(label="Pseudonymised patient reference", max_length=32)
    collecting_hospital = forms.ChoiceField(choices=())
    collected_at = forms.DateTimeField(widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        # Read per form so a test or a reconfigured facility sees its own list.
        self.fields["patient_ref"].help_text = (f"{settings.PATIENT_REF_DESCRIPTION}, e.g. "
                                                f"{settings.PATIENT_REF_EXAMPLE}. Never the patient's name.")
        self.fields["collecting_hospital"].choices = [("", "Choose the hospital"), *(
            (name, name) for name in settings.COLLECTING_HOSPITALS)]

    def clean_collected_at(self):  # type: ignore[no-untyped-def]
        value = self.cleaned_data["collected_at"]
        return timezone.make_aware(value) if timezone.is_naive(value) else value


class CustodyForm(forms.Form):
    from_party = forms.CharField(max_length=200)
    to_party = forms.CharField(max_length=200)
    location = forms.CharField(max_length=200)
    occurred_at = forms.DateTimeField(widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    temperature_c = forms.DecimalField(required=False, max_digits=6, decimal_places=2, label="Temperature (°C)")
    condition = forms.CharField(max_length=200, initial="intact")


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))
