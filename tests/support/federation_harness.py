"""Run a federation of real hubs for integration tests and benchmarks, on top of harness.py.

Each hub is a gunicorn process and a Celery worker (with embedded beat) consuming the hub's own
queue and its incident lane (``<queue>`` and ``<queue>.incident``, as docs/federation.md says every
worker must), on its own PostgreSQL database, with Redis as the broker, on 127.0.0.1:

    with running_federation("a", "b", "c") as fed:
        a, b, c = fed.hubs
        fed.link(a, b)                       # both directions: keys pinned, tokens exchanged
        fed.link(b, c, inbound_policy="review")
        fed.know(a, c)                       # a checks c's signatures; no link
        alice = a.member("acme", trusted=True)
        sent = alice.submit([alice.add("md5", "…", ["propaganda"])])
        c.wait_for_contributions([item_uuid(x) for x in sent], timeout=10)

Peering goes through ``manage.py peer`` exactly as an operator would run it (the contract's CLI).
Hubs start fast: one migrated database per test process is the template that every hub's database
is cloned from (``CREATE DATABASE … TEMPLATE``, a file copy), the hub keys are written here, and
the hubs' processes start in parallel.
"""

import atexit
import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.demo import processes
from federation.demo.processes import parallel
from federation.partner_client import ContributionSigner
from tests.support.arrivals import Arrivals, arrivals_after
from tests.support.harness import (
    BROKER_URL,
    PG_ADMIN_URL,
    ROOT,
    Hub,
    free_port,
    report_failure_logs,
    wait_for,
)

# Federation settings for hubs under test: retries and the pull safety net within seconds.
# The pull interval is an hour by default (push must work alone; a test that needs pull sets
# it); ``CONCORDAT_IT_PULL_INTERVAL_SECONDS`` runs every hub with pulls on, e.g. at the
# deployment default of 60 s, so that the suite also runs with pushes and pulls interleaved.
PULL_INTERVAL_SECONDS = os.environ.get("CONCORDAT_IT_PULL_INTERVAL_SECONDS", "3600")
FAST_FEDERATION_ENV = {
    "CONCORDAT_SEQUENCE_INTERVAL_SECONDS": "2",
    "CONCORDAT_FEDERATION_PULL_INTERVAL_SECONDS": PULL_INTERVAL_SECONDS,
    "CONCORDAT_FEDERATION_SWEEP_INTERVAL_SECONDS": "2",
    "CONCORDAT_FEDERATION_BACKOFF_BASE_MS": "500",
    "CONCORDAT_FEDERATION_BACKOFF_MAX_SECONDS": "3",
    "CONCORDAT_FEDERATION_LEASE_SECONDS": "5",
}

_template_lock = threading.Lock()
_template: str | None = None


