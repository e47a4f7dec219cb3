"""Foreign keys and their bindings, as received from peers (docs/federation.md, "Receiving").

A foreign member's key is stored for its mirror organisation the first time an item signed by it
arrives, with the home hub's binding and the member's self-signed registration (audited
``key.received``, with what proves the member's signatures from the log alone); each further
binding of the key is kept; a binding with ``revoked_at`` revokes the key here (audited
``key.revoked``) and travels on (``federation.downstream.key_revoked``). This hub's own bindings
of its own members' keys are ``federation.propagation.bindings``.
"""

import base64

from django.db import connection

from federation import downstream
from federation.propagation.models import KeyBinding
from federation.receiving.items import KeySection, ReceivedBatch, revoked_at
from federation.transparency.actions import Action, Key, ObjectType
from federation.transparency.audit import AuditRecord, audit_record
from members.mirrors import organisation_mirror
from members.models import SigningKey


def received_key_store(
    batch: ReceivedBatch, section: KeySection, *, path: tuple[str, ...]
) -> tuple[SigningKey, bool]:
    """The mirror's key with this binding; ``changed`` when anything new was recorded. A
    revocation of a held key travels on (the outbox's key items, to every peer that was sent a
    contribution signed by the key, never to a hub of ``path``)."""
    stored = batch.stored_keys
    changed = False
    key = stored.get(section.key_id)
    if key is not None and (section.key_id, section.issued_at) in batch.stored_bindings:
        return key, False
    if key is None:
        # Read without a lock. Locking the key's row (and its mirror's) until the batch commits
        # made every concurrent batch with an item signed by the same key wait for this one, and
        # one member signs most of a backlog: parallel batches were applied one after another,
        # and an incident item waited behind them. Two batches creating the same new key race on
        # its unique key_id; the loser rolls back and runs again (``federation.db.retry``).
        # A key held when the items were checked is still held (keys are never deleted), for
        # the same member and public key (``key_conflict`` otherwise): that row, read with its
        # organisation, serves; a revocation below locks and reads it again.
        key = batch.held_keys.get(section.key_id)
        if key is None:
            key = (
                SigningKey.objects.filter(key_id=section.key_id)
                .select_related("organisation")
                .first()
            )
        if key is None:
            mirror = organisation_mirror(
                hub=section.hub, slug=section.member, name=section.member, actor=batch.actor
            )
            key = SigningKey.objects.create(
                organisation=mirror,
                key_id=section.key_id,
                public_key=section.public_key,
                label=f"bound by {section.hub}"[:100],
                not_before=section.not_before,
                revoked_at=revoked_at(batch, section.key_id),
                revoke_reason=f"revoked by its home hub {section.hub}"[:500]
                if section.revoked_at
                else "",
                registration=section.registration.decode(),
                registration_signature=section.registration_signature,
            )
            _audit_key_received(batch, section)
            changed = True
        stored[section.key_id] = key
    batch.stored_bindings.add((section.key_id, section.issued_at))
    created = _binding_keep(batch, key, section)
    if created and not changed:
        changed = True
        _audit_key_received(batch, section)
    if section.revoked_at is not None and (
        key.revoked_at is None or section.revoked_at < key.revoked_at
    ):
        # Revocations of one key are applied one at a time: lock it, then look again.
        key = SigningKey.objects.select_for_update().get(pk=key.pk)
        stored[section.key_id] = key
    if section.revoked_at is not None and (
        key.revoked_at is None or section.revoked_at < key.revoked_at
    ):
        key.revoked_at = section.revoked_at
        key.revoke_reason = f"revoked by its home hub {section.hub}"[:500]
        key.save(update_fields=["revoked_at", "revoke_reason"])
        audit_record(
            AuditRecord(
                action=Action.KEY_REVOKED,
                actor=batch.actor,
                organisation=section.member,
                object_type=ObjectType.SIGNING_KEY,
                object_id=key.key_id,
                data={
                    Key.KEY_ID: key.key_id,
                    Key.REASON: key.revoke_reason,
                    Key.EFFECTIVE_AT: section.revoked_at.isoformat(),
                },
            )
        )
        downstream.key_revoked(signing_key_id=key.pk, path=path)
        changed = True
    return key, changed


def _binding_keep(batch: ReceivedBatch, key: SigningKey, section: KeySection) -> bool:
    """Keep the binding of ``section`` for ``key`` unless held (one per key and ``issued_at``);
    whether it is new. One ``INSERT … ON CONFLICT DO NOTHING`` (PostgreSQL and SQLite alike, and
    like ``get_or_create`` it waits for a concurrent insert of the same binding, then finds it
    held): it runs for each key section of every received batch, and the ORM's ``get_or_create``
    took about 1 ms of Python here."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {KeyBinding._meta.db_table} "  # noqa: S608 (fixed SQL)
            "(signing_key_id, issued_at, canonical, signature, received_from, created_at) "
            "VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (signing_key_id, issued_at) DO NOTHING RETURNING id",
            [
                key.pk,
                section.issued_at,
                section.binding.canonical.decode(),
                section.binding.signature,
                batch.peer.hub_id,
                batch.now,
            ],
        )
        return cursor.fetchone() is not None


def _audit_key_received(batch: ReceivedBatch, section: KeySection) -> None:
    audit_record(
        AuditRecord(
            action=Action.KEY_RECEIVED,
            actor=batch.actor,
            organisation=section.member,
            object_type=ObjectType.SIGNING_KEY,
            object_id=section.key_id,
            data={
                Key.HUB: section.hub,
                Key.MEMBER: section.member,
                Key.KEY_ID: section.key_id,
                Key.BINDING: section.binding.canonical.decode(),
                Key.BINDING_SIGNATURE: base64.b64encode(section.binding.signature).decode(),
                # What proves a foreign member's signature from this log alone: the home hub's
                # pinned key that verified the binding, and the member's signed registration.
                Key.HUB_PUBLIC_KEY: base64.b64encode(
                    batch.hubs[section.hub].public_key_bytes
                ).decode(),
                Key.PUBLIC_KEY: base64.b64encode(section.public_key).decode(),
                Key.REGISTRATION: section.registration.decode(),
                Key.REGISTRATION_SIGNATURE: base64.b64encode(
                    section.registration_signature
                ).decode(),
                Key.PEER: batch.peer.hub_id,
            },
        )
    )
