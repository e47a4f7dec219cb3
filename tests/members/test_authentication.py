"""Who is let in: bearer tokens, suspended organisations, deactivated users, hub staff."""

from datetime import timedelta
from unittest import mock

import pytest
from django.core.exceptions import ObjectDoesNotExist
from django.db import connection
from django.db.models.sql.compiler import SQLCompiler
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from members.authentication import credential_with_holder, split_token
from members.models import ApiCredential, Organisation
from members.principals import ROLE_CAPABILITIES

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/entries/"),
        ("get", "/api/v1/contributions/"),
        ("get", "/api/v1/keys/"),
        ("get", "/api/v1/credentials/"),
        ("get", "/api/v1/memberships/"),
        ("post", "/api/v1/contributions/bulk/"),
    ],
)
def test_suspended_organisations_credentials_can_do_nothing(acme_admin, method, path):
    Organisation.objects.filter(pk=acme_admin.organisation.pk).update(status="suspended")
    response = getattr(acme_admin.client, method)(
        path, {"items": [acme_admin.signed()]}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_suspended_submitter_cannot_submit(acme_submitter):
    Organisation.objects.filter(pk=acme_submitter.organisation.pk).update(status="suspended")
    assert acme_submitter.submit().status_code == 403


def test_deactivated_holder_is_refused(acme_submitter):
    acme_submitter.user.is_active = False
    acme_submitter.user.save()
    assert acme_submitter.client.get("/api/v1/entries/").status_code == 401


def test_token_with_a_wrong_secret_is_refused(acme_submitter):
    acme_submitter.client.credentials(HTTP_AUTHORIZATION=f"Bearer {acme_submitter.token}x")
    response = acme_submitter.client.get("/api/v1/entries/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_auditor_cannot_submit_or_manage(auditor, acme_submitter):
    assert auditor.client.get("/api/v1/keys/").status_code == 403
    response = auditor.client.post("/api/v1/contributions/", acme_submitter.signed(), format="json")
    assert response.status_code == 403


def test_role_capabilities_are_as_documented():
    assert ROLE_CAPABILITIES["submitter"] == {"read", "submit"}
    assert ROLE_CAPABILITIES["reviewer"] == {"read", "review"}
    assert ROLE_CAPABILITIES["member-admin"] == {"read", "submit", "review", "manage"}
    assert ROLE_CAPABILITIES["consortium-admin"] == {"read", "audit", "hub-admin", "metrics"}
    assert ROLE_CAPABILITIES["auditor"] == {"audit"}


def test_a_request_reads_its_credential_in_one_statement_without_sort_or_limit(acme_submitter):
    """The prefix is unique: nothing to order or limit (each adds to what PostgreSQL plans).
    On PostgreSQL the statement is prepared once per session, and each request executes it."""
    acme_submitter.client.get("/api/v1/entries/")  # last_used_at recorded
    with CaptureQueriesContext(connection) as queries:
        assert acme_submitter.client.get("/api/v1/entries/").status_code == 200

    if connection.vendor == "postgresql":
        (execute,) = [q["sql"] for q in queries.captured_queries if "credential" in q["sql"]]
        assert execute.startswith("EXECUTE concordat_credential_by_prefix (")
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT statement FROM pg_prepared_statements "
                "WHERE name = 'concordat_credential_by_prefix'"
            )
            ((lookup,),) = cursor.fetchall()
    else:
        (lookup,) = [q["sql"] for q in queries.captured_queries if "apicredential" in q["sql"]]
    assert "members_apicredential" in lookup
    assert "ORDER BY" not in lookup and "LIMIT" not in lookup


def _loaded(instance, seen=()) -> dict | str | None:
    """A model instance's field values, and those of the relations loaded with it (a relation
    back to an instance already described: its model's name)."""
    if instance is None or instance in seen:
        return instance and instance._meta.label
    values = {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}
    cached = instance._state.fields_cache
    relations = {name: _loaded(other, (*seen, instance)) for name, other in cached.items()}
    return {**values, **relations}


@pytest.mark.parametrize("party", ["acme_submitter", "auditor"])
def test_the_credential_read_loads_what_its_queryset_loads(party, request):
    """A member's credential (holder, membership, organisations) and a staff member's (no
    membership, a staff role): the same values and the same relations loaded."""
    holder = request.getfixturevalue(party)
    prefix, _secret = split_token(holder.token)
    queryset = ApiCredential.objects.select_related(
        "holder", "organisation", "holder__membership__organisation", "holder__staff_role"
    ).filter(prefix=prefix)

    credential = credential_with_holder(prefix)

    assert _loaded(credential) == _loaded(queryset.get())
    with CaptureQueriesContext(connection) as queries:
        if party == "auditor":
            with pytest.raises(ObjectDoesNotExist):
                credential.holder.membership  # noqa: B018 (loaded as absent: no read)
        else:
            assert credential.holder.membership.organisation == holder.organisation
    assert queries.captured_queries == []
    assert credential_with_holder("no-such-prefix") is None


def test_a_request_compiles_no_sql_to_read_its_credential(acme_submitter):
    """The credential's statement is compiled once per connection, not on every request (it
    was about 0.4 ms of the 1.3 ms of CPU a worker spent on an empty delta page)."""
    acme_submitter.client.get("/api/v1/entries/")
    compiled = []
    original = SQLCompiler.as_sql

    def recording(compiler, *args, **kwargs):
        compiled.append(compiler.query.model)
        return original(compiler, *args, **kwargs)

    with mock.patch.object(SQLCompiler, "as_sql", recording):
        assert acme_submitter.client.get("/api/v1/entries/").status_code == 200
    assert compiled and ApiCredential not in compiled


@pytest.mark.django_db(transaction=True)
def test_last_used_at_is_recorded_without_waiting_for_the_disk(acme_submitter):
    """Once a minute per credential a request records when it was used; that commit does not
    wait for its WAL flush, and the setting ends with the statement."""
    credential = ApiCredential.objects.filter(holder=acme_submitter.user)
    credential.update(last_used_at=timezone.now() - timedelta(minutes=5))

    with CaptureQueriesContext(connection) as queries:
        assert acme_submitter.client.get("/api/v1/entries/").status_code == 200

    (touch,) = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert "set_config('synchronous_commit', 'off', true)" in touch
    assert timezone.now() - credential.get().last_used_at < timedelta(seconds=10)
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone() == ("on",)
