"""The private lookup (docs/private-lookup.md): the OPRF key and its events, the table kept from
the change stream, the evaluation endpoint and its limits, and the standalone client end to end:
1,000 files of which 10 are shared are found exactly, and nothing the hub writes while answering
holds anything from which the other 990 could be recovered."""

import base64
import datetime as dt
import hashlib
import io
import json
import logging
import os
import threading
from contextlib import redirect_stdout
from pathlib import Path
from unittest import mock
from urllib.parse import urlsplit

import pytest
from concordat_client import lookup as client
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection, connections
from rest_framework.test import APIClient

from federation.contributions.models import Entry, Label
from federation.lookup import voprf
from federation.lookup.keys import current_key
from federation.lookup.models import LookupKey, LookupTag, LookupUsage
from federation.lookup.services import lookup_key_create, lookup_usage_audit, lookup_usage_charge
from federation.lookup.table import lookup_table_refresh
from federation.sync.sequencer import sync_sequence_pending
from federation.transparency.models import AuditEvent
from members.actors import Actor
from members.models import Role
from members.services import lookup_credential_create
from tests.support.parties import make_member, make_organisation, random_hex
from tests.support.vetting import submit_entry

SYSTEM = Actor.system("test")


@pytest.fixture
def trusted_acme(acme, acme_submitter):
    acme.trusted = True
    acme.save()
    return acme_submitter


@pytest.fixture
def lookup_key(db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the key file is written on commit
        return lookup_key_create(actor=SYSTEM)


def make_platform(username="tinyshare", daily_limit=None):
    user = get_user_model().objects.create_user(username)
    issued = lookup_credential_create(
        holder=user, name="uploads", actor=SYSTEM, daily_limit=daily_limit
    )
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.token}")
    return issued, api


def django_transport(api: APIClient):
    """The client's HTTP, through Django's test client (same process, same transaction)."""

    def send(method, url, headers, body):
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        extra = {"HTTP_AUTHORIZATION": headers["Authorization"]}
        if method == "GET":
            response = api.get(path, **extra)
        else:
            response = api.post(path, body, content_type="application/json", **extra)
        return response.status_code, response.content

    return send


def hub_for(api: APIClient, token: str) -> client.HubClient:
    return client.HubClient("http://hub.test", token, transport=django_transport(api))


def share(party, signal_type: str, value: str) -> Entry:
    entry = submit_entry(party, signal={"type": signal_type, "value": value})
    assert entry.state == "vetted"
    return entry


def retract(party, entry):
    response = party.submit(
        action="retract", labels=[], signal={"type": entry.signal_type, "value": entry.value}
    )
    assert response.status_code == 201, response.json()


def caught_up():
    sync_sequence_pending()
    return lookup_table_refresh()


# --- The key ------------------------------------------------------------------------------------


def test_the_key_and_its_rotation_are_announced_in_the_log(lookup_key, settings):
    created = AuditEvent.objects.get(action="lookup.key_created")
    assert created.object_id == lookup_key.key_id
    assert base64.b64decode(created.data["public_key"]) == lookup_key.public_key
    assert created.data["suite"] == "ristretto255-SHA512"

    out = io.StringIO()
    call_command("lookup_key", "rotate", stdout=out)
    new = LookupKey.objects.get(retired_at__isnull=True)
    assert new.key_id != lookup_key.key_id
    retired = AuditEvent.objects.get(action="lookup.key_retired")
    assert (retired.object_id, retired.data["successor"]) == (lookup_key.key_id, new.key_id)
    announced = AuditEvent.objects.filter(action="lookup.key_created").latest("pk")
    assert announced.data["previous"] == lookup_key.key_id
    assert base64.b64decode(announced.data["public_key"]) == bytes(new.public_key)


def test_a_second_key_is_refused_and_the_secret_never_reaches_the_database(lookup_key):
    with pytest.raises(Exception, match="rotate"):
        lookup_key_create(actor=SYSTEM)
    assert current_key().secret == lookup_key.secret
    secret_hex = lookup_key.secret.hex()
    assert not AuditEvent.objects.filter(data__icontains=secret_hex).exists()


def test_without_a_key_the_endpoints_answer_503(db):
    _issued, api = make_platform()
    response = api.get("/api/v1/lookup/table")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "lookup_unavailable"


# --- The table ----------------------------------------------------------------------------------


