"""The panel's routes, mounted at /panel on the HTTP server (bot/web.py).

Every answer carries the panel's headers (a Content-Security-Policy with no script at all and
`frame-ancestors 'none'`, `nosniff`, `same-origin` referrers, no caching). Nothing but the
login form and the stylesheet is served without a session; a post is acted on only with a
session and a genuine, fresh, unused form token, from this origin. Changes go through
`Commands.handle`, like chat and the CLI. A failure of ours is logged and answered with a
polite 503, never a 500 or a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from aiohttp import web

from bot.clock import Clock
from bot.commands import (
    AddSubscription,
    BadArgument,
    ChangeReply,
    Commands,
    EditSubscription,
    ListSubscriptions,
    OperatorRequest,
    PauseChannel,
    RemoveSubscription,
    ResumeChannel,
    Tune,
    TuneReply,
    clean_topic,
    operator,
)
from bot.config import Config, subscription_origin
from bot.explain import explain
from bot.panel import forms, pages, queries
from bot.panel.auth import Access, LoginLimiter, Session, Sessions, password_matches
from bot.panel.csrf import TOKEN_FIELD, FormTokens, new_key
from bot.panel.html import Markup
from bot.panel.style import STYLESHEET
from bot.platforms.registry import PLATFORMS
from bot.state import State
from bot.status import read_status
from bot.subscriptions import Subscription, SubscriptionSource
from bot.worker import routing_defaults

log = logging.getLogger(__name__)

COOKIE = "newsbot_panel"
MAX_FORM_FIELDS = 100
MAX_FIELD_CHARS = 2000
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
# Reachable without a session.
_OPEN = ("/login", "/static/panel.css")


@dataclass(frozen=True, slots=True)
class PanelParts:
    """What the panel reads and acts through."""

    config: Config
    state: State
    commands: Commands
    clock: Clock
    wake_delivery: Callable[[], None]  # rows may be due now (a channel resumed)
    body_timeout_s: float = 5.0


class _Panel:
    def __init__(self, parts: PanelParts, access: Access) -> None:
        self.parts = parts
        self.access = access
        self.sessions = Sessions()
        self.limiter = LoginLimiter()
        self.login_tokens = FormTokens(new_key(), max_age_s=3600.0)
        # What the gate found for each request in progress (its session, its form).
        self._found: dict[int, tuple[Session | None, dict[str, str]]] = {}

    def session_or_none(self, request: web.Request) -> Session | None:
        return self._found[id(request)][0]

    def session(self, request: web.Request) -> Session:
        session = self.session_or_none(request)
        assert session is not None  # the gate lets no request without one through
        return session

    def form(self, request: web.Request) -> dict[str, str]:
        return self._found[id(request)][1]

    # --- helpers -----------------------------------------------------------------------------

    def now(self) -> float:
        return self.parts.clock.monotonic()

    def chrome(self, session: Session) -> pages.Chrome:
        flash, session.flash = tuple(session.flash), []
        return pages.Chrome(
            session.user, lambda: session.forms.issue(self.parts.clock.time()), flash
        )

    def page(self, html: Markup, status: int = 200) -> web.Response:
        return web.Response(text=str(html), status=status, content_type="text/html",
                            charset="utf-8")

    def origin(self, sub: Subscription) -> str:
        return subscription_origin(self.parts.config, sub.platform, sub.channel, sub.topics)

    async def change(self, session: Session, wanted: OperatorRequest) -> ChangeReply:
        caller = operator(f"{session.user} in the panel", SubscriptionSource.PANEL)
        reply = await self.parts.commands.handle(caller, wanted)
        log.info("panel: %s by %s: %s", type(wanted).__name__, session.user,
                 "done" if reply.ok else "refused")
        if reply.ok:
            self.parts.wake_delivery()
        return reply

    def back(self, session: Session, reply: ChangeReply | TuneReply, path: str) -> NoReturn:
        """After a change: its outcome on the next page (post, redirect, get)."""
        session.flash.append((reply.ok, reply.text))
        raise web.HTTPSeeOther(pages.url(path))

    # --- login ---------------------------------------------------------------------------------

    async def login_form(self, request: web.Request) -> web.Response:
        if self.session_or_none(request) is not None:
            raise web.HTTPSeeOther(pages.url("/"))
        return self.page(pages.login_page(self.login_tokens.issue(self.parts.clock.time())))

    async def login(self, request: web.Request) -> web.Response:
        form: dict[str, str] = self.form(request)
        retry = self.login_tokens.issue(self.parts.clock.time())
        if not self.login_tokens.take(form.get(TOKEN_FIELD), self.parts.clock.time()):
            return self.page(pages.login_page(retry, "The form was stale; please try again."),
                             403)
        address = request.remote or "unknown"
        wait_s = self.limiter.wait_s(address, self.now())
        if wait_s > 0:
            response = self.page(pages.login_page(
                retry, f"Too many wrong passwords: try again in {pages.age(wait_s)}."), 429)
            response.headers["Retry-After"] = str(int(wait_s) + 1)
            return response
        if self.access.password is None:
            return self.page(pages.login_page(
                retry, "This panel is entered through the proxy in front of it."), 403)
        if not password_matches(form.get("password", ""), self.access.password):
            self.limiter.failed(address, self.now())
            log.warning("panel: a wrong password from %s", address)
            return self.page(pages.login_page(retry, "Wrong password."), 401)
        self.sessions.end(request.cookies.get(COOKIE))
        session_id, _ = self.sessions.start("operator", self.now())
        log.info("panel: logged in from %s", address)
        response = web.HTTPSeeOther(pages.url("/"))
        self.set_cookie(request, response, session_id)
        raise response

    def set_cookie(self, request: web.Request, response: web.StreamResponse, sid: str) -> None:
        response.set_cookie(
            COOKIE, sid, path=pages.ROOT, httponly=True, samesite="Strict",
            secure=self.parts.config.panel.behind_tls or request.secure,
        )

    async def logout(self, request: web.Request) -> web.Response:
        self.sessions.end(request.cookies.get(COOKIE))
        response = web.HTTPSeeOther(pages.url("/login"))
        response.del_cookie(COOKIE, path=pages.ROOT)
        raise response

    # --- pages ---------------------------------------------------------------------------------

    async def home(self, request: web.Request) -> web.Response:
        state = self.parts.state
        status = await read_status(state, self.parts.clock.time())
        parked = [s for s in await state.subscriptions() if s.is_parked]
        return self.page(pages.home_page(self.chrome(self.session(request)), status, parked))

    async def subscriptions(self, request: web.Request) -> web.Response:
        subs = await self.parts.state.subscriptions()
        learned = (await self.parts.commands.handle(
            operator("panel", SubscriptionSource.PANEL), ListSubscriptions()
        )).learned
        return self.page(pages.subscriptions_page(
            self.chrome(self.session(request)), subs, self.parts.config.min_quality, self.origin,
            learned,
        ))

    async def new_subscription(self, request: web.Request) -> web.Response:
        values = {"platform": next(iter(PLATFORMS)), "backfill": "0"}
        return self.page(pages.subscription_form_page(
            self.chrome(self.session(request)), "Add a subscription", "/subscriptions", values,
            {}, editing=False,
        ))

    async def add(self, request: web.Request) -> web.Response:
        session: Session = self.session(request)
        read = forms.subscription_form(self.form(request))
        if read.spec is None:
            return self.page(pages.subscription_form_page(
                self.chrome(session), "Add a subscription", "/subscriptions", read.values,
                read.problems, editing=False, summary="Please fix the fields marked below.",
            ), 400)
        reply = await self.change(session, AddSubscription(read.spec))
        if not reply.ok:
            return self.page(pages.subscription_form_page(
                self.chrome(session), "Add a subscription", "/subscriptions", read.values, {},
                editing=False, summary=reply.text,
            ), 400)
        return self.back(session, reply, "/subscriptions")

    async def _editable(self, request: web.Request) -> Subscription:
        sub_id = forms.positive_id(request.match_info.get("id"))
        found = await self.parts.state.subscription(sub_id) if sub_id is not None else None
        if found is None:
            raise web.HTTPNotFound(text="no such subscription")
        return found

    async def edit_form(self, request: web.Request) -> web.Response:
        sub = await self._editable(request)
        chrome = self.chrome(self.session(request))
        if sub.source is SubscriptionSource.CONFIG:
            return self.page(pages.message_page(
                f"Subscription {sub.id}",
                f"It is defined in {self.origin(sub)}: the config file owns it, so edit it "
                "there.", chrome))
        return self.page(pages.subscription_form_page(
            chrome, f"Edit subscription {sub.id}", f"/subscriptions/{sub.id}",
            pages.form_values(sub), {}, editing=True,
        ))

    async def edit(self, request: web.Request) -> web.Response:
        session: Session = self.session(request)
        sub = await self._editable(request)
        path = f"/subscriptions/{sub.id}"
        title = f"Edit subscription {sub.id}"
        read = forms.subscription_form(self.form(request))
        if read.spec is None:
            return self.page(pages.subscription_form_page(
                self.chrome(session), title, path, read.values, read.problems, editing=True,
                summary="Please fix the fields marked below.",
            ), 400)
        reply = await self.change(session, EditSubscription(sub.id, read.spec))
        if not reply.ok:
            return self.page(pages.subscription_form_page(
                self.chrome(session), title, path, read.values, {}, editing=True,
                summary=reply.text,
            ), 400)
        return self.back(session, reply, "/subscriptions")

    async def remove(self, request: web.Request) -> web.Response:
        sub = await self._editable(request)
        session: Session = self.session(request)
        reply = await self.change(session, RemoveSubscription(sub.id))
        return self.back(session, reply, "/subscriptions")

    async def pause(self, request: web.Request) -> web.Response:
        platform, channel = forms.target_form(self.form(request))
        session: Session = self.session(request)
        reply = await self.change(session, PauseChannel(platform, channel))
        return self.back(session, reply, "/subscriptions")

    async def tune(self, request: web.Request) -> web.Response:
        """Undo a learned adjustment, or apply or dismiss a suggestion."""
        from bot.tuning import Action

        form = self.form(request)
        platform, channel = forms.target_form(form)
        adjustment_id = forms.positive_id(form.get("id"))
        try:
            action = Action(form.get("action", ""))
        except ValueError:
            raise forms.FormError("that is not something a learned adjustment can do") from None
        session: Session = self.session(request)
        caller = operator(f"{session.user} in the panel", SubscriptionSource.PANEL)
        reply = await self.parts.commands.handle(
            caller, Tune(action, adjustment_id, platform, channel)
        )
        log.info("panel: tune %s by %s: %s", action, session.user,
                 "done" if reply.ok else "refused")
        return self.back(session, reply, "/subscriptions")

    async def resume(self, request: web.Request) -> web.Response:
        platform, channel = forms.target_form(self.form(request))
        session: Session = self.session(request)
        reply = await self.change(session, ResumeChannel(platform, channel))
        return self.back(session, reply, "/")

    async def deliveries(self, request: web.Request) -> web.Response:
        raw = {k: request.query.get(k, "") for k in ("target", "state", "from", "to", "before")}
        problem = None
        try:
            wanted = forms.log_filter(raw, pages.STATES)
        except forms.FormError as exc:
            problem, wanted = str(exc), None
        db = self.parts.state.database
        rows = await queries.delivery_log(db, wanted) if wanted is not None else []
        targets = await queries.delivery_targets(db)
        return self.page(pages.deliveries_page(
            self.chrome(self.session(request)), rows, wanted or queries.LogFilter(), targets, raw,
            problem, queries.MAX_LOG_ROWS,
        ), 400 if problem else 200)

    async def store(self, request: web.Request) -> web.Response:
        asked = request.query.get("topic", "").strip()
        try:
            topic = clean_topic(asked) if asked else None
        except BadArgument as exc:
            return self.page(pages.message_page(
                "No such topic", str(exc), self.chrome(self.session(request))), 400)
        db = self.parts.state.database
        facts = await queries.store_facts(db)
        recent = await queries.recent_articles(db, topic)
        unscored = await queries.recent_articles(db, unscored_only=True)
        bad = await self.parts.state.bad_files()
        return self.page(pages.store_page(
            self.chrome(self.session(request)), facts, recent, unscored, bad, topic
        ))

    async def article(self, request: web.Request) -> web.Response:
        key = request.query.get("key", "")
        state = self.parts.state
        plain = 0 < len(key) <= 4000 and key.isprintable()
        found = await state.get_article(key) if plain else None
        if found is None:
            return self.page(pages.message_page(
                "No such article", "The bot has no article with that URL.",
                self.chrome(self.session(request))), 404)
        from bot.feedback_store import FeedbackStore
        from bot.tuning import learned_for_routing

        learned = await learned_for_routing(
            FeedbackStore(state.database), await state.subscriptions(),
            self.parts.config.feedback.enabled,
        )
        report = await explain(
            state, found, routing_defaults(self.parts.config), self.parts.clock.now(), learned
        )
        story_id = report.story.story_id
        story = await state.story_articles(story_id) if story_id is not None else []
        rows = await queries.delivery_log(
            state.database, queries.LogFilter(story_id=story_id)
        ) if story_id is not None else []
        style = self.parts.config.render
        previews = [
            (spec.title, Markup(spec.preview_html(found, style)))  # escaped by the renderer
            for spec in PLATFORMS.values()
            if spec.preview_html is not None
        ]
        return self.page(pages.article_page(
            self.chrome(self.session(request)), found, report, story, previews, rows
        ))

    async def stylesheet(self, request: web.Request) -> web.Response:
        return web.Response(text=STYLESHEET, content_type="text/css", charset="utf-8")

    # --- the gate every request passes -------------------------------------------------------

    def session_of(self, request: web.Request) -> tuple[Session | None, str | None]:
        """The request's session, and a new session id when a trusted proxy header logged it
        in just now."""
        session = self.sessions.find(request.cookies.get(COOKIE), self.now())
        header = self.access.trusted_header
        if session is not None or header is None:
            return session, None
        user = request.headers.get(header, "").strip()
        if not user or len(user) > 100 or not user.isprintable():
            return None, None
        session_id, session = self.sessions.start(user, self.now())
        return session, session_id

    @web.middleware
    async def gate(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        sub_path = request.match_info.route.resource.canonical if (
            request.match_info.route.resource is not None
        ) else ""
        sub_path = sub_path.removeprefix(pages.ROOT)
        session, new_id = self.session_of(request)
        form: dict[str, str] = {}
        if request.method == "POST":
            if not same_origin(request):
                log.warning("panel: refused a cross-site post to %s", request.path)
                return self.page(pages.message_page(
                    "Refused", "That request came from another site; nothing was changed."), 403)
            form = await read_form(request, self.parts.body_timeout_s)
        if sub_path not in _OPEN:
            if session is None:
                if request.method == "POST":
                    return self.page(pages.message_page(
                        "Refused", "Log in first; nothing was changed."), 403)
                raise web.HTTPSeeOther(pages.url("/login"))
            if request.method == "POST" and not session.forms.take(
                form.get(TOKEN_FIELD), self.parts.clock.time()
            ):
                log.warning("panel: refused a post to %s without a valid form token",
                            request.path)
                return self.page(pages.message_page(
                    "Refused",
                    "That form was not one this session was given, or it was sent already; "
                    "nothing was changed. Reload the page and try again.",
                    self.chrome(session)), 403)
        self._found[id(request)] = (session, form)
        try:
            response = await handler(request)
        finally:
            del self._found[id(request)]
        if new_id is not None:
            self.set_cookie(request, response, new_id)
        return response


class _BadForm(web.HTTPBadRequest):
    pass


async def read_form(request: web.Request, timeout_s: float) -> dict[str, str]:
    """An urlencoded form of text fields, each named once; anything else is a 400."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise _BadForm(text="a form post is expected")
    try:
        async with asyncio.timeout(timeout_s):
            body = await request.read()
    except TimeoutError:
        slow = web.HTTPRequestTimeout(text="request body too slow")
        slow.force_close()
        raise slow from None
    try:
        pairs = urllib.parse.parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS
        )
    except (UnicodeDecodeError, ValueError):
        raise _BadForm(text="the form is not UTF-8 text, or has too many fields") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form or len(value) > MAX_FIELD_CHARS:
            raise _BadForm(text="a field is repeated or too long")
        form[name] = value
    return form


