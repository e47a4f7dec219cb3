"""Reading video signals: the stored frame lists of shared vpdq entries (docs/sync.md, "Video
frame lists")."""

from dataclasses import dataclass

from federation.contributions.models import SHARED_STATES, SignalType
from federation.video.models import VideoFrames


@dataclass(frozen=True, slots=True)
class FramesPage:
    """The frame lists of some requested values, in request order: ``lists`` as ``(value,
    frame_count, canonical text)``, ``deferred`` (shared, but past the page's frame budget: ask
    again) and ``unknown`` (not in the shared set)."""

    lists: list[tuple[str, int, str]]
    deferred: list[str]
    unknown: list[str]


def shared_frame_lists(*, values: list[str], max_frames: int) -> FramesPage:
    """The canonical frame lists of the shared vpdq entries among ``values`` (lowercase digests,
    distinct), until ``max_frames`` frames (always at least one list)."""
    counts = dict(
        VideoFrames.objects.filter(
            entry__signal_type=SignalType.VPDQ,
            entry__value__in=values,
            entry__state__in=SHARED_STATES,
        ).values_list("entry__value", "frame_count")
    )
    chosen: list[str] = []
    deferred: list[str] = []
    total = 0
    for value in values:
        if value not in counts:
            continue
        if chosen and (deferred or total + counts[value] > max_frames):
            deferred.append(value)
            continue
        chosen.append(value)
        total += counts[value]
    texts = dict(
        VideoFrames.objects.filter(
            entry__signal_type=SignalType.VPDQ, entry__value__in=chosen
        ).values_list("entry__value", "canonical")
    )
    return FramesPage(
        lists=[(value, counts[value], texts[value]) for value in chosen],
        deferred=deferred,
        unknown=[value for value in values if value not in counts],
    )
