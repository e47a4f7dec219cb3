"""Named parties for every test: ACME (the submitter's organisation), Globex (another member),
the hub's consortium admin and auditor, and an anonymous client."""

import contextlib
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from federation.hubkey import generate_key_file
from members.models import Role, StaffRoleName
from tests.support.parties import make_member, make_organisation, make_staff


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Among the transactional tests (which pytest-django runs after the others), those with
    ``serialized_rollback`` run first. They restore the database as migrations left it, content
    types included, which fails with a duplicate content type after a transactional test without
    it: that one's flush lets Django create the content types again, under new ids. Stable: the
    order is otherwise pytest-django's, whatever files or tests are asked for."""

    def rank(item: pytest.Item) -> int | None:
        marker = item.get_closest_marker("django_db")
        kwargs = marker.kwargs if marker else {}
        fixtures = getattr(item, "fixturenames", [])
        transactional = kwargs.get("transaction") or kwargs.get("reset_sequences")
        if not (transactional or "transactional_db" in fixtures or "live_server" in fixtures):
            return None
        return 0 if kwargs.get("serialized_rollback") else 1

    places = [(index, rank(item)) for index, item in enumerate(items)]
    places = [(index, order) for index, order in places if order is not None]
    moved = [items[index] for index, _ in sorted(places, key=lambda place: place[1])]
    for (index, _), item in zip(places, moved, strict=True):
        items[index] = item


@pytest.fixture(scope="session", autouse=True)
def hub_key():
    path = Path(settings.HUB_KEY_PATH)
    with contextlib.suppress(FileExistsError):  # made by an earlier run or another xdist worker
        generate_key_file(path)
    with contextlib.suppress(FileExistsError):
        generate_key_file(Path(settings.WITNESS_KEY_PATH))
    return path


@pytest.fixture
def acme(db):
    return make_organisation("acme")


@pytest.fixture
def globex(db):
    return make_organisation("globex")


@pytest.fixture
def acme_submitter(acme):
    return make_member("alice", acme, Role.SUBMITTER)


@pytest.fixture
def acme_reviewer(acme):
    return make_member("arthur", acme, Role.REVIEWER, with_key=False)


@pytest.fixture
def acme_admin(acme):
    return make_member("ada", acme, Role.MEMBER_ADMIN)


@pytest.fixture
def globex_submitter(globex):
    return make_member("gina", globex, Role.SUBMITTER)


@pytest.fixture
def globex_reviewer(globex):
    return make_member("gus", globex, Role.REVIEWER, with_key=False)


@pytest.fixture
def globex_admin(globex):
    return make_member("grace", globex, Role.MEMBER_ADMIN)


@pytest.fixture
def consortium_admin(db):
    return make_staff("connie", StaffRoleName.CONSORTIUM_ADMIN)


@pytest.fixture
def auditor(db):
    return make_staff("otto", StaffRoleName.AUDITOR)


@pytest.fixture
def anonymous():
    return APIClient()


@pytest.fixture(autouse=True)
def fresh_match_index():
    """The match index is per process: each test loads its own from its own database state."""
    from federation.matching.store import reset_match_store

    reset_match_store()
    yield
    reset_match_store()
