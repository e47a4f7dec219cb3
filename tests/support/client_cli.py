"""Running the ``concordat`` command as a partner would: a separate process, configured by a
profile file and the environment, importing nothing of the hub."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "client"


def environment(home: Path, **settings: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "PYTHONPATH": str(CLIENT),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        **{f"CONCORDAT_{name.upper()}": value for name, value in settings.items()},
    }


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "concordat_client.cli", *args]


def run(
    env: dict, *args: str, check: int | None = 0, timeout: float = 300
) -> subprocess.CompletedProcess:
    done = subprocess.run(command(*args), env=env, capture_output=True, text=True, timeout=timeout)
    if check is not None:
        assert done.returncode == check, (done.returncode, done.stdout, done.stderr)
    return done


def json_lines(done: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def shared_count(hub, token: str) -> int:
    """How many entries the hub's change stream shows (sequencing runs in the worker, so a
    change is readable a moment after its commit)."""
    status, body = hub.request("GET", "/api/v1/sync/changes?limit=10000", token=token)
    assert status == 200, body
    last = {(c["signal"]["type"], c["signal"]["value"]): c["op"] for c in body["changes"]}
    return sum(op == "upsert" for op in last.values())
