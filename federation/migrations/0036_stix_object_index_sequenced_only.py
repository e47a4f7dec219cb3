"""A STIX version's object index holds the sequenced versions only: every read by object id
(``federation.taxii.selectors``) is of versions with a ``date_added``, and an unsequenced
version, whose ``stix_id`` is still blank, cost each auto-vetted ingested entry an index entry
that no query reads (as migration 0033 did for NULL columns). The sequencer's update, which
sets ``date_added``, gives the version its entry.

An index is dropped and made again without remaking its table, so this runs on SQLite (the
demo) too."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("federation", "0035_reference_guard_lookups"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="stixobjectversion",
            name="stixversion_object",
        ),
        migrations.AddIndex(
            model_name="stixobjectversion",
            index=models.Index(
                condition=models.Q(("date_added__isnull", False)),
                fields=["stix_id", "modified"],
                name="stixversion_object",
            ),
        ),
    ]
