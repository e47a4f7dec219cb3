"""`make demo`: start a hub on localhost with no database or broker server (SQLite and a
file-system Celery transport), then act out a day of hash sharing against it over HTTP.

Each hub runs as real processes (gunicorn and a Celery worker with beat), so the same walkthrough
grows into a federation of several hubs when propagation arrives.

A demo refuses to start, before it changes anything under ``var/``, while another demo runs the
same hub (``var/NAME.lock``) or its port is taken; Ctrl-C, SIGTERM and SIGHUP stop the hub's
processes with it. It ends by printing the tokens and commands a newcomer needs next.
"""

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
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from federation.partner_client import ConcordatClient, ContributionSigner

ROOT = Path(settings.BASE_DIR)
ADMIN_PASSWORD = "demo-admin-pw"  # noqa: S105 (a throwaway demo login, printed for the user)
AUDITOR_PASSWORD = "demo-auditor-pw"  # noqa: S105


@dataclass
class DemoHub:
    name: str
    port: int
    folder: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

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

    def start(self) -> None:
        logs = self.folder / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        web_log = (logs / "web.log").open("wb")
        worker_log = (logs / "worker.log").open("wb")
        self.processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "federation.wsgi", "--bind", f"127.0.0.1:{self.port}",
                 "--workers", "1", "--threads", "4", "--timeout", "300"],
                cwd=ROOT, env=self.env, stdout=web_log, stderr=subprocess.STDOUT,
            )
        )  # fmt: skip
        self.processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "settings.celery", "worker", "--beat",
                 "--pool", "solo", "--loglevel", "WARNING", "--queues", f"concordat-{self.name},concordat-{self.name}.incident",
                 "--schedule", str(self.folder / "beat-schedule"), "--without-gossip", "--without-mingle"],
                cwd=ROOT, env=self.env, stdout=worker_log, stderr=subprocess.STDOUT,
            )
        )  # fmt: skip

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


