"""A fake Slack for tests: Web API, incoming webhooks, ``response_url`` and Socket Mode.

The real ``slack_sdk`` talks to it over 127.0.0.1 on an ephemeral port::

    async with FakeSlack() as fake:
        fake.add_channel("C123")
        client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
        await client.chat_postMessage(channel="C123", text="hi")
        assert fake.messages("C123")[0]["text"] == "hi"

What it imitates (wire level, as slack_sdk 3.48 sees it):

* Web API at ``/api/<method>``: GET or POST, arguments from the query string, a JSON body or a
  form body (slack_sdk sends ``chat.*`` as JSON, ``auth.test`` / ``apps.connections.open`` as
  POST with query parameters and ``conversations.history`` / ``users.info`` as GET). Errors are
  HTTP 200 ``{"ok": false, "error": ...}`` like Slack, except injected 429 / 5xx.
* Incoming webhooks at ``/services/T.../B.../...``: JSON in, text ``ok`` out, Slack's text errors.
* ``response_url`` at ``/response/<id>``: JSON in, ``{"ok": true}`` out, at most 5 uses.
* Socket Mode websocket at ``/socket?ticket=...`` (the URL ``apps.connections.open`` hands out).

Faults (429 with an integer ``Retry-After``, 5xx, any error code, slow or held answers,
dropped connections) are injected with :meth:`FakeSlack.inject`. Every request is recorded with
its monotonic receive time; the ``wait_for_*`` helpers block on an ``asyncio.Condition`` so tests
never poll.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import math
import secrets
import string
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import TracebackType
from typing import Any, Self, TypeVar

from aiohttp import WSCloseCode, WSMsgType, web
from multidict import CIMultiDict

JSON = dict[str, Any]
T = TypeVar("T")

#: Pseudo method names under which non-Web-API requests are recorded and faults injected.
WEBHOOK = "incoming_webhook"
RESPONSE_URL = "response_url"
SOCKET = "socket"

MAX_BLOCKS = 50
SECTION_TEXT_MAX = 3000
SECTION_FIELDS_MAX = 10
SECTION_FIELD_TEXT_MAX = 2000
HEADER_TEXT_MAX = 150
CONTEXT_ELEMENTS_MAX = 10
ACTIONS_ELEMENTS_MAX = 25
MESSAGE_TEXT_MAX = 40000
RESPONSE_URL_MAX_USES = 5

_BLOCK_TYPES = frozenset(
    {
        "actions",
        "context",
        "context_actions",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "table",
        "video",
    }
)

#: Scope each Web API method needs (public channel variant; private channels use ``groups:``).
_METHOD_SCOPES: dict[str, str] = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "chat.delete": "chat:write",
    "conversations.history": "channels:history",
    "conversations.info": "channels:read",
    "users.info": "users:read",
}

DEFAULT_SCOPES = frozenset(
    {
        "channels:history",
        "channels:read",
        "chat:write",
        "commands",
        "groups:history",
        "groups:read",
        "incoming-webhook",
        "users:read",
    }
)

#: HTTP status Slack's incoming webhooks use for each error text.
WEBHOOK_ERROR_STATUS: dict[str, int] = {
    "invalid_payload": 400,
    "no_text": 400,
    "invalid_blocks": 400,
    "too_many_attachments": 400,
    "user_not_found": 400,
    "invalid_token": 403,
    "action_prohibited": 403,
    "posting_to_general_channel_denied": 403,
    "no_service": 404,
    "channel_not_found": 404,
    "no_active_hooks": 404,
    "no_service_id": 400,
    "no_team": 400,
    "team_disabled": 403,
    "channel_is_archived": 410,
    "rate_limited": 429,
    "rollup_error": 500,
}

_FAULT_DEFAULT_ERRORS: dict[int, str] = {
    429: "ratelimited",
    500: "internal_error",
    503: "fatal_error",
}
_WEBHOOK_FAULT_DEFAULT_ERRORS: dict[int, str] = {429: "rate_limited", 500: "rollup_error"}


# --------------------------------------------------------------------------------------------
# records


@dataclass
class Call:
    """One HTTP request the fake received (Web API, webhook, response_url or socket upgrade)."""

    method: str
    """Web API method (``chat.postMessage``) or :data:`WEBHOOK` / :data:`RESPONSE_URL` /
    :data:`SOCKET`."""
    http_method: str
    path: str
    headers: CIMultiDict[str]
    query: dict[str, str]
    body: JSON
    """Arguments: query string merged with the parsed JSON or form body (body wins)."""
    raw_body: bytes
    content_type: str
    token: str | None
    received_at: float
    """``time.monotonic()`` when the request reached the handler."""
    status: int | None = None
    """HTTP status answered (None while in flight or when the connection was dropped)."""
    response: JSON | str | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    answered_at: float | None = None
    dropped: bool = False
    fault: Fault | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """True when the request was answered with HTTP 200 and (for JSON) ``ok: true``."""
        if self.status != 200:
            return False
        if isinstance(self.response, dict):
            return bool(self.response.get("ok"))
        return True

    @property
    def error(self) -> str | None:
        """The Slack error code answered, if any."""
        if isinstance(self.response, dict):
            err = self.response.get("error")
            return err if isinstance(err, str) else None
        if isinstance(self.response, str) and self.status not in (None, 200):
            return self.response
        return None


@dataclass
class Fault:
    """An injected fault; returned by :meth:`FakeSlack.inject`."""

    method: str
    status: int | None = None
    error: str | None = None
    retry_after: int | None = None
    times: int | None = 1
    """How many more requests it applies to (None: until removed)."""
    delay: float | None = None
    hold: bool = False
    drop: bool = False
    process: bool = False
    """Whether the request still has its normal effect (e.g. the message is stored)."""
    channel: str | None = None
    body: JSON | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hits: list[Call] = field(default_factory=list)
    _released: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _hit: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def answers(self) -> bool:
        """True when the fault replaces the answer (status, error, body or drop)."""
        return (
            self.drop
            or self.error is not None
            or self.body is not None
            or (self.status is not None and self.status != 200)
        )

    def release(self) -> None:
        """Let held requests (``hold=True``) answer."""
        self._released.set()

    async def wait_hit(self, timeout: float = 5.0) -> Call:
        """Wait until a request has hit this fault; returns the first such call."""
        async with asyncio.timeout(timeout):
            await self._hit.wait()
        return self.hits[0]


@dataclass
class Channel:
    """A conversation the fake knows. Flip the flags to change how Slack answers."""

    id: str
    name: str
    is_private: bool = False
    is_member: bool = True
    is_archived: bool = False
    messages: list[JSON] = field(default_factory=list)


@dataclass
class IncomingWebhook:
    """An incoming webhook URL and what was posted to it."""

    url: str
    channel: str | None
    error: str | None = None
    """Slack's text error to answer with (``no_service``, ``channel_is_archived`` ...)."""
    posts: list[JSON] = field(default_factory=list)


@dataclass
class ResponseUrl:
    """A slash-command ``response_url`` and what was posted to it."""

    id: str
    url: str
    expired: bool = False
    posts: list[JSON] = field(default_factory=list)


@dataclass
class SocketConnection:
    """A Socket Mode websocket connection."""

    id: int
    ws: web.WebSocketResponse
    connected_at: float
    received: list[JSON] = field(default_factory=list)
    closed: bool = False


@dataclass
class _Bucket:
    rate: float
    burst: int
    tokens: float
    updated: float


