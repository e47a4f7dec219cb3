"""``labels__has_label``: whether a contribution's signed label list holds one label, on every
database the hub runs on.

Django's JSON ``contains`` lookup is PostgreSQL-only (SQLite answers ``NotSupportedError``), and
the demo runs on SQLite; this lookup compiles to ``@>`` on PostgreSQL (so a GIN index would
serve it) and to SQLite's ``json_each`` elsewhere. Both compare whole elements, never substrings.
"""

import json

from django.db.models import Lookup


class HasLabel(Lookup):
    lookup_name = "has_label"
    prepare_rhs = False

    def as_postgresql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} @> %s::jsonb", [*lhs_params, json.dumps([str(self.rhs)])]

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return (
            # lhs is the compiled column reference; the label itself is a bound parameter.
            f"EXISTS (SELECT 1 FROM json_each({lhs}) AS element WHERE element.value = %s)",  # noqa: S608
            [*lhs_params, str(self.rhs)],
        )
