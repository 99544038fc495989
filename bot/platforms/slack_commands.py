"""`/news` on Slack: the command text translated into `bot.commands` calls, the reply rendered
as Block Kit, who may change a channel's subscriptions, and the two ways commands arrive
(Socket Mode here, the signed HTTP endpoint in `bot.web`).

Slack wants an answer within 3 seconds. Every command is answered directly when it is done
within `ack_budget_s`; otherwise the ack says "working on it" and the reply follows through the
command's `response_url`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from slack_sdk.errors import SlackApiError
from slack_sdk.signature import Clock as SignatureClock
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.clock import Clock
from bot.commands import (
    DEFAULT_NEWS_COUNT,
    MAX_NEWS_COUNT,
    Caller,
    Commands,
    FindNews,
    ListSubscriptions,
    ListTopics,
    NewsReply,
    ShowTuning,
    Subscribe,
    Timing,
    Tune,
    TuneReply,
    Unsubscribe,
)
from bot.config import ConfigError, SlackConfig
from bot.platforms.base import FailureScope, PermanentError, TransientError
from bot.platforms.slack import (
    CONNECTION_ERRORS,
    api_error_parts,
    classify_api_error,
    notice_blocks,
    quiet_sdk_logger,
    web_client,
)
from bot.rejections import Rejection
from bot.render import RenderStyle, render_slack_compact
from bot.render.common import trim_text, utf16_len
from bot.render.slack import escape_entities as escape
from bot.replay import RecentSignatures
from bot.tuning import Action, Reaction, Tuner, parse_button

log = logging.getLogger(__name__)

PLATFORM = "slack"
APP_TOKEN_ENV = "SLACK_APP_TOKEN"

# Slack allows 3 s for the ack; this leaves room for the network on both sides.
ACK_BUDGET_S = 2.0
RESPONSE_URL_TIMEOUT_S = 10
FOLLOW_UP_GRACE_S = 3.0
SOCKET_CONNECT_TIMEOUT_S = 30.0
PERMISSION_CACHE_S = 60.0
SECTION_LIMIT = 3000
SECTION_BUDGET = 2900
MAX_REPLY_BLOCKS = 45

ResponseType = Literal["ephemeral", "in_channel"]
# Who sees a reply. Lookups (help, usage, errors, list, topics and /news results) answer one
# person, so only they see them: an in_channel answer would re-post up to ten article cards to
# everyone each time someone looks something up. A subscription change alters what the whole
# channel receives, so the whole channel sees it and who made it.
PRIVATE: ResponseType = "ephemeral"
PUBLIC: ResponseType = "in_channel"

USAGE = (
    "*Usage*\n"
    f"`/news <topic> [count]`: the most recent articles on a topic "
    f"(count 1-{MAX_NEWS_COUNT}, default {DEFAULT_NEWS_COUNT})\n"
    "`/news subscribe <topic> [min_quality] [instant|hourly|daily] [HH:MM] [Zone/City] "
    "[quiet=HH:MM-HH:MM] [mention=<user group id>]`: post new articles on the topic in this "
    "channel, as they come or in a digest (`/news subscribe AI daily 08:00 Europe/Berlin`); "
    "quiet hours hold them, except breaking ones, which ping the user group\n"
    "`/news unsubscribe <topic>`: stop posting them here\n"
    "`/news list`: this channel's subscriptions\n"
    "`/news topics`: the topics that have articles\n"
    "`/news tune`: what reactions here taught or suggest; `/news tune undo [N]` reverts what "
    "is in force (`apply N`, `dismiss N`: a suggestion)\n"
    "`/news help`: this text\n"
    "Topics can have several words: `/news Machine Learning 3`. Put a topic in quotes when it "
    'ends with a number or is one of the words above: `/news "Web 3"`.'
)


# --- parsing: the command text to a typed request ------------------------------------------


# The command text becomes one of bot.commands' requests, or one of these two, which only the
# adapter answers (its own usage text).


@dataclass(frozen=True, slots=True)
class ShowHelp:
    pass


@dataclass(frozen=True, slots=True)
class BadInput:
    problem: str


# The names the command text uses.
ShowSubscriptions = ListSubscriptions
ShowTopics = ListTopics

Request = (
    ShowHelp | ShowSubscriptions | ShowTopics | FindNews | Subscribe | Unsubscribe | ShowTuning
    | Tune | BadInput
)

# A number as a person might type it, exponent included (`1e999` is a number, and refused as
# one, not part of a topic).
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_QUOTED = re.compile(r'^["“”](?P<topic>[^"“”]*)["“”](?:\s+(?P<rest>.*))?$', re.DOTALL)
_NO_ARGUMENTS: dict[str, Request] = {
    "help": ShowHelp(),
    "list": ShowSubscriptions(),
    "topics": ShowTopics(),
}
_ALIASES = {"subscriptions": "list", "sub": "subscribe", "unsub": "unsubscribe"}
# The delivery choices that may follow a subscription's topic (and floor), in any order.
_MODES = frozenset(("instant", "hourly", "daily"))
_CLOCK = re.compile(r"\d{1,2}:\d{2}")
_WINDOW = re.compile(r"(?:quiet=)?(\d{1,2}:\d{2}-\d{1,2}:\d{2})", re.IGNORECASE)
_ZONE = re.compile(r"[A-Za-z][\w+\-]*(?:/[\w+\-]+)+|UTC|GMT", re.IGNORECASE)
_MENTION = re.compile(r"mention=(\S+)|(<!subteam\^[^>\s]+>)", re.IGNORECASE)
_MAX_COUNT_DIGITS = 6


def unescape_command_text(text: str) -> str:
    """Slack sends `&`, `<` and `>` in command text as HTML entities."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def split_topic(words: str) -> tuple[str, str | None] | BadInput:
    """`Machine Learning 10` -> (`Machine Learning`, `10`); a quoted topic keeps its digits."""
    quoted = _QUOTED.match(words)
    if quoted:
        topic, rest = quoted["topic"].strip(), (quoted["rest"] or "").strip()
        if rest and not _NUMBER.fullmatch(rest):
            return BadInput(f"After the quoted topic only a number may follow, not `{rest}`.")
        return topic, rest or None
    parts = words.rsplit(None, 1)
    if len(parts) == 2 and _NUMBER.fullmatch(parts[1]):
        return parts[0], parts[1]
    return words, None


