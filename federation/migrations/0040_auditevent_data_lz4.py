"""An audit event's data, when large enough to be compressed (a received batch's
``federation.received`` names its 500 items' digests: about 35 kB), is compressed with lz4 on
PostgreSQL rather than the default pglz. pglz tried and gave up on those digests (hex text: it
stored them as they were) after about 0.6 ms of the server's CPU per event, 1.2 µs per received
item; lz4 takes a fraction of that, and keeps them a tenth smaller. Values already stored stay
as they are; each is read back whichever way it was stored. A server built without lz4 keeps
pglz (the migration does nothing there).

On PostgreSQL only: SQLite (the demo) has no such setting."""

from django.db import migrations

from federation.db.migration_operations import OnPostgreSQL

_SET = """
DO $$
BEGIN
    ALTER TABLE federation_auditevent ALTER COLUMN data SET COMPRESSION {method};
EXCEPTION WHEN feature_not_supported THEN
    NULL;  -- built without lz4: the default stays
END
$$
"""


class Migration(migrations.Migration):
    dependencies = [
        ("federation", "0039_entrylabel_link_key"),
    ]

    operations = [
        OnPostgreSQL([migrations.RunSQL(_SET.format(method="lz4"), _SET.format(method="default"))]),
    ]
