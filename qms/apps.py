from django.apps import AppConfig


class QmsConfig(AppConfig):
    name = "qms"
    verbose_name = "Quality system"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from qms import (
            auth_events,  # noqa: F401  (login/lockout events into the audit trail)
            roles,
        )

        roles.connect_post_migrate(self)
        from qms.record_parts import record_parts_register_all

        record_parts_register_all()
