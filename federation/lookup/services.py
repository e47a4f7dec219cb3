"""Services of the private lookup (docs/private-lookup.md): the OPRF key's creation and rotation,
the blinded evaluation under per-credential daily limits, and the aggregate usage events. Each
writing service runs in one transaction and writes its audit events inside it."""

import base64
import datetime as dt
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from federation.errors import Conflict, InvalidInput, RateLimited
from federation.lookup import voprf
from federation.lookup.keys import OprfKey, current_key, oprf_key, write_key_file
from federation.lookup.models import LookupKey, LookupUsage
from federation.transparency.actions import Action, Key, ObjectType
from federation.transparency.audit import AuditRecord, audit_record, audit_record_many
from members.actors import Actor
from members.models import ApiCredential


def _created_record(key: OprfKey, actor: Actor, previous: str | None) -> AuditRecord:
    return AuditRecord(
        action=Action.LOOKUP_KEY_CREATED,
        actor=actor,
        object_type=ObjectType.LOOKUP_KEY,
        object_id=key.key_id,
        data={
            Key.KEY_ID: key.key_id,
            Key.PUBLIC_KEY: base64.b64encode(key.public_key).decode(),
            Key.SUITE: voprf.SUITE,
            Key.PREVIOUS: previous,
        },
    )


def lookup_key_create(*, actor: Actor, secret: bytes | None = None) -> OprfKey:
    """Make the hub's first OPRF key (409 ``lookup_key_exists`` if it has one: rotate it). The
    file is written only once the key's row and event are committed."""
    key = oprf_key(secret if secret is not None else voprf.random_scalar())
    with transaction.atomic():
        if LookupKey.objects.select_for_update().filter(retired_at__isnull=True).exists():
            raise Conflict(
                "This hub has a lookup key; rotate it instead.", code="lookup_key_exists"
            )
        LookupKey.objects.create(key_id=key.key_id, public_key=key.public_key)
        audit_record(_created_record(key, actor, None))
        transaction.on_commit(lambda: write_key_file(Path(settings.LOOKUP_KEY_PATH), key))
    return key


def lookup_key_rotate(*, actor: Actor) -> OprfKey:
    """Replace the current OPRF key by a new one: the old is retired (``lookup.key_retired``), the
    new announced (``lookup.key_created``, naming its predecessor). The table is rebuilt under the
    new key by the next refresh; until then the table endpoints answer 503."""
    key = oprf_key(voprf.random_scalar())
    now = timezone.now()
    with transaction.atomic():
        old = LookupKey.objects.select_for_update().filter(retired_at__isnull=True).first()
        if old is None:
            raise Conflict("This hub has no lookup key to rotate.", code="lookup_key_missing")
        old.retired_at = now
        old.save(update_fields=["retired_at"])
        LookupKey.objects.create(key_id=key.key_id, public_key=key.public_key, created_at=now)
        audit_record_many(
            [
                AuditRecord(
                    action=Action.LOOKUP_KEY_RETIRED,
                    actor=actor,
                    object_type=ObjectType.LOOKUP_KEY,
                    object_id=old.key_id,
                    data={Key.KEY_ID: old.key_id, Key.SUCCESSOR: key.key_id},
                ),
                _created_record(key, actor, old.key_id),
            ],
            occurred_at=now,
        )
        transaction.on_commit(lambda: write_key_file(Path(settings.LOOKUP_KEY_PATH), key))
    return key


def daily_limit(credential: ApiCredential) -> int:
    return credential.lookup_daily_limit or settings.LOOKUP_DAILY_EVALUATIONS


def _utc_day(now: dt.datetime) -> dt.date:
    return now.astimezone(dt.UTC).date()


