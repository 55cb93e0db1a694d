"""History tables of the quality records: append-only and in the audit hash chain (see 0002)."""

from django.db import migrations

from qms.audit.dbtriggers import history_table

QUALITY_HISTORY_TABLES = [
    "qms_historicaldeviation",
    "qms_historicaldeviationsubject",
    "qms_historicaldeviationextension",
    "qms_historicalcapa",
    "qms_historicalcapadeviation",
    "qms_historicalcapaaction",
    "qms_historicalcapaeffectivenesscheck",
    "qms_historicalchangecontrol",
    "qms_historicalchangetask",
    "qms_historicaltrainingrecord",
]


class Migration(migrations.Migration):
    dependencies = [("qms", "0003_quality_system")]

    operations = [history_table(table) for table in QUALITY_HISTORY_TABLES]
