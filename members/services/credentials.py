"""API credentials: issuing a token within the holder's role (and the issuer's own capabilities),
lookup-only tokens for the private lookup, and revocation. The secret is shown once and only its
hash is kept."""

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from federation.errors import Conflict, Forbidden, InvalidInput
from federation.transparency.actions import Action, Key, ObjectType
from federation.transparency.audit import AuditRecord, audit_record
from members.actors import Actor
from members.authentication import TOKEN_PREFIX, hash_secret
from members.mirrors import require_local
from members.models import (
    ApiCredential,
    Membership,
    Organisation,
    Scope,
)
from members.principals import ROLE_CAPABILITIES, principal_for_user
from members.validators import check_display_name


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
    return _issue(
        organisation=principal.organisation,
        holder=holder,
        name=name,
        scopes=scopes,
        expires_at=expires_at,
        actor=actor,
    )


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
    return _issue(
        organisation=organisation,
        holder=holder,
        name=name,
        scopes=[Scope.LOOKUP.value],
        expires_at=expires_at,
        actor=actor,
        fields={"kind": ApiCredential.Kind.LOOKUP, "lookup_daily_limit": daily_limit},
        data={Key.KIND: ApiCredential.Kind.LOOKUP.value, Key.DAILY_LIMIT: daily_limit},
    )


def _issue(
    *, organisation, holder, name, scopes, expires_at, actor, fields=None, data=None
) -> IssuedCredential:
    """Create the credential and its ``credential.created`` event, drawing a fresh prefix on the
    (2**-48) chance that it is taken; the token is shown once, only its secret's hash is kept."""
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
                    **(fields or {}),
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
                            **(data or {}),
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
