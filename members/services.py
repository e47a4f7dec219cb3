"""Services that change members' keys, credentials and roles. Each runs in one transaction and
writes its audit event in that transaction; the API and the Django admin both call these."""

import base64
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from federation.errors import Conflict, Forbidden, InvalidInput
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
from members.authentication import TOKEN_PREFIX, hash_secret
from members.mirrors import require_local
from members.models import (
    ApiCredential,
    Membership,
    Organisation,
    Role,
    Scope,
    SigningKey,
    StaffRole,
)
from members.principals import ROLE_CAPABILITIES, principal_for_user
from members.validators import UNSAFE_CODE, unsafe_characters


def check_display_name(value: str, *, field: str) -> None:
    """Services' form of ``members.validators``: a 400 ``unsafe_characters`` naming the field."""
    found = unsafe_characters(value or "")
    if found:
        raise InvalidInput(
            f"{field} contains invisible or text-direction characters ({', '.join(found[:5])}); "
            "names shown to other members may not contain control, format (bidi, zero-width) "
            "or separator characters.",
            code=UNSAFE_CODE,
            details={"field": field, "characters": found},
        )


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


@dataclass(frozen=True)
class IssuedCredential:
    credential: ApiCredential
    token: str  # shown once, never stored


def credential_create(
    *,
    holder,
    name: str,
    scopes: list[str],
    actor: Actor,
    expires_at: datetime | None = None,
    issuer_capabilities: Iterable[str] | None = None,
) -> IssuedCredential:
    """Issue a token to ``holder`` with ``scopes`` (de-duplicated), which must lie within the
    holder's role and, when the issuer acts through the API, within ``issuer_capabilities``
    (its role intersected with its own token's scopes): a token can never mint a token that
    does more than it may. Such a request is refused (403 ``scope_exceeds_issuer``), not
    silently narrowed, so that the caller never holds a token weaker than it asked for."""
    check_display_name(name, field="name")
    if not name.strip():
        raise InvalidInput("Give the credential a name.", details={"field": "name"})
    name_limit = ApiCredential._meta.get_field("name").max_length
    if len(name) > name_limit:
        raise InvalidInput(
            f"A credential name has at most {name_limit} characters.", details={"field": "name"}
        )
    principal = principal_for_user(holder)
    require_local(_membership_organisation(holder), action="hold API credentials")
    scopes = sorted(set(scopes))
    unknown = set(scopes) - set(Scope.values)
    if unknown or not scopes:
        raise InvalidInput(f"scopes must be a non-empty subset of {sorted(Scope.values)}.")
    if issuer_capabilities is not None:
        beyond = sorted(set(scopes) - set(issuer_capabilities))
        if beyond:
            raise Forbidden(
                f"You cannot issue a token with scopes you do not hold yourself: {beyond}.",
                code="scope_exceeds_issuer",
                details={"scopes": beyond},
            )
    allowed = ROLE_CAPABILITIES.get(principal.role, frozenset())
    if not set(scopes) <= allowed:
        raise InvalidInput(
            f"The holder's role ({principal.role or 'none'}) does not allow scopes "
            f"{sorted(set(scopes) - allowed)}.",
            code="scope_not_allowed",
        )
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidInput("expires_at must be in the future.")
    organisation = principal.organisation
    for _attempt in range(3):
        prefix = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        try:
            with transaction.atomic():
                credential = ApiCredential.objects.create(
                    organisation=organisation,
                    holder=holder,
                    name=name,
                    prefix=prefix,
                    secret_hash=hash_secret(secret),
                    scopes=sorted(scopes),
                    expires_at=expires_at,
                )
                audit_record(
                    AuditRecord(
                        action=Action.CREDENTIAL_CREATED,
                        actor=actor,
                        organisation=organisation.slug if organisation else "",
                        object_type=ObjectType.CREDENTIAL,
                        object_id=f"cc_{prefix}",
                        data={
                            Key.NAME: name,
                            Key.HOLDER: holder.get_username(),
                            Key.SCOPES: sorted(scopes),
                            Key.EXPIRES_AT: expires_at.isoformat() if expires_at else None,
                        },
                    )
                )
        except IntegrityError:
            continue  # a prefix collision (2**-48): draw again
        return IssuedCredential(credential=credential, token=f"{TOKEN_PREFIX}{prefix}_{secret}")
    raise RuntimeError("could not draw a unique credential prefix")


