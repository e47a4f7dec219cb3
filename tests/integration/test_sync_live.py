"""Member sync across a process boundary: a live gunicorn and a real Celery worker whose beat
safety net is an hour away, so only the after-commit nudge can make a change readable in time."""

import gzip
import statistics
import time
import urllib.request
import uuid
from datetime import UTC, datetime

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.signing import format_timestamp, sign_contribution
from tests.support.harness import running_hub, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]


def contribution(hub, member: dict, key: Ed25519PrivateKey, value: str, action="add") -> dict:
    document = {
        "kind": "concordat.contribution",
        "v": 1,
        "hub": hub.hub_id,
        "member": "acme",
        "key_id": member["key_id"],
        "uuid": str(uuid.uuid4()),
        "created_at": format_timestamp(datetime.now(UTC).replace(microsecond=0)),
        "action": action,
        "signal": {"type": "md5", "value": value},
        "labels": ["propaganda"] if action == "add" else [],
        "scope": "federation",
    }
    return {"contribution": document, "signature": sign_contribution(key, document)}


def export(hub, token: str) -> list[dict]:
    request = urllib.request.Request(hub.url + "/api/v1/sync/export")
    request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        assert response.headers.get_content_type() == "application/x-ndjson"
        body = gzip.decompress(response.read())
    return [orjson.loads(line) for line in body.splitlines()]


def test_a_committed_change_is_readable_within_a_second_and_export_then_delta_agree():
    key = Ed25519PrivateKey.generate()
    env = {"CONCORDAT_SYNC_SEQUENCE_INTERVAL_SECONDS": "3600"}
    with running_hub("sync", worker=True, extra_env=env) as hub:
        acme = hub.create_member(
            org="acme",
            user="alice",
            role="submitter",
            trusted=True,
            signing_key=key,
            token=True,
        )
        globex = hub.create_member(org="globex", user="gus", role="reviewer", token=True)

        def changes(after: str | None):
            path = "/api/v1/sync/changes" + (f"?after={after}" if after else "")
            status, body = hub.request("GET", path, token=globex["token"])
            assert status == 200, body
            return body

        cursor = changes(None)["next"]
        lags = []
        values = [uuid.uuid4().hex for _ in range(10)]
        for value in values:
            status, body = hub.request(
                "POST",
                "/api/v1/contributions/",
                json_body=contribution(hub, acme, key, value),
                token=acme["token"],
            )
            assert status == 201, body
            committed = time.monotonic()

            def arrived(value=value, cursor=cursor):
                page = changes(cursor)
                return page if any(c["signal"]["value"] == value for c in page["changes"]) else None

            page = wait_for(arrived, timeout=5, interval=0.02, what="the change in the stream")
            lags.append(time.monotonic() - committed)
            cursor = page["next"]
        print(
            f"\ncommit -> readable over HTTP: p50 {statistics.median(lags) * 1000:.0f} ms, "
            f"max {max(lags) * 1000:.0f} ms"
        )
        assert max(lags) < 1.0, lags

        # A retraction reaches a reader following the cursor as a removal.
        status, body = hub.request(
            "POST",
            "/api/v1/contributions/",
            json_body=contribution(hub, acme, key, values[0], action="retract"),
            token=acme["token"],
        )
        assert status == 201, body
        page = wait_for(
            lambda: changes(cursor)["changes"], timeout=5, interval=0.02, what="the removal"
        )
        assert [(c["op"], c["signal"]["value"]) for c in page] == [("remove", values[0])]

        *items, end = export(hub, globex["token"])
        assert end["op"] == "end" and end["count"] == 9
        assert sorted(item["signal"]["value"] for item in items) == sorted(values[1:])
        assert changes(end["cursor"])["changes"] == []

        status, body = hub.request(
            "GET", "/api/v1/sync/changes?after=forged%3Acursor", token=globex["token"]
        )
        assert (status, body["error"]["code"]) == (400, "invalid_cursor")
        status, body = hub.request("GET", "/api/v1/sync/changes")
        assert status == 401
