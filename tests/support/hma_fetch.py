"""Run by an HMA 2.0 (OpenMediaMatch) Python, not by the hub's: configure a Concordat exchange
through HMA's own curation API, run HMA's fetcher once, and print as JSON what HMA stored (the
signals of the exchange's bank) with the exchange's fetch status. Arguments: the omm_config
file, the hub URL, a read token, and ``setup`` (reset HMA's tables and create the exchange
first) or ``again``. Used by tests/client/test_hma.py; docs/client.md, "HMA"."""

import json
import os
import sys

if __name__ == "__main__":
    config, hub_url, token, step = sys.argv[1:5]
    os.environ["OMM_CONFIG"] = config
    from OpenMediaMatch.app import create_app
    from OpenMediaMatch.background_tasks import fetcher
    from OpenMediaMatch.persistence import get_storage
    from OpenMediaMatch.storage.postgres import database
    from OpenMediaMatch.storage.postgres.flask_utils import reset_tables
    from sqlalchemy import select

    app = create_app()
    with app.app_context():
        client = app.test_client()
        if step == "setup":
            reset_tables()
            answer = client.post(
                "/c/exchanges/api/concordat", json={"credential_json": {"token": token}}
            )
            assert answer.status_code == 200, answer.text
            answer = client.post(
                "/c/exchanges",
                json={"bank": "CONCORDAT_SHARED", "api": "concordat", "api_json": {"hub": hub_url}},
            )
            assert answer.status_code == 201, answer.text
        storage = get_storage()
        fetcher.fetch_all(storage, storage.get_signal_type_configs())
        status = client.get("/c/exchange/CONCORDAT_SHARED/status").json
        rows = database.db.session.execute(
            select(database.ContentSignal.signal_type, database.ContentSignal.signal_val)
        ).all()
        print(json.dumps({"status": status, "signals": sorted([list(row) for row in rows])}))
