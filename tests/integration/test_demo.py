"""`make demo` works: three hubs on SQLite with a file-system broker each, peered; the first driven
over HTTP and verified, its vetted entries and a retraction arriving at the other two; the pages
and CSV it points to answer on its own database; the commands it prints work; a second demo
refuses to start; SIGTERM stops every hub's processes.

One demo runs for the whole module (``--keep-running``), as a newcomer would leave it running."""

import csv
import http.cookiejar
import io
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.harness import ROOT, free_port, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]

CONTRIBUTIONS = 30
LABELS = ("attack-footage", "glorification", "propaganda", "recruitment")


@dataclass
class RunningDemo:
    process: subprocess.Popen
    name: str
    port: int
    peer_ports: list[int]
    lines: list[str] = field(default_factory=list)

    @property
    def peers(self) -> list[str]:
        return [f"{self.name}-b", f"{self.name}-c"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def folder(self) -> Path:
        return ROOT / "var" / self.name

    @property
    def output(self) -> str:
        return "".join(self.lines)


def demo_env() -> dict[str, str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "settings.demo"}
    for name in ("DATABASE_URL", "CONCORDAT_DEMO_NAME", "CONCORDAT_HUB_ID"):
        env.pop(name, None)
    return env


def run_demo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "demo", *args],
        cwd=ROOT, env=demo_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def demo():
    name = f"hub-demo-test-{uuid.uuid4().hex[:6]}"
    port, *peer_ports = free_port(), free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "demo", "--contributions", str(CONTRIBUTIONS),
         "--port", str(port), "--peer-ports", ",".join(map(str, peer_ports)),
         "--hub-name", name, "--keep-running"],
        cwd=ROOT, env=demo_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    running = RunningDemo(process=process, name=name, port=port, peer_ports=peer_ports)
    reader = threading.Thread(target=lambda: running.lines.extend(process.stdout), daemon=True)
    reader.start()
    try:
        wait_for(
            lambda: "The hubs stay up" in running.output or process.poll() is not None,
            timeout=240,
            what="the demo to finish its walkthrough",
        )
        assert process.poll() is None, running.output
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        for hub in [name, *running.peers]:
            shutil.rmtree(ROOT / "var" / hub, ignore_errors=True)
            (ROOT / "var" / f"{hub}.lock").unlink(missing_ok=True)


def test_demo_runs_a_hub_without_servers_and_the_verifier_catches_a_rewrite(demo):
    output = demo.output
    assert f"{CONTRIBUTIONS} created, 2 rejected" in output
    assert "bad_signature" in output and "unknown_label" in output
    assert "now vetted" in output and "now rejected" in output and "is now retracted" in output
    # Live sessions run on the demo's SQLite: opened, fed, closed.
    assert re.search(
        r"gus watches a live stream .* took 5 frames, 0 alert\(s\); now closed", output
    )
    assert "RESULT: OK" in output
    assert "does NOT match the signed root" in output
    # The hubs witness each other: the auditor's run holds the log to a 2-of-2 witness policy.
    assert "Latest checkpoint cosigned by its 2 witnesses" in output
    assert "witness policy met: 2 of the 2 trusted witnesses cosigned" in output
    assert "No hostname was supplied" not in output


def test_demo_hubs_run_with_debug_off(demo):
    """API errors are the documented JSON, not Django's debug pages; static files are served."""
    try:
        urllib.request.urlopen(demo.url + "/api/v1/no-such-route/", timeout=30)
    except urllib.error.HTTPError as error:
        assert error.code == 404
        body = error.read().decode()
        assert "Django" not in body and "Traceback" not in body, body
    else:
        raise AssertionError("a missing route answered 2xx")
    with urllib.request.urlopen(demo.url + "/static/admin/css/base.css", timeout=30) as response:
        assert response.status == 200


# --- the reports on the demo's own (SQLite) database ------------------------------------------


