"""`make demo`: start a small federation on localhost with no database or broker server (SQLite
and a file-system Celery transport per hub), then act out a day of hash sharing over HTTP.

Three hubs by default (``--hubs``): the first (``--hub-name``, ``hub-a``) is where members
submit, review and retract; the others (``hub-b``, ``hub-c``) are its peers, each peered with
both others through ``manage.py peer`` (keys pinned, tokens exchanged, inbound policy ``trust``).
The walkthrough shows the entries vetted at the first hub arriving at the others, and the
retraction following them. Each hub runs as real processes (gunicorn and a Celery worker with
beat, consuming the hub's queue and its incident lane) with its own folder under ``var/``.

A demo refuses to start, before it changes anything under ``var/``, while another demo runs one
of its hubs (``var/NAME.lock``) or one of its ports is taken; Ctrl-C, SIGTERM and SIGHUP stop the
hubs' processes with it. It ends by printing the logins, tokens and commands a newcomer needs.
"""

import base64
import contextlib
import fcntl
import json
import os
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from federation.hubkey import generate_key_file
from federation.partner_client import ConcordatClient, ContributionSigner

ROOT = Path(settings.BASE_DIR)
ADMIN_PASSWORD = "demo-admin-pw"  # noqa: S105 (a throwaway demo login, printed for the user)
AUDITOR_PASSWORD = "demo-auditor-pw"  # noqa: S105
# The peers' own members: a reviewer on each, whose token reads what arrived there.
PEER_MEMBERS = [("northwind", "nora"), ("contoso", "carl")]
ARRIVAL_TIMEOUT = 45  # seconds for an item to reach every peer (pushes are nudged on commit)
WITNESS_TIMEOUT = 60  # seconds for the peers to cosign the checkpoint that covers the walkthrough
MIN_CONTRIBUTIONS = 4
LOG_TAIL_LINES = 15  # lines of a process's log shown when it ended during the demo

# Runs several management commands in one process (one Django start-up instead of one per
# command): reads [[name, arg, ...], ...] on stdin, prints each command's output as a JSON list.
_MANY_COMMANDS = """
import io, json, sys
import django
django.setup()
from django.core.management import call_command
outputs = []
for command in json.load(sys.stdin):
    out = io.StringIO()
    call_command(*command, stdout=out)
    outputs.append(out.getvalue())
json.dump(outputs, sys.stdout)
"""


@dataclass
class HubProcess:
    """One of a demo hub's processes: what it is, where it logs, and the process."""

    role: str
    log: Path
    popen: subprocess.Popen

    def exit_reason(self) -> str | None:
        """Why the process ended (None while it runs)."""
        code = self.popen.poll()
        if code is None:
            return None
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exited with status {code}"


class HubDied(CommandError):
    """A hub's process ended while the demo still needed it."""