def same_origin(request: web.Request) -> bool:
    """Not a cross-site post: the browser's `Sec-Fetch-Site` (when sent) is same-origin, and
    `Origin` (when sent) names this host."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return urllib.parse.urlsplit(origin).netloc == request.host


@web.middleware
async def guard(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """The panel's headers on every answer; a failure of ours becomes a 503 page."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(SECURITY_HEADERS)
        raise
    except forms.FormError as exc:
        response = web.Response(
            status=400, content_type="text/html", charset="utf-8",
            text=str(pages.message_page("Not understood", f"{exc}; nothing was changed.")),
        )
    except Exception as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        log.error(
            "panel: %s %s failed on our side (%s in %s, %s line %s)",
            request.method, request.path, type(exc).__name__, where.name,
            Path(where.filename).name, where.lineno,
        )
        response = web.Response(
            status=503, content_type="text/html", charset="utf-8",
            text=str(pages.message_page(
                "Sorry", "That failed on our side; the error is in the bot's log. Nothing was "
                "changed unless the page says so.")),
            headers={"Retry-After": "5"},
        )
    response.headers.update(SECURITY_HEADERS)
    return response


def _off(why: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=503, text=f"newsbot: {why}")

    return answer


def panel_app(parts: PanelParts, access: Access | str) -> web.Application:
    """The panel as an application to mount at /panel; when `access` says why it cannot
    start, every path answers that (503)."""
    app = web.Application(middlewares=[guard])
    if isinstance(access, str):
        app.router.add_route("*", "/{tail:.*}", _off(access))
        return app
    panel = _Panel(parts, access)
    app.middlewares.append(panel.gate)
    r = app.router
    r.add_get("/", panel.home)
    r.add_get("/login", panel.login_form)
    r.add_post("/login", panel.login)
    r.add_post("/logout", panel.logout)
    r.add_get("/subscriptions", panel.subscriptions)
    r.add_post("/subscriptions", panel.add)
    r.add_get("/subscriptions/new", panel.new_subscription)
    r.add_get(r"/subscriptions/{id:\d{1,12}}/edit", panel.edit_form)
    r.add_post(r"/subscriptions/{id:\d{1,12}}", panel.edit)
    r.add_post(r"/subscriptions/{id:\d{1,12}}/remove", panel.remove)
    r.add_post("/channels/pause", panel.pause)
    r.add_post("/channels/resume", panel.resume)
    r.add_post("/tune", panel.tune)
    r.add_get("/deliveries", panel.deliveries)
    r.add_get("/store", panel.store)
    r.add_get("/article", panel.article)
    r.add_get("/static/panel.css", panel.stylesheet)
    return app


def add_panel(app: web.Application, parts: PanelParts, access: Access | str) -> None:
    """Mount the panel on the HTTP server's app at /panel (and /panel itself to /panel/)."""

    async def to_root(request: web.Request) -> web.Response:
        raise web.HTTPPermanentRedirect(pages.url("/"))

    app.router.add_get(pages.ROOT, to_root)
    app.add_subapp(pages.ROOT, panel_app(parts, access))
