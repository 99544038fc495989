"""Generate a large article store from the real corpus: every file a distinct story (title, URL
and date varied), the rest of the front matter as real as the corpus is.

    python bench/make_store.py OUT_DIR [--files 20000] [--corpus ../shared/corpus/everyday-ai]
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "everyday-ai"
_TOP_TITLE = re.compile(r"^title: .*$", re.MULTILINE)
_TOP_URL = re.compile(r"^webUrl: .*$", re.MULTILINE)
_TOP_DATE = re.compile(r"^publishedDateTime: (\S+)$", re.MULTILINE)
# Copies of one corpus file are this far apart in time: further than the 48 hours within which
# near-identical titles are one story (bot/stories.py), so each copy is a story of its own
# while the corpus's own retellings, on the same days, still group as they really do.
COPY_SPACING_DAYS = 3


def variant(text: str, index: int, copy: int = 0) -> str:
    """The same article as a new story: a numbered title, a unique URL, and (for the `copy`-th
    copy of a file) a date `copy` spacings later."""
    title = _TOP_TITLE.search(text)
    url = _TOP_URL.search(text)
    assert title and url, "corpus files have top-level title and webUrl lines"
    old_title = title.group(0)[len("title: ") :].strip().strip('"')
    old_url = url.group(0)[len("webUrl: ") :].strip().strip('"')
    text = _TOP_TITLE.sub(lambda _m: "title: " + json.dumps(f"{old_title} #{index}"), text, 1)
    text = _TOP_URL.sub(lambda _m: "webUrl: " + json.dumps(f"{old_url}/v{index}"), text, 1)
    return _TOP_DATE.sub(lambda m: "publishedDateTime: " + _later(m.group(1), copy), text, 1)


def _later(stamp: str, copy: int) -> str:
    moved = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    moved += timedelta(days=copy * COPY_SPACING_DAYS)
    return moved.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_store(out: Path, files: int, corpus: Path) -> int:
    sources = [p.read_text(encoding="utf-8") for p in sorted(corpus.glob("*.md"))]
    if not sources:
        raise SystemExit(f"no corpus files in {corpus}")
    out.mkdir(parents=True, exist_ok=True)
    for index in range(files):
        # A few subfolders, as real stores grouped by year have.
        folder = out / f"batch-{index % 8}"
        folder.mkdir(exist_ok=True)
        (folder / f"article-{index:06d}.md").write_text(
            variant(sources[index % len(sources)], index, index // len(sources)),
            encoding="utf-8",
        )
    return files


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args()
    print(f"wrote {make_store(args.out, args.files, args.corpus)} files to {args.out}")


if __name__ == "__main__":
    main()
