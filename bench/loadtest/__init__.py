"""``python -m bench.loadtest`` (``make loadtest``): a Locust run against the service, reported.

The run itself is ``deploy/loadtest/locustfile.py`` in a Locust process of its own (Locust
must not share a process with the ``service`` package). This package starts a server when
no ``--target`` is given, scrapes its ``/metrics`` while the load runs, and turns Locust's
files and the scrapes into PNG plots, a ``summary.md`` and the exit status of an SLO gate.
"""
