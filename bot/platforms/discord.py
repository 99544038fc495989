"""Discord as a platform: posts articles through discord.py, as the bot (to a channel id) or
through a webhook (`webhook:NAME`), and maps every discord.py / aiohttp error to our
`TransientError` / `PermanentError`, here and only here.

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
import logging
import re
from collections.abc import Callable, Iterable, Mapping

import aiohttp
import discord
from discord.http import MultipartParameters, Route

from bot.articles import Article
from bot.config import ConfigError, DiscordConfig, read_secret
from bot.config import webhook_env_name as config_webhook_env_name
from bot.platforms.base import FailureScope, PermanentError, SentRef, TransientError
from bot.render import RenderStyle, render_discord

log = logging.getLogger(__name__)

PLATFORM = "discord"
TOKEN_ENV = "DISCORD_TOKEN"
WEBHOOK_PREFIX = "webhook:"
NONCE_MAX_LENGTH = 25  # Discord answers a longer nonce with 400 (50035)
# discord.py sleeps out a 429 inside the call when Discord asks for at most this long (30 s is
# the smallest value it accepts); a longer wait comes back as RateLimited, and our outbox holds
# the channel for that long instead of keeping a send (and a delivery slot) waiting.
MAX_INLINE_RATE_LIMIT_WAIT_S = 30.0
# Webhook posts go through our own session: a hung connection ends as a retryable timeout.
WEBHOOK_TIMEOUT_S = 60.0
LOGIN_ATTEMPTS = 3

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
    10015: "Unknown Webhook",
    50001: "Missing Access",
    50013: "Missing Permissions",
    50027: "Invalid Webhook Token",
    50035: "Invalid Form Body",
}


def gateway_intents() -> discord.Intents:
    """Only `guilds`, which is not privileged. Slash commands arrive without any intent; this
    one keeps discord.py's guild state coherent (it warns without it). No message content,
    no members, no presences."""
    return discord.Intents(guilds=True)


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
    return config_webhook_env_name(PLATFORM, name)


def _code_label(code: int) -> str:
    name = _DISCORD_CODES.get(code)
    return f"{code} {name}" if name else str(code)


def _retry_after_s(exc: discord.HTTPException) -> float | None:
    """The wait a 429's `Retry-After` header names, if it names one."""
    headers = getattr(exc.response, "headers", None) or {}
    try:
        return max(0.0, float(headers["Retry-After"]))
    except (KeyError, TypeError, ValueError):
        return None


def classify_error(
    exc: BaseException, what: str, *, webhook: bool = False
) -> TransientError | PermanentError | None:
    """Our error for a discord.py / aiohttp failure while posting to `what` (e.g. "channel 1"),
    or None for an exception that is not a platform failure (a bug: let it surface)."""
    if isinstance(exc, discord.RateLimited):
        return TransientError(
            f"Discord rate limit on {what}: retry in {exc.retry_after:.1f} s", exc.retry_after
        )
    if isinstance(exc, discord.LoginFailure):
        return PermanentError(TOKEN_REFUSED, FailureScope.PLATFORM)
    if isinstance(exc, discord.HTTPException):
        status, code = exc.status, exc.code
        label = _code_label(code)
        if status == 429:
            # Only 429s discord.py would not wait out itself reach us: no `Via` header (a
            # Cloudflare ban) or a body that is not JSON. Never hammer: wait as told, or back off.
            return TransientError(f"Discord answered 429 for {what}", _retry_after_s(exc))
        if status >= 500:
            return TransientError(f"Discord answered {status} for {what}")
        if status == 401:
            if webhook:
                return PermanentError(
                    f"Discord refused the webhook token of {what} ({label}): the URL in "
                    f"{webhook_env_name(what.removeprefix(WEBHOOK_PREFIX))} is wrong or the "
                    "webhook was reset",
                    FailureScope.CHANNEL,
                )
            return PermanentError(TOKEN_REFUSED, FailureScope.PLATFORM)
        if status == 403:
            return PermanentError(
                f"Discord refused {what}: 403 {label} ({BOT_PERMISSIONS_HINT})",
                FailureScope.CHANNEL,
            )
        if status == 404:
            gone = "the webhook was deleted" if webhook else "the channel was deleted"
            return PermanentError(
                f"Discord does not know {what}: 404 {label} ({gone}, or the id is wrong)",
                FailureScope.CHANNEL,
            )
        # 400 and the rest of 4xx: Discord refused this payload. A rendering bug: keep the whole
        # reason (Discord's field errors) for whoever fixes it, and never retry it.
        detail = exc.text[:1500] if exc.text else ""
        return PermanentError(
            f"Discord rejected the message for {what}: {status} {label} {detail}".rstrip(),
            FailureScope.DELIVERY,
        )
    if isinstance(exc, CONNECTION_ERRORS):
        # Only the type and errno: aiohttp's messages can carry the request URL.
        errno = getattr(exc, "errno", None)
        suffix = f" (errno {errno})" if errno else ""
        return TransientError(f"connection to Discord failed for {what}: {type(exc).__name__}"
                              f"{suffix}")
    return None


