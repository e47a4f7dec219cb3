"""Running a hub's processes from Python: the demo and the integration tests' harness share this.

A hub is a gunicorn web server and Celery workers, each started in a process group of its own so
that stopping it reaches every process it started (a worker's embedded beat, its pool children);
several management commands can run in one Python process (one Django start-up instead of one per
command). Only the standard library: importing this module starts nothing and reads no settings.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# Runs several management commands in one process: reads [[name, arg, ...], ...] on stdin and
# prints each command's output, as a JSON list.
MANY_COMMANDS = """
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


class CommandsFailed(RuntimeError):
    """Management commands run by ``manage_many`` failed; ``stderr`` says how."""

    def __init__(self, commands: list[list[str]], stderr: str):
        super().__init__(f"{commands} failed:\n{stderr[-3000:]}")
        self.commands, self.stderr = commands, stderr


def manage_many(
    commands: list[list[str]], *, cwd: Path, env: dict[str, str], timeout: float | None = None
) -> list[str]:
    """Run management commands one after the other in one process; their outputs."""
    if not commands:
        return []
    done = subprocess.run(
        [sys.executable, "-c", MANY_COMMANDS],
        cwd=cwd, env=env, input=json.dumps(commands), capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    if done.returncode != 0:
        raise CommandsFailed(commands, done.stderr)
    return json.loads(done.stdout)


def web_command(*, port: int, workers: int, threads: int | None = None) -> list[str]:
    """gunicorn serving the hub on 127.0.0.1:``port`` (with ``threads``: its threaded workers)."""
    return [
        sys.executable, "-m", "gunicorn", "federation.wsgi", "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), *(("--threads", str(threads)) if threads else ()),
        "--timeout", "300",
    ]  # fmt: skip


def worker_command(*arguments: str) -> list[str]:
    """A Celery worker of the hub's app, with ``arguments`` (queues, beat, pool, ...)."""
    return [
        sys.executable, "-m", "celery", "-A", "settings.celery", "worker", "--loglevel",
        "WARNING", "--without-gossip", "--without-mingle", *arguments,
    ]  # fmt: skip


def spawn(
    command: list[str], *, cwd: Path, env: dict[str, str], log: Path, append: bool = False
) -> subprocess.Popen:
    """Start ``command`` in a process group of its own, its output (both streams) to ``log``."""
    with log.open("ab" if append else "wb") as output:  # the child keeps its own descriptor
        return subprocess.Popen(
            command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def signal_group(process: subprocess.Popen, signum: int) -> None:
    """Send ``signum`` to the process's group (nothing if the group is gone)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def stop_groups(processes: Iterable[subprocess.Popen | None], *, timeout: float = 20) -> None:
    """SIGTERM each process's group, wait up to ``timeout`` for each, then SIGKILL whatever is
    left of the groups (a worker's beat can outlive a worker)."""
    running = [p for p in processes if p is not None]
    for process in running:
        signal_group(process, signal.SIGTERM)
    for process in running:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    for process in running:
        signal_group(process, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)


def kill_groups(processes: Iterable[subprocess.Popen | None], *, timeout: float = 20) -> None:
    """SIGKILL each process's group at once, as a crash would, and reap the processes."""
    for process in processes:
        if process is not None and process.poll() is None:
            signal_group(process, signal.SIGKILL)
            process.wait(timeout=timeout)


def exit_reason(process: subprocess.Popen) -> str | None:
    """Why the process ended, in words (None while it runs)."""
    code = process.poll()
    if code is None:
        return None
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


def log_tail(log: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of a log file (none if it cannot be read)."""
    with contextlib.suppress(OSError):
        return log.read_text(errors="replace").splitlines()[-lines:]
    return []


def wait_for(
    predicate: Callable, *, timeout: float, interval: float = 0.2, what: str = "condition"
):
    """Poll ``predicate`` until it returns something true (returned), or time out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def parallel(calls: Iterable[Callable]) -> list:
    """Run the zero-argument callables at once (subprocess-bound work); their results in order."""
    calls = list(calls)
    if not calls:
        return []
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))
