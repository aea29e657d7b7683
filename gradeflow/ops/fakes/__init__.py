"""Fakes of the services gradeflow talks to, on loopback, for tests and benchmarks.

They live in the package (not under ``tests/``) because ``gradeflow bench …``
commands start them too; ``tests/fakes`` re-exports them for the tests.
"""
