"""Lookups that compile differently on PostgreSQL and on SQLite (the demo's database).

``field__in=[…]`` (``InArray``, installed for every field by ``register``, and
``RelatedInArray`` for foreign keys, whose ``in`` is Django's ``RelatedIn``) is ``field = ANY(%s)``
on PostgreSQL: one array parameter instead of one placeholder per value. Same rows, same plan
(PostgreSQL turns ``IN (…)`` into ``= ANY(ARRAY[…])`` itself), but the statement's text no
longer depends on the number of values. psycopg converts a query's ``%s`` placeholders in Python
and caches that only for short statements, so a batch query with 500 or 2,000 ids spent most of
its client time re-parsing its own text (about a fifth of the federation sender's CPU). Only for
direct values of fields whose values psycopg dumps as one array type (integers, text, UUIDs,
times); a subquery, an expression, another backend or another field type keeps Django's ``IN``.

``labels__has_label`` (``HasLabel``): whether a JSON list of labels (a contribution's signed
labels, an audit event's) holds one label. Django's JSON ``contains`` lookup is PostgreSQL-only
(SQLite answers ``NotSupportedError``); this compiles to ``@>`` on PostgreSQL (so a GIN index
would serve it) and to SQLite's ``json_each`` elsewhere. Both compare whole elements, never
substrings.
"""

import json

from django.db.models import Field, ForeignObject, Lookup
from django.db.models.fields.related_lookups import RelatedIn
from django.db.models.lookups import In

_ARRAY_SAFE = frozenset(
    {
        "AutoField", "BigAutoField", "SmallAutoField", "IntegerField", "BigIntegerField",
        "SmallIntegerField", "PositiveIntegerField", "PositiveBigIntegerField",
        "PositiveSmallIntegerField", "CharField", "TextField", "SlugField", "UUIDField",
        "DateTimeField",
    }
)  # fmt: skip


class InArray(In):
    def as_sql(self, compiler, connection):
        if (
            connection.vendor != "postgresql"
            or not self.rhs_is_direct_value()
            or _internal_type(self.lhs.output_field) not in _ARRAY_SAFE
        ):
            return super().as_sql(compiler, connection)
        lhs, lhs_params = self.process_lhs(compiler, connection)
        # Django's own processing (None dropped, values prepared; EmptyResultSet when empty),
        # keeping its values but not its placeholders.
        _placeholders, values = self.process_rhs(compiler, connection)
        return f"{lhs} = ANY(%s)", (*lhs_params, list(values))


class RelatedInArray(RelatedIn, InArray):
    """``InArray`` for a foreign key (``entry__in=[…]``, ``entry_id__in=[…]``), whose ``in`` is
    Django's ``RelatedIn``, registered on the relation fields: it turns model instances into
    their keys, then, for a single-column key, compiles as ``InArray``."""


def _internal_type(field) -> str:
    """A foreign key's values are its target's."""
    while field.is_relation and getattr(field, "target_field", None) is not None:
        field = field.target_field
    return field.get_internal_type()


def register() -> None:
    Field.register_lookup(InArray, lookup_name="in")
    ForeignObject.register_lookup(RelatedInArray, lookup_name="in")


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
