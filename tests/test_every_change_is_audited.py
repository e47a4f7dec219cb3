"""Every state change made through a management command or the Django admin writes its audit event.

The test walks every management command of the project's apps and every admin action and change
form (add, change, delete, password) that a consortium admin is offered, runs each, and compares
every row of every model before and after: each row created, changed or deleted must be named by an
audit event written by that run (``object_type``/``object_id``). A new command, admin action or
model fails here until it is given a scenario (or a stated reason), so nothing can slip past the log.
"""

import io
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.management import call_command, get_commands
from django.db import connection
from django.test import Client, RequestFactory

from federation.contributions.models import Contribution, Entry, EntryLabel, Label
from federation.live.models import LiveFrame, LiveSession
from federation.lookup.models import LookupKey, LookupState, LookupTag, LookupUsage
from federation.propagation.models import KeyBinding, OutboxItem, PeerLink, PulledItem, Receipt
from federation.sync.models import EntryChange, SyncState
from federation.taxii.models import StixObjectVersion
from federation.transparency.models import (
    AuditEvent,
    Checkpoint,
    Cosignature,
    MerkleNode,
    SequencerStatus,
    SplitViewEvidence,
    Witness,
    WitnessedLog,
)
from federation.vetting.models import Decision, Feedback, Incident, VettingPolicy
from federation.video.models import VideoFrames
from members.models import ApiCredential, Membership, Organisation, Peer, SigningKey, StaffRole
from tests.support.parties import Party, make_organisation, signed_key_registration
from tests.support.vetting import approve, feedback, set_policy, submit_entry

User = get_user_model()

# --- What a change is, and which event names it --------------------------------------------------

# The log itself: written by the sequencer, and what the events are appended to.
# The log itself, and the sequencer's health row (the log's own bookkeeping, exposed by its status API).
# Witnesses' cosignatures on checkpoints are signed by the witnesses and are no events of their
# own: logging each would make a new checkpoint to cosign, for ever (docs/transparency.md).
LOG_MODELS = {AuditEvent, MerkleNode, Checkpoint, SequencerStatus, Cosignature}
# Derived streams: the member change stream is written by the lifecycle hook and ingest in the
# transaction of an audited change (its rows name entries, not actions of their own), and numbered
# or compacted by its sequencer (docs/sync.md).
# The delivery bookkeeping of a linked peer (last push, last pull, the pull cursor) is the
# federation's own progress record, written by the drain and the pull (docs/federation.md).
# The private lookup's table (its state and tags) is derived from the shared set and the current
# key by its refresh, and its usage counters are the rate limit's, reported in aggregate by
# lookup.usage events once each day is over (docs/private-lookup.md).
# A vpdq entry's stored frame list is a copy of the frames inside its first add's signed bytes
# (Contribution.canonical), written in that add's transaction, which contribution.accepted logs.
# A live session's frames are its evidence while it is open, deleted when it closes; the session
# is audited in aggregate (live.opened, live.alerted, live.closed), never frame by frame.
# TAXII's STIX versions are the same kind of derived stream: written by the lifecycle hook in the
# transaction of an audited state change, numbered and rendered by their sequencer
# (docs/taxii.md, "Versions").
DERIVED_MODELS = {
    EntryChange,
    SyncState,
    PeerLink,
    LookupState,
    LookupTag,
    LookupUsage,
    StixObjectVersion,
    VideoFrames,
    LiveFrame,
}
# Bookkeeping that is not a state change an auditor needs: when a user last signed in (the test
# client signs in before each run anyway) and when a token was last used.
IGNORED_FIELDS = {User: {"last_login"}, ApiCredential: {"last_used_at"}}


def _username(user_id, users) -> str:
    return users[user_id]["username"]


def _peer_hub(peer_id) -> str:
    return Peer.objects.values_list("hub_id", flat=True).get(pk=peer_id)


