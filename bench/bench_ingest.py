"""The ingest pipeline's benchmark (issue 12, item 7), printed, never asserted:

a cold `newsbot run --once` (new database, first scan of the store: every file parsed,
recorded and placed in its story) beside a cold `newsbot scan --no-cache` of the same
store, run in turn (A B A B ...) so the ratio holds when the machine's speed drifts;
then `newsbot scan --stories` over the real corpus when it is beside the repository.

  python bench/bench_ingest.py [--files 20000] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_spine import NEUTRAL_CWD, PY, write_config  # noqa: E402
from make_store import DEFAULT_CORPUS, make_store  # noqa: E402


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=NEUTRAL_CWD
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = folder / "store"
        make_store(store, args.files, DEFAULT_CORPUS)
        db = folder / "state.db"
        config = write_config(folder, store, db)
        run_cmd = [PY, "-m", "bot", "run", "--once", "--config", str(config)]
        scan_cmd = [PY, "-m", "bot", "scan", str(store), "--json", "--no-cache"]
        wall(scan_cmd)  # warm the page cache
        runs, scans, ratios = [], [], []
        for _ in range(args.runs):
            for leftover in folder.glob("state.db*"):
                leftover.unlink()
            run_s, scan_s = wall(run_cmd), wall(scan_cmd)
            runs.append(run_s)
            scans.append(scan_s)
            ratios.append(run_s / scan_s)
        print(f"cold ingest of {args.files} files (whole commands, median of {args.runs} pairs)")
        print(f"    newsbot run --once (new database)   {statistics.median(runs):6.2f} s")
        print(f"    newsbot scan --json --no-cache      {statistics.median(scans):6.2f} s")
        print(f"    run / scan = {statistics.median(ratios):.2f}x (target 1.3x)")
    if DEFAULT_CORPUS.is_dir():
        print(f"stories in {DEFAULT_CORPUS}:")
        for floor in ("", "min_quality = 0\ninclude_unscored = true\n"):
            with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as cfg:
                cfg.write(floor)
            out = subprocess.run(
                [PY, "-m", "bot", "scan", str(DEFAULT_CORPUS), "--stories", "--config", cfg.name],
                check=True,
                capture_output=True,
                text=True,
                cwd=NEUTRAL_CWD,
            ).stdout
            Path(cfg.name).unlink()
            print("    " + out.strip().replace("\n", "\n    "))


if __name__ == "__main__":
    main()
