"""The article store folder: which files exist, which changed, and their parsed contents.

Cheap by design: an unchanged file is recognised by its path, size and mtime and never read
again; a large cold scan is parsed by a process pool; file-system events (watchfiles) bring a new
file in within a second, and a periodic rescan catches what events miss (network volumes).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import multiprocessing
import os
import signal
import stat
import sys
import threading
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from bot.articles import Article, ArticleError, parse_article

log = logging.getLogger(__name__)
T = TypeVar("T")
A = TypeVar("A")

ARTICLE_SUFFIXES = frozenset({".md", ".markdown", ".txt", ".yaml", ".yml"})
# A file that fails to parse while its mtime is this recent may still be being written: it is
# looked at again later instead of being reported as bad.
SETTLE_S = 2.0
_BATCH = 200


@dataclass(frozen=True, slots=True)
class FileStamp:
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class FileOutcome(Generic[A]):
    """A file looked at: its article (or what a caller keeps of it: a digest, the form the
    database stores), or the reason it is bad (exactly one is set)."""

    path: str  # relative to the store root, with '/' separators
    stamp: FileStamp
    article: A | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Unsettled:
    """A file caught mid-write: look again once it has been still for a moment."""

    path: str


ParseResult = FileOutcome[Article] | Unsettled
# Bytes of a file, its store-relative path and the size cap in; an Article (or ArticleError) out.
Parser = Callable[[bytes, str, int], Article]


@dataclass(frozen=True, slots=True)
class Listing:
    files: dict[str, FileStamp]
    # Entries refused without being read (a symlink out of the store, a folder that cannot be
    # read), as bad-file outcomes stamped with the entry itself: a refusal is remembered like a
    # bad file, and reported again only when the entry changes.
    refused: dict[str, FileOutcome[Article]]
    root_exists: bool


@dataclass(frozen=True, slots=True)
class Changes:
    changed: list[str]  # new or modified: to parse
    removed: list[str]


def _is_candidate(name: str) -> bool:
    # Hidden names are editors' and importers' temporary files (written, then renamed in).
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in ARTICLE_SUFFIXES


_NOT_UTF8 = (
    "the name is not valid UTF-8 (shown with \\xNN for the bytes that are not): rename it; "
    "a folder's files are read once it has a UTF-8 name"
)


def _storable(text: str) -> str:
    """`text` as valid Unicode. A name that is not UTF-8 reaches Python with one surrogate
    escape per stray byte, which neither SQLite nor a UTF-8 terminal accepts: each becomes
    `\\xNN`."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text


def _stamp_of(path: str) -> FileStamp:
    """The entry's own stamp (a link's, not its target's): it changes when the entry does."""
    try:
        st = os.lstat(path)
    except OSError:
        return FileStamp(0, 0)
    return FileStamp(st.st_size, st.st_mtime_ns)


def _link_refusal(real_root: str, link: str) -> str | None:
    """Why the symlink `link` may not be read as an article, or None when it may: the store
    follows links only to files inside itself."""
    target = os.path.realpath(link)
    if os.path.commonpath([real_root, target]) != real_root:
        return (
            f"a symlink to {target}, outside the store: copy the file into the store instead "
            "of linking to it"
        )
    if not os.path.lexists(target):
        return f"a symlink to {target}, which does not exist"
    return None


