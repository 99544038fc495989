"""Discord as a platform: logs in and runs slash commands through discord.py, and posts articles
(as the bot to a channel id, or through a webhook, `webhook:NAME`) with Discord's REST API on
our own aiohttp session. Every failure is mapped to our `TransientError` / `PermanentError`,
here and only here.

Why posts don't go through discord.py's HTTP client: it waits inside the call whenever a
bucket is spent (after the request that spent it, and again on a 429), so a send would hold its
slot and its caller for seconds while other channels could go, and a wait would not survive a
restart. Here one post is one request and one answer: what Discord says about the bucket (the
`X-RateLimit-*` headers) goes back to the scheduler (bot/pacing.py), which decides.

Exactly-once: a bot post carries a `nonce` derived from the delivery key, with
`enforce_nonce`. Discord answers a repeated nonce from the same bot in the same channel, within a
few minutes, with the message it already created instead of posting again. So a send whose
outcome is unknown (a crash mid-send, a dropped connection, a 5xx after Discord stored the
message) is simply sent again with the same nonce: `find_sent` has nothing to look up. Webhook
executions take no nonce and the bot may not read the channel's history, so a crash during a
webhook post can, rarely, post it twice (docs/discord.md says so).

Secrets: the bot token and webhook URLs never appear in our messages. discord.py writes webhook
and interaction URLs (which carry tokens) and raw gateway events into its DEBUG lines, so while
the notifier runs those lines pass through `RedactSecrets`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord
from discord.http import Route

from bot.articles import Article
from bot.config import ConfigError, DiscordConfig, read_secret
from bot.digest import Digest
from bot.platforms.base import (
    FailureScope,
    PermanentError,
    RateLimit,
    RateScope,
    SentRef,
    TransientError,
)
from bot.platforms.registry import DISCORD
from bot.render import RenderStyle, render_discord
from bot.render.discord import render_discord_digest
from bot.tuning import Notice

log = logging.getLogger(__name__)

PLATFORM = "discord"
TOKEN_ENV = "DISCORD_TOKEN"
WEBHOOK_PREFIX = "webhook:"
NONCE_MAX_LENGTH = 25  # Discord answers a longer nonce with 400 (50035)
# discord.py may sleep out a 429 inside a call when Discord asks for at most this long (30 s is
# the smallest value it accepts). Only the slash commands' own calls go through it now.
MAX_INLINE_RATE_LIMIT_WAIT_S = 30.0
# A post whose answer does not come within this ends as a retryable timeout (it may have
# posted: the retry carries the same nonce).
POST_TIMEOUT_S = 30.0
LOGIN_ATTEMPTS = 3
THREAD_NAME_MAX = 100  # Discord's limit on a thread's name
THREAD_ARCHIVE_MINUTES = 1440  # a day without activity, then Discord archives it
THREAD_ALREADY_STARTED = 160004
UNKNOWN_MESSAGE = 10008
USER_AGENT = "DiscordBot (https://github.com/newsbot/newsbot, 0.1) newsbot"
_WEBHOOK_URL = re.compile(
    r"https?://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/api(?:/v\d+)?/webhooks/"
    r"(?P<id>\d{15,21})/(?P<token>[\w.-]{20,})/?"
)

TOKEN_REFUSED = (
    f"Discord refused the bot token (401 Unauthorized): set {TOKEN_ENV} (or {TOKEN_ENV}_FILE) "
    "to the token shown under Developer Portal > your application > Bot > Reset Token"
)
BOT_PERMISSIONS_HINT = "the bot needs View Channel, Send Messages and Embed Links there"

# Connection-level failures: the request may or may not have reached Discord. discord.py lets
# these through unretried (a reset is errno 104 on Linux, which it does not retry).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, OSError, TimeoutError)

# Loggers of discord.py that write tokens into DEBUG lines (webhook and interaction URLs carry
# theirs in the path; gateway events carry interaction tokens).
DISCORD_LOGGERS = (
    "discord.client",
    "discord.gateway",
    "discord.http",
    "discord.state",
    "discord.webhook.async_",
    "discord.interactions",
    "discord.app_commands.tree",
)
_URL_TOKEN = re.compile(r"(/(?:webhooks|interactions)/\d+/)[^/\s?'\"]+")
_TOKEN_FIELD = re.compile(r"""(['"]token['"]\s*:\s*['"])[^'"]*""")
_CHANNEL_ID = re.compile(r"\d{1,20}")
_DISCORD_CODES = {
    10003: "Unknown Channel",
    10008: "Unknown Message",
    10015: "Unknown Webhook",
    50001: "Missing Access",
    50013: "Missing Permissions",
    50027: "Invalid Webhook Token",
    50035: "Invalid Form Body",
}


def gateway_intents(reactions: bool = False) -> discord.Intents:
    """Only `guilds`, which is not privileged. Slash commands arrive without any intent; this
    one keeps discord.py's guild state coherent (it warns without it). No message content,
    no members, no presences. `reactions` (learning from reactions is on): also
    `guild_reactions` (GUILD_MESSAGE_REACTIONS, not privileged), for MESSAGE_REACTION_ADD and
    _REMOVE."""
    return discord.Intents(guilds=True, guild_reactions=reactions)


class RedactSecrets(logging.Filter):
    """Rewrites a log record so it carries no token: URL tokens and `"token": ...` fields are
    replaced, and so is any of the given secrets wherever it appears."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = {s for s in secrets if len(s) >= 8}

    def redact(self, text: str) -> str:
        text = _URL_TOKEN.sub(r"\1[redacted]", text)
        text = _TOKEN_FIELD.sub(r"\1[redacted]", text)
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is logging's to report, not ours
            return True
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def nonce_for(delivery_key: str) -> str:
    """A nonce of at most 25 characters, the same for every attempt of one delivery. A letter
    first: an all-digit string could be read as a number (a snowflake) by Discord."""
    digest = hashlib.sha256(delivery_key.encode("utf-8")).hexdigest()
    return "n" + digest[: NONCE_MAX_LENGTH - 1]


def webhook_env_name(name: str) -> str:
    """`webhook:eng-news` reads `DISCORD_WEBHOOK_ENG_NEWS` (or `_FILE`)."""
    variable = DISCORD.webhook_variable(WEBHOOK_PREFIX + name)
    assert variable is not None
    return variable


def _code_label(code: int) -> str:
    name = _DISCORD_CODES.get(code)
    return f"{code} {name}" if name else str(code)


def _header_float(headers: Mapping[str, str], name: str) -> float | None:
    try:
        return float(headers[name])
    except (KeyError, TypeError, ValueError):
        return None


def rate_limit_of(
    status: int, headers: Mapping[str, str], body: object
) -> RateLimit:
    """What an answer says about its rate-limit bucket: the `X-RateLimit-*` headers, and on a
    429 the wait (the body's `retry_after`, else `Retry-After`) and what it covers."""
    limit = _header_float(headers, "X-RateLimit-Limit")
    remaining = _header_float(headers, "X-RateLimit-Remaining")
    retry_after_s: float | None = None
    scope = RateScope.BUCKET
    if status == 429:
        data = body if isinstance(body, Mapping) else {}
        from_body = data.get("retry_after")
        if isinstance(from_body, int | float) and not isinstance(from_body, bool):
            retry_after_s = max(0.0, float(from_body))
        else:
            retry_after_s = _header_float(headers, "Retry-After")
        if retry_after_s is None:
            retry_after_s = 1.0  # a 429 that names no wait still means "not now"
        is_global = data.get("global") is True or headers.get("X-RateLimit-Global") == "true"
        # No `Via` header: Cloudflare, not Discord, refused us (an IP-wide ban in the making).
        if is_global or not headers.get("Via"):
            scope = RateScope.PLATFORM
    return RateLimit(
        bucket=headers.get("X-RateLimit-Bucket") or None,
        limit=int(limit) if limit is not None else None,
        remaining=int(remaining) if remaining is not None else None,
        reset_after_s=_header_float(headers, "X-RateLimit-Reset-After"),
        retry_after_s=retry_after_s,
        scope=scope,
    )


def classify_answer(
    status: int, body: object, text: str, rate: RateLimit, what: str, *, webhook: bool = False
) -> TransientError | PermanentError:
    """Our error for a refused post to `what` (e.g. "channel 1")."""
    code = body.get("code") if isinstance(body, Mapping) else None
    label = _code_label(code) if isinstance(code, int) else str(status)
    if status == 429:
        assert rate.retry_after_s is not None
        scope = "all requests" if rate.scope is RateScope.PLATFORM else what
        return TransientError(
            f"Discord rate limit on {scope}: retry in {rate.retry_after_s:.1f} s",
            rate.retry_after_s,
            rate=rate,
        )
    if status >= 500:
        # The request was read: Discord may have stored the post before failing.
        return TransientError(f"Discord answered {status} for {what}", maybe_sent=True, rate=rate)
    if status == 401:
        if webhook:
            return PermanentError(
                f"Discord refused the webhook token of {what} ({label}): the URL in "
                f"{webhook_env_name(what.removeprefix(WEBHOOK_PREFIX))} is wrong or the "
                "webhook was reset",
                FailureScope.CHANNEL,
                rate,
            )
        return PermanentError(TOKEN_REFUSED, FailureScope.PLATFORM, rate)
    if status == 403:
        return PermanentError(
            f"Discord refused {what}: 403 {label} ({BOT_PERMISSIONS_HINT})",
            FailureScope.CHANNEL,
            rate,
        )
    if status == 404 and code == UNKNOWN_MESSAGE:
        # An edit of a post someone deleted: that edit is over, the channel is fine.
        return PermanentError(
            f"Discord does not know {what}: 404 {label} (the post was deleted)",
            FailureScope.DELIVERY,
            rate,
        )
    if status == 404:
        gone = "the webhook was deleted" if webhook else "the channel was deleted"
        return PermanentError(
            f"Discord does not know {what}: 404 {label} ({gone}, or the id is wrong)",
            FailureScope.CHANNEL,
            rate,
        )
    # 400 and the rest of 4xx: Discord refused this payload. A rendering bug: keep the whole
    # reason (Discord's field errors) for whoever fixes it, and never retry it.
    errors = body.get("errors") if isinstance(body, Mapping) else None
    detail = "; ".join(field_errors(errors)) if errors else text
    return PermanentError(
        f"Discord rejected the message for {what}: {status} {label} {detail[:1500]}".rstrip(),
        FailureScope.DELIVERY,
        rate,
    )


def field_errors(errors: object, path: str = "") -> list[str]:
    """Discord's nested form errors as `embeds.0.description: Too long` lines."""
    if not isinstance(errors, Mapping):
        return []
    found: list[str] = []
    listed = errors.get("_errors")
    if isinstance(listed, list):
        messages = ", ".join(
            str(e.get("message", e.get("code", "?"))) for e in listed if isinstance(e, Mapping)
        )
        found.append(f"{path or 'message'}: {messages}")
    for name, nested in errors.items():
        if name != "_errors":
            found += field_errors(nested, f"{path}.{name}" if path else str(name))
    return found


def classify_error(exc: BaseException, what: str) -> TransientError | PermanentError | None:
    """Our error for a discord.py / aiohttp failure of a call made through discord.py (the
    login), or None for an exception that is not a platform failure (a bug: let it surface)."""
    if isinstance(exc, discord.RateLimited):
        return TransientError(
            f"Discord rate limit on {what}: retry in {exc.retry_after:.1f} s", exc.retry_after
        )
    if isinstance(exc, discord.LoginFailure):
        return PermanentError(TOKEN_REFUSED, FailureScope.PLATFORM)
    if isinstance(exc, discord.HTTPException):
        if exc.status == 401:
            return PermanentError(TOKEN_REFUSED, FailureScope.PLATFORM)
        if exc.status == 429 or exc.status >= 500:
            return TransientError(f"Discord answered {exc.status} for {what}")
        return PermanentError(
            f"Discord refused {what}: {exc.status} {_code_label(exc.code)}", FailureScope.CHANNEL
        )
    if isinstance(exc, CONNECTION_ERRORS):
        return connection_failure(exc, what)
    return None


def connection_failure(exc: BaseException, what: str) -> TransientError:
    # Only the type and errno: aiohttp's messages can carry the request URL.
    errno = getattr(exc, "errno", None)
    suffix = f" (errno {errno})" if errno else ""
    return TransientError(
        f"connection to Discord failed for {what}: {type(exc).__name__}{suffix}", maybe_sent=True
    )


@dataclass(frozen=True, slots=True)
class Answer:
    """One answer of Discord's REST API, as the adapter reads it."""

    status: int
    headers: Mapping[str, str]
    body: object  # parsed JSON, or None
    text: str


class DiscordNotifier:
    """Posts to Discord channels (as the bot) and to `webhook:NAME` targets. Without a bot
    token, only webhook targets work (and slash commands are off)."""

    def __init__(
        self,
        token: str | None,
        config: DiscordConfig,
        style: RenderStyle,
        resolve_webhook: Callable[[str], str | None],
        *,
        login_attempts: int = LOGIN_ATTEMPTS,
        post_timeout_s: float = POST_TIMEOUT_S,
        reactions: bool = False,
    ) -> None:
        self._token = token
        self._reactions = reactions
        self._config = config
        self._style = style
        self._resolve_webhook = resolve_webhook
        self._login_attempts = max(1, login_attempts)
        self._post_timeout_s = post_timeout_s
        self._client: discord.Client | None = None
        self._session: aiohttp.ClientSession | None = None
        self._redactor = RedactSecrets([token] if token else [])
        self._previous_base: str | None = None

    @property
    def platform(self) -> str:
        return PLATFORM

    @property
    def has_bot(self) -> bool:
        """A bot token is set: posts to channel ids and slash commands are possible."""
        return self._token is not None

    @property
    def client(self) -> discord.Client:
        """The logged-in client (shared with the slash-command gateway)."""
        if self._client is None:
            raise RuntimeError("DiscordNotifier.start() has not logged in a bot")
        return self._client

    def _point_at_api(self) -> None:
        # discord.py has no per-client API address: every REST call it makes is built on the
        # class attribute `Route.BASE`, read each time a Route is made. Setting it is how its
        # requests go through an HTTP proxy in front of Discord (or a test's fake). The default
        # setting leaves alone an address a program embedding us already chose. The gateway
        # address is separate (see DiscordGateway).
        if self._config.api_base_url == DiscordConfig().api_base_url:
            return
        self._previous_base = Route.BASE
        Route.BASE = self._config.api_base_url

    @property
    def api_base(self) -> str:
        """Where our own requests go: the configured API, or (left at Discord's own) the one
        discord.py was pointed at by whoever embeds us."""
        if self._config.api_base_url != DiscordConfig().api_base_url:
            return self._config.api_base_url
        return Route.BASE.rstrip("/")

    async def start(self) -> None:
        """Log in over REST (GET /users/@me, /oauth2/applications/@me). A refused token raises
        PermanentError(PLATFORM) naming DISCORD_TOKEN; so does an API that stays unreachable.
        Without a token there is nothing to log in: webhook targets post all the same."""
        if self._client is not None:
            return
        for name in DISCORD_LOGGERS:
            logging.getLogger(name).addFilter(self._redactor)
        self._point_at_api()
        if self._token is None:
            return  # webhook targets only: the start-up line said slash commands are off
        # newsbot has no voice: discord.py's warnings about missing voice libraries would only
        # puzzle an operator.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        for attempt in range(1, self._login_attempts + 1):
            client = discord.Client(
                intents=gateway_intents(self._reactions),
                max_ratelimit_timeout=MAX_INLINE_RATE_LIMIT_WAIT_S,
            )
            try:
                await client.login(self._token)
            except BaseException as exc:
                # Each login opens its own HTTP session: close it before trying again.
                await client.close()
                error = classify_error(exc, "login")
                if error is None:
                    raise
                if isinstance(error, PermanentError):
                    if error.scope is not FailureScope.PLATFORM:
                        # Refused, but not as a bad token (a proxy's 403, say): still fatal.
                        error = PermanentError(
                            f"Discord refused the login ({error.reason}); check {TOKEN_ENV} "
                            "and [discord] api_base_url",
                            FailureScope.PLATFORM,
                        )
                    raise error from None
                if attempt == self._login_attempts:
                    raise PermanentError(
                        f"cannot reach Discord's API at {self._config.api_base_url} "
                        f"({error.reason}); check [discord] api_base_url and the network",
                        FailureScope.PLATFORM,
                    ) from None
                log.warning("discord: login failed (%s); retrying", error.reason)
                await asyncio.sleep(2.0 ** (attempt - 1))
                continue
            self._client = client
            user = client.user
            log.info(
                "discord: logged in as %s (application %s)",
                user.name if user else "?",
                client.application_id,
            )
            return

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._post_timeout_s),
                headers={"User-Agent": USER_AGENT},
            )
        return self._session

    async def _post(
        self, path: str, payload: Mapping[str, Any] | None, what: str, *, bot: bool,
        method: str = "POST",
    ) -> Answer:
        """One request, one answer; no retry and no wait here (the scheduler decides)."""
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        if bot and self._token:
            headers["Authorization"] = f"Bot {self._token}"
        data = json.dumps(payload) if payload is not None else None
        try:
            async with self._http().request(
                method, self.api_base + path, data=data, headers=headers
            ) as response:
                text = await response.text(encoding="utf-8", errors="replace")
                return Answer(response.status, response.headers, _json_or_none(text), text)
        except CONNECTION_ERRORS as exc:
            raise connection_failure(exc, what) from None

    async def send(
        self, delivery_key: str, channel: str, article: Article, mention: str | None = None
    ) -> SentRef:
        payload = render_discord(article, self._style, mention)
        return await self._create(delivery_key, channel, payload)

    async def send_digest(
        self, delivery_key: str, channel: str, digest: Digest, mention: str | None = None
    ) -> SentRef:
        payload = render_discord_digest(digest, self._style, mention)
        return await self._create(delivery_key, channel, payload)

    async def _create(self, delivery_key: str, channel: str, payload: dict[str, Any]) -> SentRef:
        """Post a rendered message, as the bot (with a nonce) or through a webhook."""
        if channel.startswith(WEBHOOK_PREFIX):
            return await self._send_webhook(channel, payload)
        what = f"channel {channel}"
        if not _CHANNEL_ID.fullmatch(channel):
            raise PermanentError(
                f"{channel!r} is not a Discord channel id (a number: enable Developer Mode, "
                "right-click the channel, Copy Channel ID) nor webhook:NAME",
                FailureScope.CHANNEL,
            )
        if self._token is None:
            # The same words as the start-up rule, so a restart with the token resumes it.
            assert DISCORD.bot_secret is not None
            raise PermanentError(DISCORD.bot_secret.missing(), FailureScope.CHANNEL)
        payload = {**payload, "nonce": nonce_for(delivery_key)}
        payload["enforce_nonce"] = True  # a repeat returns the first message, not a new one
        answer = await self._post(f"/channels/{channel}/messages", payload, what, bot=True)
        return self._sent_or_raise(answer, what, webhook=False)

    def _sent_or_raise(self, answer: Answer, what: str, *, webhook: bool) -> SentRef:
        rate = rate_limit_of(answer.status, answer.headers, answer.body)
        if 200 <= answer.status < 300 and isinstance(answer.body, Mapping):
            return SentRef(message_id=str(answer.body.get("id", "")), rate=rate)
        if 200 <= answer.status < 300:
            # Accepted, but not the message we asked to see: posted all the same.
            return SentRef(message_id="", rate=rate)
        raise classify_answer(answer.status, answer.body, answer.text, rate, what, webhook=webhook)

    def _webhook(self, channel: str) -> tuple[str, str]:
        """(id, token) of a `webhook:NAME` target, from the URL in its variable."""
        name = channel.removeprefix(WEBHOOK_PREFIX)
        variable = webhook_env_name(name)
        if not name:
            raise PermanentError(
                "a webhook target needs a name: webhook:NAME", FailureScope.CHANNEL
            )
        try:
            url = self._resolve_webhook(variable)
        except ConfigError as exc:
            raise PermanentError(str(exc), FailureScope.CHANNEL) from None
        if not url:
            raise PermanentError(
                f"{channel}: set {variable} (or {variable}_FILE) to the webhook's URL",
                FailureScope.CHANNEL,
            )
        match = _WEBHOOK_URL.fullmatch(url.strip())
        if match is None:
            raise PermanentError(
                f"{variable} does not hold a Discord webhook URL "
                "(https://discord.com/api/webhooks/<id>/<token>)",
                FailureScope.CHANNEL,
            )
        self._redactor.secrets.add(match["token"])
        return match["id"], match["token"]

    async def _send_webhook(self, channel: str, payload: dict[str, Any]) -> SentRef:
        webhook_id, token = self._webhook(channel)
        # Like discord.py, to the API we were pointed at, whatever host the URL names.
        path = f"/webhooks/{webhook_id}/{token}?wait=true"
        answer = await self._post(path, payload, channel, bot=False)
        return self._sent_or_raise(answer, channel, webhook=True)

    def fingerprint(self, channel: str, article: Article) -> str:
        payload = render_discord(article, self._style)
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    async def edit(
        self, channel: str, message_id: str, article: Article, mention: str | None = None
    ) -> SentRef:
        # The mention again: Discord reads `allowed_mentions` anew on an edit (it pings no one
        # on an edit, but the message would stop showing the role as mentioned).
        payload = render_discord(article, self._style, mention)
        if channel.startswith(WEBHOOK_PREFIX):
            webhook_id, token = self._webhook(channel)
            path = f"/webhooks/{webhook_id}/{token}/messages/{message_id}"
            answer = await self._post(path, payload, channel, bot=False, method="PATCH")
            return self._sent_or_raise(answer, channel, webhook=True)
        what = f"message {message_id} in channel {channel}"
        self._check_bot_channel(channel)
        answer = await self._post(
            f"/channels/{channel}/messages/{message_id}", payload, what, bot=True,
            method="PATCH",
        )
        return self._sent_or_raise(answer, what, webhook=False)

    async def reply(
        self, delivery_key: str, channel: str, parent: SentRef, article: Article
    ) -> SentRef:
        """A thread on the post (its id is the post's), then the article in it. Webhook
        targets cannot start threads: their late coverage is shown as edits instead."""
        if channel.startswith(WEBHOOK_PREFIX):
            return await self.edit(channel, parent.message_id, article)
        self._check_bot_channel(channel)
        thread = parent.thread_ref
        if thread is None:
            what = f"a thread on message {parent.message_id} in channel {channel}"
            name = " ".join(article.title.split())[:THREAD_NAME_MAX] or "More coverage"
            answer = await self._post(
                f"/channels/{channel}/messages/{parent.message_id}/threads",
                {"name": name, "auto_archive_duration": THREAD_ARCHIVE_MINUTES},
                what, bot=True,
            )
            code = answer.body.get("code") if isinstance(answer.body, Mapping) else None
            if answer.status >= 300 and code != THREAD_ALREADY_STARTED:
                self._sent_or_raise(answer, what, webhook=False)
            thread = parent.message_id  # a thread started from a message has its id
        payload = render_discord(article, self._style)
        payload["nonce"] = nonce_for(delivery_key)
        payload["enforce_nonce"] = True
        what = f"thread {thread} of channel {channel}"
        answer = await self._post(f"/channels/{thread}/messages", payload, what, bot=True)
        sent = self._sent_or_raise(answer, what, webhook=False)
        return SentRef(sent.message_id, sent.rate, thread_ref=thread)

    async def retract(self, channel: str, message_id: str) -> SentRef:
        bot = not channel.startswith(WEBHOOK_PREFIX)
        if bot:
            self._check_bot_channel(channel)
            path = f"/channels/{channel}/messages/{message_id}"
            what = f"message {message_id} in channel {channel}"
        else:
            webhook_id, token = self._webhook(channel)
            path, what = f"/webhooks/{webhook_id}/{token}/messages/{message_id}", channel
        answer = await self._post(path, None, what, bot=bot, method="DELETE")
        code = answer.body.get("code") if isinstance(answer.body, Mapping) else None
        if answer.status == 404 and code == UNKNOWN_MESSAGE:
            return SentRef(message_id=message_id)  # already gone
        if answer.status >= 300:
            self._sent_or_raise(answer, what, webhook=not bot)
        rate = rate_limit_of(answer.status, answer.headers, answer.body)
        return SentRef(message_id=message_id, rate=rate)

    def _check_bot_channel(self, channel: str) -> None:
        if not _CHANNEL_ID.fullmatch(channel):
            raise PermanentError(
                f"{channel!r} is not a Discord channel id (a number: enable Developer Mode, "
                "right-click the channel, Copy Channel ID) nor webhook:NAME",
                FailureScope.CHANNEL,
            )
        if self._token is None:
            raise PermanentError(
                f"posting to channel {channel} needs the bot: set {TOKEN_ENV} (or "
                f"{TOKEN_ENV}_FILE), or use a webhook target (webhook:NAME)",
                FailureScope.CHANNEL,
            )

    async def post_notice(self, notice: Notice) -> str | None:
        """A message of ours with buttons (learning from reactions): text made inert, nobody
        pinged. Only as the bot: a webhook's message cannot carry our buttons."""
        from bot.platforms.discord_commands import discord_text, notice_components

        if notice.channel.startswith(WEBHOOK_PREFIX) or not self._token:
            return None
        self._check_bot_channel(notice.channel)
        payload: dict[str, Any] = {
            "content": discord_text(notice.text),
            "allowed_mentions": {"parse": []},
            "components": notice_components(notice.buttons),
        }
        what = f"channel {notice.channel}"
        answer = await self._post(f"/channels/{notice.channel}/messages", payload, what, bot=True)
        return self._sent_or_raise(answer, what, webhook=False).message_id or None

    async def find_sent(self, delivery_key: str, channel: str) -> SentRef | None:
        # Nothing to look up: the bot may not read history (it asks for no Read Message History),
        # and it need not. The resend carries the same nonce, and within Discord's nonce window
        # (a few minutes) Discord answers it with the message already posted. Webhooks have no
        # nonce: a crash in the middle of a webhook post can post it twice (documented).
        return None

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        if self._previous_base is not None and self._config.api_base_url == Route.BASE:
            Route.BASE = self._previous_base
        self._previous_base = None
        for name in DISCORD_LOGGERS:
            logging.getLogger(name).removeFilter(self._redactor)


def _json_or_none(text: str) -> object:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def create_discord_notifier(
    token: str | None,
    config: DiscordConfig,
    style: RenderStyle,
    environ: Mapping[str, str],
    reactions: bool = False,
) -> DiscordNotifier:
    def resolve_webhook(variable: str) -> str | None:
        # Read when a post needs it, never from the config text: the URL is a secret.
        return read_secret(variable, environ)

    return DiscordNotifier(token, config, style, resolve_webhook, reactions=reactions)

