"""The demo's hubs: each one's folder, settings, processes (a web server and a Celery worker in
process groups of their own, ``federation.demo.processes``), and the lock and port checks that
keep two demos apart."""

import base64
import contextlib
import fcntl
import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError

from federation.demo import processes
from federation.hubkey import generate_key_file

ROOT = Path(settings.BASE_DIR)
ADMIN_PASSWORD = "demo-admin-pw"  # noqa: S105 (a throwaway demo login, printed for the user)
AUDITOR_PASSWORD = "demo-auditor-pw"  # noqa: S105
# The peers' own members: a reviewer on each, whose token reads what arrived there.
PEER_MEMBERS = [("northwind", "nora"), ("contoso", "carl")]
ARRIVAL_TIMEOUT = 45  # seconds for an item to reach every peer (pushes are nudged on commit)
WITNESS_TIMEOUT = 60  # seconds for the peers to cosign the checkpoint that covers the walkthrough
MIN_CONTRIBUTIONS = 4
LOG_TAIL_LINES = 15  # lines of a process's log shown when it ended during the demo


@dataclass
class HubProcess:
    """One of a demo hub's processes: what it is, where it logs, and the process."""

    role: str
    log: Path
    popen: subprocess.Popen

    def exit_reason(self) -> str | None:
        """Why the process ended (None while it runs)."""
        return processes.exit_reason(self.popen)


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
        try:
            return processes.manage_many(commands, cwd=ROOT, env=self.env)
        except processes.CommandsFailed as failed:
            names = ", ".join(command[0] for command in commands)
            raise CommandError(
                f"{self.name}: manage.py {names} failed:\n{failed.stderr[-2000:]}"
            ) from None

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
            processes.web_command(port=self.port, workers=1, threads=4),
        )
        self.spawn(
            "Celery worker",
            logs / "worker.log",
            processes.worker_command(
                "--beat", "--pool", "solo",
                "--queues", f"concordat-{self.name},concordat-{self.name}.incident",
                "--schedule", str(self.folder / "beat-schedule"),
            ),
        )  # fmt: skip

    def spawn(self, role: str, log: Path, command: list[str]) -> None:
        # Its own process group: stopping the hub reaches every process it started (the worker's
        # embedded beat outlives a worker that was killed).
        popen = processes.spawn(command, cwd=ROOT, env=self.env, log=log)
        self.processes.append(HubProcess(role=role, log=log, popen=popen))

    def deaths(self) -> list[str]:
        """What ended among this hub's processes, each with why and the end of its log."""
        found = []
        for process in self.processes:
            reason = process.exit_reason()
            if reason is None:
                continue
            lines = processes.log_tail(process.log, LOG_TAIL_LINES)
            tail = "".join(f"\n    | {line}" for line in lines)
            found.append(
                f"{self.hub_id}'s {process.role} {reason}; its log is {relative_to_root(process.log)}"
                + (f", ending:{tail}" if tail else " (empty)")
            )
        return found

    def check_alive(self) -> None:
        """Stop the demo with which process of this hub ended, and why, if one did."""
        deaths = self.deaths()
        if deaths:
            raise HubDied("\n".join(deaths))

    def stop(self) -> None:
        processes.stop_groups((process.popen for process in self.processes), timeout=15)


def relative_to_root(path: Path) -> str:
    """``path`` as shown to the user: relative to the checkout when inside it."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


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
            f"{relative_to_root(hub.folder)}; nothing was changed. Stop it first (Ctrl-C in its terminal, "
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
