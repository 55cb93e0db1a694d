"""The audit trail (21 CFR 11.10(e), EU GMP Annex 11 §9): append-only and hash-chained.

`AuditEvent` holds business events (who, when, what, why); django-simple-history tables hold
field-level history; `Signature` holds e-signatures. PostgreSQL triggers installed by
migrations refuse UPDATE, DELETE and TRUNCATE on all of them, and link every committed row into
one hash chain (`AuditChainEntry`), which `verify_audit_trail` recomputes.
"""

from __future__ import annotations

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class AuditEvent(models.Model):
    id = models.BigAutoField(primary_key=True)
    occurred_at = models.DateTimeField(db_index=True, help_text="Server time, UTC.")
    # No database constraint: security events are written on their own connection, and an
    # append-only log must never be blocked or cascaded by its referents.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DO_NOTHING,
        db_constraint=False, related_name="+",
    )
    actor_label = models.CharField(max_length=200, help_text="Username, instrument:NAME or system:COMPONENT.")
    event_type = models.CharField(max_length=64)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=200, blank=True)
    reason = models.TextField(blank=True)
    data = models.JSONField(default=dict, encoder=DjangoJSONEncoder, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["target_type", "target_id", "-id"], name="audit_target_idx"),
            models.Index(fields=["actor", "-id"], name="audit_actor_idx"),
            models.Index(fields=["event_type", "-id"], name="audit_event_idx"),
            # the audit page's "record" filter searches by printed label (batch number, DEV-…)
            models.Index(fields=["target_label", "-id"], name="audit_label_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.event_type} {self.target_label}"


class AuditChainEntry(models.Model):
    """One link of the hash chain; written only by the database trigger at commit."""

    seq = models.BigIntegerField(primary_key=True)
    table_name = models.CharField(max_length=100)
    row_pk = models.CharField(max_length=64)
    row_digest = models.CharField(max_length=64)
    prev_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64)
    chained_at = models.DateTimeField()

    class Meta:
        ordering = ["seq"]
        indexes = [models.Index(fields=["table_name", "row_pk"], name="audit_chain_row_idx")]

    def __str__(self) -> str:
        return f"chain {self.seq} {self.table_name} {self.row_pk}"


class AuditedTable(models.Model):
    """Registry of tables in the chain and their primary-key column, kept by migrations."""

    table_name = models.CharField(max_length=100, primary_key=True)
    pk_column = models.CharField(max_length=64)

    def __str__(self) -> str:
        return self.table_name


class Signature(models.Model):
    """An electronic signature linked to the exact content it signed (21 CFR 11.50, 11.70)."""

    id = models.BigAutoField(primary_key=True)
    signer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="signatures")
    printed_name = models.CharField(max_length=200)
    username = models.CharField(max_length=64)
    meaning = models.CharField(max_length=32)
    signed_at = models.DateTimeField(help_text="Server time, UTC.")
    target_type = models.CharField(max_length=100)
    target_id = models.CharField(max_length=64)
    target_label = models.CharField(max_length=200)
    content_hash = models.CharField(max_length=64, help_text="SHA-256 of the canonical JSON signed.")
    content = models.JSONField(encoder=DjangoJSONEncoder, help_text="The canonical content signed.")
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["signed_at", "id"]
        indexes = [models.Index(fields=["target_type", "target_id"], name="signature_target_idx")]

    def __str__(self) -> str:
        return f"{self.printed_name} {self.meaning} {self.target_label}"
