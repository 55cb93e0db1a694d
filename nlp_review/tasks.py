"""Celery tasks of the batch review: thin wrappers that call one service each (STYLE.md)."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.db import DatabaseError, InterfaceError

from qms.audit import SystemActor

REVIEW_ACTOR = SystemActor("system:nlp_review")


@shared_task(bind=True, name="nlp_review.review_batch", autoretry_for=(DatabaseError, InterfaceError),
             retry_backoff=5, retry_backoff_max=300, max_retries=8)
def review_batch(self: Any, batch_id: int, request_id: str = "") -> dict[str, Any]:
    """Review one batch (queued through the outbox when its last step is done).

    Idempotent: the run is keyed on `request_id`, by default the Celery task id, which the outbox
    keeps stable across re-sends ("outbox-<message id>"); a retry resumes the same review.
    """
    from ebr.models import Batch
    from nlp_review.services import ReviewRefused, batch_review_run

    batch = Batch.objects.get(pk=batch_id)
    try:
        review = batch_review_run(batch=batch, actor=REVIEW_ACTOR, request_id=request_id or self.request.id)
    except ReviewRefused as refused:  # decided meanwhile: nothing to retry
        return {"refused": refused.messages[0]}
    return {"review": review.pk, "version": review.version, "risk_score": review.risk_score,
            "status": review.status}
