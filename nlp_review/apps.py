from django.apps import AppConfig


class NlpReviewConfig(AppConfig):
    name = "nlp_review"
    verbose_name = "Batch record review"
    default_auto_field = "django.db.models.BigAutoField"
