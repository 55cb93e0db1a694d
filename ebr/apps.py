from django.apps import AppConfig


class EbrConfig(AppConfig):
    name = "ebr"
    verbose_name = "Manufacturing (eBR)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from ebr.subjects import (
            change_control_work_register,
            record_parts_register_all,
            subject_kinds_register,
            training_documents_register,
            version_page_parts_register,
        )

        subject_kinds_register()
        training_documents_register()
        change_control_work_register()
        record_parts_register_all()
        version_page_parts_register()
