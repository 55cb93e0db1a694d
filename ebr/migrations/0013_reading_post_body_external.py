"""An instrument post's body is stored out of line without PostgreSQL's own compression.

The body is zlib-compressed before it is stored (ReadingPost.body), so PostgreSQL's attempt to
compress it again (pglz) never succeeds and only costs CPU on every post (issue #6). EXTERNAL
keeps it out of line in the TOAST table, uncompressed, exactly as it is today when the attempt
fails; the bytes read back are the same.
"""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("ebr", "0012_master_version_withdrawn_status"),
    ]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE ebr_readingpost ALTER COLUMN body SET STORAGE EXTERNAL",
            "ALTER TABLE ebr_readingpost ALTER COLUMN body SET STORAGE EXTENDED",
        ),
    ]
