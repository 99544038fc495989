"""The article parser on real store files and on every kind of bad input the store may hold."""

from __future__ import annotations

import json
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.articles import (
    Article,
    ArticleError,
    Image,
    Provider,
    article_from_dict,
    article_to_dict,
    parse_article,
    parse_article_outline,
)
from bot.store import FileOutcome, read_file
from bot.urls import normalize_url

SEED = "000_9b0c7d64d6b1f023.txt"
CCPA = "2019-12-21-computer-vision-and-the-ccpa-what-you-need-to-know.md"
PEGA = "2013-07-04-from-chess-to-ping-pong-how-pegasystems-is-capturing-the-fortune-500.md"
BECKER = "2014-10-20-beckers-health-it-and-cio-report-e-newsletter.md"
FACIAL = "2019-12-21-is-facial-recognition-tech-too-young-to-trust-some-governments-think-so.md"
IMAGE_MARKET = (
    "2019-12-27-image-recognition-market-2020-2029-modern-analysis-of-worldwide-competition-"
    "strategic-development-and-progressive-approach.md"
)


def parse(path: Path) -> Article:
    return parse_article(path.read_bytes(), str(path))


def front_matter(path: Path) -> dict[str, Any]:
    """The file's fields read independently of the parser under test."""
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "---"
    end = lines.index("---", 1)
    data = yaml.safe_load("\n".join(lines[1:end]))
    assert isinstance(data, dict)
    return data


def corpus_files(corpus_dir: Path) -> list[Path]:
    return sorted(p for p in corpus_dir.iterdir() if p.is_file())


# --- every real file parses, and agrees with an independent read ------------------------------


def test_every_corpus_file_parses(corpus_dir: Path) -> None:
    files = corpus_files(corpus_dir)
    assert len(files) == 196
    failures = []
    for path in files:
        try:
            parse(path)
        except ArticleError as exc:
            failures.append(str(exc))
    assert failures == []


def test_every_seed_file_parses(seeds_dir: Path) -> None:
    files = sorted(p for p in seeds_dir.iterdir() if p.is_file())
    assert len(files) >= 21
    articles = [parse(p) for p in files]
    # The seeds are meant to show variety: scored and unscored, several topics, related coverage.
    assert any(a.quality is None for a in articles)
    assert any(a.quality is not None and a.quality >= 40 for a in articles)
    assert len({t for a in articles for t in a.topics}) >= 3
    assert any(len(a.related) >= 2 for a in articles)


def test_sample_files_are_exact_copies_of_corpus_files(
    corpus_dir: Path, sample_dir: Path
) -> None:
    sample = corpus_files(sample_dir)
    assert len(sample) >= 10
    for path in sample:
        assert path.read_bytes() == (corpus_dir / path.name).read_bytes(), path.name


def test_real_fields_agree_with_plain_yaml(real_articles_dir: Path) -> None:
    for path in corpus_files(real_articles_dir):
        raw = front_matter(path)
        a = parse(path)
        where = path.name
        assert a.title == " ".join(raw["title"].split()), where
        assert a.quality == raw.get("quality"), where
        assert a.heat == raw.get("heat"), where
        assert a.published == raw.get("published"), where
        assert a.topics == tuple(raw["topics"]), where
        assert a.provider.name == raw["provider"]["name"], where
        assert a.provider.domain == raw["provider"]["domain"], where
        assert len(a.related) == len(raw.get("related") or []), where
        assert [r.quality for r in a.related] == [r.get("quality") for r in raw.get("related", [])]
        assert a.web_url == raw.get("webUrl", raw.get("originalUrl")), where
        assert a.key == normalize_url(a.web_url), where
        assert normalize_url(a.key) == a.key, where
        assert a.published_at is not None and a.published_at.utcoffset() is not None, where
        assert a.published_at.utcoffset().total_seconds() == 0, where  # type: ignore[union-attr]
        assert a.published_at == raw["publishedDateTime"].replace(tzinfo=UTC), where
        assert not hasattr(a, "secured")


