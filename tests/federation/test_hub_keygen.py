"""``manage.py hub_keygen`` makes the hub key and the witness key (docs/transparency.md, "This hub
as a witness"; README.md), and never overwrites either."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from federation import hubkey


@pytest.fixture
def key_paths(tmp_path):
    paths = {"HUB_KEY_PATH": str(tmp_path / "hub-key.pem")}
    paths["WITNESS_KEY_PATH"] = str(tmp_path / "witness-key.pem")
    hubkey.hub_private_key.cache_clear()
    hubkey.witness_private_key.cache_clear()
    with override_settings(**paths):
        yield tmp_path
    hubkey.hub_private_key.cache_clear()
    hubkey.witness_private_key.cache_clear()


def _keygen(*args) -> str:
    out = StringIO()
    call_command("hub_keygen", *args, stdout=out)
    return out.getvalue()


def test_a_first_run_makes_the_hub_key_and_the_witness_key(key_paths):
    out = _keygen()
    assert (key_paths / "hub-key.pem").exists() and (key_paths / "witness-key.pem").exists()
    assert "Created hub key" in out and "Created witness key" in out
    assert "witness key (vkey): hub.test.concordat/witness+" in out


def test_a_hub_with_a_key_but_no_witness_key_gets_one_with_if_missing(key_paths):
    _keygen()
    hub_key = (key_paths / "hub-key.pem").read_bytes()
    (key_paths / "witness-key.pem").unlink()
    hubkey.witness_private_key.cache_clear()
    with pytest.raises(CommandError, match="never overwritten"):
        _keygen()
    assert not (key_paths / "witness-key.pem").exists()

    out = _keygen("--if-missing")

    assert "Created witness key" in out and "Created hub key" not in out
    assert (key_paths / "hub-key.pem").read_bytes() == hub_key
    witness_key = (key_paths / "witness-key.pem").read_bytes()
    _keygen("--if-missing")
    assert (key_paths / "witness-key.pem").read_bytes() == witness_key
