"""Training screens: records (filter, sort, CSV), the matrix, expiring training, a new record."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from qms.conf import training_expiry_warning_days
from qms.permissions import capability_required
from qms.roles import Capability, can
from qms.selectors_people import users_active, users_with
from qms.selectors_training import (
    TRAINING_CSV_HEADER,
    TrainingFilters,
    training_csv_rows,
    training_documents,
    training_expired,
    training_expiring,
    training_list,
    training_matrix,
)
from qms.services.training import training_record_add
from qms.ui import forms as f
from qms.ui.common import csv_response, needs_username, page_of, run_service, signed_kwargs, wants_csv

DEFAULT_SORT = "-trained_on"


@capability_required(Capability.TRAINING_VIEW)
def training_list_view(request: HttpRequest) -> HttpResponse:
    form = f.TrainingFilterForm(request.GET or None)
    data = form.cleaned_data if form.is_bound and form.is_valid() else {}
    filters = TrainingFilters(**{k: v for k, v in data.items() if v not in (None, "")})
    records = training_list(filters, request.GET.get("sort", DEFAULT_SORT))
    if wants_csv(request):
        return csv_response(request, name="training-records", header=TRAINING_CSV_HEADER,
                            rows=training_csv_rows(records), count=records.count(), filters=data)
    return render(request, "qms/training_list.html", {
        "form": form, "page": page_of(request, records), "default_sort": DEFAULT_SORT,
        "can_record": can(request.user, Capability.TRAINING_RECORD),
    })


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
            messages.success(request, f"Training of {record.user.full_name} on {record.document_label} recorded.")
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
