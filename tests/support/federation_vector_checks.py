"""What the tests of docs/federation-vectors.json's sections share: the file, each signed vector
checked independently of the hub's code (a separate RFC 8785 writer, hashlib, PyNaCl), and hub
C's view of hub A for the end-to-end checks."""

import base64
import hashlib
import json

import nacl.signing

from tests.support.federation_vectors_gen import VECTORS_PATH
from tests.support.jcs import independent_jcs

VECTORS = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
HUBS = {hub["hub_id"]: hub for hub in VECTORS["hubs"]}


def public_key_hex(signer: str) -> str:
    """The key a vector's ``signer`` names: ``<member>@<hub>`` the member's, a hub id the hub's."""
    return VECTORS["member"]["public_key_hex"] if "@" in signer else HUBS[signer]["public_key_hex"]


def assert_signed_vector(vector: dict) -> None:
    """The vector's bytes are its object's RFC 8785 form and its signature verifies over them."""
    message = independent_jcs(vector["object"]).encode()
    assert message.decode() == vector["canonical_utf8"]
    assert hashlib.sha256(message).hexdigest() == vector["canonical_sha256_hex"]
    key = nacl.signing.VerifyKey(bytes.fromhex(public_key_hex(vector["signer"])))
    key.verify(message, base64.b64decode(vector["signature_b64"]))


def hub_a_at_hub_c(settings):
    """This hub as hub C, with hub A a trusted peer pinned by the vectors' key (needs the
    database)."""
    from members.models import Peer

    settings.HUB_ID = "hub-c.example.org"
    return Peer.objects.create(
        hub_id="hub-a.example.org",
        name="hub-a.example.org",
        url="https://hub-a.example.org",
        public_key=bytes.fromhex(HUBS["hub-a.example.org"]["public_key_hex"]),
        inbound_policy=Peer.InboundPolicy.TRUST,
    )
