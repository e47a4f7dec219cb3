"""The TAXII 2.1 API: discovery, collections, the STIX mapping and its versions, paging by
``(date_added, id)``, filters, authentication, negotiation and TAXII's error objects."""

import base64
import uuid

import pytest
import stix2
from stix2validator import ValidationOptions, validate_instance

from federation.taxii import api, stix
from federation.taxii.models import StixObjectVersion
from federation.taxii.selectors import ALL_COLLECTION
from federation.taxii.versions import stix_versions_sequence
from federation.vetting.services import incident_close, incident_declare
from members.actors import Actor
from tests.support.parties import random_hex
from tests.support.taxii import OBJECTS, ROOT, TAXII, get, objects
from tests.support.vetting import feedback, set_policy, submit_entry


@pytest.fixture
def trusted_acme(acme, acme_submitter):
    acme.trusted = True
    acme.save()
    return acme_submitter


def retract(party, entry):
    return party.submit(
        action="retract", labels=[], signal={"type": entry.signal_type, "value": entry.value}
    )


def indicator_id(entry, generation=0) -> str:
    return stix.indicator_id(
        signal_type=entry.signal_type, value=entry.value, generation=generation
    )


def test_discovery_and_api_root_name_one_read_only_root(globex_reviewer):
    discovery = get(globex_reviewer, "/taxii2/").json()
    assert discovery["api_roots"] == ["http://testserver/taxii2/shared/"]
    assert discovery["default"] == "http://testserver/taxii2/shared/"
    root = get(globex_reviewer, ROOT).json()
    assert root["versions"] == [TAXII]


def test_collections_are_the_set_each_signal_type_and_each_incident(globex_reviewer):
    active = incident_declare(name="Live attack", actor=Actor.system("test"))
    ended = incident_declare(name="Last year", actor=Actor.system("test"))
    incident_close(incident_id=ended.pk, actor=Actor.system("test"))

    collections = get(globex_reviewer, f"{ROOT}collections/").json()["collections"]

    ids = [c["id"] for c in collections]
    assert ids[:5] == [
        ALL_COLLECTION,
        stix.collection_id("signal-type:pdq"),
        stix.collection_id("signal-type:md5"),
        stix.collection_id("signal-type:sha256"),
        stix.collection_id("signal-type:vpdq"),
    ]
    assert set(ids[5:]) == {str(active.pk), str(ended.pk)}
    assert all(c["can_read"] is True and c["can_write"] is False for c in collections)
    one = get(globex_reviewer, f"{ROOT}collections/{active.pk}/").json()
    assert one["title"] == "Incident: Live attack"


