"""Slack as a platform: posts articles with `chat.postMessage` (or to incoming webhooks) through
slack_sdk, and maps every Slack error to our `TransientError` / `PermanentError`, here and only
here.

Exactly-once: each post carries its delivery key in the message `metadata`. Slack has no
idempotency key of its own, so when an outcome is unknown (a crash mid-send, a dropped
connection, a 5xx after Slack may have stored the message) we look for the key in the channel's
recent history before posting again. Incoming webhooks have no history: there a crash mid-send
can, rarely, post twice (docs/slack.md says so).

Secrets (the bot token, webhook URLs) never appear in our messages or logs: errors name the
environment variable and Slack's error code, nothing else.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.articles import Article
from bot.clock import Clock, SystemClock
from bot.config import ConfigError, SlackConfig, read_secret
from bot.digest import Digest
from bot.platforms.base import FailureScope, PermanentError, SentRef, TransientError
from bot.platforms.registry import SLACK
from bot.render import RenderStyle, render_slack
from bot.render.common import trim_text, utf16_len
from bot.render.slack import escape_mrkdwn, render_slack_digest
from bot.tuning import Action, Button, Notice

log = logging.getLogger(__name__)

BOT_TOKEN_ENV = "SLACK_BOT_TOKEN"
WEBHOOK_PREFIX = "webhook:"
PLATFORM = "slack"
METADATA_EVENT_TYPE = "newsbot_delivery"

# How far back `find_sent` looks, and how many pages of 200 messages at most: a restart after
# a crash normally comes within minutes; three days covers a weekend outage.
HISTORY_WINDOW_S = 3 * 24 * 3600.0
HISTORY_PAGE_SIZE = 200
HISTORY_MAX_PAGES = 10
# A history lookup is retried this often (waiting as Slack says, at most LOOKUP_WAIT_CAP_S) before
# we give up and let delivery decide: a failed lookup risks a duplicate, so it tries a little.
LOOKUP_ATTEMPTS = 3
LOOKUP_WAIT_CAP_S = 10.0
REQUEST_TIMEOUT_S = 15

# Slack's error codes, by what they stop. Anything not listed is retried with backoff (bounded
# by the delivery policy): an unknown code costs a few retries, never a lost post.
PLATFORM_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "not_allowed_token_type",
        "team_access_not_granted",
        "ekm_access_denied",
        "org_login_required",
        "enterprise_is_restricted",
        # The install lacks a scope (chat:write): the same for every channel, fixed by
        # reinstalling the app, so it stops the platform rather than parking channels one by one.
        "missing_scope",
    }
)
CHANNEL_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "restricted_action",
        "restricted_action_read_only_channel",
        "restricted_action_thread_only_channel",
        "restricted_action_non_threadable_channel",
        "cannot_post_in_channel",
        "team_not_found",
    }
)
DELIVERY_ERRORS = frozenset(
    {
        # An edit of a post someone deleted, or one Slack no longer lets us change.
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "no_text",
        "invalid_arguments",
        "invalid_metadata_format",
        "invalid_metadata_schema",
        "metadata_too_large",
        "metadata_must_be_sent_from_app",
        "invalid_attachments",
        "too_many_attachments",
        "invalid_json",
        "json_not_object",
    }
)
PLATFORM_HINTS = {
    "missing_scope": "the app lacks a scope it needs; reinstall it from slack-app-manifest.yaml",
    "not_allowed_token_type": (
        "that is not a bot token; use the Bot User OAuth Token (xoxb-…), not the app-level "
        "token (xapp-…)"
    ),
}
DEFAULT_PLATFORM_HINT = (
    "check that it is the Bot User OAuth Token (xoxb-…) of an app installed in this workspace, "
    "and that [slack] api_base_url points at that workspace's API"
)

# Failures of the connection itself. After one, Slack may or may not have stored the post.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, aiohttp.ClientError, OSError)


def retry_after_s(headers: Mapping[str, Any] | None) -> float | None:
    """Slack's `Retry-After` (integer seconds), or None when absent or unreadable."""
    if not headers:
        return None
    raw = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
    try:
        value = float(str(raw).strip()) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and value >= 0 else None


