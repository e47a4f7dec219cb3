"""The client's library parts without a hub: hashing (bars trimmed before PDQ), the exact offline
PDQ index, the submission journal, signing and profiles."""

import base64
import json
import random

import numpy
import pytest
import rfc8785
from concordat_client import hashing, signing
from concordat_client.config import load_profile
from concordat_client.local import Journal, PDQIndex, SharedSet
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tests.support import client_media as media


def distance(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def test_a_letterboxed_copy_hashes_near_its_picture_because_bars_are_trimmed(tmp_path):
    paths = media.write_set(tmp_path, 11)
    original, _ = hashing.pdq(paths["original"])
    boxed, _ = hashing.pdq(paths["letterboxed"])
    assert distance(original, boxed) <= 31
    pixels = numpy.asarray(media.letterbox(media.picture(11)))
    untrimmed = hashing.bits_to_hex(__import__("pdqhash").compute(pixels)[0])
    assert distance(original, untrimmed) > 31  # what the trim is for
    assert hashing.trim_bars(pixels).shape[0] == media.picture(11).height


def test_a_flat_picture_is_kept_whole():
    flat = numpy.zeros((100, 80, 3), dtype=numpy.uint8)
    assert hashing.trim_bars(flat).shape[:2] == (100, 80)
    barred = numpy.zeros((100, 80, 3), dtype=numpy.uint8)
    barred[40:60, 30:50] = 255  # a small picture in a wide frame: a quarter of each side goes
    assert hashing.trim_bars(barred).shape[:2] == (50, 40)


def test_the_offline_pdq_index_is_exact_against_a_brute_force_scan():
    rng = random.Random(5)
    values = [f"{rng.getrandbits(256):064x}" for _ in range(2000)]
    query = values[17]
    near = f"{int(query, 16) ^ (2**31 - 1):064x}"  # 31 bits away
    values.append(near)
    documents = [{"signal": {"type": "pdq", "value": v}} for v in values]
    index = PDQIndex(values, documents)
    for threshold in (0, 30, 31, 120):
        expected = sorted(
            (distance(query, v), v) for v in values if distance(query, v) <= threshold
        )
        found = [(d, doc["signal"]["value"]) for d, doc in index.search(query, threshold)]
        assert found == expected


def test_sync_applies_upserts_and_removals_with_the_cursor_in_one_transaction(tmp_path):
    local = SharedSet(tmp_path / "copy.sqlite")
    upsert = {
        "op": "upsert", "signal": {"type": "md5", "value": "a" * 32}, "state": "vetted",
        "labels": ["x"], "contributors": [], "quality": None,
    }  # fmt: skip
    local.apply([upsert], cursor="c1")
    assert (local.count(), local.cursor()) == (1, "c1")
    local.apply([{"op": "remove", "signal": upsert["signal"], "reason": "retracted"}], cursor="c2")
    assert (local.count(), local.cursor(), local.lookup("md5", "a" * 32)) == (0, "c2", None)


def test_sync_applies_export_lines_as_received_and_a_delta_page_from_its_text(tmp_path):
    from concordat_client.hub import HubError

    local = SharedSet(tmp_path / "copy.sqlite")
    lines = [
        b'{"op": "upsert", "signal": {"type": "md5", "value": "%032x"}, "state": "vetted", '
        b'"labels": ["end"], "contributors": []}\n' % n
        for n in range(3)
    ]
    assert local.apply_lines(lines, cursor=None) == 3 and local.cursor() is None
    row = local.db.execute("SELECT document FROM entries ORDER BY value LIMIT 1").fetchone()
    assert row[0] == json.dumps(json.loads(lines[0]), separators=(",", ":"))  # compact, in order
    page = json.dumps({
        "changes": [
            {"op": "remove", "signal": {"type": "md5", "value": f"{0:032x}"}, "reason": "retracted"},
            {"op": "upsert", "signal": {"type": "pdq", "value": "ab" * 32}, "state": "disputed",
             "labels": [], "contributors": []},
        ],
        "next": "c2", "more": True,
    })  # fmt: skip
    assert local.apply_delta_page(page) == (2, True)
    assert (local.count(), local.cursor()) == (3, "c2")
    assert local.lookup("pdq", "ab" * 32)["state"] == "disputed"
    assert local.lookup("md5", f"{0:032x}") is None
    with pytest.raises(HubError, match="not JSON"):
        local.apply_delta_page('{"changes": [{"op": "upsert"')
    with pytest.raises(HubError, match="not JSON"):
        local.apply_lines([b'{"op": "upsert", "signal": '], cursor="c3")
    assert (local.count(), local.cursor()) == (3, "c2")  # nothing of a refused page


def test_the_journal_keeps_uuids_across_runs_and_refuses_a_changed_input(tmp_path):
    records = [{"type": "md5", "value": f"{n:032x}"} for n in range(3)]
    first = Journal(tmp_path / "j.sqlite")
    first.plan(records, lambda: str(random.random()), lambda: "2026-12-05T00:00:00Z")
    planned = first.pending()
    first.answer([(planned[0][0], "created", {"status": "created"})])
    again = Journal(tmp_path / "j.sqlite")
    again.plan(records, lambda: "other", lambda: "later")
    assert again.pending() == planned[1:]  # same UUIDs and times: the same signed bytes
    with pytest.raises(ValueError, match="input changed"):
        again.plan(records[:2], lambda: "x", lambda: "y")


def test_a_contribution_is_signed_over_its_rfc8785_bytes_and_resigns_identically(tmp_path):
    key = signing.write_new_key(tmp_path / "k.pem")
    assert (tmp_path / "k.pem").stat().st_mode & 0o777 == 0o600
    options = dict(
        hub="h", member="m", action="add", signal={"type": "md5", "value": "0" * 32},
        labels=["x"], item_uuid="6f1c3a52-6a5e-4c39-9d9b-5c4f1b0c9e11", created_at="2026-12-05T00:00:00Z",
    )  # fmt: skip
    signed = signing.contribution(key, **options)
    public = Ed25519PublicKey.from_public_bytes(signing.public_bytes(key))
    public.verify(base64.b64decode(signed["signature"]), rfc8785.dumps(signed["contribution"]))
    assert signing.contribution(key, **options) == signed  # Ed25519 is deterministic
    with pytest.raises(FileExistsError):
        signing.write_new_key(tmp_path / "k.pem")


def test_a_profile_reads_the_file_and_the_environment_wins_and_never_shows_the_token(
    tmp_path, monkeypatch
):
    config = tmp_path / "config.toml"
    config.write_text(
        '[profiles.work]\nhub = "https://a.example"\ntoken = "cc_secret"\nmember = "acme"\n'
    )
    monkeypatch.setenv("CONCORDAT_CONFIG", str(config))
    monkeypatch.setenv("CONCORDAT_HUB", "https://b.example")
    profile = load_profile("work")
    assert (profile.hub, profile.token, profile.member) == (
        "https://b.example",
        "cc_secret",
        "acme",
    )
    assert "cc_secret" not in repr(profile) and "cc_secret" not in json.dumps(str(profile))
