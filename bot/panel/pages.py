"""The panel's pages as HTML, from typed facts. Every value goes through `Markup.format` or
`tag`, which escape it: article text, file names, channel ids and errors are shown as text,
never read as markup. Forms carry a fresh token each (`Chrome.token`)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.articles import Article
from bot.explain import Report
from bot.feedback_store import AdjustmentRow
from bot.feedback_store import Status as AdjustmentStatus
from bot.outbox import DeliveryState
from bot.panel.csrf import TOKEN_FIELD
from bot.panel.forms import SUBSCRIPTION_FIELDS
from bot.panel.html import Markup, escape, join, tag
from bot.panel.queries import ArticleRow, LogFilter, LogRow, StoreFacts
from bot.panel.svg import bands, histogram
from bot.platforms.registry import PLATFORMS
from bot.render.common import safe_link_url
from bot.status import STATE_ORDER, Status
from bot.subscriptions import Subscription, SubscriptionSource
from bot.validation import DELIVERY_MODE_CHOICES, LATE_COVERAGE_CHOICES

ROOT = "/panel"
STYLESHEET = f"{ROOT}/static/panel.css"


@dataclass(frozen=True, slots=True)
class Chrome:
    """What every page of a logged-in session shows: who, the messages from the last change,
    and where each form's token comes from."""

    user: str
    token: Callable[[], str]
    flash: Sequence[tuple[bool, str]] = ()


def when(epoch_s: float | None) -> str:
    if epoch_s is None:
        return "-"
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M:%S")


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def url(path: str, **query: object) -> str:
    wanted = {k: str(v) for k, v in query.items() if v not in (None, "")}
    return f"{ROOT}{path}" + (f"?{urllib.parse.urlencode(wanted)}" if wanted else "")


def article_url(key: str) -> str:
    return url("/article", key=key)


def document(title: str, body: Markup, chrome: Chrome | None = None) -> Markup:
    nav = Markup("")
    if chrome is not None:
        links = join(
            tag("a", label, href=url(path))
            for label, path in (
                ("Home", "/"), ("Subscriptions", "/subscriptions"),
                ("Deliveries", "/deliveries"), ("Store", "/store"),
            )
        )
        logout = post_form(chrome, "/logout", Markup(""), "Log out", css="inline")
        nav = Markup('<header><nav><strong>newsbot</strong> {} {}</nav></header>').format(
            links, logout
        )
    flash = join(
        tag("p", text, class_="flash ok" if ok else "flash problem", role="status")
        for ok, text in (chrome.flash if chrome else ())
    )
    return Markup(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<title>{} · newsbot</title><link rel="stylesheet" href="{}"></head>'
        "<body>{}<main><h1>{}</h1>{}{}</main></body></html>"
    ).format(title, STYLESHEET, nav, title, flash, body)


def post_form(
    chrome: Chrome,
    path: str,
    fields: Markup,
    button: str,
    *,
    css: str = "",
    hidden: Mapping[str, object] | None = None,
) -> Markup:
    extra = join(
        tag("input", type="hidden", name=name, value=value)
        for name, value in (hidden or {}).items()
    )
    return Markup('<form method="post" action="{}" class="{}">{}{}{}<button>{}</button></form>'
                  ).format(
        url(path), css, tag("input", type="hidden", name=TOKEN_FIELD, value=chrome.token()),
        extra, fields, button,
    )


def table(headings: Iterable[str], rows: Iterable[Iterable[object]], css: str = "") -> Markup:
    head = join(tag("th", h, scope="col") for h in headings)
    body = join(tag("tr", join(tag("td", cell) for cell in row)) for row in rows)
    return Markup('<div class="scroll"><table class="{}"><thead><tr>{}</tr></thead>'
                  "<tbody>{}</tbody></table></div>").format(css, head, body)


def external(link: str | None, label: object) -> Markup:
    """A link out of the panel (only http(s)), opened without telling where from."""
    safe = safe_link_url(link)
    if safe is None:
        return escape(label)
    return tag("a", label, href=safe, rel="noopener noreferrer", target="_blank")


# --- login -----------------------------------------------------------------------------------


def login_page(token: str, problem: str | None = None) -> Markup:
    body = Markup(
        '<form method="post" action="{}" class="login">{}{}'
        '<label>Password <input type="password" name="password" autocomplete="current-password" '
        "required autofocus></label><button>Log in</button></form>"
    ).format(
        url("/login"),
        tag("input", type="hidden", name=TOKEN_FIELD, value=token),
        tag("p", problem, class_="flash problem", role="alert") if problem else "",
    )
    return document("Log in", body)


