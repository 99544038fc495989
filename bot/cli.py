"""The `newsbot` command: argument parsing and wiring only."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO, TypeVar

from bot import validation
from bot.config import (
    Config,
    ConfigError,
    ConfigErrors,
    SubscriptionSpec,
    database_target,
    find_config,
)
from bot.logs import configure_logging
from bot.platforms.registry import DEFAULT_PLATFORM, PLATFORM_NAMES
from bot.printable import json_text, printable
from bot.subscriptions import Subscription, SubscriptionSource

log = logging.getLogger("bot")
T = TypeVar("T", int, float, str)


# Each command's exit statuses, shown by its --help (the README's command table says the same;
# a test holds them together). 2 is also argparse's own status for a usage error.
EXIT_STATUSES = {
    "run": "0 stopped cleanly, or (--once) everything delivered; 2 the config, the store "
    "folder, the database (or another `newsbot run` holding it) or a refused credential stops "
    "it; 75 (--once) deliveries are left, each channel named with why: run again later",
    "scan": "0 scanned (bad files are listed, not a failure); 1 the store folder does not "
    "exist; 2 the config cannot be used",
    "check-config": "0 ok; 1 problems found (each listed); 2 the file cannot be read or is "
    "not TOML",
    "healthcheck": "0 healthy; 1 unhealthy (one line per problem); 2 the config cannot be used",
    "explain": "0 explained; 1 no such file, and no article with that URL in the state; 2 the "
    "file is not a valid article, or the config or the database cannot be used",
    "migrate-state": "0 copied; 1 the PostgreSQL database already holds state (nothing "
    "copied); 2 no URL, the config, or either database cannot be used",
    "status": "0 shown; 1 no database yet (`newsbot run` creates it); 2 the config or the "
    "database cannot be used",
    "list": "0 listed; 2 the config or the database cannot be used",
    "add": "0 added or updated; 2 a wrong option (named), or the config or the database "
    "cannot be used",
    "remove": "0 removed; 1 nothing removed (no such subscription, or the config file owns "
    "it); 2 neither --id nor --platform with --channel, or the config or the database cannot "
    "be used",
    "tune": "0 shown, or changed; 1 nothing to change (no adjustment in force, or no "
    "suggestion waiting); 2 the config or the database cannot be used",
    "preview": "0 shown; 1 the file is not a valid article (the reason is printed); 2 the file "
    "cannot be read, or the config cannot be used",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newsbot",
        description="Posts quality news from an article store to Discord, Slack and the terminal.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def command(group: Any, name: str, help_text: str) -> argparse.ArgumentParser:
        return with_config(
            group.add_parser(
                name,
                help=help_text,
                description=help_text,
                epilog=f"exit status: {EXIT_STATUSES[name]}",
            )
        )

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--config",
            metavar="FILE",
            help="TOML config file (default: $NEWSBOT_CONFIG, else the embedded defaults)",
        )
        return p

    run = command(sub, "run", "watch the store and deliver")
    run.add_argument(
        "--once",
        action="store_true",
        help="process the store, deliver everything queued, exit (75 when deliveries are left)",
    )
    run.add_argument(
        "--max-wait-s",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="with --once: wait out rate limits and retries due within this many seconds "
        "(default 300)",
    )
    run.add_argument("--log-format", choices=("text", "json"), help="override logging.format")
    run.add_argument(
        "--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="override logging.level"
    )

    scan = command(sub, "scan", "parse the whole store and report (the bot's state is not touched)")
    scan.add_argument("path", nargs="?", help="store folder (default: the config's store.path)")
    scan.add_argument("--json", action="store_true", help="print one JSON object")
    scan.add_argument(
        "--no-cache",
        action="store_true",
        help="parse every file, ignoring what earlier scans remembered",
    )
    scan.add_argument(
        "--stories",
        action="store_true",
        help="group the articles into stories as the bot does and report what that changes",
    )

    check = command(
        sub, "check-config", "validate the configuration: every problem, in file order"
    )
    check.add_argument(
        "--show",
        action="store_true",
        help="print the effective configuration as TOML, secrets masked",
    )
    command(sub, "healthcheck", "is the worker alive and the store readable?")
    migrate = command(
        sub, "migrate-state",
        "copy the SQLite state ([database] path) into an empty PostgreSQL database",
    )
    migrate.add_argument(
        "--to", metavar="URL",
        help="postgresql://user@host/db (default: DATABASE_URL or DATABASE_URL_FILE, where a "
        "URL with a password belongs)",
    )
    status = command(
        sub, "status", "deliveries by state, what waits and why, parked subscriptions, bad files"
    )
    status.add_argument("--json", action="store_true", help="print one JSON object")
    explain = command(
        sub, "explain",
        "for one article, what each subscription did or will do with it, and why",
    )
    explain.add_argument("article", metavar="FILE_OR_URL", help="an article file, or its URL")
    explain.add_argument("--json", action="store_true", help="print one JSON object")

    subs = sub.add_parser("subscriptions", help="list, add or remove subscriptions")
    subs_sub = subs.add_subparsers(dest="action", required=True)
    command(subs_sub, "list", "list subscriptions: ids, every filter, source, why paused")
    add = command(subs_sub, "add", "add (or update) a subscription")
    add.add_argument("--platform", required=True, choices=PLATFORM_NAMES)
    add.add_argument("--channel", required=True, help="the platform's channel id")
    add.add_argument("--topic", action="append", default=[], help="repeatable; none: all")
    add.add_argument(
        "--min-quality", type=_checked(float, validation.quality_floor), metavar="Q",
        help=f"quality floor, 0 to {validation.MAX_QUALITY:g} (default: the global min_quality)",
    )
    add.add_argument(
        "--include-unscored", action="store_true", default=None,
        help="take articles without a quality score too",
    )
    add.add_argument(
        "--backfill", type=_checked(int, validation.backfill), default=0, metavar="N",
        help=f"post the N most recent matching articles now, 0 to {validation.MAX_BACKFILL} "
        "(once per channel and topics)",
    )
    add.add_argument("--provider", action="append", default=[], help="only these outlets")
    add.add_argument(
        "--exclude-provider", action="append", default=[], help="not these outlets"
    )
    add.add_argument("--keyword", action="append", default=[], help="title/excerpt must match")
    add.add_argument(
        "--max-age-days", type=_checked(float, validation.max_age_days), metavar="D",
        help="ignore articles published more than D days ago",
    )
    add.add_argument(
        "--late-coverage", choices=validation.LATE_COVERAGE_CHOICES, default="edit",
        help="another outlet's article on a story already posted: edit the post (default), "
        "reply in its thread, or off",
    )
    add.add_argument(
        "--headline-margin", type=_checked(float, validation.headline_margin), default=20.0,
        metavar="POINTS",
        help="with --late-coverage edit: a late article this many quality points better "
        "becomes the headline (default 20)",
    )
    add.add_argument(
        "--mode", choices=validation.DELIVERY_MODE_CHOICES, default="instant",
        help="instant: each story as it comes (default); hourly or daily: one digest of the "
        "top stories at --digest-at",
    )
    add.add_argument(
        "--digest-at", type=_checked(str, validation.time_of_day), default="08:00",
        metavar="HH:MM",
        help="daily: the time of the digest; hourly: its minute, each hour (default 08:00, "
        "local to --timezone)",
    )
    add.add_argument(
        "--timezone", type=_checked(str, validation.timezone), default="UTC", metavar="ZONE",
        help="IANA time zone of --digest-at and --quiet-hours, e.g. Europe/Berlin (default "
        "UTC; daylight saving is followed)",
    )
    add.add_argument(
        "--quiet-hours", type=_checked(str, validation.quiet_hours), metavar="HH:MM-HH:MM",
        help="hold stories routed in this local window (e.g. 22:00-07:00) until it ends, "
        "except breaking ones; a digest due inside it goes when it ends",
    )
    add.add_argument(
        "--breaking-quality", type=_checked(float, validation.breaking_quality),
        default=validation.DEFAULT_BREAKING_QUALITY, metavar="Q",
        help="a story this good is breaking (default "
        f"{validation.DEFAULT_BREAKING_QUALITY:g})",
    )
    add.add_argument(
        "--breaking-outlets", type=_checked(int, validation.breaking_outlets),
        default=validation.DEFAULT_BREAKING_OUTLETS, metavar="N",
        help="a story this many outlets covered is breaking (default "
        f"{validation.DEFAULT_BREAKING_OUTLETS})",
    )
    add.add_argument(
        "--mention", metavar="ID",
        help="ping this Discord role id or Slack user group id for breaking stories only",
    )
    add.add_argument(
        "--learn", choices=validation.LEARN_CHOICES,
        help="what the channel's reactions may do ([feedback] enabled = true): suggest "
        "changes (default), apply them at once (auto), or nothing (off)",
    )
    remove = command(
        subs_sub, "remove", "remove subscriptions (not those of the config file: edit it)"
    )
    remove.add_argument("--id", type=int, help="the id shown by `subscriptions list`")
    remove.add_argument("--platform", choices=PLATFORM_NAMES)
    remove.add_argument("--channel")
    remove.add_argument("--topic", help="remove only this topic (default: all of the channel's)")

    tune = command(
        sub, "tune",
        "what a channel's reactions taught or suggest; undo, apply or dismiss it",
    )
    tune.add_argument("--platform", choices=PLATFORM_NAMES, required=True)
    tune.add_argument("--channel", required=True, help="the platform's channel id")
    acting = tune.add_mutually_exclusive_group()
    acting.add_argument(
        "--undo", action="store_true", help="revert the adjustments in force (or --id's)"
    )
    acting.add_argument(
        "--apply", action="store_true", help="apply the waiting suggestions (or --id's)"
    )
    acting.add_argument(
        "--dismiss", action="store_true", help="dismiss the waiting suggestions (or --id's)"
    )
    tune.add_argument("--id", type=int, help="only this adjustment (#N in the listings)")

    preview = command(sub, "preview", "print exactly what would be sent for an article file")
    preview.add_argument("file")
    preview.add_argument(
        "--platform", choices=PLATFORM_NAMES, default=DEFAULT_PLATFORM,
        help=f"whose message to show (default {DEFAULT_PLATFORM}; discord and slack: the JSON "
        "payload)",
    )
    return parser


def _checked(parse: Callable[[str], T], check: Callable[[T], T]) -> Callable[[str], T]:
    """An argparse type: parsed, then held to the same rule as the config and chat (a refusal
    exits 2 naming the option and what it takes)."""

    def convert(text: str) -> T:
        try:
            return check(parse(text))
        except validation.InvalidValue as exc:
            raise argparse.ArgumentTypeError(f"must be {exc.expected}, got {text!r}") from None
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None

    return convert


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = find_config(args.config, os.environ, Path.cwd())
    except ConfigError as exc:
        if args.command == "check-config" and not exc.unreadable:
            # The file was read: list every problem it has, and say "problems found" (1).
            return _report_config_problems(exc, sys.stdout)
        _print_error(exc)
        return 2
    command = args.command
    try:
        if command == "run":
            configure_logging(
                args.log_level or config.log_level, args.log_format or config.log_format
            )
            return _run(config, once=args.once, max_wait_s=args.max_wait_s)
        configure_logging("WARNING", "text")
        if command == "scan" and args.stories:
            return _scan_stories(config, args.path, args.json, sys.stdout)
        if command == "scan":
            return _scan(config, args.path, args.json, not args.no_cache, sys.stdout)
        if command == "check-config":
            if args.show:
                from bot.config_show import effective_config

                sys.stdout.write(effective_config(config, os.environ))
                return 0
            return _check_config(config, sys.stdout)
        if command == "healthcheck":
            return _healthcheck(config, sys.stdout)
        if command == "migrate-state":
            import asyncio

            return asyncio.run(_migrate_state(config, args.to, sys.stdout))
        if command == "status":
            import asyncio

            return asyncio.run(_status(config, args.json, sys.stdout))
        if command == "explain":
            import asyncio

            return asyncio.run(_explain(config, args.article, args.json, sys.stdout))
        if command == "subscriptions":
            import asyncio

            return asyncio.run(_subscriptions(config, args, sys.stdout))
        if command == "tune":
            import asyncio

            return asyncio.run(_tune(config, args, sys.stdout))
        if command == "preview":
            return _preview(config, Path(args.file), args.platform, sys.stdout)
    except ConfigError as exc:
        _print_error(exc)
        return 2
    raise AssertionError(f"unhandled command {command}")


def _print_error(exc: ConfigError) -> None:
    errors = exc.errors if isinstance(exc, ConfigErrors) else [exc]
    for error in errors:
        print(printable(f"newsbot: {error}"), file=sys.stderr)


def _report_config_problems(exc: ConfigError, out: TextIO) -> int:
    errors = exc.errors if isinstance(exc, ConfigErrors) else [exc]
    out.write(f"the configuration has {len(errors)} problem(s), in file order:\n")
    for error in errors:
        out.write(printable(f"  error: {error}") + "\n")
    return 1


def store_problem(config: Config) -> str | None:
    """Why `run` would refuse the store folder (check-config says the same)."""
    if config.store.path.is_dir():
        return None
    return (
        f"the article store {config.store.path} is not a folder; set store.path in the config "
        "(or run from the folder that holds seeds/)"
    )


def _run(config: Config, once: bool, max_wait_s: float) -> int:
    import asyncio

    from bot.app import run_bot
    from bot.state import StateError

    problem = store_problem(config)
    if problem is not None:
        print(printable(f"newsbot: {problem}"), file=sys.stderr)
        return 2
    try:
        return asyncio.run(run_bot(config, once=once, out=sys.stdout, max_wait_s=max_wait_s))
    except StateError as exc:
        print(f"newsbot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _scan(config: Config, path: str | None, as_json: bool, use_cache: bool, out: TextIO) -> int:
    from bot.scan_report import format_report, scan_store

    root = Path(path) if path else config.store.path
    max_bytes = config.store.max_file_bytes
    cache = None
    if use_cache:
        from bot.scan_cache import DigestCache, default_cache_dir

        cache = DigestCache.open(default_cache_dir(os.environ), root, max_bytes)
    try:
        report = scan_store(root, max_bytes, config.store.parallel_threshold, time.time(), cache)
    finally:
        if cache is not None:
            cache.close()
    if as_json:
        out.write(json_text(report.to_json()) + "\n")
    else:
        out.write(format_report(report))
    return 0 if report.root_exists else 1


def _scan_stories(config: Config, path: str | None, as_json: bool, out: TextIO) -> int:
    from bot.story_figures import format_figures, story_figures
    from bot.worker import routing_defaults

    root = Path(path) if path else config.store.path
    if not root.is_dir():
        where = printable(str(root))
        out.write(f"{where}: no such folder (check store.path or the PATH argument)\n")
        return 1
    figures = story_figures(
        root, config.store.max_file_bytes, config.store.parallel_threshold,
        routing_defaults(config),
    )
    out.write(json_text(figures.to_json()) + "\n" if as_json else format_figures(figures))
    return 0


async def _migrate_state(config: Config, to: str | None, out: TextIO) -> int:
    from bot.config import read_secret
    from bot.database import StateError
    from bot.migrate_state import NotEmpty, migrate_state
    from bot.postgres import without_password
    from bot.sql import POSTGRES_SCHEMES

    url = to or read_secret("DATABASE_URL", os.environ)
    if not url or not url.startswith(POSTGRES_SCHEMES):
        raise ConfigError(
            "migrate-state needs the PostgreSQL database: --to postgresql://user@host/db, or "
            "DATABASE_URL (or DATABASE_URL_FILE) for a URL with a password"
        )
    source = config.database.path
    if not source.is_file():
        raise ConfigError(f"no SQLite state at {source} ([database] path) to copy")
    try:
        copied = await migrate_state(source, url)
    except NotEmpty as exc:
        print(printable(f"newsbot: migrate-state: {exc}"), file=sys.stderr)
        return 1
    except StateError as exc:
        raise ConfigError(f"migrate-state: {exc}") from None
    for item in copied:
        out.write(f"  {item.table}: {item.rows} rows\n")
    out.write(
        f"copied {sum(c.rows for c in copied)} rows from {printable(str(source))} to "
        f"{printable(without_password(url))}; point the workers at it with DATABASE_URL "
        "(docs/postgresql.md)\n"
    )
    return 0


def _healthcheck(config: Config, out: TextIO) -> int:
    from bot.health import check_health

    health = check_health(config, time.time(), database_target(config, os.environ))
    out.write("healthy\n" if health.ok else "".join(f"unhealthy: {p}\n" for p in health.problems))
    return 0 if health.ok else 1


async def _explain(config: Config, target: str, as_json: bool, out: TextIO) -> int:
    from datetime import UTC, datetime

    from bot.articles import ArticleError, parse_article
    from bot.clock import SystemClock
    from bot.explain import explain, format_report
    from bot.state import State, StateError
    from bot.urls import normalize_url
    from bot.worker import routing_defaults

    path = Path(target)
    article = None
    if path.is_file():
        try:
            article = parse_article(path.read_bytes(), str(path), config.store.max_file_bytes)
        except ArticleError as exc:
            print(f"newsbot: {printable(str(exc))}", file=sys.stderr)
            return 2
    try:
        state = await State.open(database_target(config, os.environ), SystemClock())
    except StateError as exc:
        print(f"newsbot: {exc}", file=sys.stderr)
        return 2
    try:
        if article is None:
            try:
                key = normalize_url(target)
            except ValueError:
                key = target
            article = await state.get_article(key)
            if article is None:
                print(
                    f"newsbot: {printable(target)} is neither an article file nor the URL of an "
                    "article the bot has seen (run `newsbot scan` to check the store)",
                    file=sys.stderr,
                )
                return 1
        from bot.feedback_store import FeedbackStore
        from bot.tuning import learned_for_routing

        learned = await learned_for_routing(
            FeedbackStore(state.database), await state.subscriptions(), config.feedback.enabled
        )
        report = await explain(
            state, article, routing_defaults(config), datetime.now(UTC), learned
        )
    finally:
        await state.aclose()
    out.write(report.to_json() if as_json else format_report(report))
    return 0


async def _status(config: Config, as_json: bool, out: TextIO) -> int:
    from bot.clock import SystemClock
    from bot.state import State, StateError
    from bot.status import format_status, read_status

    target = database_target(config, os.environ)
    if isinstance(target, Path) and not target.is_file():
        print(f"newsbot: no database at {target} yet: `newsbot run` creates it", file=sys.stderr)
        return 1
    try:
        state = await State.open(target, SystemClock())
    except StateError as exc:
        print(f"newsbot: {exc}", file=sys.stderr)
        return 2
    try:
        status = await read_status(state, time.time())
    finally:
        await state.aclose()
    out.write(status.to_json() if as_json else format_status(status))
    return 0


def _check_config(config: Config, out: TextIO) -> int:
    from bot.credentials import (
        Secrets,
        Target,
        command_notes,
        command_plans,
        config_targets,
        credential_problems,
        platforms_in_use,
    )
    from bot.state import peek_subscription_targets

    # The subscriptions made from chat or the CLI too: `run` would meet their problems as well.
    stored = [Target(p, c) for p, c in peek_subscription_targets(config.database.path)]
    targets = config_targets(config) + stored
    secrets = Secrets(os.environ)
    store = store_problem(config)
    problems = ([store] if store else []) + credential_problems(config, targets, secrets)
    if config.panel.enabled:
        from bot.panel.auth import panel_access

        access = panel_access(config, secrets)
        if isinstance(access, str):
            problems.append(access)
    notes = command_notes(command_plans(config, platforms_in_use(targets, secrets), secrets))
    where = config.source or "embedded defaults"
    out.write(f"{where}: {'ok' if not problems else 'problems found'}\n")
    out.write(f"  store: {config.store.path}\n  database: {config.database.path}\n")
    out.write(
        f"  min_quality: {config.min_quality:g}, include_unscored: "
        f"{str(config.include_unscored).lower()}\n"
    )
    for spec in config.subscriptions:
        topics = ", ".join(spec.topics) or "all topics"
        out.write(f"  subscription: {spec.platform}:{spec.channel} — {topics}\n")
    for note in notes:
        out.write(f"  note: {note}\n")
    for problem in problems:
        out.write(printable(f"  error: {problem}") + "\n")
    return 1 if problems else 0


async def _subscriptions(config: Config, args: argparse.Namespace, out: TextIO) -> int:
    """Parse the options into a request of `bot.commands`, and print its reply."""
    from bot.clock import SystemClock
    from bot.commands import (
        AddSubscription,
        Commands,
        ListSubscriptions,
        RemoveChannelSubscriptions,
        RemoveSubscription,
        operator,
    )
    from bot.config import subscription_origin
    from bot.state import State, StateError
    from bot.tuning import describe_state
    from bot.worker import routing_defaults

    if args.action == "remove" and args.id is None and not (args.platform and args.channel):
        print(
            "newsbot: give --id, or --platform and --channel (and optionally --topic)",
            file=sys.stderr,
        )
        return 2
    clock = SystemClock()
    try:
        state = await State.open(database_target(config, os.environ), clock)
    except StateError as exc:
        print(f"newsbot: {exc}", file=sys.stderr)
        return 2
    from bot.feedback_store import FeedbackStore
    from bot.tuning import Tuner

    commands = Commands(
        state, routing_defaults(config), clock,
        origin=lambda sub: subscription_origin(config, sub.platform, sub.channel, sub.topics),
        tuner=Tuner(FeedbackStore(state.database), state, config.feedback, clock,
                    global_floor=config.min_quality),
    )
    caller = operator("cli", SubscriptionSource.CLI)
    try:
        if args.action == "list":
            listed = await commands.handle(caller, ListSubscriptions())
            if not listed.subscriptions:
                out.write("no subscriptions\n")
            for s in listed.subscriptions:
                out.write(printable(f"{s.id:4}  {s.describe(config.min_quality)}") + "\n")
            for row in listed.learned:
                out.write(
                    printable(f"      learned in {row.platform}:{row.channel}: "
                              f"{describe_state(row)}") + "\n"
                )
            return 0
        if args.action == "add":
            if args.mention is not None:
                # Checked here too, to name the option (its rule needs the platform, so
                # argparse cannot).
                from bot.platforms.registry import check_mention

                try:
                    check_mention(args.platform, args.mention)
                except validation.InvalidValue as exc:
                    print(
                        printable(
                            f"newsbot: subscriptions add: --mention must be {exc.expected}, "
                            f"got {args.mention!r}"
                        ),
                        file=sys.stderr,
                    )
                    return 2
            added = await commands.handle(caller, AddSubscription(_spec_of(args)))
            if added.refused:
                _refuse_config_owned(config, list(added.refused))
                return 2
            if added.subscription is None:
                print(printable(f"newsbot: subscriptions add: {added.text}"), file=sys.stderr)
                return 2
            verb = "added" if added.created else "updated"
            shown = added.subscription.describe(config.min_quality)
            out.write(printable(f"{verb} subscription {added.subscription.id}: {shown}") + "\n")
            if added.backfill_skipped:
                out.write(
                    "backfill already ran once for this channel and topics: not again "
                    "(it never runs twice)\n"
                )
            return 0
        if args.id is not None:
            removed = await commands.handle(caller, RemoveSubscription(args.id))
            if removed.refused:
                _refuse_config_owned(config, list(removed.refused))
                return 1
            out.write(f"removed subscription {args.id}\n" if removed.ok else "no such id\n")
            return 0 if removed.ok else 1
        changed = await commands.handle(
            caller, RemoveChannelSubscriptions(args.platform, args.channel, args.topic)
        )
        out.write(f"changed {changed.changed} subscription(s)\n")
        if changed.refused:
            _refuse_config_owned(config, list(changed.refused))
        return 0 if changed.changed else 1
    finally:
        await state.aclose()


async def _tune(config: Config, args: argparse.Namespace, out: TextIO) -> int:
    """`newsbot tune`: through the same command layer as `/news tune` and the panel."""
    from bot.clock import SystemClock
    from bot.commands import Commands, ShowTuning, Tune, operator
    from bot.feedback_store import FeedbackStore
    from bot.state import State, StateError
    from bot.tuning import Action, Tuner
    from bot.worker import routing_defaults

    clock = SystemClock()
    try:
        state = await State.open(config.database.path, clock)
    except StateError as exc:
        print(f"newsbot: {exc}", file=sys.stderr)
        return 2
    tuner = Tuner(
        FeedbackStore(state.database), state, config.feedback, clock,
        global_floor=config.min_quality,
    )
    commands = Commands(state, routing_defaults(config), clock, tuner=tuner)
    caller = operator("cli", SubscriptionSource.CLI)
    try:
        action = (
            Action.UNDO if args.undo else Action.APPLY if args.apply
            else Action.DISMISS if args.dismiss else None
        )
        if action is None:
            shown = await commands.handle(caller, ShowTuning(args.platform, args.channel))
            out.write(printable(shown.text) + "\n")
            return 0 if shown.ok else 2
        reply = await commands.handle(caller, Tune(action, args.id, args.platform, args.channel))
        out.write(printable(reply.text) + "\n")
        return 0 if reply.ok else 1
    finally:
        await state.aclose()


def _spec_of(args: argparse.Namespace) -> SubscriptionSpec:
    """`subscriptions add`'s options as a subscription (argparse checked each already)."""
    return SubscriptionSpec(
        platform=args.platform,
        channel=args.channel,
        topics=tuple(args.topic),
        min_quality=args.min_quality,
        include_unscored=args.include_unscored,
        backfill=args.backfill,
        providers_include=tuple(args.provider),
        providers_exclude=tuple(args.exclude_provider),
        keywords=tuple(args.keyword),
        max_age_days=args.max_age_days,
        late_coverage=args.late_coverage,
        headline_margin=args.headline_margin,
        mode=args.mode,
        digest_at=args.digest_at,
        timezone=args.timezone,
        quiet_hours=args.quiet_hours,
        breaking_quality=args.breaking_quality,
        breaking_outlets=args.breaking_outlets,
        mention=args.mention,
        learn=args.learn,
    )


def _refuse_config_owned(config: Config, subs: list[Subscription]) -> None:
    """The config file owns these: say where each is, and how to remove it."""
    from bot.config import subscription_origin

    for sub in subs:
        where = subscription_origin(config, sub.platform, sub.channel, sub.topics)
        print(
            printable(
                f"newsbot: subscription {sub.id} ({sub.platform}:{sub.channel}) is defined in "
                f"{where}; the config file owns it: edit the file to remove it, and the next "
                "start removes it here"
            ),
            file=sys.stderr,
        )


def _preview(config: Config, path: Path, platform: str, out: TextIO) -> int:
    from bot.articles import ArticleError, parse_article
    from bot.platforms.registry import render_preview

    try:
        article = parse_article(path.read_bytes(), str(path), config.store.max_file_bytes)
    except OSError as exc:
        print(printable(f"newsbot: cannot read {path}: {exc.strerror}"), file=sys.stderr)
        return 2
    except ArticleError as exc:
        print(printable(f"newsbot: {exc}"), file=sys.stderr)
        return 1
    text = render_preview(article, platform, config.render)
    out.write(text if text.endswith("\n") else text + "\n")
    return 0

