"""Process data on the batch page: charts and alarms, loaded by HTMX into the batch overview.

`templates/ebr/_process_charts.html` (included in the batch page) asks these views for their
fragments, so the batch page's own view does not change. A plain GET or POST without HTMX gets
a whole page or a redirect, so everything also works with scripts switched off.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from ebr.charts import Chart, chart_for, gap_spans
from ebr.forms import SignatureForm
from ebr.models import Alarm, Batch
from ebr.process_data import alarms_for_batch, process_data
from ebr.services.alarms import alarm_acknowledge
from ebr.states import BATCH_CLOSED
from ebr.views.signing import SIGNING_REFUSED
from qms.permissions import capability_required
from qms.roles import Capability, can
from qms.signatures import username_required


class AlarmAcknowledgeForm(SignatureForm):
    comment = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2}),
                              help_text="What you checked or did about the alarm.")


def process_charts(batch: Batch) -> list[Chart]:
    """One chart per parameter recorded for the batch, on a common time axis."""
    data = process_data(batch)
    if data.start is None or data.end is None:
        return []
    now = timezone.now()
    gaps = gap_spans(data.alarms, data.start, data.end, now=min(now, data.end))
    charts = []
    for series in data.series:
        chart = chart_for(series, data.start, data.end, data.bucket_seconds, now=min(now, data.end))
        chart.spans.extend(gaps)
        charts.append(chart)
    return charts


@require_GET
@capability_required(Capability.BATCH_VIEW)
def process_data_fragment(request: HttpRequest, number: str) -> HttpResponse:
    batch = get_object_or_404(Batch, number=number)
    if not request.htmx:
        return _page(request, batch)
    return render(request, "ebr/_process_data.html", {"batch": batch, "charts": process_charts(batch)})


def _page(request: HttpRequest, batch: Batch, status: int = 200, **context: Any) -> HttpResponse:
    """The whole page (no HTMX): charts and alarms together."""
    return render(request, "ebr/process_data.html",
                  {**_alarms_context(request, batch), **context, "charts": process_charts(batch)}, status=status)


def _alarms_context(request: HttpRequest, batch: Batch, form: AlarmAcknowledgeForm | None = None,
                    form_alarm: int | None = None) -> dict[str, Any]:
    needs_username = username_required(request.session)
    may_acknowledge = can(request.user, Capability.BATCH_MANAGE) and batch.status not in BATCH_CLOSED
    return {"batch": batch, "alarms": alarms_for_batch(batch), "can_acknowledge": may_acknowledge,
            "ack_form": form, "blank_form": AlarmAcknowledgeForm(username_required=needs_username),
            "form_alarm": form_alarm}


@require_GET
@capability_required(Capability.BATCH_VIEW)
def alarms_fragment(request: HttpRequest, number: str) -> HttpResponse:
    batch = get_object_or_404(Batch, number=number)
    if not request.htmx:
        return _page(request, batch)
    return render(request, "ebr/_alarms.html", _alarms_context(request, batch))


@require_POST
@capability_required(Capability.BATCH_MANAGE)
def alarm_acknowledge_submit(request: HttpRequest, number: str, pk: int) -> HttpResponse:
    """A supervisor signs the acknowledgement of one alarm (ebr.services.alarms.alarm_acknowledge)."""
    batch = get_object_or_404(Batch, number=number)
    alarm = get_object_or_404(Alarm, pk=pk, batch=batch)
    form = AlarmAcknowledgeForm(request.POST, username_required=username_required(request.session))
    if form.is_valid():
        try:
            alarm_acknowledge(actor=request.user, alarm=alarm, comment=form.cleaned_data["comment"],
                              password=form.cleaned_data["password"], username=form.signing_username(),
                              session=request.session, request=request)
        except (ValidationError, *SIGNING_REFUSED) as error:
            form.add_error(None, " ".join(getattr(error, "messages", [str(error)])))
        else:
            if not request.htmx:
                messages.success(request, "Alarm acknowledged.")
                return redirect("batch_detail", number=number)
            return render(request, "ebr/_alarms.html", _alarms_context(request, batch))
    # HTMX swaps only 2xx answers: the fragment with the errors comes back as 200.
    context = _alarms_context(request, batch, form=form, form_alarm=alarm.pk)
    if request.htmx:
        return render(request, "ebr/_alarms.html", context)
    # Not **context: it holds `batch` too, which _page takes positionally (a TypeError, a 500).
    return _page(request, batch, status=422, ack_form=form, form_alarm=alarm.pk)
