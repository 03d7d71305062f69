"""A circuit breaker per installed connector, in this process.

closed: calls go through; ``threshold`` consecutive failures open it.
open: calls fail at once (503 ``circuit_open`` with Retry-After) for ``open_seconds``.
half_open: after that, exactly one call goes through as a probe; its success closes the
circuit, its failure opens it again for another ``open_seconds``. Other calls meanwhile fail
as if it were open.

Written here rather than taken from a library because the API shows each install's state and the
connector's status follows it (open → ``error``, closed again → ``active``); the asyncio breaker
libraries (purgatory, aiobreaker) neither guarantee a single half-open probe nor expose state
per circuit in that shape. Each replica keeps its own breakers: a failing connector trips them
all within a few calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from cachetools import LRUCache


class State(StrEnum):
    closed = "closed"
    open = "open"
    half_open = "half_open"


@dataclass
class Circuit:
    state: State = State.closed
    failures: int = 0
    opened_at: float | None = None  # monotonic
    opened_wall: datetime | None = None
    probing: bool = False
    last_error: str | None = None


class Breakers:
    def __init__(
        self,
        *,
        threshold: int,
        open_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        size: int = 100_000,
    ) -> None:
        self.threshold = threshold
        self.open_seconds = open_seconds
        self._clock = clock
        self._circuits: LRUCache[Any, Circuit] = LRUCache(maxsize=size)

    def acquire(self, key: Any) -> float | None:
        """Before a call: None to go ahead (marking a half-open probe as taken), or the seconds
        until a probe may go, to refuse it."""
        circuit = self._circuits.get(key)
        if circuit is None or circuit.state is State.closed:
            return None
        wait = circuit.opened_at + self.open_seconds - self._clock()  # type: ignore[operator]
        if wait > 0 or circuit.probing:
            return max(wait, 1.0)
        circuit.state, circuit.probing = State.half_open, True
        return None

    def success(self, key: Any) -> bool:
        """After a successful call; True when this closed an open circuit."""
        circuit = self._circuits.pop(key, None)
        return circuit is not None and circuit.state is not State.closed

    def failure(self, key: Any, error: str) -> bool:
        """After a failed call; True when this opened the circuit (from closed or a probe)."""
        circuit = self._circuits.get(key)
        if circuit is None:
            circuit = self._circuits[key] = Circuit()
        circuit.failures += 1
        circuit.last_error = error
        if circuit.state is State.half_open or (
            circuit.state is State.closed and circuit.failures >= self.threshold
        ):
            was_closed = circuit.state is State.closed
            circuit.state, circuit.probing = State.open, False
            circuit.opened_at, circuit.opened_wall = self._clock(), datetime.now(UTC)
            return was_closed
        return False

    def release(self, key: Any) -> None:
        """A probe that ended without a verdict (e.g. refused as bad input): let another go."""
        circuit = self._circuits.get(key)
        if circuit is not None and circuit.state is State.half_open:
            circuit.probing = False

    def snapshot(self, key: Any) -> dict[str, Any]:
        """What the API shows for one install."""
        circuit = self._circuits.get(key)
        if circuit is None:
            return {"state": State.closed.value, "consecutive_failures": 0}
        out: dict[str, Any] = {
            "state": circuit.state.value,
            "consecutive_failures": circuit.failures,
            "last_error": circuit.last_error,
        }
        if circuit.state is not State.closed and circuit.opened_wall is not None:
            out["opened_at"] = circuit.opened_wall.isoformat()
            out["probe_after"] = (
                circuit.opened_wall + timedelta(seconds=self.open_seconds)
            ).isoformat()
        return out

    def open_count(self) -> int:
        return sum(1 for c in self._circuits.values() if c.state is not State.closed)
