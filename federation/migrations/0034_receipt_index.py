"""A receipt's contribution has no index of its own: the unique (contribution, peer_hub) index
serves every lookup by contribution (the outbox's, the retracts' scopes, the reference guard's
probe before a contribution is deleted), and each received item writes one index entry fewer.

On PostgreSQL only: SQLite (the demo) keeps the index, since remaking the table there would drop
its foreign key (``OnPostgreSQL``)."""

import django.db.models.deletion
from django.db import migrations, models

from federation.db.migration_operations import OnPostgreSQL


class Migration(migrations.Migration):
    dependencies = [
        ("federation", "0033_partial_null_indexes"),
    ]

    operations = [
        OnPostgreSQL(
            [
                migrations.AlterField(
                    model_name="receipt",
                    name="contribution",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="receipts",
                        to="federation.contribution",
                    ),
                ),
            ]
        ),
    ]
