"""Members' signing keys: registration with its proof of possession (docs/signing.md), and
revocation, which federation carries to the peers that were sent the key's contributions. Each
service runs in one transaction and writes its audit event in it."""

import base64
import re
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from federation.errors import Conflict, InvalidInput
from federation.signing import (
    MalformedContribution,
    MalformedKeyRegistration,
    ParsedKeyRegistration,
    decode_signature,
    parse_key_registration,
    verify_key_registration,
)
from federation.transparency.actions import Action, Key, ObjectType
from federation.transparency.audit import AuditRecord, audit_record
from members.actors import Actor
from members.mirrors import require_local
from members.models import Organisation, SigningKey
from members.validators import check_display_name


class KeyRegistrationRefused(InvalidInput):
    """A key registration whose proof of possession does not hold (docs/signing.md)."""


# Raw values kept as evidence of a refused registration only when they look like what they claim
# to be (rejected input may be anything; jsonb refuses NUL and lone surrogates).
_EVIDENCE_KEY_ID = re.compile(r"[0-9a-f]{32}")
_EVIDENCE_BASE64 = re.compile(r"[A-Za-z0-9+/=_-]{1,200}")


def signing_key_proof_check(
    *,
    organisation: Organisation,
    registration: object,
    signature: object,
    actor: Actor,
    now: datetime | None = None,
) -> tuple[ParsedKeyRegistration, bytes]:
    """Check a key registration's proof of possession for ``organisation`` on this hub.

    Returns the parsed registration and the raw signature. A refusal is recorded as a
    ``key.rejected`` audit event with bounded evidence (committed unless the caller's own
    transaction rolls back) and raised as ``KeyRegistrationRefused`` (HTTP 400) with the code
    ``invalid_proof``, ``proof_mismatch``, ``invalid_key`` or ``clock_skew`` and the field at fault.
    """
    require_local(organisation, action="register signing keys")
    now = now or timezone.now()
    parsed = None
    try:
        if registration is None or signature is None:
            raise _Refusal(
                "invalid_proof",
                "registration" if registration is None else "signature",
                "registering a key needs the signed registration object and the key's signature "
                "over it (proof of possession, docs/signing.md)",
            )
        try:
            parsed = parse_key_registration(registration)
        except MalformedKeyRegistration as exc:
            raise _Refusal(exc.code, exc.field, exc.message) from None
        try:
            raw_signature = decode_signature(signature)
        except MalformedContribution as exc:
            raise _Refusal("invalid_proof", "signature", exc.message) from None
        if parsed.hub != settings.HUB_ID:
            raise _Refusal("proof_mismatch", "hub", f"this hub is {settings.HUB_ID!r}")
        if parsed.member != organisation.slug:
            raise _Refusal(
                "proof_mismatch", "member", f"the key is registered for {organisation.slug!r}"
            )
        if parsed.key_id != parsed.derived_key_id:
            raise _Refusal(
                "proof_mismatch",
                "key_id",
                f"the key id of this public key is {parsed.derived_key_id}",
            )
        skew = timedelta(seconds=settings.CONTRIBUTION_CLOCK_SKEW_SECONDS)
        max_age = timedelta(seconds=settings.CONTRIBUTION_MAX_AGE_SECONDS)
        if not now - max_age <= parsed.created_at <= now + skew:
            raise _Refusal(
                "clock_skew",
                "created_at",
                f"created_at must lie between {settings.CONTRIBUTION_MAX_AGE_SECONDS} s ago and "
                f"{settings.CONTRIBUTION_CLOCK_SKEW_SECONDS} s ahead of the hub's clock",
            )
        if not verify_key_registration(parsed, raw_signature):
            raise _Refusal(
                "invalid_proof",
                "signature",
                "the signature is not the registered key's over the registration's RFC 8785 bytes",
            )
    except _Refusal as refusal:
        evidence = _registration_evidence(registration, signature, parsed)
        with transaction.atomic():
            audit_record(
                AuditRecord(
                    action=Action.KEY_REJECTED,
                    actor=actor,
                    organisation=organisation.slug,
                    object_type=ObjectType.SIGNING_KEY,
                    object_id=evidence.get(Key.KEY_ID) or "",
                    data={
                        Key.CODE: refusal.code,
                        Key.FIELD: refusal.field,
                        Key.MESSAGE: refusal.message,
                        **evidence,
                    },
                )
            )
        raise KeyRegistrationRefused(
            f"{refusal.field}: {refusal.message}",
            code=refusal.code,
            details={"field": refusal.field},
        ) from None
    return parsed, raw_signature


class _Refusal(Exception):
    def __init__(self, code: str, field: str, message: str) -> None:
        super().__init__(message)
        self.code, self.field, self.message = code, field, message