class DiscordNotifier:
    """Posts to Discord channels (as the bot) and to `webhook:NAME` targets."""

    def __init__(
        self,
        token: str,
        config: DiscordConfig,
        style: RenderStyle,
        resolve_webhook: Callable[[str], str | None],
        *,
        login_attempts: int = LOGIN_ATTEMPTS,
    ) -> None:
        self._token = token
        self._config = config
        self._style = style
        self._resolve_webhook = resolve_webhook
        self._login_attempts = max(1, login_attempts)
        self._client: discord.Client | None = None
        self._webhook_session: aiohttp.ClientSession | None = None
        self._redactor = RedactSecrets([token])
        self._previous_base: str | None = None

    @property
    def platform(self) -> str:
        return PLATFORM

    @property
    def client(self) -> discord.Client:
        """The logged-in client (shared with the slash-command gateway)."""
        if self._client is None:
            raise RuntimeError("DiscordNotifier.start() has not succeeded")
        return self._client

    def _point_at_api(self) -> None:
        # discord.py has no per-client API address: every REST call (webhooks included) is
        # built on the class attribute `Route.BASE`, read each time a Route is made. Setting it
        # is how requests go through an HTTP proxy in front of Discord (or a test's fake).
        # The default setting leaves alone an address a program embedding us already chose.
        # The gateway address is separate (see DiscordGateway).
        if self._config.api_base_url == DiscordConfig().api_base_url:
            return
        self._previous_base = Route.BASE
        Route.BASE = self._config.api_base_url

    async def start(self) -> None:
        """Log in over REST (GET /users/@me, /oauth2/applications/@me). A refused token raises
        PermanentError(PLATFORM) naming DISCORD_TOKEN; so does an API that stays unreachable."""
        if self._client is not None:
            return
        for name in DISCORD_LOGGERS:
            logging.getLogger(name).addFilter(self._redactor)
        self._point_at_api()
        # newsbot has no voice: discord.py's warnings about missing voice libraries would only
        # puzzle an operator.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        for attempt in range(1, self._login_attempts + 1):
            client = discord.Client(
                intents=gateway_intents(), max_ratelimit_timeout=MAX_INLINE_RATE_LIMIT_WAIT_S
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

    async def send(self, delivery_key: str, channel: str, article: Article) -> SentRef:
        if channel.startswith(WEBHOOK_PREFIX):
            return await self._send_webhook(channel, article)
        what = f"channel {channel}"
        if not _CHANNEL_ID.fullmatch(channel):
            raise PermanentError(
                f"{channel!r} is not a Discord channel id (a number: enable Developer Mode, "
                "right-click the channel, Copy Channel ID) nor webhook:NAME",
                FailureScope.CHANNEL,
            )
        payload = render_discord(article, self._style)
        payload["nonce"] = nonce_for(delivery_key)
        payload["enforce_nonce"] = True  # a repeat returns the first message, not a new one
        # The raw payload, exactly as rendered (and tested against Discord's limits), through
        # discord.py's HTTP client, which paces sends by the rate-limit headers. When a post
        # empties the channel's bucket, discord.py sleeps out the reset before returning, after
        # Discord created the message: a stop during that sleep leaves the row `sending`, and
        # the next start resends it with the same nonce, which Discord answers with this post.
        params = MultipartParameters(payload=payload, multipart=None, files=None)
        try:
            data = await self.client.http.send_message(int(channel), params=params)
        except Exception as exc:
            error = classify_error(exc, what)
            if error is None:
                raise
            raise error from exc
        return SentRef(message_id=str(data["id"]))

    async def _send_webhook(self, channel: str, article: Article) -> SentRef:
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
        try:
            webhook = discord.Webhook.from_url(url, session=self._session())
        except ValueError:
            raise PermanentError(
                f"{variable} does not hold a Discord webhook URL "
                "(https://discord.com/api/webhooks/<id>/<token>)",
                FailureScope.CHANNEL,
            ) from None
        if webhook.token:
            self._redactor.secrets.add(webhook.token)
        payload = render_discord(article, self._style)
        embeds = [discord.Embed.from_dict(e) for e in payload["embeds"]]
        try:
            message = await webhook.send(
                embeds=embeds, allowed_mentions=discord.AllowedMentions.none(), wait=True
            )
        except Exception as exc:
            error = classify_error(exc, channel, webhook=True)
            if error is None:
                raise
            raise error from exc
        return SentRef(message_id=str(message.id))

    def _session(self) -> aiohttp.ClientSession:
        if self._webhook_session is None or self._webhook_session.closed:
            self._webhook_session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_S)
            )
        return self._webhook_session

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
        session, self._webhook_session = self._webhook_session, None
        if session is not None:
            await session.close()
        if self._previous_base is not None and self._config.api_base_url == Route.BASE:
            Route.BASE = self._previous_base
        self._previous_base = None
        for name in DISCORD_LOGGERS:
            logging.getLogger(name).removeFilter(self._redactor)


def create_discord_notifier(
    token: str, config: DiscordConfig, style: RenderStyle, environ: Mapping[str, str]
) -> DiscordNotifier:
    def resolve_webhook(variable: str) -> str | None:
        # Read when a post needs it, never from the config text: the URL is a secret.
        return read_secret(variable, environ)

    return DiscordNotifier(token, config, style, resolve_webhook)

