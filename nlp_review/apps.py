from django.apps import AppConfig


class NlpReviewConfig(AppConfig):
    name = "nlp_review"
    verbose_name = "Batch record review"
    default_auto_field = "django.db.models.BigAutoField"

    def open_flags_count(self, batch_pk: int) -> int:
        """Release gate (ebr.services.release.release_blockers): flags of the batch's latest review that QA
        has not dispositioned. EU GMP Annex 16 §1.7 / draft Annex 22: every model output is decided by a person."""
        from nlp_review.services import open_flags_count

        return open_flags_count(batch_pk)

    def review_finished(self, batch_pk: int) -> bool:
        """Release gate: the batch record has been read by the review at least once."""
        from nlp_review.models import BatchReview

        return BatchReview.objects.filter(batch_id=batch_pk, status="done").exists()
