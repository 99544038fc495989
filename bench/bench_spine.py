"""The spine's benchmarks (issue 3), printed, never asserted:

  (a) cold scan throughput of `newsbot scan --json` over a generated store, beside the
      python-frontmatter baseline and a bare CSafeLoader loop over the same front-matter blocks
  (b) an unchanged rescan of that store, beside a bare os.scandir + stat walk
  (c) file-written-to-delivered latency, p50 and p95, through a running `newsbot run`
  (d) peak memory (largest single process) of `newsbot run --once` over the store

    python bench/bench_spine.py [--files 20000] [--runs 3] [--latency-files 50]

Whole commands are timed as child processes (median of --runs), as a user would run them.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from make_store import DEFAULT_CORPUS, make_store, variant  # noqa: E402

PY = sys.executable
# Child processes run from a neutral folder, so `python -m bot` finds the installed newsbot
# (as a user runs it), not the checkout's sources by accident.
NEUTRAL_CWD = tempfile.gettempdir()


def timed(cmd: list[str], runs: int, env: dict[str, str] | None = None) -> float:
    """Median wall seconds of `cmd` over `runs` runs (after one warm-up for the page cache)."""
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env, cwd=NEUTRAL_CWD)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env, cwd=NEUTRAL_CWD)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def front_matter_blocks(store: Path) -> list[str]:
    blocks = []
    for folder, _dirs, names in os.walk(store):
        for name in names:
            text = (Path(folder) / name).read_text(encoding="utf-8")
            blocks.append(text.split("\n---", 2)[0][4:] if text.startswith("---") else text)
    return blocks


def bare_yaml_rate(store: Path) -> float:
    blocks = front_matter_blocks(store)
    start = time.perf_counter()
    for block in blocks:
        yaml.load(block, Loader=yaml.CSafeLoader)
    return len(blocks) / (time.perf_counter() - start)


def bench_scan(store: Path, files: int, runs: int, env: dict[str, str]) -> None:
    # Cold: --no-cache, every file read and parsed. Warm: the digests an earlier scan left.
    cold_s = timed([PY, "-m", "bot", "scan", str(store), "--json", "--no-cache"], runs, env)
    warm_s = timed([PY, "-m", "bot", "scan", str(store), "--json"], runs, env)
    baseline_s = timed([PY, str(HERE / "frontmatter_loop.py"), str(store)], runs, env)
    bare_rate = bare_yaml_rate(store)
    cold_rate, warm_rate, base_rate = files / cold_s, files / warm_s, files / baseline_s
    print(f"(a) scan of {files} files (whole commands, median of {runs})")
    rows = (
        ("newsbot scan --json --no-cache (cold)", cold_s, cold_rate),
        ("newsbot scan --json (unchanged store)", warm_s, warm_rate),
        ("python-frontmatter loop", baseline_s, base_rate),
    )
    for label, seconds, rate in rows:
        print(f"    {label:38} {seconds:6.2f} s {rate:9.0f} articles/s")
    print(f"    bare CSafeLoader loop (1 core, parse only)       {bare_rate:9.0f} articles/s")
    print(f"    cold newsbot / python-frontmatter = {cold_rate / base_rate:.2f}x")
    print(f"    cold newsbot / bare CSafeLoader   = {cold_rate / bare_rate:.2f}x")
    print(f"    warm newsbot / python-frontmatter = {warm_rate / base_rate:.2f}x")


def write_config(folder: Path, store: Path, db: Path, backfill: int = 0) -> Path:
    config = folder / "bench.toml"
    config.write_text(
        f'min_quality = 0\ninclude_unscored = true\n[store]\npath = "{store}"\n'
        f'rescan_interval_s = 30\n[database]\npath = "{db}"\n'
        f'[[subscriptions]]\nplatform = "console"\nchannel = "bench"\nbackfill = {backfill}\n',
        encoding="utf-8",
    )
    return config


def bench_memory_and_prime(config: Path) -> None:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run([PY, "-m", "bot", "run", "--once", "--config", str(config)], check=True,
                   cwd=NEUTRAL_CWD,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    note = "" if peak_kib > before else " (an earlier child was larger)"
    print(f"(d) newsbot run --once, cold, over the store: {elapsed:.2f} s, "
          f"peak RSS {peak_kib / 1024:.0f} MiB{note}")


def bench_rescan(config_path: Path, store: Path, runs: int) -> None:
    from bot.app import build_delivery
    from bot.clock import SystemClock
    from bot.config import load_config
    from bot.state import State
    from bot.worker import Worker

    async def rescans() -> list[float]:
        config = load_config(config_path)
        clock = SystemClock()
        state = await State.open(config.database.path, clock)
        try:
            _, scheduler = build_delivery(config, state, {}, clock)
            worker = Worker(config, state, scheduler, clock)
            await worker.prepare()
            samples = []
            for _ in range(runs):
                start = time.perf_counter()
                summary = await worker.scan()
                samples.append(time.perf_counter() - start)
                assert summary.parsed == 0, "an unchanged rescan must parse nothing"
            return samples
        finally:
            await state.aclose()

    samples = asyncio.run(rescans())

    def bare_walk() -> int:
        count, stack = 0, [str(store)]
        while stack:
            for entry in os.scandir(stack.pop()):
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    entry.stat()
                    count += 1
        return count

    walk = []
    for _ in range(runs):
        start = time.perf_counter()
        bare_walk()
        walk.append(time.perf_counter() - start)
    ours, bare = statistics.median(samples), statistics.median(walk)
    print(f"(b) unchanged rescan: newsbot {ours * 1000:.0f} ms, bare scandir+stat walk "
          f"{bare * 1000:.0f} ms (ratio {ours / bare:.2f}x)")


def bench_latency(folder: Path, count: int) -> None:
    store, db = folder / "lat-store", folder / "lat.db"
    store.mkdir()
    config = write_config(folder, store, db)
    source = sorted(DEFAULT_CORPUS.glob("*.md"))[0].read_text(encoding="utf-8")
    proc = subprocess.Popen(
        [PY, "-m", "bot", "run", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1, cwd=NEUTRAL_CWD,
    )
    try:
        assert proc.stderr is not None and proc.stdout is not None
        for line in proc.stderr:
            if "watching" in line:
                break
        samples = []
        for index in range(count):
            text = variant(source, 900000 + index, index)
            marker = f"#{900000 + index}"
            temp = store / f".tmp-{index}.md"
            temp.write_text(text, encoding="utf-8")
            start = time.perf_counter()
            os.rename(temp, store / f"new-{index}.md")
            for line in proc.stdout:
                if marker in line:
                    samples.append(time.perf_counter() - start)
                    break
        samples.sort()
        p50 = statistics.median(samples)
        p95 = samples[max(0, math.ceil(0.95 * len(samples)) - 1)]
        print(f"(c) file-to-delivery latency over {len(samples)} files: "
              f"p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms")
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency-files", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="newsbot-bench-") as tmp:
        folder = Path(tmp)
        store = folder / "store"
        make_store(store, args.files, DEFAULT_CORPUS)
        print(f"store: {args.files} files generated from {DEFAULT_CORPUS}; {os.cpu_count()} cores")
        env = {**os.environ, "XDG_CACHE_HOME": str(folder / "cache")}  # keep $HOME clean
        bench_scan(store, args.files, args.runs, env)
        config = write_config(folder, store, folder / "state.db")
        bench_memory_and_prime(config)
        bench_rescan(config, store, args.runs)
        bench_latency(folder, args.latency_files)


if __name__ == "__main__":
    main()