def auditor_session(demo: RunningDemo) -> urllib.request.OpenerDirector:
    """Signed in as the demo's auditor through the admin login form, as a browser would."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(demo.url + "/admin/login/", timeout=30).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": token, "username": "auditor", "password": "demo-auditor-pw",
         "next": "/reports/"}
    ).encode()  # fmt: skip
    request = urllib.request.Request(demo.url + "/admin/login/", data=form)
    request.add_header("Referer", demo.url + "/admin/login/")
    with opener.open(request, timeout=30) as response:
        assert response.url.endswith("/reports/"), response.url
    return opener


def fetch(opener, url: str) -> tuple[int, str, str]:
    try:
        with opener.open(url, timeout=60) as response:
            # read() raises IncompleteRead if a streamed body breaks off.
            return response.status, response.headers.get_content_type(), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get_content_type(), error.read().decode()


REPORT_PAGES = [
    "/",
    "/reports/",
    "/reports/?label=propaganda",
    "/reports/?label=glorification&signal_type=md5&granularity=week",
    "/reports/?member=acme&granularity=month",
    "/reports/search/?member=acme",
    "/reports/transparency/",
    "/reports/entries/1/",
]
CSV_EXPORTS = [
    "by-period", "by-member", "by-label", "by-signal-type", "by-action", "audit-actions",
    "contributions",
]  # fmt: skip


def test_every_report_page_answers_on_the_demo_database(demo):
    opener = auditor_session(demo)
    for path in REPORT_PAGES:
        status, kind, body = fetch(opener, demo.url + path)
        assert (status, kind) == (200, "text/html"), f"{path}: {status} {body[:2000]}"
        assert "</html>" in body, path


def read_csv(opener, url: str) -> list[dict[str, str]]:
    status, kind, body = fetch(opener, url)
    assert (status, kind) == (200, "text/csv"), f"{url}: {status} {body[:2000]}"
    assert body.endswith("\r\n"), f"{url}: the CSV breaks off: {body[-200:]!r}"
    return list(csv.DictReader(io.StringIO(body)))


def test_every_csv_is_complete_on_the_demo_database_with_and_without_a_label(demo):
    opener = auditor_session(demo)
    everything = read_csv(opener, f"{demo.url}/reports/export/contributions.csv")
    assert len(everything) == CONTRIBUTIONS + 1  # the adds and the one retraction
    by_label = {row["label"]: int(row["contributions"]) for row in
                read_csv(opener, f"{demo.url}/reports/export/by-label.csv")}  # fmt: skip
    assert set(by_label) == set(LABELS)
    for label in LABELS:
        signed = [row for row in everything if label in row["labels"].split()]
        filtered = read_csv(opener, f"{demo.url}/reports/export/contributions.csv?label={label}")
        assert len(filtered) == len(signed) == by_label[label] > 0, label
        assert all(label in row["labels"].split() for row in filtered)
        for report in CSV_EXPORTS:
            read_csv(opener, f"{demo.url}/reports/export/{report}.csv?label={label}")
    for report in CSV_EXPORTS:
        read_csv(opener, f"{demo.url}/reports/export/{report}.csv")
    transparency = read_csv(opener, f"{demo.url}/reports/transparency.csv")
    totals = {row["item"]: int(row["count"]) for row in transparency if row["section"] == "totals"}
    assert totals["contributions"] == CONTRIBUTIONS + 1
    read_csv(opener, f"{demo.url}/reports/search.csv?member=acme")
    read_csv(opener, f"{demo.url}/reports/entries/1.csv")


# --- what the demo prints for a newcomer ------------------------------------------------------


def printed_commands(output: str) -> list[str]:
    return [line.split("$ ", 1)[1] for line in output.splitlines() if line.startswith("    $ ")]


def test_demo_prints_tokens_and_commands_that_work(demo):
    output = demo.output
    assert re.search(r"member-admin token: \S+", output)
    audit_token = re.search(r"audit token: (\S+)", output).group(1)
    commands = printed_commands(output)
    assert len(commands) == 4, output
    partner, verifier, manage, peer_status = commands
    assert "curl" in partner and "verifier.py" in verifier and "--key" in verifier
    # The witness policy and a state folder of this demo hub's own: a second demo does not
    # break the command with the previous demo's state.
    assert verifier.count("--witness ") == 2, verifier
    assert f"--state-dir var/{demo.name}/auditor-state" in verifier, verifier
    assert f"CONCORDAT_DEMO_NAME={demo.name}" in manage and "create_member" in manage
    env = {k: v for k, v in demo_env().items() if k != "DJANGO_SETTINGS_MODULE"}

    done = subprocess.run(partner, shell=True, cwd=ROOT, env=env, capture_output=True, text=True)  # noqa: S602
    assert done.returncode == 0, done.stderr
    memberships = json.loads(done.stdout)
    assert "error" not in memberships, memberships

    done = subprocess.run(verifier, shell=True, cwd=ROOT, env=env, capture_output=True, text=True)  # noqa: S602
    assert done.returncode == 0 and "RESULT: OK" in done.stdout, done.stdout + done.stderr

    done = subprocess.run(manage, shell=True, cwd=ROOT, env=env, capture_output=True, text=True)  # noqa: S602
    assert done.returncode == 0, done.stderr  # not "no such table": the demo hub's database
    created = json.loads(done.stdout.strip().splitlines()[-1])
    request = urllib.request.Request(demo.url + "/api/v1/entries/")
    request.add_header("Authorization", f"Bearer {created['token']}")
    with urllib.request.urlopen(request, timeout=30) as response:  # the new member's token works
        assert response.status == 200

    request = urllib.request.Request(demo.url + "/api/v1/log/checkpoint")
    request.add_header("Authorization", f"Bearer {audit_token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200

    done = subprocess.run(peer_status, shell=True, cwd=ROOT, env=env, capture_output=True, text=True)  # noqa: S602  # fmt: skip
    assert done.returncode == 0, done.stderr
    for peer in demo.peers:
        assert f"{peer}.demo" in done.stdout, done.stdout


# --- the federation ----------------------------------------------------------------------------


def peer_database(demo: RunningDemo, peer: str) -> sqlite3.Connection:
    return sqlite3.connect(ROOT / "var" / peer / "db.sqlite3")


def test_the_vetted_entries_and_the_retraction_arrive_at_every_peer(demo):
    output = demo.output
    origin = f"{demo.name}.demo"
    for peer in demo.peers:
        arrived = re.findall(rf"  {re.escape(peer)}\.demo has entry .* vetted .*verified", output)
        assert len(arrived) == 3, output  # the three entries gus approved
        retracted = re.findall(rf"  {re.escape(peer)}\.demo has entry .* retracted ", output)
        assert len(retracted) == 1, output
    target = int(re.search(r"acme retracts its signed add of entry (\d+)", output).group(1))
    with sqlite3.connect(demo.folder / "db.sqlite3") as database:
        signal_type, value = database.execute(
            "SELECT signal_type, value FROM federation_entry WHERE id = ?", [target]
        ).fetchone()
        vetted_here = database.execute(
            "SELECT count(*) FROM federation_entry WHERE state = 'vetted'"
        ).fetchone()[0]
    for peer in demo.peers:
        with peer_database(demo, peer) as database:
            state = database.execute(
                "SELECT state FROM federation_entry WHERE signal_type = ? AND value = ?",
                [signal_type, value],
            ).fetchone()
            assert state == ("retracted",), peer
            contributions = database.execute(
                "SELECT c.action, c.status, c.origin_hub, o.hub, o.slug FROM "
                "federation_contribution c JOIN federation_entry e ON e.id = c.entry_id "
                "JOIN members_organisation o ON o.id = c.organisation_id "
                "WHERE e.value = ? ORDER BY c.id",
                [value],
            ).fetchall()
            assert contributions == [
                ("add", "withdrawn", origin, origin, "acme"),
                ("retract", "applied", origin, origin, "acme"),
            ], peer
            # The peer holds exactly what the origin shares now (two vetted) plus the retracted.
            assert (
                database.execute(
                    "SELECT count(*) FROM federation_entry WHERE state = 'vetted'"
                ).fetchone()[0]
                == vetted_here
                == 2
            ), peer
            assert (
                database.execute(
                    "SELECT count(DISTINCT contribution_id) FROM federation_receipt"
                ).fetchone()[0]
                == 4
            ), peer  # three adds and the retraction


# --- a second demo, and stopping ---------------------------------------------------------------


def test_a_second_demo_refuses_to_start_and_leaves_the_running_hub_alone(demo):
    database, key = demo.folder / "db.sqlite3", demo.folder / "hub-key.pem"
    before = (database.stat().st_ino, key.read_bytes())
    peer_files = [ROOT / "var" / peer / "db.sqlite3" for peer in demo.peers]
    peers_before = [path.stat().st_ino for path in peer_files]

    same_port = run_demo("--port", str(demo.port), "--hub-name", f"{demo.name}-other")
    assert same_port.returncode != 0
    assert f"Port {demo.port} on 127.0.0.1 is already in use" in same_port.stderr
    assert "nothing was changed" in same_port.stderr
    assert "Traceback" not in same_port.stderr
    assert not (ROOT / "var" / f"{demo.name}-other" / "db.sqlite3").exists()

    same_name = run_demo("--port", str(free_port()), "--hub-name", demo.name)
    assert same_name.returncode != 0
    assert f"Another demo (pid {demo.process.pid}) is running hub {demo.name!r}" in (
        same_name.stderr
    )

    assert (database.stat().st_ino, key.read_bytes()) == before
    assert [path.stat().st_ino for path in peer_files] == peers_before
    with urllib.request.urlopen(demo.url + "/api/v1/hub/", timeout=30) as response:
        assert response.status == 200
    for other in (f"{demo.name}-other", f"{demo.name}-other-b", f"{demo.name}-other-c"):
        # A refused start leaves no lock file and no folder behind.
        assert not (ROOT / "var" / f"{other}.lock").exists(), other
        assert not (ROOT / "var" / other).exists(), other
    # The running demo still holds its own locks.
    assert (ROOT / "var" / f"{demo.name}.lock").exists()


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, stack = set(), [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sigterm_stops_the_demo_and_its_gunicorn_and_celery(demo):
    hub_processes = descendants(demo.process.pid)
    assert len(hub_processes) >= 9, hub_processes  # per hub: gunicorn master and worker, celery
    demo.process.send_signal(signal.SIGTERM)
    demo.process.wait(timeout=60)
    wait_for(lambda: not any(alive(pid) for pid in hub_processes), timeout=30, what="exit")
    for port in (demo.port, *demo.peer_ports):
        with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
            probe.connect(("127.0.0.1", port))
    time.sleep(0.5)
    assert "Stopped the hubs." in demo.output
    for hub in [demo.name, *demo.peers]:
        assert not (ROOT / "var" / f"{hub}.lock").exists(), hub


def test_a_hub_process_that_dies_is_named_with_its_log():
    """A hub's worker killed while the demo runs: the demo stops and says which process of which
    hub ended, how, and where its log is (with its last lines), not just "Stopped the hub"."""
    name = f"hub-demo-dies-{uuid.uuid4().hex[:6]}"
    before = {path.name for path in (ROOT / "var").iterdir()} if (ROOT / "var").exists() else set()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "demo", "--hubs", "1", "--contributions", "4",
         "--port", str(free_port()), "--hub-name", name, "--keep-running"],
        cwd=ROOT, env=demo_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    try:
        wait_for(
            lambda: "The hub stays up" in "".join(lines) or process.poll() is not None,
            timeout=240,
            what="the demo to finish its walkthrough",
        )
        assert process.poll() is None, "".join(lines)
        output = "".join(lines)
        assert "with its peers" not in output and "hubs stop" not in output, output
        workers = [
            pid
            for pid in descendants(process.pid)
            if b"celery" in (Path("/proc") / str(pid) / "cmdline").read_bytes()
        ]
        assert workers, descendants(process.pid)
        os.kill(min(workers), signal.SIGKILL)
        process.wait(timeout=60)
        reader.join(timeout=10)
        output = "".join(lines)
        assert process.returncode != 0
        assert f"{name}.demo's Celery worker killed by SIGKILL" in output, output
        assert f"its log is var/{name}/logs/worker.log" in output, output
        assert "Stopped the hub." in output
    finally:
        if process.poll() is None:
            process.kill()
        shutil.rmtree(ROOT / "var" / name, ignore_errors=True)
    # No lock file and no other hub's folder (settings.demo's default hub-a) was left behind.
    assert {path.name for path in (ROOT / "var").iterdir()} <= before | {name}
    assert not (ROOT / "var" / f"{name}.lock").exists()
