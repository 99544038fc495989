"""Canonical URLs: two spellings of one page must give one key, two pages must not share one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.urls import domain_of, is_http_url, normalize_url

# --- normalize_url: spellings of one page that must agree ------------------------------------


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("HTTPS://Example.COM/Path", "https://example.com/Path"),  # the path keeps its case
        ("https://WWW.Forbes.com/x", "https://www.forbes.com/x"),  # www. is part of the host
        ("https://example.com/a#section-2", "https://example.com/a"),
        ("https://example.com/a#", "https://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com", "https://example.com/"),
        ("https://example.com/a?", "https://example.com/a"),
        ("  https://example.com/a  ", "https://example.com/a"),
        ("https://user:secret@example.com/a", "https://example.com/a"),
    ],
)
def test_spellings_normalize_to_one_form(spelling: str, canonical: str) -> None:
    assert normalize_url(spelling) == canonical


def test_tracking_parameters_dropped_and_others_kept_in_order() -> None:
    url = (
        "https://example.com/a?utm_source=feed&id=3&fbclid=IwAR0&UTM_Medium=social"
        "&page=2&gclid=x&utm_campaign=c"
    )
    assert normalize_url(url) == "https://example.com/a?id=3&page=2"


def test_only_tracking_parameters_leave_no_question_mark() -> None:
    assert normalize_url("https://example.com/a?utm_source=x&fbclid=y") == "https://example.com/a"


def test_parameter_that_merely_contains_utm_is_kept() -> None:
    assert normalize_url("https://e.com/?notutm_x=1") == "https://e.com/?notutm_x=1"


def test_non_default_port_kept() -> None:
    assert normalize_url("https://example.com:8443/a") == "https://example.com:8443/a"
    assert normalize_url("https://example.com:80/a") == "https://example.com:80/a"
    assert normalize_url("http://example.com:443/a") == "http://example.com:443/a"


def test_raw_space_in_path_equals_its_encoded_spelling() -> None:
    # A real corpus related item: https://apnews.com/Wired Release/20e8c5c9a540ea70c73effd0085b6585
    raw = normalize_url("https://apnews.com/Wired Release/20e8c5c9a540ea70c73effd0085b6585")
    encoded = normalize_url("https://apnews.com/Wired%20Release/20e8c5c9a540ea70c73effd0085b6585")
    assert raw == encoded == "https://apnews.com/Wired%20Release/20e8c5c9a540ea70c73effd0085b6585"


def test_non_ascii_path_equals_its_encoded_spelling() -> None:
    raw = normalize_url("https://example.com/café/über")
    upper = normalize_url("https://example.com/caf%C3%A9/%C3%BCber")
    lower = normalize_url("https://example.com/caf%c3%a9/%c3%bcber")
    assert raw == upper == lower == "https://example.com/caf%C3%A9/%C3%BCber"


def test_escaped_unreserved_characters_equal_the_plain_ones() -> None:
    assert normalize_url("https://e.com/%7Euser/%41bc") == normalize_url("https://e.com/~user/Abc")


def test_escaped_reserved_characters_stay_distinct() -> None:
    # %2F is not a path separator: decoding it would name another page.
    assert normalize_url("https://e.com/a%2fb") == "https://e.com/a%2Fb"
    assert normalize_url("https://e.com/a%2Fb") != normalize_url("https://e.com/a/b")


def test_stray_percent_is_encoded() -> None:
    assert normalize_url("https://e.com/100%") == normalize_url("https://e.com/100%25")


def test_trailing_slash_kept() -> None:
    assert normalize_url("https://example.com/a/") == "https://example.com/a/"
    assert normalize_url("https://example.com/a/") != normalize_url("https://example.com/a")


def test_query_plus_and_encoded_plus_keep_their_meanings() -> None:
    # `+` is a space in a query, `%2B` a plus sign: they name different searches.
    assert normalize_url("https://e.com/?q=a%2Bb") != normalize_url("https://e.com/?q=a+b")
    assert normalize_url("https://e.com/?q=a%2bb") == "https://e.com/?q=a%2Bb"
    assert normalize_url("https://e.com/?q=%2541") == "https://e.com/?q=%2541"


def test_query_non_ascii_equals_its_encoded_spelling() -> None:
    assert normalize_url("https://e.com/?q=café") == normalize_url("https://e.com/?q=caf%C3%A9")


def test_query_escaped_ampersand_stays_inside_its_value() -> None:
    assert normalize_url("https://e.com/?b=c%26d&e=f") == "https://e.com/?b=c%26d&e=f"


def test_ipv6_host_keeps_its_brackets() -> None:
    assert normalize_url("http://[::1]:8080/x") == "http://[::1]:8080/x"
    assert normalize_url("http://[2001:DB8::1]/x") == "http://[2001:db8::1]/x"


def test_international_host_equals_its_idna_spelling() -> None:
    assert normalize_url("https://Bücher.de/x") == normalize_url("https://xn--bcher-kva.de/x")


_hosts = st.from_regex(r"[a-zA-Z][a-zA-Z0-9-]{0,10}\.(com|org|de)", fullmatch=True)
_path_chars = st.characters(
    codec="utf-8", exclude_categories=("Cs", "Cc"), exclude_characters="?#\\"
)
_paths = st.lists(st.text(_path_chars, max_size=8), max_size=4).map(lambda p: "/" + "/".join(p))
_fields = st.lists(
    st.tuples(
        st.sampled_from(["id", "q", "utm_source", "fbclid", "page", "a b", "é"]),
        st.text(_path_chars.filter(lambda c: c not in "&="), max_size=6),
    ),
    max_size=4,
)


@given(
    scheme=st.sampled_from(["http", "HTTP", "https", "Https"]),
    host=_hosts,
    port=st.sampled_from(["", ":80", ":443", ":8080"]),
    path=_paths,
    fields=_fields,
    fragment=st.sampled_from(["", "#x", "#top"]),
)
def test_normalizing_is_idempotent(
    scheme: str, host: str, port: str, path: str, fields: list[tuple[str, str]], fragment: str
) -> None:
    query = "&".join(f"{k}={v}" for k, v in fields)
    url = f"{scheme}://{host}{port}{path}" + (f"?{query}" if query else "") + fragment
    once = normalize_url(url)
    assert normalize_url(once) == once
    assert once == once.strip()
    assert "#" not in once and " " not in once and once.isascii()
    assert "utm_source=" not in once and "fbclid=" not in once
    assert once.startswith(("http://", "https://"))
    assert is_http_url(once)


# --- is_http_url -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com",
        "http://example.com/a b",  # a raw space in the path is a real-world URL
        "HTTPS://EXAMPLE.COM/x",
        " https://example.com/x ",
        "https://example.com:8080/x",
        "http://[::1]/x",
    ],
)
def test_is_http_url_accepts(url: str) -> None:
    assert is_http_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "example.com/a",
        "//example.com/a",
        "/assets/images/organizations/medium.com-50x50.jpg",  # a real relative provider image
        "ftp://example.com/a",
        "javascript:alert(1)",
        "mailto:someone@example.com",
        "file:///etc/passwd",
        "https://",
        "http:///path-only",
        "http://[::1/unclosed",
        "https://example.com:99999/",  # port out of range
        "https://example.com:abc/",
        "http://exa mple.com/",  # a space in the host
    ],
)
def test_is_http_url_refuses(url: str) -> None:
    assert not is_http_url(url)


def test_normalize_refuses_a_port_out_of_range() -> None:
    with pytest.raises(ValueError):
        normalize_url("https://example.com:99999/")


# --- domain_of ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "domain"),
    [
        ("https://www.Forbes.com/sites/x", "forbes.com"),
        ("https://techcrunch.com/2021/03/11/x/", "techcrunch.com"),
        ("https://news.bbc.co.uk/x", "news.bbc.co.uk"),
        ("https://wwwexample.com/", "wwwexample.com"),  # not a `www.` prefix
        ("https://www.www.example.com/", "www.example.com"),  # only one prefix removed
        ("https://EXAMPLE.com:8080/x", "example.com"),
        ("not a url", ""),
        ("http://[::1/unclosed", ""),
    ],
)
def test_domain_of(url: str, domain: str) -> None:
    assert domain_of(url) == domain


@given(
    scheme=st.sampled_from(["http", "https"]),
    host=st.from_regex(r"[a-z0-9][a-z0-9.\-]{0,20}", fullmatch=True),
    path=st.from_regex(r"(/[A-Za-z0-9\-._~/!$&'()*+,;=:@]{0,30})?", fullmatch=True),
)
def test_the_fast_path_agrees_with_the_full_normalization(
    scheme: str, host: str, path: str
) -> None:
    from bot.urls import _normalize_parsed

    url = f"{scheme}://{host}{path}"
    assert normalize_url(url) == _normalize_parsed(url)
