"""Migration operations of this project's own."""

from django.db import migrations


class OnPostgreSQL(migrations.SeparateDatabaseAndState):
    """``operations`` change Django's state everywhere and the database on PostgreSQL only.

    For a change made for PostgreSQL's sake (an index narrowed or dropped) to a table that SQLite
    (the demo) could only remake: a remake from Django's state would drop the foreign keys SQLite
    keeps on the tables whose references PostgreSQL guards by trigger
    (``0032_set_based_references``)."""

    def __init__(self, operations):
        super().__init__(database_operations=operations, state_operations=operations)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
