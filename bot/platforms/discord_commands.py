"""Slash commands on Discord, and the gateway connection that receives them.

Only translation lives here: options are parsed into calls of the platform-neutral `Commands`,
and its typed replies are rendered as Discord messages. What the commands mean (and who may
change a channel's subscriptions) is decided in bot/commands.py.

- Every answer comes within Discord's 3 seconds: the work starts at once, and if it has not
  finished after `DEFER_AFTER_S` (a slow database, say) the interaction is deferred ("thinking")
  and the answer follows up.
- Answers that concern only the caller (errors, refusals, /subscriptions, /topics, "no
  articles") are ephemeral; /news results and subscription changes are shown to the channel.
- Text is escaped for Discord markdown (topics are user input) and no answer can ping.
- Commands are synced only when their definition changed (a hash per scope in the state's meta
  table): syncing on every start is rate-limited by Discord and slow to propagate globally.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord
import yarl
from discord import app_commands

from bot.commands import (
    DEFAULT_NEWS_COUNT,
    MAX_NEWS_COUNT,
    MAX_TOPIC_LENGTH,
    Caller,
    Commands,
    FindNews,
    ListSubscriptions,
    ListTopics,
    ShowTuning,
    Subscribe,
    Timing,
    Tune,
    TuneReply,
    Unsubscribe,
    timezone_choices,
)
from bot.config import DiscordConfig
from bot.platforms.discord import CONNECTION_ERRORS, PLATFORM, TOKEN_REFUSED, DiscordNotifier
from bot.render import RenderStyle, render_discord_compact
from bot.render.common import fit_text, utf16_len
from bot.render.discord import break_mentions
from bot.state import State
from bot.tuning import Action, Button, Reaction, Tuner, parse_button
from bot.validation import DELIVERY_MODE_CHOICES, MAX_QUALITY, QUALITY_RANGE

log = logging.getLogger(__name__)

Interaction = discord.Interaction[discord.Client]

CONTENT_LIMIT = 2000  # characters of message content
MAX_EMBEDS = 10
MAX_CHOICES = 25
CHOICE_LIMIT = 100  # characters of a choice's name and value
MAX_OPTION_TEXT = 100  # a time, a zone name, a window or a role: short
# Discord fails an interaction not answered within 3 s of its creation; the gateway and our
# answer's round trip take part of that, so slow work is deferred well before.
DEFER_AFTER_S = 1.5
# Autocomplete cannot be deferred: a slow lookup answers with no suggestions instead.
AUTOCOMPLETE_BUDGET_S = 2.0
NO_MENTIONS = discord.AllowedMentions.none()
META_KEY_PREFIX = "discord.commands_hash"
SYNC_TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (discord.RateLimited, *CONNECTION_ERRORS)


@dataclass(frozen=True, slots=True)
class Answer:
    content: str
    embeds: tuple[discord.Embed, ...] = ()
    ephemeral: bool = True
    buttons: tuple[Button, ...] = ()


# Buttons of learning from reactions: what each does, as Discord styles it.
_BUTTON_STYLES = {Action.APPLY: 1, Action.DISMISS: 2, Action.UNDO: 4}  # primary, grey, red
BUTTONS_PER_ROW = 5
MAX_BUTTON_ROWS = 5
BUTTON_LABEL_LIMIT = 80


def notice_components(buttons: Sequence[Button]) -> list[dict[str, Any]]:
    """Buttons as Discord's message components: action rows of at most five."""
    shown = list(buttons)[: BUTTONS_PER_ROW * MAX_BUTTON_ROWS]
    return [
        {
            "type": 1,
            "components": [
                {
                    "type": 2,
                    "style": _BUTTON_STYLES[b.action],
                    "label": b.label[:BUTTON_LABEL_LIMIT],
                    "custom_id": b.custom_id,
                }
                for b in shown[start : start + BUTTONS_PER_ROW]
            ],
        }
        for start in range(0, len(shown), BUTTONS_PER_ROW)
    ]


