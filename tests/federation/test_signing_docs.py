"""The key-loading recipe in docs/signing.md §9 is right: its PKCS#8 header and JWK form, with the
vectors' seed, give the vectors' public key and signature."""

import base64
import json
import re
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _vector(vector_id: str) -> dict:
    vectors = json.loads((DOCS / "signing-vectors.json").read_text())
    return next(v for v in vectors if v["id"] == vector_id)


def test_the_documented_pkcs8_header_and_seed_load_the_vector_key():
    text = (DOCS / "signing.md").read_text()
    headers = set(re.findall(r"302e0201[0-9a-f]{24}", text))
    assert headers == {"302e020100300506032b657004220420"}
    vector = _vector("pdq-add")
    seed = bytes.fromhex(vector["seed_hex"])
    der = bytes.fromhex(headers.pop()) + seed
    key = serialization.load_der_private_key(der, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    public_raw = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert public_raw.hex() == vector["public_key_hex"]
    signature = key.sign(vector["canonical_utf8"].encode())
    assert base64.b64encode(signature).decode() == vector["signature_b64"]
    # The raw key is the SPKI encoding's last 32 bytes, as §9 says (bytes 12 to 44).
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert len(spki) == 44 and spki[12:] == public_raw


def test_the_documented_snippets_quote_the_vector_they_claim():
    text = (DOCS / "signing.md").read_text()
    vector = _vector("pdq-add")
    assert vector["public_key_hex"].startswith("a3b36294") and "a3b36294…d3be" in text
    assert vector["signature_b64"].startswith("ETLYoBIu") and "ETLYoBIu…BDw==" in text
