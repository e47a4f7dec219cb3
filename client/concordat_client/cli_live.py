"""``concordat live``: a video file or stream sampled with FFmpeg as it plays, its frames sent to
a live session (``live.py``) and each event printed the moment it comes."""

import itertools
import signal as os_signal
import sys
from pathlib import Path
from typing import Any

import click

from concordat_client import bars, video
from concordat_client.cli_context import EXIT_REFUSED, Context, err, pass_context
from concordat_client.cli_hash import trim_bars_option
from concordat_client.cli_match import entry_summary, moment


@click.command()
@click.argument("source")
@click.option("--fps", default=1.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Frames sampled (and sent) per second of stream.")  # fmt: skip
@click.option(
    "--as-fast-as-possible", "fast", is_flag=True,
    help="Read a file as fast as it decodes instead of at its own pace.",
)  # fmt: skip
@click.option("--batch", default=None, type=click.IntRange(1, 60),
              help="Frames per call (default 1 in real time, 10 as fast as possible).")  # fmt: skip
@click.option("--stop-on-alert", is_flag=True, help="Stop at the first alert.")
@click.option(
    "--rotations", is_flag=True,
    help="Also send each frame's 7 rotations and mirrors, one session each (8 sessions).",
)  # fmt: skip
@click.option(
    "--threshold", default=None, type=click.IntRange(0, 63), help="Default: the hub's (31)."
)
@click.option("--frame-quality-min", default=None, type=click.IntRange(0, 100), help="Default: 50.")
@click.option("--min-frames", default=None, type=click.IntRange(1, 600), help="Default: 5.")
@click.option("--coverage", default=None, type=click.IntRange(0, 100), help="Default: 50 (%).")
@click.option("--ffmpeg", default="ffmpeg", show_default=True, help="The FFmpeg program.")
@trim_bars_option
@pass_context
def live(context: Context, source: str, fps, fast, batch, stop_on_alert, rotations, threshold,
         frame_quality_min, min_frames, coverage, ffmpeg, trim_bars) -> None:  # fmt: skip
    """Watch a video file or stream (anything FFmpeg opens) as it plays: sample frames, hash
    them with PDQ, send them to a live session and print each alert the moment it comes.
    Exits 1 when something alerted; Ctrl-C closes the session (exit 130). With --rotations a
    mirrored or turned re-stream alerts too, naming the transform that undoes it."""
    from concordat_client.live import DihedralLiveStreams, LiveStream

    context.need("hub", "token")
    real_time = not fast and Path(source).exists()  # a network stream comes at its own pace
    sampled = video.SampledFrames(
        source, fps=fps, real_time=real_time, ffmpeg=ffmpeg, trim_bars=trim_bars,
        look=bars.LIVE_BAR_FRAMES,
    )  # fmt: skip

    def emit(event: str, document: dict) -> None:
        context.emit({"event": event, **document}, _live_text(event, document))
        sys.stdout.flush()

    runner = (DihedralLiveStreams if rotations else LiveStream)(
        context.hub(),
        settings={"threshold": threshold, "frame_quality_min": frame_quality_min,
                  "min_frames": min_frames, "coverage": coverage},
        batch=batch or (10 if fast else 1), stop_on_alert=stop_on_alert, emit=emit,
    )  # fmt: skip
    previous = os_signal.signal(os_signal.SIGTERM, _interrupt)
    try:
        frames = iter(sampled.dihedral() if rotations else sampled)
        first = next(frames, None)  # no session is opened for a source FFmpeg cannot read
        if first is None:
            sampled.process.wait(timeout=30)
            raise click.ClickException(
                f"FFmpeg read no video frame from {source}: {sampled.error() or 'no video stream'}"
            )
        if sampled.crop:  # judged on the first frames, held back until then
            crop = sampled.crop.as_json()
            context.emit({"event": "bars", "crop": crop}, f"black bars cut: {sampled.crop}")
        alerts = runner.run(itertools.chain([first], frames))
        failure = ""
        if not (stop_on_alert and alerts) and sampled.process.wait(timeout=30) != 0:
            failure = sampled.error()  # the stream broke off: what was sent was matched
    finally:
        os_signal.signal(os_signal.SIGTERM, previous)
        sampled.close()
    if failure:
        err.print(f"warning: FFmpeg stopped: {failure}")
    context.emit(
        {"event": "summary", "frames": runner.frames_sent, "calls": runner.calls,
         "alerted": list(alerts), "crop": sampled.crop.as_json() if sampled.crop else None},
        f"{runner.frames_sent} frames sent in {runner.calls} calls; "
        + (f"{len(alerts)} shared video(s) alerted" if alerts else "no alert"),
    )  # fmt: skip
    if alerts:
        sys.exit(EXIT_REFUSED)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _live_text(event: str, document: dict) -> str | None:
    if event == "opened":
        session = document["session"]
        return (
            f"live session {session['id']}{_transform(document)} open (threshold {session['threshold']}, quality "
            f"floor {session['frame_quality_min']}, min frames {session['min_frames']}, "
            f"coverage {session['coverage']}%)"
        )
    if event == "alert":
        pairs = ", ".join(
            f"{moment(p['query_ms'])}→{moment(p['shared_ms'])} d{p['distance']}"
            for p in document["pairs"][:5]
        )
        incident = f" [bold]incident {document['incident']}[/]" if document.get("incident") else ""
        return (
            f"[bold red]ALERT[/] at {moment(document['stream_ms'])} of the stream"
            f"{_transform(document)}: it matches video "
            f"{document['signal']['value'][:16]}… ({document['matched_frames']} frames matched, "
            f"{document['matched_shared_frames']}/{document['shared_frames']} of the shared "
            f"video) {entry_summary(document)}{incident}\n  moments (stream→shared): {pairs}"
        )
    if event == "frame_match":
        return (
            f"frame at {moment(document['query_ms'])}{_transform(document)} matches photo "
            f"{document['signal']['value'][:16]}… distance {document['distance']} {entry_summary(document)}"
        )
    if event == "renewed":
        return f"session {document['session']['id']} {document['reason']}: opening a new one"
    if event == "closed":
        session = document["session"]
        return f"live session {session['id']} closed: {session['frames']} frames, {session['calls']} calls"
    return None


def _transform(document: dict) -> str:
    """`` (flipx)`` for an event of a session fed a rotation or mirror (``--rotations``)."""
    transform = document.get("transform")
    return f" ({transform})" if transform and transform != "original" else ""