def _view(buttons: Sequence[Button]) -> discord.ui.View | None:
    """The same buttons for an interaction's answer (discord.py sends a View's components).
    Their presses are handled in `DiscordGateway`, by custom id, not by the view."""
    if not buttons:
        return None
    view = discord.ui.View(timeout=None)
    styles = {1: discord.ButtonStyle.primary, 2: discord.ButtonStyle.secondary,
              4: discord.ButtonStyle.danger}
    for button in list(buttons)[: BUTTONS_PER_ROW * MAX_BUTTON_ROWS]:
        view.add_item(
            discord.ui.Button(
                style=styles[_BUTTON_STYLES[button.action]],
                label=button.label[:BUTTON_LABEL_LIMIT],
                custom_id=button.custom_id,
            )
        )
    return view


# Markdown that user text (a topic) could use to format, link or mention inside our replies
# (`#` too: after our own "- " bullet it would start a heading). Parentheses stay: without
# `[...]` they form no link. Topics hold no newlines, so other line-start syntax is ours.
_REPLY_INLINE = re.compile(r"([\\*_~`|<>\[\]#])")
_SCHEME = re.compile(r"(?<=[A-Za-z0-9])://")


def escape_reply(text: str) -> str:
    """One line of a reply made inert: it shows as written, and cannot format, link or ping."""
    return break_mentions(_SCHEME.sub(r"\\://", _REPLY_INLINE.sub(r"\\\1", text)))


def discord_text(text: str, limit: int = CONTENT_LIMIT) -> str:
    """Plain text from `Commands` as inert Discord markdown within `limit`: each line escaped
    (and trimmed if it alone is too long), then whole lines dropped from the end, and counted,
    rather than an escape cut in half."""
    lines = [fit_text(line, limit, escape_reply) for line in text.splitlines()] or [""]
    for keep in range(len(lines), -1, -1):
        dropped = len(lines) - keep
        candidate = "\n".join(lines[:keep] + ([f"… and {dropped} more"] if dropped else []))
        if utf16_len(candidate) <= limit:
            return candidate
    return ""


def caller_of(interaction: Interaction) -> Caller | None:
    """Who is asking, where, and whether Discord says they may manage this channel. The
    resolved permissions include the channel's overwrites; an administrator has them all."""
    if interaction.guild_id is None or interaction.channel_id is None:
        return None
    permissions = interaction.permissions
    return Caller(
        platform=PLATFORM,
        channel=str(interaction.channel_id),
        user_id=str(interaction.user.id),
        can_manage=permissions.manage_channels or permissions.administrator,
    )


def asker_of(interaction: Interaction) -> Caller:
    """Who is asking, for a lookup that works anywhere (direct messages too)."""
    return caller_of(interaction) or Caller(
        platform=PLATFORM,
        channel=str(interaction.channel_id or ""),
        user_id=str(interaction.user.id),
        can_manage=False,
    )


def missing_bot_permissions(interaction: Interaction) -> list[str]:
    """What the bot lacks to post in this channel (empty when Discord did not say)."""
    perms = interaction.app_permissions
    if perms.value == 0 or perms.administrator:
        return []
    missing = []
    if not perms.view_channel:
        missing.append("View Channel")
    if not (perms.send_messages or perms.send_messages_in_threads):
        missing.append("Send Messages")
    if not perms.embed_links:
        missing.append("Embed Links")
    return missing


_PUBLIC_PLACEHOLDER = "newsbot_public_placeholder"


async def _drop_public_placeholder(interaction: Interaction) -> None:
    """Before a private follow-up: remove a public "thinking" placeholder, which the follow-up
    would otherwise replace, showing a private answer to the whole channel."""
    if interaction.extras.pop(_PUBLIC_PLACEHOLDER, False):
        with contextlib.suppress(discord.HTTPException):
            await interaction.delete_original_response()


async def _follow_up(interaction: Interaction, answer: Answer) -> None:
    if answer.ephemeral:
        await _drop_public_placeholder(interaction)
    view = _view(answer.buttons)
    if view is None:
        await interaction.followup.send(
            answer.content,
            embeds=list(answer.embeds),
            ephemeral=answer.ephemeral,
            allowed_mentions=NO_MENTIONS,
        )
        return
    await interaction.followup.send(
        answer.content,
        embeds=list(answer.embeds),
        ephemeral=answer.ephemeral,
        allowed_mentions=NO_MENTIONS,
        view=view,
    )