@dataclass
class _Reply:
    status: int
    body: JSON | str
    headers: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# slash commands over HTTP (sent by the test to the bot)


def slack_signature(signing_secret: str, timestamp: int | str, body: bytes | str) -> str:
    """``v0=`` + hex HMAC-SHA256(secret, ``v0:{timestamp}:{body}``), as Slack signs requests."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    base = b"v0:" + str(timestamp).encode("ascii") + b":" + raw
    digest = hmac.new(signing_secret.encode("utf-8"), base, hashlib.sha256).hexdigest()
    return f"v0={digest}"


def sign_slash_command(
    signing_secret: str, form: Mapping[str, str], timestamp: int
) -> tuple[bytes, dict[str, str]]:
    """Form-encode ``form`` like Slack and sign it; returns ``(body, headers)`` to POST."""
    body = urllib.parse.urlencode(list(form.items())).encode("utf-8")
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": slack_signature(signing_secret, timestamp, body),
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
    }
    return body, headers


def slash_command_form(
    command: str,
    text: str,
    channel_id: str,
    user_id: str,
    response_url: str,
    *,
    team_id: str = "T0NEWSBOT",
    team_domain: str = "newsbot-fake",
    channel_name: str = "general",
    user_name: str = "alice",
    api_app_id: str = "A0NEWSBOT",
    enterprise_id: str | None = None,
    enterprise_name: str | None = None,
    is_enterprise_install: bool = False,
    token: str = "fakeVerificationToken0001",
    trigger_id: str | None = None,
) -> dict[str, str]:
    """The fields Slack sends for a slash command, in Slack's order, all as strings."""
    form: dict[str, str] = {"token": token, "team_id": team_id, "team_domain": team_domain}
    if enterprise_id is not None:
        form["enterprise_id"] = enterprise_id
        form["enterprise_name"] = enterprise_name or "Fake Enterprise"
    form.update(
        {
            "channel_id": channel_id,
            "channel_name": channel_name,
            "user_id": user_id,
            "user_name": user_name,
            "command": command,
            "text": text,
            "api_app_id": api_app_id,
            "is_enterprise_install": "true" if is_enterprise_install else "false",
            "response_url": response_url,
            "trigger_id": trigger_id or _trigger_id(),
        }
    )
    return form


def _trigger_id() -> str:
    return f"{secrets.randbelow(10**11)}.{secrets.randbelow(10**9)}.{secrets.token_hex(16)}"


def _slack_id(prefix: str, length: int = 10) -> str:
    alphabet = string.ascii_uppercase + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


# --------------------------------------------------------------------------------------------
# Block Kit validation (the subset of Slack's rules a news bot can trip over)


def validate_blocks(blocks: list[Any]) -> list[str]:
    """Slack-style error strings (``... [json-pointer:/blocks/0/text/text]``); empty if valid."""
    errors: list[str] = []
    if len(blocks) > MAX_BLOCKS:
        errors.append(f"must be less than {MAX_BLOCKS + 1} items [json-pointer:/blocks]")
    seen_ids: set[str] = set()
    for i, block in enumerate(blocks):
        ptr = f"/blocks/{i}"
        if not isinstance(block, dict):
            errors.append(f"must be an object [json-pointer:{ptr}]")
            continue
        btype = block.get("type")
        if not isinstance(btype, str):
            errors.append(f"missing required field: type [json-pointer:{ptr}]")
            continue
        if btype not in _BLOCK_TYPES:
            errors.append(f"unsupported type: {btype} [json-pointer:{ptr}/type]")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or len(block_id) > 255:
                errors.append(f"must be less than 256 characters [json-pointer:{ptr}/block_id]")
            elif block_id in seen_ids:
                errors.append(f"duplicate block_id [json-pointer:{ptr}/block_id]")
            else:
                seen_ids.add(block_id)
        if btype == "section":
            _check_section(block, ptr, errors)
        elif btype == "header":
            _check_text(block.get("text"), f"{ptr}/text", HEADER_TEXT_MAX, errors, plain=True)
        elif btype == "context":
            _check_elements(block.get("elements"), ptr, CONTEXT_ELEMENTS_MAX, errors)
            for j, el in enumerate(block.get("elements") or []):
                if isinstance(el, dict) and el.get("type") in ("plain_text", "mrkdwn"):
                    _check_text(el, f"{ptr}/elements/{j}", SECTION_TEXT_MAX, errors)
        elif btype == "actions":
            _check_elements(block.get("elements"), ptr, ACTIONS_ELEMENTS_MAX, errors)
        elif btype == "image":
            _check_image(block, ptr, errors)
        elif btype == "markdown":
            text = block.get("text")
            if not isinstance(text, str) or not text:
                errors.append(f"missing required field: text [json-pointer:{ptr}/text]")
            elif len(text) > 12000:
                errors.append(f"must be less than 12001 characters [json-pointer:{ptr}/text]")
    return errors


def _check_text(
    obj: Any, ptr: str, max_len: int, errors: list[str], *, plain: bool = False
) -> None:
    if not isinstance(obj, dict):
        errors.append(f"missing required field: text [json-pointer:{ptr}]")
        return
    allowed = ("plain_text",) if plain else ("plain_text", "mrkdwn")
    if obj.get("type") not in allowed:
        errors.append(f"must be one of: {', '.join(allowed)} [json-pointer:{ptr}/type]")
    text = obj.get("text")
    if not isinstance(text, str):
        errors.append(f"missing required field: text [json-pointer:{ptr}/text]")
    elif len(text) == 0:
        errors.append(f"must be more than 0 characters [json-pointer:{ptr}/text]")
    elif len(text) > max_len:
        errors.append(f"must be less than {max_len + 1} characters [json-pointer:{ptr}/text]")


def _check_section(block: JSON, ptr: str, errors: list[str]) -> None:
    text = block.get("text")
    fields = block.get("fields")
    if text is None and fields is None:
        errors.append(f"must provide either text or fields [json-pointer:{ptr}]")
    if text is not None:
        _check_text(text, f"{ptr}/text", SECTION_TEXT_MAX, errors)
    if fields is not None:
        if not isinstance(fields, list):
            errors.append(f"must be an array [json-pointer:{ptr}/fields]")
            return
        if len(fields) > SECTION_FIELDS_MAX:
            errors.append(
                f"must be less than {SECTION_FIELDS_MAX + 1} items [json-pointer:{ptr}/fields]"
            )
        for j, f in enumerate(fields):
            _check_text(f, f"{ptr}/fields/{j}", SECTION_FIELD_TEXT_MAX, errors)


def _check_elements(elements: Any, ptr: str, max_items: int, errors: list[str]) -> None:
    if not isinstance(elements, list):
        errors.append(f"missing required field: elements [json-pointer:{ptr}/elements]")
    elif len(elements) == 0:
        errors.append(f"must be more than 0 items [json-pointer:{ptr}/elements]")
    elif len(elements) > max_items:
        errors.append(f"must be less than {max_items + 1} items [json-pointer:{ptr}/elements]")


def _check_image(block: JSON, ptr: str, errors: list[str]) -> None:
    alt = block.get("alt_text")
    if not isinstance(alt, str) or not alt:
        errors.append(f"missing required field: alt_text [json-pointer:{ptr}/alt_text]")
    elif len(alt) > 2000:
        errors.append(f"must be less than 2001 characters [json-pointer:{ptr}/alt_text]")
    url = block.get("image_url")
    if url is None and block.get("slack_file") is None:
        errors.append(f"missing required field: image_url [json-pointer:{ptr}]")
    elif url is not None and (not isinstance(url, str) or len(url) > 3000):
        errors.append(f"must be less than 3001 characters [json-pointer:{ptr}/image_url]")


