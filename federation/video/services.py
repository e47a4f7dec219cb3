"""Writing video signals: the frame list of each new vpdq entry, beside its first add."""

from collections.abc import Iterable

from federation.video.frames import FrameList
from federation.video.models import VideoFrames


def video_frames_record(*, frame_lists: Iterable[tuple[int, FrameList]]) -> None:
    """Store the frame list of each ``(entry_id, frames)`` not stored yet, in the caller's
    transaction. A list already stored is left as is: its entry's value is the digest of its
    bytes, so any later add of the signal signed the very same list."""
    wanted = {entry_id: frames for entry_id, frames in frame_lists}
    if not wanted:
        return
    stored = set(
        VideoFrames.objects.filter(entry_id__in=list(wanted)).values_list("entry_id", flat=True)
    )
    VideoFrames.objects.bulk_create(
        [
            VideoFrames(
                entry_id=entry_id,
                frame_count=len(frames),
                canonical=frames.canonical.decode("ascii"),
            )
            for entry_id, frames in sorted(wanted.items())
            if entry_id not in stored
        ],
        ignore_conflicts=True,  # a concurrent first add of the same signal stored the same bytes
    )
