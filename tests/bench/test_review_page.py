"""The QA review page of a batch with 2,000 open flags, side by side with the same page with 20 flags,
each as it is now and as it was before (one DispositionForm built and rendered per open flag, and
the step outline read through the whole batch_record).

Both batches are the 300-step, 2,100-entry batch of test_review_batch; their finished reviews and
flags are written with set-based SQL (a benchmark fixture only, never how flags are raised: that
is `batch_review_run`, timed in test_review_batch). "Before" swaps the two old functions back in
for the view. The variants alternate in rounds so that cache warm-up and other work on the machine
fall on all of them alike; the figures to read are the ratios. Templates render as in production:
the test runner's template instrumentation (a signal and a context copy per rendered template,
~40 % of the old page's time) is switched off while timing. Rows roll back at the end.
Set BENCH_REVIEW_PAGE_FLAGS to change the 2,000.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid

import pytest
from django.db import connection
from django.middleware.csrf import get_token
from django.template.base import Template
from django.template.loader import get_template
from django.test.utils import CaptureQueriesContext, _TestState
from django.utils import timezone

from ebr.selectors import batch_record
from nlp_review import selectors, views
from nlp_review.forms import DispositionForm
from nlp_review.models import BatchReview
from nlp_review.selectors import StepFlags
from qms.signatures import username_required
from tests.bench import test_pdf_export as pdf_bench
from tests.bench.test_review_batch import _big_batch
from tests.conftest import login

MANY = int(os.environ.get("BENCH_REVIEW_PAGE_FLAGS", "2000"))
FEW = 20
ROUNDS = 5
TARGET_GAIN = 2.0  # the page with many flags at least twice as fast as before

FLAGS_SQL = """
INSERT INTO nlp_review_reviewflag (review_id, batch_id, step_id, source_kind, source_id, source_text, category,
                                   severity, start, "end", evidence, explanation, rule, rule_version, disposition,
                                   disposition_reason, deviation_number)
SELECT %(review)s, %(batch)s, CASE WHEN g %% 50 = 0 THEN NULL ELSE s.id END, 'entry_comment', g::text,
       'Glove torn during transfer in BSC, changed gloves.', 'contamination',
       (ARRAY['critical', 'major', 'minor'])[1 + g %% 3], 0, 10, 'Glove torn',
       'A breached glove during aseptic processing may have exposed the product.', 'aseptic.glove_breach',
       'bench', 'none', '', ''
  FROM generate_series(1, %(flags)s) AS g
  JOIN (SELECT id, row_number() OVER (ORDER BY sequence) AS n FROM ebr_stepexecution WHERE batch_id = %(batch)s) s
    ON s.n = 1 + g %% %(steps)s
"""


def _reviewed_batch(flags: int):  # type: ignore[no-untyped-def]
    batch = _big_batch()
    review = BatchReview.objects.create(batch=batch, version=1, status="done", request_id=f"bench-{uuid.uuid4()}",
                                        requested_by_label="system:bench", finished_at=timezone.now(),
                                        progress_done=1, progress_total=1, critical_count=flags // 3)
    with connection.cursor() as cursor:
        cursor.execute(FLAGS_SQL, {"review": review.pk, "batch": batch.pk, "flags": flags,
                                   "steps": batch.steps.count()})
    return batch


def _one_form_per_flag(request, batch, open_flags, refused):  # type: ignore[no-untyped-def]
    """Before: a DispositionForm built and rendered (an include) for every open flag."""
    fragment = get_template("nlp_review/_disposition_form.html")
    needs_username, token = username_required(request.session), get_token(request)
    return {flag.pk: fragment.render({"batch": batch, "csrf_token": token, "form": DispositionForm(
        flag_pk=flag.pk, username_required=needs_username)}) for flag in open_flags}


def _flags_by_step_from_the_whole_record(batch, flags):  # type: ignore[no-untyped-def]
    """Before: the steps read through batch_record (entries, signatures and content hashes of every step)."""
    record = batch_record(batch)
    batch_level = StepFlags(sequence=None, title="Whole batch", stage="", flags=[f for f in flags if not f.step_id])
    return ([batch_level] if batch_level.flags else []) + [
        StepFlags(sequence=step.step.sequence, title=f"{step.step.template.code} {step.step.template.title}",
                  stage=stage.name, flags=[f for f in flags if f.step_id == step.step.pk])
        for stage in record.stages for step in stage.steps]


@pytest.mark.django_db
def test_review_page_with_2000_open_flags_against_20(client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    reviewer = pdf_bench._user(f"qa-{uuid.uuid4().hex[:6]}", "Quinn Reviewer", "qa_reviewer")
    batches = {FEW: _reviewed_batch(FEW), MANY: _reviewed_batch(MANY)}
    login(client, reviewer)
    monkeypatch.setattr(Template, "_render", _TestState.saved_data.template_render)
    now = (views._disposition_forms, selectors.flags_by_step)
    before = (_one_form_per_flag, _flags_by_step_from_the_whole_record)

    def page(flags: int, code) -> tuple[float, int]:  # type: ignore[no-untyped-def]
        """Seconds and bytes of one GET of the review page."""
        monkeypatch.setattr(views, "_disposition_forms", code[0])
        monkeypatch.setattr(selectors, "flags_by_step", code[1])
        started = time.perf_counter()
        response = client.get(f"/review/batches/{batches[flags].number}/")
        seconds = time.perf_counter() - started
        assert response.status_code == 200
        return seconds, len(response.content)

    variants = {(flags, label): code for label, code in (("now", now), ("before", before)) for flags in (FEW, MANY)}
    shape = {}
    for key, code in variants.items():  # warm-up (templates compiled, caches filled), counting queries
        with CaptureQueriesContext(connection) as queries:
            size = page(key[0], code)[1]
        shape[key] = size, len(queries.captured_queries)
    timings: dict[tuple[int, str], list[float]] = {key: [] for key in variants}
    for _ in range(ROUNDS):
        for key, code in variants.items():
            timings[key].append(page(key[0], code)[0])

    median = {key: statistics.median(values) for key, values in timings.items()}
    print(f"\nreview page of a 300-step batch, median of {ROUNDS} rounds (production template rendering):")
    for (flags, label), seconds in median.items():
        size, queries = shape[flags, label]
        print(f"  {label:>6}  {flags:>5} open flags  {seconds:6.3f} s  {size / 1e6:5.2f} MB  {queries:>4} queries"
              + (f"  {median[flags, 'before'] / seconds:.1f}x faster than before" if label == "now" else ""))
    per_flag = {label: (median[MANY, label] - median[FEW, label]) / (MANY - FEW) for label in ("now", "before")}
    print(f"  each added flag: {per_flag['now'] * 1000:.2f} ms now, {per_flag['before'] * 1000:.2f} ms before")
    assert shape[MANY, "now"][1] == shape[FEW, "now"][1]  # queries: none per flag
    assert median[MANY, "now"] * TARGET_GAIN < median[MANY, "before"]
