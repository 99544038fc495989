"""Several workers, the pure parts and the database parts: channels shared by rendezvous
hashing (stable, balanced, moving only the leaver's), the scan lease taken over when its holder
stops renewing it (a fake clock), pacing at a worker's share, and sends claimed by a gone worker
found again while a live worker's stay its own."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from bot.crew import ALIVE_S, LEASE_S, Crew
from bot.outbox import DeliveryState
from bot.pacing import DiscordPacing, SlackPacing
from bot.partition import owner
from bot.state import State
from tests.conftest import FakeClock
from tests.test_outbox import article, route, subscribe

WORKERS = ["w-a", "w-b", "w-c", "w-d"]
CHANNELS = [f"C{n:05d}" for n in range(4000)]


def test_every_worker_computes_the_same_owner_and_the_share_is_even() -> None:
    owners = {c: owner("slack", c, WORKERS) for c in CHANNELS}
    assert owners == {c: owner("slack", c, list(reversed(WORKERS))) for c in CHANNELS}
    counts = Counter(owners.values())
    assert set(counts) == set(WORKERS)
    assert max(counts.values()) < 1.15 * len(CHANNELS) / len(WORKERS)


def test_a_worker_leaving_moves_only_its_own_channels() -> None:
    before = {c: owner("slack", c, WORKERS) for c in CHANNELS}
    after = {c: owner("slack", c, WORKERS[1:]) for c in CHANNELS}
    moved = {c for c in CHANNELS if before[c] != after[c]}
    assert moved == {c for c in CHANNELS if before[c] == "w-a"}
    assert owner("slack", "C1", []) is None


def test_a_worker_paces_at_its_share_of_the_global_rate() -> None:
    alone, shared = DiscordPacing(50.0), DiscordPacing(50.0)
    shared.share(0.25, 0.0)

    def sends_in(pacing: DiscordPacing, seconds: float) -> int:
        now, sent = 0.0, 0
        while (at := pacing.platform_ready_at(now)) <= seconds:
            now = at
            pacing.take_platform(now)
            sent += 1
        return sent

    assert sends_in(shared, 10.0) * 4 <= sends_in(alone, 10.0) + 4 * 3  # burst allowance
    slack = SlackPacing(200.0)
    slack.share(0.5, 0.0)
    assert slack.platform_ready_at(0.0) == 0.0


async def test_the_scan_lease_passes_when_its_holder_stops_renewing_it(
    tmp_path: Path, clock: FakeClock
) -> None:
    state = await State.open(tmp_path / "state.db", clock)
    try:
        first = Crew(state.database, clock, "first", shared=True)
        second = Crew(state.database, clock, "second", shared=True)
        assert await first.lead("scan") and not await second.lead("scan")
        clock.advance(LEASE_S / 2)
        assert await first.lead("scan")  # renewed
        clock.advance(LEASE_S / 2 + 0.1)
        assert not await second.lead("scan")  # the renewal still holds
        clock.advance(LEASE_S)
        assert await second.lead("scan") and not await first.lead("scan")
        await second.leave()
        assert await first.lead("scan")  # a clean stop frees it at once
    finally:
        await state.aclose()


async def test_workers_see_each_other_come_and_go(tmp_path: Path, clock: FakeClock) -> None:
    state = await State.open(tmp_path / "state.db", clock)
    try:
        crews = [Crew(state.database, clock, name, shared=True) for name in ("a", "b", "c")]
        for crew in crews:
            await crew.beat()
        # Each saw those that had beaten before it; at their next beat, all three.
        assert [await crew.beat() for crew in crews] == [True, True, False]
        assert all(crew.live == ("a", "b", "c") for crew in crews)
        assert crews[0].share == 1 / 3
        served = [sum(c.serves("slack", ch) for ch in CHANNELS) for c in crews]
        assert sum(served) == len(CHANNELS) and min(served) > 0
        clock.advance(ALIVE_S + 1)  # b and c are killed: they stop beating
        assert await crews[0].beat() is True and crews[0].live == ("a",)
        assert all(crews[0].serves("slack", ch) for ch in CHANNELS)
    finally:
        await state.aclose()


async def test_sends_of_a_gone_worker_are_found_again_a_live_ones_are_not(
    tmp_path: Path, clock: FakeClock
) -> None:
    state = await State.open(tmp_path / "state.db", clock)
    try:
        live, gone = (Crew(state.database, clock, n, shared=True) for n in ("live", "gone"))
        await live.beat()
        await gone.beat()
        news = await subscribe(state, "news")
        await route(state, [article(1), article(2)], news)
        first, second = (r.id for r in await state.outbox.due_rows("console", "news", 1e12, 9))
        state.outbox.claimer = "gone"
        assert await state.outbox.mark_sending(first)
        state.outbox.claimer = "live"
        assert await state.outbox.mark_sending(second)
        assert await state.outbox.interrupted(clock.time() - ALIVE_S) == []
        clock.advance(ALIVE_S + 1)
        await live.beat()  # "gone" stopped beating
        found = await state.outbox.interrupted(clock.time() - ALIVE_S)
        assert [d.id for d in found] == [first]
        assert found[0].state is DeliveryState.SENDING
        # Alone on the database (a start), every row left sending is an interrupted one.
        assert {d.id for d in await state.outbox.interrupted()} == {first, second}
    finally:
        await state.aclose()


async def test_status_and_the_panel_show_the_crew(tmp_path: Path, clock: FakeClock) -> None:
    from bot.panel.pages import Chrome, home_page
    from bot.status import format_status, read_status

    state = await State.open(tmp_path / "state.db", clock)
    try:
        alone = await read_status(state, clock.time())
        assert alone.workers == () and "workers:" not in format_status(alone)
        hostile = "<b>w1</b>"
        first = Crew(state.database, clock, hostile, shared=True)
        second = Crew(state.database, clock, "w2", shared=True)
        await first.beat()
        clock.advance(ALIVE_S + 1)
        await second.beat()  # the first has gone quiet
        status = await read_status(state, clock.time())
        assert [(w.id, w.alive) for w in status.workers] == [(hostile, False), ("w2", True)]
        text = format_status(status)
        assert "workers: 1 alive" in text and "gone" in text
        page = str(home_page(Chrome(user="op", token=lambda: "t"), status, []))
        assert "&lt;b&gt;w1&lt;/b&gt;" in page and "<b>w1" not in page
        assert "(gone)" in page
    finally:
        await state.aclose()
