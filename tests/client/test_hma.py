"""HMA 2.0 (OpenMediaMatch) fetching a hub's shared set through the python-threatexchange
extension, its own fetcher and storage in its own Python: a picture and a real video arrive as
HMA bank signals (the video as threatexchange's vpdq string), and a retraction removes them at
the next fetch.

Opt-in: HMA is not on PyPI. Set ``CONCORDAT_HMA_PYTHON`` to a Python where HMA's requirements,
``psycopg2-binary`` and ``./client[video]`` are installed, and ``CONCORDAT_HMA_SRC`` to HMA's
``hasher-matcher-actioner/src`` folder (docs/client.md, "HMA"). HMA keeps its tables in a
database of its own beside the test database (``<test database>_hma``)."""

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from concordat_client import frames as framelist
from django.db import connection

from tests.support import client_cli as cli
from tests.support import client_media as media
from tests.support.harness import running_hub, wait_for

HMA_PYTHON, HMA_SRC = os.environ.get("CONCORDAT_HMA_PYTHON"), os.environ.get("CONCORDAT_HMA_SRC")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.xdist_group("integration"),
    pytest.mark.skipif(
        not (HMA_PYTHON and HMA_SRC), reason="set CONCORDAT_HMA_PYTHON and CONCORDAT_HMA_SRC"
    ),
]
SCRIPT = Path(__file__).resolve().parents[1] / "support" / "hma_fetch.py"
OMM_CONFIG = """
from threatexchange.content_type.photo import PhotoContent
from threatexchange.content_type.video import VideoContent
from threatexchange.extensions.vpdq.vpdq import VPDQSignal
from threatexchange.signal_type.md5 import VideoMD5Signal
from threatexchange.signal_type.pdq.signal import PdqSignal
from concordat_client.tx_extension import ConcordatSignalExchangeAPI
from OpenMediaMatch.storage.postgres.impl import DefaultOMMStore

DATABASE_URI = {uri!r}
PRODUCTION = False
ROLE_HASHER = ROLE_MATCHER = ROLE_CURATOR = True
UI_ENABLED = TASK_FETCHER = TASK_INDEXER = TASK_INDEX_CACHE = False
STORAGE_IFACE_INSTANCE = DefaultOMMStore(
    signal_types=[PdqSignal, VideoMD5Signal, VPDQSignal],
    content_types=[PhotoContent, VideoContent],
    exchange_types=[ConcordatSignalExchangeAPI],
)
"""


@pytest.fixture
def hma_database() -> Iterator[str]:
    """A PostgreSQL database of its own for HMA's tables, dropped afterwards; its SQLAlchemy
    URI."""
    settings = connection.settings_dict
    name = f"{settings['NAME']}_hma"
    server = {
        "host": settings["HOST"] or "127.0.0.1", "port": settings["PORT"] or 5432,
        "user": settings["USER"], "password": settings["PASSWORD"] or None,
    }  # fmt: skip
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
        password = f":{server['password']}" if server["password"] else ""
        yield (
            f"postgresql+psycopg2://{server['user']}{password}@{server['host']}:"
            f"{server['port']}/{name}"
        )
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


def hma_fetch(config: Path, hub_url: str, token: str, step: str) -> dict:
    env = {**os.environ, "PYTHONPATH": HMA_SRC}
    # -P: the script's folder (tests/support, which has a vpdq.py) does not go first on the path.
    command = [HMA_PYTHON, "-P", str(SCRIPT), str(config), hub_url, token, step]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout, done.stderr[-4000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.django_db
def test_hma_fetches_the_shared_set_through_the_extension_and_follows_a_retraction(
    tmp_path, hma_database
):
    config = tmp_path / "omm_config.py"
    config.write_text(OMM_CONFIG.format(uri=hma_database))
    movie = media.write_video(tmp_path / "movie.mp4", seed=31, seconds=6)
    with running_hub("clienthma", worker=True) as hub:
        home = tmp_path / "home"
        env = cli.environment(home, hub=hub.url, member="acme", key=str(home / "acme.pem"))
        cli.run(env, "keygen")
        acme = hub.create_member(
            org="acme", user="alice", role="member-admin", trusted=True, token=True
        )
        globex = hub.create_member(org="globex", user="gus", role="reviewer", token=True)
        env["CONCORDAT_TOKEN"] = acme["token"]
        cli.run(env, "register-key")
        picture = media.write_set(tmp_path / "media", 7)["original"]
        hashes = tmp_path / "hashes.jsonl"
        cli.run(env, "hash", "-o", str(hashes), str(picture), str(movie))
        cli.run(env, "submit", str(hashes), "--label", "propaganda")
        records = [json.loads(line) for line in hashes.read_text().splitlines()]
        wait_for(lambda: cli.shared_count(hub, globex["token"]) == 6, timeout=30, what="sequencing")

        first = hma_fetch(config, hub.url, globex["token"], "setup")
        assert first["status"]["last_fetch_succeeded"] and first["status"]["up_to_date"]
        # HMA keeps the signal types it is configured with: no video_sha256 here.
        expected = {
            ({"pdq": "pdq", "md5": "video_md5"}.get(r["type"], r["type"]), r["value"])
            for r in records
            if r["type"] in ("pdq", "md5")
        }
        [video] = [r for r in records if r["type"] == "vpdq"]
        expected.add(("vpdq", framelist.to_threatexchange(video["frames"])))
        assert {tuple(signal) for signal in first["signals"]} == expected

        cli.run(
            env,
            "retract",
            *[f"{r['type']}:{r['value']}" for r in records if r["file"] == str(movie)],
        )
        wait_for(lambda: cli.shared_count(hub, globex["token"]) == 3, timeout=30, what="removal")
        second = hma_fetch(config, hub.url, globex["token"], "again")
        assert second["status"]["last_fetch_succeeded"]
        kept = {(t, v) for t, v in expected if t != "vpdq"} - {
            ("video_md5", r["value"]) for r in records if r["file"] == str(movie)
        }
        assert {tuple(signal) for signal in second["signals"]} == kept
