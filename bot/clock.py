"""Time, passed in: production uses the system clocks, tests a fake they move by hand."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch: for what is stored and survives restarts."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps: for waiting, backoff and pacing."""
        ...

    def now(self) -> datetime:
        """The wall clock as an aware UTC datetime."""
        ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)
