"""Keys, signed items and check contexts for the pure checks of
federation/contributions/checks.py (tests/federation/contributions): no database needed."""

import uuid
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.contributions.checks import CheckContext, MemberKeys, TimeRule
from federation.signing import format_timestamp, sign_contribution
from members.models import SigningKey, key_id_for
from tests.support.parties import raw_public_key

PEER_HUB = "hub-b.example"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def signing_key(
    private_key: Ed25519PrivateKey, *, not_before: datetime, revoked_at=None
) -> SigningKey:
    public = raw_public_key(private_key)
    return SigningKey(
        key_id=key_id_for(public), public_key=public, not_before=not_before, revoked_at=revoked_at
    )


def signed_item(private_key, *, hub=PEER_HUB, member="acme", created_at=NOW, signature=None):
    document = {
        "kind": "concordat.contribution",
        "v": 1,
        "hub": hub,
        "member": member,
        "key_id": key_id_for(raw_public_key(private_key)),
        "uuid": str(uuid.uuid4()),
        "created_at": format_timestamp(created_at),
        "action": "add",
        "signal": {"type": "md5", "value": uuid.uuid4().hex},
        "labels": ["attack-footage"],
        "scope": "federation",
    }
    return {
        "contribution": document,
        "signature": signature or sign_contribution(private_key, document),
    }


def check_context(
    key: SigningKey, *, rule: str, origin_hub=PEER_HUB, member=None, key_hub=PEER_HUB
):
    time_rule = TimeRule.relay(now=NOW) if rule == "relay" else TimeRule.local(now=NOW)
    return CheckContext(
        origin_hub=origin_hub,
        member=member,
        keys=MemberKeys(hub=key_hub, member="acme", keys=[key]),
        time=time_rule,
        labels={"attack-footage": 1},
    )
