"""`newsbot scan PATH [--json]` as a user runs it: a real process over real and malformed files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

import bot.store
from tests.conftest import REPO

GOOD = "---\ntitle: {title}\nwebUrl: https://example.com/{slug}\n{extra}---\n"


def good(slug: str, extra: str = "") -> str:
    return GOOD.format(title=f"Variant {slug}", slug=slug, extra=extra)


# Files that must parse, though they look unusual. Each carries the topic "Variants".
GOOD_VARIANTS: dict[str, bytes] = {
    "variants/bom.md": ("\ufeff" + good("bom", "topics: [Variants]\n")).encode(),
    "variants/crlf.txt": good("crlf", "topics: [Variants]\n").replace("\n", "\r\n").encode(),
    "variants/quoted-date.yaml": good(
        "quoted", 'topics: [Variants]\npublishedDateTime: "2021-05-18T19:56:00Z"\n'
    ).encode(),
    "variants/date-only.yml": good(
        "date", "topics: [Variants]\npublishedDateTime: 2021-05-18\nquality: 170\n"
    ).encode(),
    "variants/bad-related.markdown": good(
        "related", "topics: [Variants]\nrelated:\n  - 7\n  - title: no url\n"
    ).encode(),
    "variants/UPPER.MD": good(
        "upper", "topics: [Variants]\nsecured: whatever\nnew: {a: 1}\n"
    ).encode(),
}

_BOMB = "".join(
    [f"a0: &a0 [{','.join(['lol'] * 9)}]\n"]
    + [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)]
)

# Every kind of bad file, by path; the scan must name each one with a reason.
BAD_FILES: dict[str, bytes] = {
    "bad/invalid-utf8.md": b"---\ntitle: caf\xe9\nwebUrl: https://e.com/\n---\n",
    "bad/no-front-matter.md": b"title: T\nwebUrl: https://e.com/\n",
    "bad/unclosed.md": b"---\ntitle: T\nwebUrl: https://e.com/\n",
    "bad/yaml-syntax.md": good("s", "excerpt: a: b: c\n").encode(),
    "bad/title-number.md": b"---\ntitle: 12\nwebUrl: https://e.com/\n---\n",
    "bad/no-title.md": b"---\nwebUrl: https://e.com/\n---\n",
    "bad/no-url.md": b"---\ntitle: T\n---\n",
    "bad/ftp-url.md": b"---\ntitle: T\nwebUrl: ftp://e.com/x\n---\n",
    "bad/bad-port.md": b"---\ntitle: T\nwebUrl: https://e.com:99999/x\n---\n",
    "bad/quality-string.md": good("q1", "quality: high\n").encode(),
    "bad/quality-negative.md": good("q2", "quality: -1\n").encode(),
    "bad/quality-bool.md": good("q3", "quality: yes\n").encode(),
    "bad/topics-string.md": good("t1", "topics: AI\n").encode(),
    "bad/topics-number.md": good("t2", "topics: [AI, 42]\n").encode(),
    "bad/python-object.md": good("p1", "x: !!python/object/apply:os.system ['true']\n").encode(),
    "bad/python-name.md": good("p2", "x: !!python/name:os.system\n").encode(),
    "bad/alias-bomb.md": good("bomb", _BOMB).encode(),
    "bad/list.md": b"---\n- title: T\n- webUrl: https://e.com/\n---\n",
    "bad/deep/aliases-and-syntax.yml": good("as", 'x: &a 1\ny: *a\nz: "open\n').encode(),
}
SYMLINK_OUT = "bad/link-out.md"
HUGE = "bad/huge.md"


def front_matter(path: Path) -> dict[str, Any]:
    lines = path.read_text(encoding="utf-8").splitlines()
    end = lines.index("---", 1)
    data = yaml.safe_load("\n".join(lines[1:end]))
    assert isinstance(data, dict)
    return data


@pytest.fixture
def store(tmp_path: Path, real_articles_dir: Path) -> Path:
    root = tmp_path / "store"
    shutil.copytree(real_articles_dir, root / "corpus")
    for rel, data in {**GOOD_VARIANTS, **BAD_FILES}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    # 2 MB: over the default 1 MiB cap.
    (root / HUGE).write_text(good("huge", f"excerpt: '{'x' * 2_000_000}'\n"), encoding="utf-8")
    outside = tmp_path / "outside.md"
    outside.write_text(good("outside"), encoding="utf-8")
    (root / SYMLINK_OUT).symlink_to(outside)
    # Not articles at all: never counted, never reported.
    (root / "notes.json").write_text("{}", encoding="utf-8")
    (root / ".hidden.md").write_text("garbage", encoding="utf-8")
    (root / ".git").mkdir()
    (root / ".git" / "x.md").write_text("garbage", encoding="utf-8")
    return root


def newsbot(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "NEWSBOT_CONFIG"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )


def scan_json(args: list[str], cwd: Path) -> dict[str, Any]:
    result = newsbot(["scan", *args, "--json"], cwd)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1  # one JSON object, one line
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def expected_topics(corpus_dir: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for path in sorted(corpus_dir.iterdir()):
        counts.update(dict.fromkeys(front_matter(path).get("topics") or [], 1))
    counts["Variants"] = len(GOOD_VARIANTS)
    return counts


def test_scan_json_over_good_and_malformed_files(
    store: Path, real_articles_dir: Path, tmp_path: Path
) -> None:
    report = scan_json([str(store)], tmp_path)
    good_files = len(list(real_articles_dir.iterdir())) + len(GOOD_VARIANTS)
    assert isinstance(report["articles"], int)
    assert report["articles"] == good_files
    assert report["files"] == good_files + len(report["bad"])

    bad = {entry["path"]: entry["reason"] for entry in report["bad"]}
    assert len(bad) == len(report["bad"])  # each bad file reported once
    assert set(bad) == {*BAD_FILES, HUGE, SYMLINK_OUT}
    for path, reason in bad.items():
        assert isinstance(reason, str) and reason.strip(), path
    assert "UTF-8" in bad["bad/invalid-utf8.md"]
    assert "no front matter" in bad["bad/no-front-matter.md"]
    assert "not closed" in bad["bad/unclosed.md"]
    assert "line 4" in bad["bad/yaml-syntax.md"]
    assert "title" in bad["bad/title-number.md"] and "title" in bad["bad/no-title.md"]
    assert "webUrl" in bad["bad/no-url.md"] and "http" in bad["bad/ftp-url.md"]
    for name in ("quality-string", "quality-negative", "quality-bool"):
        assert "quality" in bad[f"bad/{name}.md"]
    assert "topics" in bad["bad/topics-string.md"] and "topics" in bad["bad/topics-number.md"]
    assert "python/object" in bad["bad/python-object.md"]
    assert "python/name" in bad["bad/python-name.md"]
    assert "alias" in bad["bad/alias-bomb.md"]
    assert "mapping" in bad["bad/list.md"]
    assert "limit" in bad[HUGE] and "max_file_bytes" in bad[HUGE]
    assert "outside the store" in bad[SYMLINK_OUT]
    assert str(tmp_path / "outside.md") in bad[SYMLINK_OUT]

    assert report["topics"] == dict(expected_topics(real_articles_dir))
    assert report["unsettled"] == []
    assert sum(report["quality"].values()) == report["articles"]
    assert report["quality"]["150+"] >= 1  # the 170 variant, among others


def test_scan_text_names_every_bad_file(
    store: Path, real_articles_dir: Path, tmp_path: Path
) -> None:
    result = newsbot(["scan", str(store)], tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"{len(list(real_articles_dir.iterdir())) + len(GOOD_VARIANTS)} articles" in out
    assert f"{len(BAD_FILES) + 2} bad" in out
    for path in [*BAD_FILES, HUGE, SYMLINK_OUT]:
        assert f"  {path}: " in out, path
    assert "include_unscored = true" in out  # how to get the held-back unscored articles


def test_scan_with_a_process_pool_matches_in_process(
    real_articles_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "pool.toml"
    config.write_text("[store]\nparallel_threshold = 1\n", encoding="utf-8")
    in_process = scan_json([str(real_articles_dir)], tmp_path)
    pooled = scan_json(["--config", str(config), str(real_articles_dir)], tmp_path)
    assert pooled == in_process
    assert in_process["articles"] == len(list(real_articles_dir.iterdir()))
    assert in_process["bad"] == []
    assert in_process["topics"] == dict(
        Counter(t for p in real_articles_dir.iterdir() for t in front_matter(p)["topics"])
    )


def test_scan_of_a_missing_folder_fails_clearly(tmp_path: Path) -> None:
    result = newsbot(["scan", str(tmp_path / "nowhere")], tmp_path)
    assert result.returncode == 1
    assert "no such folder" in result.stdout


def test_a_second_scan_reads_only_what_changed_and_reports_the_same(
    tmp_path: Path, real_articles_dir: Path
) -> None:
    from bot.scan_cache import DigestCache
    from bot.scan_report import scan_store

    store = tmp_path / "store"
    store.mkdir()
    names = sorted(p.name for p in real_articles_dir.iterdir())[:30]
    for name in names:
        shutil.copy(real_articles_dir / name, store / name)
    (store / "bad.md").write_text("no front matter\n", encoding="utf-8")
    old = time.time() - 3600
    for path in store.iterdir():
        os.utime(path, (old, old))
    cache_dir = tmp_path / "cache"

    def scan(parsed: list[str]) -> dict[str, object]:
        cache = DigestCache.open(cache_dir, store, 1 << 20)
        assert cache is not None
        real = bot.store.read_file

        def counting(root: Path, rel: str, *args: object) -> object:
            parsed.append(rel)
            return real(root, rel, *args)  # type: ignore[arg-type]

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(bot.store, "read_file", counting)
            report = scan_store(store, 1 << 20, 1000, time.time(), cache)
        cache.close()
        return report.to_json()

    first_parsed: list[str] = []
    first = scan(first_parsed)
    assert len(first_parsed) == len(names) + 1
    again_parsed: list[str] = []
    assert scan(again_parsed) == first and again_parsed == []
    # One file changes, one is removed: only the changed one is read, and the report follows.
    changed = store / names[0]
    changed.write_text(changed.read_text(encoding="utf-8").replace("topics:", "topics:\n  - Zed"))
    os.utime(changed, (old + 1, old + 1))
    (store / names[1]).unlink()
    third_parsed: list[str] = []
    third = scan(third_parsed)
    assert third_parsed == [names[0]]
    assert third["articles"] == first["articles"] - 1  # type: ignore[operator]
    assert third["topics"]["Zed"] == 1  # type: ignore[index]
    assert third["bad"] == first["bad"]


def test_no_cache_parses_everything(tmp_path: Path, real_articles_dir: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(real_articles_dir, store)
    cached = scan_json([str(store)], tmp_path)
    again = scan_json([str(store)], tmp_path)
    fresh = scan_json([str(store), "--no-cache"], tmp_path)
    assert cached == again == fresh