def _admin(query: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
        connection.execute(query)


def template_database() -> str:
    """A database migrated once per test process with the code under test; hubs clone it."""
    global _template
    with _template_lock:
        if _template is None:
            name = f"concordat_it_template_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            _admin(f'CREATE DATABASE "{name}"')
            atexit.register(_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            env = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "settings.base",
                "DJANGO_SECRET_KEY": "integration-template",
                "DATABASE_URL": PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name,
            }
            done = subprocess.run(
                [sys.executable, "manage.py", "migrate", "--noinput"],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            if done.returncode != 0:
                raise RuntimeError(f"migrating the template failed:\n{done.stderr[-3000:]}")
            _template = name
        return _template


def item_uuid(item: dict) -> str:
    return item["contribution"]["uuid"]


@dataclass
class Member:
    """A member organisation of one hub, with a registered signing key and an API token."""

    hub: "FederationHub"
    org: str
    private_key: Ed25519PrivateKey
    key_id: str
    token: str
    user: str

    @property
    def signer(self) -> ContributionSigner:
        return ContributionSigner(self.private_key, self.hub.hub_id, self.org, self.key_id)

    @property
    def public_key_raw(self) -> bytes:
        return self.private_key.public_key().public_bytes_raw()

    def add(self, signal_type: str = "md5", value: str | None = None, labels=None, **kw) -> dict:
        value = value or random_value(signal_type)
        return self.signer.add(signal_type, value, list(labels or ["propaganda"]), **kw)

    def retract(self, signal_type: str, value: str, **kw) -> dict:
        return self.signer.retract(signal_type, value, **kw)

    def submit(self, items: list[dict], *, timeout: float = 300) -> dict:
        """Submit signed contributions in bulk requests of at most 10,000; all must be created."""
        results: dict[str, Any] = {"created": 0, "results": []}
        for start in range(0, len(items), 10_000):
            chunk = items[start : start + 10_000]
            status, body = self.hub.request(
                "POST",
                "/api/v1/contributions/bulk/",
                json_body={"items": chunk},
                token=self.token,
                timeout=timeout,
            )
            if status != 200 or body["created"] != len(chunk):
                raise AssertionError(f"{self.hub.name}: bulk submit answered {status}: {body}")
            results["created"] += body["created"]
            results["results"].extend(body["results"])
        return results

    def submit_one(self, item: dict) -> dict:
        status, body = self.hub.request(
            "POST", "/api/v1/contributions/", json_body=item, token=self.token
        )
        if status not in (200, 201):
            raise AssertionError(f"{self.hub.name}: submit answered {status}: {body}")
        return body


def random_value(signal_type: str) -> str:
    digest = uuid.uuid4().hex + uuid.uuid4().hex
    return digest[:32] if signal_type == "md5" else digest


@dataclass
class FederationHub(Hub):
    """A hub of a federation whose web and worker processes can be stopped, started and killed."""

    port: int = 0
    queue: str = ""
    hub_key: Ed25519PrivateKey | None = None
    web: subprocess.Popen | None = None
    worker: subprocess.Popen | None = None
    incident_worker: subprocess.Popen | None = None
    web_workers: int = 1
    worker_concurrency: int = 2

    # --- identity -------------------------------------------------------------------------------

    @property
    def public_key_raw(self) -> bytes:
        return self.hub_key.public_key().public_bytes_raw()

    @property
    def public_key_b64(self) -> str:
        return base64.b64encode(self.public_key_raw).decode()

    # --- processes ------------------------------------------------------------------------------

    def start_web(self) -> None:
        assert self.web is None or self.web.poll() is not None, f"{self.name}: web is running"
        self.web = processes.spawn(
            processes.web_command(port=self.port, workers=self.web_workers, threads=4),
            cwd=ROOT, env=self.env, log=self.workdir / "web.log", append=True,
        )  # fmt: skip

    def wait_web(self, timeout: float = 60) -> None:
        def ready():
            if self.web.poll() is not None:
                raise RuntimeError(f"{self.name}: gunicorn exited:\n{self.log_tail('web.log')}")
            return self.answers()

        wait_for(ready, timeout=timeout, interval=0.1, what=f"hub {self.name} to answer")

    def start_worker(self, *, incident: bool = True) -> None:
        """The deployment docs/federation.md recommends: a worker (with beat) for the hub's queue,
        and a worker of its own for the incident lane, which a backlog cannot occupy: four
        threads, so that one peer's incident drain does not wait for another's (``incident=False``:
        the hub's worker alone, the incident worker left as it is)."""
        assert self.worker is None or self.worker.poll() is not None, f"{self.name}: worker runs"
        self.worker = self._celery(
            "--beat", "--concurrency", str(self.worker_concurrency), "--queues", self.queue,
            "--schedule", str(self.workdir / "beat-schedule"), "--hostname", f"{self.queue}@%h",
        )  # fmt: skip
        if incident:
            self.incident_worker = self._celery(
                "--pool", "threads", "--concurrency", "4", "--queues", f"{self.queue}.incident",
                "--hostname", f"{self.queue}.incident@%h",
            )  # fmt: skip

    def _celery(self, *arguments: str) -> subprocess.Popen:
        return processes.spawn(
            processes.worker_command(*arguments),
            cwd=ROOT, env=self.env, log=self.workdir / "worker.log", append=True,
        )  # fmt: skip

    def stop_web(self) -> None:
        processes.stop_groups([self.web])
        self.web = None

    def stop_worker(self, *, incident: bool = True) -> None:
        """Stop the hub's worker and (``incident``) the incident lane's."""
        processes.stop_groups([self.worker])
        self.worker = None
        if incident:
            processes.stop_groups([self.incident_worker])
            self.incident_worker = None

    def settle(self) -> None:
        """Do now, in a process of its own, the work a worker would do after the changes so far:
        sequence the audit log and the sync stream (what a bulk ingest leaves to the worker)."""
        self.manage_many(
            [
                ["sync_sequence"],
                ["shell", "-c", "from federation.transparency.sequencer import sequence_pending;"
                 " sequence_pending()"],
            ]
        )  # fmt: skip

    def kill_worker(self) -> None:
        """SIGKILL the workers, their pool children and beat at once, as a crash would."""
        processes.kill_groups([self.worker, self.incident_worker])
        self.worker = self.incident_worker = None

    def stop(self, *, kill: bool = False) -> None:
        """Stop the processes (gracefully, or with SIGKILL when the hub is thrown away)."""
        if kill:
            processes.kill_groups([self.worker, self.incident_worker, self.web])
            self.worker = self.incident_worker = self.web = None
        self.stop_worker()
        self.stop_web()

    def log_tail(self, name: str, lines: int = 60) -> str:
        return "\n".join(processes.log_tail(self.workdir / name, lines))

    # --- members and contributions --------------------------------------------------------------

    def member(
        self, org: str, *, trusted: bool = False, role: str = "submitter", user: str | None = None
    ) -> Member:
        private_key = Ed25519PrivateKey.generate()
        user = user or f"{org}-{uuid.uuid4().hex[:6]}"
        created = self.create_member(
            org=org, user=user, role=role, trusted=trusted, signing_key=private_key
        )
        return Member(self, org, private_key, created["key_id"], created["token"], user)

    def staff_token(self, role: str = "consortium-admin") -> str:
        return self.create_staff(user=f"staff-{uuid.uuid4().hex[:6]}", role=role)["token"]

    def contributions_present(self, uuids: Iterable[str]) -> int:
        return self.sql(
            "SELECT count(*) FROM federation_contribution WHERE uuid = ANY(%s::uuid[])",
            (list(uuids),),
        )[0][0]

    def wait_for_contributions(
        self, uuids: list[str], *, timeout: float = 30, interval: float = 0.1
    ) -> float:
        """Wait until every contribution is stored here; returns when (time.monotonic())."""
        wait_for(
            lambda: self.contributions_present(uuids) == len(uuids),
            timeout=timeout,
            interval=interval,
            what=f"{len(uuids)} contributions on hub {self.name} "
            f"(has {self.contributions_present(uuids)})",
        )
        return time.monotonic()

    def contribution_mark(self) -> int:
        """The highest contribution id stored here: ``wait_for_count_after`` counts from it."""
        return self.sql("SELECT coalesce(max(id), 0) FROM federation_contribution")[0][0]

    def wait_for_count_after(
        self, mark: int, count: int, *, timeout: float = 900, interval: float = 0.1
    ) -> float:
        """Wait until ``count`` contributions with ids above ``mark`` are stored; returns when."""
        return self.arrivals_after(mark, count, timeout=timeout, interval=interval).done_at

    def arrivals_after(
        self, mark: int, count: int, *, timeout: float = 900, interval: float = 0.1
    ) -> Arrivals:
        """``tests.support.arrivals.arrivals_after`` on this hub: also the first arrival."""
        what = f"{count} contributions on hub {self.name}"
        return arrivals_after(
            self.database_url, what, mark, count, timeout=timeout, interval=interval
        )

    def entry_state(self, signal_type: str, value: str) -> str | None:
        rows = self.sql(
            "SELECT state FROM federation_entry WHERE signal_type = %s AND value = %s",
            (signal_type, value),
        )
        return rows[0][0] if rows else None

    def wait_for_entry_state(
        self, signal_type: str, value: str, state: str, *, timeout: float = 30
    ) -> None:
        wait_for(
            lambda: self.entry_state(signal_type, value) == state,
            timeout=timeout,
            what=f"entry {signal_type}:{value[:12]} to be {state} on hub {self.name} "
            f"(is {self.entry_state(signal_type, value)})",
        )

    def outbox_pending(self) -> int:
        return self.sql("SELECT count(*) FROM federation_outboxitem WHERE state = 'pending'")[0][0]

    def outbox_states(self) -> dict[str, int]:
        rows = self.sql("SELECT state, count(*) FROM federation_outboxitem GROUP BY state")
        return dict(rows)

    def sync_position(self) -> int:
        """The last position of this hub's change stream (what its feed offers up to)."""
        rows = self.sql("SELECT last_position FROM federation_syncstate WHERE id = 1")
        return rows[0][0] if rows else 0

    def pull_cursor(self, other: "FederationHub") -> int | None:
        """Where this hub's pulls of ``other``'s feed have reached (None: no link)."""
        rows = self.sql(
            "SELECT l.pull_cursor FROM federation_peerlink l JOIN members_peer p "
            "ON p.id = l.peer_id WHERE p.hub_id = %s",
            (other.hub_id,),
        )
        return rows[0][0] if rows else None

    def log_settled(self) -> bool:
        """Every audit event is sequenced and the newest checkpoint covers them all."""
        unsequenced, leaves, signed = self.sql(
            "SELECT (SELECT count(*) FROM federation_auditevent WHERE leaf_index IS NULL), "
            "(SELECT count(*) FROM federation_auditevent), "
            "(SELECT coalesce(max(tree_size), 0) FROM federation_checkpoint)"
        )[0]
        return unsequenced == 0 and signed == leaves

    def audit(self, action: str) -> list[dict]:
        rows = self.sql(
            "SELECT object_id, data FROM federation_auditevent WHERE action = %s ORDER BY id",
            (action,),
        )
        return [{"object_id": object_id, **data} for object_id, data in rows]

    # --- peering (the contract's manage.py peer CLI) ---------------------------------------------

    def peer(self, *args: str) -> str:
        return self.manage("peer", *args)

    def manage_many(self, commands: list[list[str]]) -> list[str]:
        """Run management commands one after the other in one process; their outputs."""
        return processes.manage_many(commands, cwd=ROOT, env=self.env, timeout=300)

    def peer_add_args(
        self,
        other: "FederationHub",
        *,
        link: bool = True,
        inbound_policy: str | None = None,
        scopes: Iterable[str] | None = None,
        labels: Iterable[str] | None = None,
        signal_types: Iterable[str] | None = None,
    ) -> list[str]:
        """The ``manage.py peer add`` that registers ``other`` here (with its URL: a link)."""
        args = ["peer", "add", "--hub-id", other.hub_id, "--name", other.name,
                "--public-key", other.public_key_b64]  # fmt: skip
        if link:
            args += ["--url", other.url]
        if inbound_policy:
            args += ["--inbound-policy", inbound_policy]
        for flag, values in (("--scopes", scopes), ("--labels", labels),
                             ("--signal-types", signal_types)):  # fmt: skip
            if values:
                args += [flag, ",".join(values)]
        return args

    def peer_update(self, other: "FederationHub", **options: str) -> None:
        args = ["update", "--hub-id", other.hub_id]
        for name, value in options.items():
            args += ["--" + name.replace("_", "-"), value]
        self.peer(*args)


VERIFIER = ROOT / "client" / "concordat_client" / "verifier.py"
CROSSCHECK = VERIFIER.with_name("crosscheck.py")


def reconcile_hubs(a: FederationHub, b: FederationHub) -> subprocess.CompletedProcess:
    """Run ``crosscheck.py reconcile-hubs`` on two hubs' logs, as an auditor holding an auditor
    token on each would (a clean environment: the verifier needs no project code)."""
    tokens = [hub.create_staff(user=f"auditor-{uuid.uuid4().hex[:6]}", role="auditor")["token"]
              for hub in (a, b)]  # fmt: skip
    for hub in (a, b):  # the staff creation is itself an event: wait for it to be signed
        wait_for(hub.log_settled, timeout=60, what=f"hub {hub.name}'s log to be checkpointed")
    return subprocess.run(
        [sys.executable, str(CROSSCHECK), "reconcile-hubs",
         "--hub-a", a.url, "--key-a", a.log_vkey, "--token-a", tokens[0],
         "--hub-b", b.url, "--key-b", b.log_vkey, "--token-b", tokens[1]],
        cwd=a.workdir, capture_output=True, text=True, timeout=600,
        env={"PATH": "/usr/bin:/bin", "HOME": str(a.workdir)},
    )  # fmt: skip


@dataclass
class Federation:
    hubs: list[FederationHub]
    # (a, b) -> the token hub a presents to hub b (issued by b's ``peer add``)
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> FederationHub:
        return next(hub for hub in self.hubs if hub.name == name)

    def link(
        self,
        a: FederationHub,
        b: FederationHub,
        *,
        inbound_policy: str = "trust",
        scopes: Iterable[str] | None = None,
        labels: Iterable[str] | None = None,
        signal_types: Iterable[str] | None = None,
    ) -> None:
        """Peer a and b both ways with the same policies: each pins the other's key with its URL
        (``peer add``), and presents the token the other issued (``peer set-outbound-token``)."""
        self.peer_up([(a, b)], inbound_policy=inbound_policy, scopes=scopes, labels=labels,
                     signal_types=signal_types)  # fmt: skip

    def triangle(self, **policy) -> None:
        a, b, c = self.hubs[:3]
        self.peer_up([(a, b), (b, c), (a, c)], **policy)

    def know(self, a: FederationHub, c: FederationHub) -> None:
        """a registers c by its key only (no URL): c's signatures can be checked at a."""
        self.peer_up([], known=[(a, c)])

    def peer_up(
        self,
        links: list[tuple[FederationHub, FederationHub]],
        *,
        known: list[tuple[FederationHub, FederationHub]] = (),
        inbound_policy: str = "trust",
        **policy,
    ) -> None:
        """Several links (both ways, same policy) and key-only registrations at once: first every
        hub runs its ``peer add`` commands, then every hub its ``peer set-outbound-token`` with
        the tokens the others issued (one process per hub and step, all hubs in parallel)."""
        adds: dict[str, list[tuple[FederationHub, list[str]]]] = {h.name: [] for h in self.hubs}
        for a, b in [*links, *((b, a) for a, b in links)]:
            adds[a.name].append((b, a.peer_add_args(b, inbound_policy=inbound_policy, **policy)))
        for a, c in known:
            adds[a.name].append((c, a.peer_add_args(c, link=False)))
        outputs = parallel(
            lambda hub=hub: hub.manage_many([args for _other, args in adds[hub.name]])
            for hub in self.hubs
        )
        exchange: dict[str, list[list[str]]] = {h.name: [] for h in self.hubs}
        for hub, texts in zip(self.hubs, outputs, strict=True):
            for (other, args), text in zip(adds[hub.name], texts, strict=True):
                if "--url" not in args:
                    continue
                token = json.loads(text.strip().splitlines()[-1])["inbound_token"]
                self.tokens[(other.name, hub.name)] = token
                exchange[other.name].append(
                    ["peer", "set-outbound-token", "--hub-id", hub.hub_id, "--token", token]
                )
        parallel(lambda hub=hub: hub.manage_many(exchange[hub.name]) for hub in self.hubs)


def _new_hub(
    name: str, extra_env: dict | None, web_workers: int, concurrency: int
) -> FederationHub:
    suffix = uuid.uuid4().hex[:8]
    database = f"concordat_it_{name}_{suffix}"
    workdir = Path(tempfile.mkdtemp(prefix=f"concordat-fed-{name}-"))
    port = free_port()
    queue = f"concordat-{name}-{suffix}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "settings.base",
        "DJANGO_SECRET_KEY": f"integration-{suffix}",
        "DATABASE_URL": PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + database,
        "DATABASE_CONN_MAX_AGE": "60",
        "CELERY_BROKER_URL": BROKER_URL,
        "CELERY_RESULT_BACKEND": BROKER_URL,
        "CONCORDAT_CELERY_QUEUE": queue,
        "CONCORDAT_HUB_ID": f"{name}.hub.test",
        "CONCORDAT_HUB_KEY_PATH": str(workdir / "hub-key.pem"),
        "CONCORDAT_LOG_LEVEL": "WARNING",
        **FAST_FEDERATION_ENV,
        **(extra_env or {}),
    }
    hub_key = Ed25519PrivateKey.generate()
    key_path = workdir / "hub-key.pem"
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        hub_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return FederationHub(
        name=name,
        hub_id=env["CONCORDAT_HUB_ID"],
        url=f"http://127.0.0.1:{port}",
        database=database,
        env=env,
        workdir=workdir,
        port=port,
        queue=queue,
        hub_key=hub_key,
        web_workers=web_workers,
        worker_concurrency=concurrency,
    )


@contextlib.contextmanager
def running_federation(
    *names: str,
    worker: bool = True,
    extra_env: dict | None = None,
    env_by_hub: dict[str, dict] | None = None,
    web_workers: int = 1,
    worker_concurrency: int = 2,
) -> Iterator[Federation]:
    """Start one hub per name (cloned database, key, gunicorn, Celery worker) and tear them down."""
    template = template_database()
    hubs = [
        _new_hub(name, {**(extra_env or {}), **(env_by_hub or {}).get(name, {})},
                 web_workers, worker_concurrency)
        for name in names
    ]  # fmt: skip
    federation = Federation(hubs)
    failed = False
    try:
        for hub in hubs:  # a template may be copied by one CREATE DATABASE at a time
            _admin(f'CREATE DATABASE "{hub.database}" TEMPLATE "{template}"')
        for hub in hubs:
            hub.start_web()
            if worker:
                hub.start_worker()
        parallel(hub.wait_web for hub in hubs)
        yield federation
    except BaseException:
        failed = True
        raise
    finally:
        for hub in hubs:  # thrown away with its database: no need for a warm shutdown
            hub.stop(kill=True)
        parallel(
            lambda hub=hub: _admin(f'DROP DATABASE IF EXISTS "{hub.database}" WITH (FORCE)')
            for hub in hubs
        )
        for hub in hubs:
            if failed:
                report_failure_logs(hub.name, hub.workdir)
            elif os.environ.get("CONCORDAT_IT_KEEP_LOGS"):
                print(f"hub {hub.name} logs kept in {hub.workdir}")
            else:
                shutil.rmtree(hub.workdir, ignore_errors=True)
