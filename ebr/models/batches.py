"""Patient batches and what happened during them: steps, entries, custody, equipment, materials."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords

from ebr.models.master import MasterRecordVersion, ParameterSpec, StepTemplate
from ebr.models.resources import Equipment, MaterialLot


class BatchStatus(models.TextChoices):
    PLANNED = "planned", "Planned"
    IN_PROGRESS = "in_progress", "In progress"
    ON_HOLD = "on_hold", "On hold"
    COMPLETED = "completed", "Completed"
    IN_REVIEW = "in_review", "In review"
    RELEASED = "released", "Released"
    REJECTED = "rejected", "Rejected"
    ABORTED = "aborted", "Aborted"


class BatchCounter(models.Model):
    """Next batch sequence per site and year; locked row, so numbers never repeat or skip."""

    site = models.CharField(max_length=8)
    year = models.PositiveIntegerField()
    last = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["site", "year"], name="batch_counter_unique")]

    def __str__(self) -> str:
        return f"{self.site}-{self.year}: {self.last}"


class Batch(models.Model):
    """One patient's batch. Identity is pseudonymised: no patient name is ever stored."""

    number = models.CharField(max_length=32, unique=True)
    master_version = models.ForeignKey(MasterRecordVersion, on_delete=models.PROTECT, related_name="batches")
    status = models.CharField(max_length=16, choices=BatchStatus.choices, default=BatchStatus.PLANNED)
    coi = models.CharField("chain-of-identity code", max_length=32, unique=True)
    din = models.CharField("donation identification number", max_length=16,
                           help_text="ISBT 128 DIN of the collection (13 characters).")
    patient_ref = models.CharField("pseudonymised patient reference", max_length=32)
    collecting_hospital = models.CharField(max_length=200)
    collected_at = models.DateTimeField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    status_reason = models.TextField(blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "batches"

    def __str__(self) -> str:
        return self.number

    @property
    def din_display(self) -> str:
        """The DIN as printed on the bag's label, with its check character: 'W1234 26 000103 K'."""
        from ebr.identity import din_display

        return din_display(self.din)

    def signed_content(self) -> dict[str, Any]:
        from ebr.selectors import batch_signed_content

        return batch_signed_content(self)


class CustodyEvent(models.Model):
    """A hand-off of the patient's material (EC GMP for ATMPs: traceability donor to patient)."""

    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, related_name="custody_events")
    from_party = models.CharField(max_length=200)
    to_party = models.CharField(max_length=200)
    location = models.CharField(max_length=200)
    occurred_at = models.DateTimeField()
    temperature_c = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    condition = models.CharField(max_length=200, default="intact")
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["occurred_at", "id"]

    def __str__(self) -> str:
        return f"{self.batch} {self.from_party} → {self.to_party}"


class StepStatus(models.TextChoices):
    LOCKED = "locked", "Not yet open"
    OPEN = "open", "Open"
    PERFORMED = "performed", "Performed, awaiting verification"
    DONE = "done", "Done"


class StepExecution(models.Model):
    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, related_name="steps")
    template = models.ForeignKey(StepTemplate, on_delete=models.PROTECT, related_name="+")
    sequence = models.PositiveIntegerField(help_text="Position in the batch, from 1.")
    status = models.CharField(max_length=16, choices=StepStatus.choices, default=StepStatus.LOCKED)
    opened_at = models.DateTimeField(null=True, blank=True)
    performed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+")
    performed_at = models.DateTimeField(null=True, blank=True)
    verified_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    verified_at = models.DateTimeField(null=True, blank=True)
    hold_time_exceeded_by = models.DurationField(null=True, blank=True,
                                                 help_text="How far past the previous step's hold-time limit.")
    remarks = models.TextField(blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["batch", "sequence"]
        constraints = [models.UniqueConstraint(fields=["batch", "sequence"], name="step_sequence_unique")]

    def __str__(self) -> str:
        return f"{self.batch.number} step {self.template.code}"

    def signed_content(self) -> dict[str, Any]:
        """A step signature covers the step and every value recorded in it (21 CFR 11.70)."""
        from ebr.selectors import step_signed_content

        return step_signed_content(self)


class Entry(models.Model):
    """One recorded value. Never changed or deleted: a correction is a new entry that supersedes it.

    The table is append-only in the database (like the audit trail), so the original value of a
    correction can always be shown struck through (EU GMP Annex 11 §8.2, ALCOA+ original).
    """

    id = models.BigAutoField(primary_key=True)
    step = models.ForeignKey(StepExecution, on_delete=models.PROTECT, related_name="entries")
    parameter = models.ForeignKey(ParameterSpec, on_delete=models.PROTECT, related_name="+")
    value_text = models.CharField(max_length=500, help_text="As entered.")
    value_number = models.DecimalField(max_digits=18, decimal_places=6, null=True, blank=True)
    unit = models.CharField(max_length=32, blank=True)
    in_spec = models.BooleanField(null=True, help_text="None when the parameter has no specification.")
    alert = models.BooleanField(default=False, help_text="Outside alert limits (warning).")
    comment = models.TextField(blank=True)
    performed_at = models.DateTimeField(help_text="When the work was done.")
    entered_at = models.DateTimeField(help_text="Server time of the entry.")
    late = models.BooleanField(default=False)
    entered_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    supersedes = models.OneToOneField("self", null=True, blank=True, on_delete=models.PROTECT,
                                      related_name="superseded_by")
    correction_reason = models.TextField(blank=True)
    idempotency_key = models.CharField(max_length=64, unique=True)
    deviation_number = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["step", "parameter__order", "id"]
        verbose_name_plural = "entries"

    def __str__(self) -> str:
        return f"{self.parameter.code}={self.value_text}"


class EquipmentUse(models.Model):
    """Equipment assigned to a batch from `started_at` until `ended_at` (instrument data follows it)."""

    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, related_name="equipment_uses")
    equipment = models.ForeignKey(Equipment, on_delete=models.PROTECT, related_name="uses")
    step = models.ForeignKey(StepExecution, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    assigned_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    calibration_due = models.DateField(null=True, blank=True, help_text="As it was when used.")
    history = HistoricalRecords()

    class Meta:
        ordering = ["started_at"]
        indexes = [models.Index(fields=["equipment", "started_at"], name="equipment_use_time_idx")]

    def __str__(self) -> str:
        return f"{self.equipment.code} on {self.batch.number}"


class MaterialUse(models.Model):
    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, related_name="material_uses")
    step = models.ForeignKey(StepExecution, on_delete=models.PROTECT, related_name="material_uses")
    lot = models.ForeignKey(MaterialLot, on_delete=models.PROTECT, related_name="uses")
    entry = models.OneToOneField(Entry, on_delete=models.PROTECT, related_name="material_use")
    expiry_date = models.DateField(help_text="As it was when used.")
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.lot.lot_number} in {self.step}"
