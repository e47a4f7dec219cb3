from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("federation", "0020_merge_wave3_hardening"),
    ]

    operations = [
        migrations.AddField(
            model_name="peerlink",
            name="pull_horizon",
            field=models.BigIntegerField(
                default=0,
                help_text="The peer's compaction horizon when our reading of its feed began from 0 "
                "(its Concordat-Feed-Horizon; 0: none).",
            ),
        ),
    ]