def message_page(title: str, text: str, chrome: Chrome | None = None) -> Markup:
    return document(title, tag("p", text), chrome)


# --- home ------------------------------------------------------------------------------------


def retry_button(chrome: Chrome, platform: str, channel: str) -> Markup:
    return post_form(
        chrome, "/channels/resume", Markup(""), "Retry", css="inline",
        hidden={"platform": platform, "channel": channel},
    )


def home_page(chrome: Chrome, status: Status, parked: Sequence[Subscription]) -> Markup:
    facts = table(
        ("", ""),
        [
            ("Worker", status.worker),
            ("Last heartbeat", f"{age(status.heartbeat_age_s)} ago"
             if status.heartbeat_age_s is not None else "none yet"),
            ("Oldest waiting delivery", age(status.oldest_pending_age_s)
             if status.oldest_pending_age_s is not None else "nothing waits"),
            ("Next due", "-" if status.next_due_in_s is None
             else ("now" if status.next_due_in_s < 1 else f"in {age(status.next_due_in_s)}")),
        ],
        css="facts",
    )
    counts = table(
        ("platform", *STATE_ORDER),
        [
            (platform, *(
                tag("a", by_state.get(name, 0), href=url("/deliveries", target="", state=name))
                if by_state.get(name) else 0
                for name in STATE_ORDER
            ))
            for platform, by_state in status.deliveries.items()
        ],
    ) if status.deliveries else tag("p", "No deliveries yet.")
    crew = table(
        ("worker", "host", "pid", "last seen"),
        [
            (w.id, w.host, w.pid,
             f"{age(w.seen_age_s)} ago" + ("" if w.alive else " (gone)"))
            for w in status.workers
        ],
    ) if status.workers else None
    parked_rows = [
        (sub.id, f"{sub.platform}:{sub.channel}", ", ".join(sub.topics) or "all topics",
         sub.parked_reason or "", retry_button(chrome, sub.platform, sub.channel))
        for sub in parked
    ]
    parked_html = table(("id", "channel", "topics", "why", ""), parked_rows, css="parked") if (
        parked_rows
    ) else tag("p", "None.")
    bad = table(
        ("file", "why"), [(b.path, b.reason) for b in status.bad_files[:20]]
    ) if status.bad_files else tag("p", "None.")
    more_bad = tag("p", tag("a", f"all {len(status.bad_files)} bad files", href=url("/store"))
                   ) if len(status.bad_files) > 20 else ""
    workers = Markup("<section><h2>Workers</h2>{}</section>").format(crew) if crew else ""
    body = Markup(
        "<section><h2>Health</h2>{}</section>{}"
        "<section><h2>Deliveries by state</h2>{}<p>{}</p></section>"
        "<section><h2>Parked subscriptions</h2>{}</section>"
        "<section><h2>Bad files ({})</h2>{}{}</section>"
    ).format(
        facts, workers, counts, tag("a", "The delivery log", href=url("/deliveries")),
        parked_html, len(status.bad_files), bad, more_bad,
    )
    return document("newsbot", body, chrome)


# --- subscriptions ---------------------------------------------------------------------------


def _state_of(sub: Subscription) -> str:
    return f"paused: {sub.parked_reason}" if sub.is_parked else "active"


def learned_section(chrome: Chrome, rows: Sequence[AdjustmentRow]) -> Markup:
    """Every learned adjustment in force or suggested, with its undo (or apply and dismiss)
    button, through the same command layer as chat."""
    from bot.tuning import describe_change

    if not rows:
        return Markup("")
    listed = []
    for row in rows:
        hidden = {"platform": row.platform, "channel": row.channel, "id": row.id}
        if row.status is AdjustmentStatus.APPLIED:
            buttons = post_form(chrome, "/tune", Markup(""), "Undo", css="inline",
                                hidden={**hidden, "action": "undo"})
        else:
            buttons = join([
                post_form(chrome, "/tune", Markup(""), "Apply", css="inline",
                          hidden={**hidden, "action": "apply"}),
                post_form(chrome, "/tune", Markup(""), "Dismiss", css="inline",
                          hidden={**hidden, "action": "dismiss"}),
            ], " ")
        listed.append((
            f"#{row.id}", f"{row.platform}:{row.channel}", describe_change(row),
            "in force" if row.status is AdjustmentStatus.APPLIED else "suggested", buttons,
        ))
    return Markup("<h2>Learned from reactions</h2>{}").format(
        table(("#", "channel", "what and why", "state", ""), listed, css="learned")
    )