def test_a_vetted_entry_is_an_indicator_by_its_member_that_validates(trusted_acme, globex_reviewer):
    entry = submit_entry(
        trusted_acme,
        labels=["attack-footage"],
        signal={"type": "sha256", "value": random_hex(64)},
    )

    served = objects(globex_reviewer)

    (identity,) = [o for o in served if o["type"] == "identity"]
    (indicator,) = [o for o in served if o["type"] == "indicator"]
    assert indicator["id"] == indicator_id(entry)
    assert indicator["id"] == "indicator--" + str(
        uuid.uuid5(stix.STIX_NAMESPACE, f"sha256:{entry.value}")
    )
    assert indicator["pattern"] == f"[file:hashes.'SHA-256' = '{entry.value}']"
    assert indicator["pattern_type"] == "stix"
    assert indicator["labels"] == ["attack-footage"]
    assert indicator["revoked"] is False
    assert indicator["created_by_ref"] == identity["id"]
    assert identity["id"] == stix.identity_id(hub="hub.test.concordat", slug="acme")
    options = ValidationOptions(version="2.1")
    for document in served:
        assert validate_instance(document, options).errors == []
    bundle = stix2.parse({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": served})
    assert len(bundle.objects) == 2


@pytest.mark.parametrize(
    ("signal_type", "value", "pattern"),
    [
        ("md5", "d41d8cd98f00b204e9800998ecf8427e", "[file:hashes.MD5 = '{}']"),
        ("pdq", "f" * 64, "[file:hashes.x_pdq = '{}']"),
    ],
)
def test_each_signal_type_has_its_pattern(
    trusted_acme, globex_reviewer, signal_type, value, pattern
):
    submit_entry(trusted_acme, signal={"type": signal_type, "value": value})

    (indicator,) = objects(globex_reviewer, **{"match[type]": "indicator"})

    assert indicator["pattern"] == pattern.format(value)
    assert validate_instance(indicator, ValidationOptions(version="2.1")).errors == []


def test_a_retraction_makes_a_revoked_version(trusted_acme, globex_reviewer):
    entry = submit_entry(trusted_acme)
    (first,) = objects(globex_reviewer, **{"match[type]": "indicator"})

    assert retract(trusted_acme, entry).status_code == 201

    (last,) = objects(globex_reviewer, **{"match[type]": "indicator"})
    assert last["id"] == first["id"]
    assert last["revoked"] is True and first["revoked"] is False
    assert last["modified"] > first["modified"]
    assert last["created"] == first["created"]
    every = objects(globex_reviewer, **{"match[type]": "indicator", "match[version]": "all"})
    assert [o["revoked"] for o in every] == [False, True]
    (oldest,) = objects(globex_reviewer, **{"match[type]": "indicator", "match[version]": "first"})
    assert oldest == first
    by_time = objects(globex_reviewer, **{"match[version]": first["modified"]})
    assert by_time == [first]
    versions = get(
        globex_reviewer, f"{ROOT}collections/{ALL_COLLECTION}/objects/{first['id']}/versions/"
    ).json()
    assert versions == {"more": False, "versions": [first["modified"], last["modified"]]}


def test_a_dispute_is_a_labelled_version_and_a_rejection_after_it_revokes(
    trusted_acme, globex_reviewer, consortium_admin
):
    set_policy(dispute_threshold=1)
    entry = submit_entry(trusted_acme)
    assert feedback(globex_reviewer, entry, "false_positive").status_code == 200

    (disputed,) = objects(globex_reviewer, **{"match[type]": "indicator"})
    assert stix.DISPUTED_LABEL in disputed["labels"]
    assert disputed["revoked"] is False

    response = consortium_admin.client.post(
        f"/api/v1/entries/{entry.pk}/resolve/",
        {"outcome": "reject", "reason": "not what it claims"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    versions = objects(globex_reviewer, **{"match[type]": "indicator", "match[version]": "all"})
    assert [(stix.DISPUTED_LABEL in v.get("labels", []), v["revoked"]) for v in versions] == [
        (False, False),
        (True, False),
        (True, True),
    ]


def test_a_signal_shared_again_after_revocation_is_a_new_object(trusted_acme, globex_reviewer):
    entry = submit_entry(trusted_acme)
    retract(trusted_acme, entry)
    assert (
        trusted_acme.submit(signal={"type": entry.signal_type, "value": entry.value}).status_code
        == 201
    )

    served = objects(globex_reviewer, **{"match[type]": "indicator"})

    assert {(o["id"], o["revoked"]) for o in served} == {
        (indicator_id(entry), True),
        (indicator_id(entry, 1), False),
    }


def test_pages_inside_a_run_of_equal_date_added_lose_and_repeat_nothing(
    trusted_acme, globex_reviewer
):
    entries = [submit_entry(trusted_acme) for _ in range(7)]
    stix_versions_sequence()  # one batch: every version gets the same date_added
    assert StixObjectVersion.objects.values("date_added").distinct().count() == 1
    seen, params = [], {"limit": 3}
    while True:
        response = get(globex_reviewer, OBJECTS, params)
        body = response.json()
        seen += [o["id"] for o in body.get("objects", [])]
        assert response["X-TAXII-Date-Added-First"] <= response["X-TAXII-Date-Added-Last"]
        if not body["more"]:
            assert "next" not in body
            break
        assert len(body["objects"]) == 3
        params = {"limit": 3, "next": body["next"]}
    assert sorted(seen) == sorted(
        [indicator_id(e) for e in entries]
        + [stix.identity_id(hub="hub.test.concordat", slug="acme")]
    )
    assert len(seen) == len(set(seen))
    # added_after is strictly exclusive: the run's own date_added excludes the whole run.
    last = response["X-TAXII-Date-Added-Last"]
    assert objects(globex_reviewer, added_after=last) == []
    later = submit_entry(trusted_acme)
    assert [o["id"] for o in objects(globex_reviewer, added_after=last)] == [indicator_id(later)]


def test_a_version_committed_later_is_always_added_after_every_version_served(
    trusted_acme, globex_reviewer
):
    submit_entry(trusted_acme)
    first = get(globex_reviewer, OBJECTS)
    entry = submit_entry(trusted_acme)
    page = objects(globex_reviewer, added_after=first["X-TAXII-Date-Added-Last"])
    assert [o["id"] for o in page] == [indicator_id(entry)]


def test_collections_filter_by_signal_type_and_incident(trusted_acme, globex_reviewer):
    incident = incident_declare(name="Live attack", actor=Actor.system("test"))
    tagged = submit_entry(
        trusted_acme, incident=str(incident.pk), signal={"type": "md5", "value": random_hex(32)}
    )
    plain = submit_entry(trusted_acme)

    def indicators(collection):
        url = f"{ROOT}collections/{collection}/objects/"
        return {o["id"] for o in objects(globex_reviewer, url, **{"match[type]": "indicator"})}

    assert indicators(incident.pk) == {indicator_id(tagged)}
    assert indicators(stix.collection_id("signal-type:md5")) == {indicator_id(tagged)}
    assert indicators(stix.collection_id("signal-type:pdq")) == {indicator_id(plain)}
    (document,) = objects(globex_reviewer, **{"match[id]": indicator_id(tagged)})
    assert f"{stix.INCIDENT_LABEL_PREFIX}{incident.pk}" in document["labels"]


def test_the_manifest_and_a_single_object(trusted_acme, globex_reviewer):
    entry = submit_entry(trusted_acme)
    manifest = get(globex_reviewer, f"{ROOT}collections/{ALL_COLLECTION}/manifest/").json()
    record = next(o for o in manifest["objects"] if o["id"] == indicator_id(entry))
    assert record["media_type"] == "application/stix+json;version=2.1"
    one = get(globex_reviewer, f"{OBJECTS}{indicator_id(entry)}/").json()
    assert [o["id"] for o in one["objects"]] == [indicator_id(entry)]
    assert one["objects"][0]["modified"] == record["version"]
    missing = get(globex_reviewer, f"{OBJECTS}indicator--{uuid.uuid4()}/")
    assert missing.status_code == 404
    assert missing.json()["http_status"] == "404"


def test_basic_authentication_takes_the_token_as_password(globex_reviewer, anonymous):
    basic = base64.b64encode(f"anyone:{globex_reviewer.token}".encode()).decode()
    response = anonymous.get(
        f"{ROOT}collections/", HTTP_AUTHORIZATION=f"Basic {basic}", HTTP_ACCEPT=TAXII
    )
    assert response.status_code == 200
    wrong = base64.b64encode(b"anyone:cc_nope_nope").decode()
    response = anonymous.get(ROOT, HTTP_AUTHORIZATION=f"Basic {wrong}", HTTP_ACCEPT=TAXII)
    assert response.status_code == 401
    assert response["Content-Type"] == TAXII
    assert "Basic" in response["WWW-Authenticate"]
    assert response.json()["http_status"] == "401"


def test_errors_are_taxii_error_objects_with_the_taxii_content_type(
    globex_reviewer, auditor, anonymous
):
    cases = [
        (anonymous.get(ROOT, HTTP_ACCEPT=TAXII), 401),
        (auditor.client.get(ROOT, HTTP_ACCEPT=TAXII), 403),  # no read scope
        (globex_reviewer.client.get(ROOT, HTTP_ACCEPT="application/json"), 406),
        (globex_reviewer.client.get(ROOT, HTTP_ACCEPT="application/taxii+json;version=2.0"), 406),
        (globex_reviewer.client.post(OBJECTS, {}, format="json", HTTP_ACCEPT=TAXII), 403),
        (globex_reviewer.client.delete(f"{OBJECTS}indicator--{uuid.uuid4()}/"), 403),
        (globex_reviewer.client.put(OBJECTS, {}, format="json"), 405),
        (globex_reviewer.client.options(OBJECTS), 405),
        (globex_reviewer.client.get(f"{ROOT}status/{uuid.uuid4()}/"), 404),
        (globex_reviewer.client.get("/taxii2/nowhere/"), 404),
        (globex_reviewer.client.get(f"{ROOT}collections/{uuid.uuid4()}/objects/"), 404),
        (globex_reviewer.client.get(OBJECTS, {"next": "forged"}), 400),
        (globex_reviewer.client.get(OBJECTS, {"added_after": "yesterday"}), 400),
        (globex_reviewer.client.get(OBJECTS, {"limit": "0"}), 400),
        (globex_reviewer.client.get(OBJECTS, {"match[colour]": "red"}), 400),
        # Refused before any view runs: the project's error handlers answer for TAXII too.
        (globex_reviewer.client.get(ROOT, HTTP_HOST="not-this-hub.example"), 400),
    ]
    for response, status in cases:
        assert response.status_code == status, (response.status_code, response.content)
        assert response["Content-Type"] == TAXII
        body = response.json()
        assert body["http_status"] == str(status) and body["title"] and body["error_code"]


def test_accept_negotiation_admits_taxii_21_and_wildcards(globex_reviewer):
    for accept in ["application/taxii+json;version=2.1", "application/taxii+json", "*/*", ""]:
        assert globex_reviewer.client.get(ROOT, HTTP_ACCEPT=accept).status_code == 200, accept


def test_a_limit_above_the_maximum_is_capped(trusted_acme, globex_reviewer):
    submit_entry(trusted_acme)
    response = get(globex_reviewer, OBJECTS, {"limit": "1000000"})
    assert response.status_code == 200
    assert response.json()["more"] is False


def test_other_types_and_spec_versions_match_nothing(trusted_acme, globex_reviewer):
    submit_entry(trusted_acme)
    assert objects(globex_reviewer, **{"match[type]": "malware"}) == []
    assert objects(globex_reviewer, **{"match[spec_version]": "2.0"}) == []
    assert len(objects(globex_reviewer, **{"match[spec_version]": "2.1"})) == 2


def test_a_backlog_is_numbered_a_bounded_part_per_read_and_nothing_is_lost(
    trusted_acme, globex_reviewer, monkeypatch
):
    monkeypatch.setattr(api, "SEQUENCE_BATCH_SIZE", 2)
    monkeypatch.setattr(api, "SEQUENCE_BATCHES_PER_READ", 1)
    entries = [submit_entry(trusted_acme) for _ in range(5)]

    response = get(globex_reviewer, OBJECTS, {"match[type]": "indicator"})
    assert len(response.json()["objects"]) == 2  # one batch of two numbered by this read
    assert StixObjectVersion.objects.filter(date_added__isnull=True).count() == 3
    seen = [o["id"] for o in response.json()["objects"]]
    last_added = response["X-TAXII-Date-Added-Last"]
    for _ in range(3):  # each read numbers the next two, after everything served before
        response = get(
            globex_reviewer, OBJECTS, {"match[type]": "indicator", "added_after": last_added}
        )
        seen += [o["id"] for o in response.json().get("objects", [])]
        last_added = response.get("X-TAXII-Date-Added-Last", last_added)
    assert sorted(seen) == sorted(indicator_id(e) for e in entries)
