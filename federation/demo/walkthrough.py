"""The demo's walkthrough: what members, reviewers and an auditor do on the first hub, the
entries and the retraction arriving at its peers, the log verified, and the next steps printed."""

import base64
import hashlib
import shlex
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.core.management.base import CommandError

from federation.demo.hubs import (
    ADMIN_PASSWORD,
    ARRIVAL_TIMEOUT,
    AUDITOR_PASSWORD,
    ROOT,
    WITNESS_TIMEOUT,
    DemoHub,
    relative_to_root,
)
from federation.partner_client import ConcordatClient, ContributionSigner


class Walkthrough:
    """Acts out the day on the hubs and says what happens on ``stdout``."""

    def __init__(self, stdout):
        self.stdout = stdout

    def walkthrough(self, hub: DemoHub, people: dict, count: int, *, peers: list[DemoHub]) -> None:
        info = expect(
            ConcordatClient(hub.url).get("/api/v1/hub/"), 200, "read the hub's description"
        )
        self.say(f"Hub {info['hub_id']} is up at {hub.url} (hub key {info['public_key'][:16]}…)")

        alice = people["alice"]
        signer = ContributionSigner(alice["private_key"], hub.hub_id, "acme", alice["key_id"])
        acme = ConcordatClient(hub.url, alice["token"])
        items = [self.example_contribution(signer, index) for index in range(count)]
        forged = signer.add("md5", "0" * 32, ["propaganda"])
        forged["contribution"]["signal"]["value"] = "f" * 32  # changed after signing
        items.append(forged)
        items.append(signer.add("md5", "1" * 32, ["not-a-label"]))
        started = time.perf_counter()
        result = expect(
            acme.post("/api/v1/contributions/bulk/", {"items": items}), 200, "submit a bulk"
        )
        elapsed = time.perf_counter() - started
        self.say(
            f"acme (submitter alice) sends {len(items)} signed contributions in one request "
            f"({elapsed:.2f} s): {result['created']} created, {result['rejected']} rejected"
        )
        if result["created"] != count or result["rejected"] != 2:
            raise CommandError(f"unexpected bulk result: {result['created']} created")
        for item in result["results"]:
            if item["status"] == "rejected":
                error = item["error"]
                self.say(f"  item {item['index']} refused, {error['code']}: {error['message']}")

        gus = ConcordatClient(hub.url, people["gus"]["token"])
        ivan = ConcordatClient(hub.url, people["ivan"]["token"])
        queue = expect(gus.get("/api/v1/review/queue/?page_size=4"), 200, "read the review queue")
        pending = queue["results"]
        self.say(
            f"globex's reviewer gus opens the review queue, {len(pending)} entries a page: the "
            f"first page holds the oldest of acme's {result['created']} new entries"
        )
        for entry in pending[:3]:
            body = expect(
                gus.post(f"/api/v1/entries/{entry['id']}/approve/", {"reason": "matches our copy"}),
                200,
                "approve an entry",
            )
            self.say(
                f"  gus approves entry {entry['id']} ({entry['signal_type']}): now {body['entry_state']}"
            )
        self.follow(peers, people, pending[:3], "vetted", origin=hub)
        rejected = pending[3]
        body = expect(
            ivan.post(
                f"/api/v1/entries/{rejected['id']}/reject/", {"reason": "news footage, not TVEC"}
            ),
            200,
            "reject an entry",
        )
        self.say(
            f"  initech's reviewer ivan rejects entry {rejected['id']}: now {body['entry_state']}"
        )

        target = pending[0]
        expect(
            ivan.request(
                "PUT",
                f"/api/v1/entries/{target['id']}/feedback/",
                {"opinion": "agree", "note": "seen it too"},
            ),
            (200, 201),
            "give feedback",
        )
        self.say(f"initech agrees with vetted entry {target['id']}")
        expect(
            acme.post(
                "/api/v1/contributions/", signer.retract(target["signal_type"], target["value"])
            ),
            201,
            "retract",
        )
        entry = expect(acme.get(f"/api/v1/entries/{target['id']}/"), 200, "read an entry")
        self.say(
            f"acme retracts its signed add of entry {target['id']}: the entry is now {entry['state']}"
        )
        self.follow(peers, people, [target], "retracted", origin=hub)
        self.watch_live(hub, people)
        self.show_log(hub, people)

    def follow(
        self,
        peers: list[DemoHub],
        people: dict,
        entries: list[dict],
        state: str,
        *,
        origin: DemoHub,
    ) -> None:
        """Wait until each entry has ``state`` on every peer, read through the peer's own API by
        its own member, and check there the origin member's signature on what arrived."""
        if not peers:
            return
        what = "vetted entries travel" if state == "vetted" else "retraction travels"
        self.say(
            f"Federation: the {what} from {origin.hub_id} to its peers (pushed through Celery)"
        )
        started = time.monotonic()
        for peer in peers:
            reader = ConcordatClient(peer.url, people[peer.name]["reader"]["token"])
            for entry in entries:
                query = (
                    f"/api/v1/entries/?signal_type={entry['signal_type']}&value={entry['value']}"
                )
                found = None
                while time.monotonic() - started < ARRIVAL_TIMEOUT:
                    peer.check_alive()
                    origin.check_alive()
                    results = expect(reader.get(query), 200, f"read {peer.hub_id}'s entries")
                    found = results["results"][0] if results["results"] else None
                    if found is not None and found["state"] == state:
                        break
                    time.sleep(0.2)
                else:
                    raise CommandError(
                        f"entry {entry['signal_type']} {entry['value'][:16]}… did not become "
                        f"{state} on {peer.hub_id} in {ARRIVAL_TIMEOUT} s (it is "
                        f"{found['state'] if found else 'not there'}); see {peer.folder / 'logs'}"
                    )
                detail = expect(reader.get(f"/api/v1/entries/{found['id']}/"), 200, "read entry")
                signed = [c for c in detail["contributions"] if c["origin_hub"] == origin.hub_id]
                verified = all(verify_contribution(c) for c in signed)
                actions = "+".join(c["action"] for c in signed)
                self.say(
                    f"  {peer.hub_id} has entry {entry['signal_type']} {entry['value'][:16]}… "
                    f"{state} (as its entry {found['id']}), after {time.monotonic() - started:.1f} s: "
                    f"{actions} by {signed[0]['member']} of {origin.hub_id}, "
                    f"member signature {'verified' if verified else 'INVALID'}"
                )
                if not verified:
                    raise CommandError(f"{peer.hub_id} holds a contribution whose signature fails")

    def example_contribution(self, signer: ContributionSigner, index: int) -> dict:
        digest = __import__("hashlib").sha256(f"demo-{signer.member}-{index}".encode()).hexdigest()
        labels = [["attack-footage"], ["glorification"], ["propaganda", "recruitment"]][index % 3]
        kind = ("pdq", "md5", "sha256")[index % 3]
        value = {"pdq": digest, "md5": digest[:32], "sha256": digest}[kind]
        return signer.add(kind, value, labels, quality=90 if kind == "pdq" else None)

    def watch_live(self, hub: DemoHub, people: dict) -> None:
        """A live-stream session on the demo's SQLite database (docs/video.md §7): opened, fed
        a few frames of an unrelated stream, closed; each step audited."""
        gus = ConcordatClient(hub.url, people["gus"]["token"])
        session = expect(gus.post("/api/v1/live", {}), 201, "open a live session")
        frames = [
            [i, 90, hashlib.sha256(f"demo-stream-{i}".encode()).hexdigest(), i * 1000]
            for i in range(5)
        ]
        answer = expect(
            gus.post(f"/api/v1/live/{session['id']}/frames", {"frames": frames}),
            200,
            "send live frames",
        )
        closed = expect(
            gus.request("DELETE", f"/api/v1/live/{session['id']}"), 200, "close a live session"
        )
        self.say(
            f"globex's gus watches a live stream (concordat live): session {session['id']} took "
            f"{answer['session']['frames']} frames, {len(answer['alerts'])} alert(s); now "
            f"{closed['state']} (opened and closed are in the audit log)"
        )

    def show_log(self, hub: DemoHub, people: dict) -> None:
        auditor = ConcordatClient(hub.url, people["auditor"]["token"])
        status, key = auditor.get("/api/v1/log/key")
        if status != 200:
            self.say(f"(the transparency log is not available: {status})")
            return
        vkey = key["vkey"] if isinstance(key, dict) else key.strip()
        people["vkey"] = vkey
        self.say("Waiting for the Celery worker to sequence the audit log and sign a checkpoint…")
        note = ""
        for _ in range(120):
            hub.check_alive()
            status, note = auditor.get("/api/v1/log/checkpoint")
            if status == 200 and self.unsequenced_events(hub) == 0:
                break
            time.sleep(0.5)
        witnesses = [vkey for name, vkey in people.get("witnesses", {}).items() if name != hub.name]
        if witnesses:
            note = self.wait_for_cosignatures(
                hub, auditor, witnesses, tree_size=checkpoint_size(note)
            )
            self.say(
                f"Latest checkpoint cosigned by its {len(witnesses)} witnesses:\n"
                + "\n".join("    " + line for line in str(note).splitlines())
            )
        else:
            self.say(
                "Latest signed checkpoint:\n"
                + "\n".join("    " + line for line in str(note).splitlines())
            )
        verify = [sys.executable, *verifier_arguments(hub, people)]
        done = subprocess.run(verify, cwd=ROOT, capture_output=True, text=True)
        policy = f" and its {len(witnesses)} witnesses' keys" if witnesses else ""
        self.say(
            f"An auditor runs the standalone verifier with the pinned hub key{policy} "
            f"(exit {done.returncode}):"
        )
        self.indent(done.stdout + done.stderr)
        if done.returncode != 0:
            raise CommandError("the verifier did not accept the log")

        # An insider rewrites history in the database; the next verification catches it. (SQLite
        # has no append-only triggers; on PostgreSQL this takes a superuser who switches them
        # off with SET session_replication_role = replica, see docs/transparency.md.)
        database = sqlite3.connect(hub.folder / "db.sqlite3")
        with database:
            (original,) = database.execute(
                "SELECT organisation FROM federation_auditevent WHERE leaf_index = 3"
            ).fetchone()
            database.execute(
                "UPDATE federation_auditevent SET organisation = 'mallory' WHERE leaf_index = 3"
            )
        done = subprocess.run([*verify, "--full"], cwd=ROOT, capture_output=True, text=True)
        self.say(
            f"Someone edits audit event at leaf 3 directly in the database ({original!r} -> "
            f"'mallory'); the verifier runs again, re-reading every leaf (--full; exit "
            f"{done.returncode}):"
        )
        self.indent(done.stdout + done.stderr)
        with database:
            database.execute(
                "UPDATE federation_auditevent SET organisation = ? WHERE leaf_index = 3", [original]
            )
        database.close()
        if done.returncode == 0:
            raise CommandError("the verifier missed a rewritten audit event")

    def wait_for_cosignatures(
        self, hub: DemoHub, auditor: ConcordatClient, witnesses: list[str], *, tree_size: int
    ) -> str:
        """The hub's newest cosigned checkpoint once it covers ``tree_size`` leaves and carries
        a cosignature by each of ``witnesses``."""
        names = {vkey.split("+", 1)[0] for vkey in witnesses}
        deadline = time.monotonic() + WITNESS_TIMEOUT
        note = ""
        while time.monotonic() < deadline:
            hub.check_alive()
            status, note = auditor.get("/api/v1/log/checkpoint/cosigned")
            if status == 200 and checkpoint_size(note) >= tree_size:
                signers = {
                    line.split(" ")[1] for line in str(note).split("\n\n", 1)[1].splitlines()
                }
                if names <= signers:
                    return note
            time.sleep(0.5)
        raise CommandError(
            f"the witnesses did not cosign {hub.hub_id}'s checkpoint of size {tree_size} in "
            f"{WITNESS_TIMEOUT} s; see the peers' logs under var/"
        )

    def show_next_steps(
        self, hub: DemoHub, people: dict, *, keep_running: bool, peers: list[DemoHub]
    ) -> None:
        """What a newcomer needs to go on: logins, tokens, and commands to paste (each ``$`` line
        runs as shown from the project folder; tests/integration/test_demo.py runs them)."""
        python = shlex.quote(relative_to_root(Path(sys.executable)))
        amy, auditor = people["amy"], people["auditor"]
        manage_env = f"DJANGO_SETTINGS_MODULE=settings.demo CONCORDAT_DEMO_NAME={hub.name}"
        self.say("")
        self.say(f"Hub home page:    {hub.url}/")
        self.say(f"Django admin:     {hub.url}/admin/   (admin / {ADMIN_PASSWORD})")
        self.say(f"Auditor reports:  {hub.url}/reports/ (auditor / {AUDITOR_PASSWORD})")
        self.say(f"API docs:         {hub.url}/api/docs/")
        if peers:
            self.say(f"Its peers' health: {hub.url}/admin/members/peer/ (outbox, lag, errors)")
        for peer in peers:
            reader = people[peer.name]["reader"]
            self.say(f"Peer {peer.hub_id} (var/{peer.name}):")
            self.say(f"  home page:    {peer.url}/")
            self.say(f"  Django admin: {peer.url}/admin/   (admin / {ADMIN_PASSWORD})")
            self.say(
                f"  {reader['organisation']}'s reviewer {reader['user']} reads what arrived: "
                f"token {reader['token']}"
            )
        self.say("")
        self.say("Next steps (run the $ commands from the project folder):")
        self.say("A partner: acme's member-admin amy manages acme's keys, tokens and members.")
        self.say(f"  member-admin token: {amy['token']}")
        self.say(
            f"    $ curl -sS -H {shlex.quote('Authorization: Bearer ' + amy['token'])} "
            f"{hub.url}/api/v1/memberships/"
        )
        self.say("An auditor reads the log and the reports.")
        self.say(f"  audit token: {auditor['token']}")
        if peers:
            self.say(
                "  Verify the transparency log with the hub key and its witnesses' keys pinned "
                "(every witness must cosign; the state folder remembers the last checkpoint):"
            )
        else:
            self.say(
                "  Verify the transparency log with the hub key pinned (the state folder "
                "remembers the last checkpoint):"
            )
        arguments = " ".join(shlex.quote(argument) for argument in verifier_arguments(hub, people))
        self.say(f"    $ {python} {arguments}")
        self.say(
            "Run manage.py against this hub's database (CONCORDAT_DEMO_NAME names the hub, "
            "as --hub-name does):"
        )
        self.say(
            f"    $ {manage_env} {python} manage.py create_member --org newco --user nina "
            "--role submitter --token"
        )
        if peers:
            self.say("See each peer's health from the command line (outbox depth, lag, errors):")
            self.say(f"    $ {manage_env} {python} manage.py peer status")
        if not keep_running:
            self.say(
                "The hubs stop when this demo ends; to keep them up for the commands above, run "
                "make demo DEMO_ARGS=--keep-running."
            )

    def unsequenced_events(self, hub: DemoHub) -> int:
        with sqlite3.connect(hub.folder / "db.sqlite3") as database:
            query = "SELECT count(*) FROM federation_auditevent WHERE leaf_index IS NULL"
            return database.execute(query).fetchone()[0]

    def indent(self, text: str) -> None:
        for line in text.strip().splitlines():
            self.say("    " + line)

    def say(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()


def verifier_arguments(hub: DemoHub, people: dict) -> list[str]:
    """The auditor's verifier command line (after the interpreter): the pinned hub key, every
    peer's witness key as the policy, and a state folder of this demo hub's own under var/ (a
    new demo starts a new log, and wipes the folder with the hub's)."""
    witnesses = [vkey for name, vkey in people.get("witnesses", {}).items() if name != hub.name]
    return [
        "client/concordat_client/verifier.py", "--hub", hub.url,
        "--key", people.get("vkey", "VKEY"), "--token", people["auditor"]["token"],
        *(argument for vkey in witnesses for argument in ("--witness", vkey)),
        "--state-dir", relative_to_root(hub.folder / "auditor-state"),
    ]  # fmt: skip


def checkpoint_size(note: str) -> int:
    """The tree size of a signed checkpoint note (its second line); 0 for anything else."""
    lines = str(note).split("\n")
    return int(lines[1]) if len(lines) > 1 and lines[1].isdigit() else 0


def verify_contribution(contribution: dict) -> bool:
    """Check a contribution as a reader can: its signed bytes against its signer's public key."""
    public_key = Ed25519PublicKey.from_public_bytes(base64.b64decode(contribution["public_key"]))
    try:
        public_key.verify(
            base64.b64decode(contribution["signature"]), contribution["canonical"].encode()
        )
    except InvalidSignature:
        return False
    return True


def expect(answer: tuple[int, object], statuses, what: str):
    """The body of an expected answer; anything else stops the demo with the hub's error."""
    status, body = answer
    if status not in (statuses if isinstance(statuses, tuple) else (statuses,)):
        raise CommandError(f"could not {what}: HTTP {status} {body}")
    return body