def subscriptions_page(
    chrome: Chrome,
    subs: Sequence[Subscription],
    global_floor: float,
    origin: Callable[[Subscription], str],
    learned: Sequence[AdjustmentRow] = (),
) -> Markup:
    rows = []
    for sub in subs:
        target = f"{sub.platform}:{sub.channel}"
        if sub.is_parked:
            toggle = retry_button(chrome, sub.platform, sub.channel)
        else:
            toggle = post_form(
                chrome, "/channels/pause", Markup(""), "Pause", css="inline",
                hidden={"platform": sub.platform, "channel": sub.channel},
            )
        if sub.source is SubscriptionSource.CONFIG:
            change = tag("span", f"in {origin(sub)}", class_="note")
        else:
            change = join([
                tag("a", "Edit", href=url(f"/subscriptions/{sub.id}/edit")),
                post_form(chrome, f"/subscriptions/{sub.id}/remove", Markup(""), "Remove",
                          css="inline"),
            ], " ")
        rows.append((
            sub.id, target, ", ".join(sub.topics) or "all topics", str(sub.mode),
            sub.describe_filters(global_floor), _state_of(sub), join([toggle, change], " "),
        ))
    listing = table(
        ("id", "channel", "topics", "mode", "filters", "state", ""), rows, css="subs"
    ) if rows else tag("p", "No subscriptions yet.")
    body = Markup("<p>{}</p>{}<p class=\"note\">{}</p>{}").format(
        tag("a", "Add a subscription", href=url("/subscriptions/new"), class_="button"),
        listing,
        "Pause and resume act on a channel: all its subscriptions wait together, like a "
        "channel the platform refused; its queued posts keep their place.",
        learned_section(chrome, learned),
    )
    return document("Subscriptions", body, chrome)


_HELP = {
    "platform": "",
    "channel": "the platform's channel id, or webhook:NAME",
    "topics": "comma-separated; empty: every topic",
    "min_quality": "0 to 1000; empty: the global floor",
    "include_unscored": "",
    "backfill": "post the N most recent matching articles now (once per channel and topics)",
    "providers_include": "comma-separated outlet names or domains",
    "providers_exclude": "comma-separated",
    "keywords": "comma-separated; whole words of the title or excerpt",
    "max_age_days": "ignore articles published longer ago; empty: no limit",
    "late_coverage": "another outlet's article on a story already posted",
    "headline_margin": "quality points a late article needs to become the headline",
    "mode": "",
    "digest_at": "HH:MM (hourly: its minute)",
    "timezone": "IANA name, e.g. Europe/Berlin",
    "quiet_hours": "HH:MM-HH:MM; empty: none",
    "breaking_quality": "a story this good is breaking",
    "breaking_outlets": "a story this many outlets told is breaking",
    "mention": "Discord role id or Slack user group id, pinged for breaking stories",
}
_CHOICES: dict[str, tuple[tuple[str, str], ...]] = {
    "platform": tuple((name, spec.title) for name, spec in PLATFORMS.items()),
    "include_unscored": (("", "the global setting"), ("yes", "yes"), ("no", "no")),
    "late_coverage": tuple((c, c) for c in LATE_COVERAGE_CHOICES),
    "mode": tuple((c, c) for c in DELIVERY_MODE_CHOICES),
}


def _field(name: str, value: str, problem: str | None, locked: bool) -> Markup:
    label = name.replace("_", " ")
    if name in _CHOICES:
        options = join(
            tag("option", text, value=choice, selected=choice == value)
            for choice, text in _CHOICES[name]
        )
        control = tag("select", options, name=name, id=f"f-{name}", disabled=locked)
        if locked:  # a disabled field is not sent: the value goes along hidden
            control += tag("input", type="hidden", name=name, value=value)
    else:
        control = tag("input", "", type="text", name=name, id=f"f-{name}", value=value,
                      readonly=locked, aria_invalid="true" if problem else None)
    hint = tag("small", problem or _HELP[name], class_="problem" if problem else "hint")
    return Markup('<div class="field"><label for="f-{}">{}</label>{}{}</div>').format(
        name, label, control, hint
    )


