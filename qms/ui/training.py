"""Training screens: records (filter, sort, CSV) with what awaits the signed-in trainer's
confirmation, the matrix, expiring training, a new record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from qms.conf import training_expiry_warning_days
from qms.models import TrainingRecord
from qms.permissions import capability_required
from qms.roles import Capability, can
from qms.selectors_people import users_active, users_with
from qms.selectors_training import (
    TRAINING_CSV_HEADER,
    TrainingFilters,
    training_awaiting_others,
    training_awaiting_trainer,
    training_csv_rows,
    training_documents,
    training_expired,
    training_expiring,
    training_list,
    training_matrix,
)
from qms.services.training import (
    training_confirm,
    training_confirm_decline,
    training_record_add,
    training_record_withdraw,
)
from qms.ui import forms as f
from qms.ui.common import csv_response, needs_username, page_of, run_service, signed_kwargs, wants_csv

DEFAULT_SORT = "-trained_on"


class TrainingConfirmForm(f.SignedForm):
    reason = forms.CharField(required=False, max_length=2000, label="Comment",
                             widget=forms.Textarea(attrs={"rows": 2}),
                             help_text="Optional; recorded with your signature.")


class TrainingDeclineForm(f.SignedForm):
    reason = forms.CharField(max_length=2000, label="What is wrong with this record?",
                             widget=forms.Textarea(attrs={"rows": 2}),
                             help_text="E.g. you did not give this training, or not on that day. The record is kept "
                                       "with your reason and never counts.")


@dataclass(frozen=True)
class TrainerAction:
    form: type[f.SignedForm]
    service: Callable[..., TrainingRecord]
    done: str
    label: str
    button: str
    danger: bool = False


class TrainingWithdrawForm(f.SignedForm):
    reason = forms.CharField(max_length=2000, label="Why is this record withdrawn?",
                             widget=forms.Textarea(attrs={"rows": 2}),
                             help_text="E.g. the wrong trainer was named, or the trainer left. The record is kept "
                                       "with your reason and never counts; record the training again as it was given.")


# What the named trainer may do with a record awaiting them, and what its recorder may (qms.services.training).
TRAINER_ACTIONS = ("confirm", "decline")
RECORDER_ACTIONS = ("withdraw",)
TRAINING_ACTIONS = {
    "confirm": TrainerAction(TrainingConfirmForm, training_confirm, "confirmed", "Confirm", "Sign: confirmed"),
    "decline": TrainerAction(TrainingDeclineForm, training_confirm_decline, "declined", "Decline",
                             "Sign: declined", danger=True),
    "withdraw": TrainerAction(TrainingWithdrawForm, training_record_withdraw, "withdrawn", "Withdraw",
                              "Sign: withdrawn", danger=True),
}


def _trainer_form(request: HttpRequest, action: str, record: TrainingRecord,
                  data: Any = None) -> f.SignedForm:
    # One prefix per record and action: several records on one page, each field id unique.
    return TRAINING_ACTIONS[action].form(data, prefix=f"{action}-{record.pk}", needs_username=needs_username(request))


def _awaiting(request: HttpRequest, records: Any, names: tuple[str, ...],
              bound: dict[tuple[int, str], f.SignedForm]) -> list[dict[str, Any]]:
    """Records waiting on a trainer, each with the forms of `names` (the refused one as typed, and open)."""
    awaiting = []
    for record in records:
        actions = [{"key": f"{action}-{record.pk}", "label": TRAINING_ACTIONS[action].label,
                    "button": TRAINING_ACTIONS[action].button, "danger": TRAINING_ACTIONS[action].danger,
                    "url": reverse("training_action", args=[record.pk, action]),
                    "form": bound.get((record.pk, action)) or _trainer_form(request, action, record)}
                   for action in names]
        active = next((f"{action}-{pk}" for (pk, action) in bound if pk == record.pk), "")
        awaiting.append({"record": record, "actions": actions, "active": active})
    return awaiting


def _awaiting_me(request: HttpRequest, bound: dict[tuple[int, str], f.SignedForm]) -> list[dict[str, Any]]:
    """The records that wait for the signed-in person to confirm or decline."""
    return _awaiting(request, training_awaiting_trainer(request.user), TRAINER_ACTIONS, bound)


def _awaiting_others(request: HttpRequest, bound: dict[tuple[int, str], f.SignedForm]) -> list[dict[str, Any]]:
    """The records the signed-in person made that wait for another trainer: they may withdraw one."""
    if not can(request.user, Capability.TRAINING_RECORD):
        return []
    return _awaiting(request, training_awaiting_others(request.user), RECORDER_ACTIONS, bound)


def _list_page(request: HttpRequest, *, bound: dict[tuple[int, str], f.SignedForm] | None = None,
               status: int = 200) -> HttpResponse:
    form = f.TrainingFilterForm(request.GET or None)
    data = form.cleaned_data if form.is_bound and form.is_valid() else {}
    filters = TrainingFilters(**{k: v for k, v in data.items() if v not in (None, "")})
    records = training_list(filters, request.GET.get("sort", DEFAULT_SORT))
    if wants_csv(request):
        return csv_response(request, name="training-records", header=TRAINING_CSV_HEADER,
                            rows=training_csv_rows(records), count=records.count(), filters=data)
    awaiting, recorded = _awaiting_me(request, bound or {}), _awaiting_others(request, bound or {})
    shown = {(entry["record"].pk, action["key"].split("-")[0]) for entry in awaiting + recorded
             for action in entry["actions"]}
    # A refusal about a form the page does not show (a record no longer awaiting, an action not this
    # person's) has no form to sit on.
    refusals = [message for key, refused in (bound or {}).items() if key not in shown
                for errors in refused.errors.values() for message in errors]
    return render(request, "qms/training_list.html", {
        "form": form, "page": page_of(request, records), "default_sort": DEFAULT_SORT,
        "can_record": can(request.user, Capability.TRAINING_RECORD), "awaiting": awaiting, "refusals": refusals,
        "recorded_awaiting": recorded,
    }, status=status)


@capability_required(Capability.TRAINING_VIEW)
def training_list_view(request: HttpRequest) -> HttpResponse:
    return _list_page(request)


@capability_required(Capability.TRAINING_VIEW)
@require_POST
def training_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """The trainer named on a record confirms or declines it; the service refuses anyone else."""
    if action not in TRAINING_ACTIONS:
        raise Http404("No such action.")
    record = get_object_or_404(TrainingRecord.objects.select_related("user", "trainer"), pk=pk)
    spec = TRAINING_ACTIONS[action]
    form = _trainer_form(request, action, record, request.POST)
    if run_service(form, lambda data: spec.service(actor=request.user, record=record, reason=data["reason"],
                                                   **signed_kwargs(request, form))):
        messages.success(request, f"Training of {record.user.full_name} on {record.document_label} {spec.done}.")
        return redirect(reverse("training_list") + "#awaiting")
    # Refused: the list again, the form as typed with the reason beside it, nothing saved.
    return _list_page(request, bound={(record.pk, action): form}, status=422)


@capability_required(Capability.TRAINING_RECORD)
def training_new(request: HttpRequest) -> HttpResponse:
    form = f.TrainingRecordForm(request.POST or None, initial={"trainer": request.user.pk},
                                needs_username=needs_username(request))
    if request.method == "POST":
        record = run_service(form, lambda data: training_record_add(
            actor=request.user, user=data["user"], document_kind=data["document_kind"],
            document_code=data["document_code"], version=data["version"], trained_on=data["trained_on"],
            trainer=data["trainer"], valid_until=data.get("valid_until"), reason=data["reason"],
            **signed_kwargs(request, form)))
        if record:
            awaiting = ("" if record.trainer_confirmed_at else
                        f" It counts once {record.trainer.full_name}, the trainer, confirms it (they are notified).")
            messages.success(request, f"Training of {record.user.full_name} on {record.document_label} recorded."
                                      f"{awaiting}")
            return redirect("training_list")
    return render(request, "qms/training_new.html", {"form": form}, status=422 if form.errors else 200)


@capability_required(Capability.TRAINING_VIEW)
def training_matrix_view(request: HttpRequest) -> HttpResponse:
    form = f.MatrixFilterForm(request.GET or None)
    data = form.cleaned_data if form.is_bound and form.is_valid() else {}
    people = users_active() if data.get("people") == "all" else users_with(Capability.BATCH_EXECUTE)
    documents = training_documents()
    if data.get("document_kind"):
        documents = [d for d in documents if d.kind == data["document_kind"]]
    return render(request, "qms/training_matrix.html", {
        "form": form, "matrix": training_matrix(users=people, documents=documents),
        "warning_days": training_expiry_warning_days(), "can_record": can(request.user, Capability.TRAINING_RECORD),
    })


EXPIRING_CSV_HEADER = ["state", "person", "username", "document", "trained_on", "valid_until"]


@capability_required(Capability.TRAINING_VIEW)
def training_expiring_view(request: HttpRequest) -> HttpResponse:
    if wants_csv(request):
        listed = [("expiring", record) for record in training_expiring()] + [
            ("expired", record) for record in training_expired()]
        rows = ([state, r.user.full_name, r.user.username, r.document_label, r.trained_on.isoformat(),
                 r.valid_until.isoformat() if r.valid_until else ""] for state, r in listed)
        return csv_response(request, name="training-expiring", header=EXPIRING_CSV_HEADER, rows=rows,
                            count=len(listed), filters={})
    return render(request, "qms/training_expiring.html", {
        "expiring": training_expiring(), "expired": training_expired(), "days": training_expiry_warning_days(),
    })