def _invalid_blocks(errors: list[str]) -> JSON:
    return {
        "ok": False,
        "error": "invalid_blocks",
        "errors": errors,
        "response_metadata": {"messages": [f"[ERROR] {e}" for e in errors]},
    }


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _ts_key(ts: str) -> Decimal:
    return Decimal(ts)


def _json_arg(value: Any) -> tuple[Any, bool]:
    """Decode a JSON-valued argument sent either as JSON or as a string (form bodies)."""
    if isinstance(value, str):
        try:
            return json.loads(value), True
        except ValueError:
            return None, False
    return value, True


# --------------------------------------------------------------------------------------------
# the server


class FakeSlack:
    """Fake Slack server on 127.0.0.1:0. Use as ``async with FakeSlack() as fake`` or
    ``await fake.start()`` / ``await fake.stop()``."""

    def __init__(
        self,
        *,
        team_id: str = "T0NEWSBOT",
        team_domain: str = "newsbot-fake",
        bot_user_id: str = "U0NEWSBOT",
        bot_id: str = "B0NEWSBOT",
        app_id: str = "A0NEWSBOT",
        host: str = "127.0.0.1",
    ) -> None:
        self.team_id = team_id
        self.team_domain = team_domain
        self.team_name = "Newsbot Fake Workspace"
        self.bot_user_id = bot_user_id
        self.bot_user_name = "newsbot"
        self.bot_id = bot_id
        self.app_id = app_id
        self.bot_token = (
            f"xoxb-{secrets.randbelow(10**12):012d}-{secrets.randbelow(10**13):013d}-"
            f"{secrets.token_urlsafe(18)[:24]}"
        )
        self.app_token = f"xapp-1-{app_id}-{secrets.randbelow(10**13):013d}-{secrets.token_hex(32)}"
        self.signing_secret = secrets.token_hex(16)
        self.verification_token = secrets.token_urlsafe(18)[:24]
        #: Scopes the bot token has; remove one to get ``missing_scope``.
        self.scopes: set[str] = set(DEFAULT_SCOPES)

        self._host = host
        self._port: int | None = None
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._cond = asyncio.Condition()

        self._calls: list[Call] = []
        self._faults: list[Fault] = []
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        # (method, per channel?) -> (rate per second, burst): a method can have both a
        # per-channel and a workspace-wide limit, as chat.postMessage does.
        self._rate_limits: dict[tuple[str, bool], tuple[float, int]] = {}
        self._token_errors: dict[str, str] = {}
        self._channels: dict[str, Channel] = {}
        self._users: dict[str, JSON] = {}
        self._webhooks: dict[str, IncomingWebhook] = {}
        self._response_urls: dict[str, ResponseUrl] = {}
        self._tickets: set[str] = set()
        self._sockets: list[SocketConnection] = []
        self._socket_connects = 0
        self._envelopes: dict[str, JSON] = {}
        self._envelope_sent_at: dict[str, float] = {}
        self._acks: dict[str, list[tuple[float, JSON]]] = {}
        self._last_ts_us = 0

        self.add_user(bot_user_id, name=self.bot_user_name, is_bot=True)

    # ---------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> Self:
        """Start listening on an ephemeral port; returns self."""
        if self._runner is not None:
            raise RuntimeError("FakeSlack already started")
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/services/{team}/{bot}/{secret}", self._handle_webhook)
        app.router.add_post("/response/{rid}", self._handle_response_url)
        app.router.add_get("/socket", self._handle_socket)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self._host, 0)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        """Release held requests, close websockets and stop the server."""
        self._closing.set()
        for fault in self._faults:
            fault.release()
        for conn in list(self._sockets):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def port(self) -> int:
        """The TCP port the fake listens on."""
        if self._port is None:
            raise RuntimeError("FakeSlack not started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self._host}:{self.port}"

    @property
    def api_url(self) -> str:
        """Web API base URL for ``AsyncWebClient(base_url=...)``: ``http://127.0.0.1:PORT/api/``."""
        return f"{self.base_url}/api/"

    # ---------------------------------------------------------------- world setup

    def add_channel(
        self,
        channel_id: str,
        *,
        name: str | None = None,
        is_private: bool = False,
        is_member: bool = True,
        is_archived: bool = False,
    ) -> Channel:
        """Add (or replace) a channel the bot can see; returns it (its flags are mutable)."""
        chan = Channel(
            id=channel_id,
            name=name or channel_id.lower(),
            is_private=is_private,
            is_member=is_member,
            is_archived=is_archived,
        )
        self._channels[channel_id] = chan
        return chan

    def channel(self, channel_id: str) -> Channel:
        """The channel with this id (KeyError if unknown)."""
        return self._channels[channel_id]

    def remove_channel(self, channel_id: str) -> None:
        """Forget a channel: later calls get ``channel_not_found``."""
        self._channels.pop(channel_id, None)

    def archive_channel(self, channel_id: str) -> None:
        """Mark a channel archived: posts get ``is_archived``."""
        self._channels[channel_id].is_archived = True

    def kick_bot(self, channel_id: str) -> None:
        """Remove the bot from a channel: posts get ``not_in_channel``."""
        self._channels[channel_id].is_member = False

    def add_user(
        self,
        user_id: str,
        *,
        name: str | None = None,
        is_admin: bool = False,
        is_owner: bool = False,
        is_primary_owner: bool = False,
        is_restricted: bool = False,
        is_bot: bool = False,
        deleted: bool = False,
    ) -> JSON:
        """Add a user for ``users.info``; returns the user object Slack would return."""
        uname = name or user_id.lower()
        user: JSON = {
            "id": user_id,
            "team_id": self.team_id,
            "name": uname,
            "deleted": deleted,
            "color": "9f69e7",
            "real_name": uname.title(),
            "tz": "Europe/Berlin",
            "tz_label": "Central European Time",
            "tz_offset": 3600,
            "profile": {
                "real_name": uname.title(),
                "display_name": uname,
                "team": self.team_id,
            },
            "is_admin": is_admin or is_owner,
            "is_owner": is_owner or is_primary_owner,
            "is_primary_owner": is_primary_owner,
            "is_restricted": is_restricted,
            "is_ultra_restricted": False,
            "is_bot": is_bot,
            "is_app_user": False,
            "updated": int(time.time()),
        }
        self._users[user_id] = user
        return user

    def invalidate_token(self, token: str | None = None, error: str = "account_inactive") -> None:
        """Make a token (default: the bot token) fail with ``error`` (``account_inactive``,
        ``token_revoked``, ``invalid_auth`` ...)."""
        self._token_errors[token or self.bot_token] = error

    def add_message(
        self,
        channel_id: str,
        text: str,
        *,
        user: str = "U0HUMAN01",
        metadata: JSON | None = None,
        blocks: list[JSON] | None = None,
    ) -> JSON:
        """Put a message from someone else into a channel's history; returns it."""
        msg: JSON = {"type": "message", "user": user, "text": text, "ts": self._next_ts()}
        msg["team"] = self.team_id
        if blocks is not None:
            msg["blocks"] = blocks
        if metadata is not None:
            msg["metadata"] = metadata
        self._channels[channel_id].messages.append(msg)
        return dict(msg)

    def rate_limit(
        self, method: str, *, per_second: float = 1.0, burst: int = 1, per_channel: bool = True
    ) -> None:
        """Rate-limit a method like Slack (token bucket, per channel by default; call again
        with ``per_channel=False`` for a workspace-wide limit too): excess requests get 429
        with an integer ``Retry-After`` (at least 1)."""
        self._rate_limits[(method, per_channel)] = (per_second, burst)

    def inject(
        self,
        method: str,
        *,
        status: int | None = None,
        error: str | None = None,
        retry_after: int | None = None,
        times: int | None = 1,
        delay: float | None = None,
        hold: bool = False,
        drop: bool = False,
        process: bool | None = None,
        channel: str | None = None,
        body: JSON | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """Inject a fault for the next ``times`` requests to ``method`` (None: every one).

        ``method`` is a Web API method name or :data:`WEBHOOK` / :data:`RESPONSE_URL`.
        ``status=429`` answers ``{"ok": false, "error": "ratelimited"}`` with ``Retry-After``
        (``retry_after``, default 1, must be an int); 500 → ``internal_error``, 503 →
        ``fatal_error``; ``error`` alone → HTTP 200 ``{"ok": false, "error": error}``.
        ``delay`` seconds or ``hold`` (until :meth:`Fault.release`) slow the answer; ``drop``
        closes the connection without an answer. ``process`` says whether the request still
        takes effect (default: True for a pure delay/hold, False otherwise); with
        ``process=True`` the message is stored and *then* the fault answers, like a lost reply.
        ``channel`` limits the fault to requests for that channel. ``headers`` are added to
        the answer (e.g. ``{"Retry-After": "0.5"}`` to test a bad header).
        """
        if retry_after is not None and (
            isinstance(retry_after, bool) or not isinstance(retry_after, int)
        ):
            raise TypeError("retry_after must be an int: Slack sends integer seconds")
        if status == 429 and retry_after is None:
            retry_after = 1
        fault = Fault(
            method=method,
            status=status,
            error=error,
            retry_after=retry_after,
            times=times,
            delay=delay,
            hold=hold,
            drop=drop,
            channel=channel,
            body=body,
            headers=dict(headers or {}),
        )
        fault.process = (not fault.answers) if process is None else process
        self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Remove all injected faults (held requests are released)."""
        for fault in self._faults:
            fault.release()
        self._faults.clear()

    def add_incoming_webhook(self, channel: str | None = None) -> str:
        """Create an incoming webhook (posting to ``channel`` if given); returns its URL."""
        bot = _slack_id("B")
        secret = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(24))
        url = f"{self.base_url}/services/{self.team_id}/{bot}/{secret}"
        self._webhooks[urllib.parse.urlsplit(url).path] = IncomingWebhook(url=url, channel=channel)
        return url

    def webhook(self, url: str) -> IncomingWebhook:
        """The incoming webhook behind a URL (set ``.error`` to make it fail)."""
        return self._webhooks[urllib.parse.urlsplit(url).path]

    def webhook_posts(self, url: str) -> list[JSON]:
        """Payloads accepted by an incoming webhook."""
        return list(self.webhook(url).posts)

    def new_response_url(self) -> str:
        """Create a slash-command ``response_url``: ``http://127.0.0.1:PORT/response/<id>``."""
        rid = secrets.token_hex(8)
        url = f"{self.base_url}/response/{rid}"
        self._response_urls[rid] = ResponseUrl(id=rid, url=url)
        return url

    def expire_response_url(self, id_or_url: str) -> None:
        """Make a ``response_url`` answer ``expired_url`` (as after 30 minutes)."""
        self._response_urls[self._rid(id_or_url)].expired = True

    def responses(self, id_or_url: str) -> list[JSON]:
        """Payloads accepted by a ``response_url``."""
        return list(self._response_urls[self._rid(id_or_url)].posts)

    def slash_command_form(
        self,
        command: str = "/news",
        text: str = "",
        *,
        channel_id: str | None = None,
        user_id: str = "U0HUMAN01",
        response_url: str | None = None,
        **extra: Any,
    ) -> dict[str, str]:
        """:func:`slash_command_form` filled with this workspace's ids and a new response_url."""
        chan = channel_id or self._default_channel()
        known = self._channels.get(chan)
        user = self._users.get(user_id)
        extra.setdefault("team_id", self.team_id)
        extra.setdefault("team_domain", self.team_domain)
        extra.setdefault("api_app_id", self.app_id)
        extra.setdefault("token", self.verification_token)
        extra.setdefault("channel_name", known.name if known else "general")
        extra.setdefault("user_name", user["name"] if user else user_id.lower())
        return slash_command_form(
            command,
            text,
            chan,
            user_id,
            response_url or self.new_response_url(),
            **extra,
        )

    def sign(
        self, form: Mapping[str, str], timestamp: int | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """:func:`sign_slash_command` with this fake's signing secret (default: now)."""
        ts = int(time.time()) if timestamp is None else timestamp
        return sign_slash_command(self.signing_secret, form, ts)

    # ---------------------------------------------------------------- inspection

    def calls(self, method: str | None = None) -> list[Call]:
        """Recorded requests (all, or to one method), in arrival order."""
        return [c for c in self._calls if method is None or c.method == method]

    def messages(self, channel_id: str) -> list[JSON]:
        """Messages in a channel, oldest first (copies, metadata included)."""
        return [dict(m) for m in self._channels[channel_id].messages]

    async def wait_for_call(self, method: str, count: int = 1, timeout: float = 5.0) -> list[Call]:
        """Wait until ``count`` requests to ``method`` have arrived (answered or not)."""

        def check() -> list[Call] | None:
            found = self.calls(method)
            return found if len(found) >= count else None

        return await self._wait_until(check, timeout, f"{count} call(s) to {method}")

    async def wait_for_message(
        self, channel_id: str, count: int = 1, timeout: float = 5.0
    ) -> list[JSON]:
        """Wait until a channel holds ``count`` messages; returns them."""

        def check() -> list[JSON] | None:
            chan = self._channels.get(channel_id)
            if chan is None or len(chan.messages) < count:
                return None
            return self.messages(channel_id)

        return await self._wait_until(check, timeout, f"{count} message(s) in {channel_id}")

    async def wait_for_response(self, id_or_url: str, timeout: float = 5.0, count: int = 1) -> JSON:
        """Wait for the ``count``-th accepted POST to a ``response_url``; returns its JSON."""
        rid = self._rid(id_or_url)

        def check() -> JSON | None:
            ru = self._response_urls.get(rid)
            if ru is None or len(ru.posts) < count:
                return None
            return ru.posts[count - 1]

        return await self._wait_until(check, timeout, f"response #{count} on {rid}")

    async def wait_for_webhook(self, url: str, count: int = 1, timeout: float = 5.0) -> list[JSON]:
        """Wait until an incoming webhook has accepted ``count`` posts; returns them."""
        hook = self.webhook(url)

        def check() -> list[JSON] | None:
            return list(hook.posts) if len(hook.posts) >= count else None

        return await self._wait_until(check, timeout, f"{count} webhook post(s)")

    # ---------------------------------------------------------------- socket mode

    @property
    def socket_connections(self) -> list[SocketConnection]:
        """Open Socket Mode connections, oldest first."""
        return [c for c in self._sockets if not c.closed]

    async def wait_for_socket(self, count: int = 1, timeout: float = 5.0) -> SocketConnection:
        """Wait until ``count`` Socket Mode connections have been made in total (reconnects
        count) and one is open; returns the newest open connection."""

        def check() -> SocketConnection | None:
            open_conns = self.socket_connections
            if self._socket_connects >= count and open_conns:
                return open_conns[-1]
            return None

        return await self._wait_until(check, timeout, f"socket connection #{count}")

    async def send_envelope(
        self,
        type_: str,
        payload: JSON,
        *,
        accepts_response_payload: bool = False,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
        timeout: float = 5.0,
    ) -> str:
        """Send a Socket Mode envelope on the newest connection; returns its envelope_id."""
        conn = await self.wait_for_socket(timeout=timeout)
        envelope_id = str(uuid.uuid4())
        envelope: JSON = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": type_,
            "accepts_response_payload": accepts_response_payload,
        }
        if retry_attempt is not None:
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = retry_reason or ""
        self._envelopes[envelope_id] = envelope
        self._envelope_sent_at[envelope_id] = time.monotonic()
        await conn.ws.send_str(json.dumps(envelope))
        return envelope_id

    async def send_slash_command(
        self,
        command: str = "/news",
        text: str = "",
        *,
        channel_id: str | None = None,
        user_id: str = "U0HUMAN01",
        team_id: str | None = None,
        response_url: str | None = None,
        timeout: float = 5.0,
        **extra: Any,
    ) -> str:
        """Send a ``slash_commands`` envelope (payload = the slash command fields, as Slack
        sends them in Socket Mode); returns the envelope_id."""
        if team_id is not None:
            extra["team_id"] = team_id
        payload = self.slash_command_form(
            command,
            text,
            channel_id=channel_id,
            user_id=user_id,
            response_url=response_url,
            **extra,
        )
        return await self.send_envelope(
            "slash_commands", dict(payload), accepts_response_payload=True, timeout=timeout
        )

    def reaction_event(
        self,
        channel_id: str,
        ts: str,
        reaction: str,
        *,
        user_id: str = "U0HUMAN01",
        added: bool = True,
    ) -> JSON:
        """The Events API callback Slack sends for ``reaction_added`` / ``reaction_removed``
        on a message: ``reaction`` is the emoji's name without colons (``+1``, and
        ``+1::skin-tone-3`` with a skin tone), ``item_user`` the message's author."""
        chan = self._channels.get(channel_id)
        found = self._find_message(chan, ts) if chan is not None else None
        now = time.time()
        event: JSON = {
            "type": "reaction_added" if added else "reaction_removed",
            "user": user_id,
            "reaction": reaction,
            "item": {"type": "message", "channel": channel_id, "ts": ts},
            "event_ts": f"{now:.6f}",
        }
        if found is not None and found.get("user"):
            event["item_user"] = found["user"]
        return {
            "token": self.verification_token,
            "team_id": self.team_id,
            "api_app_id": self.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": "Ev" + secrets.token_hex(5).upper(),
            "event_time": int(now),
            "authorizations": [
                {"enterprise_id": None, "team_id": self.team_id, "user_id": self.bot_user_id,
                 "is_bot": True, "is_enterprise_install": False}
            ],
            "is_ext_shared_channel": False,
            "event_context": "4-" + secrets.token_hex(12),
        }

    async def send_reaction(
        self,
        channel_id: str,
        ts: str,
        reaction: str,
        *,
        user_id: str = "U0HUMAN01",
        added: bool = True,
        timeout: float = 5.0,
    ) -> str | None:
        """A person reacts to (or un-reacts from) a message, delivered over Socket Mode as an
        ``events_api`` envelope; returns its envelope_id. Like Slack, only to an app whose
        token has ``reactions:read`` (None otherwise: nothing is sent)."""
        if "reactions:read" not in self.scopes:
            return None
        payload = self.reaction_event(channel_id, ts, reaction, user_id=user_id, added=added)
        return await self.send_envelope("events_api", payload, timeout=timeout)

    def block_actions(
        self, channel_id: str, ts: str, action_id: str, *, user_id: str = "U0HUMAN01"
    ) -> JSON:
        """The ``block_actions`` payload of a button press on a message (with a fresh
        ``response_url``)."""
        chan = self._channels.get(channel_id)
        message = self._find_message(chan, ts) if chan is not None else None
        user = self._users.get(user_id)
        return {
            "type": "block_actions",
            "user": {"id": user_id, "username": user["name"] if user else user_id.lower(),
                     "team_id": self.team_id},
            "api_app_id": self.app_id,
            "token": self.verification_token,
            "container": {"type": "message", "message_ts": ts, "channel_id": channel_id,
                          "is_ephemeral": False},
            "trigger_id": _trigger_id(),
            "team": {"id": self.team_id, "domain": self.team_domain},
            "channel": {"id": channel_id, "name": chan.name if chan else "unknown"},
            "message": dict(message) if message else {},
            "response_url": self.new_response_url(),
            "actions": [
                {"action_id": action_id, "block_id": "b" + secrets.token_hex(3),
                 "text": {"type": "plain_text", "text": "button"}, "value": action_id,
                 "type": "button", "action_ts": f"{time.time():.6f}"}
            ],
        }

    async def press_button(
        self, channel_id: str, ts: str, action_id: str, *, user_id: str = "U0HUMAN01",
        timeout: float = 5.0,
    ) -> tuple[str, JSON]:
        """A button press over Socket Mode (an ``interactive`` envelope): (envelope_id, the
        payload, whose ``response_url`` the answer goes to)."""
        payload = self.block_actions(channel_id, ts, action_id, user_id=user_id)
        envelope_id = await self.send_envelope("interactive", payload, timeout=timeout)
        return envelope_id, payload

    async def send_disconnect(self, reason: str = "refresh_requested") -> None:
        """Send ``{"type": "disconnect", "reason": ...}`` on the newest connection (the client
        is expected to open a new connection via ``apps.connections.open``)."""
        conns = self.socket_connections
        if not conns:
            raise RuntimeError("no open Socket Mode connection")
        await conns[-1].ws.send_str(
            json.dumps(
                {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake"}}
            )
        )

    async def close_sockets(self, code: int = WSCloseCode.GOING_AWAY) -> None:
        """Close every open Socket Mode connection from the server side."""
        for conn in self.socket_connections:
            await conn.ws.close(code=code)

    def acks(self, envelope_id: str) -> list[JSON]:
        """Acks received for an envelope (normally one)."""
        return [a for _, a in self._acks.get(envelope_id, [])]

    def ack_latency(self, envelope_id: str) -> float | None:
        """Seconds between sending an envelope and its first ack (None if not acked)."""
        got = self._acks.get(envelope_id)
        sent = self._envelope_sent_at.get(envelope_id)
        if not got or sent is None:
            return None
        return got[0][0] - sent

    async def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> JSON:
        """Wait for the ack ``{"envelope_id": ..., "payload"?: ...}`` of an envelope."""

        def check() -> JSON | None:
            got = self._acks.get(envelope_id)
            return got[0][1] if got else None

        return await self._wait_until(check, timeout, f"ack of {envelope_id}")

    # ---------------------------------------------------------------- internals: helpers

    def _default_channel(self) -> str:
        return next(iter(self._channels), "C0GENERAL1")

    @staticmethod
    def _rid(id_or_url: str) -> str:
        return id_or_url.rstrip("/").rsplit("/", 1)[-1]

    def _next_ts(self) -> str:
        # Wall-clock based like Slack's (so "oldest = now - 1 day" lookups work), strictly
        # increasing and unique.
        now_us = time.time_ns() // 1000
        self._last_ts_us = max(now_us, self._last_ts_us + 1)
        return f"{self._last_ts_us // 1_000_000}.{self._last_ts_us % 1_000_000:06d}"

    async def _notify(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    async def _wait_until(self, check: Callable[[], T | None], timeout: float, what: str) -> T:
        try:
            async with asyncio.timeout(timeout):
                async with self._cond:
                    while True:
                        result = check()
                        if result is not None:
                            return result
                        await self._cond.wait()
        except TimeoutError:
            raise TimeoutError(
                f"FakeSlack: timed out after {timeout}s waiting for {what}"
            ) from None

    async def _record(self, request: web.Request, method: str, received_at: float) -> Call:
        query = dict(request.query)
        args: JSON = dict(query)
        ctype = request.content_type
        raw = b""
        if ctype.startswith("multipart/"):
            form = await request.post()
            args.update({k: v for k, v in form.items() if isinstance(v, str)})
        else:
            raw = await request.read()
        parse_error = False
        if raw and ctype == "application/json":
            try:
                data = json.loads(raw)
            except ValueError:
                parse_error = True
            else:
                if isinstance(data, dict):
                    args.update(data)
                else:
                    parse_error = True
        elif raw:
            text = raw.decode("utf-8", "replace")
            args.update(urllib.parse.parse_qsl(text, keep_blank_values=True))
        token: str | None = None
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[7:].strip() or None
        elif ctype != "application/json" and isinstance(args.get("token"), str):
            token = args["token"]
        call = Call(
            method=method,
            http_method=request.method,
            path=request.path,
            headers=CIMultiDict(request.headers),
            query=query,
            body=args,
            raw_body=raw,
            content_type=ctype,
            token=token,
            received_at=received_at,
        )
        if parse_error:
            call.body["__parse_error__"] = True
        self._calls.append(call)
        await self._notify()
        return call

    def _take_fault(self, call: Call) -> Fault | None:
        for fault in self._faults:
            if fault.method != call.method:
                continue
            if fault.channel is not None and call.body.get("channel") != fault.channel:
                continue
            if fault.times is not None:
                if fault.times <= 0:
                    continue
                fault.times -= 1
            fault.hits.append(call)
            fault._hit.set()
            call.fault = fault
            return fault
        return None

    async def _fault_wait(self, fault: Fault) -> None:
        if fault.delay:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(fault.delay):
                    await self._closing.wait()
        if fault.hold:
            closing = asyncio.ensure_future(self._closing.wait())
            released = asyncio.ensure_future(fault._released.wait())
            try:
                await asyncio.wait({closing, released}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                closing.cancel()
                released.cancel()
                await asyncio.gather(closing, released, return_exceptions=True)

    def _fault_reply(self, fault: Fault, flavor: str) -> _Reply:
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        headers.update(fault.headers)
        if flavor == WEBHOOK:
            status = fault.status
            text = fault.error
            if status is None:
                status = WEBHOOK_ERROR_STATUS.get(text or "", 400)
            if text is None:
                text = _WEBHOOK_FAULT_DEFAULT_ERRORS.get(status, "invalid_payload")
            body: JSON | str = fault.body if fault.body is not None else text
            return _Reply(status, body, headers)
        status = fault.status if fault.status is not None else 200
        error = fault.error or _FAULT_DEFAULT_ERRORS.get(status, "internal_error")
        body = fault.body if fault.body is not None else {"ok": False, "error": error}
        return _Reply(status, body, headers)

    def _respond(self, call: Call, reply: _Reply, *, text_type: str = "text/html") -> web.Response:
        call.status = reply.status
        call.response = reply.body
        call.response_headers = dict(reply.headers)
        call.answered_at = time.monotonic()
        if isinstance(reply.body, dict):
            return web.json_response(reply.body, status=reply.status, headers=reply.headers)
        return web.Response(
            text=reply.body, status=reply.status, headers=reply.headers, content_type=text_type
        )

    def _drop(self, call: Call, request: web.Request) -> web.Response:
        call.dropped = True
        call.answered_at = time.monotonic()
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)

    async def _serve(
        self,
        request: web.Request,
        call: Call,
        flavor: str,
        handler: Callable[[Call], _Reply],
    ) -> web.StreamResponse:
        """Fault handling shared by every HTTP endpoint, around the endpoint's own logic."""
        fault = self._take_fault(call)
        text_type = "text/html" if flavor == WEBHOOK else "text/plain"
        if fault is not None and not fault.process:
            await self._fault_wait(fault)
            if fault.drop:
                return self._drop(call, request)
            if fault.answers:
                return self._respond(call, self._fault_reply(fault, flavor), text_type=text_type)
        reply = handler(call)
        await self._notify()
        if fault is not None and fault.process:
            await self._fault_wait(fault)
            if fault.drop:
                return self._drop(call, request)
            if fault.answers:
                return self._respond(call, self._fault_reply(fault, flavor), text_type=text_type)
        return self._respond(call, reply, text_type=text_type)

    # ---------------------------------------------------------------- Web API

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        received_at = time.monotonic()
        call = await self._record(request, request.match_info["method"], received_at)
        return await self._serve(request, call, "api", self._api_dispatch)

    def _api_dispatch(self, call: Call) -> _Reply:
        handlers: dict[str, Callable[[Call], _Reply]] = {
            "api.test": self._api_test,
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "conversations.history": self._conversations_history,
            "conversations.info": self._conversations_info,
            "users.info": self._users_info,
            "apps.connections.open": self._apps_connections_open,
        }
        handler = handlers.get(call.method)
        if handler is None:
            return _Reply(200, {"ok": False, "error": "unknown_method", "req_method": call.method})
        if call.body.get("__parse_error__"):
            return _Reply(200, {"ok": False, "error": "invalid_json"})
        if call.method != "api.test":
            error = self._auth_error(call)
            if error is not None:
                return _Reply(200, {"ok": False, "error": error})
        limited = self._check_rate_limit(call)
        if limited is not None:
            return limited
        return handler(call)

    def _auth_error(self, call: Call) -> str | None:
        token = call.token
        if not token:
            return "not_authed"
        if token in self._token_errors:
            return self._token_errors[token]
        if call.method == "apps.connections.open":
            if token == self.app_token:
                return None
            return "not_allowed_token_type" if token == self.bot_token else "invalid_auth"
        if token == self.app_token:
            return "not_allowed_token_type"
        if token != self.bot_token:
            return "invalid_auth"
        return None

    def _check_rate_limit(self, call: Call) -> _Reply | None:
        """Every limit the method has must allow the call; a refused call spends nothing."""
        now = time.monotonic()
        buckets = []
        for per_channel in (True, False):
            limit = self._rate_limits.get((call.method, per_channel))
            if limit is None:
                continue
            rate, burst = limit
            key = (call.method, str(call.body.get("channel", "")) if per_channel else "")
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(rate, burst, float(burst), now)
            bucket.tokens = min(float(bucket.burst), bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if bucket.tokens < 1.0:
                wait = (1.0 - bucket.tokens) / rate
                retry_after = max(1, math.ceil(wait))
                return _Reply(
                    429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}
                )
            buckets.append(bucket)
        for bucket in buckets:
            bucket.tokens -= 1.0
        return None

    def _scope_error(self, method: str, chan: Channel | None = None) -> _Reply | None:
        needed = _METHOD_SCOPES.get(method)
        if needed is None:
            return None
        if chan is not None and chan.is_private:
            needed = needed.replace("channels:", "groups:")
        if needed in self.scopes:
            return None
        return _Reply(
            200,
            {
                "ok": False,
                "error": "missing_scope",
                "needed": needed,
                "provided": ",".join(sorted(self.scopes)),
            },
            {"X-OAuth-Scopes": ",".join(sorted(self.scopes)), "X-Accepted-OAuth-Scopes": needed},
        )

    def _find_channel(self, ref: Any) -> Channel | None:
        if not isinstance(ref, str) or not ref:
            return None
        chan = self._channels.get(ref)
        if chan is None:
            name = ref.lstrip("#")
            chan = next((c for c in self._channels.values() if c.name == name), None)
        if chan is not None and chan.is_private and not chan.is_member:
            return None  # Slack hides private channels the bot is not in
        return chan

    def _writable_channel(self, call: Call) -> tuple[Channel | None, _Reply | None]:
        chan = self._find_channel(call.body.get("channel"))
        scope = self._scope_error(call.method, chan)
        if scope is not None:
            return None, scope
        if chan is None:
            return None, _Reply(200, {"ok": False, "error": "channel_not_found"})
        if chan.is_archived:
            return None, _Reply(200, {"ok": False, "error": "is_archived"})
        if not chan.is_member:
            return None, _Reply(200, {"ok": False, "error": "not_in_channel"})
        return chan, None

    def _message_content(self, args: JSON, *, require: bool) -> tuple[JSON, _Reply | None]:
        """Validate text / blocks / metadata; returns the fields to store."""
        out: JSON = {}
        text = args.get("text")
        if text is not None and not isinstance(text, str):
            text = str(text)
        blocks: Any = None
        if "blocks" in args and args["blocks"] is not None:
            blocks, parsed = _json_arg(args["blocks"])
            if not parsed or not isinstance(blocks, list):
                return out, _Reply(200, {"ok": False, "error": "invalid_blocks_format"})
            errors = validate_blocks(blocks)
            if errors:
                return out, _Reply(200, _invalid_blocks(errors))
        attachments: Any = None
        if args.get("attachments") is not None:
            attachments, parsed = _json_arg(args["attachments"])
            if not parsed or not isinstance(attachments, list):
                return out, _Reply(200, {"ok": False, "error": "invalid_attachments"})
        if require and not text and not blocks and not attachments:
            return out, _Reply(200, {"ok": False, "error": "no_text"})
        if text is not None and len(text) > MESSAGE_TEXT_MAX:
            return out, _Reply(200, {"ok": False, "error": "msg_too_long"})
        if text is not None:
            out["text"] = text
        if blocks is not None:
            out["blocks"] = blocks
        if attachments is not None:
            out["attachments"] = attachments
        if args.get("metadata") is not None:
            metadata, parsed = _json_arg(args["metadata"])
            if not parsed or not isinstance(metadata, dict):
                return out, _Reply(200, {"ok": False, "error": "invalid_metadata_format"})
            if not isinstance(metadata.get("event_type"), str) or not isinstance(
                metadata.get("event_payload"), dict
            ):
                return out, _Reply(200, {"ok": False, "error": "invalid_metadata_schema"})
            out["metadata"] = {
                "event_type": metadata["event_type"],
                "event_payload": metadata["event_payload"],
            }
        return out, None

    def _bot_message(self, content: JSON, ts: str) -> JSON:
        msg: JSON = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "text": content.get("text", ""),
            "ts": ts,
            "team": self.team_id,
            "bot_profile": {
                "id": self.bot_id,
                "app_id": self.app_id,
                "name": self.bot_user_name,
                "deleted": False,
                "team_id": self.team_id,
            },
        }
        for key in ("blocks", "attachments", "metadata"):
            if key in content:
                msg[key] = content[key]
        return msg

    def _api_test(self, call: Call) -> _Reply:
        args = {k: v for k, v in call.body.items() if k != "token"}
        if "error" in args:
            return _Reply(200, {"ok": False, "error": args["error"], "args": args})
        return _Reply(200, {"ok": True, "args": args})

    def _auth_test(self, call: Call) -> _Reply:
        if call.token == self.app_token:
            return _Reply(200, {"ok": False, "error": "not_allowed_token_type"})
        return _Reply(
            200,
            {
                "ok": True,
                "url": f"https://{self.team_domain}.slack.com/",
                "team": self.team_name,
                "user": self.bot_user_name,
                "team_id": self.team_id,
                "user_id": self.bot_user_id,
                "bot_id": self.bot_id,
                "is_enterprise_install": False,
            },
        )

    def _chat_post_message(self, call: Call) -> _Reply:
        chan, err = self._writable_channel(call)
        if err is not None:
            return err
        assert chan is not None
        content, err = self._message_content(call.body, require=True)
        if err is not None:
            return err
        ts = self._next_ts()
        msg = self._bot_message(content, ts)
        thread_ts = call.body.get("thread_ts")
        if isinstance(thread_ts, str) and thread_ts:
            msg["thread_ts"] = thread_ts
        chan.messages.append(msg)
        return _Reply(200, {"ok": True, "channel": chan.id, "ts": ts, "message": dict(msg)})

    def _find_message(self, chan: Channel, ts: Any) -> JSON | None:
        return next((m for m in chan.messages if m["ts"] == ts), None)

    def _chat_update(self, call: Call) -> _Reply:
        chan, err = self._writable_channel(call)
        if err is not None:
            return err
        assert chan is not None
        ts = call.body.get("ts")
        if not isinstance(ts, str) or not ts:
            return _Reply(
                200,
                {
                    "ok": False,
                    "error": "invalid_arguments",
                    "response_metadata": {"messages": ["[ERROR] missing required field: ts"]},
                },
            )
        msg = self._find_message(chan, ts)
        if msg is None:
            return _Reply(200, {"ok": False, "error": "message_not_found"})
        if msg.get("bot_id") != self.bot_id:
            return _Reply(200, {"ok": False, "error": "cant_update_message"})
        content, err = self._message_content(call.body, require=False)
        if err is not None:
            return err
        msg.update(content)
        msg["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        return _Reply(
            200,
            {
                "ok": True,
                "channel": chan.id,
                "ts": ts,
                "text": msg.get("text", ""),
                "message": dict(msg),
            },
        )

    def _chat_delete(self, call: Call) -> _Reply:
        chan, err = self._writable_channel(call)
        if err is not None:
            return err
        assert chan is not None
        msg = self._find_message(chan, call.body.get("ts"))
        if msg is None:
            return _Reply(200, {"ok": False, "error": "message_not_found"})
        chan.messages.remove(msg)
        return _Reply(200, {"ok": True, "channel": chan.id, "ts": msg["ts"]})

    def _conversations_history(self, call: Call) -> _Reply:
        args = call.body
        chan = self._find_channel(args.get("channel"))
        scope = self._scope_error(call.method, chan)
        if scope is not None:
            return scope
        if chan is None:
            return _Reply(200, {"ok": False, "error": "channel_not_found"})
        if not chan.is_member:
            return _Reply(200, {"ok": False, "error": "not_in_channel"})
        try:
            limit = int(args.get("limit") or 100)
        except (TypeError, ValueError):
            return _Reply(200, {"ok": False, "error": "invalid_limit"})
        limit = max(1, min(limit, 999))
        try:
            oldest = _ts_key(str(args.get("oldest") or "0"))
        except InvalidOperation:
            return _Reply(200, {"ok": False, "error": "invalid_ts_oldest"})
        try:
            latest = _ts_key(str(args["latest"])) if args.get("latest") else None
        except InvalidOperation:
            return _Reply(200, {"ok": False, "error": "invalid_ts_latest"})
        inclusive = _truthy(args.get("inclusive", False))
        cursor_ts: Decimal | None = None
        if args.get("cursor"):
            try:
                decoded = base64.b64decode(str(args["cursor"])).decode()
                cursor_ts = _ts_key(decoded.removeprefix("next_ts:"))
            except (ValueError, InvalidOperation):
                return _Reply(200, {"ok": False, "error": "invalid_cursor"})
        with_meta = _truthy(args.get("include_all_metadata", False))

        def in_window(m: JSON) -> bool:
            key = _ts_key(m["ts"])
            if m.get("thread_ts") not in (None, m["ts"]) and not m.get("reply_broadcast"):
                return False
            if inclusive:
                ok = key >= oldest and (latest is None or key <= latest)
            else:
                ok = key > oldest and (latest is None or key < latest)
            return ok and (cursor_ts is None or key <= cursor_ts)

        matching = sorted(
            (m for m in chan.messages if in_window(m)), key=lambda m: _ts_key(m["ts"]), reverse=True
        )
        page = matching[:limit]
        has_more = len(matching) > limit
        out_msgs = []
        for m in page:
            item = {k: v for k, v in m.items() if k != "metadata" or with_meta}
            out_msgs.append(item)
        body: JSON = {
            "ok": True,
            "messages": out_msgs,
            "has_more": has_more,
            "pin_count": 0,
            "channel_actions_ts": None,
            "channel_actions_count": 0,
        }
        if has_more:
            nxt = base64.b64encode(f"next_ts:{matching[limit]['ts']}".encode()).decode()
            body["response_metadata"] = {"next_cursor": nxt}
        return _Reply(200, body)

    def _conversations_info(self, call: Call) -> _Reply:
        chan = self._find_channel(call.body.get("channel"))
        scope = self._scope_error(call.method, chan)
        if scope is not None:
            return scope
        if chan is None:
            return _Reply(200, {"ok": False, "error": "channel_not_found"})
        return _Reply(
            200,
            {
                "ok": True,
                "channel": {
                    "id": chan.id,
                    "name": chan.name,
                    "is_channel": not chan.is_private,
                    "is_group": False,
                    "is_im": False,
                    "is_mpim": False,
                    "is_private": chan.is_private,
                    "is_archived": chan.is_archived,
                    "is_general": chan.name == "general",
                    "is_member": chan.is_member,
                    "is_shared": False,
                    "is_ext_shared": False,
                    "is_org_shared": False,
                    "context_team_id": self.team_id,
                    "created": 1600000000,
                    "creator": "U0HUMAN01",
                },
            },
        )

    def _users_info(self, call: Call) -> _Reply:
        scope = self._scope_error(call.method)
        if scope is not None:
            return scope
        user = self._users.get(str(call.body.get("user", "")))
        if user is None:
            return _Reply(200, {"ok": False, "error": "user_not_found"})
        return _Reply(200, {"ok": True, "user": json.loads(json.dumps(user))})

    def _apps_connections_open(self, call: Call) -> _Reply:
        ticket = secrets.token_hex(16)
        self._tickets.add(ticket)
        url = f"ws://{self._host}:{self.port}/socket?ticket={ticket}&app_id={self.app_id}"
        return _Reply(200, {"ok": True, "url": url})

    # ---------------------------------------------------------------- webhooks, response_url

    @staticmethod
    def _payload_of(call: Call) -> JSON | None:
        """The JSON payload of a webhook / response_url POST (JSON or form ``payload=``)."""
        if call.body.get("__parse_error__"):
            return None
        if call.content_type == "application/json":
            return {k: v for k, v in call.body.items()}
        raw_payload = call.body.get("payload")
        if isinstance(raw_payload, str):
            value, parsed = _json_arg(raw_payload)
            return value if parsed and isinstance(value, dict) else None
        return None

    async def _handle_webhook(self, request: web.Request) -> web.StreamResponse:
        received_at = time.monotonic()
        call = await self._record(request, WEBHOOK, received_at)
        return await self._serve(request, call, WEBHOOK, self._webhook_post)

    def _webhook_post(self, call: Call) -> _Reply:
        hook = self._webhooks.get(call.path)
        if hook is None:
            return _Reply(404, "no_service")
        if hook.error is not None:
            return _Reply(WEBHOOK_ERROR_STATUS.get(hook.error, 400), hook.error)
        payload = self._payload_of(call)
        if payload is None:
            return _Reply(400, "invalid_payload")
        chan = self._channels.get(hook.channel) if hook.channel else None
        if chan is not None and chan.is_archived:
            return _Reply(410, "channel_is_archived")
        content, err = self._message_content(payload, require=True)
        if err is not None:
            assert isinstance(err.body, dict)
            return _Reply(400, str(err.body.get("error", "invalid_payload")))
        hook.posts.append(payload)
        if chan is not None:
            chan.messages.append(self._bot_message(content, self._next_ts()))
        return _Reply(200, "ok")

    async def _handle_response_url(self, request: web.Request) -> web.StreamResponse:
        received_at = time.monotonic()
        call = await self._record(request, RESPONSE_URL, received_at)
        return await self._serve(request, call, RESPONSE_URL, self._response_post)

    def _response_post(self, call: Call) -> _Reply:
        ru = self._response_urls.get(self._rid(call.path))
        if ru is None or ru.expired:
            return _Reply(404, {"ok": False, "error": "expired_url"})
        if len(ru.posts) >= RESPONSE_URL_MAX_USES:
            return _Reply(404, {"ok": False, "error": "used_url"})
        payload = self._payload_of(call)
        if payload is None:
            return _Reply(400, {"ok": False, "error": "invalid_payload"})
        needs_content = not _truthy(payload.get("delete_original", False))
        _, err = self._message_content(payload, require=needs_content)
        if err is not None:
            return _Reply(400, err.body)
        ru.posts.append(payload)
        return _Reply(200, {"ok": True})

    # ---------------------------------------------------------------- socket mode server

    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
        received_at = time.monotonic()
        call = await self._record(request, SOCKET, received_at)
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return self._respond(call, _Reply(401, "invalid_ticket"), text_type="text/plain")
        self._tickets.discard(ticket)
        ws = web.WebSocketResponse(autoping=True, timeout=2.0)
        await ws.prepare(request)
        call.status = 101
        self._socket_connects += 1
        conn = SocketConnection(id=self._socket_connects, ws=ws, connected_at=time.monotonic())
        self._sockets.append(conn)
        await ws.send_str(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": len(self.socket_connections),
                    "debug_info": {
                        "host": "applink-fake",
                        "build_number": 1,
                        "approximate_connection_time": 18060,
                    },
                    "connection_info": {"app_id": self.app_id},
                }
            )
        )
        await self._notify()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_socket_text(conn, msg.data)
        finally:
            conn.closed = True
            self._sockets.remove(conn)
            await self._notify()
        return ws

    async def _on_socket_text(self, conn: SocketConnection, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            message = {"__unparsed__": data}
        if not isinstance(message, dict):
            message = {"__unparsed__": data}
        conn.received.append(message)
        envelope_id = message.get("envelope_id")
        if isinstance(envelope_id, str):
            self._acks.setdefault(envelope_id, []).append((time.monotonic(), message))
        await self._notify()