def test_the_table_holds_exactly_the_shared_exact_hashes(lookup_key, trusted_acme, acme_submitter):
    md5 = share(trusted_acme, "md5", random_hex(32))
    sha = share(trusted_acme, "sha256", random_hex(64))
    share(trusted_acme, "pdq", random_hex(64))  # not offered: PDQ is matched by distance
    acme_submitter.organisation.trusted = False
    acme_submitter.organisation.save()
    pending = submit_entry(acme_submitter, signal={"type": "md5", "value": random_hex(32)})
    assert pending.state == "pending"
    caught_up()
    rows = {tag.entry_id: tag for tag in LookupTag.objects.all()}
    assert set(rows) == {md5.pk, sha.pk}
    expected = voprf.evaluate(lookup_key.secret, client.lookup_input("md5", md5.value))[:8]
    assert bytes(rows[md5.pk].tag) == expected


def test_a_retraction_leaves_the_table_and_reaches_clients_by_delta(lookup_key, trusted_acme):
    kept = share(trusted_acme, "sha256", random_hex(64))
    gone = share(trusted_acme, "sha256", random_hex(64))
    caught_up()
    issued, api = make_platform()
    hub = hub_for(api, issued.token)
    table = hub.table()
    outputs = client.lookup_outputs(
        hub, table, [client.lookup_input("sha256", e.value) for e in (kept, gone)]
    )
    assert [table.state_of(o) for o in outputs] == ["vetted", "vetted"]

    retract(trusted_acme, gone)
    sync_sequence_pending()  # the change's position; the table catches up on the next read
    table = hub.update(table)
    assert [table.state_of(o) for o in outputs] == ["vetted", None]
    assert hub.table().state_of(outputs[1]) is None
    assert LookupTag.objects.get(entry_id=gone.pk).state == "removed"


def test_a_delta_from_another_key_or_before_a_rebuild_is_stale(lookup_key, trusted_acme):
    share(trusted_acme, "md5", random_hex(32))
    caught_up()
    _issued, api = make_platform()
    table = api.get("/api/v1/lookup/table").json()
    response = api.get(f"/api/v1/lookup/table/changes?key_id=nope&since={table['position']}")
    assert (response.status_code, response.json()["error"]["code"]) == (409, "lookup_table_stale")
    response = api.get(f"/api/v1/lookup/table/changes?key_id={table['key_id']}&since=x")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_cursor")


def test_after_a_rotation_the_table_is_rebuilt_under_the_new_key(
    lookup_key, trusted_acme, django_capture_on_commit_callbacks
):
    entry = share(trusted_acme, "md5", random_hex(32))
    caught_up()
    issued, api = make_platform()
    hub = hub_for(api, issued.token)
    old_table = hub.table()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("lookup_key", "rotate", stdout=io.StringIO())
    new_key = current_key()
    assert new_key.key_id != lookup_key.key_id
    # Until the beat task rebuilds it, the table is not served under either key.
    response = api.get("/api/v1/lookup/table")
    assert (response.status_code, response.json()["error"]["code"]) == (
        503,
        "lookup_table_building",
    )
    assert lookup_table_refresh().rebuilt
    new_tag = bytes(LookupTag.objects.get(entry_id=entry.pk).tag)
    assert new_tag == voprf.evaluate(new_key.secret, client.lookup_input("md5", entry.value))[:8]
    # A client holding the old table is sent to download it whole, and then finds the entry.
    table = hub.update(old_table)
    assert table.key_id == new_key.key_id
    (output,) = client.lookup_outputs(hub, table, [client.lookup_input("md5", entry.value)])
    assert table.state_of(output) == "vetted"


# --- Evaluation ---------------------------------------------------------------------------------


