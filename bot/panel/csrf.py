"""Form tokens. Every form the panel renders carries one, and a post is acted on only with a
token that is genuine, fresh and not used before:

- after login, a token is a nonce with its HMAC under the session's own key: a token from
  another session (or none) is refused, and each one is taken once, so a replayed post
  changes nothing a second time;
- the login form, before any session exists, carries a nonce signed with a key of this
  process, good for an hour and also taken once.

Tokens are kept in memory: a restart makes old forms stale (and logs everyone out)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict

TOKEN_FIELD = "csrf"
TOKEN_MAX_AGE_S = 3600.0 * 12
MAX_REMEMBERED = 2048  # used tokens remembered per key; older ones are too old by then anyway


def new_key() -> bytes:
    return secrets.token_bytes(32)


def _mac(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode("ascii"), hashlib.sha256).hexdigest()


class FormTokens:
    """Tokens signed with one key: issued at a time, each accepted once within `max_age_s`."""

    def __init__(self, key: bytes, max_age_s: float = TOKEN_MAX_AGE_S) -> None:
        self._key = key
        self._max_age_s = max_age_s
        self._used: OrderedDict[str, None] = OrderedDict()

    def issue(self, now_s: float) -> str:
        message = f"{int(now_s)}.{secrets.token_urlsafe(16)}"
        return f"{message}.{_mac(self._key, message)}"

    def take(self, token: str | None, now_s: float) -> bool:
        """Whether `token` is one of ours, fresh and unused; it is used from now on."""
        if not token or len(token) > 200 or not token.isascii():
            return False
        message, _, mac = token.rpartition(".")
        issued, _, nonce = message.partition(".")
        if not (issued.isdigit() and nonce and len(issued) <= 12):
            return False
        if not hmac.compare_digest(mac, _mac(self._key, message)):
            return False
        if not 0 <= now_s - int(issued) <= self._max_age_s or message in self._used:
            return False
        self._used[message] = None
        while len(self._used) > MAX_REMEMBERED:
            self._used.popitem(last=False)
        return True
