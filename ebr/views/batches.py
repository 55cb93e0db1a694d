"""Batch pages for supervisors, QA and auditors: list, create, overview, transitions."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from ebr.forms import BatchCreateForm, CustodyForm, ReasonedSignatureForm, ReasonForm
from ebr.models import Batch, BatchStatus
from ebr.selectors import batch_record, batches_list
from ebr.services import batches as batch_services
from ebr.services import release as release_services
from ebr.services.release import TrailMarker
from ebr.views.signing import SIGNING_REFUSED
from qms.forms import errors_onto
from qms.permissions import capability_required
from qms.roles import Capability, can
from qms.signatures import username_required


@capability_required(Capability.BATCH_VIEW)
def batch_list(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status") or None
    if status not in {None, *BatchStatus.values}:
        status = None
    return render(request, "ebr/batch_list.html", {
        "batches": batches_list(status)[:500], "status": status, "statuses": BatchStatus.choices,
        "can_create": can(request.user, Capability.BATCH_MANAGE),
    })


@capability_required(Capability.BATCH_MANAGE)
def batch_create(request: HttpRequest) -> HttpResponse:
    form = BatchCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            batch = batch_services.batch_create(
                actor=request.user, version=data["version"], coi=data["coi"], coi_confirmation=data["coi_confirmation"],
                din=data["din"], patient_ref=data["patient_ref"], collecting_hospital=data["collecting_hospital"],
                collected_at=data["collected_at"])
        except (ValidationError, PermissionDenied) as error:
            errors_onto(form, error)
        else:
            messages.success(request, f"Batch {batch.number} created.")
            return redirect("batch_detail", number=batch.number)
    return render(request, "ebr/batch_create.html", {"form": form}, status=422 if form.errors else 200)


def _detail_context(request: HttpRequest, batch: Batch, seen: TrailMarker | None = None,
                    **forms: Any) -> dict[str, Any]:
    """The batch page; `seen`: the record as the page a refused signature came from showed it."""
    from qms.selectors import deviations_for

    needs_username = username_required(request.session)
    user = request.user
    if seen is None and batch.status == BatchStatus.IN_REVIEW:
        # Taken before the record is read: a change in between then refuses the signature (the
        # safe side) instead of being signed unseen.
        seen = release_services.audit_trail_marker(batch)
    return {
        "record": batch_record(batch), "batch": batch,
        "deviations": deviations_for("ebr.batch", str(batch.pk)),
        "blockers": release_services.release_blockers(batch) if batch.status == BatchStatus.IN_REVIEW else [],
        "audit_reviewed": release_services.audit_trail_review_valid(batch),
        "can_manage": can(user, Capability.BATCH_MANAGE), "can_review": can(user, Capability.REVIEW_QUEUE),
        "can_release": can(user, Capability.BATCH_RELEASE), "can_execute": can(user, Capability.BATCH_EXECUTE),
        "can_history": can(user, Capability.AUDIT_TRAIL_VIEW),
        "qp_certification": release_services.qp_certification(batch),
        "custody_form": forms.get("custody_form") or CustodyForm(),
        "sign_form": forms.get("sign_form") or ReasonedSignatureForm(username_required=needs_username),
        "reason_form": forms.get("reason_form") or ReasonForm(),
        "active_action": forms.get("action", ""),
        "trail_seen": seen if batch.status == BatchStatus.IN_REVIEW else None,
    }


@capability_required(Capability.BATCH_VIEW)
def batch_detail(request: HttpRequest, number: str) -> HttpResponse:
    batch = get_object_or_404(Batch.objects.select_related("master_version__master_record__product"), number=number)
    return render(request, "ebr/batch_detail.html", _detail_context(request, batch))


SIGNED_ACTIONS = {
    "audit_review": (release_services.batch_audit_trail_review, "Audit trail review signed."),
    "release": (release_services.batch_release, "Batch released."),
    "reject": (release_services.batch_reject, "Batch rejected."),
    "abort": (batch_services.batch_abort, "Batch aborted."),
}
REASON_ACTIONS = {
    "start": (batch_services.batch_start, "Batch started: the first step is open."),
    "hold": (batch_services.batch_hold, "Batch on hold."),
    "resume": (batch_services.batch_resume, "Batch resumed."),
    "review": (release_services.batch_review_start, "QA review started."),
}


# Signed on the record as the page showed it: the service refuses if it changed since.
SEEN_ACTIONS = {"audit_review", "release", "reject"}


def _seen(request: HttpRequest) -> TrailMarker | None:
    """The batch's audit trail as the page the signature was given on showed it (its hidden field)."""
    return TrailMarker.parse(request.POST.get("trail_seen", ""))


