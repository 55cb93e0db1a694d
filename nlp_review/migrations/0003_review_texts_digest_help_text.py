# The help text of the texts digest, which the model states and the previous migration did not.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('nlp_review', '0002_review_texts_digest'),
    ]

    operations = [
        migrations.AlterField(
            model_name='batchreview',
            name='texts_sha256',
            field=models.CharField(blank=True, null=True, default='', help_text='Digest of the texts the run reads, in order.', max_length=64),
        ),
        migrations.AlterField(
            model_name='historicalbatchreview',
            name='texts_sha256',
            field=models.CharField(blank=True, null=True, default='', help_text='Digest of the texts the run reads, in order.', max_length=64),
        ),
    ]