# model → (object_type, object_id) of the event that must name a changed row
IDENTITY: dict[type, Callable[[dict, dict], tuple[str, str]]] = {
    Organisation: lambda row, users: ("organisation", row["slug"]),
    User: lambda row, users: ("user", row["username"]),
    Membership: lambda row, users: ("user", _username(row["user_id"], users)),
    StaffRole: lambda row, users: ("user", _username(row["user_id"], users)),
    SigningKey: lambda row, users: ("signing_key", row["key_id"]),
    ApiCredential: lambda row, users: ("credential", f"cc_{row['prefix']}"),
    Label: lambda row, users: ("label", row["slug"]),
    Entry: lambda row, users: ("entry", str(row["id"])),
    EntryLabel: lambda row, users: ("entry", str(row["entry_id"])),
    Contribution: lambda row, users: ("contribution", str(row["uuid"])),
    Decision: lambda row, users: ("entry", str(row["entry_id"])),
    Feedback: lambda row, users: ("entry", str(row["entry_id"])),
    Incident: lambda row, users: ("incident", str(row["id"])),
    VettingPolicy: lambda row, users: ("vetting_policy", str(row["id"])),
    Peer: lambda row, users: ("peer", row["hub_id"]),
    OutboxItem: lambda row, users: ("peer", _peer_hub(row["peer_id"])),
    # Written with the feed page's federation.sent event, which names the peer.
    PulledItem: lambda row, users: ("peer", _peer_hub(row["peer_id"])),
    KeyBinding: lambda row, users: (
        "signing_key",
        SigningKey.objects.values_list("key_id", flat=True).get(pk=row["signing_key_id"]),
    ),
    Receipt: lambda row, users: (
        "contribution",
        str(Contribution.objects.values_list("uuid", flat=True).get(pk=row["contribution_id"])),
    ),
    WitnessedLog: lambda row, users: ("witnessed_log", row["origin"]),
    Witness: lambda row, users: ("witness", row["name"]),
    SplitViewEvidence: lambda row, users: ("witnessed_log", row["origin"]),
    LookupKey: lambda row, users: ("lookup_key", row["key_id"]),
    LiveSession: lambda row, users: ("live_session", str(row["id"])),
}


def test_every_model_is_either_tracked_or_the_log_itself():
    ours = {
        model
        for app in ("members", "federation")
        for model in apps.get_app_config(app).get_models()
    }
    assert ours | {User} == set(IDENTITY) | LOG_MODELS | DERIVED_MODELS


def snapshot() -> dict[type, dict]:
    state = {}
    for model in IDENTITY:
        ignored = IGNORED_FIELDS.get(model, set())
        fields = [f.attname for f in model._meta.concrete_fields if f.attname not in ignored]
        # An entry's label link is keyed by two columns, every other row by its id.
        key = [f.attname for f in model._meta.pk_fields]
        state[model] = {
            (row[key[0]] if len(key) == 1 else tuple(row[name] for name in key)): {
                k: bytes(v) if isinstance(v, memoryview) else v for k, v in row.items()
            }
            for row in model.objects.values(*fields)
        }
    return state


@dataclass
class Run:
    changed: set[tuple[str, str]]  # what the events must name
    logged: set[tuple[str, str]]  # what the new events name
    actions: list[str]


def run_and_compare(run: Callable[[], object]) -> Run:
    before = snapshot()
    last = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    run()
    after = snapshot()
    users = {**before[User], **after[User]}
    changed = set()
    for model, identity in IDENTITY.items():
        old, new = before[model], after[model]
        for pk in old.keys() | new.keys():
            if old.get(pk) != new.get(pk):
                changed.add(identity(new.get(pk) or old[pk], users))
    events = list(AuditEvent.objects.filter(pk__gt=last))
    return Run(
        changed=changed,
        logged={(e.object_type, e.object_id) for e in events},
        actions=sorted({e.action for e in events}),
    )


def assert_audited(run: Callable[[], object]) -> Run:
    result = run_and_compare(run)
    assert result.changed, "the scenario changed nothing, so it checks nothing"
    missing = result.changed - result.logged
    assert not missing, f"changed without an audit event: {sorted(missing)}"
    return result


# --- Management commands --------------------------------------------------------------------------


def command(*args: str) -> Callable[[], None]:
    return lambda: call_command(*args, stdout=io.StringIO())


def signing_key_pem_file() -> Path:
    """A new member's private key in a PEM file: create_member signs the key's registration."""
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = Path(tempfile.mkdtemp(prefix="concordat-audit-walk-")) / "member-key.pem"
    path.write_bytes(pem)
    return path


COMMAND_SCENARIOS: dict[str, list[Callable[..., tuple[Callable, set[str]]]]] = {}


def scenario(table: dict, key):
    def register(function):
        table.setdefault(key, []).append(function)
        return function

    return register


@scenario(COMMAND_SCENARIOS, "create_member")
def new_member_with_everything(ctx):
    run = command(
        "create_member", "--org", "initech", "--org-name", "Initech", "--trusted",
        "--user", "ivan", "--password", "a-long-passphrase", "--role", "member-admin",
        "--signing-key", str(signing_key_pem_file()), "--token",
    )  # fmt: skip
    return run, {
        "organisation.created",
        "user.created",
        "role.changed",
        "key.registered",
        "credential.created",
    }


