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
