"""Django's createsuperuser and changepassword are replaced by audited commands."""

import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from federation.transparency.models import AuditEvent
from members.models import StaffRole, StaffRoleName

pytestmark = pytest.mark.django_db


def answers(monkeypatch, *, typed: list[str], passwords: list[str]) -> None:
    typed, passwords = iter(typed), iter(passwords)
    monkeypatch.setattr("builtins.input", lambda prompt="": next(typed))
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(passwords))


def test_interactive_createsuperuser_makes_an_audited_consortium_admin(monkeypatch):
    answers(
        monkeypatch,
        typed=["root"],
        # a mismatch first (asked again), then the same password twice
        passwords=["first-long-passphrase", "a-typo"] + ["second-long-passphrase"] * 2,
    )
    call_command("createsuperuser", stdout=io.StringIO())
    user = get_user_model().objects.get(username="root")
    assert user.is_superuser and user.is_staff
    assert user.check_password("second-long-passphrase")
    assert StaffRole.objects.get(user=user).role == StaffRoleName.CONSORTIUM_ADMIN
    created = AuditEvent.objects.get(action="user.created", object_id="root")
    assert created.actor_type == "system" and created.actor_id == "cli"
    assert created.data["password_changed"] is True
    assert "second-long-passphrase" not in str(created.data)


def test_createsuperuser_refuses_a_weak_password_and_changes_nothing(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "123")
    with pytest.raises(CommandError):
        call_command("createsuperuser", "--noinput", "--username", "root", stdout=io.StringIO())
    assert not get_user_model().objects.filter(username="root").exists()
    assert not AuditEvent.objects.exists()


def test_changepassword_writes_its_event(monkeypatch, acme_submitter):
    answers(monkeypatch, typed=[], passwords=["new-long-passphrase"] * 2)
    call_command("changepassword", acme_submitter.user.username, stdout=io.StringIO())
    acme_submitter.user.refresh_from_db()
    assert acme_submitter.user.check_password("new-long-passphrase")
    event = AuditEvent.objects.filter(action="user.changed").latest("pk")
    assert event.object_id == acme_submitter.user.username
    assert event.data["password_changed"] is True


def test_create_staff_issues_a_token_with_only_the_scopes_asked_for():
    out = io.StringIO()
    call_command(
        "create_staff", "--user", "prometheus", "--role", "consortium-admin", "--token",
        "--scopes", "metrics", stdout=out,
    )  # fmt: skip
    token = json.loads(out.getvalue())["token"]
    client = APIClient(REMOTE_ADDR="192.0.2.10")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/metrics").status_code == 200
    assert client.get("/api/v1/log/status").status_code == 403  # audit: not asked for
    assert AuditEvent.objects.get(action="credential.created").data["scopes"] == ["metrics"]


def test_create_staff_refuses_a_scope_beyond_the_role_and_creates_nothing():
    with pytest.raises(CommandError, match="metrics"):
        call_command(
            "create_staff", "--user", "otto", "--role", "auditor", "--token", "--scopes", "metrics",
            stdout=io.StringIO(),
        )  # fmt: skip
    assert not get_user_model().objects.filter(username="otto").exists()