async def answer_with(
    interaction: Interaction,
    work: Awaitable[Answer],
    *,
    likely_ephemeral: bool,
    defer_after_s: float = DEFER_AFTER_S,
) -> None:
    """Answer with what `work` produces: directly when it is quick, else defer first (as
    ephemeral or not, by `likely_ephemeral`) and follow up."""
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=defer_after_s)
        if task in done:
            answer = task.result()
            view = _view(answer.buttons)
            if view is None:
                await interaction.response.send_message(
                    answer.content,
                    embeds=list(answer.embeds),
                    ephemeral=answer.ephemeral,
                    allowed_mentions=NO_MENTIONS,
                )
            else:
                await interaction.response.send_message(
                    answer.content,
                    embeds=list(answer.embeds),
                    ephemeral=answer.ephemeral,
                    allowed_mentions=NO_MENTIONS,
                    view=view,
                )
            return
        await interaction.response.defer(ephemeral=likely_ephemeral, thinking=True)
        interaction.extras[_PUBLIC_PLACEHOLDER] = not likely_ephemeral
        answer = await task
        await _follow_up(interaction, answer)
    finally:
        if not task.done():
            task.cancel()


async def answer_error(interaction: Interaction, text: str) -> None:
    """An ephemeral message, whether or not the interaction was answered already."""
    content = discord_text(text)
    try:
        if interaction.response.is_done():
            await _drop_public_placeholder(interaction)
            await interaction.followup.send(content, ephemeral=True, allowed_mentions=NO_MENTIONS)
        else:
            await interaction.response.send_message(
                content, ephemeral=True, allowed_mentions=NO_MENTIONS
            )
    except discord.HTTPException as exc:
        # Too late (10062 Unknown interaction) or Discord is failing: nobody to tell but the log.
        log.warning("discord: could not answer an interaction: %s %s", exc.status, exc.code)


class NewsCommandTree(app_commands.CommandTree[discord.Client]):
    """The command tree, with one error handler that turns any failure into a helpful,
    ephemeral message (never a stack trace) and logs what was unexpected."""

    async def on_error(self, interaction: Interaction, error: app_commands.AppCommandError) -> None:
        name = interaction.command.name if interaction.command else "?"
        if isinstance(error, app_commands.NoPrivateMessage):
            text = f"/{name} works in a server channel, not in direct messages."
        elif isinstance(error, app_commands.TransformerError):
            text = f"/{name}: the value {error.value!r} is not valid for that option."
        elif isinstance(
            error, app_commands.CommandSignatureMismatch | app_commands.CommandNotFound
        ):
            text = (
                "This command has just changed. Discord updates it within a minute or so; "
                "please try again then."
            )
        elif isinstance(error, app_commands.CheckFailure):
            text = f"You can't use /{name} here."
        else:
            cause = error.__cause__ if isinstance(error, app_commands.CommandInvokeError) else error
            log.error(
                "discord: /%s failed: %s", name, type(cause).__name__, exc_info=cause
            )
            text = "Sorry, that failed on my side (it is logged). Please try again in a moment."
        await answer_error(interaction, text)


class BadOption(ValueError):
    """An option value of the wrong type (Discord checks types; a misbehaving client might not)."""