@require_POST
@capability_required(Capability.BATCH_VIEW)
def batch_action(request: HttpRequest, number: str, action: str) -> HttpResponse:
    """One endpoint per transition; the service decides who may do it and when."""
    batch = get_object_or_404(Batch, number=number)
    if action in SIGNED_ACTIONS:
        service, done = SIGNED_ACTIONS[action]
        form: Any = ReasonedSignatureForm(request.POST, username_required=username_required(request.session))
        seen = _seen(request) if action in SEEN_ACTIONS else None
        kwargs = lambda data: {"password": data["password"], "reason": data["reason"],  # noqa: E731
                               "username": form.signing_username(), "session": request.session,
                               **({"seen": seen} if action in SEEN_ACTIONS else {})}
        form_key = "sign_form"
    elif action in REASON_ACTIONS:
        service, done = REASON_ACTIONS[action]
        form = ReasonForm(request.POST)
        kwargs = lambda data: {"reason": data["reason"]}  # noqa: E731
        form_key, seen = "reason_form", None
    else:
        return HttpResponse(status=404)
    valid = form.is_valid()
    if action in SEEN_ACTIONS and seen is None:
        page = "the audit trail" if action == "audit_review" else "the batch"
        form.add_error(None, f"The page this was signed on is out of date: open {page} again and sign there.")
    elif valid:
        try:
            service(actor=request.user, batch=batch, **kwargs(form.cleaned_data))
        except ValidationError as error:
            code = getattr(error, "code", None)  # a refusal with several reasons has none
            if code == release_services.TRAIL_CHANGED:
                # What QA read is not what would be signed: the trail as it is now, with the statement
                # typed kept, to read and sign again (taken before the rows below are read).
                seen = release_services.audit_trail_marker(batch)
            if code == release_services.RECORD_CHANGED:
                seen = None  # the page below shows the record as it is now: read, then sign that
            form.add_error(None, " ".join(error.messages))
        except SIGNING_REFUSED as error:
            form.add_error(None, " ".join(getattr(error, "messages", [str(error)])))
        else:
            messages.success(request, done)
            return redirect("batch_detail", number=number)
    if action == "audit_review":
        # Back to the page the review is signed on, with the refusal beside its form (the batch
        # page does not show that form), still holding what the signer saw, not what is there now.
        return render(request, "ebr/batch_audit_trail.html", _audit_trail_context(request, batch, form, seen),
                      status=422)
    # The batch page again, still holding what the signer saw (a mistyped password is not a
    # reading of the record), unless the refusal was that the record changed.
    context = _detail_context(request, batch, seen, **{form_key: form, "action": action})
    return render(request, "ebr/batch_detail.html", context, status=422)


@require_POST
@capability_required(Capability.BATCH_VIEW)
def custody_add(request: HttpRequest, number: str) -> HttpResponse:
    from django.utils import timezone

    batch = get_object_or_404(Batch, number=number)
    form = CustodyForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        occurred = data["occurred_at"]
        occurred = timezone.make_aware(occurred) if timezone.is_naive(occurred) else occurred
        try:
            batch_services.custody_event_record(
                actor=request.user, batch=batch, from_party=data["from_party"], to_party=data["to_party"],
                location=data["location"], occurred_at=occurred, temperature_c=data["temperature_c"],
                condition=data["condition"])
        except (ValidationError, PermissionDenied) as error:
            errors_onto(form, error)
        else:
            messages.success(request, "Hand-off recorded.")
            return redirect("batch_detail", number=number)
    return render(request, "ebr/batch_detail.html", _detail_context(request, batch, custody_form=form,
                                                                     action="custody"), status=422)


@capability_required(Capability.AUDIT_TRAIL_VIEW)
def batch_audit_trail(request: HttpRequest, number: str) -> HttpResponse:
    """The batch's complete audit trail, for QA's audit-trail review before release (Annex 11 §9)."""

    batch = get_object_or_404(Batch, number=number)
    # Taken before the rows are read: a change in between then refuses the signature (the safe
    # side) instead of being signed unseen.
    seen = release_services.audit_trail_marker(batch) if batch.status == BatchStatus.IN_REVIEW else None
    form = ReasonedSignatureForm(username_required=username_required(request.session))
    return render(request, "ebr/batch_audit_trail.html", _audit_trail_context(request, batch, form, seen))


def _audit_trail_context(request: HttpRequest, batch: Batch, sign_form: Any,
                         seen: TrailMarker | None) -> dict[str, Any]:
    from ebr.selectors import batch_audit_rows

    return {
        "batch": batch, "rows": batch_audit_rows(batch),
        "audit_reviewed": release_services.audit_trail_review_valid(batch),
        "can_review": can(request.user, Capability.AUDIT_TRAIL_REVIEW) and batch.status == BatchStatus.IN_REVIEW,
        "sign_form": sign_form, "active_action": "audit_review", "trail_seen": seen,
    }
