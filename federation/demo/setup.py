"""Setting the demo's hubs up: one migrated database copied to each, the keys, the people
(members, staff, tokens), every hub peered with every other and witnessing the others' logs,
with the management commands an operator would use."""

import json
import shutil
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management.base import CommandError

from federation.demo import processes
from federation.demo.hubs import (
    ADMIN_PASSWORD,
    AUDITOR_PASSWORD,
    PEER_MEMBERS,
    DemoHub,
    last_json,
    peer_add,
)
from federation.demo.walkthrough import expect
from federation.partner_client import ConcordatClient, ContributionSigner


def set_up(federation: list[DemoHub]) -> dict:
    """Migrate one database and copy it to the others; make the hub keys; create the people
    and peer every hub with every other, one process per hub at a time."""
    hub, peers = federation[0], federation[1:]
    for member in federation:
        member.make_folders()
    hub.manage("migrate", "--noinput")
    for peer in peers:
        shutil.copyfile(hub.folder / "db.sqlite3", peer.folder / "db.sqlite3")
    for member in federation:
        member.make_key()
    people, commands = people_commands(hub)
    per_hub = {hub.name: commands}
    for peer, (org, user) in zip(peers, PEER_MEMBERS, strict=False):
        admin = ["create_staff", "--user", "admin", "--role", "consortium-admin"]
        per_hub[peer.name] = [
            [*admin, "--password", ADMIN_PASSWORD, "--token"],
            ["create_member", "--org", org, "--user", user, "--role", "reviewer", "--token"],
        ]
    # Each hub registers every other with its URL and pinned key; the inbound token it
    # issues is what the other presents there.
    for member in federation:
        per_hub[member.name] += [peer_add(other) for other in federation if other is not member]
    outputs = in_parallel(federation, lambda member: member.manage_many(per_hub[member.name]))
    collect_people(people, outputs[hub.name])
    for peer, (_org, user) in zip(peers, PEER_MEMBERS, strict=False):
        admin, reader = (last_json(text) for text in outputs[peer.name][:2])
        people[peer.name] = {"admin": admin, "reader": {**reader, "user": user}}
    # Token exchange: the token hub X issued for Y goes into Y's row for X.
    exchange: dict[str, list[list[str]]] = {member.name: [] for member in federation}
    for member in federation:
        for text in outputs[member.name]:
            if '"inbound_token"' in text:
                answer = last_json(text)
                other = next(o for o in federation if o.hub_id == answer["hub_id"])
                exchange[other.name].append(
                    ["peer", "set-outbound-token", "--hub-id", member.hub_id, "--token",
                     answer["inbound_token"]]
                )  # fmt: skip
    in_parallel(federation, lambda member: member.manage_many(exchange[member.name]))
    return people


def people_commands(hub: DemoHub) -> tuple[dict, list[list[str]]]:
    people: dict = {"_order": []}
    commands = []
    for org, user, role, trusted in [
        ("acme", "alice", "submitter", False),
        ("globex", "gina", "submitter", False),
        ("globex", "gus", "reviewer", False),
        ("initech", "ivan", "reviewer", False),
        ("acme", "amy", "member-admin", False),
    ]:
        private_key = Ed25519PrivateKey.generate() if role == "submitter" else None
        options = ["create_member", "--org", org, "--user", user, "--role", role, "--token"]
        if trusted:
            options.append("--trusted")
        if private_key is not None:
            # The member proves it holds the key: it signs the key's registration itself.
            registration = hub.folder / f"key-registration-{user}.json"
            signed = ContributionSigner(private_key, hub.hub_id, org).key_registration()
            registration.parent.mkdir(parents=True, exist_ok=True)
            registration.write_text(json.dumps(signed))
            options += ["--key-registration", str(registration)]
        people[user] = {"private_key": private_key}
        people["_order"].append(user)
        commands.append(options)
    for user, role, password in [
        ("admin", "consortium-admin", ADMIN_PASSWORD),
        ("auditor", "auditor", AUDITOR_PASSWORD),
    ]:
        people[user] = {}
        people["_order"].append(user)
        commands.append(
            ["create_staff", "--user", user, "--role", role, "--password", password, "--token"]
        )
    return people, commands


def collect_people(people: dict, outputs: list[str]) -> None:
    for user, text in zip(people.pop("_order"), outputs, strict=False):
        people[user].update(last_json(text))


def in_parallel(federation: list[DemoHub], call) -> dict:
    """``call(hub)`` for every hub at once (each runs its own processes); results by name."""
    results = processes.parallel(lambda hub=hub: call(hub) for hub in federation)
    return dict(zip((hub.name for hub in federation), results, strict=True))


def witness_each_other(federation: list[DemoHub], people: dict) -> None:
    """Every hub witnesses every other hub's log, set up with the commands an operator
    uses: the witness learns the log's origin and key, the log its witness's key and URL."""
    keys = {}
    for member in federation:
        client = ConcordatClient(member.url)
        log_key = expect(client.get("/api/v1/log/key"), 200, f"read {member.hub_id}'s log key")
        witness_key = expect(
            client.get("/api/v1/witness/key"), 200, f"read {member.hub_id}'s witness key"
        )
        keys[member.name] = (log_key["vkey"], witness_key["vkey"])
    commands: dict[str, list[list[str]]] = {member.name: [] for member in federation}
    for log in federation:
        for witness in federation:
            if witness is log:
                continue
            commands[witness.name].append(
                ["witnessed_logs", "add", "--origin", log.hub_id, "--vkey", keys[log.name][0]]
            )
            vkey = keys[witness.name][1]
            commands[log.name].append(
                ["hub_witnesses", "add", "--name", vkey.split("+", 1)[0], "--vkey", vkey,
                 "--url", f"{witness.url}/api/v1/witness"]
            )  # fmt: skip
    in_parallel(federation, lambda member: member.manage_many(commands[member.name]))
    people["witnesses"] = {member.name: keys[member.name][1] for member in federation}


def wait_until_up(hub: DemoHub) -> None:
    """Wait until the hub's own server answers on its port: another hub answering there (its
    gunicorn could not bind the port, and keeps trying for a few seconds before it exits) is an
    error, not this hub up."""
    client = ConcordatClient(hub.url, timeout=2)
    for _ in range(150):
        hub.check_alive()
        try:
            status, body = client.get("/api/v1/hub/")
        except OSError:
            status, body = None, None
        if status == 200:
            served = body.get("hub_id") if isinstance(body, dict) else None
            if served != hub.hub_id:
                raise CommandError(
                    f"{hub.url} is answered by hub {served!r}, not {hub.hub_id!r}: another "
                    "server holds the port (stop it, or choose other ports)"
                )
            return
        time.sleep(0.2)
    raise CommandError(f"hub {hub.hub_id} did not answer in 30 s")