def subscription_form_page(
    chrome: Chrome,
    title: str,
    path: str,
    values: Mapping[str, str],
    problems: Mapping[str, str],
    *,
    editing: bool,
    summary: str | None = None,
) -> Markup:
    fields = join(
        _field(name, values.get(name, ""), problems.get(name),
               locked=editing and name in ("platform", "channel"))
        for name in SUBSCRIPTION_FIELDS
    )
    note = tag("p", summary, class_="flash problem", role="alert") if summary else ""
    form = post_form(chrome, path, fields, "Save", css="subscription")
    return document(title, note + form, chrome)


def form_values(sub: Subscription) -> dict[str, str]:
    """A stored subscription as the form shows it."""

    def number(value: float | None) -> str:
        return "" if value is None else f"{value:g}"

    return {
        "platform": sub.platform,
        "channel": sub.channel,
        "topics": ", ".join(sub.topics),
        "min_quality": number(sub.min_quality),
        "include_unscored": "" if sub.include_unscored is None else (
            "yes" if sub.include_unscored else "no"
        ),
        "backfill": str(sub.backfill),
        "providers_include": ", ".join(sub.providers_include),
        "providers_exclude": ", ".join(sub.providers_exclude),
        "keywords": ", ".join(sub.keywords),
        "max_age_days": number(sub.max_age_days),
        "late_coverage": str(sub.late_coverage),
        "headline_margin": number(sub.headline_margin),
        "mode": str(sub.mode),
        "digest_at": sub.digest_at.strftime("%H:%M"),
        "timezone": sub.timezone,
        "quiet_hours": "" if sub.quiet_hours is None else str(sub.quiet_hours),
        "breaking_quality": number(sub.breaking_quality),
        "breaking_outlets": str(sub.breaking_outlets),
        "mention": sub.mention or "",
    }


# --- the delivery log ------------------------------------------------------------------------

STATES = tuple(str(s) for s in DeliveryState)


def _select(name: str, label: str, choices: Iterable[tuple[str, str]], chosen: str) -> Markup:
    options = join(
        tag("option", text, value=value, selected=value == chosen) for value, text in choices
    )
    return Markup('<label>{} {}</label>').format(label, tag("select", options, name=name))


def log_row(row: LogRow) -> tuple[object, ...]:
    title = row.title if row.title is not None else row.article_key
    article = join([
        tag("a", title, href=article_url(row.article_key)), " ",
        external(row.article_key, "↗"),
    ])
    if row.state == DeliveryState.SENT:
        message = row.message_ref or "(no id)"
        at = when(row.posted_at or row.updated_at)
    else:
        message = ""
        at = f"{when(row.updated_at)} (next try {when(row.next_attempt_at)})" if (
            row.state == DeliveryState.PENDING
        ) else when(row.updated_at)
    why = row.last_error or ("held by quiet hours" if row.held_by else "")
    return (
        row.id, at, f"{row.platform}:{row.channel}", row.kind,
        tag("span", row.state, class_=f"state {row.state}"), row.attempts, article, message, why,
    )


LOG_HEADINGS = ("id", "when (UTC)", "channel", "kind", "state", "tries", "article", "message",
                "why")


def deliveries_page(
    chrome: Chrome,
    rows: Sequence[LogRow],
    wanted: LogFilter,
    targets: Sequence[tuple[str, str]],
    raw: Mapping[str, str],
    problem: str | None,
    page_size: int,
) -> Markup:
    chosen_target = raw.get("target", "")
    filters = Markup(
        '<form method="get" action="{}" class="filters">{}{}'
        '<label>from <input type="date" name="from" value="{}"></label>'
        '<label>to <input type="date" name="to" value="{}"></label>'
        "<button>Show</button></form>"
    ).format(
        url("/deliveries"),
        _select("target", "channel", [("", "all"), *(
            (f"{p}:{c}", f"{p}:{c}") for p, c in targets
        )], chosen_target),
        _select("state", "state", [("", "all"), *((s, s) for s in STATES)], raw.get("state", "")),
        raw.get("from", ""), raw.get("to", ""),
    )
    note = tag("p", problem, class_="flash problem", role="alert") if problem else ""
    listing = table(LOG_HEADINGS, map(log_row, rows), css="log") if rows else tag(
        "p", "No deliveries match."
    )
    more = ""
    if len(rows) == page_size:
        more = tag("p", tag("a", "Older", href=url(
            "/deliveries", target=chosen_target, state=raw.get("state", ""),
            **{"from": raw.get("from", ""), "to": raw.get("to", "")}, before=rows[-1].id,
        )))
    return document("Deliveries", filters + note + listing + more, chrome)