@dataclass
class DemoHub:
    name: str
    port: int
    folder: Path
    processes: list[HubProcess] = field(default_factory=list)
    public_key: str = ""  # base64 of the raw Ed25519 hub key

    @property
    def hub_id(self) -> str:
        return f"{self.name}.demo"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "settings.demo",
            "CONCORDAT_DEMO_NAME": self.name,
            "CONCORDAT_HUB_ID": self.hub_id,
            "CONCORDAT_CELERY_QUEUE": f"concordat-{self.name}",
            "CONCORDAT_SEQUENCE_INTERVAL_SECONDS": "2",
            # The hubs witness each other: ask for cosignatures soon after each checkpoint.
            "CONCORDAT_WITNESS_INTERVAL_SECONDS": "2",
            "CONCORDAT_WITNESS_RETRY_SECONDS": "1",
            "CONCORDAT_LOG_LEVEL": "WARNING",
        }

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise CommandError(f"{self.name}: manage.py {args[0]} failed:\n{done.stderr[-2000:]}")
        return done.stdout

    def manage_many(self, commands: list[list[str]]) -> list[str]:
        """Run management commands one after the other in one process; their outputs."""
        if not commands:
            return []
        done = subprocess.run(
            [sys.executable, "-c", _MANY_COMMANDS],
            cwd=ROOT,
            env=self.env,
            input=json.dumps(commands),
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            names = ", ".join(command[0] for command in commands)
            raise CommandError(f"{self.name}: manage.py {names} failed:\n{done.stderr[-2000:]}")
        return json.loads(done.stdout)

    def make_folders(self) -> None:
        """The hub's folder and its file-system broker's folders (settings/demo.py)."""
        for folder in settings.BROKER_FOLDERS:
            (self.folder / "broker" / folder).mkdir(parents=True, exist_ok=True)

    def make_key(self) -> None:
        """The hub key and the witness key, made here as ``manage.py hub_keygen`` would (one
        process fewer)."""
        key = generate_key_file(self.folder / "hub-key.pem")
        generate_key_file(self.folder / "witness-key.pem")
        self.public_key = base64.b64encode(key.public_key().public_bytes_raw()).decode()

    def start(self) -> None:
        logs = self.folder / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.spawn(
            "web server (gunicorn)",
            logs / "web.log",
            [sys.executable, "-m", "gunicorn", "federation.wsgi", "--bind", f"127.0.0.1:{self.port}",
             "--workers", "1", "--threads", "4", "--timeout", "300"],
        )  # fmt: skip
        self.spawn(
            "Celery worker",
            logs / "worker.log",
            [sys.executable, "-m", "celery", "-A", "settings.celery", "worker", "--beat",
             "--pool", "solo", "--loglevel", "WARNING",
             "--queues", f"concordat-{self.name},concordat-{self.name}.incident",
             "--schedule", str(self.folder / "beat-schedule"), "--without-gossip", "--without-mingle"],
        )  # fmt: skip

    def spawn(self, role: str, log: Path, command: list[str]) -> None:
        with log.open("wb") as output:  # the child keeps its own copy of the descriptor
            # Its own process group: stopping the hub reaches every process it started (the
            # worker's embedded beat outlives a worker that was killed).
            popen = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(HubProcess(role=role, log=log, popen=popen))

    def deaths(self) -> list[str]:
        """What ended among this hub's processes, each with why and the end of its log."""
        found = []
        for process in self.processes:
            reason = process.exit_reason()
            if reason is None:
                continue
            tail = ""
            with contextlib.suppress(OSError):
                lines = process.log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
                tail = "".join(f"\n    | {line}" for line in lines)
            found.append(
                f"{self.hub_id}'s {process.role} {reason}; its log is {_relative(process.log)}"
                + (f", ending:{tail}" if tail else " (empty)")
            )
        return found

    def check_alive(self) -> None:
        """Stop the demo with which process of this hub ended, and why, if one did."""
        deaths = self.deaths()
        if deaths:
            raise HubDied("\n".join(deaths))

    def stop(self) -> None:
        for process in self.processes:
            _signal_group(process.popen, signal.SIGTERM)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=15)
            _signal_group(process.popen, signal.SIGKILL)  # whatever is left of its group


