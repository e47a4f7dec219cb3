"""The hub's own Ed25519 key, which signs log checkpoints (and, later, federation attestations)."""

import base64
import functools
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def generate_key_file(path: Path) -> Ed25519PrivateKey:
    """Write a new PEM (PKCS#8) private key readable only by its owner."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=False)
    path.write_bytes(pem)
    return key


@functools.cache
def hub_private_key() -> Ed25519PrivateKey:
    path = Path(settings.HUB_KEY_PATH)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise ImproperlyConfigured(
            f"No hub key at {path}. Create one with `manage.py hub_keygen` or set CONCORDAT_HUB_KEY_PATH."
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ImproperlyConfigured(f"The hub key at {path} is not an Ed25519 key.")
    return key


def hub_public_key() -> Ed25519PublicKey:
    return hub_private_key().public_key()


def hub_public_key_bytes() -> bytes:
    return hub_public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def hub_public_key_b64() -> str:
    return base64.b64encode(hub_public_key_bytes()).decode()
