"""Steps shared by the sync tests: sequence the stream, follow it, apply it to a local copy."""

import gzip

import orjson

from federation.contributions.models import SHARED_STATES, Entry
from federation.sync.sequencer import sync_sequence_pending


def pull(party, *, after: str | None = None, **params) -> dict:
    """One page of changes as ``party`` sees it (the stream sequenced first)."""
    sync_sequence_pending()
    query = {**params, **({"after": after} if after is not None else {})}
    response = party.client.get("/api/v1/sync/changes", query)
    assert response.status_code == 200, response.content
    return response.json()


def pull_all(party, *, after: str | None = None, copy: dict | None = None, **params):
    """Follow the stream to its end, applying each change to ``copy``; returns (copy, cursor)."""
    copy = {} if copy is None else copy
    while True:
        page = pull(party, after=after, **params)
        apply(copy, page["changes"])
        after = page["next"]
        if not page["more"]:
            return copy, after


def apply(copy: dict, changes) -> None:
    for change in changes:
        signal = (change["signal"]["type"], change["signal"]["value"])
        if change["op"] == "upsert":
            copy[signal] = {"state": change["state"], "labels": change["labels"]}
        else:
            copy.pop(signal, None)


def shared_set_in_database() -> dict:
    return {
        (entry.signal_type, entry.value): {
            "state": entry.state,
            "labels": sorted(label.slug for label in entry.labels.all()),
        }
        for entry in Entry.objects.filter(state__in=SHARED_STATES).prefetch_related("labels")
    }


def export_lines(response) -> list[dict]:
    assert response.status_code == 200, response.content
    assert response["Content-Encoding"] == "gzip"
    body = gzip.decompress(b"".join(response.streaming_content))
    return [orjson.loads(line) for line in body.splitlines()]
