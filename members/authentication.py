"""Bearer-token authentication with API credentials (``Authorization: Bearer cc_<prefix>_<secret>``)."""

import hashlib
import hmac
import threading
from datetime import timedelta

from django.core.exceptions import ObjectDoesNotExist
from django.db import connections, router
from django.db.models.query import get_related_populators
from django.utils import timezone
from rest_framework import authentication, exceptions

from federation.db.prepared import SessionStatement
from members.models import ApiCredential

TOKEN_PREFIX = "cc_"  # noqa: S105 (a format marker, not a secret)
# Touching last_used_at on every request would make each read a write; once a minute is enough.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_secret(secret: str) -> str:
    # Secrets are 256 random bits, so a fast hash suffices (no dictionary to guard against).
    return hashlib.sha256(secret.encode()).hexdigest()


def split_token(token: str, *, marker: str = TOKEN_PREFIX) -> tuple[str, str] | None:
    """``(prefix, secret)`` of a ``<marker><prefix>_<secret>`` token (``cc_`` for API credentials,
    ``cp_`` for peer hubs' credentials), or None if it is not one."""
    if not token.startswith(marker):
        return None
    prefix, sep, secret = token[len(marker) :].partition("_")
    if not sep or not prefix or not secret or len(token) > 200:
        return None
    return prefix, secret


class ApiCredentialAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Send exactly: Authorization: Bearer <token>.")
        try:
            token = header[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("The token is not ASCII.") from exc
        return self.authenticate_token(token)

    def authenticate_token(self, token: str):
        """``(user, credential)`` for an API token, however the request carried it (a bearer
        token here; TAXII also takes it as an HTTP Basic password, federation/taxii/)."""
        parts = split_token(token)
        if parts is None:
            raise exceptions.AuthenticationFailed("The token is not a Concordat API token.")
        prefix, secret = parts
        credential = credential_with_holder(prefix)
        presented = hash_secret(secret)
        expected = credential.secret_hash if credential is not None else "0" * 64
        if not hmac.compare_digest(presented, expected) or credential is None:
            raise exceptions.AuthenticationFailed("Unknown or wrong API token.")
        now = timezone.now()
        if not credential.is_usable_at(now):
            raise exceptions.AuthenticationFailed("This API token is expired or revoked.")
        if not credential.holder.is_active:
            raise exceptions.AuthenticationFailed("This API token's holder is deactivated.")
        if _foreign(credential.organisation) or _foreign(_membership_organisation(credential)):
            # Foreign members are read-only mirrors of another hub's members (members/mirrors.py):
            # nothing may act for them here, whatever rows say.
            raise exceptions.AuthenticationFailed(
                "This API token is tied to a member of another hub, which cannot act on this hub."
            )
        if credential.last_used_at is None or now - credential.last_used_at > _LAST_USED_RESOLUTION:
            touch_last_used(credential, now)
        return credential.holder, credential

    def authenticate_header(self, request):
        return 'Bearer realm="concordat"'


def credential_with_holder(prefix: str) -> ApiCredential | None:
    """The credential with this prefix, with what authentication and the permissions read of
    it already loaded: its holder, the holder's membership and its organisation, the holder's
    staff role, and the credential's own organisation."""
    connection = connections[router.db_for_read(ApiCredential)]
    reads = _compiled.__dict__.setdefault("reads", {})
    read = reads.get(connection.alias)
    if read is None or read.compiler.connection is not connection:
        read = reads[connection.alias] = _CredentialRead(connection)
    return read.by_prefix(prefix)


class _CredentialRead:
    """The token's read, one six-table statement compiled once for each database connection
    (Django's ``DatabaseWrapper``, one a thread and alias) instead of on every request.

    Every API request reads it, and the ORM spent about 0.4 ms of the web worker's CPU compiling
    it each time, a third of an empty delta page's (docs/sync.md, "Where an empty page's time
    goes"). The rows become the same model instances a queryset makes, through Django's own
    value converters and ``select_related`` populators. The prefix is unique, so the statement
    has neither ORDER BY nor LIMIT (``first()`` adds both, ``get()`` a LIMIT).

    On PostgreSQL it is a prepared statement of the session (``SessionStatement``: ``PREPARE``,
    once per database session, then ``EXECUTE``): planned afresh, the six-table read cost
    PostgreSQL about 0.4 ms of CPU each time (0.25 ms of it planning, without statistics), twice
    what the rest of an empty delta page costs it; after five executions PostgreSQL keeps its
    generic plan (one index probe per table) and plans no more. Nothing in the hub discards a session's prepared
    statements (no pooler resets sessions; a new session is prepared on its first request)."""

    def __init__(self, connection) -> None:
        matches = (
            ApiCredential.objects.using(connection.alias)
            .select_related(
                "holder", "organisation", "holder__membership__organisation", "holder__staff_role"
            )
            .filter(prefix="the prefix, a parameter")
            .order_by()
        )
        self.compiler = matches.query.get_compiler(connection=connection)
        sql, _params = self.compiler.as_sql()
        # The compiled statement's one parameter is the prefix.
        self.statement = SessionStatement("concordat_credential_by_prefix", sql)
        own = self.compiler.klass_info["select_fields"]
        self.own_columns = slice(own[0], own[-1] + 1)
        self.own_attnames = [
            column[0].target.attname for column in self.compiler.select[self.own_columns]
        ]
        self.related = get_related_populators(
            self.compiler.klass_info, self.compiler.select, connection.alias
        )

    def by_prefix(self, prefix: str) -> ApiCredential | None:
        connection = self.compiler.connection
        with connection.cursor() as cursor:
            self.statement.execute(cursor, [prefix])
            rows = cursor.fetchall()
        for row in self.compiler.results_iter([rows]):
            credential = ApiCredential.from_db(
                connection.alias, self.own_attnames, row[self.own_columns]
            )
            for populator in self.related:
                populator.populate(row, credential)
            return credential
        return None


# Each thread's compiled reads, by database alias: a compiler belongs to its thread's
# connection, and goes with the thread.
_compiled = threading.local()


def touch_last_used(credential: ApiCredential, moment) -> None:
    """Record that ``credential`` was used at ``moment``, once a minute at most (the caller's
    test). On PostgreSQL the write's commit does not wait for its WAL flush
    (``synchronous_commit`` off for this one statement's own transaction): a crash can lose
    at most a minute's ``last_used_at``, which is a hint for the admin, not a record, and the
    request that happens to make the write (one a minute per credential, a follower's poll
    among them) no longer waits for the disk (0.4 ms at the median, up to 6 ms at the 99th
    percentile, measured in docs/sync.md)."""
    connection = connections[router.db_for_write(ApiCredential)]
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        # In a caller's transaction the setting would reach its other statements' commit.
        ApiCredential.objects.filter(pk=credential.pk).update(last_used_at=moment)
        return
    table = connection.ops.quote_name(ApiCredential._meta.db_table)
    with connection.cursor() as cursor:
        # set_config(…, true) lasts until the end of the statement's implicit transaction,
        # whose commit reads it; the FROM item makes the statement evaluate it.
        cursor.execute(
            f"UPDATE {table} SET last_used_at = %s "  # noqa: S608 (the model's table name)
            "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS relaxed WHERE id = %s",
            [moment, credential.pk],
        )


def _foreign(organisation) -> bool:
    return organisation is not None and not organisation.is_local


def _membership_organisation(credential: ApiCredential):
    try:
        return credential.holder.membership.organisation
    except ObjectDoesNotExist:
        return None