def test_round_trip_through_dict_and_json_for_every_real_file(real_articles_dir: Path) -> None:
    for path in corpus_files(real_articles_dir):
        a = parse(path)
        assert article_from_dict(article_to_dict(a)) == a, path.name
        assert article_from_dict(json.loads(json.dumps(article_to_dict(a)))) == a, path.name


# --- real field values of specific files ------------------------------------------------------


def test_seed_article(seeds_dir: Path) -> None:
    a = parse(seeds_dir / SEED)
    assert a.title == (
        "Exclusive - Amazon Extends Moratorium on Police Use of Facial Recognition Software"
    )
    url = (
        "https://www.usnews.com/news/top-news/articles/2021-05-18/"
        "exclusive-amazon-extends-moratorium-on-police-use-of-facial-recognition-software"
    )
    assert a.web_url == url and a.original_url == url and a.key == url
    assert a.excerpt.startswith("Amazon.com Inc told Reuters on Tuesday")
    assert a.published_at == datetime(2021, 5, 18, 19, 56, tzinfo=UTC)
    assert a.published_at.tzinfo is not None
    assert a.quality == 43 and a.heat == -1 and a.published is False
    assert a.type == "article" and a.category == "news"
    assert a.provider == Provider(
        name="U.S. News & World Report",
        domain="usnews.com",
        images=(
            Image(
                url="https://everyday-cc.github.io/ai/assets/images/organizations/usnews.com-50x50.jpg",
                width=50,
                height=50,
            ),
        ),
    )
    assert a.topics == ("Computer Vision", "AI")
    assert a.images == ()
    assert len(a.related) == 12
    assert [r.provider.name for r in a.related if r.provider] == [
        "Forbes", "New York Times", "CBS News", "The Pantagraph", "The Financial Times",
        "PC Magazine", "The Daily Dot", "Aclu.org", "CBS Atlanta", "Associated Press",
        "Charlotte Observer", "CNN Philippines",
    ]  # fmt: skip
    assert [r.quality for r in a.related] == [91, 77, 74, 69, 61, 50, 49, 41, 39, 39, 35, 19]
    forbes = a.related[0]
    assert forbes.title == "Amazon Indefinitely Bans Police Use Of Facial Recognition Technology"
    assert forbes.provider == Provider(name="Forbes", domain="forbes.com")
    assert forbes.published_at == datetime(2021, 5, 18, 21, 49, tzinfo=UTC)
    assert forbes.amp_web_url == (
        "https://www.forbes.com/sites/davidjeans/2021/05/18/"
        "amazon-indefinitely-bans-police-use-of-facial-recognition-technology/amp/"
    )
    assert forbes.cdn_amp_web_url is not None
    assert forbes.cdn_amp_web_url.startswith("https://www-forbes-com.cdn.ampproject.org/c/s/")
    assert forbes.type == "article"
    assert len(forbes.images) == 1 and forbes.images[0].width == 1200
    assert forbes.images[0].height == 776
    ft = a.related[4]
    assert ft.amp_web_url == "https://amp.ft.com/content/f6a9548a-a235-414e-b5e5-3e262e386722"
    assert [r.amp_web_url is not None for r in a.related] == [
        True, True, True, True, True, False, True, False, False, False, True, False,
    ]  # fmt: skip
    charlotte = a.related[10]
    assert charlotte.images == ()
    assert charlotte.cdn_amp_web_url == (
        "https://amp-charlotteobserver-com.cdn.ampproject.org/c/s/amp.charlotteobserver.com/"
        "news/nation-world/national/article251512648.html"
    )


