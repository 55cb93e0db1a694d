"""History tables, entries, custody events and material uses: append-only and hash-chained."""

from django.db import migrations

from qms.audit.dbtriggers import audited_table, history_table

HISTORY = ["equipment", "material", "materiallot", "product", "masterrecord", "masterrecordversion", "stage",
           "steptemplate", "parameterspec", "stepmaterial", "instrumentlimit", "batch", "stepexecution",
           "equipmentuse"]


class Migration(migrations.Migration):
    dependencies = [("ebr", "0001_initial"), ("qms", "0002_audit_append_only")]

    operations = [
        *[history_table(f"ebr_historical{name}") for name in HISTORY],
        audited_table("ebr_entry"),
        audited_table("ebr_custodyevent"),
        audited_table("ebr_materialuse"),
    ]
