"""The fake Discord is faithful enough for the real discord.py: these tests drive discord.py 2.x
itself (never a stub) against tests/fakes/discord_server.py."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import json
import warnings
from collections.abc import AsyncIterator

import aiohttp
import pytest

with warnings.catch_warnings():
    # discord.py 2.7 imports the stdlib audioop (deprecated in 3.11) for voice; we use no voice.
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord
    from discord import app_commands

from tests.fakes.discord_server import (
    FakeDiscord,
    Permission,
    RateLimitPolicy,
    patch_discord_py,
    permissions,
)

CHANNEL = 1_210_000_000_000_001_001
OTHER_CHANNEL = 1_210_000_000_000_001_002
GUILD = 1_210_000_000_000_000_100


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    # Discord's shape (5 per window per channel) with a shorter window, to keep tests fast.
    async with FakeDiscord(message_rate_limit=RateLimitPolicy(limit=5, window=0.5)) as server:
        server.add_channel(CHANNEL, guild_id=GUILD)
        server.add_channel(OTHER_CHANNEL, guild_id=GUILD)
        with patch_discord_py(server):
            yield server


def new_client() -> discord.Client:
    # Default intents hold no privileged ones. guild_ready_timeout=0: on_ready fires right after
    # READY instead of 2 s later.
    return discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.0)


@contextlib.asynccontextmanager
async def logged_in(fake: FakeDiscord) -> AsyncIterator[discord.Client]:
    """REST only: login (GET /users/@me, GET /oauth2/applications/@me), no gateway."""
    client = new_client()
    try:
        await client.login(fake.bot_token)
        yield client
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def running(client: discord.Client, token: str) -> AsyncIterator[None]:
    """Login and connect to the gateway; returns once on_ready fired."""
    ready = asyncio.Event()

    async def on_ready() -> None:
        ready.set()

    client.event(on_ready)
    runner = asyncio.create_task(client.start(token))
    waiter = asyncio.create_task(ready.wait())
    try:
        done, _ = await asyncio.wait(
            {runner, waiter}, timeout=5.0, return_when=asyncio.FIRST_COMPLETED
        )
        if runner in done:
            runner.result()
        assert waiter in done, "on_ready did not fire"
        yield
    finally:
        waiter.cancel()
        await client.close()
        await asyncio.gather(runner, waiter, return_exceptions=True)


def embed(title: str = "Quality news", description: str = "An excerpt.") -> discord.Embed:
    e = discord.Embed(title=title, description=description, url="https://example.org/a")
    e.add_field(name="Source", value="Example Times")
    e.set_footer(text="newsbot")
    return e


# --------------------------------------------------------------------------- 1. login + gateway


async def test_client_logs_in_and_connects_through_the_fake(fake: FakeDiscord) -> None:
    client = new_client()
    async with running(client, fake.bot_token):
        assert client.user is not None
        assert client.user.id == fake.bot_user_id
        assert client.application_id == fake.application_id
        session = await fake.wait_for_session()
        await fake.wait_for(lambda: session.heartbeats >= 1, what="first heartbeat")

    rest = [(r.method, r.route) for r in fake.requests if not r.websocket]
    assert rest[:2] == [("GET", "/users/@me"), ("GET", "/oauth2/applications/@me")]
    assert all(r.headers["Authorization"] == f"Bot {fake.bot_token}" for r in fake.requests[:2])
    assert session.query == {"v": "10", "encoding": "json", "compress": "zlib-stream"}
    identify = next(f for f in session.received if f["op"] == 2)
    assert identify["d"]["token"] == fake.bot_token
    assert identify["d"]["intents"] == discord.Intents.default().value
    sent_ops = [f["op"] for f in session.sent]
    assert sent_ops[0] == 10  # HELLO
    assert sent_ops.count(0) == 1 and session.sent[sent_ops.index(0)]["t"] == "READY"
    assert 11 in sent_ops  # HEARTBEAT_ACK (discord.py beats right after HELLO)
    await fake.wait_for(lambda: session.closed, what="client closing the socket")
    # Client.close() asks for 1000, but the pending receive() wakes first and closes with 4000.
    assert session.close_code in (1000, 4000)


async def test_gateway_can_really_zlib_compress() -> None:
    async with FakeDiscord(gateway_compress=True) as server:
        with patch_discord_py(server):
            client = new_client()
            async with running(client, server.bot_token):
                session = await server.wait_for_session()
                assert session.compress
                assert client.user is not None


async def test_bad_token_on_gateway_closes_4004(fake: FakeDiscord) -> None:
    client = new_client()
    try:
        await client.login(fake.bot_token)
        fake.bot_token = "revoked"  # REST login passed; the gateway now refuses the token
        with pytest.raises(discord.ConnectionClosed) as info:
            await asyncio.wait_for(client.connect(), 5.0)
        assert info.value.code == 4004
    finally:
        await client.close()


async def test_reconnect_request_is_resumed(fake: FakeDiscord) -> None:
    client = new_client()
    resumed = asyncio.Event()

    async def on_resumed() -> None:
        resumed.set()

    client.event(on_resumed)
    async with running(client, fake.bot_token):
        first = await fake.wait_for_session()
        await fake.request_reconnect()
        await asyncio.wait_for(resumed.wait(), 5.0)
        second = await fake.wait_for_session()
        assert second is not first
        assert second.resumed and second.session_id == first.session_id
        assert next(f for f in second.received if f["op"] == 6)["d"]["session_id"] == (
            first.session_id
        )


# --------------------------------------------------------------------------- 2./3. messages


async def test_send_records_nonce_and_allowed_mentions(fake: FakeDiscord) -> None:
    async with logged_in(fake) as client:
        channel = client.get_partial_messageable(CHANNEL)
        sent = await channel.send(
            embed=embed(), nonce="abc", allowed_mentions=discord.AllowedMentions.none()
        )

    assert sent.channel.id == CHANNEL
    assert sent.author.id == fake.bot_user_id and sent.author.bot
    assert sent.embeds[0].title == "Quality news"
    [request] = fake.requests_to("POST", f"/channels/{CHANNEL}/messages")
    assert request.json["nonce"] == "abc"
    assert request.json["enforce_nonce"] is True
    assert request.json["allowed_mentions"]["parse"] == []
    [stored] = fake.messages(CHANNEL)
    assert stored["id"] == str(sent.id)
    assert stored["nonce"] == "abc"
    assert stored["type"] == 0 and stored["mentions"] == [] and stored["attachments"] == []


async def test_fetch_channel_and_edit_message(fake: FakeDiscord) -> None:
    async with logged_in(fake) as client:
        channel = await client.fetch_channel(CHANNEL)
        assert isinstance(channel, discord.TextChannel)
        assert channel.guild.id == GUILD
        message = await channel.send("first")
        edited = await message.edit(content="second")
        assert edited.content == "second"
        assert edited.edited_at is not None
        upload = discord.File(io.BytesIO(b"hello"), filename="story.txt")
        with_file = await channel.send("attached", file=upload, nonce="d-file")
    assert fake.messages(CHANNEL)[0]["content"] == "second"
    assert with_file.attachments[0].filename == "story.txt"
    multipart = fake.requests_to("POST", f"/channels/{CHANNEL}/messages")[-1]
    assert multipart.files == [("files[0]", "story.txt", 5)]
    assert multipart.json["nonce"] == "d-file"  # payload_json is parsed


async def test_same_nonce_twice_creates_one_message(fake: FakeDiscord) -> None:
    async with logged_in(fake) as client:
        channel = client.get_partial_messageable(CHANNEL)
        first = await channel.send("story", nonce="delivery-1")
        again = await channel.send("story", nonce="delivery-1")
        other_channel = await client.get_partial_messageable(OTHER_CHANNEL).send(
            "story", nonce="delivery-1"
        )
    assert first.id == again.id
    assert other_channel.id != first.id  # nonces are per channel
    assert len(fake.messages(CHANNEL)) == 1
    assert len(fake.requests_to("POST", f"/channels/{CHANNEL}/messages")) == 2


async def test_mentions_only_ping_when_allowed(fake: FakeDiscord) -> None:
    text = "@everyone look <@1210000000000000777>"
    async with logged_in(fake) as client:
        channel = client.get_partial_messageable(CHANNEL)
        quiet = await channel.send(text, allowed_mentions=discord.AllowedMentions.none())
        loud = await channel.send(text)
    assert not quiet.mention_everyone and quiet.mentions == []
    assert loud.mention_everyone and [u.id for u in loud.mentions] == [1210000000000000777]


async def test_payload_limits_answer_50035(fake: FakeDiscord) -> None:
    async with logged_in(fake) as client:
        channel = client.get_partial_messageable(CHANNEL)
        with pytest.raises(discord.HTTPException) as info:
            await channel.send(embed=embed(description="x" * 4097))
        assert info.value.status == 400 and info.value.code == 50035
        assert "embeds.0.description" in info.value.text
        with pytest.raises(discord.HTTPException) as info:
            await channel.send("x" * 2001)
        assert "content" in info.value.text
        with pytest.raises(discord.HTTPException) as info:
            await channel.send("ok", nonce="n" * 26)
        assert "nonce" in info.value.text
        too_big = [embed(description="y" * 4000), embed(description="z" * 2000)]
        with pytest.raises(discord.HTTPException) as info:
            await channel.send(embeds=too_big)
        assert "6000" in info.value.text
        bad_link = discord.Embed(title="t", url="javascript:alert(1)")
        with pytest.raises(discord.HTTPException) as info:
            await channel.send(embed=bad_link)
        assert "embeds.0.url" in info.value.text
        with pytest.raises(discord.HTTPException) as info:
            await channel.send()
        assert info.value.code == 50006  # Cannot send an empty message
    assert fake.messages(CHANNEL) == []


# --------------------------------------------------------------------------- 4. rate limits


async def test_injected_429_is_waited_out_and_retried(fake: FakeDiscord) -> None:
    fault = fake.inject("POST", f"/channels/{CHANNEL}/messages", status=429, retry_after=0.2)
    async with logged_in(fake) as client:
        await client.get_partial_messageable(CHANNEL).send("story", nonce="d-429")
    first, second = fake.requests_to("POST", f"/channels/{CHANNEL}/messages")
    assert fault.hits == 1
    assert (first.status, second.status) == (429, 200)
    assert second.received_at - first.received_at >= 0.2
    assert len(fake.messages(CHANNEL)) == 1


async def test_global_429_blocks_then_retries(fake: FakeDiscord) -> None:
    fake.inject("POST", "/channels/*/messages", status=429, retry_after=0.15, global_=True)
    async with logged_in(fake) as client:
        await client.get_partial_messageable(CHANNEL).send("story")
    first, second = fake.requests_to("POST", f"/channels/{CHANNEL}/messages")
    assert second.received_at - first.received_at >= 0.15
    assert len(fake.messages(CHANNEL)) == 1


async def test_429_wire_format() -> None:
    limited = RateLimitPolicy(limit=2, window=30.0)
    async with FakeDiscord(message_rate_limit=limited) as server, aiohttp.ClientSession() as http:
        server.add_channel(CHANNEL)
        url = f"{server.base_url}/channels/{CHANNEL}/messages"
        headers = {"Authorization": f"Bot {server.bot_token}"}
        answers = []
        for n in range(3):
            async with http.post(url, json={"content": f"m{n}"}, headers=headers) as response:
                answers.append((response.status, dict(response.headers), await response.read()))
    (s1, h1, _), (s2, h2, _), (s3, h3, body3) = answers
    assert (s1, s2, s3) == (200, 200, 429)
    assert h1["Content-Type"] == "application/json"
    assert (h1["X-RateLimit-Limit"], h1["X-RateLimit-Remaining"]) == ("2", "1")
    assert h2["X-RateLimit-Remaining"] == "0"
    assert float(h2["X-RateLimit-Reset-After"]) > 29.0
    assert float(h2["X-RateLimit-Reset"]) > 1e9
    assert h1["X-RateLimit-Bucket"] == h2["X-RateLimit-Bucket"] == h3["X-RateLimit-Bucket"]
    assert h3["Via"] and h3["X-RateLimit-Scope"] == "user" and h3["Retry-After"] == "30"
    assert h3["Content-Type"] == "application/json"
    payload = json.loads(body3)
    assert payload["message"] == "You are being rate limited."
    assert payload["global"] is False and 29.0 < payload["retry_after"] <= 30.0


async def test_discord_py_paces_itself_by_the_headers() -> None:
    async with FakeDiscord(message_rate_limit=RateLimitPolicy(limit=2, window=0.3)) as server:
        server.add_channel(CHANNEL)
        with patch_discord_py(server):
            async with logged_in(server) as client:
                channel = client.get_partial_messageable(CHANNEL)
                for n in range(5):
                    await channel.send(f"story {n}", nonce=f"pace-{n}")
        sent = server.requests_to("POST", f"/channels/{CHANNEL}/messages")
        assert server.rate_limited_responses() == []
        assert len(server.messages(CHANNEL)) == 5
        assert sent[2].received_at - sent[0].received_at >= 0.3
        assert sent[4].received_at - sent[2].received_at >= 0.3


async def test_send_returns_only_after_an_exhausted_bucket_resets() -> None:
    async with FakeDiscord(message_rate_limit=RateLimitPolicy(limit=1, window=0.4)) as server:
        server.add_channel(CHANNEL)
        with patch_discord_py(server):
            async with logged_in(server) as client:
                loop = asyncio.get_running_loop()
                started = loop.time()
                await client.get_partial_messageable(CHANNEL).send("only one")
                elapsed = loop.time() - started
        [request] = server.requests_to("POST", f"/channels/{CHANNEL}/messages")
        assert request.responded_at is not None
        assert request.responded_at - request.received_at < 0.1  # posted at once...
        assert elapsed >= 0.35  # ...but send() sleeps out the bucket before returning


# --------------------------------------------------------------------------- 5./6. errors


async def test_unknown_and_forbidden_channels(fake: FakeDiscord) -> None:
    async with logged_in(fake) as client:
        with pytest.raises(discord.NotFound) as not_found:
            await client.get_partial_messageable(1_210_000_000_000_009_999).send("x")
        assert not_found.value.code == 10003

        fake.forbid_channel(CHANNEL, code=50013)
        with pytest.raises(discord.Forbidden) as forbidden:
            await client.get_partial_messageable(CHANNEL).send("x")
        assert forbidden.value.code == 50013
        assert (await client.fetch_channel(CHANNEL)).id == CHANNEL  # may still see it

        fake.forbid_channel(OTHER_CHANNEL, code=50001)
        with pytest.raises(discord.Forbidden) as no_access:
            await client.fetch_channel(OTHER_CHANNEL)
        assert no_access.value.code == 50001
    assert fake.messages(CHANNEL) == []


async def test_wrong_token_is_login_failure(fake: FakeDiscord) -> None:
    client = new_client()
    try:
        with pytest.raises(discord.LoginFailure):
            await client.login("not-the-token")
    finally:
        await client.close()
    [request] = fake.requests
    assert (request.route, request.status) == ("/users/@me", 401)


# --------------------------------------------------------------------------- 7. slash commands


def build_tree(client: discord.Client) -> app_commands.CommandTree[discord.Client]:
    tree: app_commands.CommandTree[discord.Client] = app_commands.CommandTree(client)

    @tree.command(name="ping", description="Check the bot is alive")
    async def ping(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("hi", ephemeral=True)

    @tree.command(name="subscribe", description="Subscribe this channel to a topic")
    @app_commands.describe(topic="Topic to follow")
    @app_commands.default_permissions(manage_channels=True)
    @app_commands.checks.has_permissions(manage_channels=True)
    async def subscribe(interaction: discord.Interaction, topic: str) -> None:
        await interaction.response.send_message(f"subscribed to {topic}", ephemeral=True)

    @subscribe.error
    async def subscribe_error(
        interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        await interaction.response.send_message(f"denied: {type(error).__name__}", ephemeral=True)

    @subscribe.autocomplete("topic")
    async def topic_choices(
        interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        topics = ("ai", "astronomy", "science")
        return [app_commands.Choice(name=t, value=t) for t in topics if t.startswith(current)]

    @tree.command(name="latest", description="Post the latest story")
    async def latest(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.followup.send("working on it")
        await interaction.edit_original_response(content="done")

    return tree


async def test_command_tree_sync_and_interaction(fake: FakeDiscord) -> None:
    client = new_client()
    tree = build_tree(client)
    async with running(client, fake.bot_token):
        synced = await tree.sync()
        assert sorted(c.name for c in synced) == ["latest", "ping", "subscribe"]
        [sync] = fake.requests_to("PUT", f"/applications/{fake.application_id}/commands")
        assert {c["name"] for c in sync.json} == {"latest", "ping", "subscribe"}
        fetched = await tree.fetch_commands()
        assert {c.id for c in fetched} == {c.id for c in synced}

        record = await fake.dispatch_interaction("ping", channel_id=CHANNEL)
        answered = await fake.wait_for_interaction_response(record.id)

    assert answered.callback_type == 4
    assert answered.callback_data["content"] == "hi"
    assert answered.callback_data["flags"] == 64
    assert answered.ephemeral
    [callback] = fake.requests_to("POST", f"/interactions/{record.id}/")
    assert "Authorization" not in callback.headers  # the token in the path is the credential
    assert fake.messages(CHANNEL, include_interactions=True) == []  # ephemeral: not in channel


async def test_permissions_options_autocomplete_and_followups(fake: FakeDiscord) -> None:
    client = new_client()
    tree = build_tree(client)
    async with running(client, fake.bot_token):
        tree.copy_global_to(guild=discord.Object(GUILD))
        await tree.sync(guild=discord.Object(GUILD))
        assert fake.commands() == []
        subscribe = next(c for c in fake.commands(GUILD) if c["name"] == "subscribe")
        assert subscribe["default_member_permissions"] == str(int(Permission.MANAGE_CHANNELS))

        manager = permissions(Permission.VIEW_CHANNEL, Permission.MANAGE_CHANNELS)
        allowed = await fake.dispatch_interaction(
            "subscribe", {"topic": "ai"}, channel_id=CHANNEL, member_permissions=manager
        )
        denied = await fake.dispatch_interaction("subscribe", {"topic": "ai"}, channel_id=CHANNEL)
        typing = await fake.dispatch_interaction(
            "subscribe", {"topic": "a"}, channel_id=CHANNEL, focused="topic"
        )
        deferred = await fake.dispatch_interaction("latest", channel_id=CHANNEL)

        assert (await fake.wait_for_interaction_response(allowed.id)).callback_data[
            "content"
        ] == "subscribed to ai"
        assert (await fake.wait_for_interaction_response(denied.id)).callback_data[
            "content"
        ] == "denied: MissingPermissions"
        completion = await fake.wait_for_interaction_response(typing.id)
        assert completion.callback_type == 8
        assert [c["value"] for c in completion.callback_data["choices"]] == ["ai", "astronomy"]
        await fake.wait_for(lambda: len(deferred.original_edits) == 1, what="edit of @original")

    assert allowed.payload["data"]["guild_id"] == str(GUILD)  # a guild command
    assert deferred.callback_type == 5
    assert len(deferred.followups) == 1
    assert deferred.original is not None and deferred.original["content"] == "done"
    assert deferred.original["flags"] & 128 == 0  # no longer "thinking"


async def test_late_interaction_answer_is_unknown_interaction() -> None:
    async with FakeDiscord(interaction_response_window=0.0) as server:
        server.add_channel(CHANNEL)
        with patch_discord_py(server):
            client = new_client()
            tree = build_tree(client)
            errors: list[BaseException] = []

            async def on_error(
                interaction: discord.Interaction, error: app_commands.AppCommandError
            ) -> None:
                errors.append(error)

            tree.on_error = on_error  # type: ignore[method-assign]
            async with running(client, server.bot_token):
                await tree.sync()
                record = await server.dispatch_interaction("ping", channel_id=CHANNEL)
                await server.wait_for_request("POST", f"/interactions/{record.id}/")
                await server.wait_for(lambda: bool(errors), what="command error")
    assert record.callback is None
    [request] = server.requests_to("POST", f"/interactions/{record.id}/")
    assert request.status == 404
    cause = errors[0].__cause__
    assert isinstance(cause, discord.NotFound) and cause.code == 10062


# --------------------------------------------------------------------------- 8. webhooks


async def test_webhook_from_url_posts_to_the_fake(fake: FakeDiscord) -> None:
    hook = fake.add_webhook(CHANNEL, name="News")
    with pytest.raises(ValueError):
        discord.Webhook.from_url("https://discord.com/api/webhooks/123/tok", session=None)  # type: ignore[arg-type]
    async with aiohttp.ClientSession() as session:
        webhook = discord.Webhook.from_url(hook.url, session=session)
        message = await webhook.send(embed=embed(), wait=True)
        await webhook.send("no wait")  # no wait: 204, returns None
    assert message.webhook_id == hook.id
    assert message.embeds[0].title == "Quality news"
    posted = fake.messages(CHANNEL)
    assert [m["webhook_id"] for m in posted] == [str(hook.id), str(hook.id)]
    first, second = fake.requests_to("POST", f"/webhooks/{hook.id}/")
    assert first.query["wait"] == "1" and second.query["wait"] == "0"
    assert (first.status, second.status) == (200, 204)
    assert first.path.startswith("/api/v10/")  # Route.BASE, not the URL's host


# --------------------------------------------------------------------------- 9. server errors


async def test_500_once_is_retried_and_creates_once(fake: FakeDiscord) -> None:
    fake.inject("POST", "/channels/*/messages", status=500)
    async with logged_in(fake) as client:
        await client.get_partial_messageable(CHANNEL).send("story", nonce="d-500")
    first, second = fake.requests_to("POST", f"/channels/{CHANNEL}/messages")
    assert (first.status, second.status) == (500, 200)
    assert second.received_at - first.received_at >= 1.0  # discord.py sleeps 1 + 2 * tries
    assert len(fake.messages(CHANNEL)) == 1


async def test_503_is_not_retried_by_discord_py(fake: FakeDiscord) -> None:
    fake.inject("POST", "/channels/*/messages", status=503)
    async with logged_in(fake) as client:
        with pytest.raises(discord.DiscordServerError) as info:
            await client.get_partial_messageable(CHANNEL).send("story")
    assert info.value.status == 503
    assert len(fake.requests_to("POST", f"/channels/{CHANNEL}/messages")) == 1


async def test_lost_answer_then_same_nonce_is_idempotent(fake: FakeDiscord) -> None:
    fake.drop("POST", f"/channels/{CHANNEL}/messages", process_first=True)
    async with logged_in(fake) as client:
        channel = client.get_partial_messageable(CHANNEL)
        with pytest.raises(aiohttp.ServerDisconnectedError):  # discord.py does not retry it
            await channel.send("story", nonce="d-lost")
        assert len(fake.messages(CHANNEL)) == 1  # Discord did post it
        again = await channel.send("story", nonce="d-lost")
    assert len(fake.messages(CHANNEL)) == 1
    assert str(again.id) == fake.messages(CHANNEL)[0]["id"]


async def test_connection_reset_is_not_retried_on_linux(fake: FakeDiscord) -> None:
    fake.drop("POST", f"/channels/{CHANNEL}/messages", mode="reset")
    async with logged_in(fake) as client:
        with pytest.raises(aiohttp.ClientOSError) as info:
            await client.get_partial_messageable(CHANNEL).send("story")
    assert info.value.errno == errno.ECONNRESET  # 104; discord.py only retries 54 and 10054
    assert fake.messages(CHANNEL) == []


async def test_slow_answer_arrives_late_but_posted_at_once(fake: FakeDiscord) -> None:
    fake.delay("POST", f"/channels/{CHANNEL}/messages", 0.2)
    async with logged_in(fake) as client:
        message = await client.get_partial_messageable(CHANNEL).send("slow")
    [request] = fake.requests_to("POST", f"/channels/{CHANNEL}/messages")
    assert request.responded_at is not None
    assert request.responded_at - request.received_at >= 0.2
    assert fake.messages(CHANNEL)[0]["id"] == str(message.id)


async def test_held_answer_keeps_the_request_in_flight(fake: FakeDiscord) -> None:
    hold = fake.hold("POST", f"/channels/{CHANNEL}/messages")
    async with logged_in(fake) as client:
        send = asyncio.create_task(client.get_partial_messageable(CHANNEL).send("slow story"))
        await hold.wait_hit()
        assert not send.done()
        assert len(fake.messages(CHANNEL)) == 1  # posted, answer not yet sent
        hold.release()
        message = await asyncio.wait_for(send, 5.0)
    assert message.content == "slow story"