def _timing_word(word: str, found: dict[str, str]) -> bool:
    """Record `word` as a delivery choice (mode, time, zone, quiet hours, mention) not given
    yet; False when it is none (then it belongs to the topic)."""
    checks: list[tuple[str, str | None]] = [
        ("mode", word.casefold() if word.casefold() in _MODES else None),
        ("quiet_hours", m.group(1) if (m := _WINDOW.fullmatch(word)) else None),
        ("digest_at", word if _CLOCK.fullmatch(word) else None),
        ("timezone", word if _ZONE.fullmatch(word) else None),
        ("mention", (m.group(1) or m.group(2)) if (m := _MENTION.fullmatch(word)) else None),
    ]
    for name, value in checks:
        if value is not None and name not in found:
            found[name] = value
            return True
    return False


def _subscribe(rest: str) -> Subscribe | BadInput:
    """`AI 60 daily 08:00 Europe/Berlin quiet=22:00-07:00 mention=S0614TZR7`: the delivery
    choices are read off the end, the floor before them, the topic is what remains."""
    words = rest.split()
    found: dict[str, str] = {}
    while len(words) > 1 and _timing_word(words[-1], found):
        words.pop()
    split = split_topic(" ".join(words))
    if isinstance(split, BadInput):
        return split
    topic, number = split
    if not topic:
        return BadInput("Say which topic to subscribe.")
    return Subscribe(topic, None if number is None else float(number), Timing(**found))


def _tune(rest: str) -> ShowTuning | Tune | BadInput:
    """`tune`, `tune undo`, `tune undo 3`, `tune apply 3`, `tune dismiss #3`."""
    words = rest.split()
    if not words:
        return ShowTuning()
    if words[0].casefold() not in set(map(str, Action)) or len(words) > 2:
        return BadInput("`tune` takes nothing, or `undo`, `apply` or `dismiss` and a number.")
    number = words[1].lstrip("#") if len(words) == 2 else None
    if number is not None and not (number.isascii() and number.isdigit() and len(number) < 13):
        return BadInput(f"`{words[1]}` is not an adjustment number (like 3).")
    return Tune(Action(words[0].casefold()), int(number) if number is not None else None)


