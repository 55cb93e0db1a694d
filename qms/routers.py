"""Send django-axes' failure counters to the `security` connection.

A wrong password while signing rolls back the business transaction around it; the failure
must still count toward the lockout (21 CFR 11.300(d)), so its writes cannot share that
transaction. Both aliases point at the same database, so relations and migrations are shared.
"""

from __future__ import annotations

from typing import Any


class SecurityRecordsRouter:
    security_apps = {"axes"}

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return "security" if model._meta.app_label in self.security_apps else None

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return "security" if model._meta.app_label in self.security_apps else None

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        # One database: everything is migrated through the default alias.
        return db == "default"
