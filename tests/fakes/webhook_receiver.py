"""The verifying webhook receiver; it lives in :mod:`gradeflow.ops.fakes.webhook_receiver`
(the benchmarks use it too) and is re-exported here for the tests."""

from __future__ import annotations

from gradeflow.ops.fakes.webhook_receiver import Received, Receiver, Script, receiving, verifies

__all__ = ["Received", "Receiver", "Script", "receiving", "verifies"]
