"""Audit events are always written, whatever the length of the legal inputs they are derived from:
a value longer than its column is cut with a marker instead of failing the request with a 500."""

import json
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from federation.transparency.audit import (
    COLUMN_LIMITS,
    TRUNCATION_MARKER,
    AuditRecord,
    audit_record,
    audit_record_many,
    bounded,
)
from federation.transparency.models import AuditEvent
from members.actors import Actor, ActorKind
from members.models import ApiCredential, Membership, Organisation, Role, SigningKey
from members.services import credential_create

pytestmark = pytest.mark.django_db

User = get_user_model()
USERNAME_MAX = User._meta.get_field("username").max_length
CREDENTIAL_NAME_MAX = ApiCredential._meta.get_field("name").max_length
SLUG_MAX = Organisation._meta.get_field("slug").max_length
KEY_LABEL_MAX = SigningKey._meta.get_field("label").max_length

# Printable text without the characters display names refuse; usernames are ASCII word chars.
_name_text = st.characters(codec="utf-8", categories=["L", "N", "P", "Zs", "S"])
_username_text = st.characters(codec="ascii", categories=["L", "N"])


def _client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_every_text_column_of_an_audit_event_is_bounded():
    assert set(COLUMN_LIMITS) == {
        "action",
        "actor_type",
        "actor_id",
        "actor_label",
        "organisation",
        "object_type",
        "object_id",
    }


def test_a_value_longer_than_its_column_is_cut_with_the_marker():
    limit = COLUMN_LIMITS["actor_label"]
    cut = bounded("actor_label", "x" * (limit + 50))
    assert len(cut) == limit and cut.endswith(TRUNCATION_MARKER)
    assert bounded("actor_label", "x" * limit) == "x" * limit


@hypothesis_settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.fixed_dictionaries(
        {column: st.text(_name_text, max_size=3 * limit) for column, limit in COLUMN_LIMITS.items()}
    ),
    many=st.booleans(),
)
def test_audit_events_of_any_field_lengths_are_written_within_their_columns(values, many):
    record = AuditRecord(
        action=values["action"],
        actor=Actor(
            kind=ActorKind.SYSTEM,
            audit_type=values["actor_type"],
            id=values["actor_id"],
            label=values["actor_label"],
        ),
        organisation=values["organisation"],
        object_type=values["object_type"],
        object_id=values["object_id"],
    )
    with transaction.atomic():
        if many:
            audit_record_many([record])
            event = AuditEvent.objects.order_by("-pk").first()
        else:
            event = audit_record(record)
            event.refresh_from_db()
        for column, limit in COLUMN_LIMITS.items():
            stored = getattr(event, column)
            assert len(stored) <= limit
            if len(values[column]) <= limit:
                assert stored == values[column]
            else:
                assert stored.endswith(TRUNCATION_MARKER)
                assert values[column].startswith(stored.removesuffix(TRUNCATION_MARKER))
        transaction.set_rollback(True)


@hypothesis_settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    username=st.text(_username_text, min_size=USERNAME_MAX - 10, max_size=USERNAME_MAX),
    credential_name=st.text(
        _name_text, min_size=CREDENTIAL_NAME_MAX - 10, max_size=CREDENTIAL_NAME_MAX
    ).filter(str.strip),
    slug=st.from_regex(rf"[a-z][a-z0-9-]{{{SLUG_MAX - 1}}}", fullmatch=True),
    key_label=st.text(_name_text, min_size=KEY_LABEL_MAX, max_size=KEY_LABEL_MAX),
)
def test_requests_with_a_token_of_maximal_field_lengths_are_answered_and_audited(
    username, credential_name, slug, key_label
):
    with transaction.atomic():
        organisation = Organisation.objects.create(slug=slug, name="X" * 200)
        user = User.objects.create_user(username=username)
        Membership.objects.create(user=user, organisation=organisation, role=Role.MEMBER_ADMIN)
        issued = credential_create(
            holder=user,
            name=credential_name,
            scopes=["manage", "submit"],
            actor=Actor.system("test"),
        )
        client = _client(issued.token)
        before = AuditEvent.objects.count()
        # A rejection (bad signature) and a success (a key registered), both audited.
        rejected = client.post(
            "/api/v1/contributions/", {"contribution": {}, "signature": "AAAA"}, format="json"
        )
        assert 400 <= rejected.status_code < 500, rejected.content[:300]
        registered = client.post(
            "/api/v1/keys/",
            {"public_key": "11" * 31 + "0a", "label": key_label},
            format="json",
        )
        assert registered.status_code in (201, 400), registered.content[:300]
        events = list(AuditEvent.objects.order_by("pk")[before:])
        assert events, "the requests wrote no audit event"
        for event in events:
            assert event.actor_id == f"cc_{issued.credential.prefix}"
            assert len(event.actor_label) <= COLUMN_LIMITS["actor_label"]
            assert event.actor_label.startswith(username[:100])
        transaction.set_rollback(True)


@pytest.mark.parametrize("command, role", [("create_member", None), ("create_staff", "auditor")])
def test_cli_tokens_for_usernames_of_maximal_length_are_issued_and_work(command, role):
    username = "u" * USERNAME_MAX
    out = StringIO()
    if command == "create_member":
        call_command(
            command, org="acme", user=username, role=Role.MEMBER_ADMIN, token=True, stdout=out
        )
        path = "/api/v1/keys/"
    else:
        call_command(command, user=username, role=role, token=True, stdout=out)
        path = "/api/v1/log/entries?start=0&end=1"
    token = json.loads(out.getvalue())["token"]
    response = _client(token).get(path)
    # Authenticated (not 401), answered (not 500).
    assert response.status_code not in (401, 500), response.content[:300]
    assert response.status_code < 500, response.content[:300]
    created = AuditEvent.objects.filter(action="credential.created").last()
    assert created.data["holder"] == username
