"""The chain trigger turns each new row into JSON once instead of twice (qms/audit/dbtriggers.py).

Same key, same digest, same links: only the work per chained row changes. An instrument post
(ebr_readingpost) carries its compressed request body, which to_jsonb writes out in hex; doing it
twice was a measurable part of every post's commit (issue #6).
"""

from django.db import migrations

from qms.audit.dbtriggers import FUNCTIONS_SQL


class Migration(migrations.Migration):

    dependencies = [
        ("qms", "0011_training_record_withdrawn"),
    ]

    # Reversing keeps this version: it computes exactly what the one it replaced did.
    operations = [
        migrations.RunSQL(FUNCTIONS_SQL, migrations.RunSQL.noop),
    ]