def list_store(root: Path) -> Listing:
    """Walk the store with scandir + stat: no file is opened."""
    files: dict[str, FileStamp] = {}
    refused: dict[str, FileOutcome[Article]] = {}

    def refuse(rel: str, path: str, reason: str) -> None:
        refused[rel] = FileOutcome(rel, _stamp_of(path), error=_storable(reason))

    try:
        real_root = os.path.realpath(root)
        if not os.path.isdir(real_root):
            return Listing(files, refused, root_exists=False)
    except OSError:
        return Listing(files, refused, root_exists=False)
    stack = [(str(root), "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            refuse(prefix.rstrip("/") or ".", folder, f"cannot read this folder: {exc.strerror}")
            continue
        for entry in entries:
            rel = prefix + entry.name
            try:
                if _storable(entry.name) != entry.name:
                    if not entry.name.startswith(".") and (
                        entry.is_dir(follow_symlinks=False) or _is_candidate(entry.name)
                    ):
                        refuse(_storable(rel), entry.path, _NOT_UTF8)
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if not entry.name.startswith("."):
                        stack.append((entry.path, rel + "/"))
                    continue
                if not _is_candidate(entry.name):
                    continue
                if entry.is_symlink():
                    reason = _link_refusal(real_root, entry.path)
                    if reason is not None:
                        refuse(rel, entry.path, reason)
                        continue
                    st = os.stat(entry.path)
                else:
                    st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # gone between the listing and the stat: the next scan sees it
            except OSError as exc:
                refuse(rel, entry.path, f"cannot stat: {exc.strerror}")
                continue
            # Only regular files: a FIFO or a linked folder named `x.md` would block or fail.
            if stat.S_ISREG(st.st_mode):
                files[rel] = FileStamp(st.st_size, st.st_mtime_ns)
    return Listing(files, refused, root_exists=True)


def diff(previous: Mapping[str, FileStamp], current: Mapping[str, FileStamp]) -> Changes:
    changed = [p for p, stamp in current.items() if previous.get(p) != stamp]
    removed = [p for p in previous if p not in current]
    return Changes(sorted(changed), removed)


class _Swapped(Exception):
    """A path met a symlink where the listing saw none: it changed after the listing."""


class _LinkOut(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Opened without following a symlink at any step (O_NOFOLLOW only guards the last component,
# so folders are opened one by one), and without blocking on a FIFO swapped in for a file.
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
# What opening a symlink with O_NOFOLLOW raises (ELOOP on Linux and macOS, EMLINK on FreeBSD),
# or a folder that became something else.
_IS_A_LINK = frozenset({errno.ELOOP, errno.EMLINK, errno.ENOTDIR})


def _open_beneath(folder: str, rel: str) -> int:
    """Open `folder`/`rel` for reading, following no symlink below `folder`."""
    *folders, name = rel.split("/")
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in folders:
            inner = os.open(part, _FOLDER_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = inner
        return os.open(name, _FILE_FLAGS, dir_fd=fd)
    except OSError as exc:
        if exc.errno in _IS_A_LINK:
            raise _Swapped(rel) from None
        raise
    finally:
        os.close(fd)


def _open_in_store(root: Path, rel: str) -> int:
    """A read-only descriptor for store file `rel`, which is the file itself or, for a symlink,
    its target, and in either case inside the store at the moment it was opened: the check
    and the use are one step, so swapping a link after the listing cannot lead outside."""
    try:
        return _open_beneath(str(root), rel)
    except _Swapped:
        pass
    full = os.path.join(root, rel)
    if not os.path.islink(full):
        raise _Swapped(rel)  # a folder on the way was swapped for a link
    # A symlink where the listing allows one: resolve it once, then open what it named by
    # walking down from the store's real root, following nothing on the way.
    real_root = os.path.realpath(root)
    reason = _link_refusal(real_root, full)
    if reason is not None:
        raise _LinkOut(reason)
    target = os.path.realpath(full)
    return _open_beneath(real_root, os.path.relpath(target, real_root).replace(os.sep, "/"))


def _read(fd: int, size: int) -> bytes:
    with open(fd, "rb", closefd=False) as handle:
        return handle.read(size)


def read_file(
    root: Path, rel: str, max_bytes: int, now_s: float, parse: Parser = parse_article
) -> ParseResult:
    """Read and parse one file, refusing to take a half-written one for a finished one, or
    anything outside the store. A file that fails to parse while its mtime is within
    SETTLE_S of `now_s` may still be being written: Unsettled (`now_s` = inf: never)."""
    full = os.path.join(root, rel)
    stamp = FileStamp(0, 0)
    try:
        fd = _open_in_store(root, rel)
    except (FileNotFoundError, _Swapped):
        return Unsettled(rel)  # gone, or changed since the listing: look again
    except _LinkOut as exc:
        # The link's own stamp, as the listing records a refused link: reported once.
        return FileOutcome(rel, _stamp_of(full), error=_storable(exc.reason))
    except OSError as exc:
        # With its real stamp, an unreadable file is reported once, not at every rescan.
        with contextlib.suppress(OSError):
            st = os.stat(full)
            stamp = FileStamp(st.st_size, st.st_mtime_ns)
        return FileOutcome(rel, stamp, error=f"cannot read: {exc.strerror or exc}")
    try:
        before = os.fstat(fd)
        stamp = FileStamp(before.st_size, before.st_mtime_ns)
        if not stat.S_ISREG(before.st_mode):
            return FileOutcome(rel, stamp, error="not a regular file")
        if before.st_size > max_bytes:
            # Never read a huge file into memory just to reject it.
            return FileOutcome(
                rel,
                stamp,
                error=(
                    f"the file is {before.st_size:,} bytes, over the {max_bytes:,}-byte limit "
                    "(store.max_file_bytes); article files are a few kilobytes"
                ),
            )
        # Ask for what the file holds (one byte more shows growth): asking for the cap would
        # make every read allocate (and free) a buffer of max_bytes.
        data = _read(fd, before.st_size + 1)
        after = os.fstat(fd)
    except OSError as exc:
        return FileOutcome(rel, stamp, error=f"cannot read: {exc.strerror or exc}")
    finally:
        os.close(fd)
    if (after.st_size, after.st_mtime_ns) != (stamp.size, stamp.mtime_ns):
        return Unsettled(rel)  # it changed while we read it
    try:
        return FileOutcome(rel, stamp, article=parse(data, rel, max_bytes))
    except ArticleError as exc:
        reason = exc.reason
    except Exception as exc:  # a parser bug must cost one file, never the whole scan
        log.exception("unexpected error parsing %s", rel)
        reason = f"could not be parsed ({type(exc).__name__}: {exc}); please report this file"
    # Recent: maybe still being written. An mtime far in the future (a skewed clock, an importer
    # keeping bogus times) says nothing about that; waiting for it would hide the file forever.
    if abs(now_s - stamp.mtime_ns / 1e9) < SETTLE_S:
        return Unsettled(rel)
    return FileOutcome(rel, stamp, error=reason)


def _identity(result: ParseResult) -> ParseResult:
    return result


def _read_batch(
    root: str,
    rels: Sequence[str],
    max_bytes: int,
    now_s: float,
    transform: Callable[[ParseResult], T],
    parse: Parser,
) -> list[T]:
    return [transform(read_file(Path(root), rel, max_bytes, now_s, parse)) for rel in rels]


def _pool_context() -> multiprocessing.context.BaseContext:
    # fork is the cheapest start, but forking a process that runs other threads (aiosqlite's)
    # can copy a held lock into the child; then spawn. Not the fork server: its workers are
    # its children, not ours, so they would outlive a bot killed with -9.
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _die_with_parent() -> None:
    """Pool initializer: on Linux, ask the kernel to end this worker when the bot dies (even by
    kill -9), so no parser processes are left behind."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _batches(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def parse_files(
    root: Path,
    rels: Sequence[str],
    max_bytes: int,
    now_s: float,
    parallel_threshold: int,
    workers: int | None = None,
    transform: Callable[[ParseResult], T] = _identity,  # type: ignore[assignment]
    parse: Parser = parse_article,
) -> Generator[list[T], None, None]:
    """Parse `rels` in batches, in submission order. Below `parallel_threshold` files (or on
    one core) everything stays in this process; above it a process pool uses every core, with
    only a few batches in flight so memory stays bounded on any store size. `transform` (a
    module-level function) runs where the parsing runs, so a caller that needs only a digest
    of each file doesn't pay to ship whole articles between processes; `parse` (module-level
    too) is the parser."""
    workers = workers or os.cpu_count() or 1
    if len(rels) < parallel_threshold or workers < 2:
        for batch in _batches(rels, _BATCH):
            yield _read_batch(str(root), batch, max_bytes, now_s, transform, parse)
        return
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=_pool_context(), initializer=_die_with_parent
    ) as pool:
        pending: list[Future[list[T]]] = []
        for batch in _batches(rels, _BATCH):
            pending.append(
                pool.submit(_read_batch, str(root), batch, max_bytes, now_s, transform, parse)
            )
            if len(pending) >= workers * 2:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()


async def watch(root: Path, stop: object) -> AsyncIterator[set[str]]:
    """Paths (relative to `root`) that file-system events say changed; ends when `stop` (an
    asyncio.Event) is set. Yields nothing where events don't work; the rescan covers that."""
    from watchfiles import awatch  # imported here: `newsbot scan` never needs it

    real_root = os.path.realpath(root)
    try:
        async for events in awatch(
            root, stop_event=stop, debounce=150, step=20, recursive=True, rust_timeout=1000
        ):
            rels = set()
            for _change, path in events:
                rel = os.path.relpath(os.path.realpath(path), real_root)
                if not rel.startswith(".."):
                    rels.add(rel.replace(os.sep, "/"))
            yield rels
    except (OSError, RuntimeError) as exc:
        log.warning(
            "file-system events are unavailable for %s (%s); relying on the periodic rescan",
            root,
            exc,
        )

