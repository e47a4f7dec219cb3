"""The partner client's video verbs end to end against a live hub (gunicorn and a Celery worker):
videos made here with FFmpeg and their copies, hashed with vPDQ, submitted, synced with their
frame lists, matched online and offline with identical answers, and watched by ``live`` (as fast
as possible, in real time, and interrupted with Ctrl-C)."""

import json
import signal
import subprocess
import time

import pytest
import vpdq

from federation.video.frames import from_vpdq_features
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


def whole_matches(lines: list[dict]) -> list[str]:
    return [line["signal"]["value"] for line in lines if not line.get("frame_match")]


def events(done: subprocess.CompletedProcess, kind: str) -> list[dict]:
    return [line for line in cli.json_lines(done) if line.get("event") == kind]


def test_videos_hashed_submitted_synced_matched_and_watched_live(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    original = media.write_video(folder / "original.mp4", seed=21, seconds=12)
    copy = media.write_video_copy(original, folder / "reencoded.mp4", "reencoded")
    mirrored = media.write_video_copy(original, folder / "mirrored.mp4", "mirrored")
    unrelated = media.write_video(folder / "unrelated.mp4", seed=22, seconds=10, design="other")
    # A still of the original at 3 s, shared as a photo: frames of a copy match it too.
    still = tmp_path / "still.png"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-ss", "3", "-i", str(original), "-frames:v", "1", str(still)],
        check=True, timeout=60,
    )  # fmt: skip

    with running_hub("clientvideo", worker=True) as hub:
        home = tmp_path / "home"
        env = cli.environment(home, hub=hub.url, member="acme", key=str(home / "acme.pem"))
        cli.run(env, "keygen")
        acme = hub.create_member(
            org="acme", user="alice", role="member-admin", trusted=True, token=True
        )
        reader = hub.create_member(org="globex", user="gus", role="reviewer", token=True)
        env["CONCORDAT_TOKEN"] = acme["token"]
        cli.run(env, "register-key")

        # hash: MD5, SHA-256 and the canonical vPDQ frame list, as the hub reads vPDQ's output.
        hashes = tmp_path / "original.jsonl"
        cli.run(env, "hash", "--fps", "1", "-o", str(hashes), str(original), str(still))
        records = [json.loads(line) for line in hashes.read_text().splitlines()]
        assert [r["type"] for r in records] == ["md5", "sha256", "vpdq", "md5", "sha256", "pdq"]
        shared, photo = records[2], records[5]
        expected = from_vpdq_features(vpdq.computeHash(str(original)))
        assert shared["value"] == expected.digest
        assert shared["frames"] == expected.to_document() and len(shared["frames"]) == 12

        # A folder: the video with no suffix is found by its first bytes; CSV carries the frames.
        uploads = tmp_path / "uploads"
        uploads.mkdir()
        (uploads / "upload-0001").write_bytes(copy.read_bytes())
        (uploads / "notes.txt").write_text("not a video")
        table = tmp_path / "uploads.csv"
        cli.run(env, "hash", "--format", "csv", "-o", str(table), str(uploads))
        rows = table.read_text().splitlines()
        assert len(rows) == 1 + 5 and "upload-0001,vpdq," in table.read_text()

        # submit signs the frame list; the trusted member's add is vetted on arrival.
        summary = cli.json_lines(
            cli.run(env, "--json", "submit", str(hashes), "--label", "attack-footage")
        )[-1]
        assert summary["created"] == 6

        reader_env = cli.environment(tmp_path / "reader", hub=hub.url, token=reader["token"])
        wait_for(lambda: cli.shared_count(hub, reader["token"]) == 6, timeout=30, what="sequencing")
        synced = cli.json_lines(cli.run(reader_env, "--json", "sync"))[-1]
        assert (synced["entries"], synced["video_frame_lists"]) == (6, 1)

        # match: the copy matches online and offline, identically; the mirrored copy only with
        # --rotations (its mirrored frames), naming the transform; the unrelated video never.
        targets = [str(copy), str(mirrored), str(unrelated), str(table)]
        answers = {}
        for mode in ((), ("--offline",)):
            plain = matched_sources(cli.json_lines(cli.run(reader_env, "--json", "match", *mode, *targets)))  # fmt: skip
            turned = matched_sources(
                cli.json_lines(
                    cli.run(reader_env, "--json", "match", "--rotations", *mode, *targets)
                )
            )
            for found in (plain, turned):
                hit = next(h for h in found[str(copy)] if h["query"]["type"] == "vpdq")
                assert whole_matches(found[str(copy)]) == [shared["value"]]
                assert hit["query_percent"] >= 80 and hit["matched_frames"] >= 10
                assert hit["labels"] == ["attack-footage"]
                assert hit["pairs"] and all(p["distance"] <= 31 for p in hit["pairs"])
                stills = [h for h in found[str(copy)] if h.get("frame_match")]
                assert {h["signal"]["value"] for h in stills} == {photo["value"]}
                assert any(abs(h["query_ms"] - 3000) <= 1000 for h in stills)
                assert str(unrelated) not in found
            # The folder's CSV: the sniffed upload matches through its stored frames.
            assert whole_matches(plain[str(uploads / "upload-0001")]) == [shared["value"]]
            assert str(mirrored) not in plain
            mirror_hits = [h for h in turned[str(mirrored)] if not h.get("frame_match")]
            assert whole_matches(mirror_hits) == [shared["value"]]
            assert mirror_hits[0]["transform"] not in (None, "original")
            assert mirror_hits[0]["query_percent"] >= 80
            answers[mode] = (plain, turned)
        assert answers[()] == answers[("--offline",)]
        print("copy", plain[str(copy)][0]["query_percent"], plain[str(copy)][0]["compared_percent"])
        print("mirrored", mirror_hits[0]["transform"], mirror_hits[0]["query_percent"])

        # live: the copy alerts (exit 1), the unrelated video does not (exit 0); sessions closed.
        watched = cli.run(reader_env, "--json", "live", "--as-fast-as-possible", str(copy), check=1)
        [alert] = events(watched, "alert")
        assert alert["signal"]["value"] == shared["value"] and alert["matched_frames"] >= 5
        print("live alert after", alert["frames_sent"], "frames")
        assert events(watched, "closed")[0]["session"]["state"] == "closed"
        quiet = cli.run(
            reader_env, "--json", "live", "--as-fast-as-possible", "--batch", "2", str(unrelated)
        )
        assert events(quiet, "alert") == [] and events(quiet, "summary")[0]["frames"] == 10
        assert events(quiet, "closed")[0]["session"]["state"] == "closed"

        # live --rotations: the mirrored copy alerts in the session of the transform that undoes
        # it (the one match --rotations named), one session per transform, all closed; without
        # the flag the mirrored stream never alerts.
        unturned = cli.run(reader_env, "--json", "live", "--as-fast-as-possible", str(mirrored))
        assert events(unturned, "alert") == []
        turned_live = cli.run(
            reader_env, "--json", "live", "--as-fast-as-possible", "--rotations", str(mirrored),
            check=1,
        )  # fmt: skip
        [mirror_alert] = events(turned_live, "alert")
        assert mirror_alert["signal"]["value"] == shared["value"]
        assert mirror_alert["transform"] == mirror_hits[0]["transform"]
        assert mirror_alert["matched_frames"] >= 5
        print("live --rotations alert", mirror_alert["transform"], mirror_alert["frames_sent"])
        closed = events(turned_live, "closed")
        assert len(closed) == 8 and {c["session"]["state"] for c in closed} == {"closed"}
        assert len({c["transform"] for c in closed}) == 8
        assert events(turned_live, "summary")[0]["alerted"] == [shared["value"]]
        text = cli.run(reader_env, "live", "--as-fast-as-possible", "--rotations", str(mirrored),
                       check=1).stdout  # fmt: skip
        said = " ".join(text.split())  # the console wraps long lines
        assert f"of the stream ({mirror_alert['transform']}): it matches video" in said
        # In real time, the 8 sessions keep pace: the mirrored copy alerts at its fifth second (the
        # bound on the wall clock only catches a stall; the machine may be loaded).
        started = time.monotonic()
        timed_mirror = cli.run(
            reader_env, "--json", "live", "--stop-on-alert", "--rotations", str(mirrored), check=1
        )
        elapsed = time.monotonic() - started
        print("real-time --rotations alert after", round(elapsed, 1), "s")
        assert events(timed_mirror, "alert")[0]["stream_ms"] == 4000 and 4 <= elapsed < 30
        assert len(events(timed_mirror, "closed")) == 8

        # In real time (one frame a second): the alert comes as the fifth second plays.
        started = time.monotonic()
        timed = cli.run(reader_env, "--json", "live", "--stop-on-alert", str(copy), check=1)
        elapsed = time.monotonic() - started
        print("real-time alert after", round(elapsed, 1), "s")
        assert events(timed, "alert")[0]["stream_ms"] == 4000 and 4 <= elapsed < 30

        # Ctrl-C in the middle of a stream closes its session on the hub.
        running = subprocess.Popen(
            cli.command("--json", "live", str(unrelated)), env=reader_env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        opened = json.loads(running.stdout.readline())
        assert opened["event"] == "opened"
        time.sleep(2.5)
        running.send_signal(signal.SIGINT)
        _, errors = running.communicate(timeout=60)
        assert running.returncode == 130, errors
        status, session = hub.request(
            "GET", f"/api/v1/live/{opened['session']['id']}", token=reader["token"]
        )
        assert status == 200 and session["state"] == "closed" and session["frames"] >= 2
