"""The end-to-end harness: the whole stack as real processes, a workload pushed through
its HTTP API, and the checks of a run, shared by ``tests/e2e`` and ``gradeflow bench
e2e|chaos``.

- :mod:`.services`: PostgreSQL and Redis a run owns, so it can restart them;
- :mod:`.stack`: the fake LLM, the API, a worker per queue and the scheduler;
- :mod:`.workload`: clients, catalog, endpoints with verifying receivers, submissions;
- :mod:`.checks`: what must hold afterwards, read from Postgres and the receivers.
"""
