"""Starting hubs, in the integration harness and in the demo: a hub is up only when its own
server answers on its port.

Seen in a benchmark run: two hubs were handed the same port, the second's gunicorn failed to bind
it, and the harness took the first hub's answers for the second's, so every batch for the second
went to the first and was refused (401) until the wait for it timed out, 15 minutes later."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.core.management import CommandError

from federation.demo.setup import wait_until_up
from tests.support.harness import Hub, free_port


class _HubInfo(BaseHTTPRequestHandler):
    hub_id = "a.hub.test"

    def do_GET(self):
        body = json.dumps({"hub_id": self.hub_id}).encode()
        self.send_response(200 if self.path == "/api/v1/hub/" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def hub_a_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HubInfo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _hub(name: str, port: int) -> Hub:
    return Hub(
        name=name,
        hub_id=f"{name}.hub.test",
        url=f"http://127.0.0.1:{port}",
        database="unused",
        env={},
        workdir=Path("/nonexistent"),
    )


def test_a_hub_answering_on_its_own_port_is_up(hub_a_server):
    assert _hub("a", hub_a_server).answers() is True


def test_another_hub_answering_on_the_port_is_an_error_not_a_hub_that_is_up(hub_a_server):
    with pytest.raises(RuntimeError, match=r"answered by hub 'a.hub.test', not 'b.hub.test'"):
        _hub("b", hub_a_server).answers()


def test_nothing_listening_is_not_up_yet():
    assert _hub("b", free_port()).answers() is False


def test_free_port_never_hands_out_a_port_twice():
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)


def _demo_hub(name: str, port: int) -> SimpleNamespace:
    return SimpleNamespace(
        hub_id=f"{name}.hub.test", url=f"http://127.0.0.1:{port}", check_alive=lambda: None
    )


def test_the_demo_takes_its_hub_for_up_when_it_answers_as_itself(hub_a_server):
    wait_until_up(_demo_hub("a", hub_a_server))


def test_the_demo_stops_when_another_hub_answers_on_its_port(hub_a_server):
    with pytest.raises(CommandError, match=r"answered by hub 'a.hub.test', not 'b.hub.test'"):
        wait_until_up(_demo_hub("b", hub_a_server))
