"""Append-only audit tables and the hash chain (see qms/audit/dbtriggers.py)."""

from django.db import migrations

from qms.audit.dbtriggers import audited_table, chain_functions, chain_tables_protected, history_table


class Migration(migrations.Migration):
    dependencies = [("qms", "0001_initial")]

    operations = [
        chain_functions(),
        chain_tables_protected(),
        audited_table("qms_auditevent"),
        audited_table("qms_signature"),
        history_table("qms_historicaluser"),
    ]
