"""Gap-free record numbers (DEV-2026-0001): one counter row per (prefix, year).

The counter is incremented inside the transaction that creates the record and locked with
SELECT ... FOR UPDATE, so concurrent creators wait for each other and a rolled-back creation
gives its number back. Infrastructure, not a GxP record: the numbered rows carry the history.
"""

from __future__ import annotations

from django.db import models


class NumberSequence(models.Model):
    prefix = models.CharField(max_length=10)
    year = models.PositiveSmallIntegerField()
    last_value = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["prefix", "year"], name="number_sequence_unique")]

    def __str__(self) -> str:
        return f"{self.prefix}-{self.year}: {self.last_value}"
