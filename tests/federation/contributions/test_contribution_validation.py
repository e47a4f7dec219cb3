"""What the hub checks in a contribution before storing it, and how it answers."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from federation.contributions.models import Contribution
from federation.signing import format_timestamp
from federation.transparency.models import AuditEvent
from members.actors import Actor
from members.services import signing_key_revoke
from tests.support.parties import random_hex

pytestmark = pytest.mark.django_db


def _rejected(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.json()
    error = response.json()["error"]
    assert error["code"] == code
    assert set(error) == {"code", "message", "details"}
    assert not Contribution.objects.exists()
    return error


@pytest.mark.parametrize(
    ("signal_type", "value"),
    [
        ("pdq", "a" * 63),
        ("pdq", "g" * 64),
        ("md5", "a" * 64),
        ("md5", "a" * 31),
        ("sha256", "a" * 32),
        ("sha256", " " + "a" * 63),
        ("sha1", "a" * 40),
        ("pdq", 12345),
    ],
)
def test_signal_values_are_validated_per_type(acme_submitter, signal_type, value):
    response = acme_submitter.submit(signal={"type": signal_type, "value": value})
    error = _rejected(response, 400, "invalid")
    assert error["details"] == {"field": "signal"}


@pytest.mark.parametrize(("signal_type", "length"), [("pdq", 64), ("md5", 32), ("sha256", 64)])
def test_each_signal_type_accepts_its_length_in_upper_case_and_stores_lower(
    acme_submitter, signal_type, length
):
    value = random_hex(length).upper()
    response = acme_submitter.submit(signal={"type": signal_type, "value": value})
    assert response.status_code == 201, response.json()
    assert Contribution.objects.get().entry.value == value.lower()


def test_label_outside_the_taxonomy_is_refused(acme_submitter):
    error = _rejected(acme_submitter.submit(labels=["not-a-label"]), 400, "unknown_label")
    assert error["details"] == {"field": "labels"}


def test_unknown_field_is_refused_because_nothing_unsigned_is_accepted(acme_submitter):
    document = acme_submitter.contribution()
    document["extra"] = "x"
    _rejected(acme_submitter.submit(document), 400, "invalid")


@pytest.mark.parametrize("offset", [timedelta(minutes=10), timedelta(days=8)])
def test_created_at_outside_the_clock_skew_window_is_refused(acme_submitter, offset):
    # Ten minutes ahead is beyond the 300 s skew; eight days back is beyond the seven-day age.
    sign = 1 if offset < timedelta(days=1) else -1
    moment = datetime.now(UTC).replace(microsecond=0) + sign * offset
    acme_submitter.signing_key.not_before = moment - timedelta(days=30)
    acme_submitter.signing_key.save()
    response = acme_submitter.submit(created_at=format_timestamp(moment))
    _rejected(response, 400, "clock_skew")


def test_created_at_just_inside_the_skew_is_accepted(acme_submitter):
    moment = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=200)
    assert acme_submitter.submit(created_at=format_timestamp(moment)).status_code == 201


def test_unknown_key_is_refused_and_audited(acme_submitter):
    _rejected(acme_submitter.submit(key_id="0" * 32), 400, "unknown_key")
    assert AuditEvent.objects.get(action="contribution.rejected").data["code"] == "unknown_key"


def test_key_of_another_member_is_unknown_to_this_member(acme_submitter, globex_submitter):
    response = acme_submitter.submit(key_id=globex_submitter.signing_key.key_id)
    _rejected(response, 400, "unknown_key")


def test_contribution_for_another_member_is_refused(acme_submitter):
    _rejected(acme_submitter.submit(member="globex"), 403, "member_mismatch")


def test_contribution_for_another_hub_is_refused(acme_submitter):
    _rejected(acme_submitter.submit(hub="elsewhere.example"), 400, "wrong_hub")


def test_revoked_key_is_refused_and_audited(acme_submitter):
    signing_key_revoke(
        key=acme_submitter.signing_key,
        reason="laptop stolen",
        actor=Actor.system("t"),
    )
    _rejected(acme_submitter.submit(), 400, "key_not_active")
    event = AuditEvent.objects.get(action="contribution.rejected")
    assert event.data["code"] == "key_not_active"
    assert event.data["key_id"] == acme_submitter.signing_key.key_id


def test_signature_dated_before_the_key_was_valid_is_refused(acme_submitter):
    key = acme_submitter.signing_key
    key.not_before = timezone.now() + timedelta(minutes=1)
    key.save()
    _rejected(acme_submitter.submit(), 400, "key_not_active")


def _revoke_from(party, effective_at):
    party.signing_key.not_before = effective_at - timedelta(days=1)
    party.signing_key.save()
    signing_key_revoke(
        key=party.signing_key,
        reason="compromised",
        effective_at=effective_at,
        actor=Actor.system("t"),
    )


def test_a_revoked_key_signs_nothing_new_even_when_dated_before_its_revocation(acme_submitter):
    # The key must be valid now as well as at created_at: once revoked, nothing it signs is new.
    moment = datetime.now(UTC).replace(microsecond=0)
    _revoke_from(acme_submitter, moment - timedelta(days=1))
    before = format_timestamp(moment - timedelta(days=1, hours=1))
    _rejected(acme_submitter.submit(created_at=before), 400, "key_not_active")


def test_signature_dated_after_the_revocation_time_is_refused(acme_submitter):
    moment = datetime.now(UTC).replace(microsecond=0)
    _revoke_from(acme_submitter, moment - timedelta(hours=1))
    after = format_timestamp(moment - timedelta(minutes=30))
    _rejected(acme_submitter.submit(created_at=after), 400, "key_not_active")


def test_bad_signature_rejection_records_the_evidence(acme_submitter):
    signed = acme_submitter.signed()
    signed["contribution"]["labels"] = ["terrorist-content"]
    response = acme_submitter.client.post("/api/v1/contributions/", signed, format="json")
    _rejected(response, 400, "bad_signature")
    event = AuditEvent.objects.get(action="contribution.rejected")
    assert event.data["signature"] == signed["signature"]
    assert event.data["key_id"] == acme_submitter.signing_key.key_id
    assert '"terrorist-content"' in event.data["canonical"]
    assert event.actor_id.startswith("cc_")


def test_add_without_labels_and_retract_with_labels_are_invalid(acme_submitter):
    _rejected(acme_submitter.submit(labels=[]), 400, "invalid")
    _rejected(acme_submitter.submit(action="retract"), 400, "invalid")


@pytest.mark.parametrize("name", ["x\u0000", "y" * 100_000])
def test_unknown_field_names_are_reported_safely_and_never_break_a_bulk(acme_submitter, name):
    from federation.contributions.models import Contribution
    from federation.transparency.models import AuditEvent

    bad = acme_submitter.contribution()
    bad[name] = 1
    single = acme_submitter.client.post(
        "/api/v1/contributions/", acme_submitter.signed(bad), format="json"
    )
    assert single.status_code == 400
    error = single.json()["error"]
    assert error["details"]["field"] == "contribution"
    # The name is quoted bounded and escaped: no NUL, no 100,000 characters echoed back.
    assert "unknown field" in error["message"]
    assert len(error["message"]) < 200 and "\u0000" not in error["message"]
    good = acme_submitter.signed()
    bulk = acme_submitter.client.post(
        "/api/v1/contributions/bulk/",
        {"items": [acme_submitter.signed(bad), good]},
        format="json",
    )
    assert bulk.status_code == 200
    body = bulk.json()
    assert body["created"] == 1 and body["rejected"] == 1
    rejected = next(item for item in body["results"] if item["status"] == "rejected")
    assert rejected["index"] == 0 and rejected["error"]["details"]["field"] == "contribution"
    assert Contribution.objects.filter(uuid=good["contribution"]["uuid"]).exists()
    # Single and bulk: each request records its malformed item once, in one summary event.
    summaries = AuditEvent.objects.filter(action="contribution.malformed_items")
    assert [e.data["reasons"][0]["field"] for e in summaries] == ["contribution", "contribution"]
    assert all(len(e.data["reasons"][0]["message"]) < 200 for e in summaries)
