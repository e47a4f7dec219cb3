"""`make demo`: start a small federation on localhost with no database or broker server (SQLite
and a file-system Celery transport per hub), then act out a day of hash sharing over HTTP.

Three hubs by default (``--hubs``): the first (``--hub-name``, ``hub-a``) is where members
submit, review and retract; the others (``hub-b``, ``hub-c``) are its peers, each peered with
both others through ``manage.py peer`` (keys pinned, tokens exchanged, inbound policy ``trust``).
The walkthrough shows the entries vetted at the first hub arriving at the others, and the
retraction following them. Each hub runs as real processes (gunicorn and a Celery worker with
beat, consuming the hub's queue and its incident lane) with its own folder under ``var/``.

A demo refuses to start, before it changes anything under ``var/``, while another demo runs one
of its hubs (``var/NAME.lock``) or one of its ports is taken; Ctrl-C, SIGTERM and SIGHUP stop the
hubs' processes with it. It ends by printing the logins, tokens and commands a newcomer needs.

The package: ``processes`` (process groups, shared with the integration tests' harness),
``hubs`` (a demo hub, its lock and ports), ``setup`` (databases, keys, people, peering, witnessing),
``walkthrough`` (what is acted out and printed) and ``run`` (the whole, stopped cleanly);
``manage.py demo`` is its command.
"""