@scenario(COMMAND_SCENARIOS, "createsuperuser")
def django_createsuperuser_is_the_audited_one(ctx):
    """Django's own createsuperuser wrote no event; ours goes through the services."""

    def run():
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("DJANGO_SUPERUSER_PASSWORD", "a-long-passphrase-9")
            call_command(
                "createsuperuser", "--noinput", "--username", "root2", stdout=io.StringIO()
            )

    return run, {"user.created", "role.changed"}


@scenario(COMMAND_SCENARIOS, "changepassword")
def django_changepassword_is_the_audited_one(ctx):
    def run():
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("getpass.getpass", lambda prompt="": "another-long-passphrase-7")
            call_command("changepassword", ctx.acme_submitter.user.username, stdout=io.StringIO())

    return run, {"user.changed"}


@scenario(COMMAND_SCENARIOS, "create_member")
def trusting_an_existing_member(ctx):
    """The case of the issue: --trusted on an existing organisation made its adds skip review
    and wrote nothing."""
    run = command(
        "create_member", "--org", "acme", "--trusted", "--user", "ivy", "--role", "submitter"
    )
    return run, {"organisation.changed", "user.created", "role.changed"}


@scenario(COMMAND_SCENARIOS, "create_member")
def new_password_for_an_existing_user(ctx):
    run = command(
        "create_member", "--org", "acme", "--user", ctx.acme_submitter.user.username,
        "--password", "another-passphrase", "--role", "submitter",
    )  # fmt: skip
    return run, {"user.changed"}


@scenario(COMMAND_SCENARIOS, "create_staff")
def new_consortium_admin(ctx):
    run = command(
        "create_staff", "--user", "sam", "--password", "a-long-passphrase",
        "--role", "consortium-admin", "--token",
    )  # fmt: skip
    return run, {"user.created", "role.changed", "credential.created"}


@scenario(COMMAND_SCENARIOS, "create_staff")
def existing_user_made_auditor(ctx):
    User.objects.create_user("olga", is_staff=False)
    return command("create_staff", "--user", "olga", "--role", "auditor"), {
        "user.changed",
        "role.changed",
    }


def peer_public_key() -> str:
    from tests.support.sending import new_hub_key

    return new_hub_key()[1]


@scenario(COMMAND_SCENARIOS, "peer")
def peer_added_with_its_credential(ctx):
    run = command(
        "peer", "add", "--hub-id", "bravo.hub", "--name", "Bravo", "--url", "https://bravo.example",
        "--public-key", peer_public_key(), "--inbound-policy", "trust", "--labels", "attack-footage",
    )  # fmt: skip
    return run, {"peer.registered", "peer.credential_issued"}


@scenario(COMMAND_SCENARIOS, "peer")
def peer_known_by_key_only(ctx):
    run = command(
        "peer", "add", "--hub-id", "alpha.hub", "--name", "A", "--public-key", peer_public_key()
    )
    return run, {"peer.registered"}


def _existing_peer():
    call_command(
        "peer", "add", "--hub-id", "bravo.hub", "--name", "Bravo", "--url", "https://bravo.example",
        "--public-key", peer_public_key(), stdout=io.StringIO(),
    )  # fmt: skip


@scenario(COMMAND_SCENARIOS, "peer")
def peer_outbound_token(ctx):
    _existing_peer()
    return command("peer", "set-outbound-token", "--hub-id", "bravo.hub", "--token", "cp_ab_cd"), {
        "peer.credential_issued"
    }


@scenario(COMMAND_SCENARIOS, "peer")
def peer_suspended_and_policies_changed(ctx):
    _existing_peer()
    run = command(
        "peer", "update", "--hub-id", "bravo.hub", "--state", "suspended", "--scopes", "federation",
        "--signal-types", "pdq", "--url", "https://bravo2.example",
    )  # fmt: skip
    return run, {"peer.changed"}


@scenario(COMMAND_SCENARIOS, "peer")
def peer_key_rotated(ctx):
    _existing_peer()
    run = command(
        "peer", "rotate-key", "--hub-id", "bravo.hub", "--public-key", peer_public_key(),
        "--reason", "the peer rotated its hub key",
    )  # fmt: skip
    return run, {"peer.key_rotated"}


def _log_vkey(name: str) -> str:
    from federation.transparency.checkpoints import verifier_key

    return verifier_key(name, Ed25519PrivateKey.generate().public_key().public_bytes_raw())


