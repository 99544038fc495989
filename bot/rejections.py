"""Why the HTTP server refused a request (one name per reason, shared by the checks that refuse
and by what counts them), and the account of refusals: each one counted, and at most one log
line per reason a minute, so that a flood of bad requests cannot fill the log."""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import StrEnum

from bot.clock import Clock, SystemClock

log = logging.getLogger(__name__)

# At most one warning per reason this often; the metrics count every refusal.
LOG_INTERVAL_S = 60.0


class Rejection(StrEnum):
    MISSING_HEADERS = "missing_headers"  # no signature or no timestamp
    MALFORMED = "malformed"  # a timestamp, signature or body no sender of ours would write
    STALE = "stale"  # signed more than Slack's 5 minutes from now
    BAD_SIGNATURE = "bad_signature"
    REPLAY = "replay"  # a signature already accepted within the window
    TOO_MANY_RECENT = "too_many_recent"  # the replay memory is full of live signatures
    BODY_TOO_LARGE = "body_too_large"
    SLOW_BODY = "slow_body"  # the body did not arrive within its timeout
    TOO_MANY_CONNECTIONS = "too_many_connections"

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    Rejection.MISSING_HEADERS: "no signature or timestamp headers",
    Rejection.MALFORMED: "a malformed timestamp, signature or body",
    Rejection.STALE: "a timestamp more than 5 minutes from now",
    Rejection.BAD_SIGNATURE: "a signature that does not match",
    Rejection.REPLAY: "a signature already used (a replay)",
    Rejection.TOO_MANY_RECENT: "too many commands within 5 minutes to rule out a replay",
    Rejection.BODY_TOO_LARGE: "a body over the size limit",
    Rejection.SLOW_BODY: "a body that did not arrive in time",
    Rejection.TOO_MANY_CONNECTIONS: "too many open connections",
}


class RejectionLog:
    """Counts every refusal (through `count`, e.g. the metrics) and logs a warning for the first
    of each reason, then at most one per `interval_s`, saying how many were not logged."""

    def __init__(
        self,
        count: Callable[[Rejection], None] | None = None,
        clock: Clock | None = None,
        interval_s: float = LOG_INTERVAL_S,
    ) -> None:
        self._count = count
        self._clock = clock or SystemClock()
        self._interval_s = interval_s
        self._last_logged: dict[Rejection, float] = {}
        self._held_back: dict[Rejection, int] = {}

    def refuse(self, reason: Rejection) -> None:
        if self._count is not None:
            self._count(reason)
        now = self._clock.monotonic()
        last = self._last_logged.get(reason)
        if last is not None and now - last < self._interval_s:
            self._held_back[reason] = self._held_back.get(reason, 0) + 1
            return
        self._last_logged[reason] = now
        held_back = self._held_back.pop(reason, 0)
        more = (
            f" ({held_back} more like it in the last {now - last:.0f} s, not logged)"
            if held_back and last is not None
            else ""
        )
        log.warning("http: refused a request [%s]: %s%s", reason, reason.description, more)
