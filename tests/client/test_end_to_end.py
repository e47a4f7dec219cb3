"""The partner client end to end against a live hub (gunicorn and a Celery worker): pictures made
here and their copies, hashed, submitted, synced and matched online and offline through the
``concordat`` command."""

import json
import signal
import sqlite3
import subprocess
import time

import pytest

from tests.support import client_cli as cli
from tests.support import client_media as media
from tests.support.harness import running_hub, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]


def matched_sources(lines: list[dict]) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for line in lines:
        if "source" in line:
            found.setdefault(line["source"], []).append(line)
    return found


def test_hash_submit_sync_and_match_copies_online_and_offline(tmp_path):
    with running_hub("client", worker=True) as hub:
        home = tmp_path / "home"
        env = cli.environment(home, hub=hub.url, member="acme", key=str(home / "acme.pem"))
        made = cli.json_lines(cli.run(env, "--json", "keygen"))[0]
        assert (home / "acme.pem").stat().st_mode & 0o777 == 0o600
        acme = hub.create_member(
            org="acme", user="alice", role="member-admin", trusted=True, token=True
        )
        reader = hub.create_member(org="globex", user="gus", role="reviewer", token=True)
        env["CONCORDAT_TOKEN"] = acme["token"]
        registered = cli.run(env, "register-key", "--label", "laptop")
        assert made["key_id"] in registered.stdout
        assert acme["token"] not in registered.stdout + registered.stderr

        sets = [media.write_set(tmp_path / f"set{seed}", seed) for seed in (7, 8)]
        hashes = tmp_path / "originals.jsonl"
        cli.run(env, "hash", "-o", str(hashes), *(str(s["original"]) for s in sets))
        records = [json.loads(line) for line in hashes.read_text().splitlines()]
        assert sorted(r["type"] for r in records) == [
            "md5",
            "md5",
            "pdq",
            "pdq",
            "sha256",
            "sha256",
        ]
        submitted = cli.json_lines(
            cli.run(env, "--json", "submit", str(hashes), "--label", "propaganda")
        )
        assert submitted[-1]["created"] == 6

        reader_env = cli.environment(tmp_path / "reader", hub=hub.url, token=reader["token"])
        wait_for(lambda: cli.shared_count(hub, reader["token"]) == 6, timeout=30, what="sequencing")
        synced = cli.json_lines(cli.run(reader_env, "--json", "sync"))
        assert synced[-1]["entries"] == 6

        copies = [
            str(s[name])
            for s in sets
            for name in (*media.NEAR_COPIES, *media.TURNED_COPIES, "unrelated")
        ]
        for mode in ([], ["--offline"]):
            plain = matched_sources(
                cli.json_lines(cli.run(reader_env, "--json", "match", *mode, *copies))
            )
            turned = matched_sources(
                cli.json_lines(
                    cli.run(reader_env, "--json", "match", "--rotations", *mode, *copies)
                )
            )
            for s in sets:
                original = next(
                    r["value"]
                    for r in records
                    if r["type"] == "pdq" and r["file"] == str(s["original"])
                )
                for name in media.NEAR_COPIES:
                    hits = plain[str(s[name])]
                    assert [h["signal"]["value"] for h in hits] == [original], (mode, name)
                    assert hits[0]["distance"] <= 31 and hits[0]["labels"] == ["propaganda"]
                    assert hits[0]["contributors"] == [{"member": "acme", "hub": hub.hub_id}]
                for name in media.TURNED_COPIES:
                    assert str(s[name]) not in plain, (mode, name)
                    hits = turned[str(s[name])]
                    assert [h["signal"]["value"] for h in hits] == [original]
                    assert hits[0]["transform"] not in (None, "original"), hits
                assert str(s["unrelated"]) not in plain and str(s["unrelated"]) not in turned
            if not mode:
                online = (plain, turned)
        # The offline index answers what the hub answers, distances included.
        assert (plain, turned) == online

        # status: who I am, my keys, my credentials' scopes, my copy; never the token.
        shown = cli.run(env, "--json", "status")
        assert acme["token"] not in shown.stdout + shown.stderr
        status = cli.json_lines(shown)[0]
        assert status["hub_id"] == hub.hub_id and status["member"] == "acme"
        assert made["key_id"] in [key["key_id"] for key in status["keys"]]
        assert all("scopes" in credential for credential in status["credentials"])
        assert cli.json_lines(cli.run(reader_env, "--json", "status"))[0]["sync"]["entries"] == 6

        # verify-log runs the standalone verifier with the profile's hub and an audit token.
        auditor = hub.create_staff(user="audrey", role="auditor")["token"]
        audit_env = cli.environment(tmp_path / "auditor", hub=hub.url, token=auditor)
        wait_for(
            lambda: cli.run(audit_env, "verify-log", "--key", hub.log_vkey, check=None).returncode
            in (0, 3),
            timeout=60, what="a verified log",
        )  # fmt: skip

        # A retraction reaches the local copy as a removal.
        pdq_value = next(r["value"] for r in records if r["type"] == "pdq")
        cli.run(env, "retract", f"pdq:{pdq_value}")
        wait_for(
            lambda: cli.json_lines(cli.run(reader_env, "--json", "sync"))[-1]["entries"] == 5,
            timeout=30, what="the removal in the local copy",
        )  # fmt: skip