def _witness_vkey(name: str) -> str:
    from federation.transparency.cosignatures import cosigner_verifier_key

    return cosigner_verifier_key(name, Ed25519PrivateKey.generate().public_key().public_bytes_raw())


@scenario(COMMAND_SCENARIOS, "witnessed_logs")
def witnessing_a_new_log(ctx):
    run = command(
        "witnessed_logs", "add", "--origin", "b.hub.test", "--vkey", _log_vkey("b.hub.test")
    )
    return run, {"witnessed_log.added"}


@scenario(COMMAND_SCENARIOS, "witnessed_logs")
def a_witnessed_log_gets_a_new_key(ctx):
    call_command(
        "witnessed_logs",
        "add",
        "--origin",
        "c.hub.test",
        "--vkey",
        _log_vkey("c.hub.test"),
        stdout=io.StringIO(),
    )
    run = command(
        "witnessed_logs", "add", "--origin", "c.hub.test", "--vkey", _log_vkey("c.hub.test")
    )
    return run, {"witnessed_log.changed"}


@scenario(COMMAND_SCENARIOS, "witnessed_logs")
def a_witnessed_log_is_resumed_after_a_split_view(ctx):
    call_command(
        "witnessed_logs", "add", "--origin", "d.hub.test", "--vkey", _log_vkey("d.hub.test"),
        stdout=io.StringIO(),
    )  # fmt: skip
    WitnessedLog.objects.filter(origin="d.hub.test").update(state="split_view")
    run = command(
        "witnessed_logs", "resume", "--origin", "d.hub.test", "--reason", "a proof, not the log"
    )
    return run, {"witnessed_log.resumed"}


@scenario(COMMAND_SCENARIOS, "hub_witnesses")
def a_new_witness_of_this_log(ctx):
    name = "b.hub.test/witness"
    run = command(
        "hub_witnesses", "add", "--name", name, "--vkey", _witness_vkey(name),
        "--url", "http://127.0.0.1:9/api/v1/witness",
    )  # fmt: skip
    return run, {"witness.added"}


@scenario(COMMAND_SCENARIOS, "hub_witnesses")
def a_witness_is_stopped(ctx):
    name = "c.hub.test/witness"
    vkey = _witness_vkey(name)
    url = "http://127.0.0.1:9/api/v1/witness"
    call_command(
        "hub_witnesses", "add", "--name", name, "--vkey", vkey, "--url", url, stdout=io.StringIO()
    )
    run = command(
        "hub_witnesses", "add", "--name", name, "--vkey", vkey, "--url", url, "--inactive"
    )
    return run, {"witness.changed"}


@scenario(COMMAND_SCENARIOS, "lookup_key")
def the_first_lookup_key(ctx):
    return command("lookup_key", "create"), {"lookup.key_created"}


@scenario(COMMAND_SCENARIOS, "lookup_key")
def the_lookup_key_is_rotated(ctx):
    call_command("lookup_key", "create", stdout=io.StringIO())
    return command("lookup_key", "rotate"), {"lookup.key_created", "lookup.key_retired"}


@scenario(COMMAND_SCENARIOS, "lookup_client")
def a_new_lookup_only_platform(ctx):
    run = command(
        "lookup_client", "--user", "tinyshare", "--name", "uploads", "--daily-limit", "500"
    )
    return run, {"user.created", "credential.created"}


@scenario(COMMAND_SCENARIOS, "lookup_client")
def a_second_token_for_a_platform(ctx):
    call_command("lookup_client", "--user", "smallvid", "--name", "one", stdout=io.StringIO())
    return command("lookup_client", "--user", "smallvid", "--name", "two"), {"credential.created"}


# Commands that change no database state, and why; the test checks that they change none.
COMMANDS_WITHOUT_STATE = {"hub_keygen": "writes the hub's key file, not the database"}
# Commands that change only derived rows (DERIVED_MODELS), checked to change no tracked row.
COMMANDS_DERIVED_ONLY = {"sync_sequence": "numbers and compacts the change stream"}
# Commands that change the database's catalogue (roles, privileges), not rows: each is checked to
# change no tracked row and to write its event naming what it changed.
COMMANDS_OF_THE_CATALOGUE = {
    "hub_db_role": "creates the hub's least-privilege PostgreSQL role and sets its privileges",
}
# Commands not run here, and why.
COMMANDS_NOT_RUN = {
    "demo": "starts a whole demo hub (gunicorn, Celery) on its own database under var/; the "
    "state it creates is made by create_member and create_staff, which are walked here",
}


