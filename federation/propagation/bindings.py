"""This hub's bindings of its own members' keys (``concordat.key-binding``, docs/federation.md).

A local key gets its first binding when it is first sent to a peer (signed by the hub key, kept
as a ``KeyBinding``), and a newer one with ``revoked_at`` when it is revoked, if it was ever
bound. Each binding signed here is audited ``key.bound`` with its RFC 8785 text and signature, in
the transaction that stores it, so this hub's log names every binding it gave out. A foreign
key's bindings are the ones its home hub signed, stored on arrival
(``federation.receiving.bindings``); they are never signed here.
"""

import base64
import json
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from federation.hubkey import hub_private_key
from federation.propagation.models import KeyBinding
from federation.propagation.wire import key_binding_document, sign_document
from federation.signing import format_timestamp
from federation.transparency.actions import Action, Key, ObjectType
from federation.transparency.audit import AuditRecord, audit_record_many
from members.actors import Actor
from members.models import SigningKey

# Bindings are signed by the hub itself, whoever's request needed one (a delivery, a pull, a
# revocation: the revocation's own actor is on its ``key.revoked`` event).
BINDER = Actor.system("federation")


class KeyNotBindable(Exception):
    """The key cannot be bound: it has no proof of possession (registered before they were
    required), or it is a foreign key with no binding from its home hub."""


def newest_bindings(signing_key_ids: Iterable[int]) -> dict[int, KeyBinding]:
    """The binding in force (newest ``issued_at``) of each key that has one; one query."""
    ids = sorted(set(signing_key_ids))
    if not ids:
        return {}
    rows = KeyBinding.objects.filter(signing_key_id__in=ids).order_by("issued_at", "pk")
    return {binding.signing_key_id: binding for binding in rows}  # the newest read last wins


def _sign(key: SigningKey, now) -> KeyBinding:
    if not key.registration:
        raise KeyNotBindable(f"key {key.key_id} has no proof of possession to bind")
    document = key_binding_document(
        hub=settings.HUB_ID,
        member=key.organisation.slug,
        key_id=key.key_id,
        registration=key.registration.encode(),
        not_before=key.not_before,
        revoked_at=key.revoked_at,
        issued_at=now,
    )
    signed = sign_document(hub_private_key(), document)
    return KeyBinding(
        signing_key=key,
        canonical=signed.canonical.decode(),
        signature=signed.signature,
        issued_at=now,
    )


def _stale(key: SigningKey, binding: KeyBinding | None) -> bool:
    """A local key's binding must say what the key row says about its revocation."""
    if binding is None:
        return True
    expected = format_timestamp(key.revoked_at) if key.revoked_at is not None else None
    return json.loads(binding.canonical)["revoked_at"] != expected


def key_bindings_for(keys: Iterable[SigningKey]) -> dict[int, KeyBinding]:
    """The binding to send with each key (by key pk): the newest stored one; for this hub's own
    keys, one is signed first if there is none or it no longer says whether the key is revoked.
    A fixed number of queries per call; the first use of a key costs one insert more."""
    keys = {key.pk: key for key in keys}
    bindings = newest_bindings(keys)
    local = {pk for pk, key in keys.items() if key.organisation.hub == settings.HUB_ID}
    missing = [pk for pk in sorted(local) if _stale(keys[pk], bindings.get(pk))]
    if missing:
        bindings.update(_bind(missing))
    return bindings


def _bind(key_pks: list[int]) -> dict[int, KeyBinding]:
    """Sign bindings for the keys ``key_pks`` that still need one, under their row locks (two
    senders binding the same key at once sign it once)."""
    now = timezone.now()
    with transaction.atomic():
        locked = list(
            SigningKey.objects.select_for_update(of=("self",))
            .select_related("organisation")
            .filter(pk__in=key_pks)
            .order_by("pk")
        )
        current = newest_bindings(key_pks)
        fresh = [_sign(key, now) for key in locked if _stale(key, current.get(key.pk))]
        KeyBinding.objects.bulk_create(fresh)
        audit_record_many([_bound_record(binding) for binding in fresh])
        current.update({binding.signing_key_id: binding for binding in fresh})
    return current


def key_binding_revoked(*, key: SigningKey) -> KeyBinding | None:
    """After this hub revoked its member's key (in the revoking transaction): a newer binding
    with ``revoked_at``, if the key was ever bound (else its first binding will say so)."""
    if key.organisation.hub != settings.HUB_ID:
        return None
    if not KeyBinding.objects.filter(signing_key=key).exists():
        return None
    latest = KeyBinding.objects.filter(signing_key=key).aggregate(at=Max("issued_at"))["at"]
    now = timezone.now()
    if latest is not None and now <= latest:  # issued_at is unique per key and grows
        now = latest + timedelta(microseconds=1)
    binding = _sign(key, now)
    binding.save()
    audit_record_many([_bound_record(binding)])
    return binding


def _bound_record(binding: KeyBinding) -> AuditRecord:
    """``key.bound``: the binding as signed, enough to check it with the hub key alone."""
    key = binding.signing_key
    return AuditRecord(
        action=Action.KEY_BOUND,
        actor=BINDER,
        organisation=key.organisation.slug,
        object_type=ObjectType.SIGNING_KEY,
        object_id=key.key_id,
        data={
            Key.HUB: settings.HUB_ID,
            Key.MEMBER: key.organisation.slug,
            Key.KEY_ID: key.key_id,
            Key.BINDING: binding.canonical,
            Key.BINDING_SIGNATURE: base64.b64encode(bytes(binding.signature)).decode(),
        },
    )


def binding_pair(binding: KeyBinding) -> tuple[dict, str]:
    """The binding as it travels: the document (its stored bytes parsed back) and the base64
    signature."""
    return json.loads(binding.canonical), base64.b64encode(bytes(binding.signature)).decode()
