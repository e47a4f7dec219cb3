"""Driving a live-stream session (docs/video.md, "Live streams"; docs/client.md, ``live``): frames
as they are sampled go to the hub in small batches, every answer's new alerts are reported the
moment they come, and the session is closed however the run ends (end of stream, Ctrl-C, an
error).

The hub answers each call with every shared video whose evidence meets its alert rule so far;
a video is reported once, when it first alerts. A session that is full (7,200 frames) or was
closed by the hub (idle) is replaced by a new one and the batch sent again: the stream goes on,
its evidence starts afresh.
"""

from collections.abc import Callable, Iterable
from typing import Any

from concordat_client.hub import Hub, HubError
from concordat_client.video import DIHEDRAL

MAX_BATCH = 60  # frames per call, the hub's bound
Emit = Callable[[str, dict[str, Any]], None]


class LiveStream:
    """One run of ``concordat live``: ``run(frames)`` returns the alerts, by shared value."""

    def __init__(
        self,
        hub: Hub,
        *,
        settings: dict[str, int | None],
        batch: int = 1,
        stop_on_alert: bool = False,
        emit: Emit,
    ) -> None:
        if not 1 <= batch <= MAX_BATCH:
            raise ValueError(f"a batch holds 1 to {MAX_BATCH} frames")
        self.hub, self.settings, self.batch = hub, settings, batch
        self.stop_on_alert, self.emit = stop_on_alert, emit
        self.session: dict[str, Any] | None = None
        self.alerts: dict[str, dict] = {}
        self.frames_sent = 0
        self.calls = 0

    def _open(self) -> None:
        self.session = self.hub.live_open(**self.settings)
        self.emit("opened", {"session": self.session})

    def _close(self) -> None:
        if self.session is None:
            return
        session, self.session = self.session, None
        try:
            closed = self.hub.live_close(session["id"])
        except HubError as exc:  # already closed or expired: nothing left to close
            closed = {**session, "close_error": exc.code}
        self.emit("closed", {"session": closed})

    def _send(self, frames: list[list[Any]]) -> None:
        try:
            answer = self.hub.live_frames(self.session["id"], frames)
        except HubError as exc:
            if exc.code not in ("session_full", "closed"):
                raise
            self.emit("renewed", {"session": self.session, "reason": exc.code})
            self._close()
            self._open()
            answer = self.hub.live_frames(self.session["id"], frames)
        self.frames_sent += len(frames)
        self.calls += 1
        stream_ms = frames[-1][3]
        for alert in answer["alerts"]:
            value = alert["signal"]["value"]
            if value not in self.alerts:
                self.alerts[value] = alert
                self.emit(
                    "alert", {**alert, "stream_ms": stream_ms, "frames_sent": self.frames_sent}
                )
        for found in answer["frame_matches"]:
            self.emit("frame_match", found)

    def run(self, frames: Iterable[list[Any]]) -> dict[str, dict]:
        """Open a session, send ``frames`` (``[frame_number, quality, pdq_hex, timestamp_ms]``)
        ``batch`` at a time, close the session; returns the alerts by shared value."""
        self._open()
        try:
            return _drive(self, frames)
        finally:
            self._close()


class DihedralLiveStreams:
    """``concordat live --rotations``: one session per rotation and mirror of the stream
    (``video.DIHEDRAL``, 8 sessions of the member's 10), each fed that transform's frames, so
    a mirrored or turned re-stream alerts in the session of the transform that undoes it. Every
    event names its ``transform``; a shared video is reported once per transform that alerts on
    it. ``run(frames)`` takes, per sampled frame, its 8 frames in ``DIHEDRAL`` order and returns
    the alerts by shared value (the first transform's); every session is closed however the run
    ends."""

    def __init__(
        self,
        hub: Hub,
        *,
        settings: dict[str, int | None],
        batch: int = 1,
        stop_on_alert: bool = False,
        emit: Emit,
    ) -> None:
        self.batch, self.stop_on_alert = batch, stop_on_alert
        self.streams = {
            name: LiveStream(hub, settings=settings, batch=batch, emit=self._tagged(emit, name))
            for name in DIHEDRAL
        }
        self.alerts: dict[str, dict] = {}

    def _tagged(self, emit: Emit, transform: str) -> Emit:
        def tagged(event: str, document: dict[str, Any]) -> None:
            document = {**document, "transform": transform}
            if event == "alert":
                self.alerts.setdefault(document["signal"]["value"], document)
            emit(event, document)

        return tagged

    @property
    def frames_sent(self) -> int:
        return max((stream.frames_sent for stream in self.streams.values()), default=0)

    @property
    def calls(self) -> int:
        return sum(stream.calls for stream in self.streams.values())

    def _send(self, pending: list[list[list[Any]]]) -> None:
        for place, stream in enumerate(self.streams.values()):  # DIHEDRAL order, as the frames
            stream._send([turned[place] for turned in pending])

    def run(self, frames: Iterable[list[list[Any]]]) -> dict[str, dict]:
        try:
            for stream in self.streams.values():
                stream._open()
            return _drive(self, frames)
        finally:
            for stream in self.streams.values():
                stream._close()


def _drive(runner: "LiveStream | DihedralLiveStreams", frames: Iterable[Any]) -> dict[str, dict]:
    """Send ``frames`` through an opened runner ``batch`` at a time, the last batch short;
    stop after a call that alerted when asked to. Returns the alerts by shared value."""
    pending: list[Any] = []
    for frame in frames:
        pending.append(frame)
        if len(pending) >= runner.batch:
            runner._send(pending)
            pending = []
            if runner.stop_on_alert and runner.alerts:
                return runner.alerts
    if pending:
        runner._send(pending)
    return runner.alerts
