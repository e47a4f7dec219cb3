"""HTTP to one hub (httpx): the JSON error shape of docs/api.md raised as ``HubError``."""

import gzip
import json
from collections.abc import Iterator
from typing import Any

import httpx


class HubError(Exception):
    """A hub answered with an error (``status``, ``code`` from the documented JSON shape) or could
    not be reached (``status`` 0)."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details


class Hub:
    def __init__(self, url: str, token: str | None = None, *, timeout: float = 120) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError("the hub URL must start with http:// or https://")
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, *, body: Any = None, params: dict | None = None) -> Any:
        response = self.request(method, path, body=body, params=params)
        return response.json() if response.content else None

    def request(
        self, method: str, path: str, *, body: Any = None, params: dict | None = None
    ) -> httpx.Response:
        """The response of a call that succeeded (below 400), its body unread as JSON."""
        try:
            response = self.http.request(method, path, json=body, params=params)
        except httpx.HTTPError as exc:
            raise HubError(0, "unreachable", f"{method} {path}: {exc}") from exc
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                raise HubError(
                    response.status_code, error["code"], error["message"], error.get("details")
                )
            except (ValueError, KeyError, TypeError):
                raise HubError(response.status_code, "http_error", response.text[:200]) from None
        return response

    def hub_info(self) -> dict:
        return self.call("GET", "/api/v1/hub/")

    def submit_bulk(self, items: list[dict]) -> dict:
        return self.call("POST", "/api/v1/contributions/bulk/", body={"items": items})

    def register_key(self, body: dict) -> dict:
        return self.call("POST", "/api/v1/keys/", body=body)

    def keys(self) -> list[dict]:
        return self.call("GET", "/api/v1/keys/")["results"]

    def credentials(self) -> list[dict]:
        return self.call("GET", "/api/v1/credentials/")["results"]

    def match(
        self, signals: list[dict], *, threshold: int | None = None, **video: int | None
    ) -> list[dict]:
        """``POST /api/v1/match``; ``video`` settings (``frame_quality_min``,
        ``query_match_min``, ``compared_match_min``) apply to vpdq signals (docs/video.md)."""
        body: dict[str, Any] = {"signals": signals}
        if threshold is not None:
            body["threshold"] = threshold
        body.update({name: value for name, value in video.items() if value is not None})
        return self.call("POST", "/api/v1/match", body=body)["results"]

    def video_frames(self, values: list[str]) -> dict:
        """``GET /api/v1/sync/frames``: the frame lists of up to 100 vpdq values
        (``{"lists", "deferred", "unknown"}``, docs/sync.md)."""
        return self.call("GET", "/api/v1/sync/frames", params={"values": ",".join(values)})

    def live_open(self, **settings: int | None) -> dict:
        """Open a live-stream session (docs/video.md, "Live streams"); settings left None take
        the hub's defaults."""
        body = {name: value for name, value in settings.items() if value is not None}
        return self.call("POST", "/api/v1/live", body=body)

    def live_frames(self, session_id: str, frames: list[list]) -> dict:
        return self.call("POST", f"/api/v1/live/{session_id}/frames", body={"frames": frames})

    def live_show(self, session_id: str) -> dict:
        return self.call("GET", f"/api/v1/live/{session_id}")

    def live_close(self, session_id: str) -> dict:
        return self.call("DELETE", f"/api/v1/live/{session_id}")

    def entry_id(self, signal_type: str, value: str) -> int:
        """The hub's id of the entry for a signal (``GET /api/v1/entries/?signal_type=&value=``)."""
        found = self.call(
            "GET", "/api/v1/entries/", params={"signal_type": signal_type, "value": value.lower()}
        )["results"]
        if not found:
            raise HubError(404, "not_found", f"the hub has no entry for {signal_type}:{value}")
        return found[0]["id"]

    def feedback(self, entry_id: int, opinion: str, note: str | None) -> dict:
        body = {"opinion": opinion, **({"note": note} if note else {})}
        return self.call("PUT", f"/api/v1/entries/{entry_id}/feedback/", body=body)

    def changes(self, after: str | None, *, limit: int = 10000) -> dict:
        return json.loads(self.changes_text(after, limit=limit))

    def changes_text(self, after: str | None, *, limit: int = 10000) -> str:
        """A page of ``GET /api/v1/sync/changes`` as its JSON text (``sync`` has SQLite read it)."""
        params: dict[str, Any] = {"limit": limit}
        if after:
            params["after"] = after
        return self.request("GET", "/api/v1/sync/changes", params=params).text

    def export_lines(self) -> Iterator[bytes]:
        """The export's NDJSON lines as bytes, end line included (the body is gzip whatever was
        asked: it is decoded here, as a stream)."""
        with self.http.stream("GET", "/api/v1/sync/export") as response:
            if response.status_code >= 400:
                response.read()
                raise HubError(response.status_code, "export_failed", response.text[:200])
            decoder = gzip.GzipFile(fileobj=_RawReader(response.iter_raw()))
            yield from decoder


class _RawReader:
    """A file-like view of an iterator of byte chunks, for ``gzip.GzipFile``."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.buffer = chunks, b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) < size:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.buffer += chunk
        if size < 0:
            size = len(self.buffer)
        out, self.buffer = self.buffer[:size], self.buffer[size:]
        return out