def lookup_credential_create(
    *,
    holder,
    name: str,
    actor: Actor,
    daily_limit: int | None = None,
    expires_at: datetime | None = None,
) -> IssuedCredential:
    """Issue a lookup-only token (docs/private-lookup.md) to ``holder``, usually the account of a
    non-member platform: it may evaluate blinded hashes and download the lookup table, nothing
    else, whatever the holder's role. ``daily_limit`` caps its evaluations per UTC day (blank:
    ``LOOKUP_DAILY_EVALUATIONS``)."""
    check_display_name(name, field="name")
    if not name.strip() or len(name) > ApiCredential._meta.get_field("name").max_length:
        raise InvalidInput("Give the credential a name of 1 to 100 characters.")
    if daily_limit is not None and (isinstance(daily_limit, bool) or daily_limit < 1):
        raise InvalidInput("daily_limit is a positive number of evaluations.")
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidInput("expires_at must be in the future.")
    organisation = _membership_organisation(holder)
    require_local(organisation, action="hold API credentials")
    for _attempt in range(3):
        prefix = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        try:
            with transaction.atomic():
                credential = ApiCredential.objects.create(
                    organisation=organisation,
                    holder=holder,
                    name=name,
                    prefix=prefix,
                    secret_hash=hash_secret(secret),
                    scopes=[Scope.LOOKUP.value],
                    kind=ApiCredential.Kind.LOOKUP,
                    lookup_daily_limit=daily_limit,
                    expires_at=expires_at,
                )
                audit_record(
                    AuditRecord(
                        action=Action.CREDENTIAL_CREATED,
                        actor=actor,
                        organisation=organisation.slug if organisation else "",
                        object_type=ObjectType.CREDENTIAL,
                        object_id=f"cc_{prefix}",
                        data={
                            Key.NAME: name,
                            Key.HOLDER: holder.get_username(),
                            Key.SCOPES: [Scope.LOOKUP.value],
                            Key.EXPIRES_AT: expires_at.isoformat() if expires_at else None,
                            Key.KIND: ApiCredential.Kind.LOOKUP.value,
                            Key.DAILY_LIMIT: daily_limit,
                        },
                    )
                )
        except IntegrityError:
            continue  # a prefix collision (2**-48): draw again
        return IssuedCredential(credential=credential, token=f"{TOKEN_PREFIX}{prefix}_{secret}")
    raise RuntimeError("could not draw a unique credential prefix")


def _membership_organisation(user) -> Organisation | None:
    membership = Membership.objects.select_related("organisation").filter(user=user).first()
    return membership.organisation if membership else None


def credential_revoke(*, credential: ApiCredential, actor: Actor) -> ApiCredential:
    with transaction.atomic():
        credential = ApiCredential.objects.select_for_update().get(pk=credential.pk)
        if credential.revoked_at is not None:
            raise Conflict("This credential is already revoked.", code="credential_revoked")
        credential.revoked_at = timezone.now()
        credential.save(update_fields=["revoked_at"])
        audit_record(
            AuditRecord(
                action=Action.CREDENTIAL_REVOKED,
                actor=actor,
                organisation=credential.organisation.slug if credential.organisation else "",
                object_type=ObjectType.CREDENTIAL,
                object_id=f"cc_{credential.prefix}",
                data={Key.NAME: credential.name},
            )
        )
    return credential