def project_commands() -> set[str]:
    return {
        name
        for name, app in get_commands().items()
        if app.split(".")[0] in ("members", "federation")
    }


def test_every_management_command_is_walked():
    walked = (
        set(COMMAND_SCENARIOS)
        | set(COMMANDS_WITHOUT_STATE)
        | set(COMMANDS_DERIVED_ONLY)
        | set(COMMANDS_OF_THE_CATALOGUE)
        | set(COMMANDS_NOT_RUN)
    )
    assert project_commands() == walked


@pytest.fixture
def ctx(db, acme_submitter, globex_submitter, globex_reviewer, consortium_admin):
    VettingPolicy.current()  # the default row exists before any run (made on first use)
    Label.objects.get_or_create(slug="attack-footage", defaults={"name": "Attack footage"})
    connie = Client()
    connie.force_login(consortium_admin.user)
    return Context(
        acme_submitter=acme_submitter,
        globex_submitter=globex_submitter,
        globex_reviewer=globex_reviewer,
        consortium_admin=consortium_admin,
        connie=connie,
    )


@dataclass
class Context:
    acme_submitter: Party
    globex_submitter: Party
    globex_reviewer: Party
    consortium_admin: Party
    connie: Client


@pytest.mark.parametrize(
    "name,make",
    [(name, make) for name, makes in COMMAND_SCENARIOS.items() for make in makes],
    ids=lambda v: v if isinstance(v, str) else v.__name__,
)
def test_management_command_writes_an_event_for_each_change(ctx, name, make):
    run, expected_actions = make(ctx)
    result = assert_audited(run)
    assert expected_actions <= set(result.actions)
    assert all(
        e.actor_type == "system" and e.actor_id == "cli"
        for e in AuditEvent.objects.filter(action__in=expected_actions).order_by("-pk")[
            : len(expected_actions)
        ]
    )


def test_a_command_without_database_state_changes_none(ctx, settings, tmp_path):
    settings.HUB_KEY_PATH = str(tmp_path / "hub.key")
    for name in COMMANDS_WITHOUT_STATE:
        result = run_and_compare(command(name))
        assert (result.changed, result.logged) == (set(), set())


def test_a_command_of_derived_rows_changes_no_tracked_row(ctx):
    submit_entry(ctx.acme_submitter)
    for name in COMMANDS_DERIVED_ONLY:
        args = [name, "--compact"] if name == "sync_sequence" else [name]
        result = run_and_compare(command(*args))
        assert (result.changed, result.logged) == (set(), set())