def lookup_usage_charge(*, credential: ApiCredential, count: int, now=None) -> int:
    """Count ``count`` evaluations against today's limit of ``credential`` in one atomic statement
    (so concurrent requests can never pass the limit together); returns today's total, or raises
    429 ``lookup_rate_limited`` (and counts the refusal) when it would pass the limit."""
    limit = daily_limit(credential)
    day = _utc_day(now or timezone.now())
    table = LookupUsage._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {table} AS u (credential_id, day, evaluations, requests, refused)
                SELECT %s, %s, %s, 1, 0 WHERE %s <= %s
                ON CONFLICT (credential_id, day) DO UPDATE
                SET evaluations = u.evaluations + EXCLUDED.evaluations, requests = u.requests + 1
                WHERE u.evaluations + EXCLUDED.evaluations <= %s
                RETURNING evaluations""",  # noqa: S608 (the table name is the model's own)
            [credential.pk, day, count, count, limit, limit],
        )
        row = cursor.fetchone()
        if row is not None:
            return row[0]
        cursor.execute(
            f"""INSERT INTO {table} AS u (credential_id, day, evaluations, requests, refused)
                VALUES (%s, %s, 0, 0, 1)
                ON CONFLICT (credential_id, day) DO UPDATE SET refused = u.refused + 1
                RETURNING evaluations""",  # noqa: S608
            [credential.pk, day],
        )
        used = cursor.fetchone()[0]
    tomorrow = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    raise RateLimited(
        f"This credential may have {limit} elements evaluated per UTC day; {used} were today, "
        f"and this request asks for {count} more.",
        code="lookup_rate_limited",
        details={"limit": limit, "used": used, "asked": count, "resets_at": tomorrow.isoformat()},
    )


def lookup_elements_parse(raw: object) -> list[bytes]:
    """The blinded elements of a request body: a non-empty list of at most ``LOOKUP_BATCH_MAX``
    base64 strings, each a valid non-identity ristretto255 element."""
    limit = settings.LOOKUP_BATCH_MAX
    if not isinstance(raw, list) or not raw:
        raise InvalidInput(
            '"blinded" is a non-empty list of base64 ristretto255 elements.', code="invalid_element"
        )
    if len(raw) > limit:
        raise InvalidInput(
            f"At most {limit} elements per request; split the batch.",
            code="too_many_items",
            details={"limit": limit, "received": len(raw)},
        )
    elements = []
    for index, item in enumerate(raw):
        try:
            if not isinstance(item, str) or len(item) != 44:
                raise ValueError
            elements.append(voprf.deserialize_element(base64.b64decode(item, validate=True)))
        except (ValueError, voprf.VoprfError):
            raise InvalidInput(
                "Each element is the standard base64 of a canonical, non-identity ristretto255 "
                "element (32 bytes).",
                code="invalid_element",
                details={"index": index},
            ) from None
    return elements


def lookup_evaluate(
    *, credential: ApiCredential, key_id: object, blinded: list[bytes]
) -> tuple[OprfKey, list[bytes], bytes]:
    """Evaluate ``blinded`` under the current key with one batched DLEQ proof, after charging
    the credential's daily limit. Nothing of the elements is stored, logged or audited."""
    key = current_key()
    if key_id != key.key_id:
        raise Conflict(
            "The lookup key has changed: fetch the new key and table, and blind again.",
            code="lookup_key_changed",
            details={"key_id": key.key_id},
        )
    lookup_usage_charge(credential=credential, count=len(blinded))
    evaluated, proof = voprf.blind_evaluate_batch(key.secret, key.public_key, blinded)
    return key, evaluated, proof


def lookup_usage_audit(*, now=None) -> int:
    """Write one ``lookup.usage`` event per credential per finished UTC day not yet reported
    (evaluations, requests, refusals: counts only), and mark those counters reported."""
    now = now or timezone.now()
    today = _utc_day(now)
    with transaction.atomic():
        rows = list(
            LookupUsage.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(day__lt=today, audited_at__isnull=True)
            .select_related("credential__organisation")
            .order_by("day", "credential_id")
        )
        if not rows:
            return 0
        audit_record_many(
            [
                AuditRecord(
                    action=Action.LOOKUP_USAGE,
                    actor=Actor.system("lookup"),
                    organisation=row.credential.organisation.slug
                    if row.credential.organisation
                    else "",
                    object_type=ObjectType.CREDENTIAL,
                    object_id=f"cc_{row.credential.prefix}",
                    data={
                        Key.DAY: row.day.isoformat(),
                        Key.EVALUATIONS: row.evaluations,
                        Key.REQUESTS: row.requests,
                        Key.REFUSED: row.refused,
                        Key.KIND: row.credential.kind,
                    },
                )
                for row in rows
            ],
            occurred_at=now,
        )
        LookupUsage.objects.filter(pk__in=[row.pk for row in rows]).update(audited_at=now)
    return len(rows)
