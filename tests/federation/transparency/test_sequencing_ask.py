"""Events written in one transaction ask for sequencing once (an ask made in a savepoint released
since included), and an ask made inside a savepoint that rolls back does not stand for the
transaction's other events."""

import pytest
from django.db import connection, transaction

from federation.transparency.audit import AuditRecord, _request_sequencing, audit_record
from members.actors import Actor

pytestmark = pytest.mark.django_db(transaction=True)


def _record(object_id: str) -> AuditRecord:
    return AuditRecord(
        action="hub.settings_changed",
        actor=Actor.system("tests"),
        organisation="",
        object_type="hub",
        object_id=object_id,
        data={},
    )


@pytest.fixture
def sent(monkeypatch) -> list:
    """The sequencing asks sent once their transactions committed."""
    asks: list = []
    monkeypatch.setattr("federation.transparency.audit.nudge", asks.append)
    return asks


def _asks() -> int:
    return sum(callback is _request_sequencing for _, callback, _ in connection.run_on_commit)


def test_one_ask_per_transaction(sent):
    with transaction.atomic():
        for n in range(3):
            audit_record(_record(f"one-{n}"))
        assert _asks() == 1
    assert len(sent) == 1


def test_an_ask_of_a_released_savepoint_stands_for_the_transaction(sent):
    with transaction.atomic():
        with transaction.atomic():
            audit_record(_record("inner"))
        audit_record(_record("outer"))
        assert _asks() == 1
    assert len(sent) == 1


def test_an_ask_of_a_savepoint_rolled_back_after_release_is_made_again(sent):
    with transaction.atomic():
        try:
            with transaction.atomic():
                with transaction.atomic():
                    audit_record(_record("released, then rolled back with its parent"))
                audit_record(_record("gone too"))
                assert _asks() == 1
                raise RuntimeError("roll the outer savepoint back")
        except RuntimeError:
            pass
        assert _asks() == 0
        audit_record(_record("kept"))
        assert _asks() == 1
    assert len(sent) == 1


def test_an_ask_rolled_back_with_its_savepoint_is_made_again(sent):
    with transaction.atomic():
        try:
            with transaction.atomic():
                audit_record(_record("gone"))
                assert _asks() == 1
                raise RuntimeError("roll the savepoint back")
        except RuntimeError:
            pass
        assert _asks() == 0
        audit_record(_record("kept"))
        assert _asks() == 1
    assert len(sent) == 1