class Command(BaseCommand):
    help = "Run a small Concordat federation on localhost and show it at work (no servers needed)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--port",
            type=int,
            default=8701,
            help="The first hub's port on 127.0.0.1 (must be free).",
        )
        parser.add_argument(
            "--hub-name", default="hub-a", help="Names the first hub and its folder var/NAME."
        )
        parser.add_argument(
            "--hubs", type=int, choices=(1, 2, 3), default=3,
            help="How many hubs (the first and its peers; 1 runs a hub alone).",
        )  # fmt: skip
        parser.add_argument(
            "--peer-ports",
            default="",
            help="The peers' ports, comma-separated (default: the ports after --port).",
        )
        parser.add_argument(
            "--contributions",
            type=int,
            default=300,
            help=f"How many contributions acme submits (at least {MIN_CONTRIBUTIONS}: the "
            "walkthrough approves three and rejects one).",
        )
        parser.add_argument(
            "--keep-running", action="store_true", help="Leave the hubs up until Ctrl-C when done."
        )

    def handle(
        self,
        *args,
        port: int,
        hub_name: str,
        hubs: int,
        peer_ports: str,
        contributions: int,
        keep_running: bool,
        **options,
    ):
        if contributions < MIN_CONTRIBUTIONS:
            raise CommandError(
                f"--contributions must be at least {MIN_CONTRIBUTIONS}: the walkthrough approves "
                "three entries and rejects one."
            )
        if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
            raise CommandError(
                "Run the demo with DJANGO_SETTINGS_MODULE=settings.demo (make demo does)."
            )
        ports = [port, *(int(p) for p in peer_ports.split(",") if p.strip())]
        ports += [ports[-1] + 1 + n for n in range(hubs - len(ports))]
        names = [hub_name, *peer_names(hub_name)][:hubs]
        federation = [
            DemoHub(name=name, port=hub_port, folder=ROOT / "var" / name)
            for name, hub_port in zip(names, ports[:hubs], strict=True)
        ]
        hub = federation[0]
        # Every check comes before anything under var/ is removed: a second demo must never wipe
        # the database and key of one that is running.
        locks = []
        try:
            for member in federation:
                locks.append(claim_demo(member))
            for member in federation:
                refuse_if_port_taken(member)
        except CommandError:
            for lock in locks:
                lock.release()
            raise
        # SIGTERM (kill, a supervisor, a CI timeout) stops the hubs' processes as Ctrl-C does.
        signal.signal(signal.SIGTERM, _stop_on_signal)
        signal.signal(signal.SIGHUP, _stop_on_signal)
        try:
            for member in federation:
                shutil.rmtree(member.folder, ignore_errors=True)
            self.say(
                f"Setting up hub {hub.hub_id}: SQLite in {hub.folder.relative_to(ROOT)}, "
                "file-system broker"
            )
            for peer in federation[1:]:
                self.say(
                    f"Setting up its peer {peer.hub_id}: SQLite in "
                    f"{peer.folder.relative_to(ROOT)}, file-system broker"
                )
            people = self.set_up(federation)
            for member in federation:
                member.start()
            for member in federation:
                self.wait_until_up(member)
            if len(federation) > 1:
                self.say(
                    "The hubs are peered with each other (manage.py peer add / "
                    "set-outbound-token: hub keys pinned, tokens exchanged, inbound policy trust)"
                )
                self.witness_each_other(federation, people)
                self.say(
                    "Each hub witnesses the others' logs (manage.py witnessed_logs add / "
                    "hub_witnesses add): it cosigns their checkpoints, and they ask it to"
                )
            self.walkthrough(hub, people, contributions, peers=federation[1:])
            self.show_next_steps(hub, people, keep_running=keep_running, peers=federation[1:])
            if keep_running:
                self.say(
                    "The hubs stay up; press Ctrl-C to stop."
                    if len(federation) > 1
                    else "The hub stays up; press Ctrl-C to stop."
                )
                while True:
                    for member in federation:
                        member.check_alive()
                    time.sleep(1)
        except KeyboardInterrupt:
            pass
        except CommandError as error:
            # A process that died explains a failed step better than the step's own error.
            deaths = [death for member in federation for death in member.deaths()]
            if deaths and not isinstance(error, HubDied):
                raise HubDied(f"{error}\n" + "\n".join(deaths)) from error
            raise
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            with ThreadPoolExecutor(max_workers=len(federation)) as pool:
                list(pool.map(DemoHub.stop, federation))
            self.say("Stopped the hub." if len(federation) == 1 else "Stopped the hubs.")
            for lock in locks:
                lock.release()

    def set_up(self, federation: list[DemoHub]) -> dict:
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
        people, commands = self.people_commands(hub)
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
        outputs = self.in_parallel(
            federation, lambda member: member.manage_many(per_hub[member.name])
        )
        self.collect_people(people, outputs[hub.name])
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
        self.in_parallel(federation, lambda member: member.manage_many(exchange[member.name]))
        return people

    def people_commands(self, hub: DemoHub) -> tuple[dict, list[list[str]]]:
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

    def collect_people(self, people: dict, outputs: list[str]) -> None:
        for user, text in zip(people.pop("_order"), outputs, strict=False):
            people[user].update(last_json(text))

    def in_parallel(self, federation: list[DemoHub], call) -> dict:
        """``call(hub)`` for every hub at once (each runs its own processes); results by name."""
        with ThreadPoolExecutor(max_workers=len(federation)) as pool:
            return dict(
                zip((hub.name for hub in federation), pool.map(call, federation), strict=True)
            )

    def witness_each_other(self, federation: list[DemoHub], people: dict) -> None:
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
        self.in_parallel(federation, lambda member: member.manage_many(commands[member.name]))
        people["witnesses"] = {member.name: keys[member.name][1] for member in federation}

    def wait_until_up(self, hub: DemoHub) -> None:
        client = ConcordatClient(hub.url, timeout=2)
        for _ in range(150):
            hub.check_alive()
            try:
                if client.get("/api/v1/hub/")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise CommandError(f"hub {hub.hub_id} did not answer in 30 s")

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
        python = shlex.quote(_relative(Path(sys.executable)))
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
        "--state-dir", _relative(hub.folder / "auditor-state"),
    ]  # fmt: skip