def parse_command_text(text: str) -> Request:
    """What `/news <text>` asks for. Anything that is not a subcommand is a topic."""
    text = " ".join(unescape_command_text(text).split())
    if not text:
        return ShowHelp()
    first, _, rest = text.partition(" ")
    verb = _ALIASES.get(first.casefold(), first.casefold())
    if verb in _NO_ARGUMENTS:
        if rest:
            return BadInput(f"`{verb}` takes no arguments.")
        return _NO_ARGUMENTS[verb]
    if verb == "tune":
        return _tune(rest)
    if verb in ("subscribe", "unsubscribe"):
        if not rest:
            return BadInput(f"Say which topic to {verb}, for example `/news {verb} AI`.")
        if verb == "subscribe":
            return _subscribe(rest)
        split = split_topic(rest)
        if isinstance(split, BadInput):
            return split
        topic, number = split
        if not topic:
            return BadInput(f"Say which topic to {verb}.")
        return Unsubscribe(topic) if number is None else Unsubscribe(f"{topic} {number}")
    split = split_topic(text)
    if isinstance(split, BadInput):
        return split
    topic, number = split
    if not topic:
        return BadInput("Give a topic, for example `/news AI`.")
    if number is None:
        return FindNews(topic)
    digits = number.lstrip("+")
    # Length first: `int()` refuses more than 4,300 digits, and no count needs more than a few.
    if len(digits) > _MAX_COUNT_DIGITS or not digits.isdigit():
        return BadInput(f"The count must be a whole number from 1 to {MAX_NEWS_COUNT}.")
    return FindNews(topic, int(digits))


# --- rendering: replies as Block Kit ------------------------------------------------------


def _chunks(text: str) -> list[str]:
    """Lines grouped into pieces that fit a section (3000 characters, counted as Slack does)."""
    pieces: list[str] = []
    current = ""
    for raw in text.split("\n"):
        line = raw if utf16_len(raw) <= SECTION_BUDGET else trim_text(
            raw, SECTION_BUDGET, measure=utf16_len
        )
        candidate = f"{current}\n{line}" if current else line
        if current and utf16_len(candidate) > SECTION_BUDGET:
            pieces.append(current)
            current = line
        else:
            current = candidate
    if current.strip():
        pieces.append(current)
    return pieces


def text_blocks(mrkdwn: str) -> list[dict[str, Any]]:
    chunks = _chunks(mrkdwn)
    if len(chunks) > MAX_REPLY_BLOCKS:
        chunks = [*chunks[: MAX_REPLY_BLOCKS - 1], "…and more"]
    return [{"type": "section", "text": {"type": "mrkdwn", "text": c}} for c in chunks]


def fallback_text(mrkdwn: str) -> str:
    return trim_text(mrkdwn, SECTION_LIMIT, measure=utf16_len) or "newsbot"


def text_reply(mrkdwn: str, response_type: ResponseType = PRIVATE) -> dict[str, Any]:
    return {
        "response_type": response_type,
        "text": fallback_text(mrkdwn),
        "blocks": text_blocks(mrkdwn),
    }


def usage_reply(problem: str | None = None) -> dict[str, Any]:
    # Every text we send is escaped: `<topic>` would be read as a link, a user's `<!channel>`
    # as a mention.
    usage = escape(USAGE)
    return text_reply(f"{escape(problem)}\n\n{usage}" if problem else usage)


def tune_reply(reply: TuneReply) -> dict[str, Any]:
    """What reactions taught or suggest, with its buttons; for the whole channel when it
    changes what the channel receives (or suggests to)."""
    payload = text_reply(escape(reply.text), PUBLIC if reply.public else PRIVATE)
    if reply.buttons:
        payload["blocks"] = [*payload["blocks"], *notice_blocks("", reply.buttons)[1:]]
    return payload


def news_reply(reply: NewsReply, style: RenderStyle) -> dict[str, Any]:
    if not reply.ok:
        return usage_reply(reply.text)
    if not reply.articles:
        return text_reply(escape(reply.text))
    blocks = [*text_blocks(f"*{escape(reply.text)}*"), {"type": "divider"}]
    for article in reply.articles:
        blocks.extend(render_slack_compact(article, style))
    return {
        "response_type": PRIVATE,
        "text": fallback_text(escape(reply.text)),
        "blocks": blocks[:50],
        "unfurl_links": False,
        "unfurl_media": False,
    }


