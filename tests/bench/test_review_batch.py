"""Batch review at scale: a 300-step batch with 2,000 text entries reviewed end to end under 10 s,
and a record search over 10,000 batches under a second.

The data are built with set-based SQL (a benchmark fixture only, never how GxP data is written),
borrowing the statements of test_pdf_export. Rows stay (append-only tables); run on a fresh
`--create-db` database: `pytest tests/bench/test_review_batch.py --create-db`.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from tests.bench import test_pdf_export as pdf_bench

STEPS = 300
PARAMETERS_PER_STEP = 7
REVIEW_SECONDS = 10.0
SEARCH_BATCHES = 10_000
TEXTS_PER_BATCH = 20
SEARCH_SECONDS = 1.0

COMMENTS_SQL = """
INSERT INTO ebr_entry (step_id, parameter_id, value_text, value_number, unit, in_spec, alert, comment, performed_at,
                       entered_at, late, entered_by_id, correction_reason, idempotency_key, deviation_number)
SELECT e.id, p.id, '50', 50, '%%', true, false,
       CASE WHEN (e.sequence * 10 + p."order") %% 25 = 0 THEN 'Glove torn during transfer in BSC, changed gloves.'
            WHEN (e.sequence * 10 + p."order") %% 10 = 0 THEN 'Clumping observed in the flask, resuspended gently.'
            WHEN (e.sequence * 10 + p."order") %% 7 = 0 THEN 'pH drifted to 6.6, adjusted per SOP.'
            ELSE 'Recorded as per SOP, no issues, label verified.' END,
       e.opened_at + make_interval(mins => p."order"::int / 2), e.opened_at + make_interval(mins => p."order"::int / 2),
       false, %(operator)s, '', %(prefix)s || e.id || '-' || p.id, ''
  FROM ebr_stepexecution e JOIN ebr_parameterspec p ON p.step_id = e.template_id
 WHERE e.batch_id = %(batch)s
"""


def _big_batch():  # type: ignore[no-untyped-def]
    from ebr.models import Batch

    pdf_bench.STEPS, pdf_bench.PARAMETERS_PER_STEP = STEPS, PARAMETERS_PER_STEP
    tag = uuid.uuid4().hex[:6].upper()
    people = {"operator": pdf_bench._user(f"op-{tag}", "Olivia Operator", "operator"),
              "verifier": pdf_bench._user(f"ver-{tag}", "Victor Verifier", "operator"),
              "supervisor": pdf_bench._user(f"sup-{tag}", "Sofia Supervisor", "supervisor")}
    start = timezone.now() - timedelta(days=2)
    with transaction.atomic():
        version = pdf_bench._master(tag, people)
        batch = Batch.objects.create(number=f"B-RB-{tag}", master_version=version, status="completed",
                                     coi=f"COI-RB-{tag}", din="W123426000001", patient_ref="PT-BENCH",
                                     collecting_hospital="City Hospital", collected_at=start,
                                     created_by=people["supervisor"], started_at=start,
                                     completed_at=start + timedelta(hours=40))
        ids = {"batch": batch.pk, "version": version.pk, "start": start, "operator": people["operator"].pk,
               "verifier": people["verifier"].pk, "prefix": f"rb-{tag}-"}
        with connection.cursor() as cursor:
            cursor.execute(pdf_bench.STEP_EXECUTIONS_SQL, ids)
            cursor.execute(COMMENTS_SQL, ids)
    return batch


def test_review_of_a_300_step_batch_with_2000_texts_under_10_seconds(committed) -> None:  # type: ignore[no-untyped-def]
    from nlp_review.pipeline import review_text
    from nlp_review.services import batch_review_run
    from qms.audit import SystemActor

    batch = _big_batch()
    review_text("warm-up")  # the pipeline loads once per worker process, not per review

    started = time.perf_counter()
    review = batch_review_run(batch=batch, actor=SystemActor("system:bench"), request_id=f"bench-{uuid.uuid4()}")
    seconds = time.perf_counter() - started

    print(f"\nreview of {batch.number}: {review.progress_total - 1} texts, {review.flags.count()} flags, "
          f"risk {review.risk_score}, {seconds:.2f} s")
    assert review.progress_total - 1 >= 2000
    assert seconds < REVIEW_SECONDS


SEARCH_BATCHES_SQL = """
INSERT INTO ebr_batch (number, master_version_id, status, coi, din, patient_ref, collecting_hospital, collected_at,
                       created_by_id, created_at, started_at, completed_at, status_reason)
SELECT %(prefix)s || g, b.master_version_id, 'released', %(prefix)s || 'C' || g, b.din, b.patient_ref,
       b.collecting_hospital, b.collected_at, b.created_by_id, now(), b.started_at, b.completed_at, ''
  FROM ebr_batch b CROSS JOIN generate_series(1, %(n)s) AS g WHERE b.id = %(template)s
"""

SEARCH_TEXTS_SQL = """
INSERT INTO nlp_review_recordtext (batch_id, product_id, step_id, stage_name, step_label, source_kind, source_id,
                                   text, occurred_at, categories, search)
SELECT b.id, %(product)s, NULL, s.stage, s.stage || ' step', 'entry_comment', k::text, s.text,
       now() - make_interval(days => (b.id %% 700)::int), '',
       setweight(to_tsvector('english', s.text), 'A') || setweight(to_tsvector('english', s.stage), 'C')
  FROM ebr_batch b CROSS JOIN generate_series(1, %(per_batch)s) AS k
  CROSS JOIN LATERAL (SELECT CASE WHEN (b.id + k) %% 500 = 0 THEN 'Clumping seen after feeding'
                                  ELSE 'Cells counted ' || k || ', viability ' || (60 + (b.id + k) %% 40) || ' percent'
                             END AS text,
                             CASE k %% 4 WHEN 0 THEN 'Expansion' WHEN 1 THEN 'Receipt' WHEN 2 THEN 'Activation'
                                  ELSE 'Formulation' END AS stage) s
 WHERE b.number LIKE %(like)s
"""


def test_search_across_10000_batches_under_a_second(committed) -> None:  # type: ignore[no-untyped-def]
    from nlp_review.search import SearchFilters, record_search

    template = _big_batch()
    prefix = f"S{uuid.uuid4().hex[:5].upper()}-"
    product = template.master_version.master_record.product_id
    with connection.cursor() as cursor:
        cursor.execute(SEARCH_BATCHES_SQL, {"prefix": prefix, "n": SEARCH_BATCHES, "template": template.pk})
        cursor.execute(SEARCH_TEXTS_SQL, {"product": product, "per_batch": TEXTS_PER_BATCH, "like": prefix + "%"})
        cursor.execute("ANALYZE nlp_review_recordtext")

    started = time.perf_counter()
    hits, batches = record_search(SearchFilters(q="clumping", step="expansion"))
    seconds = time.perf_counter() - started

    print(f"\nsearch over {SEARCH_BATCHES} batches: {batches} batches match, {len(hits)} shown, {seconds:.3f} s")
    assert batches > 0 and "<mark>" in hits[0].snippet
    assert seconds < SEARCH_SECONDS