def checkpoint_size(note: str) -> int:
    """The tree size of a signed checkpoint note (its second line); 0 for anything else."""
    lines = str(note).split("\n")
    return int(lines[1]) if len(lines) > 1 and lines[1].isdigit() else 0


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def _signal_group(popen: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, signum)


def _stop_on_signal(signum, frame) -> None:
    raise KeyboardInterrupt


@dataclass
class DemoLock:
    """``var/NAME.lock``, held (flock) by the demo running hub NAME."""

    path: Path
    file: object

    def release(self) -> None:
        """Remove the file, then let go of the lock: no lock file is left behind, and no other
        demo can take the lock on the old file meanwhile (it is still held while unlinked)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.file.close()


def claim_demo(hub: DemoHub) -> DemoLock:
    """Hold ``var/NAME.lock`` for as long as this demo runs; refuse if another demo holds it.

    An advisory lock (flock) is released by the kernel when its holder exits, however it exits,
    so a crashed demo never leaves a stale lock that blocks the next one (its file may stay;
    a demo that ends or is refused removes it). The file also names the holder's pid."""
    path = hub.folder.parent / f"{hub.name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "unknown"
        lock.close()
        raise CommandError(
            f"Another demo (pid {holder}) is running hub {hub.name!r} in "
            f"{_relative(hub.folder)}; nothing was changed. Stop it first (Ctrl-C in its terminal, "
            f"or kill {holder}), or give this one another --hub-name and --port."
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return DemoLock(path=path, file=lock)


def refuse_if_port_taken(hub: DemoHub) -> None:
    with socket.socket() as probe:
        # SO_REUSEADDR: a port left in TIME_WAIT by a finished demo is free; a listener is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", hub.port))
        except OSError:
            raise CommandError(
                f"Port {hub.port} on 127.0.0.1 is already in use (another demo or server?); "
                f"nothing was changed. Stop it, or choose another port: "
                f"make demo DEMO_ARGS='--port 8711 --hub-name demo2'."
            ) from None


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


def peer_names(name: str) -> list[str]:
    """The peers' names: ``hub-a`` has ``hub-b`` and ``hub-c``; any other NAME, NAME-b and NAME-c."""
    base = name[:-2] if name.endswith("-a") else name
    return [f"{base}-b", f"{base}-c"]


def peer_add(other: DemoHub) -> list[str]:
    """The ``manage.py peer add`` that links to ``other``, trusting its vetting."""
    return [
        "peer", "add", "--hub-id", other.hub_id, "--name", other.name, "--url", other.url,
        "--public-key", other.public_key, "--inbound-policy", "trust",
    ]  # fmt: skip


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def expect(answer: tuple[int, object], statuses, what: str):
    """The body of an expected answer; anything else stops the demo with the hub's error."""
    status, body = answer
    if status not in (statuses if isinstance(statuses, tuple) else (statuses,)):
        raise CommandError(f"could not {what}: HTTP {status} {body}")
    return body