class Command(BaseCommand):
    help = "Run a Concordat hub on localhost and show it at work (no servers needed)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--port", type=int, default=8701, help="The hub's port on 127.0.0.1 (must be free)."
        )
        parser.add_argument(
            "--hub-name", default="hub-a", help="Names the hub and its folder var/NAME."
        )
        parser.add_argument("--contributions", type=int, default=300)
        parser.add_argument(
            "--keep-running", action="store_true", help="Leave the hub up until Ctrl-C when done."
        )

    def handle(
        self, *args, port: int, hub_name: str, contributions: int, keep_running: bool, **options
    ):
        if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
            raise CommandError(
                "Run the demo with DJANGO_SETTINGS_MODULE=settings.demo (make demo does)."
            )
        hub = DemoHub(name=hub_name, port=port, folder=ROOT / "var" / hub_name)
        # Both checks come before anything under var/ is removed: a second demo must never wipe
        # the database and key of one that is running.
        lock = claim_demo(hub)
        refuse_if_port_taken(hub)
        # SIGTERM (kill, a supervisor, a CI timeout) stops the hub's processes as Ctrl-C does.
        signal.signal(signal.SIGTERM, _stop_on_signal)
        signal.signal(signal.SIGHUP, _stop_on_signal)
        try:
            shutil.rmtree(hub.folder, ignore_errors=True)
            self.say(
                f"Setting up hub {hub.hub_id}: SQLite in {hub.folder.relative_to(ROOT)}, "
                "file-system broker"
            )
            hub.manage("migrate", "--noinput")
            hub.manage("hub_keygen")
            people = self.create_people(hub)
            hub.start()
            self.wait_until_up(hub)
            self.walkthrough(hub, people, contributions)
            self.show_next_steps(hub, people, keep_running=keep_running)
            if keep_running:
                self.say("The hub stays up; press Ctrl-C to stop.")
                while all(process.poll() is None for process in hub.processes):
                    time.sleep(1)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            hub.stop()
            self.say("Stopped the hub.")
            lock.close()

    def create_people(self, hub: DemoHub) -> dict:
        people = {}
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
                registration.write_text(json.dumps(signed))
                options += ["--key-registration", str(registration)]
            person = json.loads(hub.manage(*options).strip().splitlines()[-1])
            person["private_key"] = private_key
            people[user] = person
        for user, role, password in [
            ("admin", "consortium-admin", ADMIN_PASSWORD),
            ("auditor", "auditor", AUDITOR_PASSWORD),
        ]:
            args = [
                "create_staff",
                "--user",
                user,
                "--role",
                role,
                "--password",
                password,
                "--token",
            ]
            people[user] = json.loads(hub.manage(*args).strip().splitlines()[-1])
        return people

    def wait_until_up(self, hub: DemoHub) -> None:
        client = ConcordatClient(hub.url, timeout=2)
        for _ in range(150):
            if any(process.poll() is not None for process in hub.processes):
                raise CommandError(f"a hub process exited; see {hub.folder / 'logs'}")
            try:
                if client.get("/api/v1/hub/")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise CommandError("the hub did not answer in 30 s")

    def walkthrough(self, hub: DemoHub, people: dict, count: int) -> None:
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
        self.say(f"globex's reviewer gus opens the review queue: {len(pending)} entries on page 1")
        for entry in pending[:3]:
            body = expect(
                gus.post(f"/api/v1/entries/{entry['id']}/approve/", {"reason": "matches our copy"}),
                200,
                "approve an entry",
            )
            self.say(
                f"  gus approves entry {entry['id']} ({entry['signal_type']}): now {body['entry_state']}"
            )
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
        self.show_log(hub, people)

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
            status, note = auditor.get("/api/v1/log/checkpoint")
            if status == 200 and self.unsequenced_events(hub) == 0:
                break
            time.sleep(0.5)
        self.say(
            "Latest signed checkpoint:\n"
            + "\n".join("    " + line for line in str(note).splitlines())
        )
        state = hub.folder / "verifier-state.json"
        verify = [
            sys.executable, "federation/transparency/verifier.py", "--hub", hub.url, "--key", vkey,
            "--token", people["auditor"]["token"], "--state", str(state),
        ]  # fmt: skip
        done = subprocess.run(verify, cwd=ROOT, capture_output=True, text=True)
        self.say(
            f"An auditor runs the standalone verifier with the pinned hub key (exit {done.returncode}):"
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
        done = subprocess.run(verify, cwd=ROOT, capture_output=True, text=True)
        self.say(
            f"Someone edits audit event at leaf 3 directly in the database ({original!r} -> "
            f"'mallory'); the verifier runs again (exit {done.returncode}):"
        )
        self.indent(done.stdout + done.stderr)
        with database:
            database.execute(
                "UPDATE federation_auditevent SET organisation = ? WHERE leaf_index = 3", [original]
            )
        database.close()
        if done.returncode == 0:
            raise CommandError("the verifier missed a rewritten audit event")

    def show_next_steps(self, hub: DemoHub, people: dict, *, keep_running: bool) -> None:
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
        self.say("  Verify the transparency log with the hub key pinned:")
        self.say(
            f"    $ {python} federation/transparency/verifier.py --hub {hub.url} "
            f"--key {shlex.quote(people.get('vkey', 'VKEY'))} --token {auditor['token']}"
        )
        self.say(
            "Run manage.py against this hub's database (CONCORDAT_DEMO_NAME names the hub, "
            "as --hub-name does):"
        )
        self.say(
            f"    $ {manage_env} {python} manage.py create_member --org newco --user nina "
            "--role submitter --token"
        )
        if not keep_running:
            self.say(
                "The hub stops when this demo ends; to keep it up for the commands above, run "
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


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def _stop_on_signal(signum, frame) -> None:
    raise KeyboardInterrupt


def claim_demo(hub: DemoHub):
    """Hold ``var/NAME.lock`` for as long as this demo runs; refuse if another demo holds it.

    An advisory lock (flock) is released by the kernel when its holder exits, however it exits,
    so a crashed demo never leaves a stale lock behind. The file also names the holder's pid."""
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
    return lock


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
                f"make demo DEMO_ARGS='--port 8702 --hub-name hub-b'."
            ) from None


def expect(answer: tuple[int, object], statuses, what: str):
    """The body of an expected answer; anything else stops the demo with the hub's error."""
    status, body = answer
    if status not in (statuses if isinstance(statuses, tuple) else (statuses,)):
        raise CommandError(f"could not {what}: HTTP {status} {body}")
    return body
