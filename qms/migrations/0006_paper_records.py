"""Deviations and CAPAs transcribed from legacy paper records at go-live (qms/services/legacy_import.py).

Only nullable columns are added to the history tables, which are append-only and hash-chained:
the chain's row digest strips NULLs, so every existing history row keeps its digest.
"""

import django.db.models.functions.text
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('qms', '0005_audit_label_index'),
    ]

    operations = [
        migrations.AddField(
            model_name='capa',
            name='paper_opened_on',
            field=models.DateField(blank=True, help_text='Date opened on paper (opened_at: when transcribed).', null=True),
        ),
        migrations.AddField(
            model_name='capa',
            name='paper_reference',
            field=models.CharField(blank=True, help_text='Reference of the paper record this was transcribed from.', max_length=60, null=True),
        ),
        migrations.AddField(
            model_name='deviation',
            name='paper_opened_on',
            field=models.DateField(blank=True, help_text='Date opened on paper (opened_at: when transcribed).', null=True),
        ),
        migrations.AddField(
            model_name='deviation',
            name='paper_reference',
            field=models.CharField(blank=True, help_text='Reference of the paper record this was transcribed from.', max_length=60, null=True),
        ),
        migrations.AddField(
            model_name='historicalcapa',
            name='paper_opened_on',
            field=models.DateField(blank=True, help_text='Date opened on paper (opened_at: when transcribed).', null=True),
        ),
        migrations.AddField(
            model_name='historicalcapa',
            name='paper_reference',
            field=models.CharField(blank=True, help_text='Reference of the paper record this was transcribed from.', max_length=60, null=True),
        ),
        migrations.AddField(
            model_name='historicaldeviation',
            name='paper_opened_on',
            field=models.DateField(blank=True, help_text='Date opened on paper (opened_at: when transcribed).', null=True),
        ),
        migrations.AddField(
            model_name='historicaldeviation',
            name='paper_reference',
            field=models.CharField(blank=True, help_text='Reference of the paper record this was transcribed from.', max_length=60, null=True),
        ),
        migrations.AlterField(
            model_name='deviation',
            name='source',
            field=models.CharField(choices=[('manual', 'Reported by a person'), ('oos_entry', 'Out-of-specification entry'), ('instrument_alarm', 'Instrument alarm'), ('review_flag', 'Batch record review flag'), ('paper_record', 'Transcribed from paper record')], default='manual', max_length=20),
        ),
        migrations.AlterField(
            model_name='historicaldeviation',
            name='source',
            field=models.CharField(choices=[('manual', 'Reported by a person'), ('oos_entry', 'Out-of-specification entry'), ('instrument_alarm', 'Instrument alarm'), ('review_flag', 'Batch record review flag'), ('paper_record', 'Transcribed from paper record')], default='manual', max_length=20),
        ),
        migrations.AddConstraint(
            model_name='capa',
            constraint=models.UniqueConstraint(django.db.models.functions.text.Upper('paper_reference'), name='capa_paper_reference_unique'),
        ),
        migrations.AddConstraint(
            model_name='capa',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('paper_opened_on__isnull', True), ('paper_reference__isnull', True)), models.Q(('paper_opened_on__isnull', False), ('paper_reference__isnull', False)), _connector='OR'), name='capa_paper_reference_with_date'),
        ),
        migrations.AddConstraint(
            model_name='deviation',
            constraint=models.UniqueConstraint(django.db.models.functions.text.Upper('paper_reference'), name='deviation_paper_reference_unique'),
        ),
        migrations.AddConstraint(
            model_name='deviation',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('paper_opened_on__isnull', True), ('paper_reference__isnull', True)), models.Q(('paper_opened_on__isnull', False), ('paper_reference__isnull', False)), _connector='OR'), name='deviation_paper_reference_with_date'),
        ),
    ]