# --- the store -------------------------------------------------------------------------------


def _article_list(articles: Sequence[ArticleRow]) -> Markup:
    return table(
        ("seen (UTC)", "title", "outlet", "quality", "story"),
        [
            (when(a.first_seen_at), tag("a", a.title, href=article_url(a.key)), a.provider,
             "unscored" if a.quality is None else f"{a.quality:g}", a.story_id or "")
            for a in articles
        ],
    ) if articles else tag("p", "None.")


def store_page(
    chrome: Chrome,
    facts: StoreFacts,
    recent: Sequence[ArticleRow],
    unscored: Sequence[ArticleRow],
    bad_files: Sequence[tuple[str, str]],
    topic: str | None,
) -> Markup:
    topics = table(
        ("topic", "articles", "stories"),
        [(tag("a", t.topic, href=url("/store", topic=t.topic)), t.articles, t.stories)
         for t in facts.topics],
    ) if facts.topics else tag("p", "No topics yet.")
    scored = facts.articles - facts.unscored
    body = Markup(
        "<p>{} articles in {} stories; {} scored, {} unscored; {} bad files.</p>"
        '<div class="columns"><section><h2>Quality</h2>{}</section>'
        "<section><h2>By topic</h2>{}</section></div>"
        "<section><h2>{}</h2>{}</section>"
        "<section><h2>Unscored (no quality: only subscriptions that take unscored articles get "
        "them)</h2>{}</section>"
        "<section><h2>Bad files</h2>{}</section>"
    ).format(
        facts.articles, facts.stories, scored, facts.unscored, len(bad_files),
        histogram(bands(facts.qualities)) if facts.qualities else tag("p", "No scores yet."),
        topics,
        f"Recent articles on {topic}" if topic else "Recent articles", _article_list(recent),
        _article_list(unscored),
        table(("file", "why"), bad_files) if bad_files else tag("p", "None."),
    )
    return document("Store", body, chrome)


# --- one article -----------------------------------------------------------------------------


def article_page(
    chrome: Chrome,
    article: Article,
    report: Report,
    story: Sequence[Article],
    previews: Sequence[tuple[str, Markup]],
    rows: Sequence[LogRow],
) -> Markup:
    quality = "unscored" if article.quality is None else f"{article.quality:g}"
    facts = table(("", ""), [
        ("Link", external(article.web_url or article.key, article.web_url or article.key)),
        ("Outlet", article.provider.name or article.provider.domain or "-"),
        ("Quality", quality),
        ("Published", when(article.published_at.timestamp()) if article.published_at else "-"),
        ("Topics", ", ".join(article.topics) or "-"),
    ], css="facts")
    story_rows = [
        (tag("a", a.title, href=article_url(a.key)) if a.key != article.key else a.title,
         a.provider.name or a.provider.domain, "unscored" if a.quality is None
         else f"{a.quality:g}")
        for a in story
    ]
    story_html = table(("title", "outlet", "quality"), story_rows) if story_rows else tag(
        "p", "Not in the bot's state yet."
    )
    explained = table(
        ("subscription", "fate", "why", "message"),
        [(f"{e.subscription_id}: {e.subscription}", e.fate, e.reason, e.message or "")
         for e in report.explanations],
    ) if report.explanations else tag("p", "No subscriptions.")
    cards = join(
        Markup('<section class="card"><h3>{}</h3>{}</section>').format(name, html)
        for name, html in previews
    )
    body = Markup(
        "{}<section><h2>Previews</h2><div class=\"columns\">{}</div></section>"
        "<section><h2>Story #{}</h2>{}</section>"
        "<section><h2>Explain: every subscription</h2>{}</section>"
        "<section><h2>Deliveries of its story</h2>{}</section>"
    ).format(
        facts, cards, report.story.story_id if report.story.story_id is not None else "-",
        story_html, explained,
        table(LOG_HEADINGS, map(log_row, rows), css="log") if rows else tag("p", "None."),
    )
    return document(article.title or article.key, body, chrome)