def membership_set(*, user, organisation: Organisation, role: str, actor: Actor) -> Membership:
    """Give ``user`` a role in ``organisation`` (creating the membership if needed)."""
    if role not in Role.values:
        raise InvalidInput(f"role must be one of {Role.values}.")
    require_local(organisation, action="have users")
    with transaction.atomic():
        if StaffRole.objects.filter(user=user).exists():
            raise Conflict(
                "Hub staff cannot also belong to a member organisation.", code="staff_user"
            )
        membership = Membership.objects.select_for_update().filter(user=user).first()
        previous = membership.role if membership else None
        if membership is not None and membership.organisation_id != organisation.pk:
            raise Conflict("This user belongs to another organisation.", code="other_organisation")
        if membership is None:
            membership = Membership.objects.create(user=user, organisation=organisation, role=role)
        elif previous != role:
            membership.role = role
            membership.save(update_fields=["role"])
        else:
            return membership
        audit_record(
            AuditRecord(
                action=Action.ROLE_CHANGED,
                actor=actor,
                organisation=organisation.slug,
                object_type=ObjectType.USER,
                object_id=user.get_username(),
                data={Key.USER: user.get_username(), Key.FROM: previous, Key.TO: role},
            )
        )
    return membership


def staff_role_set(*, user, role: str | None, actor: Actor) -> StaffRole | None:
    """Make ``user`` hub staff (consortium admin or auditor), or remove the staff role (None)."""
    with transaction.atomic():
        if role is not None and Membership.objects.filter(user=user).exists():
            raise Conflict(
                "Members of an organisation cannot also be hub staff.", code="member_user"
            )
        current = StaffRole.objects.select_for_update().filter(user=user).first()
        previous = current.role if current else None
        if previous == role:
            return current
        if role is None:
            current.delete()
            current = None
        elif current is None:
            current = StaffRole.objects.create(user=user, role=role)
        else:
            current.role = role
            current.save(update_fields=["role"])
        audit_record(
            AuditRecord(
                action=Action.ROLE_CHANGED,
                actor=actor,
                object_type=ObjectType.USER,
                object_id=user.get_username(),
                data={Key.USER: user.get_username(), Key.FROM: previous, Key.TO: role},
            )
        )
    return current


ORGANISATION_FIELDS = ("slug", "name", "status", "trusted")


def organisation_save(*, organisation: Organisation, actor: Actor) -> Organisation:
    """Create an organisation or save changes to it (a consortium admin, in the Django admin).
    Suspending a member or marking it trusted changes what it may do, so every change is audited."""
    if not organisation.slug or not organisation.name:
        raise InvalidInput("An organisation needs a slug and a name.")
    require_local(organisation, action="be changed (federation keeps mirrors up to date)")
    check_display_name(organisation.name, field="name")
    with transaction.atomic():
        before = (
            Organisation.objects.filter(pk=organisation.pk).values(*ORGANISATION_FIELDS).first()
            if organisation.pk
            else None
        )
        try:
            with transaction.atomic():
                organisation.save()
        except IntegrityError:
            raise Conflict("An organisation with this slug exists.", code="slug_exists") from None
        after = {name: getattr(organisation, name) for name in ORGANISATION_FIELDS}
        if before == after:
            return organisation
        audit_record(
            AuditRecord(
                action=(
                    Action.ORGANISATION_CREATED if before is None else Action.ORGANISATION_CHANGED
                ),
                actor=actor,
                organisation=organisation.slug,
                object_type=ObjectType.ORGANISATION,
                object_id=organisation.slug,
                data={Key.FROM: before, Key.TO: after},
            )
        )
    return organisation


USER_AUDITED_FIELDS = (
    "username",
    "email",
    "first_name",
    "last_name",
    "is_active",
    "is_staff",
    "is_superuser",
)


def user_save(*, user, actor: Actor, password_changed: bool = False) -> object:
    """Create a user or save changes to their account (the Django admin). The event names what
    changed; it never holds a password or its hash."""
    model = type(user)
    with transaction.atomic():
        before = (
            model.objects.filter(pk=user.pk).values(*USER_AUDITED_FIELDS).first()
            if user.pk
            else None
        )
        user.save()
        after = {name: getattr(user, name) for name in USER_AUDITED_FIELDS}
        if before == after and not password_changed:
            return user
        audit_record(
            AuditRecord(
                action=Action.USER_CREATED if before is None else Action.USER_CHANGED,
                actor=actor,
                object_type=ObjectType.USER,
                object_id=user.get_username(),
                data={Key.FROM: before, Key.TO: after, Key.PASSWORD_CHANGED: password_changed},
            )
        )
    return user
