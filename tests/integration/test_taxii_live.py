"""TAXII 2.1 read with the standard tools against a live hub (gunicorn, two workers, real HTTP):
taxii2-client for discovery, collections and paging, stix2-validator and stix2 for what it reads
(docs/taxii.md)."""

import contextlib
import io
import os
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

import pytest
import stix2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from stix2validator import ValidationOptions, validate_instance
from taxii2client.v21 import Server, as_pages

from federation.signing import format_timestamp, sign_contribution
from federation.taxii import stix
from tests.support.harness import running_hub

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]

TAXII = "application/taxii+json;version=2.1"


def item(hub, member: dict, key: Ed25519PrivateKey, value: str, action="add") -> dict:
    document = {
        "kind": "concordat.contribution",
        "v": 1,
        "hub": hub.hub_id,
        "member": "acme",
        "key_id": member["key_id"],
        "uuid": str(uuid.uuid4()),
        "created_at": format_timestamp(datetime.now(UTC).replace(microsecond=0)),
        "action": action,
        "signal": {"type": "sha256", "value": value},
        "labels": ["propaganda"] if action == "add" else [],
        "scope": "federation",
    }
    return {"contribution": document, "signature": sign_contribution(key, document)}


def submit(hub, member, key, values, action="add") -> None:
    status, body = hub.request(
        "POST",
        "/api/v1/contributions/bulk/",
        json_body={"items": [item(hub, member, key, v, action) for v in values]},
        token=member["token"],
    )
    assert status in (200, 201), body


def served_versions(hub) -> set[tuple[str, str]]:
    """Every version the hub has numbered, from its database."""
    rows = hub.sql(
        "SELECT stix_id, to_char(modified AT TIME ZONE 'UTC', "
        '\'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"\') FROM federation_stixobjectversion '
        "WHERE date_added IS NOT NULL"
    )
    return {(stix_id, modified) for stix_id, modified in rows}


def indicator_id(value: str) -> str:
    return stix.indicator_id(signal_type="sha256", value=value)


def test_taxii2_client_reads_every_version_once_while_the_set_changes():
    key = Ed25519PrivateKey.generate()
    with running_hub("taxii", web_workers=2) as hub:
        acme = hub.create_member(
            org="acme", user="alice", role="submitter", trusted=True, signing_key=key, token=True
        )
        globex = hub.create_member(org="globex", user="gus", role="reviewer", token=True)
        values = [uuid.uuid4().hex + uuid.uuid4().hex for _ in range(250)]
        submit(hub, acme, key, values)  # one bulk call: one run of equal date_added

        server = Server(f"{hub.url}/taxii2/", user="anyone", password=globex["token"])
        assert server.title == "Concordat"
        (api_root,) = server.api_roots
        assert api_root.versions == [TAXII]
        collections = {c.title: c for c in api_root.collections}
        shared = collections["Shared set"]
        assert shared.can_read is True and shared.can_write is False

        # Page through every version, 40 at a time, adding and retracting between pages:
        # entries read already, entries not read yet, and new ones.
        seen: list[tuple[str, str]] = []
        documents = []
        added: list[str] = []
        for number, envelope in enumerate(
            as_pages(shared.get_objects, per_request=40, version="all")
        ):
            for document in envelope.get("objects", []):
                seen.append((document["id"], document["modified"]))
                documents.append(document)
            if number < 4:
                fresh = [uuid.uuid4().hex + uuid.uuid4().hex for _ in range(3)]
                submit(hub, acme, key, fresh)
                added += fresh
                submit(hub, acme, key, [values[number], values[-1 - number]], action="retract")
        assert len(seen) == len(set(seen)), "a version was served twice"
        assert set(seen) == served_versions(hub), "a version was lost"
        assert {indicator_id(v) for v in added} <= {stix_id for stix_id, _ in seen}

        options = ValidationOptions(version="2.1")
        for document in documents:
            result = validate_instance(document, options)
            assert result.errors == [], (document, [str(e) for e in result.errors])
        bundle = stix2.parse(
            {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": documents},
            allow_custom=False,
        )
        assert len(bundle.objects) == len(documents)

        # The latest versions only (TAXII's default), in the SHA-256 collection, retracting
        # entries already read between pages: none of those not yet read is skipped.
        sha256 = collections["Shared set: SHA-256"]
        latest_seen: list[tuple[str, str]] = []
        for number, envelope in enumerate(as_pages(sha256.get_objects, per_request=30)):
            page = envelope.get("objects", [])
            latest_seen += [(o["id"], o["modified"]) for o in page]
            if number < 5:
                read = [v for v in values[10:] if indicator_id(v) in {o["id"] for o in page}]
                submit(hub, acme, key, read[:2], action="retract")
        assert len(latest_seen) == len(set(latest_seen))
        latest_rows = hub.sql(
            "SELECT stix_id, to_char(modified AT TIME ZONE 'UTC', "
            '\'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"\') FROM federation_stixobjectversion '
            "WHERE is_latest"
        )
        assert {tuple(row) for row in latest_rows} <= set(latest_seen)

        # A retraction: the object's last version is revoked, its first is not.
        retracted = indicator_id(values[-1])
        (last,) = shared.get_object(retracted)["objects"]
        assert last["revoked"] is True
        (first,) = shared.get_object(retracted, version="first")["objects"]
        assert first["revoked"] is False
        versions = shared.object_versions(retracted)["versions"]
        assert versions == [first["modified"], last["modified"]]

        # added_after at the date_added shared by the first 250 versions: strictly after it.
        manifest = shared.get_manifest(version="all")["objects"]
        run = {m["id"]: m["date_added"] for m in manifest}[indicator_id(values[100])]
        in_run = [m for m in manifest if m["date_added"] == run]
        assert len(in_run) >= 240
        after = shared.get_objects(added_after=run, version="all", limit=10000).get("objects", [])
        assert after and all(indicator_id(values[100]) != o["id"] for o in after)
        assert {(o["id"], o["modified"]) for o in after} == {
            (m["id"], m["version"]) for m in manifest if m["date_added"] > run
        }

        # match[type] and match[version].
        identities = shared.get_objects(type="identity")["objects"]
        assert [o["name"] for o in identities] == ["Acme"]
        assert all(
            o["type"] == "indicator" for o in shared.get_objects(type="indicator")["objects"]
        )
        latest = shared.get_objects(limit=10000)["objects"]
        assert len({o["id"] for o in latest}) == len(latest)
        assert next(o for o in latest if o["id"] == retracted)["revoked"] is True

        # The snippet of docs/taxii.md, as written.
        docs = (Path(__file__).resolve().parents[2] / "docs" / "taxii.md").read_text()
        section = docs.split("## Reading with taxii2-client", 1)[1]
        snippet = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
        env = {"CONCORDAT_TAXII_URL": f"{hub.url}/taxii2/", "CONCORDAT_TOKEN": globex["token"]}
        output = io.StringIO()
        with mock.patch.dict(os.environ, env), contextlib.redirect_stdout(output):
            exec(snippet, {})  # noqa: S102 (the documentation's own code)
        active = hub.sql(
            "SELECT count(*) FROM federation_entry WHERE state IN ('vetted', 'disputed')"
        )[0][0]
        assert output.getvalue() == f"{active} indicators\n"