def test_quality_above_100_and_amp_urls(sample_dir: Path) -> None:
    a = parse(sample_dir / PEGA)
    assert a.title == "From chess to ping pong: How Pegasystems is capturing the Fortune 500"
    assert a.quality == 142 and a.heat == 142 and a.published is True
    assert a.is_scored
    assert a.web_url == (
        "https://www.computerweekly.com/feature/How-Pegasystems-is-capturing-the-Fortune-500"
    )
    assert a.amp_web_url == a.web_url + "?amp=1"
    assert a.cdn_amp_web_url == (
        "https://www-computerweekly-com.cdn.ampproject.org/c/s/www.computerweekly.com/feature/"
        "How-Pegasystems-is-capturing-the-Fortune-500?amp=1"
    )
    assert a.original_url is None
    assert a.published_at == datetime(2013, 7, 4, 16, 36, tzinfo=UTC)
    assert a.provider == Provider(name="Computer Weekly", domain="computerweekly.com")
    assert a.topics == ("AI",)
    assert a.images == (
        Image(
            url="https://cdn.ttgtmedia.com/rms/editorial/Alan-Pegasystems.jpg",
            width=580,
            height=387,
            title="From chess to ping pong: How Pegasystems is capturing the Fortune 500",
        ),
    )
    assert a.related == ()


def test_unscored_article_with_different_original_url(sample_dir: Path) -> None:
    a = parse(sample_dir / BECKER)
    assert a.title == "Becker's Health IT and CIO Report E-Newsletter"
    assert a.quality is None and not a.is_scored
    assert a.heat is None and a.published is None
    # webUrl wins over originalUrl as the story's identity (docs/article-format.md).
    assert a.web_url == "https://www.pwc.com/us/en/tech-effect/ai-analytics/ai-predictions.html"
    assert a.key == a.web_url
    assert a.original_url == (
        "https://www.beckershospitalreview.com/e-weeklies/beckers-hospital-cio-report-e-weekly.html"
    )
    assert a.provider.name == "Becker's Hospital Review"
    assert a.provider.domain == "beckershospitalreview.com"
    assert a.published_at == datetime(2014, 10, 19, 22, 18, tzinfo=UTC)
    assert len(a.images) == 1 and a.images[0].width == 670 and a.images[0].title is None


def test_unquoted_url_with_dashes_and_relative_provider_image(sample_dir: Path) -> None:
    a = parse(sample_dir / CCPA)
    # The URL holds '---------2---': it must not be taken for the closing line.
    assert a.web_url == (
        "https://medium.com/trueface-ai/computer-vision-and-the-ccpa-what-you-need-to-know-"
        "928477de0601?source=topic_page---------2------------------1"
    )
    assert a.key == a.web_url
    assert a.quality == 69 and a.heat == 69
    assert a.topics == ("AI", "Computer Vision")
    # The provider's only image is a relative path: never linkable, so dropped.
    assert a.provider == Provider(name="Medium", domain="medium.com")
    assert [i.url for i in a.images] == [
        "https://miro.medium.com/max/1200/1*YGkB52a5tgp8vGHleh2bAw.png"
    ]


def test_related_items_with_their_providers(sample_dir: Path) -> None:
    a = parse(sample_dir / FACIAL)
    assert a.quality == 3 and a.heat == -1
    assert [(r.provider.name, r.provider.domain, r.quality) for r in a.related if r.provider] == [
        ("ABC News", "go.com", 19),
        ("MIT Technology Review", "technologyreview.com", 19),
        ("USA Today", "usatoday.com", 14),
    ]
    assert all(r.amp_web_url is None and r.cdn_amp_web_url is None for r in a.related)
    assert a.related[0].published_at == datetime(2019, 12, 17, 19, 40, tzinfo=UTC)
    assert a.related[2].title == (
        "Why some cities, states and lawmakers want to curb facial recognition technology"
    )


def test_related_url_with_a_raw_space(sample_dir: Path) -> None:
    a = parse(sample_dir / IMAGE_MARKET)
    assert a.title.startswith("Image Recognition Market 2020-2029 | Modern Analysis")
    assert a.quality == 27
    assert len(a.related) == 2
    ap = a.related[1]
    assert ap.web_url == "https://apnews.com/Wired Release/20e8c5c9a540ea70c73effd0085b6585"
    assert ap.provider == Provider(name="Associated Press News", domain="apnews.com")
    assert ap.quality == 15 and len(ap.images) == 1
    assert normalize_url(ap.web_url) == (
        "https://apnews.com/Wired%20Release/20e8c5c9a540ea70c73effd0085b6585"
    )


