"""The registry one scrape reads: the database gauges and the counters, summed over every
process in prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set), this
process's own otherwise (federation/monitoring/counters.py says why)."""

import os

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from federation.monitoring.counters import COUNTERS
from federation.monitoring.gauges import HubCollector


def multiprocess_mode() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def scrape_registry() -> CollectorRegistry:
    """What one scrape reports: the database gauges, and the counters (summed over every process
    in multiprocess mode, this process's own otherwise)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector())
    if multiprocess_mode():
        MultiProcessCollector(registry)
    else:
        for counter in COUNTERS:
            registry.register(counter)
    return registry