# --- permission: who may change a channel's subscriptions ---------------------------------

UserLookup = Callable[[str], Awaitable[Mapping[str, Any]]]


class ManagePolicy:
    """`anyone` (in the channel), `admins` (workspace admins and owners, via `users.info`, which
    needs the users:read scope) or `users` (the listed ids). Any doubt refuses."""

    def __init__(
        self,
        mode: str,
        user_ids: Collection[str],
        lookup_user: UserLookup | None,
        clock: Clock,
        cache_s: float = PERMISSION_CACHE_S,
    ) -> None:
        if mode not in ("anyone", "admins", "users"):
            raise ConfigError(f'`slack.manage` must be "anyone", "admins" or "users", not {mode!r}')
        self._mode = mode
        self._user_ids = frozenset(user_ids)
        self._lookup_user = lookup_user
        self._clock = clock
        self._cache_s = cache_s
        self._admins: dict[str, tuple[bool, float]] = {}

    async def can_manage(self, user_id: str) -> bool:
        if self._mode == "anyone":
            return True
        if self._mode == "users":
            return user_id in self._user_ids
        cached = self._admins.get(user_id)
        now = self._clock.monotonic()
        if cached is not None and now - cached[1] < self._cache_s:
            return cached[0]
        allowed = await self._is_admin(user_id)
        self._admins[user_id] = (allowed, now)
        return allowed

    async def _is_admin(self, user_id: str) -> bool:
        if self._lookup_user is None or not user_id:
            return False
        try:
            user = await self._lookup_user(user_id)
        except SlackApiError as exc:
            error = api_error_parts(exc)[1].get("error")
            hint = " (add the users:read scope to the app)" if error == "missing_scope" else ""
            log.warning("slack: cannot check whether %s is an admin: %s%s", user_id, error, hint)
            return False
        except CONNECTION_ERRORS as exc:
            log.warning("slack: cannot check whether %s is an admin: %s", user_id,
                        type(exc).__name__)
            return False
        return bool(
            (user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))
            and not user.get("deleted")
        )


def users_info_lookup(client: AsyncWebClient) -> UserLookup:
    async def lookup(user_id: str) -> Mapping[str, Any]:
        response = await client.users_info(user=user_id)
        user = response.get("user")
        return user if isinstance(user, Mapping) else {}

    return lookup


# --- answering: translation, the 3-second budget, response_url follow-ups ----------------

ResponsePoster = Callable[[str, Mapping[str, Any]], Awaitable[None]]
_USER = re.compile(r"[UW][A-Z0-9]{2,20}")  # a user id, safe inside `<@…>`


async def post_to_response_url(url: str, payload: Mapping[str, Any]) -> None:
    """A follow-up through the command's `response_url` (no retries: it is good 5 times)."""
    hook = AsyncWebhookClient(
        url, timeout=RESPONSE_URL_TIMEOUT_S, retry_handlers=[], logger=quiet_sdk_logger()
    )
    try:
        response = await hook.send_dict(dict(payload))
    except CONNECTION_ERRORS as exc:
        log.warning("slack: could not post a command reply (%s)", type(exc).__name__)
        return
    if response.status_code != 200:
        log.warning("slack: a command reply was refused (HTTP %d)", response.status_code)


