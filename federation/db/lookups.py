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
A list of plain integers (ids, nearly always) skips Django's preparation of each value (twice:
when the lookup is made and when it compiles) and goes as one ``bigint[]`` literal, which
psycopg sends as one text rather than dumping each element: for a delivery round's lists of
1,000 to 2,000 ids that preparation and dumping were a sixth of the sender's Python.

``labels__has_label`` (``HasLabel``): whether a JSON list of labels (a contribution's signed
labels, an audit event's) holds one label. Django's JSON ``contains`` lookup is PostgreSQL-only
(SQLite answers ``NotSupportedError``); this compiles to ``@>`` on PostgreSQL (so a GIN index
would serve it) and to SQLite's ``json_each`` elsewhere. Both compare whole elements, never
substrings.
"""

import json
from collections.abc import Iterable

from django.core.exceptions import EmptyResultSet
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


_INTEGER_TYPES = frozenset(
    name for name in _ARRAY_SAFE if name.endswith(("AutoField", "IntegerField"))
)


class InArray(In):
    def get_prep_lookup(self):
        # Plain integers for an integer column are what preparing each would give.
        if _plain_integers(self):
            return self.rhs
        return super().get_prep_lookup()

    def as_sql(self, compiler, connection):
        if (
            connection.vendor != "postgresql"
            or not self.rhs_is_direct_value()
            or _internal_type(self.lhs.output_field) not in _ARRAY_SAFE
        ):
            return super().as_sql(compiler, connection)
        lhs, lhs_params = self.process_lhs(compiler, connection)
        if _plain_integers(self):
            if not self.rhs:
                raise EmptyResultSet
            return f"{lhs} = ANY(%s::bigint[])", (*lhs_params, bigint_array(self.rhs))
        # Django's own processing (None dropped, values prepared; EmptyResultSet when empty),
        # keeping its values but not its placeholders.
        _placeholders, values = self.process_rhs(compiler, connection)
        return f"{lhs} = ANY(%s)", (*lhs_params, list(values))


class RelatedInArray(RelatedIn, InArray):
    """``InArray`` for a foreign key (``entry__in=[…]``, ``entry_id__in=[…]``), whose ``in`` is
    Django's ``RelatedIn``, registered on the relation fields: it turns model instances into
    their keys, then, for a single-column key, compiles as ``InArray``."""

    def get_prep_lookup(self):
        if _plain_integers(self):  # keys already: nothing to turn into one
            return self.rhs
        return super().get_prep_lookup()


def bigint_array(values: Iterable[int]) -> str:
    """A PostgreSQL ``bigint[]`` literal of ``values`` (integers: nothing to quote), for one
    ``%s::bigint[]`` parameter."""
    return "{" + ",".join(map(str, values)) + "}"


def _plain_integers(lookup: In) -> bool:
    """Whether ``lookup``'s values are a collection of ``int`` (not ``bool``, not ``None``) that
    a ``bigint`` holds, for a column of integers (a larger one keeps Django's way: no rows, not
    an error)."""
    values = lookup.rhs
    return (
        isinstance(values, (list, tuple, set, frozenset))
        and _internal_type(lookup.lhs.output_field) in _INTEGER_TYPES
        and set(map(type, values)) <= {int}  # one pass in C: a round's lists hold 1,000s
        and (not values or (min(values) >= _BIGINT_MIN and max(values) <= _BIGINT_MAX))
    )


_BIGINT_MIN, _BIGINT_MAX = -(2**63), 2**63 - 1


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