def test_evaluation_refuses_bad_elements_and_a_changed_key(lookup_key):
    _issued, api = make_platform()
    good = base64.b64encode(voprf.blind(b"x")[1]).decode()
    bad = base64.b64encode(bytes(32)).decode()
    url = "/api/v1/lookup/evaluate"
    response = api.post(url, {"key_id": lookup_key.key_id, "blinded": [good, bad]}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "invalid_element",
        "message": response.json()["error"]["message"],
        "details": {"index": 1},
    }
    response = api.post(url, {"key_id": "0" * 32, "blinded": [good]}, format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (409, "lookup_key_changed")
    response = api.post(url, {"key_id": lookup_key.key_id, "blinded": [good] * 1001}, format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "too_many_items")
    response = api.post(url, {"key_id": lookup_key.key_id, "blinded": "AAAA"}, format="json")
    assert response.status_code == 400


def test_a_lookup_only_token_does_nothing_else(lookup_key):
    _issued, api = make_platform()
    for path in ("/api/v1/entries/", "/api/v1/sync/changes", "/api/v1/contributions/"):
        assert api.get(path).status_code == 403
    assert api.post("/api/v1/match", {"signals": []}, format="json").status_code == 403
    assert api.get("/api/v1/lookup/key").status_code == 200


def test_members_look_up_with_their_read_tokens(lookup_key, globex_reviewer):
    element = base64.b64encode(voprf.blind(b"x")[1]).decode()
    response = globex_reviewer.client.post(
        "/api/v1/lookup/evaluate",
        {"key_id": lookup_key.key_id, "blinded": [element]},
        format="json",
    )
    assert response.status_code == 200
    assert len(response.json()["evaluated"]) == 1


def test_a_proof_from_a_key_that_is_not_the_published_one_is_detected(lookup_key):
    issued, api = make_platform()
    other = voprf.generate_key_pair()
    honest = django_transport(api)

    def impostor(method, url, headers, body):
        status, answer = honest(method, url, headers, body)
        if url.endswith("/evaluate"):
            blinded = [base64.b64decode(b) for b in json.loads(body)["blinded"]]
            evaluated, proof = voprf.blind_evaluate_batch(other[0], other[1], blinded)
            answer = json.dumps(
                {
                    "key_id": lookup_key.key_id,
                    "evaluated": [base64.b64encode(e).decode() for e in evaluated],
                    "proof": base64.b64encode(proof).decode(),
                }
            ).encode()
        return status, answer

    caught_up()
    hub = client.HubClient("http://hub.test", issued.token, transport=impostor)
    with pytest.raises(client.LookupError_, match="does not verify"):
        client.lookup_outputs(hub, hub.table(), [b"one", b"two"])


def test_the_daily_limit_refuses_what_would_pass_it_and_counts_refusals(lookup_key):
    issued, api = make_platform(daily_limit=5)
    element = base64.b64encode(voprf.blind(b"x")[1]).decode()
    url = "/api/v1/lookup/evaluate"
    body = {"key_id": lookup_key.key_id, "blinded": [element] * 3}
    assert api.post(url, body, format="json").status_code == 200
    response = api.post(url, body, format="json")
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "lookup_rate_limited"
    assert (error["details"]["limit"], error["details"]["used"]) == (5, 3)
    body["blinded"] = [element] * 2
    assert api.post(url, body, format="json").status_code == 200
    usage = LookupUsage.objects.get(credential=issued.credential)
    assert (usage.evaluations, usage.requests, usage.refused) == (5, 2, 1)


def test_usage_is_audited_once_per_credential_and_day_in_counts_only(lookup_key):
    issued, api = make_platform()
    element = base64.b64encode(voprf.blind(b"x")[1]).decode()
    for _ in range(3):
        api.post(
            "/api/v1/lookup/evaluate",
            {"key_id": lookup_key.key_id, "blinded": [element] * 4},
            format="json",
        )
    tomorrow = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    assert lookup_usage_audit(now=tomorrow) == 1
    assert lookup_usage_audit(now=tomorrow) == 0
    (event,) = AuditEvent.objects.filter(action="lookup.usage")
    assert event.object_id == f"cc_{issued.credential.prefix}"
    assert {k: event.data[k] for k in ("evaluations", "requests", "refused")} == {
        "evaluations": 12,
        "requests": 3,
        "refused": 0,
    }
    assert element not in str(event.data)


@pytest.mark.django_db(transaction=True)
def test_the_limit_holds_under_concurrent_clients():
    user = get_user_model().objects.create_user("racer")
    issued = lookup_credential_create(holder=user, name="race", actor=SYSTEM, daily_limit=100)
    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def client_thread():
        start.wait()
        for _ in range(10):
            try:
                lookup_usage_charge(credential=issued.credential, count=3)
                result = "ok"
            except Exception as exc:  # the 429
                result = getattr(exc, "code", repr(exc))
            with lock:
                outcomes.append(result)
        connections.close_all()

    threads = [threading.Thread(target=client_thread) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    usage = LookupUsage.objects.get(credential=issued.credential)
    assert outcomes.count("ok") == 33  # 33 * 3 = 99 <= 100 < 34 * 3
    assert outcomes.count("lookup_rate_limited") == 80 - 33
    assert (usage.evaluations, usage.requests, usage.refused) == (99, 33, 47)


# --- End to end: 1,000 files, 10 shared, and what the hub keeps -----------------------------------


def _all_rows() -> dict[str, set[str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
        tables = [row[0] for row in cursor.fetchall()]
        rows = {}
        for table in tables:
            cursor.execute(f'SELECT t::text FROM "{table}" t')  # noqa: S608 (catalogue names)
            rows[table] = {row[0] for row in cursor.fetchall()}
    return rows


def test_a_thousand_files_find_exactly_the_ten_shared_and_leave_nothing_of_the_rest(
    lookup_key, trusted_acme, tmp_path, caplog
):
    files = []
    for index in range(1000):
        path = tmp_path / f"upload-{index:04d}.bin"
        path.write_bytes(f"upload {index} ".encode() + random_hex(32).encode())
        files.append(path)
    shared = set(range(0, 1000, 100))
    for index in sorted(shared):
        hashes = client.file_hashes(files[index])
        # half shared by SHA-256, half by MD5: either of a file's hashes finds it
        kind = "sha256" if index % 200 == 0 else "md5"
        share(trusted_acme, kind, hashes[kind])
    caught_up()
    issued, api = make_platform()
    hub = hub_for(api, issued.token)
    table = hub.table()

    # Remember what the client sends, to look for it in what the hub keeps.
    sent: list[bytes] = []
    honest = hub.transport

    def recording(method, url, headers, body):
        if body:
            sent.extend(base64.b64decode(b) for b in json.loads(body)["blinded"])
        return honest(method, url, headers, body)

    hub.transport = recording
    before = _all_rows()
    caplog.set_level(logging.DEBUG)
    results = client.lookup_files(hub, files, table=table)
    after = _all_rows()

    assert {i for i, r in enumerate(results) if r.matched} == shared
    assert all(r.state == "vetted" for r in results if r.matched)
    assert len(sent) == 2000

    # What changed in the database: only the credential's usage counter (and last use).
    changed = {t: after[t] - before.get(t, set()) for t in after if after[t] != before.get(t)}
    assert set(changed) <= {"federation_lookupusage", "members_apicredential"}
    secrets = set()
    for index, path in enumerate(files):
        if index in shared:
            continue
        for value in client.file_hashes(path).values():
            secrets |= {value, value.upper()}
    for element in sent:
        secrets |= {element.hex(), base64.b64encode(element).decode()}
    # Nowhere in the database after the lookups, and in no log line written during them.
    everything = "\n".join(row for rows in after.values() for row in rows)
    assert not [s for s in secrets if s in everything]
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert not [s for s in secrets if s in logged]
    (usage,) = LookupUsage.objects.filter(credential=issued.credential)
    assert (usage.evaluations, usage.requests) == (2000, 2)


def test_the_client_wording_says_what_a_match_means():
    vetted = client.FileResult("a.jpg", True, "sha256", "vetted").describe()
    assert "MATCHED" in vetted and "vetted" in vetted
    assert client.FileResult("b.jpg", False).describe() == "b.jpg: not matched"
    assert (
        hashlib.md5(b"", usedforsecurity=False).hexdigest()
        == client.file_hashes(Path("/dev/null"))["md5"]
    )


@pytest.mark.django_db(transaction=True)
def test_the_client_over_real_http(live_server, tmp_path):
    """The standalone client's own transport (urllib) against a served hub: committed changes,
    the key file written on commit, the sequencer's positions, the table, the proof."""

    # A transactional test before this one may have flushed the seeded taxonomy.
    Label.objects.get_or_create(slug="attack-footage", defaults={"name": "Attack footage"})
    lookup_key_create(actor=SYSTEM)
    organisation = make_organisation("acme", trusted=True)
    member = make_member("alice", organisation, Role.SUBMITTER)
    known, unknown = tmp_path / "known.bin", tmp_path / "unknown.bin"
    known.write_bytes(b"a file the members shared")
    unknown.write_bytes(b"a file nobody shared")
    share(member, "sha256", client.file_hashes(known)["sha256"])
    caught_up()
    issued, _api = make_platform()
    hub = client.HubClient(live_server.url, issued.token)
    results = client.lookup_files(hub, [known, unknown])
    assert [(r.matched, r.state) for r in results] == [(True, "vetted"), (False, None)]
    with pytest.raises(client.LookupError_, match="lookup_key_changed"):
        hub.evaluate("0" * 32, [voprf.blind(b"x")[1]])
    # The command line prints one line per file and exits 1 when something matched.

    printed = io.StringIO()
    with mock.patch.dict(os.environ, {"CONCORDAT_TOKEN": issued.token}), redirect_stdout(printed):
        status = client.main(["--hub", live_server.url, str(known), str(unknown)])
    assert status == 1
    assert printed.getvalue().splitlines() == [r.describe() for r in results]


def test_a_request_catches_up_only_a_page_and_leaves_the_backlog_to_the_task(
    lookup_key, trusted_acme
):
    caught_up()
    entries = [share(trusted_acme, "md5", random_hex(32)) for _ in range(3)]
    sync_sequence_pending()
    partial = lookup_table_refresh(rebuild=False, max_changes=1)
    assert partial.applied == 1
    assert LookupTag.objects.count() == 1
    rest = lookup_table_refresh()
    assert rest.applied == 2
    assert set(LookupTag.objects.values_list("entry_id", flat=True)) == {e.pk for e in entries}