class SlackCommands:
    """Answers `/news` payloads (the slash-command form fields, from HTTP or Socket Mode)."""

    def __init__(
        self,
        commands: Commands,
        policy: ManagePolicy,
        style: RenderStyle,
        *,
        ack_budget_s: float = ACK_BUDGET_S,
        post_response: ResponsePoster = post_to_response_url,
        tuner: Tuner | None = None,
        bot_user_id: Callable[[], str | None] | None = None,
    ) -> None:
        self._commands = commands
        self._policy = policy
        self._style = style
        self._tuner = tuner
        self._bot_user_id = bot_user_id
        self._ack_budget_s = ack_budget_s
        self._post_response = post_response
        self._follow_ups: set[asyncio.Task[None]] = set()

    async def answer(self, form: Mapping[str, str]) -> dict[str, Any]:
        """The payload to acknowledge with, within the budget: the reply itself, or "working
        on it" while the reply is computed and then posted to `response_url`."""
        work = asyncio.create_task(self.reply(form), name="slack-command")
        try:
            done, _ = await asyncio.wait({work}, timeout=self._ack_budget_s)
        except asyncio.CancelledError:
            work.cancel()
            raise
        if work in done:
            return work.result()
        follow_up = asyncio.create_task(
            self._follow_up(work, form.get("response_url", "")), name="slack-follow-up"
        )
        self._follow_ups.add(follow_up)
        follow_up.add_done_callback(self._follow_ups.discard)
        return text_reply("Working on it…")

    async def _follow_up(self, work: asyncio.Task[dict[str, Any]], response_url: str) -> None:
        payload = await work
        if not response_url:
            log.warning("slack: a slow command reply has no response_url to go to")
            return
        await self._post_response(response_url, payload)

    async def reply(self, form: Mapping[str, str]) -> dict[str, Any]:
        """The reply payload for one command; never raises (a bug answers politely)."""
        channel = form.get("channel_id", "")
        user_id = form.get("user_id", "")
        try:
            request = parse_command_text(form.get("text", ""))
            log.info(
                "slack command user=%s channel=%s request=%s",
                user_id, channel, type(request).__name__,
            )
            return await self._dispatch(request, channel, user_id)
        except Exception:
            log.exception("slack: the /news command failed")
            return text_reply("Sorry, that failed on our side; the error is in the bot's log.")

    async def _caller(self, channel: str, user_id: str, manage: bool) -> Caller:
        can_manage = await self._policy.can_manage(user_id) if manage else False
        return Caller(platform=PLATFORM, channel=channel, user_id=user_id, can_manage=can_manage)

    async def _dispatch(self, request: Request, channel: str, user_id: str) -> dict[str, Any]:
        match request:
            case ShowHelp():
                return usage_reply()
            case BadInput(problem):
                return usage_reply(problem)
            case ListTopics() | ListSubscriptions() as listing:
                caller = await self._caller(channel, user_id, manage=False)
                return text_reply(escape((await self._commands.handle(caller, listing)).text))
            case FindNews():
                caller = await self._caller(channel, user_id, manage=False)
                found = await self._commands.handle(caller, request)
                return news_reply(found, self._style)
            case Subscribe() | Unsubscribe() as change:
                # Only a change asks whether the caller may manage the channel (a lookup).
                caller = await self._caller(channel, user_id, manage=True)
                changed = await self._commands.handle(caller, change)
                return text_reply(escape(changed.text), PUBLIC if changed.ok else PRIVATE)
            case ShowTuning():
                caller = await self._caller(channel, user_id, manage=False)
                return tune_reply(await self._commands.handle(caller, request))
            case Tune():
                caller = await self._caller(channel, user_id, manage=True)
                return tune_reply(await self._commands.handle(caller, request))
        raise AssertionError(f"unhandled request {request!r}")

    # --- learning from reactions: events and button presses --------------------------------

    async def on_event(self, payload: Mapping[str, Any]) -> None:
        """An Events API callback (Socket Mode or HTTP): `reaction_added` and
        `reaction_removed` on a message go to the tuner; everything else is ignored."""
        event = payload.get("event")
        if self._tuner is None or not isinstance(event, Mapping):
            return
        kind = event.get("type")
        item = event.get("item")
        if kind not in ("reaction_added", "reaction_removed") or not isinstance(item, Mapping):
            return
        if item.get("type") != "message":
            return  # a file or a file comment: never one of ours
        user = str(event.get("user") or "")
        reaction = Reaction(
            platform=PLATFORM,
            channel=str(item.get("channel") or ""),
            message_ref=str(item.get("ts") or ""),
            user_id=user,
            emoji=str(event.get("reaction") or ""),
            added=kind == "reaction_added",
            by_us=bool(self._bot_user_id and user == self._bot_user_id()),
        )
        try:
            await self._tuner.on_reaction(reaction)
        except Exception:
            log.exception("slack: a reaction could not be counted")

    async def on_action(self, payload: Mapping[str, Any]) -> dict[str, Any] | None:
        """A `block_actions` press of one of our buttons: checked like `subscribe`; the answer
        (for the channel when it changed something, else for the presser) goes to the
        payload's `response_url`, and is returned too."""
        if payload.get("type") != "block_actions":
            return None
        actions = payload.get("actions")
        user = payload.get("user")
        channel = payload.get("channel")
        container = payload.get("container")
        if not isinstance(actions, list) or not actions or not isinstance(user, Mapping):
            return None
        channel_id = ""
        if isinstance(channel, Mapping):
            channel_id = str(channel.get("id") or "")
        elif isinstance(container, Mapping):
            channel_id = str(container.get("channel_id") or "")
        first = actions[0] if isinstance(actions[0], Mapping) else {}
        pressed = parse_button(str(first.get("action_id") or ""))
        if pressed is None or not channel_id:
            return None
        user_id = str(user.get("id") or "")
        caller = await self._caller(channel_id, user_id, manage=True)
        reply = await self._commands.handle(caller, Tune(pressed[0], pressed[1]))
        text = f"<@{user_id}>: {escape(reply.text)}" if reply.ok and _USER.fullmatch(user_id) \
            else escape(reply.text)
        answer = text_reply(text, PUBLIC if reply.ok else PRIVATE)
        answer["replace_original"] = False
        response_url = str(payload.get("response_url") or "")
        if response_url:
            await self._post_response(response_url, answer)
        return answer

    async def aclose(self) -> None:
        """Let replies in progress reach their response_url briefly, then stop them."""
        pending = set(self._follow_ups)
        if pending:
            _, late = await asyncio.wait(pending, timeout=FOLLOW_UP_GRACE_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)