def classify_api_error(
    status: int, error: str, headers: Mapping[str, Any] | None, what: str
) -> TransientError | PermanentError:
    """One Web API failure as our error. `what` names the target in the reason (no secrets)."""
    if status == 429 or error in ("ratelimited", "rate_limited"):
        return TransientError(f"rate limited by Slack ({what})", retry_after_s(headers))
    if status >= 500:
        return TransientError(f"Slack answered HTTP {status} ({error or 'server error'})")
    if error in PLATFORM_ERRORS:
        hint = PLATFORM_HINTS.get(error, DEFAULT_PLATFORM_HINT)
        return PermanentError(
            f"Slack refused the token in {BOT_TOKEN_ENV} ({error}): {hint}", FailureScope.PLATFORM
        )
    if error in CHANNEL_ERRORS:
        return PermanentError(f"Slack refused {what}: {error}", FailureScope.CHANNEL)
    if error in DELIVERY_ERRORS:
        return PermanentError(f"Slack rejected the message ({error})", FailureScope.DELIVERY)
    return TransientError(f"Slack error {error or f'HTTP {status}'} ({what})")


def api_error_parts(exc: SlackApiError) -> tuple[int, dict[str, Any], Mapping[str, Any]]:
    """Status, JSON body and headers of a failed call. slack_sdk usually attaches its own
    response object, but a body that is not JSON leaves the raw aiohttp response there."""
    response = exc.response
    status = getattr(response, "status_code", None) or getattr(response, "status", None) or 0
    data = getattr(response, "data", None)
    headers = getattr(response, "headers", None)
    return int(status), data if isinstance(data, dict) else {}, headers or {}


def classify_sdk_error(exc: SlackApiError, what: str) -> TransientError | PermanentError:
    status, body, headers = api_error_parts(exc)
    error = str(body.get("error") or "")
    mapped = classify_api_error(status, error, headers, what)
    if error in ("invalid_blocks", "invalid_arguments") and isinstance(mapped, PermanentError):
        # Slack says which field was wrong: worth keeping for the rendering bug report.
        metadata = body.get("response_metadata")
        messages = metadata.get("messages") if isinstance(metadata, dict) else None
        if isinstance(messages, list) and messages:
            detail = "; ".join(str(m) for m in messages[:3])
            return PermanentError(f"{mapped.reason}: {detail}", mapped.scope)
    return mapped


def classify_webhook_status(
    status: int, body: str, headers: Mapping[str, Any] | None, name: str
) -> TransientError | PermanentError | None:
    """An incoming webhook's answer (it returns statuses rather than raising); None when ok."""
    if status == 200:
        return None
    code = body.strip()[:100] if body and len(body) < 200 else f"HTTP {status}"
    what = f"webhook {name}"
    if status == 429:
        return TransientError(f"rate limited by Slack ({what})", retry_after_s(headers))
    if status >= 500:
        return TransientError(f"Slack answered HTTP {status} for {what} ({code})")
    if status in (403, 404, 410):
        # The hook was removed, its channel archived or the app uninstalled: nothing we can
        # send there will work until someone sets a new URL.
        return PermanentError(f"Slack refused {what}: {code}", FailureScope.CHANNEL)
    if status == 400:
        return PermanentError(f"Slack rejected the message for {what} ({code})",
                              FailureScope.DELIVERY)
    return TransientError(f"Slack answered HTTP {status} for {what} ({code})")


def webhook_env_name(name: str) -> str:
    """`webhook:eng-news` reads `SLACK_WEBHOOK_ENG_NEWS` (or `_FILE`)."""
    variable = SLACK.webhook_variable(WEBHOOK_PREFIX + name)
    assert variable is not None
    return variable


def delivery_metadata(delivery_key: str) -> dict[str, Any]:
    return {"event_type": METADATA_EVENT_TYPE, "event_payload": {"delivery_key": delivery_key}}


def carries_key(message: Mapping[str, Any], delivery_key: str) -> bool:
    metadata = message.get("metadata")
    if not isinstance(metadata, Mapping) or metadata.get("event_type") != METADATA_EVENT_TYPE:
        return False
    payload = metadata.get("event_payload")
    return isinstance(payload, Mapping) and payload.get("delivery_key") == delivery_key


def quiet_sdk_logger() -> logging.Logger:
    """A logger for slack_sdk's webhook client, which writes the full URL (a secret) into its
    DEBUG lines whenever its own logger's level is DEBUG or unset."""
    logger = logging.getLogger("bot.platforms.slack.sdk")
    logger.setLevel(logging.INFO)
    return logger


WebhookResolver = Callable[[str], str | None]

NOTICE_TEXT_LIMIT = 2900  # a section's text is at most 3000 characters
MAX_NOTICE_BUTTONS = 25  # an actions block holds at most 25 elements
_BUTTON_STYLE = {Action.APPLY: "primary", Action.UNDO: "danger"}  # dismiss: Slack's default


