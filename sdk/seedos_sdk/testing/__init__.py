"""Testing helpers for connector authors: the conformance suite and real-process fixtures."""

from seedos_sdk.testing.conformance import CHECKS, Target, conformance_suite, run_checks
from seedos_sdk.testing.process import Served, free_port, serve, start

__all__ = [
    "CHECKS",
    "Served",
    "Target",
    "conformance_suite",
    "free_port",
    "run_checks",
    "serve",
    "start",
]
