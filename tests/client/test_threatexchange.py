"""The python-threatexchange extension with the real ``threatexchange`` CLI (1.2.17) against a
live hub: fetch, match a shared file and a shared video (vPDQ, with threatexchange's own vpdq
extension), see a retraction remove them; and an opinion written back through the extension
becomes Concordat feedback.

The files matched are a video's MD5 and SHA-256 (threatexchange's ``video_md5``/``video_sha256``,
exact indexes) and a real video's vPDQ (a re-encoded copy, and the shared signal's string form). Its PDQ index does not survive its own save and load with the faiss installed
here (1.15.1: ``PDQIndex.deserialize`` gives an index that finds nothing, whoever filled it), so
for PDQ the test checks what the fetch stored, not ``threatexchange match photo``."""

import json
import subprocess
import sys

import pytest
from concordat_client import frames as framelist
from threatexchange.exchanges import fetch_state as state
from threatexchange.signal_type.pdq.signal import PdqSignal

from tests.support import client_cli as cli
from tests.support import client_media as media
from tests.support.harness import running_hub, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]


def threatexchange(env: dict, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "threatexchange", *args],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def test_threatexchange_fetches_matches_and_follows_a_retraction_and_feedback_flows_back(
    tmp_path,
):
    from concordat_client.tx_extension import ConcordatSignalExchangeAPI
    from threatexchange.extensions.vpdq.vpdq import VPDQSignal

    movie = media.write_video(tmp_path / "movie.mp4", seed=31, seconds=12)
    movie_copy = media.write_video_copy(movie, tmp_path / "movie-copy.mp4", "reencoded")
    unrelated = media.write_video(tmp_path / "unrelated.mp4", seed=32, seconds=10, design="other")
    # A second shared video stays shared: threatexchange 1.2.17 rebuilds a type's index only
    # while that type has signals (its clearing of an emptied index never finds the file).
    kept = media.write_video(tmp_path / "kept.mp4", seed=33, seconds=6)

    with running_hub("clienttx", worker=True) as hub:
        home = tmp_path / "home"
        env = cli.environment(home, hub=hub.url, member="acme", key=str(home / "acme.pem"))
        cli.run(env, "keygen")
        acme = hub.create_member(
            org="acme", user="alice", role="member-admin", trusted=True, token=True
        )
        globex = hub.create_member(org="globex", user="gus", role="reviewer", token=True)
        env["CONCORDAT_TOKEN"] = acme["token"]
        cli.run(env, "register-key")
        paths = media.write_set(tmp_path / "media", 7)
        hashes = tmp_path / "original.jsonl"
        video = tmp_path / "clip.mp4"
        video.write_bytes(b"not really a video, but threatexchange hashes its bytes" * 100)
        cli.run(
            env,
            "hash",
            "-o",
            str(hashes),
            str(paths["original"]),
            str(video),
            str(movie),
            str(kept),
        )
        cli.run(env, "submit", str(hashes), "--label", "propaganda")
        records = [json.loads(line) for line in hashes.read_text().splitlines()]
        shared_video, _ = [r for r in records if r["type"] == "vpdq"]

        wait_for(
            lambda: cli.shared_count(hub, globex["token"]) == 11, timeout=30, what="sequencing"
        )
        tx_env = {**env, "CONCORDAT_TOKEN": globex["token"]}
        threatexchange(
            tx_env, "config", "extensions", "add", "threatexchange.extensions.vpdq.manifest"
        )
        threatexchange(tx_env, "config", "extensions", "add", "concordat_client.tx_extension")
        threatexchange(
            tx_env, "config", "collab", "edit", "concordat", "shared", "--create", "--hub", hub.url
        )
        threatexchange(tx_env, "fetch")
        stored = threatexchange(tx_env, "dataset").stdout
        for name in ("pdq: 1", "video_md5: 4", "video_sha256: 4", "vpdq: 2"):  # the picture's too
            assert name in stored, stored
        matched = threatexchange(tx_env, "match", "-S", "video_md5", "video", str(video)).stdout
        assert "video_md5" in matched and "(shared)" in matched, matched
        assert "POSITIVE_CLASS" in matched and "propaganda" in matched
        other = tmp_path / "other.mp4"
        other.write_bytes(b"another clip")
        assert threatexchange(tx_env, "match", "-S", "video_md5", "video", str(other)).stdout == ""

        # The video by vPDQ: a re-encoded copy, and the shared list in threatexchange's form.
        as_threatexchange = framelist.to_threatexchange(shared_video["frames"])
        signal_file = tmp_path / "signal.txt"
        signal_file.write_text(as_threatexchange + "\n")
        for query in (
            ("-S", "vpdq", "video", str(movie_copy)),
            ("-S", "vpdq", "--hashes", "video", str(signal_file)),
        ):
            matched = threatexchange(tx_env, "match", *query).stdout
            assert matched.startswith("vpdq ") and "(shared)" in matched, (query, matched)
            assert "POSITIVE_CLASS" in matched and "propaganda" in matched, matched
        assert threatexchange(tx_env, "match", "-S", "vpdq", "video", str(unrelated)).stdout == ""

        # Feedback through the extension is the other member's Concordat feedback.
        original = next(line for line in hashes.read_text().splitlines() if '"pdq"' in line)
        value = json.loads(original)["value"]
        api = ConcordatSignalExchangeAPI(hub.url, globex["token"])
        api.report_opinion(
            PdqSignal,
            value,
            state.SignalOpinion(True, state.SignalOpinionCategory.NEGATIVE_CLASS, {"news"}),
        )
        entry_id = api.hub.entry_id("pdq", value)
        status, body = hub.request(
            "GET", f"/api/v1/entries/{entry_id}/feedback/", token=globex["token"]
        )
        assert status == 200, body
        opinions = body["results"] if isinstance(body, dict) else body
        assert [(o["opinion"], o.get("note")) for o in opinions] == [("false_positive", "news")]
        # A vpdq signal in threatexchange's form names its entry though the form lost its frame
        # numbers: the hub's exact matches of its frames, the one whose form is the same string.
        api.report_opinion(
            VPDQSignal,
            as_threatexchange,
            state.SignalOpinion(True, state.SignalOpinionCategory.POSITIVE_CLASS, set()),
        )
        video_entry = api.hub.entry_id("vpdq", shared_video["value"])
        status, body = hub.request(
            "GET", f"/api/v1/entries/{video_entry}/feedback/", token=globex["token"]
        )
        opinions = body["results"] if isinstance(body, dict) else body
        assert status == 200 and [o["opinion"] for o in opinions] == ["agree"], body

        # A retraction reaches threatexchange's copy at the next fetch.
        video_signals = [
            f"{record['type']}:{record['value']}"
            for record in records
            if record["file"] in (str(video), str(movie))
        ]
        cli.run(env, "retract", *video_signals)
        wait_for(
            lambda: cli.shared_count(hub, globex["token"]) == 6, timeout=30, what="the removal"
        )
        threatexchange(tx_env, "fetch")
        assert threatexchange(tx_env, "match", "-S", "video_md5", "video", str(video)).stdout == ""
        assert threatexchange(tx_env, "match", "-S", "vpdq", "video", str(movie_copy)).stdout == ""
        still = threatexchange(tx_env, "match", "-S", "vpdq", "video", str(kept)).stdout
        assert still.startswith("vpdq 100%") and "(shared)" in still, still
        stored = threatexchange(tx_env, "dataset").stdout
        for name in ("video_md5: 2", "video_sha256: 2", "vpdq: 1"):  # the picture's, kept's
            assert name in stored, stored
