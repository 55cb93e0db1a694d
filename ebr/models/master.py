"""Master batch records: the approved instructions every patient batch is executed from."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models.functions import Upper
from simple_history.models import HistoricalRecords

from ebr.models.resources import EquipmentType
from ebr.units import unit_display


class Product(models.Model):
    code = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200, help_text="e.g. Autologous anti-CD19 CAR-T cells")
    history = HistoricalRecords()

    class Meta:
        ordering = ["code"]
        # "car-t-01" and "CAR-T-01" are one product, also when two authors create them at once.
        constraints = [models.UniqueConstraint(Upper("code"), name="product_code_unique_any_case")]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class MasterRecord(models.Model):
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="master_records")
    code = models.CharField(max_length=32, unique=True, help_text="Document code, e.g. MBR-CART-001")
    title = models.CharField(max_length=200)
    history = HistoricalRecords()

    class Meta:
        ordering = ["code"]
        constraints = [models.UniqueConstraint(Upper("code"), name="master_record_code_unique_any_case")]

    def __str__(self) -> str:
        return self.code


class VersionStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    IN_REVIEW = "in_review", "In review"
    APPROVED = "approved", "Approved"
    EFFECTIVE = "effective", "Effective"
    SUPERSEDED = "superseded", "Superseded"
    RETIRED = "retired", "Retired"
    # A draft abandoned before approval: kept on record, never edited, submitted or executed again.
    WITHDRAWN = "withdrawn", "Withdrawn"


class MasterRecordVersion(models.Model):
    master_record = models.ForeignKey(MasterRecord, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=VersionStatus.choices, default=VersionStatus.DRAFT)
    based_on = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    change_control = models.CharField(max_length=32, blank=True, help_text="Approved CC-YYYY-NNNN behind it.")
    summary_of_changes = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    effective_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["master_record__code", "version"]
        constraints = [
            models.UniqueConstraint(fields=["master_record", "version"], name="one_number_per_version"),
            # Only one effective version per master record, enforced by the database.
            models.UniqueConstraint(fields=["master_record"], condition=models.Q(status="effective"),
                                    name="one_effective_version"),
        ]

    def __str__(self) -> str:
        return f"{self.master_record.code} v{self.version}"

    @property
    def frozen(self) -> bool:
        return self.status != VersionStatus.DRAFT

    def signed_content(self) -> dict[str, Any]:
        """A version signature covers its whole content: every stage, step and limit."""
        from ebr.selectors import master_version_content

        return {"version": str(self), "change_control": self.change_control,
                "content": master_version_content(self)}


class Stage(models.Model):
    version = models.ForeignKey(MasterRecordVersion, on_delete=models.CASCADE, related_name="stages")
    order = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    history = HistoricalRecords()

    class Meta:
        ordering = ["version", "order"]
        constraints = [models.UniqueConstraint(fields=["version", "order"], name="stage_order_unique")]

    def __str__(self) -> str:
        return f"{self.order}. {self.name}"


class StepTemplate(models.Model):
    stage = models.ForeignKey(Stage, on_delete=models.CASCADE, related_name="steps")
    order = models.PositiveIntegerField()
    code = models.CharField(max_length=16, help_text="Shown to operators, e.g. 4.2")
    title = models.CharField(max_length=200)
    instructions = models.TextField(help_text="Operator instructions in Markdown (bold, italic, lists, headings, "
                                              "links); ![caption](image:1) places the step's image 1.")
    critical = models.BooleanField(default=False)
    requires_verification = models.BooleanField(default=False, help_text="Second-person verification.")
    equipment_type = models.CharField(max_length=32, choices=EquipmentType.choices, blank=True)
    expected_duration = models.DurationField(null=True, blank=True)
    hold_time_limit = models.DurationField(null=True, blank=True,
                                           help_text="Longest allowed time from this step to the next.")
    history = HistoricalRecords()

    class Meta:
        ordering = ["stage__order", "order"]
        constraints = [models.UniqueConstraint(fields=["stage", "order"], name="step_order_unique")]

    def __str__(self) -> str:
        return f"{self.code} {self.title}"

    @property
    def needs_verification(self) -> bool:
        return self.critical or self.requires_verification


class ParameterKind(models.TextChoices):
    NUMBER = "number", "Number"
    TEXT = "text", "Text"
    CHOICE = "choice", "Choice"
    YES_NO = "yes_no", "Yes / no"
    DATETIME = "datetime", "Date and time"
    MATERIAL_LOT = "material_lot", "Material lot"
    EQUIPMENT_ID = "equipment_id", "Equipment id"
    CALCULATED = "calculated", "Calculated"


class ParameterSpec(models.Model):
    step = models.ForeignKey(StepTemplate, on_delete=models.CASCADE, related_name="parameters")
    order = models.PositiveIntegerField()
    code = models.SlugField(max_length=40, help_text="Stable key, e.g. viability")
    label = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=ParameterKind.choices)
    unit = models.CharField(max_length=32, blank=True, help_text="UCUM code, e.g. %, 10*6/mL, Cel")
    target = models.DecimalField(max_digits=18, decimal_places=6, null=True, blank=True)
    lower_limit = models.DecimalField(max_digits=18, decimal_places=6, null=True, blank=True)
    upper_limit = models.DecimalField(max_digits=18, decimal_places=6, null=True, blank=True)
    alert_low = models.DecimalField(max_digits=18, decimal_places=6, null=True, blank=True)
    alert_high = models.DecimalField(max_digits=18, decimal_places=6, null=True, blank=True)
    critical = models.BooleanField(default=False)
    required = models.BooleanField(default=True)
    choices = models.JSONField(default=list, blank=True, help_text="Allowed answers for a choice.")
    expected = models.CharField(max_length=64, blank=True, help_text="Expected answer (yes/no, choice).")
    material = models.ForeignKey("ebr.Material", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="+", help_text="For a material lot: the material required; for a number: "
                                           "the quantity used of this material.")
    formula = models.CharField(max_length=200, blank=True,
                               help_text="For a calculated value: an expression over other codes.")
    history = HistoricalRecords()

    class Meta:
        ordering = ["step", "order"]
        constraints = [models.UniqueConstraint(fields=["step", "code"], name="parameter_code_unique")]

    def __str__(self) -> str:
        shown = unit_display(self.unit)
        return f"{self.label}{f' ({shown})' if shown else ''}"

    def limits_text(self, *, unit_as_stored: bool = False) -> str:
        """'2–8 °C'; `unit_as_stored` keeps UCUM's pure number '1' (the PDF fingerprint's form)."""
        text = range_text(self.lower_limit, self.upper_limit,
                          self.unit if unit_as_stored else unit_display(self.unit))
        if text:
            return text
        return f"expected: {self.expected}" if self.expected else ""

    def alert_text(self) -> str:
        """'2–8 °C', '≥ 80 %', '≤ 36 h': the alert limits as the specification reads."""
        return range_text(self.alert_low, self.alert_high, unit_display(self.unit))


def range_text(low: Decimal | None, high: Decimal | None, unit: str = "") -> str:
    """Limits as people write them: '2–8 °C', '= 5', '≥ 80 %', '≤ 36' ('' when there are none)."""
    unit = f" {unit}" if unit else ""
    if low is not None and low == high:
        return f"= {_plain(low)}{unit}"
    if low is not None and high is not None:
        return f"{_plain(low)}–{_plain(high)}{unit}"
    if low is not None:
        return f"≥ {_plain(low)}{unit}"
    if high is not None:
        return f"≤ {_plain(high)}{unit}"
    return ""


def _plain(number: Decimal) -> str:
    return format(number.normalize(), "f")


class StepMaterial(models.Model):
    """A material the step consumes, with the quantity the master record prescribes.

    The master record service turns each one into a lot parameter and a quantity parameter of
    the step (ebr/services/master_records/), so execution checks them like any other value.
    """

    step = models.ForeignKey(StepTemplate, on_delete=models.CASCADE, related_name="materials")
    material = models.ForeignKey("ebr.Material", on_delete=models.PROTECT, related_name="+")
    quantity = models.DecimalField(max_digits=12, decimal_places=3)
    tolerance = models.DecimalField(max_digits=12, decimal_places=3, null=True, blank=True,
                                    help_text="Allowed difference either way, in the material's unit; "
                                              "empty: the quantity used must match exactly.")
    history = HistoricalRecords()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["step", "material"], name="step_material_unique")]

    def __str__(self) -> str:
        return f"{self.material.code} × {self.quantity_text()}"

    def quantity_text(self) -> str:
        shown = unit_display(self.material.unit)
        unit = f" {shown}" if shown else ""
        tolerance = f" ± {_plain(self.tolerance)}" if self.tolerance else ""
        return f"{_plain(self.quantity)}{tolerance}{unit}"

    def limits(self) -> tuple[Decimal, Decimal]:
        margin = self.tolerance or Decimal(0)
        return self.quantity - margin, self.quantity + margin


class InstructionImage(models.Model):
    """A figure of a step's instructions, e.g. where to put a label. Frozen with its version.

    Referenced from the Markdown as `![caption](image:<number>)`: the number is per step and is
    kept when a new version copies the step, so the text never needs rewriting. The file is
    stored once under its SHA-256 (a copy shares it); the SHA-256 is part of the content the
    version's signatures cover (21 CFR 11.70), and is checked again whenever the file is served.
    """

    step = models.ForeignKey(StepTemplate, on_delete=models.CASCADE, related_name="images")
    number = models.PositiveIntegerField()
    caption = models.CharField(max_length=200, help_text="What the figure shows; also its alternative text.")
    file = models.CharField(max_length=200, help_text="Storage name of the file.")
    content_type = models.CharField(max_length=32)
    sha256 = models.CharField(max_length=64)
    size = models.PositiveIntegerField()
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    history = HistoricalRecords()

    class Meta:
        ordering = ["step", "number"]
        constraints = [models.UniqueConstraint(fields=["step", "number"], name="instruction_image_number_unique")]

    def __str__(self) -> str:
        return f"{self.step.code} image {self.number}: {self.caption}"


class InstrumentLimit(models.Model):
    """Limits for instrument data while the step runs (alarms; the instrument API issue)."""

    step = models.ForeignKey(StepTemplate, on_delete=models.CASCADE, related_name="instrument_limits")
    parameter = models.CharField(max_length=40, help_text="Instrument parameter code, e.g. ph")
    alert_low = models.DecimalField(max_digits=18, decimal_places=6, null=True, blank=True)
    alert_high = models.DecimalField(max_digits=18, decimal_places=6, null=True, blank=True)
    action_low = models.DecimalField(max_digits=18, decimal_places=6, null=True, blank=True)
    action_high = models.DecimalField(max_digits=18, decimal_places=6, null=True, blank=True)
    critical = models.BooleanField(default=False)
    history = HistoricalRecords()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["step", "parameter"], name="instrument_limit_unique")]

    def __str__(self) -> str:
        return f"{self.step.code} {self.parameter}"

    def limits_text(self) -> str:
        """'ph alert 6.9–7.5, action 6.8–7.6 (critical)'."""
        parts = [f"{kind} {text}" for kind, text in (("alert", range_text(self.alert_low, self.alert_high)),
                                                     ("action", range_text(self.action_low, self.action_high)))
                 if text]
        return f"{self.parameter} {', '.join(parts) or 'no limits'}{' (critical)' if self.critical else ''}"


DEFAULT_LATE_ENTRY = timedelta(minutes=30)
