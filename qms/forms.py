from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.password_validation import password_validators_help_text_html, validate_password
from django.core.exceptions import ValidationError
from django.http import Http404

from qms.audit import Event
from qms.audit.display import event_label
from qms.models import User
from qms.roles import MACHINE_ROLES, Role
from qms.selectors import AuditFilters


class LoginForm(AuthenticationForm):
    """The same message for an unknown user and a wrong password: no user enumeration."""

    error_messages = {
        "invalid_login": "Username or password is not correct.",
        "inactive": "Username or password is not correct.",
    }

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.fields["username"].widget.attrs.update({"autocomplete": "username", "autocapitalize": "none"})

    def clean(self) -> dict:  # type: ignore[type-arg]
        # AuthenticationForm sets the field's max_length after building it, so no validator runs:
        # a name longer than any account's is refused here, with the one message for every failed
        # login, before it reaches authenticate() and the lockout records (varchar columns).
        if len(self.cleaned_data.get("username") or "") > self.username_field.max_length:
            raise self.get_invalid_login_error()
        return super().clean()

    def confirm_login_allowed(self, user: Any) -> None:
        """Right password, active account: still refused once the password an administrator set has expired."""
        from qms.services.users import login_temporary_password_check

        super().confirm_login_allowed(user)
        login_temporary_password_check(user, request=self.request)


class AdminLoginForm(LoginForm, AdminAuthenticationForm):
    """The Django admin's login page, under the same rules as the site's (admin.site.login_form in
    ebr/urls.py): the same messages, an expired temporary password refused, and staff only."""


class AuditFilterForm(forms.Form):
    record = forms.CharField(required=False, max_length=200, label="Record",
                             help_text="Batch number, DEV-…, or type:id")
    username = forms.CharField(required=False, max_length=64, label="User")
    event_type = forms.ChoiceField(required=False, label="Event",
                                   choices=[("", "any event")] + [(e.value, f"{event_label(e.value)} ({e.value})")
                                                                   for e in Event])
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict:  # type: ignore[type-arg]
        cleaned = super().clean() or {}
        if cleaned.get("date_from") and cleaned.get("date_to") and cleaned["date_from"] > cleaned["date_to"]:
            self.add_error("date_to", "The end date is before the start date.")
        return cleaned

    def filters(self) -> AuditFilters:
        data = self.cleaned_data
        return AuditFilters(record=data.get("record") or "", username=data.get("username") or "",
                            event_type=data.get("event_type") or "", date_from=data.get("date_from"),
                            date_to=data.get("date_to"))


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=2000,
                             help_text="Recorded in the audit trail.")


class UserCreateForm(forms.Form):
    username = forms.CharField(max_length=64)
    full_name = forms.CharField(max_length=200, help_text="Printed with every signature.")
    job_title = forms.CharField(max_length=200, required=False)
    email = forms.EmailField(required=False)
    roles = forms.MultipleChoiceField(choices=[(r.value, r.value) for r in Role],
                                      widget=forms.CheckboxSelectMultiple)
    password = forms.CharField(widget=forms.PasswordInput(render_value=True), min_length=12)
    reason = forms.CharField(max_length=2000, initial="New account")


class PasswordChangeForm(forms.Form):
    """The holder's own password change. Passwords are never sent back into the page on an error."""

    current_password = forms.CharField(strip=False, max_length=256, widget=forms.PasswordInput(
        attrs={"autocomplete": "current-password"}))
    new_password = forms.CharField(strip=False, max_length=256, widget=forms.PasswordInput(
        attrs={"autocomplete": "new-password"}), help_text=password_validators_help_text_html())
    new_password_again = forms.CharField(strip=False, max_length=256, label="New password (again)",
                                         widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def clean(self) -> dict:  # type: ignore[type-arg]
        cleaned = super().clean() or {}
        again = cleaned.get("new_password_again")
        if again is not None and again != cleaned.get("new_password"):
            self.add_error("new_password_again", "The two new passwords differ.")
        return cleaned


class PasswordResetForm(forms.Form):
    """An administrator's reset of someone else's lost password. The password is never sent back
    into the page on an error."""

    new_password = forms.CharField(strip=False, max_length=256, label="Temporary password", widget=forms.PasswordInput(
        attrs={"autocomplete": "new-password"}), help_text=password_validators_help_text_html())
    new_password_again = forms.CharField(strip=False, max_length=256, label="Temporary password (again)",
                                         widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=2000,
                             help_text="Why, and how you verified the holder's identity. Recorded in the audit trail.")

    def __init__(self, *args: Any, account: User | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.account = account

    def clean(self) -> dict:  # type: ignore[type-arg]
        cleaned = super().clean() or {}
        password, again = cleaned.get("new_password"), cleaned.get("new_password_again")
        if again is not None and again != password:
            self.add_error("new_password_again", "The two passwords differ.")
        if password and self.account is not None:
            # The password rules too, in the same round (the service checks them again).
            try:
                validate_password(password, self.account)
            except ValidationError as error:
                self.add_error("new_password", error)
        return cleaned


class UserRolesForm(forms.Form):
    roles = forms.MultipleChoiceField(
        choices=[(r.value, r.value) for r in Role if r not in MACHINE_ROLES], required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="No role at all withdraws every capability; the account stays active.")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=2000,
                             help_text="Recorded in the audit trail with the roles before and after.")


def errors_onto(form: forms.Form, error: Exception, *, unplaced_field: str | None = None) -> None:
    """Show a service's refusal on the form the user filled in, so that what they typed stays on
    screen beside the message. Errors for fields the form has go to those fields; the rest go to
    `unplaced_field` (e.g. the password of a signing form) or to the form as a whole."""
    if not isinstance(error, ValidationError):
        error = ValidationError(str(error))
    if hasattr(error, "error_dict"):
        for field_name, field_errors in error.error_dict.items():
            form.add_error(field_name if field_name in form.fields else None, field_errors)
    else:
        form.add_error(unplaced_field, error.messages)


def pk_or_404(value: str | None) -> int:
    """A record id posted by a form: anything but a whole number is a record that does not exist
    (404), never a ValueError deep in the ORM (500)."""
    try:
        return int(value or "")
    except ValueError:
        raise Http404("No such record.") from None