def notice_blocks(text: str, buttons: tuple[Button, ...]) -> list[dict[str, Any]]:
    """A notice (learning from reactions) as Block Kit: its text made inert, its buttons in
    one actions block (each button's `action_id` is the custom id the press comes back with)."""
    shown = trim_text(escape_mrkdwn(text), NOTICE_TEXT_LIMIT, measure=utf16_len)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": shown or "newsbot"}}
    ]
    if buttons:
        elements = []
        for button in buttons[:MAX_NOTICE_BUTTONS]:
            element: dict[str, Any] = {
                "type": "button",
                "text": {"type": "plain_text", "text": button.label[:75]},
                "action_id": button.custom_id,
                "value": button.custom_id,
            }
            if button.action in _BUTTON_STYLE:
                element["style"] = _BUTTON_STYLE[button.action]
            elements.append(element)
        blocks.append({"type": "actions", "elements": elements})
    return blocks


class SlackNotifier:
    """Posts to Slack channels (by id) and to `webhook:NAME` targets."""

    def __init__(
        self,
        client: AsyncWebClient,
        style: RenderStyle,
        resolve_webhook: WebhookResolver,
        clock: Clock,
        *,
        history_window_s: float = HISTORY_WINDOW_S,
        webhook_timeout_s: int = REQUEST_TIMEOUT_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._client = client
        self._style = style
        self._resolve_webhook = resolve_webhook
        self._clock = clock
        self._history_window_s = history_window_s
        self._webhook_timeout_s = webhook_timeout_s
        self._sleep = sleep
        self._webhook_logger = quiet_sdk_logger()
        self._history_unavailable_reported = False
        self.bot_user_id: str | None = None
        self.team_id: str | None = None

    @property
    def platform(self) -> str:
        return "slack"

    @property
    def has_bot(self) -> bool:
        """A bot token is set: posts to channel ids are possible (webhooks need none)."""
        return self._client.token is not None

    @property
    def client(self) -> AsyncWebClient:
        """The bot-token Web API client (the command receivers use it for `users.info`)."""
        return self._client

    async def start(self) -> None:
        """`auth.test`: a refused token stops start-up; an unreachable Slack only warns (the
        posts wait in the outbox and are retried). Without a token there is nothing to check:
        webhook targets post all the same."""
        if not self.has_bot:
            return
        try:
            response = await self._client.auth_test()
        except SlackApiError as exc:
            mapped = classify_sdk_error(exc, "auth.test")
            if isinstance(mapped, PermanentError):
                raise PermanentError(mapped.reason, FailureScope.PLATFORM) from None
            log.warning("could not check %s with Slack yet: %s", BOT_TOKEN_ENV, mapped.reason)
            return
        except CONNECTION_ERRORS as exc:
            log.warning(
                "could not reach Slack to check %s (%s); posts wait and are retried",
                BOT_TOKEN_ENV, type(exc).__name__,
            )
            return
        self.bot_user_id = _str_or_none(response.get("user_id"))
        self.team_id = _str_or_none(response.get("team_id"))
        log.info("slack: signed in as %s in team %s", response.get("user"), self.team_id)
        self._warn_about_scopes(response.headers)

    def _warn_about_scopes(self, headers: Mapping[str, Any] | None) -> None:
        granted = next(
            (str(v) for k, v in (headers or {}).items() if str(k).lower() == "x-oauth-scopes"),
            None,
        )
        if granted is None:
            return
        scopes = {s.strip() for s in granted.split(",")}
        if "chat:write" not in scopes:
            log.error("slack: the app lacks the chat:write scope; reinstall it from the manifest")
        if "channels:history" not in scopes:
            log.warning(
                "slack: without channels:history the bot cannot check, after a crash, whether a "
                "post already went out; a rare duplicate is possible"
            )

    async def send(
        self, delivery_key: str, channel: str, article: Article, mention: str | None = None
    ) -> SentRef:
        message = render_slack(article, self._style, mention).to_payload()
        return await self._create(delivery_key, channel, message)

    async def send_digest(
        self, delivery_key: str, channel: str, digest: Digest, mention: str | None = None
    ) -> SentRef:
        message = render_slack_digest(digest, self._style, mention).to_payload()
        return await self._create(delivery_key, channel, message)

    async def _create(
        self, delivery_key: str, channel: str, message: Mapping[str, Any]
    ) -> SentRef:
        if channel.startswith(WEBHOOK_PREFIX):
            return await self._send_webhook(delivery_key, channel, message)
        return await self._post(delivery_key, channel, message)

    async def _post(
        self,
        delivery_key: str,
        channel: str,
        message: Mapping[str, Any],
        thread_ts: str | None = None,
    ) -> SentRef:
        what = f"channel {channel}"
        self._need_bot()
        try:
            response = await self._client.chat_postMessage(
                channel=channel,
                metadata=delivery_metadata(delivery_key),
                thread_ts=thread_ts,
                **message,
            )
        except SlackApiError as exc:
            mapped = classify_sdk_error(exc, what)
            if api_error_parts(exc)[0] >= 500 and isinstance(mapped, TransientError):
                # Slack may have stored the post before failing: the deliverer looks in the
                # channel's history (find_sent) before the next attempt.
                mapped.maybe_sent = True
            raise mapped from None
        except CONNECTION_ERRORS as exc:
            raise TransientError(
                f"no answer from Slack ({type(exc).__name__})", maybe_sent=True
            ) from None
        return SentRef(message_id=str(response.get("ts", "")), thread_ref=thread_ts)

    async def post_notice(self, notice: Notice) -> str | None:
        """A message of ours with buttons in a channel (not through a webhook: its message
        could not carry them); its ts, or None."""
        if notice.channel.startswith(WEBHOOK_PREFIX) or not self.has_bot:
            return None
        blocks = notice_blocks(notice.text, notice.buttons)
        try:
            response = await self._client.chat_postMessage(
                channel=notice.channel,
                text=blocks[0]["text"]["text"],
                blocks=blocks,
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as exc:
            raise classify_sdk_error(exc, f"channel {notice.channel}") from None
        except CONNECTION_ERRORS as exc:
            raise TransientError(f"no answer from Slack ({type(exc).__name__})") from None
        return str(response.get("ts", "")) or None

    def _need_bot(self) -> None:
        if not self.has_bot:
            # The same words as the start-up rule, so a restart with the token resumes it.
            assert SLACK.bot_secret is not None
            raise PermanentError(SLACK.bot_secret.missing(), FailureScope.CHANNEL)

    def fingerprint(self, channel: str, article: Article) -> str:
        payload = render_slack(article, self._style).to_payload()
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    async def edit(
        self, channel: str, message_id: str, article: Article, mention: str | None = None
    ) -> SentRef:
        if channel.startswith(WEBHOOK_PREFIX):
            raise PermanentError(
                f"{channel}: Slack's incoming webhooks cannot change a message they posted; "
                "subscribe a channel id (with the bot) for posts that follow their story",
                FailureScope.DELIVERY,
            )
        self._need_bot()
        # The mention again: an update replaces the text, and Slack pings no one for it.
        message = render_slack(article, self._style, mention).to_payload()
        what = f"message {message_id} in channel {channel}"
        try:
            await self._client.chat_update(channel=channel, ts=message_id, **message)
        except SlackApiError as exc:
            raise classify_sdk_error(exc, what) from None
        except CONNECTION_ERRORS as exc:
            # An edit is safe to repeat: it shows the same either way.
            raise TransientError(f"no answer from Slack ({type(exc).__name__})") from None
        return SentRef(message_id=message_id)

    async def retract(self, channel: str, message_id: str) -> SentRef:
        if channel.startswith(WEBHOOK_PREFIX):
            raise PermanentError(
                f"{channel}: Slack's incoming webhooks cannot delete a message they posted",
                FailureScope.DELIVERY,
            )
        self._need_bot()
        what = f"message {message_id} in channel {channel}"
        try:
            await self._client.chat_delete(channel=channel, ts=message_id)
        except SlackApiError as exc:
            if api_error_parts(exc)[1].get("error") == "message_not_found":
                return SentRef(message_id=message_id)  # already gone
            raise classify_sdk_error(exc, what) from None
        except CONNECTION_ERRORS as exc:
            raise TransientError(f"no answer from Slack ({type(exc).__name__})") from None
        return SentRef(message_id=message_id)

    async def reply(
        self, delivery_key: str, channel: str, parent: SentRef, article: Article
    ) -> SentRef:
        if channel.startswith(WEBHOOK_PREFIX):
            raise PermanentError(
                f"{channel}: Slack's incoming webhooks cannot reply in a thread; subscribe a "
                "channel id (with the bot) for late coverage in threads",
                FailureScope.DELIVERY,
            )
        message = render_slack(article, self._style).to_payload()
        return await self._post(delivery_key, channel, message, thread_ts=parent.message_id)

    async def _send_webhook(
        self, delivery_key: str, channel: str, message: Mapping[str, Any]
    ) -> SentRef:
        name = channel.removeprefix(WEBHOOK_PREFIX)
        variable = webhook_env_name(name)
        try:
            url = self._resolve_webhook(variable) if name else None
        except ConfigError as exc:
            raise PermanentError(str(exc), FailureScope.CHANNEL) from None
        if not url:
            secret = SLACK.channel_secret(channel)
            assert secret is not None
            raise PermanentError(secret.missing(), FailureScope.CHANNEL)
        hook = AsyncWebhookClient(
            url,
            timeout=self._webhook_timeout_s,
            retry_handlers=[],  # we retry through the outbox, never blindly
            logger=self._webhook_logger,
        )
        body = {**message, "metadata": delivery_metadata(delivery_key)}
        try:
            response = await hook.send_dict(body)
        except CONNECTION_ERRORS as exc:
            # Never str(exc): aiohttp's messages can carry the URL.
            raise TransientError(
                f"no answer from Slack webhook {name} ({type(exc).__name__})"
            ) from None
        problem = classify_webhook_status(
            response.status_code, response.body, response.headers, name
        )
        if problem is not None:
            raise problem
        # Webhooks return only "ok": there is no message id to keep.
        return SentRef(message_id=channel)

    async def find_sent(self, delivery_key: str, channel: str) -> SentRef | None:
        """The message carrying `delivery_key` in the channel's recent history, if any."""
        if channel.startswith(WEBHOOK_PREFIX) or not self.has_bot:
            return None
        oldest = f"{max(0.0, self._clock.time() - self._history_window_s):.6f}"
        cursor: str | None = None
        for _ in range(HISTORY_MAX_PAGES):
            page = await self._history_page(channel, oldest, cursor)
            if page is None:
                return None
            for message in page.get("messages") or []:
                if isinstance(message, Mapping) and carries_key(message, delivery_key):
                    return SentRef(message_id=str(message.get("ts", "")))
            cursor = ((page.get("response_metadata") or {}).get("next_cursor")) or None
            if not page.get("has_more") or not cursor:
                return None
        return None

    async def _history_page(
        self, channel: str, oldest: str, cursor: str | None
    ) -> AsyncSlackResponse | None:
        """One page of history; None when history cannot tell (no scope, channel gone)."""
        what = f"channel {channel}"
        for attempt in range(1, LOOKUP_ATTEMPTS + 1):
            try:
                return await self._client.conversations_history(
                    channel=channel,
                    include_all_metadata=True,
                    oldest=oldest,
                    limit=HISTORY_PAGE_SIZE,
                    cursor=cursor,
                )
            except SlackApiError as exc:
                mapped = classify_sdk_error(exc, what)
                error = api_error_parts(exc)[1].get("error")
            except CONNECTION_ERRORS as exc:
                mapped = TransientError(f"no answer from Slack ({type(exc).__name__})")
                error = None
            if isinstance(mapped, PermanentError):
                self._report_history_unavailable(channel, str(error))
                return None
            if attempt == LOOKUP_ATTEMPTS:
                raise mapped
            wait_s = mapped.retry_after_s if mapped.retry_after_s is not None else attempt
            await self._sleep(min(wait_s, LOOKUP_WAIT_CAP_S))
        return None

    def _report_history_unavailable(self, channel: str, error: str) -> None:
        if error == "missing_scope":
            if not self._history_unavailable_reported:
                log.warning(
                    "slack: cannot read channel history (missing_scope): add channels:history "
                    "and groups:history so that a post interrupted by a crash is not repeated"
                )
                self._history_unavailable_reported = True
            return
        log.info("slack: no history to check in %s (%s)", channel, error)

    async def aclose(self) -> None:
        # The web client opens a session per request: nothing stays open between calls.
        return None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def web_client(token: str | None, config: SlackConfig) -> AsyncWebClient:
    """A Web API client that never retries on its own: a resent chat.postMessage after a
    dropped connection would post twice, and the rate-limit handler would sleep inside the
    call. Our outbox retries instead, waiting as Slack says."""
    return AsyncWebClient(
        token=token,
        base_url=config.api_base_url,
        timeout=REQUEST_TIMEOUT_S,
        retry_handlers=[],
    )


def create_slack_notifier(
    token: str | None,
    config: SlackConfig,
    style: RenderStyle,
    environ: Mapping[str, str],
    clock: Clock | None = None,
) -> SlackNotifier:
    """Without a bot token only webhook targets post (a channel id is parked, naming
    SLACK_BOT_TOKEN)."""

    def resolve_webhook(variable: str) -> str | None:
        # Read when a post needs it: a webhook added to the environment of a restarted bot,
        # or to a secret file, is picked up without touching the config.
        return read_secret(variable, environ)

    return SlackNotifier(web_client(token, config), style, resolve_webhook, clock or SystemClock())
