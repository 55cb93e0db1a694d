"""Equipment and materials that a batch may use; their status gates every scan."""

from __future__ import annotations

from datetime import date

from django.db import models
from simple_history.models import HistoricalRecords


class EquipmentType(models.TextChoices):
    BSC = "bsc", "Biosafety cabinet"
    INCUBATOR = "incubator", "CO2 incubator"
    BIOREACTOR = "bioreactor", "Bioreactor"
    CENTRIFUGE = "centrifuge", "Centrifuge"
    CELL_COUNTER = "cell_counter", "Cell counter"
    FREEZER = "freezer", "Controlled-rate freezer"
    SEPARATOR = "separator", "Cell separator"
    SEALER = "sealer", "Tube sealer"
    PARTICLE_COUNTER = "particle_counter", "Particle counter"


class EquipmentStatus(models.TextChoices):
    RELEASED = "released", "Released for use"
    MAINTENANCE = "maintenance", "Under maintenance"
    QUARANTINED = "quarantined", "Quarantined"
    RETIRED = "retired", "Retired"


class Equipment(models.Model):
    code = models.CharField(max_length=32, unique=True, help_text="Asset id on the label, e.g. BR-01.")
    name = models.CharField(max_length=200)
    equipment_type = models.CharField(max_length=32, choices=EquipmentType.choices)
    status = models.CharField(max_length=16, choices=EquipmentStatus.choices, default=EquipmentStatus.RELEASED)
    calibration_due = models.DateField(null=True, blank=True)
    location = models.CharField(max_length=100, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code

    def unusable_reason(self, on: date) -> str | None:
        """Why this equipment may not be used on `on`, or None (EU GMP Part I 3.41)."""
        if self.status != EquipmentStatus.RELEASED:
            return f"{self.code} is not released for use ({self.get_status_display().lower()})."
        if self.calibration_due is not None and self.calibration_due < on:
            return f"{self.code} is out of calibration (due {self.calibration_due:%Y-%m-%d})."
        return None


class Material(models.Model):
    code = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    unit = models.CharField(max_length=16, help_text="UCUM unit of quantities, e.g. mL.")
    history = HistoricalRecords()

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class LotStatus(models.TextChoices):
    RELEASED = "released", "Released"
    QUARANTINED = "quarantined", "Quarantined"
    REJECTED = "rejected", "Rejected"


class MaterialLot(models.Model):
    material = models.ForeignKey(Material, on_delete=models.PROTECT, related_name="lots")
    lot_number = models.CharField(max_length=64, unique=True)
    expiry_date = models.DateField()
    status = models.CharField(max_length=16, choices=LotStatus.choices, default=LotStatus.QUARANTINED)
    supplier = models.CharField(max_length=200, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["lot_number"]

    def __str__(self) -> str:
        return self.lot_number

    def unusable_reason(self, on: date) -> str | None:
        if self.status != LotStatus.RELEASED:
            return f"Lot {self.lot_number} is {self.get_status_display().lower()} and may not be used."
        if self.expiry_date < on:
            return f"Lot {self.lot_number} expired on {self.expiry_date:%Y-%m-%d}."
        return None
