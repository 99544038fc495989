"""A fake Discord (REST API + gateway) that the real discord.py talks to over 127.0.0.1.

Start it with ``async with FakeDiscord() as fake:`` and point discord.py at it with
``with patch_discord_py(fake):``. Everything runs on the test's event loop; nothing here sleeps
except where the *server* is told to answer late (``fake.delay``) or to hold an answer.

What is imitated, and why (see also tests/test_fake_discord.py):

* Responses are JSON with ``Content-Type`` exactly ``application/json``: discord.py only parses
  JSON when the header is exactly that.
* 429s carry ``Via`` and a JSON body, else discord.py takes them for a Cloudflare ban.
* Message creation answers carry the ``X-RateLimit-*`` headers of a per-channel bucket, and (by
  default) a client that ignores them gets real 429s.
* ``nonce`` + ``enforce_nonce`` de-duplicate message creation per channel.
* Payload limits (content, embeds, nonce, application commands) are checked and answered with
  ``400 {"code": 50035, "message": "Invalid Form Body", "errors": {...}}`` like Discord does.
* The gateway sends HELLO, answers IDENTIFY with READY, HEARTBEAT with HEARTBEAT_ACK, supports
  RESUME, closes with 4004 on a bad token, and dispatches events (``INTERACTION_CREATE``...).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fnmatch
import itertools
import json
import math
import re
import secrets
import socket
import struct
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntFlag
from http import HTTPStatus
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import urlsplit

import yarl
from aiohttp import WSMsgType, web

__all__ = [
    "DEFAULT_APP_PERMISSIONS",
    "DEFAULT_MEMBER_PERMISSIONS",
    "Channel",
    "FakeDiscord",
    "Fault",
    "GatewaySession",
    "InteractionRecord",
    "Permission",
    "RateLimitPolicy",
    "RecordedRequest",
    "WebhookInfo",
    "patch_discord_py",
    "permissions",
]

JSON = dict[str, Any]
PathMatcher = str | re.Pattern[str] | Callable[["RecordedRequest"], bool]

DISCORD_EPOCH_MS = 1_420_070_400_000
DEFAULT_BOT_TOKEN = "FAKE-NEWSBOT-TOKEN.aGVsbG8.c2VjcmV0LW5vdC1yZWFs"
DEFAULT_APPLICATION_ID = 1_210_000_000_000_000_001
DEFAULT_BOT_USER_ID = 1_210_000_000_000_000_002
DEFAULT_GUILD_ID = 1_210_000_000_000_000_100
DEFAULT_USER_ID = 1_210_000_000_000_000_200

EPHEMERAL = 1 << 6
LOADING = 1 << 7


class Permission(IntFlag):
    """Discord permission bits (the subset a news bot meets)."""

    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    MANAGE_ROLES = 1 << 28
    MANAGE_WEBHOOKS = 1 << 29
    USE_APPLICATION_COMMANDS = 1 << 31
    SEND_MESSAGES_IN_THREADS = 1 << 38


def permissions(*flags: Permission | int) -> str:
    """The bitfield string Discord sends, e.g. ``permissions(Permission.VIEW_CHANNEL)``."""
    value = 0
    for flag in flags:
        value |= int(flag)
    return str(value)


DEFAULT_MEMBER_PERMISSIONS = permissions(
    Permission.VIEW_CHANNEL,
    Permission.SEND_MESSAGES,
    Permission.READ_MESSAGE_HISTORY,
    Permission.ADD_REACTIONS,
    Permission.EMBED_LINKS,
    Permission.USE_APPLICATION_COMMANDS,
)
DEFAULT_APP_PERMISSIONS = permissions(
    Permission.VIEW_CHANNEL,
    Permission.SEND_MESSAGES,
    Permission.READ_MESSAGE_HISTORY,
    Permission.EMBED_LINKS,
    Permission.ATTACH_FILES,
    Permission.USE_APPLICATION_COMMANDS,
)


def _iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _json_response(
    status: int, payload: Any, headers: Mapping[str, str] | None = None
) -> web.Response:
    all_headers = {"Content-Type": "application/json"}
    if headers:
        all_headers.update(headers)
    return web.Response(status=status, body=_dumps(payload), headers=all_headers)


def _error(
    status: int,
    message: str,
    code: int,
    *,
    errors: JSON | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body: JSON = {"message": message, "code": code}
    if errors:
        body["errors"] = errors
    return _json_response(status, body, headers)


def _no_content(headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=204, headers=dict(headers or {}))


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in {"1", "true", "yes"}


# --------------------------------------------------------------------------- data records


@dataclass
class RecordedRequest:
    """One request as the fake received it (REST call or gateway websocket upgrade)."""

    index: int
    method: str
    path: str  # full URL path, e.g. /api/v10/channels/1/messages
    route: str  # API-relative path, e.g. /channels/1/messages (same as path for the gateway)
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any
    files: list[tuple[str, str, int]]  # (form field, filename, size) of multipart uploads
    received_at: float  # time.monotonic() when the request arrived
    websocket: bool = False
    status: int | None = None  # None while in flight, or when the connection was dropped
    responded_at: float | None = None
    dropped: bool = False
    fault: Fault | None = None


@dataclass
class RateLimitPolicy:
    """A per-major-parameter bucket: ``limit`` requests per ``window`` seconds.

    ``enforce=False`` still sends the headers (so discord.py paces itself) but never answers 429.
    """

    limit: int = 5
    window: float = 5.0
    enforce: bool = True


@dataclass
class Fault:
    """A scripted misbehaviour for matching requests; see ``FakeDiscord.inject`` and friends.

    Order of effects: run the real handler first if ``process_first``; sleep ``delay``; wait for
    ``release()`` if ``hold``; drop the connection if ``drop``; answer ``status`` if set, else the
    real answer.
    """

    method: str | None
    path: PathMatcher
    status: int | None = None
    retry_after: float = 0.3
    scope: str = "user"
    global_: bool = False
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hold: bool = False
    drop: Literal["close", "reset"] | None = None
    process_first: bool = False
    times: int | None = 1
    hits: int = 0
    requests: list[RecordedRequest] = field(default_factory=list)
    _released: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _hit: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def active(self) -> bool:
        return self.times is None or self.hits < self.times

    def matches(self, rec: RecordedRequest) -> bool:
        if self.method is not None and self.method.upper() != rec.method:
            return False
        if isinstance(self.path, re.Pattern):
            return self.path.fullmatch(rec.route) is not None
        if isinstance(self.path, str):
            if any(ch in self.path for ch in "*?["):
                return fnmatch.fnmatchcase(rec.route, self.path)
            return rec.route == self.path
        return bool(self.path(rec))

    def release(self) -> None:
        """Let held requests answer (and all later ones matched by this hold)."""
        self._released.set()

    def cancel(self) -> None:
        """Stop matching further requests (held ones are released)."""
        self.times = self.hits
        self._released.set()

    async def wait_hit(self, count: int = 1, timeout: float = 5.0) -> RecordedRequest:
        """Wait until this fault has matched ``count`` requests; returns the latest one."""
        async with asyncio.timeout(timeout):
            while self.hits < count:
                self._hit.clear()
                await self._hit.wait()
        return self.requests[-1]


@dataclass
class Channel:
    id: int
    guild_id: int | None
    name: str
    type: int = 0
    position: int = 0
    topic: str | None = None
    forbidden: int | None = None  # None, 50001 (Missing Access) or 50013 (Missing Permissions)

    def to_json(self) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "type": self.type,
            "name": self.name,
            "position": self.position,
            "flags": 0,
            "parent_id": None,
            "topic": self.topic,
            "nsfw": False,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "permission_overwrites": [],
        }
        if self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
        return data


@dataclass
class WebhookInfo:
    id: int
    token: str
    channel_id: int
    name: str

    @property
    def url(self) -> str:
        """The URL as Discord shows it (discord.py ignores its host and uses Route.BASE)."""
        return f"https://discord.com/api/webhooks/{self.id}/{self.token}"


@dataclass
class InteractionRecord:
    """An interaction the fake dispatched, and everything the bot answered to it."""

    id: int
    token: str
    type: int
    payload: JSON
    dispatched_at: float
    callback: JSON | None = None  # the body of POST /interactions/{id}/{token}/callback
    callback_at: float | None = None
    original: JSON | None = None  # the message behind @original (after edits)
    original_edits: list[JSON] = field(default_factory=list)  # bodies of PATCH @original
    followups: list[JSON] = field(default_factory=list)  # messages created as follow-ups

    @property
    def callback_type(self) -> int | None:
        return None if self.callback is None else int(self.callback.get("type", 0))

    @property
    def callback_data(self) -> JSON:
        if self.callback is None:
            return {}
        data = self.callback.get("data")
        return data if isinstance(data, dict) else {}

    @property
    def ephemeral(self) -> bool:
        return bool(int(self.callback_data.get("flags", 0) or 0) & EPHEMERAL)


@dataclass
class GatewaySession:
    """One websocket connection to the fake gateway."""

    ws: web.WebSocketResponse
    query: dict[str, str]
    connected_at: float
    compress: bool
    session_id: str | None = None
    seq: int = 0
    identified: bool = False
    resumed: bool = False
    identify: JSON | None = None
    intents: int | None = None
    received: list[JSON] = field(default_factory=list)  # every frame the client sent
    sent: list[JSON] = field(default_factory=list)  # every frame the fake sent
    heartbeats: int = 0
    close_code: int | None = None
    closed: bool = False
    _compressor: Any = field(default=None, repr=False)


@dataclass
class _SessionState:
    """What survives a disconnect, for RESUME."""

    session_id: str
    seq: int
    events: list[JSON] = field(default_factory=list)


class _Bucket:
    def __init__(self, policy: RateLimitPolicy, bucket_hash: str, clock: Callable[[], float]):
        self.policy = policy
        self.hash = bucket_hash
        self._clock = clock
        self.count = 0
        self.window_end: float | None = None

    def _roll(self, now: float) -> None:
        if self.window_end is None or now >= self.window_end:
            self.count = 0
            self.window_end = now + self.policy.window

    def take(self) -> tuple[bool, float, dict[str, str]]:
        """Count one request; returns (allowed, retry_after, headers)."""
        now = self._clock()
        self._roll(now)
        assert self.window_end is not None
        reset_after = max(self.window_end - now, 0.0)
        allowed = not self.policy.enforce or self.count < self.policy.limit
        if allowed:
            self.count += 1
        remaining = max(self.policy.limit - self.count, 0)
        return allowed, reset_after, self.headers(remaining, reset_after)

    def headers(self, remaining: int, reset_after: float) -> dict[str, str]:
        # Round up to the millisecond so a client that trusts the header never comes back early.
        reset_after = math.ceil(reset_after * 1000) / 1000
        return {
            "X-RateLimit-Limit": str(self.policy.limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": self.hash,
        }


class _FormErrors:
    """Collects errors in Discord's nested ``{"a": {"0": {"b": {"_errors": [...]}}}}`` shape."""

    def __init__(self) -> None:
        self.tree: JSON = {}

    def add(self, path: Sequence[str | int], code: str, message: str) -> None:
        node = self.tree
        for part in path:
            node = node.setdefault(str(part), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})

    def max_length(self, path: Sequence[str | int], value: Any, limit: int) -> None:
        if value is not None and len(value) > limit:
            self.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")

    def __bool__(self) -> bool:
        return bool(self.tree)

    def response(self, headers: Mapping[str, str] | None = None) -> web.Response:
        return _error(400, "Invalid Form Body", 50035, errors=self.tree, headers=headers)


