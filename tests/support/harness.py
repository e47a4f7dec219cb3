"""Run real hubs for integration tests: each hub is a gunicorn process (and, when asked, a Celery
worker with embedded beat) on its own PostgreSQL database and Celery queue, on 127.0.0.1.

    with running_hub("a", worker=True) as hub:
        member = hub.create_member(org="acme", user="alice", role="submitter", signing_key=key)
        status, body = hub.request("POST", "/api/v1/contributions/", json=..., token=member["token"])
        hub.sql("UPDATE federation_auditevent SET ...", bypass_triggers=True)
"""

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from cryptography.hazmat.primitives import serialization

from federation.demo import processes
from federation.demo.processes import wait_for

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN_URL = os.environ.get("CONCORDAT_IT_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
BROKER_URL = os.environ.get("CONCORDAT_IT_BROKER", "redis://127.0.0.1:6379/0")


def report_failure_logs(name: str, workdir: Path, *, lines: int = 40) -> None:
    """After a failed test: say where hub ``name``'s logs are kept and print their last lines
    (pytest shows a failed test's captured output with its report). The folder is not removed."""
    print(f"--- hub {name}: logs kept in {workdir}", file=sys.stderr)
    for log in sorted(workdir.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        print(f"--- {log} (last {len(tail)} lines)", file=sys.stderr)
        for line in tail:
            print(f"    {line}", file=sys.stderr)


# The ports ``free_port`` handed out in this process: never handed out twice.
_PORTS_GIVEN: set[int] = set()
_PORTS_LOCK = threading.Lock()


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on now and that this process has not handed out
    before. The kernel's pick for a socket bound to port 0 is free only until it is closed, so
    two calls in a row can get the same port back before the first caller's server has bound it:
    two hubs then share one port, and the second's gunicorn gives up binding while the first
    answers for it (``Hub.answers``)."""
    with _PORTS_LOCK:
        while True:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            if port not in _PORTS_GIVEN:
                _PORTS_GIVEN.add(port)
                return port


@dataclass
class Hub:
    name: str
    hub_id: str
    url: str
    database: str
    env: dict[str, str]
    workdir: Path
    processes: list[subprocess.Popen] = field(default_factory=list)
    web_command: list[str] = field(default_factory=list)

    def start_web(self) -> None:
        """Start (or restart) gunicorn on the hub's port and wait until it answers."""
        web = processes.spawn(
            self.web_command, cwd=ROOT, env=self.env, log=self.workdir / "web.log", append=True
        )
        self.processes.insert(0, web)

        def web_ready():
            if web.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {(self.workdir / 'web.log').read_text()}")
            return self.answers()

        wait_for(web_ready, timeout=60, what=f"hub {self.name} to answer")

    def answers(self) -> bool:
        """Whether this hub's web server answers on its port. A server of another hub answering
        there (another process took the port, and this hub's gunicorn could not bind it) is an
        error, not a hub that is up."""
        try:
            status, body = self.request("GET", "/api/v1/hub/", timeout=2)
        except OSError:
            return False
        if status != 200:
            return False
        served = body.get("hub_id") if isinstance(body, dict) else None
        if served != self.hub_id:
            raise RuntimeError(
                f"hub {self.name}: {self.url} is answered by hub {served!r}, not "
                f"{self.hub_id!r}: another server holds the port"
            )
        return True

    def stop_web(self) -> None:
        """Stop gunicorn (the worker keeps running): the hub is unreachable over HTTP."""
        processes.stop_groups([self.processes.pop(0)], timeout=20)

    @property
    def log_vkey(self) -> str:
        return self.request("GET", "/api/v1/log/key")[1]["vkey"]

    @property
    def witness_vkey(self) -> str:
        return self.request("GET", "/api/v1/witness/key")[1]["vkey"]

    @property
    def witness_url(self) -> str:
        return self.url + "/api/v1/witness"

    @property
    def database_url(self) -> str:
        return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + self.database

    def manage(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def create_member(self, *, signing_key=None, **options) -> dict:
        """``manage.py create_member --token``; ``signing_key`` (an Ed25519 private key) is written
        to a PEM file so that the command registers its public key with a proof of possession."""
        args = ["create_member", "--token"]
        if signing_key is not None:
            path = self.workdir / f"signing-key-{uuid.uuid4().hex[:8]}.pem"
            path.write_bytes(
                signing_key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            args += ["--signing-key", str(path)]
        for name, value in options.items():
            flag = "--" + name.replace("_", "-")
            if value is True:
                args.append(flag)
            elif value not in (None, False):
                args += [flag, str(value)]
        return json.loads(self.manage(*args).strip().splitlines()[-1])

    def create_staff(self, *, user: str, role: str, password: str | None = None) -> dict:
        args = ["create_staff", "--token", "--user", user, "--role", role]
        if password:
            args += ["--password", password]
        return json.loads(self.manage(*args).strip().splitlines()[-1])

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body=None,
        token: str | None = None,
        timeout: float = 60,
    ) -> tuple[int, object]:
        data = json.dumps(json_body).encode() if json_body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, _decode(
                    response.read(), response.headers.get_content_type()
                )
        except urllib.error.HTTPError as error:
            return error.code, _decode(error.read(), error.headers.get_content_type())

    def sql(
        self, query: str, params: tuple | None = None, *, bypass_triggers: bool = False
    ) -> list[tuple]:
        """Run SQL as the PostgreSQL superuser; ``bypass_triggers`` switches off the append-only
        triggers for this session first, as an insider with superuser rights could."""
        with psycopg.connect(self.database_url, autocommit=True) as connection:
            if bypass_triggers:
                connection.execute("SET session_replication_role = replica")
            cursor = connection.execute(query, params)
            return cursor.fetchall() if cursor.description else []


def submit(hub, member: dict, private_key, count: int) -> None:
    """``count`` signed md5 contributions by ``member`` (a ``create_member`` answer, the org
    ``acme``), each POSTed and checked accepted."""
    from federation.signing import format_timestamp, sign_contribution

    for _ in range(count):
        document = {
            "kind": "concordat.contribution",
            "v": 1,
            "hub": hub.hub_id,
            "member": "acme",
            "key_id": member["key_id"],
            "uuid": str(uuid.uuid4()),
            "created_at": format_timestamp(datetime.now(UTC).replace(microsecond=0)),
            "action": "add",
            "signal": {"type": "md5", "value": uuid.uuid4().hex},
            "labels": ["propaganda"],
            "scope": "federation",
        }
        body = {"contribution": document, "signature": sign_contribution(private_key, document)}
        status, response = hub.request(
            "POST", "/api/v1/contributions/", json_body=body, token=member["token"]
        )
        assert status == 201, response


def witness_each_other(hubs: list[Hub]) -> None:
    """Make every hub a witness of every other hub's log, through the management commands an
    operator would use: the witness learns the log's origin and key (``witnessed_logs add``),
    the log learns the witness's key and URL (``hub_witnesses add``)."""
    for log in hubs:
        for witness in hubs:
            if witness is log:
                continue
            witness.manage("witnessed_logs", "add", "--origin", log.hub_id, "--vkey", log.log_vkey)
            vkey = witness.witness_vkey
            log.manage(
                "hub_witnesses", "add", "--name", vkey.split("+", 1)[0], "--vkey", vkey,
                "--url", witness.witness_url,
            )  # fmt: skip


def _decode(body: bytes, content_type: str):
    return json.loads(body) if content_type == "application/json" and body else body.decode()


def worker_queues(queue: str) -> str:
    """A hub's worker consumes its queue and the federation incident lane's (settings/base.py)."""
    return f"{queue},{queue}.incident"


@contextlib.contextmanager
def running_hub(
    name: str, *, worker: bool = False, web_workers: int = 2, extra_env: dict | None = None
) -> Iterator[Hub]:
    """Start a hub (migrated database, key, gunicorn, optional Celery worker) and tear it down."""
    suffix = uuid.uuid4().hex[:8]
    database = f"concordat_it_{name}_{suffix}"
    workdir = Path(tempfile.mkdtemp(prefix=f"concordat-hub-{name}-"))
    hub_id = f"{name}.hub.test"
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "settings.base",
        "DJANGO_SECRET_KEY": f"integration-{suffix}",
        "DATABASE_URL": PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + database,
        "DATABASE_CONN_MAX_AGE": "60",
        "CELERY_BROKER_URL": BROKER_URL,
        "CELERY_RESULT_BACKEND": BROKER_URL,
        "CONCORDAT_CELERY_QUEUE": f"concordat-{name}-{suffix}",
        "CONCORDAT_HUB_ID": hub_id,
        "CONCORDAT_HUB_KEY_PATH": str(workdir / "hub-key.pem"),
        "CONCORDAT_SEQUENCE_INTERVAL_SECONDS": "1",
        "CONCORDAT_LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    hub = Hub(
        name=name,
        hub_id=hub_id,
        url=f"http://127.0.0.1:{port}",
        database=database,
        env=env,
        workdir=workdir,
    )
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{database}"')
    failed = False
    try:
        hub.manage("migrate", "--noinput")
        hub.manage("hub_keygen")
        hub.web_command = processes.web_command(port=port, workers=web_workers)
        if worker:
            celery = processes.spawn(
                processes.worker_command(
                    "--beat", "--concurrency", "1",
                    "--queues", worker_queues(env["CONCORDAT_CELERY_QUEUE"]),
                    "--schedule", str(workdir / "beat-schedule"),
                ),
                cwd=ROOT, env=env, log=workdir / "worker.log",
            )  # fmt: skip
            hub.processes.append(celery)
        hub.start_web()
        yield hub
    except BaseException:
        failed = True
        raise
    finally:
        processes.stop_groups(hub.processes, timeout=20)
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        if failed:
            report_failure_logs(name, workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