def test_submit_interrupted_half_way_sends_the_rest_exactly_once_and_sync_resumes_exact(tmp_path):
    with running_hub("clientresume", worker=True) as hub:
        home = tmp_path / "home"
        env = cli.environment(home, hub=hub.url, member="acme", key=str(home / "acme.pem"))
        cli.run(env, "keygen")
        acme = hub.create_member(
            org="acme", user="alice", role="member-admin", trusted=True, token=True
        )
        env["CONCORDAT_TOKEN"] = acme["token"]
        cli.run(env, "register-key")
        total = 3000
        hashes = tmp_path / "many.csv"
        hashes.write_text("type,value\n" + "".join(f"md5,{n:032x}\n" for n in range(total)))
        journal = tmp_path / "journal.sqlite"
        first = subprocess.Popen(
            cli.command("--json", "submit", str(hashes), "--label", "propaganda", "--batch", "100", "--journal", str(journal)),
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

        def answered() -> int:
            try:
                with sqlite3.connect(journal) as db:
                    return db.execute(
                        "SELECT count(*) FROM items WHERE status IS NOT NULL"
                    ).fetchone()[0]
            except sqlite3.OperationalError:
                return 0

        wait_for(lambda: answered() >= 500, timeout=120, interval=0.05, what="half the submission")
        first.send_signal(signal.SIGINT)
        _, stderr = first.communicate(timeout=60)
        assert first.returncode == cli_interrupted(), stderr
        sent_first = answered()
        assert 500 <= sent_first < total

        rerun = cli.json_lines(
            cli.run(
                env,
                "--json",
                "submit",
                str(hashes),
                "--label",
                "propaganda",
                "--batch",
                "100",
                "--journal",
                str(journal),
            )
        )
        summary = rerun[-1]
        # Every item has exactly one answer; what the rerun sent is what had none, and the hub
        # holds each once (at most one batch in flight at the interrupt comes back "duplicate").
        assert summary.get("created", 0) + summary.get("duplicate", 0) == total
        assert summary.get("duplicate", 0) <= 100
        reader_env = cli.environment(tmp_path / "reader", hub=hub.url, token=acme["token"])

        # sync killed mid-way, then run again: the local copy ends equal to the hub's export.
        wait_for(lambda: _export_count(hub, acme["token"]) == total, timeout=60, what="vetting")
        syncing = subprocess.Popen(
            cli.command("sync"), env=reader_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        time.sleep(0.3)
        syncing.kill()
        syncing.wait()
        cli.run(reader_env, "sync")
        with sqlite3.connect(
            tmp_path / "reader" / ".local" / "share" / "concordat" / "default" / "shared-set.sqlite"
        ) as db:
            held = sorted(v for (v,) in db.execute("SELECT value FROM entries"))
        assert held == sorted(f"{n:032x}" for n in range(total))


def cli_interrupted() -> int:
    from concordat_client.cli import EXIT_INTERRUPTED

    return EXIT_INTERRUPTED


def _export_count(hub, token: str) -> int:
    import gzip
    import urllib.request

    request = urllib.request.Request(hub.url + "/api/v1/sync/export")
    request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=60) as response:
        lines = gzip.decompress(response.read()).splitlines()
    return json.loads(lines[-1])["count"]