# --- accepted variations ------------------------------------------------------------------------

GOOD = "---\ntitle: A title\nwebUrl: https://example.com/a\n"


def ok(text: str | bytes, path: str = "store/good.md") -> Article:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return parse_article(data, path)


def test_unknown_keys_tolerated_and_secured_ignored() -> None:
    a = ok(
        GOOD + "secured: [1, {weird: true}]\nfeaturedContent: '<iframe src=x>'\nnew: {a: 1}\n---\n"
    )
    assert a.title == "A title" and a.key == "https://example.com/a"
    assert "secured" not in article_to_dict(a)


def test_bom_tolerated() -> None:
    assert ok("\ufeff" + GOOD + "---\n").title == "A title"


def test_crlf_line_endings_accepted() -> None:
    a = ok((GOOD + "quality: 50\ntopics:\n  - AI\n---\nbody\n").replace("\n", "\r\n"))
    assert a.title == "A title" and a.quality == 50 and a.topics == ("AI",)
    assert a.web_url == "https://example.com/a"


def test_body_after_front_matter_and_dots_closing() -> None:
    assert ok(GOOD + "---\n# Body\n\n---\nmore\n").title == "A title"
    assert ok(GOOD + "...\n").title == "A title"


def test_published_date_time_as_quoted_string() -> None:
    a = ok(GOOD + 'publishedDateTime: "2021-05-18T19:56:00Z"\n---\n')
    assert a.published_at == datetime(2021, 5, 18, 19, 56, tzinfo=UTC)
    b = ok(GOOD + 'publishedDateTime: "2021-05-18T21:56:00+02:00"\n---\n')
    assert b.published_at == datetime(2021, 5, 18, 19, 56, tzinfo=UTC)
    assert b.published_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_published_date_only() -> None:
    a = ok(GOOD + "publishedDateTime: 2021-05-18\n---\n")
    assert a.published_at == datetime(2021, 5, 18, tzinfo=UTC)


def test_naive_date_time_is_utc() -> None:
    a = ok(GOOD + "publishedDateTime: 2021-05-18 19:56:00\n---\n")
    assert a.published_at == datetime(2021, 5, 18, 19, 56, tzinfo=UTC)


def test_quality_170_accepted_and_zero_is_scored() -> None:
    assert ok(GOOD + "quality: 170\n---\n").quality == 170
    zero = ok(GOOD + "quality: 0\n---\n")
    assert zero.quality == 0 and zero.is_scored


def test_missing_quality_is_unscored() -> None:
    a = ok(GOOD + "---\n")
    assert a.quality is None and not a.is_scored


def test_original_url_alone_is_enough() -> None:
    a = ok("---\ntitle: T\noriginalUrl: HTTPS://Example.com/x#frag\n---\n")
    assert a.web_url == "HTTPS://Example.com/x#frag"
    assert a.key == "https://example.com/x"
    assert a.provider.domain == "example.com"  # no provider: named after the URL


def test_topics_deduplicated_case_insensitively_and_whitespace_collapsed() -> None:
    a = ok(GOOD + "topics:\n  - AI\n  - ai\n  - ' Machine   Learning '\n  - ''\n---\n")
    assert a.topics == ("AI", "Machine Learning")


def test_malformed_related_items_dropped_article_survives() -> None:
    a = ok(
        GOOD
        + "related:\n"
        + "  - just a string\n"
        + "  - title: no url at all\n"
        + "  - title: a number for a URL\n    webUrl: 12\n"
        + "  - title: negative quality\n    webUrl: https://o.com/x\n    quality: -1\n"
        + "  - title: bad date\n    webUrl: https://o.com/y\n    publishedDateTime: soon\n"
        + "  - title: Kept\n    webUrl: https://kept.example/k\n    quality: 12\n"
        + "    provider:\n      name: Kept News\n      domain: kept.example\n"
        + "---\n"
    )
    assert a.title == "A title"
    assert [(r.title, r.web_url, r.quality) for r in a.related] == [
        ("Kept", "https://kept.example/k", 12)
    ]
    assert a.related[0].provider == Provider(name="Kept News", domain="kept.example")


