"""Live-stream sessions and the distinct frames they hold (docs/video.md, "Live streams").

State lives in PostgreSQL, not in the web process: a session survives a worker restart and any
worker of the hub can serve its next call (each call writes on condition that the session is
still at the version it read, ``calls``, so two calls of one session apply one after the other). The match index itself stays per process; a session keeps
only what the index cannot rebuild: its frames (distinct, kept until it closes) and its
evidence per shared video."""

import uuid

from django.db import models


class LiveSession(models.Model):
    class State(models.TextChoices):
        OPEN = "open"
        CLOSED = "closed"  # by its member (DELETE)
        EXPIRED = "expired"  # idle past the limit

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organisation = models.ForeignKey(
        "members.Organisation", on_delete=models.PROTECT, related_name="live_sessions"
    )
    state = models.CharField(max_length=8, choices=State.choices, default=State.OPEN)
    opened_at = models.DateTimeField()
    last_call_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    # The alert rule and the matching settings, fixed when the session opens.
    threshold = models.PositiveSmallIntegerField()
    frame_quality_min = models.PositiveSmallIntegerField()
    min_frames = models.PositiveSmallIntegerField()
    coverage = models.PositiveSmallIntegerField()
    frames_received = models.PositiveIntegerField(default=0)
    calls = models.PositiveIntegerField(default=0)
    last_timestamp_ms = models.BigIntegerField(default=-1)
    # The change-stream position whose shared videos the kept frames were all matched against:
    # when the index has taken new videos since, the next call matches every kept frame again.
    position = models.BigIntegerField(default=0)
    # Per shared video value: {"stream": [stream ms of each matched distinct stream frame],
    # "shared": [distinct frame positions, sorted], "first_ms", "last_ms" (of the matched stream
    # frames), "best": [[stream ms, shared ms, d]]}. A call reads and rewrites only the videos
    # it touches (federation.live.session_state).
    evidence = models.JSONField(default=dict)
    alerted = models.JSONField(default=list)  # values that met the alert rule, in order

    class Meta:
        indexes = [
            models.Index(fields=["organisation", "state"], name="live_session_member_state"),
            models.Index(
                fields=["last_call_at"],
                condition=models.Q(state="open"),
                name="live_session_open_idle",
            ),
        ]

    def __str__(self) -> str:
        return f"live session {self.id} ({self.state})"


class LiveFrame(models.Model):
    """One distinct frame (by PDQ hash) of a session, of quality at or above its floor. Deleted
    when the session closes: the hub keeps no stream frames after that."""

    session = models.ForeignKey(LiveSession, on_delete=models.CASCADE, related_name="frames")
    pdq = models.CharField(max_length=64)
    quality = models.PositiveSmallIntegerField()
    timestamp_ms = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["session", "pdq"], name="live_frame_distinct")
        ]

    def __str__(self) -> str:
        return f"frame at {self.timestamp_ms} ms of {self.session_id}"
