"""Forms for authoring master records on the desktop."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms

from ebr.models import EquipmentType, Material, ParameterKind, Product


class MasterRecordForm(forms.Form):
    product = forms.ModelChoiceField(queryset=Product.objects.all(), required=False,
                                     help_text="Or name a new product below.")
    new_product_code = forms.CharField(required=False, max_length=32)
    new_product_name = forms.CharField(required=False, max_length=200)
    code = forms.CharField(max_length=32, help_text="Document code, e.g. MBR-CART19-002")
    title = forms.CharField(max_length=200)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("product") and not (data.get("new_product_code") and data.get("new_product_name")):
            raise forms.ValidationError("Choose a product or name a new one (code and name).")
        return data


class StageForm(forms.Form):
    name = forms.CharField(max_length=200)


INSTRUCTIONS_HELP = ("Markdown: **bold**, *italic*, lists with - or 1., # headings. Place an image uploaded to "
                     "the step with ![caption](image:1); images not placed are shown after the text.")


class StepForm(forms.Form):
    code = forms.CharField(max_length=16)
    title = forms.CharField(max_length=200)
    instructions = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), help_text=INSTRUCTIONS_HELP)
    critical = forms.BooleanField(required=False)
    requires_verification = forms.BooleanField(required=False, label="Second-person verification")
    equipment_type = forms.ChoiceField(choices=[("", "none"), *EquipmentType.choices], required=False)
    hold_time_minutes = forms.IntegerField(required=False, min_value=1, label="Hold-time limit to the next step (min)")
    expected_minutes = forms.IntegerField(required=False, min_value=1, label="Expected duration (min)")

    def step_fields(self) -> dict[str, Any]:
        data = self.cleaned_data
        minutes = data.get("hold_time_minutes")
        expected = data.get("expected_minutes")
        return {"code": data["code"], "title": data["title"], "instructions": data["instructions"],
                "critical": data["critical"], "requires_verification": data["requires_verification"],
                "equipment_type": data["equipment_type"] or "",
                "hold_time_limit": timedelta(minutes=minutes) if minutes else None,
                "expected_duration": timedelta(minutes=expected) if expected else None}


class ParameterForm(forms.Form):
    code = forms.SlugField(max_length=40)
    label = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=ParameterKind.choices)
    unit = forms.CharField(max_length=32, required=False, help_text="UCUM, e.g. %, Cel, 10*6/mL")
    target = forms.DecimalField(required=False, max_digits=18, decimal_places=6)
    lower_limit = forms.DecimalField(required=False, max_digits=18, decimal_places=6)
    upper_limit = forms.DecimalField(required=False, max_digits=18, decimal_places=6)
    alert_low = forms.DecimalField(required=False, max_digits=18, decimal_places=6)
    alert_high = forms.DecimalField(required=False, max_digits=18, decimal_places=6)
    critical = forms.BooleanField(required=False)
    choices = forms.CharField(required=False, help_text="For a choice: answers separated by commas")
    expected = forms.CharField(required=False, max_length=64)
    material = forms.ModelChoiceField(queryset=Material.objects.all(), required=False)
    formula = forms.CharField(required=False, max_length=200)

    def spec(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["choices"] = [c.strip() for c in (data.get("choices") or "").split(",") if c.strip()]
        return {k: v for k, v in data.items() if v not in (None, "") or k in {"critical"}}


class StepMaterialForm(forms.Form):
    material = forms.ModelChoiceField(queryset=Material.objects.all())
    quantity = forms.DecimalField(max_digits=12, decimal_places=3, min_value=0,
                                  help_text="In the material's unit; the operator records the quantity used.")
    tolerance = forms.DecimalField(max_digits=12, decimal_places=3, min_value=0, required=False,
                                   help_text="± allowed; empty: the quantity used must match exactly.")


class StepMaterialChangeForm(StepMaterialForm):
    """The prescription form again, for a material the step already prescribes, with the reason."""

    reason = forms.CharField(max_length=2000, help_text="Why the prescription changes.")


class InstructionsForm(forms.Form):
    instructions = forms.CharField(widget=forms.Textarea(attrs={"rows": 8}),
                                   help_text=INSTRUCTIONS_HELP)
    reason = forms.CharField(max_length=2000, help_text="Why the instructions change.")


class InstructionImageForm(forms.Form):
    caption = forms.CharField(max_length=200, help_text="What the image shows (also read aloud by screen readers).")
    image = forms.FileField(help_text="PNG or JPEG, 2 MB at most.")


class NewVersionForm(forms.Form):
    change_control = forms.CharField(max_length=32, help_text="The approved change control, e.g. CC-2026-0003")
    summary_of_changes = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))
