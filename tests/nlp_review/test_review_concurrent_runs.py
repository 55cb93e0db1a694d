"""The same review delivered twice at once (a relay that crashed between sending a message and
marking it sent) writes every flag once and finishes once."""

from __future__ import annotations

import threading
import uuid
from collections import Counter

import pytest
from django.db import connections

from nlp_review.models import BatchReview, ReviewFlag, ReviewStatus
from qms.audit import Event, SystemActor
from qms.models import AuditEvent


def _big_batch(monkeypatch: pytest.MonkeyPatch, steps: int):  # type: ignore[no-untyped-def]
    from tests.bench import test_pdf_export as pdf_bench
    from tests.bench import test_review_batch as review_bench

    for module in (pdf_bench, review_bench):  # the review benchmark's builder, at a test's size
        monkeypatch.setattr(module, "STEPS", steps)
        monkeypatch.setattr(module, "PARAMETERS_PER_STEP", 7)
    return review_bench._big_batch()


def test_two_concurrent_runs_of_one_review_write_each_flag_once(committed, monkeypatch):
    from nlp_review.services import batch_review_run

    batch = _big_batch(monkeypatch, steps=160)  # > 1,000 texts: several chunks
    request_id = f"concurrent-{uuid.uuid4().hex[:8]}"
    barrier, errors, results = threading.Barrier(2), [], []

    def run() -> None:
        try:
            barrier.wait()
            results.append(batch_review_run(batch=batch, actor=SystemActor("system:tests"), request_id=request_id))
        except Exception as error:  # pragma: no cover - shown by the assertion below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not any(thread.is_alive() for thread in threads), "the two runs deadlocked"

    assert not errors, errors
    assert len(results) == 2 and {r.pk for r in results} == {results[0].pk}, "both runs ended on the one review"
    review = BatchReview.objects.get(request_id=request_id)
    flags = list(ReviewFlag.objects.filter(review=review).values_list("source_kind", "source_id", "rule", "start"))
    doubled = [key for key, count in Counter(flags).items() if count > 1]
    finished = AuditEvent.objects.filter(event_type=Event.REVIEW_RUN_FINISHED, target_id=str(review.pk)).count()
    print(f"\nconcurrent review runs 2: flags {len(flags)}, duplicates {len(doubled)}, finished events {finished}")
    assert review.status == ReviewStatus.DONE and review.progress_done == review.progress_total
    assert flags and not doubled
    assert finished == 1