def test_a_command_of_the_catalogue_writes_its_event(ctx):
    # CREATE ROLE and GRANT are transactional: the test's rollback takes them back.
    result = run_and_compare(command("hub_db_role", "--role", "concordat_audit_walk"))
    assert result.changed == set()
    assert result.logged == {("database_role", "concordat_audit_walk")}
    assert result.actions == ["database_role.granted"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'concordat_audit_walk'")
        assert cursor.fetchone() == (1,)


# --- The admin ------------------------------------------------------------------------------------

ADMIN_SCENARIOS: dict[tuple[str, str], list[Callable]] = {}


def admin_url(model, view: str = "changelist", *args) -> str:
    from django.urls import reverse

    meta = model._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_{view}", args=args)


def post_action(ctx, model, name: str, objects, **extra) -> Callable[[], None]:
    def run():
        response = ctx.connie.post(
            admin_url(model),
            {"action": name, "_selected_action": [str(o.pk) for o in objects], **extra},
        )
        assert response.status_code == 302, response.content[:2000]

    return run


def post_form(ctx, url: str, data: dict) -> Callable[[], None]:
    def run():
        response = ctx.connie.post(url, data)
        assert response.status_code == 302, (
            response.context["adminform"].form.errors if response.context else response.content
        )

    return run


def disputed_entry(ctx) -> Entry:
    set_policy(dispute_threshold=1)
    entry = submit_entry(ctx.acme_submitter)
    assert approve(ctx.globex_reviewer, entry).status_code == 200
    assert feedback(ctx.globex_reviewer, entry, "false_positive").status_code == 200
    return entry


@scenario(ADMIN_SCENARIOS, ("federation.entry", "approve_entries"))
def admin_approves(ctx):
    entry = submit_entry(ctx.acme_submitter)
    return post_action(ctx, Entry, "approve_entries", [entry], apply="1", reason="seen it")


@scenario(ADMIN_SCENARIOS, ("federation.entry", "reject_entries"))
def admin_rejects(ctx):
    entry = submit_entry(ctx.acme_submitter)
    return post_action(ctx, Entry, "reject_entries", [entry], apply="1", reason="a cat")


@scenario(ADMIN_SCENARIOS, ("federation.entry", "confirm_disputes"))
def admin_confirms_a_dispute(ctx):
    entry = disputed_entry(ctx)
    return post_action(ctx, Entry, "confirm_disputes", [entry], apply="1", reason="checked")


@scenario(ADMIN_SCENARIOS, ("federation.entry", "reject_disputes"))
def admin_rejects_a_dispute(ctx):
    entry = disputed_entry(ctx)
    return post_action(ctx, Entry, "reject_disputes", [entry], apply="1", reason="wrong")


@scenario(ADMIN_SCENARIOS, ("federation.feedback", "confirm_disputes"))
def admin_confirms_a_dispute_from_feedback(ctx):
    entry = disputed_entry(ctx)
    opinions = list(Feedback.objects.filter(entry=entry))
    return post_action(ctx, Feedback, "confirm_disputes", opinions, apply="1", reason="checked")


@scenario(ADMIN_SCENARIOS, ("federation.feedback", "reject_disputes"))
def admin_rejects_a_dispute_from_feedback(ctx):
    entry = disputed_entry(ctx)
    opinions = list(Feedback.objects.filter(entry=entry))
    return post_action(ctx, Feedback, "reject_disputes", opinions, apply="1", reason="wrong")


def post_decision(ctx, entry, decision: str) -> Callable[[], None]:
    url = admin_url(Entry, "decide", entry.pk)
    return post_form(ctx, url, {"decision": decision, "reason": "from the entry's page"})


@scenario(ADMIN_SCENARIOS, ("federation.entry", "decide"))
def admin_approves_from_the_entry_page(ctx):
    return post_decision(ctx, submit_entry(ctx.acme_submitter), "approve")


@scenario(ADMIN_SCENARIOS, ("federation.entry", "decide"))
def admin_rejects_from_the_entry_page(ctx):
    return post_decision(ctx, submit_entry(ctx.acme_submitter), "reject")


@scenario(ADMIN_SCENARIOS, ("federation.entry", "decide"))
def admin_confirms_a_dispute_from_the_entry_page(ctx):
    return post_decision(ctx, disputed_entry(ctx), "confirm")


@scenario(ADMIN_SCENARIOS, ("federation.entry", "decide"))
def admin_rejects_a_dispute_from_the_entry_page(ctx):
    return post_decision(ctx, disputed_entry(ctx), "reject_dispute")


@scenario(ADMIN_SCENARIOS, ("federation.label", "add"))
def admin_adds_a_label(ctx):
    data = {"slug": "new-term", "name": "New term", "description": "d", "active": "on"}
    return post_form(ctx, admin_url(Label, "add"), data)


@scenario(ADMIN_SCENARIOS, ("federation.label", "change"))
def admin_deactivates_a_label(ctx):
    label = Label.objects.get(slug="attack-footage")
    data = {"name": label.name, "description": label.description or "d"}
    return post_form(ctx, admin_url(Label, "change", label.pk), data)


@scenario(ADMIN_SCENARIOS, ("federation.incident", "add"))
def admin_declares_an_incident(ctx):
    data = {"name": "Mall attack", "description": "", "auto_vet": "on"}
    return post_form(ctx, admin_url(Incident, "add"), data)


@scenario(ADMIN_SCENARIOS, ("federation.incident", "close_incidents"))
def admin_closes_an_incident(ctx):
    from federation.vetting.services import incident_declare
    from members.actors import Actor

    incident = incident_declare(name="Old", actor=Actor.system("test"))
    return post_action(ctx, Incident, "close_incidents", [incident])


@scenario(ADMIN_SCENARIOS, ("federation.vettingpolicy", "change"))
def admin_changes_the_policy(ctx):
    data = {"quorum": "3", "auto_vet_trusted": "on", "dispute_threshold": "4"}
    return post_form(ctx, admin_url(VettingPolicy, "change", 1), data)


@scenario(ADMIN_SCENARIOS, ("members.organisation", "add"))
def admin_adds_an_organisation(ctx):
    data = {
        "slug": "initech",
        "name": "Initech",
        "status": "active",
        "trusted": "on",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
    }
    return post_form(ctx, admin_url(Organisation, "add"), data)


@scenario(ADMIN_SCENARIOS, ("members.organisation", "change"))
def admin_suspends_an_organisation(ctx):
    acme = ctx.acme_submitter.organisation
    data = {
        "name": acme.name,
        "status": "suspended",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
    }
    return post_form(ctx, admin_url(Organisation, "change", acme.pk), data)


@scenario(ADMIN_SCENARIOS, ("members.membership", "add"))
def admin_gives_a_membership(ctx):
    user = User.objects.create_user("newbie")
    data = {"user": user.pk, "organisation": ctx.acme_submitter.organisation.pk, "role": "reviewer"}
    return post_form(ctx, admin_url(Membership, "add"), data)


@scenario(ADMIN_SCENARIOS, ("members.membership", "change"))
def admin_changes_a_role(ctx):
    membership = Membership.objects.get(user=ctx.acme_submitter.user)
    return post_form(ctx, admin_url(Membership, "change", membership.pk), {"role": "reviewer"})


@scenario(ADMIN_SCENARIOS, ("members.staffrole", "add"))
def admin_adds_an_auditor(ctx):
    user = User.objects.create_user("olga")
    return post_form(ctx, admin_url(StaffRole, "add"), {"user": user.pk, "role": "auditor"})


@scenario(ADMIN_SCENARIOS, ("members.staffrole", "change"))
def admin_changes_a_staff_role(ctx):
    user = User.objects.create_user("olga")
    staff = StaffRole.objects.create(user=user, role="auditor")
    data = {"role": "consortium-admin"}
    return post_form(ctx, admin_url(StaffRole, "change", staff.pk), data)


@scenario(ADMIN_SCENARIOS, ("members.staffrole", "delete"))
def admin_removes_a_staff_role(ctx):
    user = User.objects.create_user("olga")
    staff = StaffRole.objects.create(user=user, role="auditor")
    return post_form(ctx, admin_url(StaffRole, "delete", staff.pk), {"post": "yes"})


@scenario(ADMIN_SCENARIOS, ("members.staffrole", "delete_selected"))
def admin_removes_staff_roles_in_bulk(ctx):
    staff = [
        StaffRole.objects.create(user=User.objects.create_user(name), role="auditor")
        for name in ("olga", "oscar")
    ]
    return post_action(ctx, StaffRole, "delete_selected", staff, post="yes")


@scenario(ADMIN_SCENARIOS, ("auth.user", "add"))
def admin_adds_a_user(ctx):
    data = {
        "username": "uma",
        "usable_password": "true",
        "password1": "A-long-passphrase-1",
        "password2": "A-long-passphrase-1",
    }
    return post_form(ctx, admin_url(User, "add"), data)


@scenario(ADMIN_SCENARIOS, ("auth.user", "change"))
def admin_deactivates_a_user(ctx):
    user = ctx.acme_submitter.user
    data = {"username": user.username, "email": "alice@example.org"}  # is_active unticked
    return post_form(ctx, admin_url(User, "change", user.pk), data)


@scenario(ADMIN_SCENARIOS, ("auth.user", "password_change"))
def admin_sets_a_password(ctx):
    user = ctx.acme_submitter.user
    data = {
        "usable_password": "true",
        "password1": "N3w-passphrase!",
        "password2": "N3w-passphrase!",
    }
    return post_form(ctx, f"/admin/auth/user/{user.pk}/password/", data)


@scenario(ADMIN_SCENARIOS, ("members.signingkey", "add"))
def admin_registers_a_key(ctx):
    organisation = ctx.acme_submitter.organisation
    signed = signed_key_registration(Ed25519PrivateKey.generate(), organisation)
    data = {
        "organisation": organisation.pk,
        "signed_registration": json.dumps(signed),
        "label": "hsm",
    }
    return post_form(ctx, admin_url(SigningKey, "add"), data)


@scenario(ADMIN_SCENARIOS, ("members.signingkey", "revoke_keys"))
def admin_revokes_a_key(ctx):
    key = ctx.acme_submitter.signing_key
    return post_action(ctx, SigningKey, "revoke_keys", [key], apply="1", reason="lost")


@scenario(ADMIN_SCENARIOS, ("members.apicredential", "add"))
def admin_issues_a_token(ctx):
    data = {"holder": ctx.globex_reviewer.user.pk, "name": "ci", "scopes": ["read"]}
    return post_form(ctx, admin_url(ApiCredential, "add"), data)


@scenario(ADMIN_SCENARIOS, ("members.apicredential", "revoke_credentials"))
def admin_revokes_a_token(ctx):
    credential = ApiCredential.objects.filter(holder=ctx.globex_reviewer.user).first()
    return post_action(ctx, ApiCredential, "revoke_credentials", [credential])


def _peer_row(ctx) -> Peer:
    from federation.propagation.peers import peer_register
    from members.actors import Actor

    return peer_register(
        hub_id="bravo.hub", name="Bravo", url="https://bravo.example",
        public_key=peer_public_key(), actor=Actor.system("test"),
    ).peer  # fmt: skip


@scenario(ADMIN_SCENARIOS, ("members.peer", "add"))
def admin_registers_a_peer(ctx):
    data = {
        "hub_id": "bravo.hub", "name": "Bravo", "url": "https://bravo.example",
        "public_key_base64": peer_public_key(), "inbound_policy": "review",
        "outbound_scopes": ["federation"], "outbound_labels": "attack-footage",
    }  # fmt: skip
    return post_form(ctx, admin_url(Peer, "add"), data)


@scenario(ADMIN_SCENARIOS, ("members.peer", "change"))
def admin_changes_a_peers_policies_and_token(ctx):
    peer = _peer_row(ctx)
    data = {
        "state": "suspended", "url": "https://bravo.example", "inbound_policy": "trust",
        "outbound_signal_types": ["md5"], "outbound_labels": "", "new_outbound_token": "cp_x_y",
    }  # fmt: skip
    return post_form(ctx, admin_url(Peer, "change", peer.pk), data)


@scenario(ADMIN_SCENARIOS, ("members.peer", "rotate_key"))
def admin_rotates_a_peers_key(ctx):
    peer = _peer_row(ctx)
    return post_action(
        ctx, Peer, "rotate_key", [peer], apply="1", public_key=peer_public_key(), reason="rotated"
    )


@scenario(ADMIN_SCENARIOS, ("members.peer", "issue_inbound_credential"))
def admin_issues_a_peer_credential(ctx):
    return post_action(ctx, Peer, "issue_inbound_credential", [_peer_row(ctx)])


@scenario(ADMIN_SCENARIOS, ("federation.outboxitem", "retry"))
def admin_retries_dead_letters(ctx):
    peer = _peer_row(ctx)
    entry = submit_entry(ctx.acme_submitter)
    rows = [
        OutboxItem.objects.create(
            peer=peer,
            kind="contribution",
            contribution=entry.contributions.first(),
            entry=entry,
            state=state,
            attempts=8,
            last_error="HTTP 503",
        )
        for state in ("dead", "refused")
    ]
    return post_action(ctx, OutboxItem, "retry", rows)


def offered_admin_changes(user) -> set[tuple[str, str]]:
    """Every action and change form the admin offers ``user``, by (model label, name)."""
    request = RequestFactory().get("/admin/")
    request.user = user
    offered = set()
    for model, model_admin in admin.site._registry.items():
        label = model._meta.label_lower
        offered |= {(label, name) for name in model_admin.get_actions(request)}
        for view in ("add", "change", "delete"):
            if getattr(model_admin, f"has_{view}_permission")(request):
                offered.add((label, view))
        # The admin's own views beyond the standard ones (a password form, decision buttons).
        prefix = f"{model._meta.app_label}_{model._meta.model_name}_"
        standard = {
            f"{prefix}{view}" for view in ("changelist", "add", "history", "delete", "change")
        }
        for pattern in model_admin.get_urls():
            if pattern.name and pattern.name not in standard:
                offered.add((label, pattern.name.removeprefix(prefix)))
    return offered


def test_every_admin_action_and_form_is_walked(ctx):
    assert offered_admin_changes(ctx.consortium_admin.user) == set(ADMIN_SCENARIOS)


@pytest.mark.parametrize(
    "key,make",
    [(key, make) for key, makes in ADMIN_SCENARIOS.items() for make in makes],
    ids=lambda v: "-".join(v) if isinstance(v, tuple) else v.__name__,
)
def test_admin_change_writes_an_event_for_each_change(ctx, key, make):
    result = assert_audited(make(ctx))
    assert all(
        e.actor_label == "connie"
        for e in AuditEvent.objects.filter(action__in=result.actions).order_by("-pk")[:1]
    )


def test_a_change_without_its_event_is_caught(ctx):
    """The checker itself: a row changed behind the services' back is reported."""
    organisation = make_organisation("hooli")
    result = run_and_compare(
        lambda: Organisation.objects.filter(pk=organisation.pk).update(trusted=True)
    )
    assert result.changed == {("organisation", "hooli")}
    assert result.logged == set()