@dataclass
class _Ctx:
    request: web.Request
    rec: RecordedRequest
    params: dict[str, str]

    @property
    def body(self) -> JSON:
        return self.rec.json if isinstance(self.rec.json, dict) else {}


_Handler = Callable[[_Ctx], Awaitable[web.Response]]

_USER_MENTION = re.compile(r"<@!?(\d{15,21})>")
_ROLE_MENTION = re.compile(r"<@&(\d{15,21})>")
_EVERYONE_MENTION = re.compile(r"@(?:everyone|here)")
_COMMAND_NAME = re.compile(r"^[-_'\w]{1,32}$")
_MAJOR = r"(?P<{}>\d{{15,21}})"


def _route(pattern: str) -> re.Pattern[str]:
    for name in ("channel_id", "message_id", "webhook_id", "application_id", "guild_id", "iid"):
        pattern = pattern.replace("{" + name + "}", _MAJOR.format(name))
    pattern = pattern.replace("{token}", r"(?P<token>[^/]+)")
    return re.compile(pattern)


# --------------------------------------------------------------------------- the fake


class FakeDiscord:
    """Fake Discord REST API and gateway on 127.0.0.1 (an ephemeral port)."""

    def __init__(
        self,
        *,
        bot_token: str = DEFAULT_BOT_TOKEN,
        application_id: int = DEFAULT_APPLICATION_ID,
        bot_user_id: int = DEFAULT_BOT_USER_ID,
        bot_username: str = "newsbot",
        default_guild_id: int = DEFAULT_GUILD_ID,
        message_rate_limit: RateLimitPolicy | None = None,
        webhook_rate_limit: RateLimitPolicy | None = None,
        global_rate_limit: int | None = None,
        nonce_window: float = 300.0,
        interaction_response_window: float = 3.0,
        gateway_compress: bool = False,
        privileged_intents: int = 0,
        heartbeat_interval_ms: int = 41_250,
        clock: Callable[[], float] = time.monotonic,
        host: str = "127.0.0.1",
    ) -> None:
        self.bot_token = bot_token
        self.application_id = application_id
        self.bot_user_id = bot_user_id
        self.bot_username = bot_username
        self.default_guild_id = default_guild_id
        self.message_rate_limit = message_rate_limit or RateLimitPolicy(limit=5, window=5.0)
        self.webhook_rate_limit = webhook_rate_limit or RateLimitPolicy(limit=5, window=2.0)
        # The bot's global limit: at most this many bot-token requests in any rolling second
        # (Discord's is 50); None leaves it off.
        self.global_rate_limit = global_rate_limit
        self._global_log: collections.deque[float] = collections.deque()
        self.nonce_window = nonce_window
        self.interaction_response_window = interaction_response_window
        self.gateway_compress = gateway_compress
        self.privileged_intents = privileged_intents
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.clock = clock
        self.host = host

        self.requests: list[RecordedRequest] = []
        self.channels: dict[int, Channel] = {}
        self.thread_parents: dict[int, int] = {}  # thread channel id -> the channel it is in
        self.webhooks: dict[int, WebhookInfo] = {}
        self.interactions: dict[int, InteractionRecord] = {}
        self.sessions: list[GatewaySession] = []
        self.faults: list[Fault] = []

        self._messages: dict[int, list[JSON]] = {}
        self._message_index: dict[int, JSON] = {}
        self._message_origin: dict[int, str] = {}
        self._nonces: dict[tuple[int, str], tuple[float, int]] = {}
        self._global_commands: list[JSON] = []
        self._guild_commands: dict[int, list[JSON]] = {}
        self._buckets: dict[tuple[str, int], _Bucket] = {}
        self._session_states: dict[str, _SessionState] = {}
        self._interaction_by_token: dict[str, InteractionRecord] = {}
        self._ids = itertools.count()
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._routes = self._build_routes()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Bind 127.0.0.1:0 and serve."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", r"/api/v{version:\d+}/{tail:.*}", self._api)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, 0)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Release held requests, close gateway sockets (1001) and shut the server down."""
        for fault in self.faults:
            fault.release()
        for session in self.sessions:
            if not session.ws.closed:
                await session.ws.close(code=1001, message=b"fake server stopping")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeDiscord is not started")
        return self._port

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What ``discord.http.Route.BASE`` must be set to."""
        return f"{self.origin}/api/v10"

    @property
    def gateway_url(self) -> str:
        """What ``DiscordWebSocket.DEFAULT_GATEWAY`` must be set to (as a yarl.URL)."""
        return f"ws://{self.host}:{self.port}/gateway"

    # ------------------------------------------------------------------ setup helpers

    def snowflake(self) -> int:
        """A fresh snowflake with the current time in it."""
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        return (ms << 22) | (1 << 17) | (1 << 12) | (next(self._ids) & 0xFFF)

    def add_channel(
        self,
        channel_id: int,
        *,
        guild_id: int | None = None,
        name: str | None = None,
        channel_type: int = 0,
    ) -> Channel:
        """Make a (text, by default) channel exist in ``guild_id`` (default guild if None)."""
        channel = Channel(
            id=channel_id,
            guild_id=self.default_guild_id if guild_id is None else guild_id,
            name=name or f"news-{channel_id % 10_000}",
            type=channel_type,
            position=len(self.channels),
        )
        self.channels[channel_id] = channel
        return channel

    def remove_channel(self, channel_id: int) -> None:
        """Delete a channel: later calls get 404 Unknown Channel; its webhooks vanish too."""
        self.channels.pop(channel_id, None)
        for webhook_id in [w.id for w in self.webhooks.values() if w.channel_id == channel_id]:
            del self.webhooks[webhook_id]

    def forbid_channel(self, channel_id: int, code: int = 50013) -> None:
        """50013: the bot sees the channel but may not post; 50001: no access at all."""
        if code not in (50001, 50013):
            raise ValueError("code must be 50001 (Missing Access) or 50013 (Missing Permissions)")
        self.channels[channel_id].forbidden = code

    def allow_channel(self, channel_id: int) -> None:
        self.channels[channel_id].forbidden = None

    def add_webhook(
        self,
        channel_id: int,
        *,
        webhook_id: int | None = None,
        token: str | None = None,
        name: str = "newsbot",
    ) -> WebhookInfo:
        """Create an incoming webhook; ``.url`` passes ``discord.Webhook.from_url``'s checks."""
        if channel_id not in self.channels:
            self.add_channel(channel_id)
        info = WebhookInfo(
            id=webhook_id or self.snowflake(),
            token=token or secrets.token_urlsafe(51),  # 68 characters, like Discord's
            channel_id=channel_id,
            name=name,
        )
        self.webhooks[info.id] = info
        return info

    # ------------------------------------------------------------------ faults

    def inject(
        self,
        method: str | None,
        path: PathMatcher,
        *,
        status: int = 429,
        retry_after: float = 0.3,
        times: int | None = 1,
        scope: str = "user",
        global_: bool = False,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
        process_first: bool = False,
    ) -> Fault:
        """Answer the next ``times`` matching requests with ``status`` (429, 500, 502, 503...).

        ``path`` is the API-relative path (``/channels/1/messages``): exact, a glob with ``*``,
        a compiled regex (full match) or a predicate on the RecordedRequest. ``method=None``
        matches any method. A 429 gets Discord's headers and body; 5xx get Discord-like bodies.
        ``process_first=True`` runs the real handler first (the work is done, the answer fails).
        """
        fault = Fault(
            method=method,
            path=path,
            status=status,
            retry_after=retry_after,
            scope=scope,
            global_=global_,
            body=body,
            headers=dict(headers or {}),
            delay=delay,
            times=times,
            process_first=process_first,
        )
        self.faults.append(fault)
        return fault

    def delay(
        self,
        method: str | None,
        path: PathMatcher,
        seconds: float,
        *,
        times: int | None = 1,
        process_first: bool = True,
    ) -> Fault:
        """Answer matching requests ``seconds`` late (by default: after doing the work)."""
        fault = Fault(
            method=method, path=path, delay=seconds, times=times, process_first=process_first
        )
        self.faults.append(fault)
        return fault

    def hold(
        self,
        method: str | None,
        path: PathMatcher,
        *,
        times: int | None = 1,
        process_first: bool = True,
    ) -> Fault:
        """Keep matching requests unanswered until ``fault.release()`` (or ``stop()``)."""
        fault = Fault(method=method, path=path, hold=True, times=times, process_first=process_first)
        self.faults.append(fault)
        return fault

    def drop(
        self,
        method: str | None,
        path: PathMatcher,
        *,
        times: int | None = 1,
        mode: Literal["close", "reset"] = "close",
        process_first: bool = False,
    ) -> Fault:
        """Drop the connection instead of answering: ``close`` (FIN; aiohttp raises
        ServerDisconnectedError) or ``reset`` (RST; ClientOSError errno 104)."""
        fault = Fault(method=method, path=path, drop=mode, times=times, process_first=process_first)
        self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        for fault in self.faults:
            fault.release()
        self.faults.clear()

    # ------------------------------------------------------------------ observation

    def requests_to(self, method: str | None, path_prefix: str = "") -> list[RecordedRequest]:
        """Recorded requests whose API-relative path starts with ``path_prefix``."""
        return [
            r
            for r in self.requests
            if (method is None or r.method == method.upper()) and r.route.startswith(path_prefix)
        ]

    def messages(self, channel_id: int, *, include_interactions: bool = False) -> list[JSON]:
        """Messages in a channel, oldest first (bot posts and webhook posts)."""
        return [
            m
            for m in self._messages.get(channel_id, [])
            if include_interactions or self._message_origin.get(int(m["id"])) != "interaction"
        ]

    def message(self, message_id: int) -> JSON | None:
        return self._message_index.get(message_id)

    def commands(self, guild_id: int | None = None) -> list[JSON]:
        """Registered application commands (global, or of one guild)."""
        if guild_id is None:
            return list(self._global_commands)
        return list(self._guild_commands.get(guild_id, []))

    def rate_limited_responses(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.status == 429]

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(
        self, predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition"
    ) -> None:
        """Wait (no polling) until ``predicate()`` is true; re-checked on every state change."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                recent = ", ".join(
                    f"{r.method} {r.route} -> {r.status}" for r in self.requests[-8:]
                )
                raise TimeoutError(
                    f"timed out after {timeout}s waiting for {what}; recent: {recent}"
                )
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    async def wait_for_message(
        self, channel_id: int, count: int = 1, timeout: float = 5.0
    ) -> list[JSON]:
        await self.wait_for(
            lambda: len(self.messages(channel_id)) >= count,
            timeout,
            f"{count} message(s) in channel {channel_id}",
        )
        return self.messages(channel_id)

    async def wait_for_request(
        self, method: str | None, path_prefix: str, count: int = 1, timeout: float = 5.0
    ) -> list[RecordedRequest]:
        await self.wait_for(
            lambda: len(self.requests_to(method, path_prefix)) >= count,
            timeout,
            f"{count} request(s) {method} {path_prefix}",
        )
        return self.requests_to(method, path_prefix)

    async def wait_for_session(self, timeout: float = 5.0) -> GatewaySession:
        """Wait until a gateway connection has identified (or resumed); returns the newest."""
        await self.wait_for(lambda: self._live_session() is not None, timeout, "gateway READY")
        session = self._live_session()
        assert session is not None
        return session

    async def wait_for_interaction_response(
        self, interaction_id: int, timeout: float = 5.0, *, followups: int = 0
    ) -> InteractionRecord:
        """Wait for the interaction's callback (and ``followups`` follow-up messages)."""
        record = self.interactions[interaction_id]
        await self.wait_for(
            lambda: record.callback is not None and len(record.followups) >= followups,
            timeout,
            f"response to interaction {interaction_id}",
        )
        return record

    # ------------------------------------------------------------------ gateway API

    def _live_session(self) -> GatewaySession | None:
        for session in reversed(self.sessions):
            if (session.identified or session.resumed) and not session.closed:
                return session
        return None

    async def dispatch(
        self, event: str, data: JSON, *, session: GatewaySession | None = None
    ) -> int:
        """Send a DISPATCH (op 0) to the newest live session; returns its sequence number."""
        target = session or self._live_session()
        if target is None:
            raise RuntimeError("no identified gateway session to dispatch to")
        return await self._send_dispatch(target, event, data)

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT: discord.py closes and RESUMEs at resume_gateway_url."""
        for session in list(self.sessions):
            if not session.closed:
                await self._send(session, {"op": 7, "d": None, "s": None, "t": None})

    async def invalidate_session(self, resumable: bool = False) -> None:
        """Send op 9 INVALID_SESSION (note: discord.py then waits 5 s before re-IDENTIFY)."""
        session = self._live_session()
        if session is not None:
            await self._send(session, {"op": 9, "d": resumable, "s": None, "t": None})

    async def close_gateway(self, code: int = 4000, message: str = "") -> None:
        for session in list(self.sessions):
            if not session.ws.closed:
                await session.ws.close(code=code, message=message.encode())

    def _find_command(self, name: str, guild_id: int) -> tuple[JSON | None, bool]:
        for command in self._guild_commands.get(guild_id, []):
            if command["name"] == name and command.get("type", 1) == 1:
                return command, True
        for command in self._global_commands:
            if command["name"] == name and command.get("type", 1) == 1:
                return command, False
        return None, False

    async def dispatch_interaction(
        self,
        command: str,
        options: Mapping[str, Any] | Sequence[JSON] | None = None,
        *,
        guild_id: int | None = None,
        channel_id: int | None = None,
        user_id: int = DEFAULT_USER_ID,
        username: str = "tester",
        member_permissions: str | int = DEFAULT_MEMBER_PERMISSIONS,
        app_permissions: str | int = DEFAULT_APP_PERMISSIONS,
        roles: Sequence[int] = (),
        locale: str = "en-US",
        focused: str | None = None,
        interaction_type: int | None = None,
        require_registered: bool = True,
    ) -> InteractionRecord:
        """Dispatch an INTERACTION_CREATE for slash command ``command`` as Discord would.

        ``options`` maps option names to values (types taken from the registered command, else
        from the Python value), or is a list of raw option dicts (for subcommands).
        ``focused`` names the option being typed: that makes it an autocomplete (type 4).
        The channel must exist (``add_channel``) unless ``channel_id`` is None (a fresh one is
        created). Returns the InteractionRecord; the answer lands in it.
        """
        guild = self.default_guild_id if guild_id is None else guild_id
        if channel_id is None:
            channel_id = self.snowflake()
            self.add_channel(channel_id, guild_id=guild)
        channel = self.channels.get(channel_id) or Channel(channel_id, guild, "unknown")
        registered, is_guild_command = self._find_command(command, guild)
        if registered is None and require_registered:
            raise LookupError(f"command {command!r} is not registered (did the bot sync?)")
        command_id = int(registered["id"]) if registered else self.snowflake()
        option_list = self._build_options(registered, options, focused)

        itype = interaction_type or (4 if focused else 2)
        iid = self.snowflake()
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(96)
        user = {
            "id": str(user_id),
            "username": username,
            "discriminator": "0",
            "global_name": username.title(),
            "avatar": None,
            "public_flags": 0,
            "flags": 0,
            "bot": False,
        }
        data: JSON = {"id": str(command_id), "name": command, "type": 1, "options": option_list}
        if is_guild_command:
            data["guild_id"] = str(guild)
        channel_json = channel.to_json()
        channel_json["permissions"] = str(member_permissions)
        payload: JSON = {
            "id": str(iid),
            "application_id": str(self.application_id),
            "type": itype,
            "token": token,
            "version": 1,
            "data": data,
            "guild_id": str(guild),
            "guild": {"id": str(guild), "locale": locale, "features": []},
            "channel_id": str(channel_id),
            "channel": channel_json,
            "member": {
                "user": user,
                "roles": [str(r) for r in roles],
                "permissions": str(member_permissions),
                "joined_at": "2024-01-01T00:00:00.000000+00:00",
                "premium_since": None,
                "nick": None,
                "avatar": None,
                "banner": None,
                "flags": 0,
                "pending": False,
                "deaf": False,
                "mute": False,
                "communication_disabled_until": None,
                "unusual_dm_activity_until": None,
            },
            "app_permissions": str(app_permissions),
            "locale": locale,
            "guild_locale": locale,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "authorizing_integration_owners": {"0": str(guild)},
            "context": 0,
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        record = InteractionRecord(
            id=iid, token=token, type=itype, payload=payload, dispatched_at=self.clock()
        )
        self.interactions[iid] = record
        self._interaction_by_token[token] = record
        await self.dispatch("INTERACTION_CREATE", payload)
        return record

    # ------------------------------------------------------------------ reactions and buttons

    GUILD_MESSAGE_REACTIONS = 1 << 10

    async def dispatch_reaction(
        self,
        message_id: int,
        emoji: str,
        *,
        user_id: int = DEFAULT_USER_ID,
        channel_id: int | None = None,
        guild_id: int | None = None,
        added: bool = True,
        emoji_id: int | None = None,
        username: str = "reactor",
    ) -> int | None:
        """A person reacts to (or un-reacts from) a message: MESSAGE_REACTION_ADD or _REMOVE as
        Discord sends them. Like Discord, only to a session that identified with the
        GUILD_MESSAGE_REACTIONS intent (1 << 10): None when there is none (nothing sent).
        ``channel_id`` defaults to the message's own channel (any id for one we never saw)."""
        session = self._live_session()
        if session is None or not (session.intents or 0) & self.GUILD_MESSAGE_REACTIONS:
            return None
        message = self._message_index.get(message_id)
        if channel_id is None:
            if message is None:
                raise LookupError(f"message {message_id} is unknown: give channel_id")
            channel_id = int(message["channel_id"])
        guild = self.default_guild_id if guild_id is None else guild_id
        data: JSON = {
            "user_id": str(user_id),
            "channel_id": str(channel_id),
            "message_id": str(message_id),
            "guild_id": str(guild),
            "emoji": {"id": None if emoji_id is None else str(emoji_id), "name": emoji},
            "burst": False,
            "type": 0,
        }
        if added:
            if message is not None and message.get("author"):
                data["message_author_id"] = str(message["author"]["id"])
            data["burst_colors"] = []
            data["member"] = {
                "user": {
                    "id": str(user_id), "username": username, "discriminator": "0",
                    "global_name": username.title(), "avatar": None, "public_flags": 0,
                    "bot": user_id == self.bot_user_id,
                },
                "roles": [],
                "joined_at": "2024-01-01T00:00:00.000000+00:00",
                "deaf": False,
                "mute": False,
                "flags": 0,
                "pending": False,
            }
        event = "MESSAGE_REACTION_ADD" if added else "MESSAGE_REACTION_REMOVE"
        return await self._send_dispatch(session, event, data)

    async def dispatch_component(
        self,
        message_id: int,
        custom_id: str,
        *,
        user_id: int = DEFAULT_USER_ID,
        username: str = "tester",
        member_permissions: str | int = DEFAULT_MEMBER_PERMISSIONS,
        app_permissions: str | int = DEFAULT_APP_PERMISSIONS,
    ) -> InteractionRecord:
        """A press of a button (component type 2) on a stored message: INTERACTION_CREATE of
        type 3 (MESSAGE_COMPONENT), with the message, as Discord sends it. The answer lands in
        the returned record."""
        message = self._message_index.get(message_id)
        if message is None:
            raise LookupError(f"message {message_id} is unknown")
        channel_id = int(message["channel_id"])
        channel = self.channels.get(channel_id) or Channel(channel_id, self.default_guild_id,
                                                           "unknown")
        guild = channel.guild_id or self.default_guild_id
        iid = self.snowflake()
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(96)
        user = {
            "id": str(user_id), "username": username, "discriminator": "0",
            "global_name": username.title(), "avatar": None, "public_flags": 0, "flags": 0,
            "bot": False,
        }
        channel_json = channel.to_json()
        channel_json["permissions"] = str(member_permissions)
        payload: JSON = {
            "id": str(iid),
            "application_id": str(self.application_id),
            "type": 3,
            "token": token,
            "version": 1,
            "data": {"custom_id": custom_id, "component_type": 2},
            "message": message,
            "guild_id": str(guild),
            "guild": {"id": str(guild), "locale": "en-US", "features": []},
            "channel_id": str(channel_id),
            "channel": channel_json,
            "member": {
                "user": user,
                "roles": [],
                "permissions": str(member_permissions),
                "joined_at": "2024-01-01T00:00:00.000000+00:00",
                "premium_since": None,
                "nick": None,
                "avatar": None,
                "flags": 0,
                "pending": False,
                "deaf": False,
                "mute": False,
            },
            "app_permissions": str(app_permissions),
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild)},
            "context": 0,
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        record = InteractionRecord(
            id=iid, token=token, type=3, payload=payload, dispatched_at=self.clock()
        )
        self.interactions[iid] = record
        self._interaction_by_token[token] = record
        await self.dispatch("INTERACTION_CREATE", payload)
        return record

    def _build_options(
        self,
        registered: JSON | None,
        options: Mapping[str, Any] | Sequence[JSON] | None,
        focused: str | None,
    ) -> list[JSON]:
        if options is None:
            options = {}
        if not isinstance(options, Mapping):
            return [dict(o) for o in options]
        schema = {o["name"]: o for o in (registered or {}).get("options", [])}
        result: list[JSON] = []
        for name, value in options.items():
            if name in schema:
                option_type = int(schema[name]["type"])
            elif isinstance(value, bool):
                option_type = 5
            elif isinstance(value, int):
                option_type = 4
            elif isinstance(value, float):
                option_type = 10
            else:
                option_type = 3
            entry: JSON = {"name": name, "type": option_type, "value": value}
            if name == focused:
                entry["focused"] = True
            result.append(entry)
        if focused is not None and focused not in options:
            result.append({"name": focused, "type": 3, "value": "", "focused": True})
        return result

    # ------------------------------------------------------------------ gateway server

    async def _send(self, session: GatewaySession, payload: JSON) -> None:
        if session.ws.closed:
            return
        session.sent.append(payload)
        text = json.dumps(payload, separators=(",", ":"))
        if session.compress:
            data = session._compressor.compress(text.encode()) + session._compressor.flush(
                zlib.Z_SYNC_FLUSH
            )
            await session.ws.send_bytes(data)
        else:
            await session.ws.send_str(text)

    async def _send_dispatch(self, session: GatewaySession, event: str, data: JSON) -> int:
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": data}
        if session.session_id is not None:
            state = self._session_states[session.session_id]
            state.seq = session.seq
            state.events.append(frame)
        await self._send(session, frame)
        self._notify()
        return session.seq

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        rec = self._record_basic(request, route="/gateway", websocket=True)
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0, compress=False)
        await ws.prepare(request)
        rec.status = 101
        rec.responded_at = time.monotonic()
        query = dict(request.query)
        compress = self.gateway_compress and query.get("compress") == "zlib-stream"
        session = GatewaySession(
            ws=ws,
            query=query,
            connected_at=time.monotonic(),
            compress=compress,
            _compressor=zlib.compressobj() if compress else None,
        )
        self.sessions.append(session)
        self._notify()
        try:
            hello = {
                "op": 10,
                "s": None,
                "t": None,
                "d": {"heartbeat_interval": self.heartbeat_interval_ms, "_trace": ["fake-gw"]},
            }
            await self._send(session, hello)
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    try:
                        frame = json.loads(msg.data)
                    except ValueError:
                        await self._close(session, 4002, "Error while decoding payload.")
                        break
                    session.received.append(frame)
                    await self._on_frame(session, frame)
                    self._notify()
                elif msg.type is WSMsgType.BINARY:
                    await self._close(session, 4002, "Error while decoding payload.")
                    break
        finally:
            session.closed = True
            session.close_code = session.close_code or ws.close_code
            self._notify()
        return ws

    async def _close(self, session: GatewaySession, code: int, reason: str) -> None:
        session.close_code = code
        await session.ws.close(code=code, message=reason.encode())

    async def _on_frame(self, session: GatewaySession, frame: JSON) -> None:
        op = frame.get("op")
        data = frame.get("d")
        if op == 1:  # HEARTBEAT
            session.heartbeats += 1
            await self._send(session, {"op": 11, "s": None, "t": None, "d": None})
        elif op == 2:  # IDENTIFY
            await self._on_identify(session, data if isinstance(data, dict) else {})
        elif op == 6:  # RESUME
            await self._on_resume(session, data if isinstance(data, dict) else {})
        elif op in (3, 4, 8, 31):  # presence, voice state, request members, soundboard
            if not (session.identified or session.resumed):
                await self._close(session, 4003, "Not authenticated.")
        else:
            await self._close(session, 4001, "Unknown opcode.")

    async def _on_identify(self, session: GatewaySession, data: JSON) -> None:
        if session.identified or session.resumed:
            await self._close(session, 4005, "Already authenticated.")
            return
        if data.get("token") != self.bot_token:
            await self._close(session, 4004, "Authentication failed.")
            return
        intents = data.get("intents")
        if not isinstance(intents, int):
            await self._close(session, 4013, "Invalid intent(s).")
            return
        privileged = intents & ((1 << 1) | (1 << 8) | (1 << 15))
        if privileged & ~self.privileged_intents:
            await self._close(session, 4014, "Disallowed intent(s).")
            return
        session.identify = data
        session.intents = intents
        session.identified = True
        session.session_id = secrets.token_hex(16)
        self._session_states[session.session_id] = _SessionState(session.session_id, 0)
        ready: JSON = {
            "v": 10,
            "user": self._bot_user(full=True),
            "guilds": [],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "presences": [],
            "relationships": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["local"],
            "user_settings": {},
            "_trace": ["fake-gw"],
        }
        if "shard" in data:
            ready["shard"] = data["shard"]
        await self._send_dispatch(session, "READY", ready)

    async def _on_resume(self, session: GatewaySession, data: JSON) -> None:
        state = self._session_states.get(str(data.get("session_id")))
        if data.get("token") != self.bot_token:
            await self._close(session, 4004, "Authentication failed.")
            return
        if state is None:
            await self._send(session, {"op": 9, "d": False, "s": None, "t": None})
            return
        last_seen = int(data.get("seq") or 0)
        session.session_id = state.session_id
        session.seq = state.seq
        session.resumed = True
        for frame in state.events:
            if int(frame["s"]) > last_seen:
                await self._send(session, frame)
        await self._send_dispatch(session, "RESUMED", {"_trace": ["fake-gw"]})

    # ------------------------------------------------------------------ REST plumbing

    def _record_basic(
        self, request: web.Request, *, route: str, websocket: bool
    ) -> RecordedRequest:
        rec = RecordedRequest(
            index=len(self.requests),
            method=request.method,
            path=request.path,
            route=route,
            query=dict(request.query),
            headers=dict(request.headers),
            body=b"",
            json=None,
            files=[],
            received_at=time.monotonic(),
            websocket=websocket,
        )
        self.requests.append(rec)
        return rec

    async def _read_body(self, request: web.Request, rec: RecordedRequest) -> None:
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            for name, value in form.items():
                if isinstance(value, web.FileField):
                    content = value.file.read()
                    rec.files.append((name, value.filename, len(content)))
                elif name == "payload_json":
                    rec.json = json.loads(value)
            return
        rec.body = await request.read()
        if rec.body and request.content_type == "application/json":
            try:
                rec.json = json.loads(rec.body)
            except ValueError:
                rec.json = None

    async def _api(self, request: web.Request) -> web.StreamResponse:
        route = "/" + request.match_info["tail"]
        rec = self._record_basic(request, route=route, websocket=False)
        await self._read_body(request, rec)
        self._notify()
        try:
            response = await self._answer(request, rec)
        finally:
            rec.responded_at = time.monotonic()
            self._notify()
        rec.status = None if rec.dropped else response.status
        return response

    def _match(
        self, method: str, path: str
    ) -> tuple[tuple[str, re.Pattern[str], _Handler, bool] | None, dict[str, str], bool]:
        path_known = False
        for entry in self._routes:
            m = entry[1].fullmatch(path)
            if m is None:
                continue
            path_known = True
            if entry[0] == method:
                return entry, m.groupdict(), True
        return None, {}, path_known

    async def _answer(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        if rec.json is None and rec.body and request.content_type == "application/json":
            return _error(
                400, "400: Bad Request", 50109
            )  # "The request body contains invalid JSON."
        entry, params, path_known = self._match(rec.method, rec.route)
        if entry is None:
            if path_known:
                return _error(405, "405: Method Not Allowed", 0)
            return _error(404, "404: Not Found", 0)
        _, _, handler, needs_auth = entry
        if needs_auth and request.headers.get("Authorization") != f"Bot {self.bot_token}":
            return _error(401, "401: Unauthorized", 0)
        if needs_auth and (limited := self._take_global()) is not None:
            return limited
        ctx = _Ctx(request=request, rec=rec, params=params)
        fault = next((f for f in self.faults if f.active and f.matches(rec)), None)
        if fault is None:
            response: web.Response = await handler(ctx)
            return response
        fault.hits += 1
        fault.requests.append(rec)
        fault._hit.set()
        rec.fault = fault
        self._notify()
        return await self._apply_fault(fault, ctx, handler)

    async def _apply_fault(self, fault: Fault, ctx: _Ctx, handler: _Handler) -> web.Response:
        real: web.Response | None = await handler(ctx) if fault.process_first else None
        if fault.delay > 0:
            await asyncio.sleep(fault.delay)  # the server answering late, not the test waiting
        if fault.hold:
            await fault._released.wait()
        if fault.drop is not None:
            self._drop_connection(ctx.request, fault.drop)
            ctx.rec.dropped = True
            return web.Response(status=500)  # never reaches the client
        if fault.status is not None:
            return self._fault_response(fault, ctx.rec)
        if real is not None:
            return real
        response: web.Response = await handler(ctx)
        return response

    def _take_global(self) -> web.Response | None:
        """Count one bot request against the global limit; a 429 (global) when over it."""
        if self.global_rate_limit is None:
            return None
        now = self.clock()
        log = self._global_log
        while log and log[0] <= now - 1.0:
            log.popleft()
        if len(log) < self.global_rate_limit:
            log.append(now)
            return None
        retry_after = math.ceil((log[0] + 1.0 - now) * 1000) / 1000
        body = {"message": "You are being rate limited.", "retry_after": retry_after,
                "global": True}
        return _json_response(429, body, self._rate_limit_headers(retry_after, "global", None))

    @staticmethod
    def _drop_connection(request: web.Request, mode: str) -> None:
        transport = request.transport
        if transport is None:
            return
        if mode == "reset":
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        else:
            transport.close()

    def _bucket_for(self, rec: RecordedRequest) -> _Bucket | None:
        m = re.fullmatch(r"/channels/(\d+)/messages", rec.route)
        if m and rec.method == "POST":
            return self._bucket("POST /channels/{channel_id}/messages", int(m.group(1)))
        m = re.fullmatch(r"/webhooks/(\d+)/[^/]+", rec.route)
        if m and rec.method == "POST":
            return self._bucket("POST /webhooks/{webhook_id}/{token}", int(m.group(1)))
        return None

    def _bucket(self, kind: str, major: int) -> _Bucket:
        key = (kind, major)
        bucket = self._buckets.get(key)
        if bucket is None:
            policy = (
                self.webhook_rate_limit
                if kind.startswith("POST /webhooks")
                else self.message_rate_limit
            )
            bucket_hash = "fk" + format(zlib.crc32(kind.encode()), "08x")
            bucket = self._buckets[key] = _Bucket(policy, bucket_hash, self.clock)
        return bucket

    def _fault_response(self, fault: Fault, rec: RecordedRequest) -> web.Response:
        status = fault.status or 500
        headers: dict[str, str] = {}
        if status == 429:
            body = fault.body or {
                "message": "You are being rate limited.",
                "retry_after": fault.retry_after,
                "global": fault.global_,
            }
            headers = self._rate_limit_headers(
                fault.retry_after, "global" if fault.global_ else fault.scope, self._bucket_for(rec)
            )
            headers.update(fault.headers)
            return _json_response(429, body, headers)
        headers.update(fault.headers)
        if fault.body is not None:
            return _json_response(status, fault.body, headers)
        if status >= 502:
            # Cloudflare answers these with an HTML page, not JSON.
            html = f"<html><body><h1>{status}</h1>error code: {status}</body></html>"
            headers["Content-Type"] = "text/html"
            return web.Response(status=status, text=html, headers=headers)
        return _error(status, f"{status}: {HTTPStatus(status).phrase}", 0, headers=headers)

    @staticmethod
    def _rate_limit_headers(
        retry_after: float, scope: str, bucket: _Bucket | None
    ) -> dict[str, str]:
        headers = {
            "Retry-After": str(math.ceil(retry_after)),
            "X-RateLimit-Scope": scope,
            "Via": "1.1 google",
        }
        if scope == "global":
            headers["X-RateLimit-Global"] = "true"
            return headers
        if bucket is not None:
            headers.update(bucket.headers(0, retry_after))
        else:
            reset_after = math.ceil(retry_after * 1000) / 1000
            headers.update(
                {
                    "X-RateLimit-Limit": "1",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
                    "X-RateLimit-Reset-After": f"{reset_after:.3f}",
                    "X-RateLimit-Bucket": "fk-injected",
                }
            )
        return headers

    def _build_routes(self) -> list[tuple[str, re.Pattern[str], _Handler, bool]]:
        table: list[tuple[str, str, _Handler, bool]] = [
            ("GET", "/users/@me", self._get_me, True),
            ("GET", "/oauth2/applications/@me", self._get_application, True),
            ("GET", "/gateway", self._get_gateway, False),
            ("GET", "/gateway/bot", self._get_gateway_bot, True),
            ("GET", "/channels/{channel_id}", self._get_channel, True),
            ("GET", "/channels/{channel_id}/messages", self._list_messages, True),
            ("POST", "/channels/{channel_id}/messages", self._create_message, True),
            ("GET", "/channels/{channel_id}/messages/{message_id}", self._get_message, True),
            ("PATCH", "/channels/{channel_id}/messages/{message_id}", self._edit_message, True),
            ("DELETE", "/channels/{channel_id}/messages/{message_id}", self._delete_message, True),
            (
                "POST",
                "/channels/{channel_id}/messages/{message_id}/threads",
                self._start_thread,
                True,
            ),
            (
                "PATCH",
                "/webhooks/{webhook_id}/{token}/messages/{message_id}",
                self._edit_webhook_message,
                False,
            ),
            (
                "DELETE",
                "/webhooks/{webhook_id}/{token}/messages/{message_id}",
                self._delete_webhook_message,
                False,
            ),
            ("POST", "/webhooks/{webhook_id}/{token}", self._execute_webhook, False),
            (
                "GET",
                "/webhooks/{webhook_id}/{token}/messages/@original",
                self._get_original,
                False,
            ),
            (
                "PATCH",
                "/webhooks/{webhook_id}/{token}/messages/@original",
                self._edit_original,
                False,
            ),
            (
                "DELETE",
                "/webhooks/{webhook_id}/{token}/messages/@original",
                self._delete_original,
                False,
            ),
            ("PUT", "/applications/{application_id}/commands", self._put_commands, True),
            ("GET", "/applications/{application_id}/commands", self._get_commands, True),
            (
                "PUT",
                "/applications/{application_id}/guilds/{guild_id}/commands",
                self._put_commands,
                True,
            ),
            (
                "GET",
                "/applications/{application_id}/guilds/{guild_id}/commands",
                self._get_commands,
                True,
            ),
            ("POST", "/interactions/{iid}/{token}/callback", self._interaction_callback, False),
        ]
        return [
            (method, _route(pattern), handler, auth) for method, pattern, handler, auth in table
        ]

    # ------------------------------------------------------------------ payload builders

    def _bot_user(self, *, full: bool = False) -> JSON:
        user: JSON = {
            "id": str(self.bot_user_id),
            "username": self.bot_username,
            "discriminator": "4821",
            "global_name": None,
            "avatar": None,
            "avatar_decoration_data": None,
            "public_flags": 0,
            "flags": 0,
            "bot": True,
            "banner": None,
            "accent_color": None,
        }
        if full:
            user.update({"verified": True, "mfa_enabled": False, "locale": "en-US", "email": None})
        return user

    def _new_message(
        self,
        channel_id: int,
        body: JSON,
        *,
        author: JSON,
        origin: str,
        message_type: int = 0,
        extra: JSON | None = None,
        store: bool = True,
    ) -> JSON:
        content = body.get("content") or ""
        everyone, user_ids, role_ids = _resolve_mentions(content, body.get("allowed_mentions"))
        message: JSON = {
            "id": str(self.snowflake()),
            "channel_id": str(channel_id),
            "type": message_type,
            "content": content,
            "author": author,
            "embeds": [_normalize_embed(e) for e in body.get("embeds") or []],
            "attachments": [],
            "components": body.get("components") or [],
            "timestamp": _iso_now(),
            "edited_timestamp": None,
            "tts": bool(body.get("tts", False)),
            "mention_everyone": everyone,
            "mentions": [_mentioned_user(uid) for uid in user_ids],
            "mention_roles": [str(rid) for rid in role_ids],
            "pinned": False,
            "flags": int(body.get("flags") or 0),
        }
        if "nonce" in body and body["nonce"] is not None:
            message["nonce"] = body["nonce"]
        if extra:
            message.update(extra)
        if store:
            self._store_message(channel_id, message, origin)
        return message

    def _store_message(self, channel_id: int, message: JSON, origin: str) -> None:
        self._messages.setdefault(channel_id, []).append(message)
        self._message_index[int(message["id"])] = message
        self._message_origin[int(message["id"])] = origin
        self._notify()

    def _apply_edit(self, message: JSON, body: JSON) -> None:
        if "content" in body:
            message["content"] = body["content"] or ""
        if "embeds" in body:
            message["embeds"] = [_normalize_embed(e) for e in body["embeds"] or []]
        if "components" in body:
            message["components"] = body["components"] or []
        if "flags" in body and body["flags"] is not None:
            message["flags"] = int(body["flags"]) | (int(message.get("flags", 0)) & EPHEMERAL)
        if "allowed_mentions" in body or "content" in body:
            everyone, users, roles = _resolve_mentions(
                message["content"], body.get("allowed_mentions")
            )
            message["mention_everyone"] = everyone
            message["mentions"] = [_mentioned_user(uid) for uid in users]
            message["mention_roles"] = [str(r) for r in roles]
        message["edited_timestamp"] = _iso_now()
        self._notify()

    # ------------------------------------------------------------------ REST handlers

    async def _get_me(self, ctx: _Ctx) -> web.Response:
        return _json_response(200, self._bot_user(full=True))

    async def _get_application(self, ctx: _Ctx) -> web.Response:
        owner = {
            "id": str(DEFAULT_USER_ID + 1),
            "username": "owner",
            "discriminator": "0",
            "global_name": "Owner",
            "avatar": None,
            "public_flags": 0,
            "flags": 0,
        }
        return _json_response(
            200,
            {
                "id": str(self.application_id),
                "name": self.bot_username,
                "icon": None,
                "description": "",
                "summary": "",
                "type": None,
                "hook": True,
                "bot_public": False,
                "bot_require_code_grant": False,
                "verify_key": secrets.token_hex(32),
                "flags": 0,
                "owner": owner,
                "team": None,
                "bot": self._bot_user(),
                "interactions_endpoint_url": None,
                "redirect_uris": [],
                "tags": [],
                "approximate_guild_count": len({c.guild_id for c in self.channels.values()}),
                "integration_types_config": {"0": {}},
            },
        )

    async def _get_gateway(self, ctx: _Ctx) -> web.Response:
        return _json_response(200, {"url": self.gateway_url})

    async def _get_gateway_bot(self, ctx: _Ctx) -> web.Response:
        return _json_response(
            200,
            {
                "url": self.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 14_400_000,
                    "max_concurrency": 1,
                },
            },
        )

    def _channel_or_error(self, ctx: _Ctx, *, posting: bool) -> Channel | web.Response:
        channel = self.channels.get(int(ctx.params["channel_id"]))
        if channel is None:
            return _error(404, "Unknown Channel", 10003)
        if channel.forbidden == 50001:
            return _error(403, "Missing Access", 50001)
        if channel.forbidden == 50013 and posting:
            return _error(403, "Missing Permissions", 50013)
        return channel

    async def _get_channel(self, ctx: _Ctx) -> web.Response:
        channel = self._channel_or_error(ctx, posting=False)
        if isinstance(channel, web.Response):
            return channel
        return _json_response(200, channel.to_json())

    async def _list_messages(self, ctx: _Ctx) -> web.Response:
        channel = self._channel_or_error(ctx, posting=False)
        if isinstance(channel, web.Response):
            return channel
        limit = max(1, min(100, int(ctx.rec.query.get("limit", "50"))))
        visible = [
            m for m in self._messages.get(channel.id, []) if not int(m.get("flags", 0)) & EPHEMERAL
        ]
        return _json_response(200, list(reversed(visible))[:limit])

    async def _create_message(self, ctx: _Ctx) -> web.Response:
        channel_id = int(ctx.params["channel_id"])
        if channel_id not in self.channels:
            return _error(404, "Unknown Channel", 10003)
        bucket = self._bucket("POST /channels/{channel_id}/messages", channel_id)
        allowed, retry_after, rl_headers = bucket.take()
        if not allowed:
            return self._real_rate_limit(retry_after, bucket)
        channel = self._channel_or_error(ctx, posting=True)
        if isinstance(channel, web.Response):
            channel.headers.update(rl_headers)
            return channel
        body = ctx.body
        problem = _validate_message(body, files=len(ctx.rec.files), headers=rl_headers)
        if problem is not None:
            return problem
        nonce = body.get("nonce")
        key = (channel_id, str(nonce)) if nonce is not None else None
        if key is not None and body.get("enforce_nonce"):
            seen = self._nonces.get(key)
            if seen is not None and self.clock() - seen[0] <= self.nonce_window:
                existing = self._message_index.get(seen[1])
                if existing is not None:
                    return _json_response(200, existing, rl_headers)
        message = self._new_message(channel_id, body, author=self._bot_user(), origin="channel")
        message["attachments"] = [
            _attachment(self.snowflake(), filename, size) for _, filename, size in ctx.rec.files
        ]
        if key is not None:
            self._nonces[key] = (self.clock(), int(message["id"]))
        return _json_response(200, message, rl_headers)

    def _real_rate_limit(self, retry_after: float, bucket: _Bucket) -> web.Response:
        retry_after = math.ceil(retry_after * 1000) / 1000
        body = {
            "message": "You are being rate limited.",
            "retry_after": retry_after,
            "global": False,
        }
        return _json_response(429, body, self._rate_limit_headers(retry_after, "user", bucket))

    def _channel_message(self, ctx: _Ctx) -> JSON | web.Response:
        channel = self._channel_or_error(ctx, posting=False)
        if isinstance(channel, web.Response):
            return channel
        message = self._message_index.get(int(ctx.params["message_id"]))
        if message is None or int(message["channel_id"]) != channel.id:
            return _error(404, "Unknown Message", 10008)
        return message

    async def _get_message(self, ctx: _Ctx) -> web.Response:
        message = self._channel_message(ctx)
        if isinstance(message, web.Response):
            return message
        return _json_response(200, message)

    async def _edit_message(self, ctx: _Ctx) -> web.Response:
        message = self._channel_message(ctx)
        if isinstance(message, web.Response):
            return message
        if self.channels[int(ctx.params["channel_id"])].forbidden == 50013:
            return _error(403, "Missing Permissions", 50013)
        if message["author"]["id"] != str(self.bot_user_id):
            return _error(403, "Cannot edit a message authored by another user", 50005)
        problem = _validate_message(ctx.body, files=0, require_content=False)
        if problem is not None:
            return problem
        self._apply_edit(message, ctx.body)
        return _json_response(200, message)

    async def _delete_message(self, ctx: _Ctx) -> web.Response:
        message = self._channel_message(ctx)
        if isinstance(message, web.Response):
            return message
        self._messages[int(message["channel_id"])].remove(message)
        del self._message_index[int(message["id"])]
        self._notify()
        return _no_content()

    async def _execute_webhook(self, ctx: _Ctx) -> web.Response:
        webhook_id = int(ctx.params["webhook_id"])
        token = ctx.params["token"]
        if webhook_id == self.application_id:
            return await self._followup(ctx, token)
        webhook = self.webhooks.get(webhook_id)
        if webhook is None or webhook.channel_id not in self.channels:
            return _error(404, "Unknown Webhook", 10015)
        if webhook.token != token:
            return _error(401, "Invalid Webhook Token", 50027)
        bucket = self._bucket("POST /webhooks/{webhook_id}/{token}", webhook_id)
        allowed, retry_after, rl_headers = bucket.take()
        if not allowed:
            return self._real_rate_limit(retry_after, bucket)
        body = ctx.body
        problem = _validate_message(body, files=len(ctx.rec.files), headers=rl_headers)
        if problem is not None:
            return problem
        username = body.get("username")
        if username is not None:
            errors = _FormErrors()
            if not 1 <= len(username) <= 80:
                errors.add(
                    ["username"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 80 in length."
                )
            elif any(word in username.lower() for word in ("discord", "clyde")):
                errors.add(
                    ["username"], "USERNAME_INVALID_CONTAINS", "Username cannot contain 'discord'"
                )
            if errors:
                return errors.response(rl_headers)
        author = {
            "id": str(webhook.id),
            "username": username or webhook.name,
            "discriminator": "0000",
            "avatar": None,
            "bot": True,
            "public_flags": 0,
            "flags": 0,
            "global_name": None,
        }
        message = self._new_message(
            webhook.channel_id,
            {k: v for k, v in body.items() if k != "nonce"},
            author=author,
            origin="webhook",
            extra={"webhook_id": str(webhook.id)},
        )
        if _truthy(ctx.rec.query.get("wait")):
            return _json_response(200, message, rl_headers)
        return _no_content(rl_headers)

    # ------------------------------------------------------------------ interactions

    def _interaction_from_token(self, ctx: _Ctx) -> InteractionRecord | None:
        if int(ctx.params["webhook_id"]) != self.application_id:
            return None
        return self._interaction_by_token.get(ctx.params["token"])

    def _interaction_author(self) -> JSON:
        return self._bot_user()

    async def _interaction_callback(self, ctx: _Ctx) -> web.Response:
        record = self.interactions.get(int(ctx.params["iid"]))
        if record is None or record.token != ctx.params["token"]:
            return _error(404, "Unknown interaction", 10062)
        if record.callback is not None:
            return _error(400, "Interaction has already been acknowledged.", 40060)
        if self.clock() - record.dispatched_at > self.interaction_response_window:
            return _error(404, "Unknown interaction", 10062)
        body = ctx.body
        callback_type = body.get("type")
        raw_data = body.get("data")
        data: JSON = raw_data if isinstance(raw_data, dict) else {}
        valid = {2: {4, 5, 9, 10, 12}, 3: {4, 5, 6, 7, 9, 10, 12}, 4: {8}, 5: {4, 5, 6, 7}}
        if callback_type not in valid.get(record.type, set()):
            errors = _FormErrors()
            errors.add(["type"], "INTERACTION_RESPONSE_TYPE_INVALID", "Invalid interaction type")
            return errors.response()
        if callback_type == 4:
            problem = _validate_message(data, files=len(ctx.rec.files), prefix=["data"])
            if problem is not None:
                return problem
        if callback_type == 8:
            choices = data.get("choices") or []
            if len(choices) > 25:
                errors = _FormErrors()
                errors.max_length(["data", "choices"], choices, 25)
                return errors.response()
        record.callback = body
        record.callback_at = self.clock()
        flags = int(data.get("flags") or 0)
        channel_id = int(record.payload["channel_id"])
        extra = {
            "application_id": str(self.application_id),
            "webhook_id": str(self.application_id),
            "interaction_metadata": {
                "id": str(record.id),
                "type": record.type,
                "user": record.payload["member"]["user"],
                "authorizing_integration_owners": record.payload["authorizing_integration_owners"],
                "name": record.payload["data"].get("name", ""),
                "command_type": 1,
            },
        }
        if callback_type in (4, 5):
            message_body = dict(data) if callback_type == 4 else {"content": "", "flags": flags}
            if callback_type == 5:
                message_body["flags"] = (flags & EPHEMERAL) | LOADING
            record.original = self._new_message(
                channel_id,
                message_body,
                author=self._interaction_author(),
                origin="interaction",
                message_type=20,
                extra=extra,
                store=not flags & EPHEMERAL,
            )
        self._notify()
        if not _truthy(ctx.rec.query.get("with_response")):
            return _no_content()
        answer: JSON = {
            "interaction": {
                "id": str(record.id),
                "type": record.type,
                "response_message_id": record.original["id"] if record.original else None,
                "response_message_loading": callback_type == 5,
                "response_message_ephemeral": bool(flags & EPHEMERAL),
            },
            "resource": {"type": callback_type},
        }
        if record.original is not None:
            answer["resource"]["message"] = record.original
        return _json_response(200, answer)

    async def _followup(self, ctx: _Ctx, token: str) -> web.Response:
        record = self._interaction_by_token.get(token)
        if record is None or record.callback is None:
            return _error(404, "Unknown Webhook", 10015)
        problem = _validate_message(ctx.body, files=len(ctx.rec.files))
        if problem is not None:
            return problem
        original = record.original
        if original is not None and int(original.get("flags", 0)) & LOADING:
            # After a deferred (type 5) answer, the first follow-up replaces the "thinking" message;
            # its ephemerality was decided by the defer.
            original["flags"] = int(original["flags"]) & ~LOADING
            self._apply_edit(original, {k: v for k, v in ctx.body.items() if k != "flags"})
            original["edited_timestamp"] = None
            record.followups.append(original)
            self._notify()
            return _json_response(200, original)
        flags = int(ctx.body.get("flags") or 0)
        message = self._new_message(
            int(record.payload["channel_id"]),
            ctx.body,
            author=self._interaction_author(),
            origin="interaction",
            extra={
                "application_id": str(self.application_id),
                "webhook_id": str(self.application_id),
            },
            store=not flags & EPHEMERAL,
        )
        record.followups.append(message)
        self._notify()
        return _json_response(200, message)

    async def _get_original(self, ctx: _Ctx) -> web.Response:
        record = self._interaction_from_token(ctx)
        if record is None:
            return _error(404, "Unknown Webhook", 10015)
        if record.original is None:
            return _error(404, "Unknown Message", 10008)
        return _json_response(200, record.original)

    async def _start_thread(self, ctx: _Ctx) -> web.Response:
        """A public thread from a message: its channel id is the message's id (as Discord's)."""
        message = self._channel_message(ctx)
        if isinstance(message, web.Response):
            return message
        parent = int(ctx.params["channel_id"])
        thread_id = int(message["id"])
        if thread_id in self.channels:
            return _error(400, "A thread has already been created for this message", 160004)
        name = ctx.body.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            errors = _FormErrors()
            errors.add(["name"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
            return errors.response()
        thread = self.add_channel(
            thread_id, guild_id=self.channels[parent].guild_id, name=name, channel_type=11
        )
        self.thread_parents[thread_id] = parent
        message["thread"] = thread.to_json()
        self._notify()
        return _json_response(201, {**thread.to_json(), "parent_id": str(parent)})

    async def _edit_webhook_message(self, ctx: _Ctx) -> web.Response:
        webhook = self.webhooks.get(int(ctx.params["webhook_id"]))
        if webhook is None or webhook.channel_id not in self.channels:
            return _error(404, "Unknown Webhook", 10015)
        if webhook.token != ctx.params["token"]:
            return _error(401, "Invalid Webhook Token", 50027)
        message = self._message_index.get(int(ctx.params["message_id"]))
        if message is None or message.get("webhook_id") != str(webhook.id):
            return _error(404, "Unknown Message", 10008)
        problem = _validate_message(ctx.body, files=0, require_content=False)
        if problem is not None:
            return problem
        self._apply_edit(message, ctx.body)
        self._notify()
        return _json_response(200, message)

    async def _delete_webhook_message(self, ctx: _Ctx) -> web.Response:
        webhook = self.webhooks.get(int(ctx.params["webhook_id"]))
        if webhook is None or webhook.token != ctx.params["token"]:
            return _error(404, "Unknown Webhook", 10015)
        message = self._message_index.get(int(ctx.params["message_id"]))
        if message is None or message.get("webhook_id") != str(webhook.id):
            return _error(404, "Unknown Message", 10008)
        self._messages[int(message["channel_id"])].remove(message)
        del self._message_index[int(message["id"])]
        self._notify()
        return _no_content()

    async def _edit_original(self, ctx: _Ctx) -> web.Response:
        record = self._interaction_from_token(ctx)
        if record is None:
            return _error(404, "Unknown Webhook", 10015)
        if record.original is None:
            return _error(404, "Unknown Message", 10008)
        problem = _validate_message(ctx.body, files=len(ctx.rec.files), require_content=False)
        if problem is not None:
            return problem
        record.original_edits.append(ctx.body)
        record.original["flags"] = int(record.original.get("flags", 0)) & ~LOADING
        self._apply_edit(record.original, ctx.body)
        return _json_response(200, record.original)

    async def _delete_original(self, ctx: _Ctx) -> web.Response:
        record = self._interaction_from_token(ctx)
        if record is None:
            return _error(404, "Unknown Webhook", 10015)
        if record.original is None:
            return _error(404, "Unknown Message", 10008)
        original_id = int(record.original["id"])
        stored = self._message_index.pop(original_id, None)
        if stored is not None:
            self._messages[int(stored["channel_id"])].remove(stored)
        record.original = None
        self._notify()
        return _no_content()

    # ------------------------------------------------------------------ application commands

    async def _put_commands(self, ctx: _Ctx) -> web.Response:
        if int(ctx.params["application_id"]) != self.application_id:
            return _error(403, "Missing Access", 50001)
        body = ctx.rec.json
        if not isinstance(body, list):
            errors = _FormErrors()
            errors.add([], "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
            return errors.response()
        problem = _validate_commands(body)
        if problem is not None:
            return problem
        guild_id = int(ctx.params["guild_id"]) if "guild_id" in ctx.params else None
        previous = {(c["name"], c.get("type", 1)): c for c in self.commands(guild_id)}
        stored: list[JSON] = []
        for command in body:
            ctype = int(command.get("type", 1))
            old = previous.get((command["name"], ctype))
            entry: JSON = {
                "id": old["id"] if old else str(self.snowflake()),
                "application_id": str(self.application_id),
                "version": str(self.snowflake()),
                "type": ctype,
                "name": command["name"],
                "description": command.get("description", ""),
                "default_member_permissions": _bitfield(command.get("default_member_permissions")),
                "nsfw": bool(command.get("nsfw", False)),
                "options": command.get("options", []),
            }
            for key in ("name_localizations", "description_localizations"):
                if command.get(key) is not None:
                    entry[key] = command[key]
            if guild_id is None:
                entry["dm_permission"] = command.get("dm_permission", True)
                entry["contexts"] = command.get("contexts")
                entry["integration_types"] = command.get("integration_types") or [0]
            else:
                entry["guild_id"] = str(guild_id)
            stored.append(entry)
        if guild_id is None:
            self._global_commands = stored
        else:
            self._guild_commands[guild_id] = stored
        self._notify()
        return _json_response(200, stored)

    async def _get_commands(self, ctx: _Ctx) -> web.Response:
        if int(ctx.params["application_id"]) != self.application_id:
            return _error(403, "Missing Access", 50001)
        guild_id = int(ctx.params["guild_id"]) if "guild_id" in ctx.params else None
        return _json_response(200, self.commands(guild_id))


# --------------------------------------------------------------------------- validation


def _validate_message(
    body: JSON,
    *,
    files: int,
    headers: Mapping[str, str] | None = None,
    prefix: Sequence[str | int] = (),
    require_content: bool = True,
) -> web.Response | None:
    """Discord's checks on a message payload; None when it would be accepted."""
    errors = _FormErrors()
    p = list(prefix)
    content = body.get("content")
    if content is not None and not isinstance(content, str):
        errors.add([*p, "content"], "BASE_TYPE_STRING", "Must be a string.")
    elif content is not None:
        errors.max_length([*p, "content"], content, 2000)
    nonce = body.get("nonce")
    if isinstance(nonce, str):
        errors.max_length([*p, "nonce"], nonce, 25)
    embeds = body.get("embeds") or []
    if len(embeds) > 10:
        errors.max_length([*p, "embeds"], embeds, 10)
    total = 0
    for index, embed in enumerate(embeds[:10]):
        total += _validate_embed(errors, [*p, "embeds", index], embed)
    if total > 6000:
        errors.add(
            [*p, "embeds"], "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000"
        )
    allowed = body.get("allowed_mentions")
    if isinstance(allowed, dict):
        parse = allowed.get("parse") or []
        for kind in ("users", "roles"):
            if kind in parse and allowed.get(kind):
                errors.add(
                    [*p, "allowed_mentions"],
                    "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                    f'parse:["{kind}"] and {kind}: [ids...] are mutually exclusive.',
                )
    if errors:
        return errors.response(headers)
    empty = not content and not embeds and not files and not body.get("sticker_ids")
    empty = (
        empty
        and not body.get("components")
        and not body.get("poll")
        and not body.get("attachments")
    )
    if require_content and empty:
        return _error(400, "Cannot send an empty message", 50006, headers=headers)
    return None


def _text_length(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


def _validate_embed(errors: _FormErrors, path: list[str | int], embed: JSON) -> int:
    """Check one embed; returns its size as counted against the 6000 total."""
    title = embed.get("title")
    description = embed.get("description")
    errors.max_length([*path, "title"], title, 256)
    errors.max_length([*path, "description"], description, 4096)
    size = _text_length(title) + _text_length(description)
    for key in ("url",):
        _validate_url(errors, [*path, key], embed.get(key))
    for part in ("image", "thumbnail"):
        if isinstance(embed.get(part), dict):
            _validate_url(errors, [*path, part, "url"], embed[part].get("url"))
    fields = embed.get("fields") or []
    if len(fields) > 25:
        errors.max_length([*path, "fields"], fields, 25)
    for index, fld in enumerate(fields):
        for key, limit in (("name", 256), ("value", 1024)):
            value = fld.get(key)
            if value is None or value == "":
                errors.add(
                    [*path, "fields", index, key], "BASE_TYPE_REQUIRED", "This field is required"
                )
            else:
                errors.max_length([*path, "fields", index, key], value, limit)
            size += _text_length(value)
    footer = embed.get("footer")
    if isinstance(footer, dict):
        errors.max_length([*path, "footer", "text"], footer.get("text"), 2048)
        size += _text_length(footer.get("text"))
        _validate_url(errors, [*path, "footer", "icon_url"], footer.get("icon_url"))
    author = embed.get("author")
    if isinstance(author, dict):
        errors.max_length([*path, "author", "name"], author.get("name"), 256)
        size += _text_length(author.get("name"))
        _validate_url(errors, [*path, "author", "url"], author.get("url"))
        _validate_url(errors, [*path, "author", "icon_url"], author.get("icon_url"))
    return size


def _validate_url(errors: _FormErrors, path: list[str | int], url: Any) -> None:
    if url is None:
        return
    if not isinstance(url, str) or len(url) > 2048:
        errors.add(path, "URL_TYPE_INVALID_URL", "Not a well formed URL.")
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "attachment"):
        errors.add(
            path,
            "URL_TYPE_INVALID_SCHEME",
            f"Scheme \"{parts.scheme}\" is not supported. Scheme must be one of ('http', 'https').",
        )
    elif parts.scheme != "attachment" and not parts.netloc:
        errors.add(path, "URL_TYPE_INVALID_URL", "Not a well formed URL.")


def _validate_commands(commands: list[Any]) -> web.Response | None:
    errors = _FormErrors()
    seen: set[tuple[str, int]] = set()
    chat_inputs = 0
    for index, command in enumerate(commands):
        if not isinstance(command, dict) or not isinstance(command.get("name"), str):
            errors.add([index, "name"], "BASE_TYPE_REQUIRED", "This field is required")
            continue
        ctype = int(command.get("type", 1))
        name = command["name"]
        if ctype == 1:
            chat_inputs += 1
            if not _COMMAND_NAME.match(name) or name != name.lower():
                errors.add(
                    [index, "name"], "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
                )
            description = command.get("description") or ""
            if not 1 <= len(description) <= 100:
                errors.add(
                    [index, "description"],
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 100 in length.",
                )
        elif not 1 <= len(name) <= 32:
            errors.add(
                [index, "name"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length."
            )
        if (name, ctype) in seen:
            errors.add(
                [index, "name"],
                "APPLICATION_COMMANDS_DUPLICATE_NAME",
                f"Command name {name} is already used.",
            )
        seen.add((name, ctype))
        _validate_options(errors, [index, "options"], command.get("options") or [])
    if chat_inputs > 100:
        errors.add([], "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
    return errors.response() if errors else None


def _validate_options(errors: _FormErrors, path: list[str | int], options: list[JSON]) -> None:
    errors.max_length(path, options, 25)
    optional_seen = False
    for index, option in enumerate(options):
        name = option.get("name") or ""
        if not _COMMAND_NAME.match(name) or name != name.lower():
            errors.add(
                [*path, index, "name"],
                "APPLICATION_COMMAND_INVALID_NAME",
                "Command name is invalid",
            )
        description = option.get("description") or ""
        if not 1 <= len(description) <= 100:
            errors.add(
                [*path, index, "description"],
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 100 in length.",
            )
        choices = option.get("choices") or []
        errors.max_length([*path, index, "choices"], choices, 25)
        if choices and option.get("autocomplete"):
            errors.add(
                [*path, index, "autocomplete"],
                "APPLICATION_COMMAND_OPTIONS_AUTOCOMPLETE_CHOICES",
                "Autocomplete cannot be used with choices.",
            )
        if option.get("type") in (1, 2):
            _validate_options(errors, [*path, index, "options"], option.get("options") or [])
            continue
        if option.get("required"):
            if optional_seen:
                errors.add(
                    [*path, index, "required"],
                    "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                    "Required options must be placed before non-required options",
                )
        else:
            optional_seen = True


# --------------------------------------------------------------------------- small helpers


def _resolve_mentions(content: str, allowed: Any) -> tuple[bool, list[int], list[int]]:
    """Who a message would ping, given ``allowed_mentions`` (absent: everything parses).

    Conservative: a mention anywhere in the content counts, code blocks included.
    """
    if isinstance(allowed, dict):
        parse = set(allowed.get("parse") or [])
        explicit_users = {int(u) for u in allowed.get("users") or []}
        explicit_roles = {int(r) for r in allowed.get("roles") or []}
    else:
        parse = {"everyone", "users", "roles"}
        explicit_users = set()
        explicit_roles = set()
    everyone = "everyone" in parse and _EVERYONE_MENTION.search(content) is not None
    users: list[int] = []
    for match in _USER_MENTION.finditer(content):
        uid = int(match.group(1))
        if ("users" in parse or uid in explicit_users) and uid not in users:
            users.append(uid)
    roles: list[int] = []
    for match in _ROLE_MENTION.finditer(content):
        rid = int(match.group(1))
        if ("roles" in parse or rid in explicit_roles) and rid not in roles:
            roles.append(rid)
    return everyone, users, roles


def _bitfield(value: Any) -> str | None:
    """Discord answers permission bitfields as strings (discord.py sends them as ints)."""
    return None if value is None else str(value)


def _mentioned_user(user_id: int) -> JSON:
    return {
        "id": str(user_id),
        "username": f"user{user_id % 10_000}",
        "discriminator": "0",
        "global_name": None,
        "avatar": None,
        "public_flags": 0,
    }


def _normalize_embed(embed: Any) -> JSON:
    if not isinstance(embed, dict):
        return {}
    out = dict(embed)
    out.setdefault("type", "rich")
    if "fields" in out:
        out["fields"] = [{**f, "inline": bool(f.get("inline", False))} for f in out["fields"]]
    return out


def _attachment(attachment_id: int, filename: str, size: int) -> JSON:
    return {
        "id": str(attachment_id),
        "filename": filename,
        "size": size,
        "url": f"https://cdn.discordapp.com/attachments/0/{attachment_id}/{filename}",
        "proxy_url": f"https://media.discordapp.net/attachments/0/{attachment_id}/{filename}",
    }


@contextlib.contextmanager
def patch_discord_py(fake: FakeDiscord) -> Iterator[None]:
    """Point discord.py (this process) at ``fake``; restores the previous targets afterwards.

    ``Route.BASE`` is read when each Route is built (so only later requests are redirected) and
    webhooks use it too, whatever host their URL had. ``DEFAULT_GATEWAY`` is read when a plain
    ``Client`` connects; later RESUMEs go to READY's ``resume_gateway_url`` (the fake's).
    """
    import discord.gateway
    import discord.http

    old_base = discord.http.Route.BASE
    old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = fake.base_url
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    try:
        yield
    finally:
        discord.http.Route.BASE = old_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway
