"""Pages of the batch review: QA queue, batch review by exception, monitoring, record search."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_POST

from ebr.models import Batch
from ebr.states import BATCH_AWAITING_DECISION
from nlp_review import selectors, services
from nlp_review.forms import DispositionForm, SearchForm
from nlp_review.models import Disposition, ReviewFlag
from nlp_review.search import SearchFilters, record_search
from qms.forms import errors_onto
from qms.permissions import capability_required
from qms.roles import Capability
from qms.signatures import SignatureRefused, username_required


@capability_required(Capability.REVIEW_QUEUE)
def review_queue(request: HttpRequest) -> HttpResponse:
    return render(request, "nlp_review/queue.html", {"batches": list(selectors.review_queue()[:200])})


def _review_context(request: HttpRequest, batch: Batch, refused: DispositionForm | None = None) -> dict[str, Any]:
    """The review page; `refused` is a disposition the service or the form turned down, shown on its
    own flag with what the reviewer typed (never the password) and why."""
    review = services.latest_review(batch.pk)
    flags = list(selectors.review_flags(review)) if review else []
    open_flags = [f for f in flags if f.disposition == Disposition.NONE]
    return {
        "batch": batch, "review": review, "reviews": list(selectors.reviews_for(batch)),
        "groups": selectors.flags_by_step(batch, flags) if review else [],
        "open_count": len(open_flags),
        "rerun_allowed": batch.status in BATCH_AWAITING_DECISION,
        "disposition_forms": _disposition_forms(request, batch, open_flags, refused),
    }


def _disposition_forms(request: HttpRequest, batch: Batch, open_flags: list[ReviewFlag],
                       refused: DispositionForm | None) -> dict[int, SafeString]:
    """Each open flag's disposition form, as HTML: the refused one as submitted, the others untouched."""
    if not open_flags:
        return {}
    untouched = UntouchedDispositionForm(request, batch, username_required=username_required(request.session))
    forms = {flag.pk: untouched.for_flag(flag.pk) for flag in open_flags}
    if refused is not None and refused.flag_pk in forms:
        forms[refused.flag_pk] = _disposition_form_html(request, batch, refused)
    return forms


def _disposition_form_html(request: HttpRequest, batch: Batch, form: DispositionForm) -> SafeString:
    return render_to_string("nlp_review/_disposition_form.html", {"batch": batch, "form": form}, request=request)


class UntouchedDispositionForm:
    """The disposition form of every flag nobody has submitted yet, rendered once per page.

    Building and rendering one DispositionForm per flag (five widgets through Django's widget
    templates) took 2 to 3 s of a page with 2,000 open flags (tests/bench/test_review_page.py).
    Unbound, those forms differ only in the flag's pk (ids, labels' `for`, the action), so the form
    is rendered once for a stand-in pk and copied with each flag's. The stand-in is no flag's pk and
    too long to occur in any other text of the form (labels, batch number, CSRF token);
    tests/nlp_review/test_review_page_cost.py checks each copy against the flag's own form.
    """

    STAND_IN_PK = 918_273_645_546_372_819

    def __init__(self, request: HttpRequest, batch: Batch, *, username_required: bool) -> None:
        form = DispositionForm(flag_pk=self.STAND_IN_PK, username_required=username_required)
        self._pieces = _disposition_form_html(request, batch, form).split(str(self.STAND_IN_PK))

    def for_flag(self, pk: int) -> SafeString:
        # Safe: the pieces come from an autoescaped template, and a pk is an integer.
        return mark_safe(str(int(pk)).join(self._pieces))  # noqa: S308


@capability_required(Capability.REVIEW_QUEUE)
def batch_review_page(request: HttpRequest, number: str) -> HttpResponse:
    batch = get_object_or_404(Batch, number=number)
    return render(request, "nlp_review/batch_review.html", _review_context(request, batch))


@require_POST
@capability_required(Capability.REVIEW_QUEUE)
def flag_disposition_submit(request: HttpRequest, number: str, pk: int) -> HttpResponse:
    batch = get_object_or_404(Batch, number=number)
    flag = get_object_or_404(ReviewFlag, pk=pk, batch=batch)
    form = DispositionForm(request.POST, flag_pk=flag.pk, username_required=username_required(request.session))
    if form.is_valid():
        data = form.cleaned_data
        try:
            services.flag_disposition(actor=request.user, flag=flag, outcome=data["outcome"], reason=data["reason"],
                                      password=data["password"], username=form.signing_username(),
                                      session=request.session, deviation=data["deviation"] or None)
        except ValidationError as error:
            errors_onto(form, error)
        except SignatureRefused as error:
            errors_onto(form, error, unplaced_field="password")
        except PermissionDenied as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, "Flag dispositioned and signed.")
            return redirect("batch_review", number=number)
    context = _review_context(request, batch, refused=form)
    if flag.pk not in context["disposition_forms"]:
        # Dispositioned by someone else meanwhile, or superseded by a new review: no form to show it on.
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
    return render(request, "nlp_review/batch_review.html", context, status=422)


@require_POST
@capability_required(Capability.REVIEW_QUEUE)
def review_rerun(request: HttpRequest, number: str) -> HttpResponse:
    batch = get_object_or_404(Batch, number=number)
    try:
        services.review_rerun_request(actor=request.user, batch=batch, reason=request.POST.get("reason", ""))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, "A new review was requested; it runs in the background.")
    return redirect("batch_review", number=number)


@capability_required(Capability.REVIEW_QUEUE)
def review_monitoring(request: HttpRequest) -> HttpResponse:
    return render(request, "nlp_review/monitoring.html", {"rows": selectors.rule_precision()})


@capability_required(Capability.RECORD_SEARCH)
def record_search_page(request: HttpRequest) -> HttpResponse:
    form = SearchForm(request.GET or None)
    hits: list[Any] = []
    batches = 0
    if form.is_valid():
        data = form.cleaned_data
        filters = SearchFilters(q=data["q"] or "", product=data["product"].pk if data["product"] else None,
                                date_from=data["date_from"], date_to=data["date_to"], step=data["step"] or "",
                                category=data["category"] or "")
        hits, batches = record_search(filters)
    return render(request, "nlp_review/search.html", {"form": form, "hits": hits, "batch_count": batches})
