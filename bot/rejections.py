"""Why the HTTP server refused a request: one name per reason, shared by the checks that refuse
and by what counts and logs the refusals."""

from __future__ import annotations

from enum import StrEnum


class Rejection(StrEnum):
    MISSING_HEADERS = "missing_headers"  # no signature or no timestamp
    MALFORMED = "malformed"  # a timestamp, signature or body no sender of ours would write
    STALE = "stale"  # signed more than Slack's 5 minutes from now
    BAD_SIGNATURE = "bad_signature"
    REPLAY = "replay"  # a signature already accepted within the window
    TOO_MANY_RECENT = "too_many_recent"  # the replay memory is full of live signatures
    BODY_TOO_LARGE = "body_too_large"

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
}
