from django.apps import AppConfig


class NlpReviewConfig(AppConfig):
    name = "nlp_review"
    verbose_name = "Batch record review"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from qms.audit.parts import record_parts_register

        record_parts_register("ebr.batch", _batch_review_parts)

    def open_flags_count(self, batch_pk: int) -> int:
        """Release gate (ebr.services.release.release_blockers): flags of the batch's latest review that QA
        has not dispositioned. EU GMP Annex 16 §1.7 / draft Annex 22: every model output is decided by a person."""
        from nlp_review.services import open_flags_count

        return open_flags_count(batch_pk)

    def review_finished(self, batch_pk: int) -> bool:
        """Release gate: the batch's latest review has finished. A re-run that is still running or
        failed supersedes the earlier versions, so release waits for it (its flags are the ones QA
        dispositions)."""
        from nlp_review.models import ReviewStatus
        from nlp_review.services import latest_review

        review = latest_review(batch_pk)
        return review is not None and review.status == ReviewStatus.DONE

    def review_version_finished(self, batch_pk: int) -> int | None:
        """The version of the batch's latest finished review (recorded with a batch decision)."""
        from nlp_review.services import finished_reviews

        return finished_reviews(batch_pk).values_list("version", flat=True).first()

    def review_readings_seen(self, batch_pk: int) -> set[int]:
        """Release gate: the instrument posts whose late readings the batch's latest review flagged
        (structured.readings_after_completion); late readings of any other post were not seen by it."""
        from nlp_review.models import ReviewFlag
        from nlp_review.services import latest_review

        review = latest_review(batch_pk)
        if review is None:
            return set()
        return {int(source_id) for source_id in ReviewFlag.objects.filter(
            review=review, rule="structured.readings_after_completion").values_list("source_id", flat=True)}

    def review_flags_for_pdf(self, batch_pk: int) -> list[dict[str, object]] | None:
        """The flags of the review the record holds (the latest finished, or for a decided batch the
        one finished by the decision) for the signed PDF record (ebr/pdf/providers.py contract)."""
        from nlp_review.models import ReviewFlag
        from nlp_review.services import decision_review

        review = decision_review(batch_pk)
        if review is None:
            return None
        flags = ReviewFlag.objects.filter(review=review).select_related("step__template", "dispositioned_by")
        return [{
            "rule": flag.rule, "category": flag.category, "severity": flag.severity,
            "step": flag.step.template.code if flag.step else "", "evidence": flag.evidence,
            "explanation": flag.explanation,
            "disposition": "" if flag.disposition == "none" else flag.disposition,
            "disposition_reason": flag.disposition_reason, "deviation_number": flag.deviation_number,
            "dispositioned_by": flag.dispositioned_by.full_name if flag.dispositioned_by else "",
            "dispositioned_by_username": flag.dispositioned_by.username if flag.dispositioned_by else "",
            "dispositioned_at": flag.dispositioned_at,
        } for flag in flags.order_by("id")]


def _batch_review_parts(batch_pk: str) -> dict[str, list[str]]:
    """A batch's reviews and their flags belong to its audit trail: who dispositioned what, and how."""
    from nlp_review.models import BatchReview, ReviewFlag

    return {"nlp_review.batchreview": [str(pk) for pk in BatchReview.objects.filter(batch_id=batch_pk)
                                       .values_list("pk", flat=True)],
            "nlp_review.reviewflag": [str(pk) for pk in ReviewFlag.objects.filter(batch_id=batch_pk)
                                      .values_list("pk", flat=True)]}
