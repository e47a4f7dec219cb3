"""The stored frame lists of vpdq entries (docs/video.md §4)."""

from django.db import models


class VideoFrames(models.Model):
    """The canonical frame list of a vpdq entry, kept once per entry.

    The entry's value is the SHA-256 of ``canonical``, so the list never changes: every add of
    the signal, on this hub or relayed, signed the same bytes. Written in the transaction that
    stores the first add (``federation.video.services.video_frames_record``)."""

    entry = models.OneToOneField(
        "federation.Entry", on_delete=models.PROTECT, primary_key=True, related_name="video_frames"
    )
    frame_count = models.PositiveIntegerField()
    # The canonical bytes as text (compact JSON, ASCII): read as is by sync, federation and the
    # matching index, and hashed to check it (docs/video.md §1).
    canonical = models.TextField()

    def __str__(self) -> str:
        return f"{self.frame_count} frames of entry {self.entry_id}"
