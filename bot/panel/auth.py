"""Who may use the panel: the password (NEWSBOT_PANEL_PASSWORD, or the file named by
NEWSBOT_PANEL_PASSWORD_FILE) or an authenticating proxy's header; sessions after login; and how
often a wrong password may be tried.

Sessions live in memory (a restart logs everyone out): the panel has one kind of user, whoever
runs the bot, and nothing in a session needs to outlive the process."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import deque
from dataclasses import dataclass, field

from bot.config import PANEL_PASSWORD_ENV, Config
from bot.credentials import Secrets
from bot.panel.csrf import FormTokens, new_key

MIN_PASSWORD_LENGTH = 8
SESSION_IDLE_S = 8 * 3600.0  # a session unused this long ends
SESSION_MAX_S = 7 * 86400.0  # and any session ends after this long
MAX_SESSIONS = 1000  # the oldest goes first beyond it


@dataclass(frozen=True, slots=True)
class Access:
    """How people log in: a password, a proxy's header, or both."""

    password: str | None
    trusted_header: str | None


def panel_access(config: Config, secrets_at_hand: Secrets) -> Access | str:
    """How the panel is entered under this configuration, or why it cannot start (the same
    words for `run` and `check-config`)."""
    password = secrets_at_hand.value(PANEL_PASSWORD_ENV)
    problem = secrets_at_hand.problem(PANEL_PASSWORD_ENV)
    header = config.panel.trusted_header or None
    if problem is not None:
        return f"the panel is off: {problem}"
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        return (
            f"the panel is off: {PANEL_PASSWORD_ENV} is shorter than {MIN_PASSWORD_LENGTH} "
            "characters; choose a longer password"
        )
    if password is None and header is None:
        return (
            f"the panel is off: it needs a password: set {PANEL_PASSWORD_ENV} (or "
            f"{PANEL_PASSWORD_ENV}_FILE) to one, or name an authenticating proxy's header in "
            "[panel] trusted_header"
        )
    return Access(password, header)


def password_matches(given: str, password: str) -> bool:
    """Compared in constant time (as digests, so the length does not show either)."""
    return hmac.compare_digest(
        hashlib.sha256(given.encode("utf-8", "surrogatepass")).digest(),
        hashlib.sha256(password.encode("utf-8", "surrogatepass")).digest(),
    )


@dataclass(slots=True)
class Session:
    user: str
    started_s: float  # monotonic
    seen_s: float
    forms: FormTokens
    flash: list[tuple[bool, str]] = field(default_factory=list)  # (ok, text) for the next page


class Sessions:
    """Session ids (random, 256 bits) to sessions; an id is only ever sent in the cookie."""

    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}

    def start(self, user: str, now_s: float) -> tuple[str, Session]:
        session_id = secrets.token_urlsafe(32)
        session = Session(user, now_s, now_s, FormTokens(new_key()))
        self._by_id[session_id] = session
        if len(self._by_id) > MAX_SESSIONS:
            oldest = min(self._by_id, key=lambda k: self._by_id[k].seen_s)
            del self._by_id[oldest]
        return session_id, session

    def find(self, session_id: str | None, now_s: float) -> Session | None:
        """The live session with this id (its idle time restarts), or None."""
        if not session_id or len(session_id) > 100:
            return None
        session = self._by_id.get(session_id)
        if session is None:
            return None
        if now_s - session.seen_s > SESSION_IDLE_S or now_s - session.started_s > SESSION_MAX_S:
            del self._by_id[session_id]
            return None
        session.seen_s = now_s
        return session

    def end(self, session_id: str | None) -> None:
        if session_id:
            self._by_id.pop(session_id, None)


@dataclass(frozen=True, slots=True)
class Limits:
    """Wrong passwords allowed within `window_s`: per client address, and from all together
    (so that many addresses cannot guess faster)."""

    per_address: int = 5
    overall: int = 50
    window_s: float = 15 * 60.0


class LoginLimiter:
    """Counts wrong passwords; while a limit is reached, no password is even checked."""

    def __init__(self, limits: Limits | None = None) -> None:
        self._limits = limits or Limits()
        self._failures: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()

    def _trim(self, times: deque[float], now_s: float) -> None:
        while times and now_s - times[0] >= self._limits.window_s:
            times.popleft()

    def wait_s(self, address: str, now_s: float) -> float:
        """0 when this address may try a password now, else how long until it may."""
        self._trim(self._all, now_s)
        mine = self._failures.get(address)
        if mine is not None:
            self._trim(mine, now_s)
            if not mine:
                del self._failures[address]
                mine = None
        waits = []
        if mine is not None and len(mine) >= self._limits.per_address:
            waits.append(mine[0] + self._limits.window_s - now_s)
        if len(self._all) >= self._limits.overall:
            waits.append(self._all[0] + self._limits.window_s - now_s)
        return max(waits, default=0.0)

    def failed(self, address: str, now_s: float) -> None:
        self._failures.setdefault(address, deque()).append(now_s)
        self._all.append(now_s)
        if len(self._failures) > 10_000:  # addresses that stopped trying: forget the oldest
            oldest = min(self._failures, key=lambda a: self._failures[a][-1])
            del self._failures[oldest]
