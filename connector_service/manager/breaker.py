"""A circuit breaker per installed connector, in this process.

closed: calls go through; ``threshold`` consecutive failures open it.
open: calls fail at once (503 ``circuit_open`` with Retry-After) for ``open_seconds``.
half_open: after that, exactly one call goes through as a probe; its success closes the
circuit, its failure opens it again for another ``open_seconds``. Other calls meanwhile fail
as if it were open. A call that was let through earlier and ends meanwhile does not take or
free the probe's place; a success still closes the circuit (the connector answered).

Written here rather than taken from a library because the API shows each install's state and the
connector's status follows it (open → ``error``); the asyncio breaker libraries (purgatory,
aiobreaker) neither guarantee a single half-open probe nor expose state per circuit in that
shape. Each replica keeps its own breakers: a failing connector trips them all within a few
calls.
"""

from __future__ import annotations

import itertools
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
    opened_at: float = 0.0  # monotonic
    opened_wall: datetime | None = None
    probe: int | None = None  # the ticket of the call let through as the half-open probe
    last_error: str | None = None


@dataclass(frozen=True)
class Admission:
    """The answer to a call asking to go through: ``wait`` seconds to refuse it, else None;
    ``ticket`` identifies the call (the probe's ticket is the circuit's ``probe``)."""

    ticket: int
    wait: float | None = None


class _Circuits(LRUCache[Any, Circuit]):
    """The circuits, least recently used dropped first; keeps the number of open ones."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize=maxsize)
        self.open_keys: set[Any] = set()

    def popitem(self) -> tuple[Any, Circuit]:
        key, circuit = super().popitem()
        self.open_keys.discard(key)
        return key, circuit


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
        self._circuits = _Circuits(size)
        self._tickets = itertools.count(1)

    def acquire(self, key: Any) -> Admission:
        """Before a call."""
        ticket = next(self._tickets)
        circuit = self._circuits.get(key)
        if circuit is None or circuit.state is State.closed:
            return Admission(ticket)
        wait = circuit.opened_at + self.open_seconds - self._clock()
        if wait > 0 or circuit.probe is not None:
            return Admission(ticket, max(wait, 1.0))
        circuit.state, circuit.probe = State.half_open, ticket
        return Admission(ticket)

    def success(self, key: Any, ticket: int) -> bool:
        """After a call the connector answered; True when this closed an open circuit."""
        circuit = self._circuits.pop(key, None)
        self._circuits.open_keys.discard(key)
        return circuit is not None and circuit.state is not State.closed

    def failure(self, key: Any, ticket: int, error: str) -> bool:
        """After a failed call; True when this opened a closed circuit."""
        circuit = self._circuits.get(key)
        if circuit is None:
            circuit = self._circuits[key] = Circuit()
        circuit.failures += 1
        circuit.last_error = error
        probe_failed = circuit.state is State.half_open and circuit.probe == ticket
        if probe_failed or (circuit.state is State.closed and circuit.failures >= self.threshold):
            opened = circuit.state is State.closed
            circuit.state, circuit.probe = State.open, None
            circuit.opened_at, circuit.opened_wall = self._clock(), datetime.now(UTC)
            self._circuits.open_keys.add(key)
            return opened
        return False

    def release(self, key: Any, ticket: int) -> None:
        """A call that ended without a verdict (cancelled, refused before it was sent): when it
        was the probe, the next call may probe."""
        circuit = self._circuits.get(key)
        if circuit is not None and circuit.probe == ticket:
            circuit.probe = None

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
        return len(self._circuits.open_keys)