def test_bad_images_dropped_article_survives() -> None:
    a = ok(
        GOOD
        + "images:\n  - url: /relative.png\n  - 7\n  - url: https://img.example/a.png\n"
        + "    width: wide\n    height: 10\n---\n"
    )
    assert a.images == (Image(url="https://img.example/a.png", width=None, height=10),)


# --- bad input: an ArticleError naming the path, with a reason a person can act on ---------------

BAD_CASES: list[tuple[str, bytes, tuple[str, ...]]] = [
    (
        "invalid_utf8",
        b"---\ntitle: caf\xe9\nwebUrl: https://e.com/\n---\n",
        ("UTF-8", "line 2", "byte 14"),
    ),
    ("no_front_matter", b"title: T\nwebUrl: https://e.com/\n", ("no front matter", "'---'")),
    ("empty_file", b"", ("no front matter",)),
    ("unclosed", GOOD.encode(), ("not closed", "'---'")),
    ("only_opening_line", b"---", ("not closed",)),
    (
        "yaml_syntax",
        (GOOD + "excerpt: a: b: c\n---\n").encode(),
        ("YAML syntax error", "line 4", "quote"),
    ),
    (
        "yaml_syntax_crlf",
        (GOOD + "excerpt: a: b: c\n---\n").replace("\n", "\r\n").encode(),
        ("YAML syntax error", "line 4"),
    ),
    ("yaml_tab", (GOOD + "\ttopics: x\n---\n").encode(), ("YAML syntax error", "line 4", "tab")),
    ("title_number", b"---\ntitle: 12\nwebUrl: https://e.com/\n---\n", ("`title`", "string")),
    ("title_list", b"---\ntitle: [a, b]\nwebUrl: https://e.com/\n---\n", ("`title`", "a list")),
    ("title_date", b"---\ntitle: 2021-01-01\nwebUrl: https://e.com/\n---\n", ("`title`", "quote")),
    ("title_missing", b"---\nwebUrl: https://e.com/\n---\n", ("no `title`",)),
    ("title_blank", b"---\ntitle: '   '\nwebUrl: https://e.com/\n---\n", ("`title` is empty",)),
    ("url_missing", b"---\ntitle: T\n---\n", ("no `webUrl`", "originalUrl")),
    ("url_ftp", b"---\ntitle: T\nwebUrl: ftp://e.com/x\n---\n", ("`webUrl`", "http(s)")),
    ("url_javascript", b"---\ntitle: T\nwebUrl: javascript:alert(1)\n---\n", ("http(s)",)),
    ("url_relative", b"---\ntitle: T\nwebUrl: /news/a\n---\n", ("`webUrl`", "http(s)")),
    ("url_bad_port", b"---\ntitle: T\nwebUrl: https://e.com:99999/a\n---\n", ("`webUrl`",)),
    (
        "original_url_bad",
        b"---\ntitle: T\nwebUrl: https://e.com/\noriginalUrl: nope\n---\n",
        ("`originalUrl`", "http(s)"),
    ),
    ("quality_string", (GOOD + "quality: high\n---\n").encode(), ("`quality`", "number", "string")),
    ("quality_negative", (GOOD + "quality: -3\n---\n").encode(), ("`quality`", "0 or more", "-3")),
    ("quality_bool", (GOOD + "quality: true\n---\n").encode(), ("`quality`", "true/false")),
    ("quality_nan", (GOOD + "quality: .nan\n---\n").encode(), ("`quality`",)),
    ("quality_infinite", (GOOD + "quality: .inf\n---\n").encode(), ("`quality`", "finite")),
    ("quality_list", (GOOD + "quality: [1]\n---\n").encode(), ("`quality`", "a list")),
    ("topics_string", (GOOD + "topics: AI\n---\n").encode(), ("`topics`", "list of strings")),
    ("topics_number", (GOOD + "topics: [AI, 3]\n---\n").encode(), ("`topics`", "list of strings")),
    ("topics_mapping", (GOOD + "topics: {AI: 1}\n---\n").encode(), ("`topics`",)),
    ("excerpt_list", (GOOD + "excerpt: [a]\n---\n").encode(), ("`excerpt`", "string")),
    ("provider_string", (GOOD + "provider: Forbes\n---\n").encode(), ("`provider`", "mapping")),
    ("related_mapping", (GOOD + "related: {a: 1}\n---\n").encode(), ("`related`", "list")),
    ("date_words", (GOOD + "publishedDateTime: yesterday\n---\n").encode(), ("ISO 8601",)),
    ("date_number", (GOOD + "publishedDateTime: 12\n---\n").encode(), ("`publishedDateTime`",)),
    (
        "python_object_apply",
        (GOOD + "x: !!python/object/apply:os.system ['touch /tmp/pwned']\n---\n").encode(),
        ("unsupported YAML tag", "python/object/apply"),
    ),
    (
        "python_name",
        (GOOD + "x: !!python/name:os.system\n---\n").encode(),
        ("unsupported YAML tag", "python/name"),
    ),
    (
        "python_object_as_title",
        b"---\ntitle: !!python/object:collections.OrderedDict {}\nwebUrl: https://e.com/\n---\n",
        ("unsupported YAML tag",),
    ),
    ("custom_tag", (GOOD + "x: !local thing\n---\n").encode(), ("unsupported YAML tag",)),
    ("list_not_mapping", b"---\n- title: T\n- webUrl: https://e.com/\n---\n", ("mapping", "list")),
    ("scalar_not_mapping", b"---\njust words\n---\n", ("mapping", "a string")),
    ("empty_front_matter", b"---\n---\n", ("mapping", "empty")),
    ("nul_byte", (GOOD + "excerpt: a\x00b\n---\n").encode(), ("control character", "line 4")),
    (
        # The alias count scans tokens first: it must report the syntax error, not crash.
        "alias_then_syntax_error",
        (GOOD + 'x: &a 1\ny: *a\nz: "unterminated\n---\n').encode(),
        ("YAML syntax error", "line 6", "never closed"),
    ),
    ("undefined_alias", (GOOD + "y: *nowhere\n---\n").encode(), ("YAML syntax error", "alias")),
]


