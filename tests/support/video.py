"""Sharing vpdq and pdq entries in tests, and asking the match API."""

from federation.sync.sequencer import sync_sequence_pending
from federation.video.frames import FrameList
from tests.support.vetting import submit_entry


def frames_document(frames: FrameList) -> list[list]:
    return frames.to_document()


def share_video(party, frames: FrameList, labels=("attack-footage",)):
    signal = {"type": "vpdq", "value": frames.digest, "frames": frames.to_document()}
    entry = submit_entry(party, labels=list(labels), signal=signal)
    sync_sequence_pending()
    return entry


def share_photo(party, value: str, quality: int = 90):
    entry = submit_entry(
        party, labels=["attack-footage"], signal={"type": "pdq", "value": value, "quality": quality}
    )
    sync_sequence_pending()
    return entry


def match(party, signals, **params):
    return party.client.post("/api/v1/match", {"signals": signals, **params}, format="json")


def vpdq_query(frames: FrameList) -> dict:
    return {"type": "vpdq", "frames": frames.to_document()}
