# Key bindings take positions in the sync change stream, so that the pull feed carries them.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("federation", "0012_receipt_sent_to"),
        ("members", "0004_peer"),
    ]

    operations = [
        migrations.AddField(
            model_name="keybinding",
            name="position",
            field=models.BigIntegerField(
                blank=True,
                editable=False,
                help_text="Its place in the change stream (the pull feed offers it as a key item), given by the stream's sequencer once the row is committed.",
                null=True,
                unique=True,
            ),
        ),
        migrations.AddIndex(
            model_name="keybinding",
            index=models.Index(
                condition=models.Q(("position__isnull", True)),
                fields=["id"],
                name="keybinding_unsequenced",
            ),
        ),
    ]