@pytest.mark.parametrize(
    ("name", "data", "fragments"), BAD_CASES, ids=[case[0] for case in BAD_CASES]
)
def test_bad_input_is_an_article_error(name: str, data: bytes, fragments: tuple[str, ...]) -> None:
    path = f"store/sub/{name}.md"
    with pytest.raises(ArticleError) as caught:
        parse_article(data, path)
    error = caught.value
    assert error.path == path
    assert str(error).startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in error.reason, error.reason
    assert len(error.reason) > 15


# Where an editor puts the cursor for a YAML error: the file's own line and column (1-based),
# counting the opening `---` as line 1.
YAML_ERROR_POSITIONS = [
    # A quote opened on line 2 and never closed: PyYAML notices only at the end of the front
    # matter (line 8), but the mistake is the quote at line 2, column 8.
    (
        "unclosed-quote.md",
        '---\ntitle: "Broken\nwebUrl: https://e.com/\nquality: 5\ntopics:\n  - AI\n'
        "excerpt: x\n---\n",
        "line 2, column 8",
        "never closed",
    ),
    ("colon.md", "---\ntitle: a: b\nwebUrl: https://e.com/\n---\n", "line 2, column 9", ""),
    # Found on line 4, and the unclosed `[` it belongs to is named too.
    (
        "flow.md",
        "---\ntitle: T\ntopics: [AI, ML\nwebUrl: https://e.com/\n---\n",
        "line 4, column 7",
        "flow sequence that starts at line 3, column 9",
    ),
    # A byte-order mark and CRLF line ends move nothing.
    (
        "bom-crlf.md",
        '\ufeff---\r\ntitle: T\r\nexcerpt: "open\r\n---\r\n',
        "line 3, column 10",
        "never closed",
    ),
]


