"""People who sign. A user is never deleted (21 CFR 11.10(e): records stay attributable)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, PermissionsMixin, UserManager
from django.db import models
from simple_history.models import HistoricalRecords

from qms.roles import Role


class FacilityUserManager(UserManager["User"]):
    def create_user(self, username, email=None, password=None, **extra_fields):  # type: ignore[override]
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(username, email, password, **extra_fields)


class User(AbstractBaseUser, PermissionsMixin):
    username = models.CharField(max_length=64, unique=True)
    full_name = models.CharField(
        max_length=200, help_text="Printed name shown with every signature (21 CFR 11.50)."
    )
    job_title = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="May open the Django admin.")
    date_joined = models.DateTimeField(auto_now_add=True)
    deactivated_at = models.DateTimeField(null=True, blank=True)
    # Nullable only so that its history column is NULL in rows chained before it existed (the audit
    # chain's digest leaves nulls out); the application always stores True or False.
    must_change_password = models.BooleanField(
        default=False, null=True,
        help_text="Set by an administrator's account creation: the password is known to them, so the holder changes it "
                  "before anything else (21 CFR 11.300(b)).")

    history = HistoricalRecords(excluded_fields=["password", "last_login"])

    objects = FacilityUserManager()

    USERNAME_FIELD = "username"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["full_name"]

    class Meta:
        ordering = ["username"]

    def __str__(self) -> str:
        return f"{self.full_name} ({self.username})"

    def delete(self, *args, **kwargs):  # type: ignore[override]
        raise PermissionError("Users are never deleted; deactivate them (qms.services.users.user_deactivate).")

    def signed_content(self) -> dict[str, object]:
        """What a signature on an account covers (e.g. acknowledging a role assignment)."""
        return {"username": self.username, "full_name": self.full_name, "job_title": self.job_title,
                "email": self.email, "is_active": self.is_active}

    def get_full_name(self) -> str:
        return self.full_name

    def get_short_name(self) -> str:
        return self.username

    @property
    def role_names(self) -> set[str]:
        if not hasattr(self, "_role_names"):
            self._role_names = set(self.groups.values_list("name", flat=True))
        return self._role_names

    def has_role(self, *roles: Role) -> bool:
        return bool(self.role_names & {role.value for role in roles})
