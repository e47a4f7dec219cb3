"""Indexes that every ingested item paid for a NULL: only the rows that hold a value are indexed.

An audit event is written with no ``leaf_index`` (the sequencer gives it one after commit), a
change row with no ``position``, and an automatic decision (a trusted member's bulk ingest writes
one per entry) with no user and no organisation; their indexes held an entry for each NULL that
no query reads (every query of these columns compares them with a value, which a partial index
``WHERE … IS NOT NULL`` serves). Unique stays unique among the values set. Rebuilding the audit
and change indexes reads those tables once (a few seconds per million rows).

On PostgreSQL only: SQLite (the demo) keeps its tables as they are, since remaking them from
Django's state would drop the foreign keys they keep there (migration 0032).
"""


import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from federation.db.migration_operations import OnPostgreSQL


class Migration(migrations.Migration):

    dependencies = [
        ('federation', '0032_set_based_references'),
        ('members', '0005_h7_lookup_credentials'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [OnPostgreSQL([
        migrations.AlterField(
            model_name='auditevent',
            name='leaf_index',
            field=models.BigIntegerField(blank=True, editable=False, null=True),
        ),
        migrations.AlterField(
            model_name='decision',
            name='organisation',
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='members.organisation'),
        ),
        migrations.AlterField(
            model_name='decision',
            name='user',
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AlterField(
            model_name='entrychange',
            name='position',
            field=models.BigIntegerField(blank=True, editable=False, null=True),
        ),
        migrations.AddIndex(
            model_name='decision',
            index=models.Index(condition=models.Q(('user__isnull', False)), fields=['user'], name='decision_user'),
        ),
        migrations.AddIndex(
            model_name='decision',
            index=models.Index(condition=models.Q(('organisation__isnull', False)), fields=['organisation'], name='decision_organisation'),
        ),
        migrations.AddConstraint(
            model_name='auditevent',
            constraint=models.UniqueConstraint(condition=models.Q(('leaf_index__isnull', False)), fields=('leaf_index',), name='auditevent_leaf_index_unique'),
        ),
        migrations.AddConstraint(
            model_name='entrychange',
            constraint=models.UniqueConstraint(condition=models.Q(('position__isnull', False)), fields=('position',), name='entrychange_position_unique'),
        ),
    ])]
