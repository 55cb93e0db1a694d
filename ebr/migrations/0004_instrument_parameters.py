"""The initial parameter registry of the instrument API (docs: specs/instrument-api.md).

Rows added later by a facility are data, made through `instrument_parameter_add`; this
migration only creates the ones it does not find, and leaves them in place when reversed.
"""

from django.db import migrations

PARAMETERS = [
    ("ph", "pH", "[pH]"),
    ("do", "dissolved oxygen", "%"),
    ("temp", "temperature", "Cel"),
    ("glucose", "glucose", "g/L"),
    ("lactate", "lactate", "mmol/L"),
    ("glutamine", "glutamine", "mmol/L"),
    ("ammonia", "ammonia", "mmol/L"),
    ("vcd", "viable cell density", "10*6/mL"),
    ("viability", "viability", "%"),
    ("agitation", "agitation", "/min"),
    ("co2", "CO2", "%"),
    ("particles_05", "particles ≥0.5 µm", "/m3"),
    ("particles_5", "particles ≥5 µm", "/m3"),
]


def registry_seed(apps, schema_editor):
    InstrumentParameter = apps.get_model("ebr", "InstrumentParameter")
    for code, meaning, unit in PARAMETERS:
        InstrumentParameter.objects.get_or_create(code=code, defaults={"meaning": meaning, "unit": unit})


class Migration(migrations.Migration):
    dependencies = [("ebr", "0003_instruments")]

    operations = [migrations.RunPython(registry_seed, migrations.RunPython.noop)]
