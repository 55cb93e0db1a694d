"""A BRIN index on ReadingPost.received_at, for the watch over overdue alarm evaluations."""

import django.contrib.postgres.indexes
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('ebr', '0007_codes_unique_any_case_parameters_append_only'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='readingpost',
            index=django.contrib.postgres.indexes.BrinIndex(fields=['received_at'], name='reading_post_received_brin'),
        ),
    ]
