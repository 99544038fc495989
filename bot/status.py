"""`newsbot status`: what the bot is doing, for a person: deliveries by state per platform, the
oldest waiting delivery and the next one due, parked subscriptions with their reasons, and bad
files. The same facts `/metrics` gives a machine."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass

from bot.crew import ALIVE_S
from bot.health import HEARTBEAT_KEY, MAX_HEARTBEAT_AGE_S, STOPPED_KEY
from bot.outbox import DeliveryState
from bot.printable import json_text, printable
from bot.state import State


@dataclass(frozen=True, slots=True)
class ParkedSubscription:
    id: int
    target: str
    reason: str


@dataclass(frozen=True, slots=True)
class BadFile:
    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class WorkerSeen:
    """A worker of the crew sharing a PostgreSQL database (bot/crew.py)."""

    id: str
    host: str
    pid: int
    seen_age_s: float
    alive: bool


@dataclass(frozen=True, slots=True)
class Status:
    worker: str  # "running", "stopped" (cleanly) or "not running" (no recent heartbeat)
    heartbeat_age_s: float | None
    deliveries: dict[str, dict[str, int]]  # platform -> state -> rows
    oldest_pending_age_s: float | None
    next_due_in_s: float | None  # 0: due now
    parked: tuple[ParkedSubscription, ...]
    bad_files: tuple[BadFile, ...]
    workers: tuple[WorkerSeen, ...] = ()  # several workers on PostgreSQL; none alone

    def to_json(self) -> str:
        return json_text(asdict(self), indent=2) + "\n"


async def read_status(state: State, now_s: float) -> Status:
    deliveries: dict[str, dict[str, int]] = defaultdict(dict)
    for (platform, row_state), count in sorted((await state.outbox.counts()).items()):
        deliveries[platform][str(row_state)] = count
    oldest = await state.outbox.oldest_pending_since()
    platforms = list(deliveries)
    next_due = await state.outbox.next_due_at(platforms) if platforms else None
    beat = _number(await state.get_meta(HEARTBEAT_KEY))
    stopped = _number(await state.get_meta(STOPPED_KEY))
    if stopped is not None and (beat is None or stopped >= beat):
        worker = "stopped"
    elif beat is not None and now_s - beat <= MAX_HEARTBEAT_AGE_S:
        worker = "running"
    else:
        worker = "not running"
    return Status(
        worker=worker,
        heartbeat_age_s=None if beat is None else max(0.0, now_s - beat),
        deliveries=dict(deliveries),
        oldest_pending_age_s=None if oldest is None else max(0.0, now_s - oldest),
        next_due_in_s=None if next_due is None else max(0.0, next_due - now_s),
        parked=tuple(
            ParkedSubscription(s.id, f"{s.platform}:{s.channel}", s.parked_reason or "")
            for s in await state.subscriptions()
            if s.is_parked
        ),
        bad_files=tuple(BadFile(path, reason) for path, reason in await state.bad_files()),
        workers=tuple(
            WorkerSeen(
                r["id"], r["host"], int(r["pid"]), max(0.0, now_s - float(r["seen_at"])),
                now_s - float(r["seen_at"]) <= ALIVE_S,
            )
            for r in await state.database.fetchall(
                "SELECT id, host, pid, seen_at FROM workers ORDER BY id"
            )
        ),
    )


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


STATE_ORDER = tuple(str(s) for s in DeliveryState)


def format_status(status: Status) -> str:
    lines = []
    worker = status.worker
    if status.heartbeat_age_s is not None and worker == "running":
        worker += f" (last heartbeat {_age(status.heartbeat_age_s)} ago)"
    lines.append(f"worker: {worker}")
    if not status.deliveries:
        lines.append("deliveries: none yet")
    else:
        lines.append("deliveries:")
        for platform, counts in status.deliveries.items():
            parts = [f"{name} {counts[name]}" for name in STATE_ORDER if counts.get(name)]
            lines.append(f"  {platform:<8} " + ", ".join(parts))
    if status.oldest_pending_age_s is None:
        lines.append("waiting: nothing")
    else:
        due = status.next_due_in_s
        when = "now" if due is not None and due < 1 else f"in {_age(due or 0.0)}"
        lines.append(
            f"waiting: the oldest for {_age(status.oldest_pending_age_s)}; the next is due {when}"
        )
    lines.append(f"parked subscriptions: {len(status.parked)}")
    lines += [
        f"  {p.id:4}  {printable(p.target)}: {printable(p.reason)}" for p in status.parked
    ]
    if status.workers:
        alive = sum(w.alive for w in status.workers)
        lines.append(f"workers: {alive} alive")
        lines += [
            f"  {printable(w.id)} on {printable(w.host)} (pid {w.pid}): "
            + (f"seen {_age(w.seen_age_s)} ago" if w.alive else f"gone {_age(w.seen_age_s)} ago")
            for w in status.workers
        ]
    lines.append(f"bad files: {len(status.bad_files)}")
    lines += [f"  {printable(b.path)}: {printable(b.reason)}" for b in status.bad_files]
    return "\n".join(lines) + "\n"