def _count(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise BadOption(f"count must be a whole number from 1 to {MAX_NEWS_COUNT}.")


def _text(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise BadOption(f"{name} must be text.")


def _quality(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise BadOption(f"min_quality must be {QUALITY_RANGE}.")


def build_tree(
    client: discord.Client,
    commands: Commands,
    style: RenderStyle,
    *,
    defer_after_s: float = DEFER_AFTER_S,
    tune: bool = False,
) -> NewsCommandTree:
    """The five slash commands on a tree bound to `client`; `tune` (learning from reactions is
    on): `/tune` too."""
    tree = NewsCommandTree(client)

    async def topic_choices(current: str) -> list[app_commands.Choice[str]]:
        try:
            names = await asyncio.wait_for(
                commands.topic_choices(current, MAX_CHOICES), AUTOCOMPLETE_BUDGET_S
            )
        except TimeoutError:
            return []
        return [
            app_commands.Choice(name=n, value=n) for n in names if 0 < len(n) <= CHOICE_LIMIT
        ][:MAX_CHOICES]

    @tree.command(name="news", description="The most recent articles on a topic")
    @app_commands.describe(
        topic="A topic, for example AI",
        count=f"How many articles (1-{MAX_NEWS_COUNT}, default {DEFAULT_NEWS_COUNT})",
        min_quality="Only articles scored at least this (default: the bot's floor)",
    )
    async def news(
        interaction: Interaction,
        topic: app_commands.Range[str, 1, MAX_TOPIC_LENGTH],
        count: app_commands.Range[int, 1, MAX_NEWS_COUNT] = DEFAULT_NEWS_COUNT,
        min_quality: app_commands.Range[float, 0.0, MAX_QUALITY] | None = None,
    ) -> None:
        try:
            wanted, floor = _count(count), _quality(min_quality)
        except BadOption as exc:
            await answer_error(interaction, str(exc))
            return

        async def work() -> Answer:
            request = FindNews(str(topic), wanted, floor)
            reply = await commands.handle(asker_of(interaction), request)
            if not reply.ok or not reply.articles:
                return Answer(discord_text(reply.text), ephemeral=True)
            embeds = tuple(
                discord.Embed.from_dict(render_discord_compact(article, style))
                for article in reply.articles[:MAX_EMBEDS]
            )
            return Answer(discord_text(reply.text), embeds, ephemeral=False)

        await answer_with(interaction, work(), likely_ephemeral=False, defer_after_s=defer_after_s)

    @news.autocomplete("topic")
    async def news_topic(interaction: Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await topic_choices(current)

    @tree.command(name="subscribe", description="Post new articles on a topic in this channel")
    @app_commands.describe(
        topic="A topic, for example AI",
        min_quality="Only articles scored at least this (default: the bot's floor)",
        mode="Each story as it comes (default), or one digest of the top stories",
        at="Digest time, HH:MM (hourly: its minute); given alone, a daily digest",
        tz="Time zone of the digest and quiet hours, e.g. Europe/Berlin (default UTC)",
        quiet="Quiet hours, e.g. 22:00-07:00: stories wait until they end, breaking ones don't",
        mention="A role to ping for breaking stories only (its id, or @role)",
    )
    @app_commands.choices(
        mode=[app_commands.Choice(name=m, value=m) for m in DELIVERY_MODE_CHOICES]
    )
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_channels=True)  # a hint to Discord's client only
    async def subscribe(
        interaction: Interaction,
        topic: app_commands.Range[str, 1, MAX_TOPIC_LENGTH],
        min_quality: app_commands.Range[float, 0.0, MAX_QUALITY] | None = None,
        mode: str | None = None,
        at: app_commands.Range[str, 1, MAX_OPTION_TEXT] | None = None,
        tz: app_commands.Range[str, 1, MAX_OPTION_TEXT] | None = None,
        quiet: app_commands.Range[str, 1, MAX_OPTION_TEXT] | None = None,
        mention: app_commands.Range[str, 1, MAX_OPTION_TEXT] | None = None,
    ) -> None:
        caller = caller_of(interaction)
        if caller is None:
            await answer_error(interaction, "/subscribe works in a server channel.")
            return
        try:
            floor = _quality(min_quality)
            timing = Timing(
                mode=_text(mode, "mode"),
                digest_at=_text(at, "at"),
                timezone=_text(tz, "tz"),
                quiet_hours=_text(quiet, "quiet"),
                mention=_text(mention, "mention"),
            )
        except BadOption as exc:
            await answer_error(interaction, str(exc))
            return
        if timing.mention is not None and timing.mention.strip() in (
            str(interaction.guild_id), f"<@&{interaction.guild_id}>"
        ):
            # The server's own id is its @everyone role: never ours to ping.
            await answer_error(interaction, "mention must be a role, not @everyone.")
            return
        missing = missing_bot_permissions(interaction)

        async def work() -> Answer:
            # `Commands` refuses a caller who cannot manage the channel: the real
            # check, whatever Discord's client did with the default permission.
            reply = await commands.handle(caller, Subscribe(str(topic), floor, timing))
            text = reply.text
            if reply.ok and missing:
                text += (
                    "\nNote: I can't post here yet. Give me " + ", ".join(missing)
                    + " in this channel."
                )
            return Answer(discord_text(text), ephemeral=not reply.ok)

        await answer_with(interaction, work(), likely_ephemeral=False, defer_after_s=defer_after_s)

    @subscribe.autocomplete("topic")
    async def subscribe_topic(
        interaction: Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await topic_choices(current)

    @subscribe.autocomplete("tz")
    async def subscribe_tz(
        interaction: Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return [
            app_commands.Choice(name=name, value=name)
            for name in timezone_choices(current, MAX_CHOICES)
            if len(name) <= CHOICE_LIMIT
        ]

    @tree.command(name="unsubscribe", description="Stop posting a topic in this channel")
    @app_commands.describe(topic="A topic this channel is subscribed to")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_channels=True)
    async def unsubscribe(
        interaction: Interaction, topic: app_commands.Range[str, 1, MAX_TOPIC_LENGTH]
    ) -> None:
        caller = caller_of(interaction)
        if caller is None:
            await answer_error(interaction, "/unsubscribe works in a server channel.")
            return

        async def work() -> Answer:
            reply = await commands.handle(caller, Unsubscribe(str(topic)))
            return Answer(discord_text(reply.text), ephemeral=not reply.ok)

        await answer_with(interaction, work(), likely_ephemeral=False, defer_after_s=defer_after_s)

    @unsubscribe.autocomplete("topic")
    async def unsubscribe_topic(
        interaction: Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        caller = caller_of(interaction)
        if caller is None:
            return []
        try:
            reply = await asyncio.wait_for(
                commands.handle(caller, ListSubscriptions()), AUTOCOMPLETE_BUDGET_S
            )
        except TimeoutError:
            return []
        wanted = current.casefold().strip()
        names = sorted({t for sub in reply.subscriptions for t in sub.topics}, key=str.casefold)
        return [
            app_commands.Choice(name=n, value=n)
            for n in names
            if wanted in n.casefold() and len(n) <= CHOICE_LIMIT
        ][:MAX_CHOICES]

    @tree.command(name="subscriptions", description="What this channel is subscribed to")
    @app_commands.guild_only()
    async def subscriptions(interaction: Interaction) -> None:
        caller = caller_of(interaction)
        if caller is None:
            await answer_error(interaction, "/subscriptions works in a server channel.")
            return

        async def work() -> Answer:
            reply = await commands.handle(caller, ListSubscriptions())
            return Answer(discord_text(reply.text), ephemeral=True)

        await answer_with(interaction, work(), likely_ephemeral=True, defer_after_s=defer_after_s)

    @tree.command(name="topics", description="The topics with articles, and how many")
    async def topics(interaction: Interaction) -> None:
        async def work() -> Answer:
            reply = await commands.handle(asker_of(interaction), ListTopics())
            return Answer(discord_text(reply.text), ephemeral=True)

        await answer_with(interaction, work(), likely_ephemeral=True, defer_after_s=defer_after_s)

    if tune:
        _add_tune(tree, commands, defer_after_s)
    return tree


def _add_tune(tree: NewsCommandTree, commands: Commands, defer_after_s: float) -> None:
    @tree.command(
        name="tune",
        description="What reactions here taught or suggest; apply, dismiss or undo it",
    )
    @app_commands.describe(
        action="show (default), or apply / dismiss a suggestion, or undo what is in force",
        number="The adjustment's number (#N); without it: all that the action can take",
    )
    @app_commands.choices(
        action=[app_commands.Choice(name=a, value=a) for a in ("show", *map(str, Action))]
    )
    @app_commands.guild_only()
    async def tune(
        interaction: Interaction,
        action: str = "show",
        number: app_commands.Range[int, 1, 10**12] | None = None,
    ) -> None:
        caller = caller_of(interaction)
        if caller is None:
            await answer_error(interaction, "/tune works in a server channel.")
            return
        if action != "show" and action not in set(map(str, Action)):
            await answer_error(interaction, "action must be show, apply, dismiss or undo.")
            return

        async def work() -> Answer:
            if action == "show":
                reply: TuneReply = await commands.handle(caller, ShowTuning())
            else:
                reply = await commands.handle(caller, Tune(Action(action), number))
            return Answer(
                discord_text(reply.text), ephemeral=not reply.public, buttons=reply.buttons
            )

        await answer_with(interaction, work(), likely_ephemeral=False, defer_after_s=defer_after_s)


async def answer_button(interaction: Interaction, commands: Commands) -> bool:
    """A press of one of our buttons (apply, dismiss, undo): checked like /subscribe, answered
    to the channel when it changed something, to the presser alone when not. False: not ours."""
    data: Mapping[str, Any] = interaction.data or {}
    pressed = parse_button(str(data.get("custom_id", "")))
    if pressed is None:
        return False
    caller = caller_of(interaction)
    if caller is None:
        await answer_error(interaction, "These buttons work in a server channel.")
        return True
    action, adjustment_id = pressed
    reply = await commands.handle(caller, Tune(action, adjustment_id))
    who = escape_reply(interaction.user.display_name)
    text = f"{who}: {reply.text}" if reply.ok else reply.text
    try:
        await interaction.response.send_message(
            discord_text(text), ephemeral=not reply.ok, allowed_mentions=NO_MENTIONS
        )
    except discord.HTTPException as exc:
        log.warning("discord: could not answer a button: %s %s", exc.status, exc.code)
    return True


def reaction_of(payload: discord.RawReactionActionEvent, bot_user_id: int | None) -> Reaction:
    """A reaction event as the tuner reads it (the user id is hashed there, never logged)."""
    return Reaction(
        platform=PLATFORM,
        channel=str(payload.channel_id),
        message_ref=str(payload.message_id),
        user_id=str(payload.user_id),
        emoji=payload.emoji.name or "",
        added=payload.event_type == "REACTION_ADD",
        by_us=bot_user_id is not None and payload.user_id == bot_user_id,
    )


# --- command sync ------------------------------------------------------------------------------


def commands_hash(tree: app_commands.CommandTree[discord.Client], guild_id: int | None) -> str:
    """A digest of exactly what `tree.sync` would send for this scope."""
    scope = None if guild_id is None else discord.Object(guild_id)
    payload = sorted(
        (command.to_dict(tree) for command in tree.get_commands(guild=scope)),
        key=lambda c: (int(c.get("type", 1)), str(c.get("name"))),
    )
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


async def sync_commands(
    tree: app_commands.CommandTree[discord.Client],
    state: State,
    guild_ids: Sequence[int] = (),
) -> list[str]:
    """Sync the commands where their definition changed since the last sync: globally, or to
    each of `guild_ids` at once (development). Returns the scopes synced."""
    application_id = tree.client.application_id
    scopes: list[int | None] = list(guild_ids) or [None]
    synced: list[str] = []
    for guild_id in scopes:
        guild = None if guild_id is None else discord.Object(guild_id)
        if guild is not None:
            tree.copy_global_to(guild=guild)
        label = "global" if guild_id is None else f"guild {guild_id}"
        key = f"{META_KEY_PREFIX}:{application_id}:{'global' if guild_id is None else guild_id}"
        digest = commands_hash(tree, guild_id)
        if await state.get_meta(key) == digest:
            log.debug("discord: %s commands unchanged; not syncing", label)
            continue
        try:
            await tree.sync(guild=guild)
        except discord.Forbidden as exc:
            log.error(
                "discord: cannot register commands in %s (%s %s): invite the bot with the "
                "applications.commands scope (see docs/discord.md)", label, exc.status, exc.code,
            )
            continue
        except discord.HTTPException as exc:
            log.error(
                "discord: syncing %s commands failed (%s %s); will try again at next start",
                label, exc.status, exc.code,
            )
            continue
        except SYNC_TRANSIENT_ERRORS as exc:
            # The commands stay as Discord has them; posting does not depend on this.
            log.error(
                "discord: syncing %s commands failed (%s); will try again at next start",
                label, type(exc).__name__,
            )
            continue
        await state.set_meta(key, digest)
        synced.append(label)
        log.info("discord: synced %s commands", label)
    return synced


# discord.py's default gateway address, which only Discord itself serves.
DISCORDS_OWN_GATEWAY = "wss://gateway.discord.gg"

# --- the gateway ------------------------------------------------------------------------------


class DiscordGateway:
    """Connects the notifier's client to the gateway so slash commands arrive, beside the
    worker, from `start()` to `aclose()`. Posting does not need it: it goes over REST."""

    def __init__(
        self,
        notifier: DiscordNotifier,
        commands: Commands,
        state: State,
        config: DiscordConfig,
        style: RenderStyle,
        *,
        defer_after_s: float = DEFER_AFTER_S,
        tuner: Tuner | None = None,
    ) -> None:
        self._notifier = notifier
        self._state = state
        self._config = config
        self._commands = commands
        self._tuner = tuner
        self.tree = build_tree(
            notifier.client, commands, style, defer_after_s=defer_after_s,
            tune=tuner is not None and tuner.enabled,
        )
        self._connection: asyncio.Task[None] | None = None
        self._listen(notifier.client)

    def _listen(self, client: discord.Client) -> None:
        """Button presses (any interaction the command tree does not take) and, with
        learning from reactions on, reactions (the GUILD_MESSAGE_REACTIONS intent)."""
        commands, tuner = self._commands, self._tuner

        async def on_interaction(interaction: Interaction) -> None:
            if interaction.type is discord.InteractionType.component:
                await answer_button(interaction, commands)

        async def on_reaction(payload: discord.RawReactionActionEvent) -> None:
            if tuner is None:
                return
            bot_user = client.user.id if client.user else None
            try:
                await tuner.on_reaction(reaction_of(payload, bot_user))
            except Exception:
                log.exception("discord: a reaction could not be counted")

        async def on_raw_reaction_add(payload: discord.RawReactionActionEvent) -> None:
            await on_reaction(payload)

        async def on_raw_reaction_remove(payload: discord.RawReactionActionEvent) -> None:
            await on_reaction(payload)

        # discord.py calls `on_<event>` attributes of the client (what `Client.event` sets).
        client.event(on_interaction)
        if tuner is not None and tuner.enabled:
            client.event(on_raw_reaction_add)
            client.event(on_raw_reaction_remove)

    async def start(self) -> None:
        """Sync the commands if they changed, then connect (in the background)."""
        await sync_commands(self.tree, self._state, self._config.guild_ids)
        gateway = await self._gateway_url()
        if gateway is not None:
            # discord.py reads this class attribute when it connects (a plain Client never
            # asks the API for it).
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)
        self._connection = asyncio.create_task(self._connect(), name="discord-gateway")

    async def _gateway_url(self) -> str | None:
        """The configured gateway; else, behind a custom API base (a proxy), the one that API
        names at `GET /gateway`; None keeps what discord.py has (Discord's own, or what an
        embedding program set on the class before starting us)."""
        if self._config.gateway_url:
            return self._config.gateway_url
        if self._config.api_base_url.rstrip("/") == DiscordConfig().api_base_url:
            return None
        current = str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY).rstrip("/")
        if current != DISCORDS_OWN_GATEWAY:
            return None  # already pointed somewhere on purpose: leave it
        try:
            data = await self._notifier.client.http.request(
                discord.http.Route("GET", "/gateway")
            )
        except (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning(
                "discord: %s/gateway did not name a gateway (%s); using Discord's own",
                self._config.api_base_url, type(exc).__name__,
            )
            return None
        url = data.get("url") if isinstance(data, dict) else None
        return url if isinstance(url, str) and url.startswith(("ws://", "wss://")) else None

    async def _connect(self) -> None:
        try:
            # reconnect=True: discord.py resumes or re-identifies after network trouble itself.
            await self._notifier.client.connect(reconnect=True)
        except discord.ConnectionClosed as exc:
            if exc.code == 4004:
                log.critical("discord: the gateway refused the token: %s", TOKEN_REFUSED)
            else:
                self._report_end(f"closed with {exc.code}")
        except (discord.GatewayNotFound, discord.HTTPException, OSError) as exc:
            self._report_end(type(exc).__name__)
        else:
            self._report_end("closed")

    @staticmethod
    def _report_end(why: str) -> None:
        log.error(
            "discord: the gateway connection ended (%s); slash commands are unavailable until "
            "a restart, posting goes on",
            why,
        )

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        connection.cancel()
        await asyncio.gather(connection, return_exceptions=True)
        # Close only the websocket: the HTTP session stays for sends still finishing; the
        # notifier closes the client once the worker has stopped.
        ws = self._notifier.client.ws
        if ws is not None and ws.open:
            await ws.close(code=1000)
        log.info("discord: gateway closed")