def _registration_evidence(registration, signature, parsed) -> dict:
    """What is kept of a refused registration: bounded, and only what looks like itself."""
    if parsed is not None:
        evidence = {Key.KEY_ID: parsed.key_id, Key.CANONICAL: parsed.canonical.decode()}
    else:
        document = registration if isinstance(registration, dict) else {}
        key_id, public_key = document.get("key_id"), document.get("public_key")
        evidence = {
            Key.KEY_ID: key_id
            if isinstance(key_id, str) and _EVIDENCE_KEY_ID.fullmatch(key_id)
            else None,
            Key.PUBLIC_KEY: public_key
            if isinstance(public_key, str) and _EVIDENCE_BASE64.fullmatch(public_key)
            else None,
        }
    evidence[Key.SIGNATURE] = (
        signature if isinstance(signature, str) and _EVIDENCE_BASE64.fullmatch(signature) else None
    )
    return evidence


def signing_key_register(
    *,
    organisation: Organisation,
    registration: object,
    signature: object,
    actor: Actor,
    label: str = "",
    not_before: datetime | None = None,
) -> SigningKey:
    """Register the public key of a signed key registration (proof of possession) for
    ``organisation``, keeping the registration's bytes and signature verbatim. The key's
    ``created_by`` is the actor's user (none for the hub itself, e.g. a management command)."""
    check_display_name(label, field="label")
    parsed, raw_signature = signing_key_proof_check(
        organisation=organisation, registration=registration, signature=signature, actor=actor
    )
    public_key = parsed.public_key
    key_id = parsed.key_id
    exists = Conflict("This public key is already registered.", code="key_exists")
    with transaction.atomic():
        if SigningKey.objects.filter(key_id=key_id).exists():
            raise exists
        try:
            # A savepoint: a concurrent registration of the same key loses on the unique key_id.
            with transaction.atomic():
                key = SigningKey.objects.create(
                    organisation=organisation,
                    key_id=key_id,
                    public_key=public_key,
                    label=label,
                    # Whole seconds, so that a contribution signed straight away (timestamps in
                    # signed objects usually have whole seconds) is not dated before its key.
                    not_before=not_before or timezone.now().replace(microsecond=0),
                    created_by=actor.user,
                    registration=parsed.canonical.decode(),
                    registration_signature=raw_signature,
                )
        except IntegrityError:
            raise exists from None
        audit_record(
            AuditRecord(
                action=Action.KEY_REGISTERED,
                actor=actor,
                organisation=organisation.slug,
                object_type=ObjectType.SIGNING_KEY,
                object_id=key_id,
                data={
                    Key.KEY_ID: key_id,
                    Key.PUBLIC_KEY: base64.b64encode(public_key).decode(),
                    Key.LABEL: label,
                    Key.NOT_BEFORE: key.not_before.isoformat(),
                    # The proof of possession, so the log alone shows the member's binding.
                    Key.REGISTRATION: parsed.canonical.decode(),
                    Key.REGISTRATION_SIGNATURE: base64.b64encode(raw_signature).decode(),
                },
            )
        )
    return key


def signing_key_revoke(
    *, key: SigningKey, reason: str, actor: Actor, effective_at: datetime | None = None
) -> SigningKey:
    """Revoke a key from ``effective_at`` (now by default; earlier to disown signatures made since
    a compromise). Contributions signed at or after that time are refused."""
    if not reason.strip():
        raise InvalidInput("Give a reason for revoking the key.", code="reason_required")
    now = timezone.now()
    effective_at = effective_at or now
    if effective_at > now:
        raise InvalidInput("effective_at cannot be in the future; revoke when it is due.")
    with transaction.atomic():
        key = SigningKey.objects.select_for_update().get(pk=key.pk)
        if key.revoked_at is not None and key.revoked_at <= effective_at:
            raise Conflict("This key is already revoked.", code="key_revoked")
        key.revoked_at = effective_at
        key.revoke_reason = reason
        key.save(update_fields=["revoked_at", "revoke_reason"])
        audit_record(
            AuditRecord(
                action=Action.KEY_REVOKED,
                actor=actor,
                organisation=key.organisation.slug,
                object_type=ObjectType.SIGNING_KEY,
                object_id=key.key_id,
                data={
                    Key.KEY_ID: key.key_id,
                    Key.REASON: reason,
                    Key.EFFECTIVE_AT: effective_at.isoformat(),
                },
            )
        )
        _federate_revocation(key)
    return key


def _federate_revocation(key: SigningKey) -> None:
    """A local key's revocation travels to the peers that were sent its contributions: a new
    binding saying ``revoked_at`` (if the key was ever bound) and a key item per such peer, in
    the revoking transaction (docs/federation.md, "Sending")."""
    from federation import downstream
    from federation.propagation.bindings import key_binding_revoked

    if key.organisation.is_local and key_binding_revoked(key=key) is not None:
        downstream.key_revoked(signing_key_id=key.pk)
