"""The vpdq section of docs/federation-vectors.json: a vpdq add on the wire, checked by
wire.py, independently (PyNaCl, hashlib, a separate JCS), and end to end at hub C."""

import hashlib
import json

import pytest

from federation.contributions.models import Entry
from federation.propagation import wire
from federation.receiving.receive import batch_receive
from federation.video.models import VideoFrames
from tests.support.federation_vector_checks import (
    VECTORS,
    assert_signed_vector,
    hub_a_at_hub_c,
)
from tests.support.jcs import independent_jcs

VPDQ = VECTORS["vpdq"]


@pytest.mark.parametrize("vector", [*VPDQ["signed"], VPDQ["batch"]], ids=lambda v: v["id"])
def test_each_signature_verifies_over_the_independent_jcs_bytes(vector):
    assert_signed_vector(vector)


def test_the_frames_ride_inside_the_signed_contribution_and_the_value_is_their_digest():
    signal = VPDQ["signed"][0]["object"]["signal"]
    frames_bytes = independent_jcs(signal["frames"]).encode()
    assert hashlib.sha256(frames_bytes).hexdigest() == signal["value"]
    item = VPDQ["item"]
    assert hashlib.sha256(independent_jcs(item["item"]).encode()).hexdigest() == item["digest_hex"]
    assert wire.item_digest(item["item"]) == item["digest_hex"]
    parsed = wire.parse_batch(VPDQ["batch"]["body"])
    assert [i.digest for i in parsed.items] == [item["digest_hex"]] and parsed.problems == ()


@pytest.mark.django_db
def test_hub_c_accepts_the_vpdq_batch_and_stores_the_frame_list(settings):
    peer = hub_a_at_hub_c(settings)
    result = batch_receive(peer=peer, body=VPDQ["batch"]["body"], via="push")
    assert [r.as_dict() for r in result.results] == VPDQ["expected_results_at_hub_c"]
    signal = VPDQ["signed"][0]["object"]["signal"]
    entry = Entry.objects.get(signal_type="vpdq", value=signal["value"])
    assert json.loads(VideoFrames.objects.get(entry=entry).canonical) == signal["frames"]
