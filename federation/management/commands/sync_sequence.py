"""Sequence the sync stream now (and optionally compact it), without waiting for the worker."""

import json
import time

from django.core.management.base import BaseCommand

from federation.sync.sequencer import sync_changes_compact, sync_sequence_pending


class Command(BaseCommand):
    help = "Give stream positions to committed changes; with --compact, compact the stream too."

    def add_arguments(self, parser):
        parser.add_argument("--compact", action="store_true", help="Also run compaction.")

    def handle(self, *args, **options):
        started = time.perf_counter()
        result = {"sequenced": sync_sequence_pending()}
        result["seconds"] = round(time.perf_counter() - started, 3)
        if options["compact"]:
            compaction = sync_changes_compact()
            result.update(superseded=compaction.superseded, removals=compaction.removals)
        self.stdout.write(json.dumps(result))