@pytest.mark.parametrize(
    ("name", "text", "where", "also"),
    YAML_ERROR_POSITIONS,
    ids=[c[0] for c in YAML_ERROR_POSITIONS],
)
def test_a_yaml_error_names_the_line_and_column_in_the_file(
    tmp_path: Path, name: str, text: str, where: str, also: str
) -> None:
    (tmp_path / name).write_bytes(text.encode("utf-8"))
    outcome = read_file(tmp_path, name, 1 << 20, now_s=float("inf"))
    assert isinstance(outcome, FileOutcome) and outcome.error is not None, outcome
    assert outcome.error.startswith(f"YAML syntax error at {where}: "), outcome.error
    assert also in outcome.error


def test_python_tag_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    data = (GOOD + f"x: !!python/object/apply:os.system ['touch {marker}']\n---\n").encode()
    with pytest.raises(ArticleError):
        parse_article(data, "x.md")
    assert not marker.exists()


def test_alias_bomb_rejected_quickly_with_bounded_memory() -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 10):
        lines.append(f"a{level}: &a{level} [" + ",".join([f"*a{level - 1}"] * 9) + "]")
    # Fully expanded, this is 9**10 (3.5 billion) strings.
    data = (GOOD + "\n".join(lines) + "\n---\n").encode()
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ArticleError) as caught:
            parse_article(data, "bomb.md")
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "alias" in caught.value.reason and "bomb.md" in str(caught.value)
    assert elapsed < 1.0
    assert peak < 5 * 1024 * 1024


def test_alias_bomb_hidden_in_flow_style_rejected() -> None:
    lines = ["a0: &a0 [x,x]"] + [f"a{i}: &a{i} [*a{i - 1},*a{i - 1}]" for i in range(1, 12)]
    with pytest.raises(ArticleError, match="alias"):
        parse_article((GOOD + "\n".join(lines) + "\n---\n").encode(), "bomb.md")


def test_a_few_anchors_are_tolerated() -> None:
    a = ok("---\ntitle: &t Same words\nexcerpt: *t\nwebUrl: https://e.com/a\n---\n")
    assert a.excerpt == "Same words"
    assert ok(GOOD + "excerpt: 'Tom &Jerry *stars*'\n---\n").excerpt == "Tom &Jerry *stars*"


def test_file_over_the_size_cap() -> None:
    data = (GOOD + "excerpt: '" + "x" * 5000 + "'\n---\n").encode()
    with pytest.raises(ArticleError) as caught:
        parse_article(data, "big.md", max_bytes=4096)
    assert caught.value.path == "big.md"
    assert "over the 4,096-byte limit" in caught.value.reason
    assert "max_file_bytes" in caught.value.reason
    assert parse_article(data, "big.md", max_bytes=len(data)).title == "A title"


def test_default_size_cap_is_one_mebibyte() -> None:
    filler = "x" * (1024 * 1024)
    with pytest.raises(ArticleError, match="1,048,576-byte limit"):
        parse_article((GOOD + f"excerpt: '{filler}'\n---\n").encode(), "big.md")


def test_an_outline_differs_only_by_the_fields_left_unbuilt(real_articles_dir: Path) -> None:
    """`newsbot scan` leaves related coverage and images unbuilt; everything else must be what
    a full parse gives, and a wrong shape there is still an error."""
    from dataclasses import replace

    for path in sorted(real_articles_dir.iterdir()):
        data = path.read_bytes()
        full = parse_article(data, path.name)
        assert parse_article_outline(data, path.name) == replace(full, related=(), images=())
    assert any(parse_article(p.read_bytes(), p.name).related for p in real_articles_dir.iterdir())
    bad = b"---\ntitle: x\nwebUrl: https://e.com/a\nrelated: not a list\n---\n"
    with pytest.raises(ArticleError, match="`related` must be a list"):
        parse_article_outline(bad, "bad.md")
    merged = b"---\nbase: &b {title: From merge}\n<<: *b\nwebUrl: https://e.com/m\n---\n"
    assert parse_article_outline(merged, "m.md").title == "From merge"