def build_slack_commands(
    config: SlackConfig,
    commands: Commands,
    style: RenderStyle,
    bot_client: AsyncWebClient,
    clock: Clock,
    ack_budget_s: float = ACK_BUDGET_S,
    tuner: Tuner | None = None,
    bot_user_id: Callable[[], str | None] | None = None,
) -> SlackCommands:
    lookup = users_info_lookup(bot_client) if config.manage == "admins" else None
    policy = ManagePolicy(config.manage, config.manage_user_ids, lookup, clock)
    return SlackCommands(
        commands, policy, style, ack_budget_s=ack_budget_s, tuner=tuner, bot_user_id=bot_user_id
    )


class _VerifierClock(SignatureClock):
    """Our clock, in the shape slack_sdk's verifier asks for (tests move it by hand)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def now(self) -> float:
        return self._clock.time()


# Slack's timestamp is epoch seconds in ASCII digits and its signature `v0=` + 64 lowercase hex
# digits. Anything else is refused before the verifier sees it: it would raise on a timestamp
# `int()` refuses (5,000 digits) or on a non-ASCII signature, and `str.isdigit` accepts `²`.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
SIGNATURE_MAX_AGE_S = 300


def request_check(
    signing_secret: str, clock: Clock, recent: RecentSignatures | None = None
) -> Callable[[bytes, Mapping[str, str]], Rejection | None]:
    """Why a raw request body and its headers are not a command signed by Slack with
    `signing_secret` (HMAC-SHA256, compared in constant time) within 5 minutes of now, and not
    seen before; None when they are."""
    verifier = SignatureVerifier(signing_secret, clock=_VerifierClock(clock))
    seen_before = recent if recent is not None else RecentSignatures(SIGNATURE_MAX_AGE_S)

    def refusal(body: bytes, headers: Mapping[str, str]) -> Rejection | None:
        timestamp = headers.get("X-Slack-Request-Timestamp")
        signature = headers.get("X-Slack-Signature")
        if timestamp is None or signature is None:
            return Rejection.MISSING_HEADERS
        if not _TIMESTAMP.fullmatch(timestamp) or not _SIGNATURE.fullmatch(signature):
            return Rejection.MALFORMED
        try:
            body.decode("utf-8")  # Slack's forms are ASCII; the verifier decodes the body
        except UnicodeDecodeError:
            return Rejection.MALFORMED
        if abs(clock.time() - int(timestamp)) > SIGNATURE_MAX_AGE_S:
            return Rejection.STALE
        if not verifier.is_valid(body=body, timestamp=timestamp, signature=signature):
            return Rejection.BAD_SIGNATURE
        # Slack never resends a slash command, so the same signature twice is a replay.
        seen = seen_before.remember(signature, int(timestamp), clock.time())
        if seen == "repeat":
            return Rejection.REPLAY
        if seen == "full":
            return Rejection.TOO_MANY_RECENT
        return None

    return refusal


# --- Socket Mode ------------------------------------------------------------------------


async def open_socket_url(client: AsyncWebClient, app_token: str) -> str:
    """`apps.connections.open`: checks the app token before the SDK's endless reconnect loop
    could hide a wrong one."""
    try:
        response = await client.apps_connections_open(app_token=app_token)
    except SlackApiError as exc:
        status, body, headers = api_error_parts(exc)
        error = str(body.get("error") or "")
        mapped = classify_api_error(status, error, headers, "apps.connections.open")
        if isinstance(mapped, PermanentError):
            raise PermanentError(
                f"Slack refused the app-level token in {APP_TOKEN_ENV} ({error}): use a token "
                "(xapp-…) with the connections:write scope, made under Basic Information > "
                "App-Level Tokens, of an app with Socket Mode enabled",
                FailureScope.PLATFORM,
            ) from None
        raise mapped from None
    except CONNECTION_ERRORS as exc:
        raise TransientError(f"no answer from Slack ({type(exc).__name__})") from None
    return str(response.get("url") or "")


class SocketModeReceiver:
    """Receives slash commands over Socket Mode and acknowledges each envelope with its reply
    (or "working on it") within Slack's 3 seconds."""

    def __init__(self, client: SocketModeClient, handler: SlackCommands) -> None:
        self._client = client
        self._handler = handler
        self._connect: asyncio.Task[None] | None = None
        client.socket_mode_request_listeners.append(self._on_request)

    @classmethod
    async def start(
        cls, app_token: str, config: SlackConfig, handler: SlackCommands
    ) -> SocketModeReceiver:
        web = web_client(None, config)
        try:
            url: str | None = await open_socket_url(web, app_token)
        except TransientError as exc:
            log.warning("slack: Socket Mode cannot connect yet (%s); retrying", exc.reason)
            url = None
        # The client must be made inside the running loop (it starts a task at once).
        client = SocketModeClient(app_token=app_token, web_client=web, logger=quiet_sdk_logger())
        if url:
            client.wss_uri = url  # the checked URL: its ticket is good for one connection
        receiver = cls(client, handler)
        receiver._connect = asyncio.create_task(receiver._run_connect(), name="slack-socket")
        return receiver

    async def _run_connect(self) -> None:
        # The SDK retries a failed first connection forever, but always with the same URL,
        # whose one-time ticket may be spent or expired: after a while, start over with a new
        # one (connect() asks apps.connections.open when it has no URL).
        while True:
            try:
                await asyncio.wait_for(
                    self._client.connect(),  # type: ignore[no-untyped-call]
                    SOCKET_CONNECT_TIMEOUT_S,
                )
            except TimeoutError:
                log.warning("slack: Socket Mode is not connected yet; trying a new URL")
                self._client.wss_uri = None
                continue
            log.info("slack: Socket Mode connected; /news commands are answered")
            return

    async def _on_request(
        self, client: AsyncBaseSocketModeClient, request: SocketModeRequest
    ) -> None:
        payload: dict[str, Any] | None = None
        if request.type == "slash_commands":
            form = {str(k): str(v) for k, v in (request.payload or {}).items()}
            payload = await self._handler.answer(form)
        # Every envelope is acknowledged, even of a kind we do not handle, or Slack resends it.
        ack = SocketModeResponse(envelope_id=request.envelope_id, payload=payload)
        try:
            await client.send_socket_mode_response(ack)
        except (ConnectionError, RuntimeError) as exc:
            log.warning("slack: could not acknowledge a command (%s)", type(exc).__name__)
        # Events and button presses are acknowledged first (Slack wants that within 3 s), then
        # handled: a reaction is counted, a press answered through its response_url.
        if request.type == "events_api" and isinstance(request.payload, Mapping):
            await self._handler.on_event(request.payload)
        elif request.type == "interactive" and isinstance(request.payload, Mapping):
            await self._handler.on_action(request.payload)

    async def aclose(self) -> None:
        await self._client.close()  # type: ignore[no-untyped-call]
        if self._connect is not None:
            self._connect.cancel()
            await asyncio.gather(self._connect, return_exceptions=True)
        await self._handler.aclose()
