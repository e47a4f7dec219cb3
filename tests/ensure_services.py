"""Check that the services the test suite needs answer, starting them where this machine can.

PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) are needed by `make test`; headless
Chromium (Debian's package) by the browser tests. A service that is down is started with the
machine's own command when its program is installed; otherwise this names what is missing and
exits non-zero. Standard library only: it runs before anything is installed.
"""

import argparse
import glob
import os
import shutil
import socket
import subprocess
import sys
import time

SERVICES = {
    "PostgreSQL": {
        "port": 5432,
        "program": "pg_ctlcluster",
        "start": lambda: (
            [
                ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"]
                for version in sorted(os.listdir("/etc/postgresql"))
            ]
            if os.path.isdir("/etc/postgresql")
            else []
        ),
    },
    "Redis": {
        "port": 6379,
        "program": "redis-server",
        "start": lambda: [
            [
                "redis-server",
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "-::1",
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                "/var/lib/redis",
                "--logfile",
                "/var/log/redis/ci.log",
            ]
        ],
    },
}


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def ensure(name: str, spec: dict) -> str | None:
    if answers(spec["port"]):
        return None
    if shutil.which(spec["program"]) is None:
        return f"{name} is not answering on 127.0.0.1:{spec['port']} and {spec['program']} is not installed."
    print(f"{name} is down; starting it.", flush=True)
    for command in spec["start"]():
        subprocess.run(command, check=False)
    for _ in range(60):
        if answers(spec["port"]):
            return None
        time.sleep(0.5)
    return f"{name} did not come up on 127.0.0.1:{spec['port']}; start it and run again."


def ensure_browser() -> str | None:
    if shutil.which("chromium") or glob.glob("/usr/bin/chromium*"):
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return (
            "Chromium is missing: install Debian's `chromium` package (the browser tests need it)."
        )
    print("Installing Debian's chromium for the browser tests (once).", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
    done = subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=False, env=env)
    return None if done.returncode == 0 else "Could not install chromium with apt-get."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--browser-only", action="store_true")
    args = parser.parse_args()
    problems = (
        [ensure_browser()] if args.browser_only else [ensure(n, s) for n, s in SERVICES.items()]
    )
    problems = [p for p in problems if p]
    for problem in problems:
        print(f"MISSING: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