def test_our_loader_resolves_every_value_as_pyyaml_does(real_articles_dir: Path) -> None:
    """The faster resolver must be the same contract: identical values on real files and on
    the YAML 1.1 corner cases (booleans, nulls, numbers, dates, merge keys)."""
    import yaml

    from bot.articles import _front_matter, _Loader

    real = sorted(real_articles_dir.iterdir())
    blocks = [_front_matter(p.read_text(encoding="utf-8")) for p in real]
    blocks.append(
        "a: yes\nb: No\nc: ~\nd: null\ne: ''\nf: 0o17\ng: 0x1F\nh: 1_000\ni: .inf\nj: -.NaN\n"
        "k: 2021-05-18\nl: 2021-05-18T19:56:00Z\nm: 12:30:00\nn: +3.5e2\np: '1'\n"
        "q: [on, off, Y, n]\nr: &x {s: 1}\nt:\n  <<: *x\n  u: 2\nv: !!str 12\n"
    )
    for block in blocks:
        # Compared as text: NaN never equals itself.
        assert repr(yaml.load(block, Loader=_Loader)) == repr(
            yaml.load(block, Loader=yaml.SafeLoader)
        )


CORNER_CASES = [
    "a: yes\nb: No\nc: ~\nd: null\ne: ''\nf: 0o17\ng: 0x1F\nh: 1_000\ni: .inf\nj: -.NaN\n"
    "k: 2021-05-18\nl: 2021-05-18T19:56:00Z\nm: 12:30:00\nn: +3.5e2\np: '1'\n"
    "q: [on, off, Y, n]\nr: &x {s: 1}\nt:\n  <<: *x\n  u: 2\nv: !!str 12\n",
    "base: {x: 1}\nt:\n  <<: {y: 2}\n  z: 3\n",  # a merge key without aliases
    "a: !!set {x, y}\nb: !!omap [{k: 1}, {j: 2}]\nc: !!binary aGVsbG8=\nd: !!float 3\n",
    "? [a, b]\n: unhashable\n",
    "a: b\na: c\n",  # duplicate keys: the last wins
    "- 1\n- [2, [3, {four: 4}]]\n- {five: [5]}\n",
]


def _load_both(block: str) -> tuple[str, str]:
    import yaml

    from bot.articles import _Invalid, _load_yaml

    try:
        ours = repr(_load_yaml(block))
    except _Invalid as exc:
        ours = f"error: {type(exc).__name__}"
    try:
        theirs = repr(yaml.load(block, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        theirs = f"error: {type(exc).__name__}"
    return ours, theirs


def test_our_construction_gives_what_pyyaml_gives(real_articles_dir: Path) -> None:
    """Plain strings, lists and mappings are built directly, everything else by PyYAML: the
    values must be PyYAML's, on real files and on the corner cases of YAML 1.1."""
    from bot.articles import _front_matter

    real = sorted(real_articles_dir.iterdir())
    blocks = [_front_matter(p.read_text(encoding="utf-8")) for p in real]
    for block in [*blocks, *CORNER_CASES]:
        ours, theirs = _load_both(block)
        if theirs.startswith("error"):
            assert ours.startswith("error"), block
        else:
            assert ours == theirs, block


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20)
    | st.floats(allow_nan=False) | st.dates(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(value=yaml_values)
def test_any_dumped_value_loads_back_as_pyyaml_loads_it(value: object) -> None:
    import yaml

    block = yaml.safe_dump({"v": value})
    ours, theirs = _load_both(block)
    assert ours == theirs
