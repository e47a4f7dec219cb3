"""Monitoring that operators plug in (docs/operations.md): the Prometheus endpoint ``/metrics``
(gauges read from the database at scrape time, ``gauges.py``; ingest counters, ``counters.py``)
and the load balancer's probes ``/health/live`` and ``/health/ready`` (``probes.py``)."""
