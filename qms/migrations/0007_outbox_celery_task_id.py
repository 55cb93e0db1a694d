"""The id of the Celery message that carried each outbox row (relay-sent rows go in groups).

A database default as well, so that `enqueue`'s INSERT, and processes of the previous release
while it is rolled out, need not name the column. Rows dispatched before keep "" (their message
was outbox-<id>).
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('qms', '0006_paper_records'),
    ]

    operations = [
        migrations.AddField(
            model_name='outboxmessage',
            name='celery_task_id',
            field=models.CharField(blank=True, db_default='', default='', max_length=64),
        ),
    ]
