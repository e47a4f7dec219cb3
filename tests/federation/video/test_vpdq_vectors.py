"""The vpdq vectors of docs/signing-vectors.json: frame lists against the hub's code and an
independent reading of docs/video.md §1, and the signed vpdq contributions."""

import hashlib
import json
import re

import pytest

from federation.signing import MalformedContribution, parse_contribution
from federation.video.frames import FrameListError, parse_frames
from tests.support.signing_vectors_gen import VECTORS_PATH

ALL_VECTORS = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
FRAME_LISTS = [v for v in ALL_VECTORS if "vpdq_frames" in v]
VALID_LISTS = [v for v in FRAME_LISTS if v["valid"]]
INVALID_LISTS = [v for v in FRAME_LISTS if not v["valid"]]
VPDQ_CONTRIBUTIONS = {
    v["id"]: v
    for v in ALL_VECTORS
    if "contribution" in v and v["contribution"]["signal"]["type"] == "vpdq"
}


def by_id(vectors):
    return pytest.mark.parametrize("vector", vectors, ids=[v["id"] for v in vectors])


def independent_frames_check(frames) -> str | None:
    """docs/video.md §1 read afresh: the canonical text of a valid list, None otherwise."""
    if not isinstance(frames, list) or not 1 <= len(frames) <= 20_000:
        return None
    previous = None
    for frame in frames:
        if not isinstance(frame, list) or len(frame) != 4:
            return None
        number, quality, pdq, time_ms = frame
        if any(type(x) is not int for x in (number, quality, time_ms)):
            return None
        if not (0 <= number < 2**31 and 0 <= quality <= 100 and 0 <= time_ms < 2**31):
            return None
        if not isinstance(pdq, str) or not re.fullmatch(r"[0-9a-f]{64}", pdq):
            return None
        if previous and (number <= previous[0] or time_ms < previous[3]):
            return None
        previous = frame
    return "[" + ",".join(f'[{n},{q},"{h}",{t}]' for n, q, h, t in frames) + "]"


def test_the_vectors_cover_valid_and_refused_lists_and_signed_contributions():
    assert len(VALID_LISTS) >= 2 and len(INVALID_LISTS) >= 10
    assert {"vpdq-add", "vpdq-retract", "vpdq-frames-tampered"} <= set(VPDQ_CONTRIBUTIONS)
    for vector in FRAME_LISTS:
        assert vector["description"]
        assert ("reason" in vector) is (not vector["valid"])


@by_id(VALID_LISTS)
def test_a_valid_list_gives_the_published_bytes_and_digest(vector):
    parsed = parse_frames(vector["vpdq_frames"])
    assert parsed.canonical.decode() == vector["canonical_utf8"]
    assert independent_frames_check(vector["vpdq_frames"]) == vector["canonical_utf8"]
    digest = hashlib.sha256(vector["canonical_utf8"].encode()).hexdigest()
    assert parsed.digest == digest == vector["digest_hex"]


@by_id(INVALID_LISTS)
def test_an_invalid_list_is_refused_by_the_hub_and_by_the_independent_reading(vector):
    with pytest.raises(FrameListError):
        parse_frames(vector["vpdq_frames"])
    assert independent_frames_check(vector["vpdq_frames"]) is None


def test_the_signed_add_carries_the_three_frame_vector_and_its_digest():
    (three,) = [v for v in VALID_LISTS if v["id"] == "vpdq-frames-three"]
    signal = VPDQ_CONTRIBUTIONS["vpdq-add"]["contribution"]["signal"]
    assert signal == {"type": "vpdq", "value": three["digest_hex"], "frames": three["vpdq_frames"]}
    assert ',"signal":{"frames":[[0,100,' in VPDQ_CONTRIBUTIONS["vpdq-add"]["canonical_utf8"]
    parsed = parse_contribution(VPDQ_CONTRIBUTIONS["vpdq-add"]["contribution"])
    assert parsed.frames.digest == parsed.value == three["digest_hex"]


def test_the_tampered_add_is_well_formed_so_only_the_signature_catches_it():
    tampered = VPDQ_CONTRIBUTIONS["vpdq-frames-tampered"]
    assert tampered["valid"] is False
    assert parse_contribution(tampered["contribution"]).frames is not None


@pytest.mark.parametrize("invalid", [v["id"] for v in INVALID_LISTS])
def test_an_add_signing_an_invalid_list_is_malformed(invalid):
    (vector,) = [v for v in INVALID_LISTS if v["id"] == invalid]
    document = json.loads(json.dumps(VPDQ_CONTRIBUTIONS["vpdq-add"]["contribution"]))
    document["signal"]["frames"] = vector["vpdq_frames"]
    with pytest.raises(MalformedContribution) as caught:
        parse_contribution(document)
    assert caught.value.field == "signal.frames"


def test_the_worked_example_in_signing_md_is_the_vectors():
    docs = (VECTORS_PATH.parent / "signing.md").read_text(encoding="utf-8")
    (three,) = [v for v in VALID_LISTS if v["id"] == "vpdq-frames-three"]
    add = VPDQ_CONTRIBUTIONS["vpdq-add"]
    assert three["canonical_utf8"] in docs and three["digest_hex"] in docs
    assert add["canonical_sha256_hex"] in docs and add["signature_b64"] in docs
    assert f"{len(add['canonical_utf8'].encode())} signed bytes" in docs
