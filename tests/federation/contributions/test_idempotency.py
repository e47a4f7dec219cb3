"""Same UUID + same bytes is one contribution; same UUID + other bytes is a 409, also under races."""

import pytest
from django.db import connection

from federation.contributions.models import Contribution, Label
from federation.contributions.storage import CREATED, DUPLICATE, REJECTED
from federation.transparency.models import AuditEvent
from tests.support.races import race_behind_an_uncommitted_insert, submit_at_once


@pytest.mark.django_db
def test_same_uuid_with_other_bytes_is_a_409_conflict_with_evidence(acme_submitter):
    signed = acme_submitter.signed()
    assert (
        acme_submitter.client.post("/api/v1/contributions/", signed, format="json").status_code
        == 201
    )
    other = acme_submitter.signed(uuid=signed["contribution"]["uuid"])
    response = acme_submitter.client.post("/api/v1/contributions/", other, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "uuid_conflict"
    event = AuditEvent.objects.get(action="contribution.rejected")
    assert event.data["code"] == "uuid_conflict"
    assert event.data["existing_content_hash"] == Contribution.objects.get().content_hash
    assert event.data["content_hash"] != event.data["existing_content_hash"]


@pytest.mark.django_db
def test_another_member_reusing_a_uuid_gets_a_conflict(acme_submitter, globex_submitter):
    uuid = acme_submitter.submit().json()["uuid"]
    response = globex_submitter.submit(uuid=uuid)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "uuid_conflict"


@pytest.fixture
def taxonomy(db):
    """Transactional tests flush the tables, seeded labels included; put back the one we use."""
    Label.objects.get_or_create(
        slug="attack-footage", defaults={"name": "Attack footage", "description": "test"}
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("attempt", range(3))
def test_concurrent_submissions_of_the_same_bytes_store_one(acme_submitter, taxonomy, attempt):
    signed = acme_submitter.signed()
    outcomes = submit_at_once(acme_submitter.actor, [[signed]] * 4)
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    statuses = sorted(result.status for (result,) in outcomes)
    assert statuses == [CREATED, DUPLICATE, DUPLICATE, DUPLICATE]
    assert Contribution.objects.count() == 1
    assert AuditEvent.objects.filter(action="contribution.accepted").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_submissions_of_other_bytes_under_one_uuid_store_one_and_conflict(
    acme_submitter, taxonomy
):
    first = acme_submitter.signed()
    second = acme_submitter.signed(uuid=first["contribution"]["uuid"])
    outcomes = submit_at_once(acme_submitter.actor, [[first], [second]])
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    results = sorted((result.status, (result.error or {}).get("code")) for (result,) in outcomes)
    assert results == [(CREATED, None), (REJECTED, "uuid_conflict")]
    assert Contribution.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_overlapping_bulks_in_opposite_orders_never_fail(acme_submitter, taxonomy):
    shared = [acme_submitter.signed() for _ in range(50)]
    own = [[acme_submitter.signed() for _ in range(20)] for _ in range(2)]
    outcomes = submit_at_once(
        acme_submitter.actor, [shared + own[0], list(reversed(shared)) + own[1]]
    )
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    for results in outcomes:
        assert [r.index for r in results] == list(range(70))
        assert {r.status for r in results} <= {CREATED, DUPLICATE}
    assert Contribution.objects.count() == 90


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="two concurrent writers (SQLite serialises them)"
)
@pytest.mark.django_db(transaction=True)
def test_losing_the_race_on_the_unique_uuid_is_retried_and_answered_as_duplicate(
    acme_submitter, taxonomy, caplog
):
    """B checks for existing rows before A commits, so B's insert hits A's row on the unique index:
    the retry loop must turn that IntegrityError into a duplicate."""

    signed = acme_submitter.signed()
    with caplog.at_level("INFO", logger="federation.db.retry"):
        outcomes = race_behind_an_uncommitted_insert(
            acme_submitter.actor, first=[signed], second=[signed]
        )
    assert outcomes["a"][0].status == CREATED
    assert not isinstance(outcomes["b"], Exception), outcomes["b"]
    assert outcomes["b"][0].status == DUPLICATE
    assert outcomes["b"][0].entry_id == outcomes["a"][0].entry_id
    assert "raced a concurrent writer" in caplog.text
    assert AuditEvent.objects.filter(action="contribution.accepted").count() == 1
