"""Canonical URLs: the identity of a story.

Two spellings of one page (upper-case host, a `#fragment`, `utm_*` tracking, a raw space in the
path) must map to one key, or the same story would be posted twice.
"""

from __future__ import annotations

import contextlib
import re
import string
from urllib.parse import SplitResult, quote, unquote_plus, urlsplit, urlunsplit

# Query parameters that track the reader rather than name the page.
_TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "msclkid",
        "mc_cid",
        "mc_eid",
        "igshid",
        "ocid",
        "cmpid",
        "_ga",
        "_hsenc",
        "_hsmi",
        "yclid",
        "ncid",
        "sr_share",
    }
)
_DEFAULT_PORTS = {"http": "80", "https": "443"}
# Characters left as they are when re-quoting a path or query; everything else
# (raw spaces, non-ASCII letters) is percent-encoded so both spellings agree.
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
# Within one query field ('name=value'); '&' separates fields, so inside one it stays escaped.
_QUERY_SAFE = "/?:@!$'()*+,;=-._~%"
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered.startswith("utm_") or lowered in _TRACKING_PARAMS


def _canonical_escapes(text: str, safe: str) -> str:
    """One spelling per character (RFC 3986, 6.2.2): a stray '%' becomes %25, escapes of
    unreserved characters are decoded, other escapes are upper-cased, and raw spaces and
    non-ASCII letters are percent-encoded as UTF-8. Never changes what the URL means."""

    def escape(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    return quote(_ESCAPE.sub(escape, _STRAY_PERCENT.sub("%25", text)), safe=safe)


def _host(parts: SplitResult) -> str:
    host = (parts.hostname or "").lower()
    if not host.isascii():
        with contextlib.suppress(UnicodeError):  # not a valid international name: as written
            host = host.encode("idna").decode("ascii")
    return f"[{host}]" if ":" in host else host  # an IPv6 address keeps its brackets


# Already canonical: lower-case scheme and host, no port, and a path of characters that
# canonicalization leaves alone, without query or fragment. Most article URLs look like this,
# and every file needs its key, so they skip the full parse.
_CANONICAL_ALREADY = re.compile(r"https?://[a-z0-9.\-]+(?:/[A-Za-z0-9\-._~/!$&'()*+,;=:@]*)?")


def normalize_url(url: str) -> str:
    """The canonical form of `url`: scheme and host lower-cased (host in IDNA), default port,
    fragment and tracking parameters dropped, path and query percent-encoded consistently.
    Raises ValueError for a URL that `is_http_url` refuses (a port out of range)."""
    url = url.strip()
    if _CANONICAL_ALREADY.fullmatch(url):
        return url if url.count("/") > 2 else url + "/"
    return _normalize_parsed(url)


def _normalize_parsed(url: str) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    netloc = _host(parts)
    port = parts.port
    if port is not None and str(port) != _DEFAULT_PORTS.get(scheme):
        netloc = f"{netloc}:{port}"
    path = _canonical_escapes(parts.path, _PATH_SAFE) or "/"
    # Query fields are compared, not decoded and re-encoded: `+`, `%2B` and `%20` keep
    # their distinct meanings, and the order of the fields is kept.
    fields = [
        _canonical_escapes(item, _QUERY_SAFE)
        for item in parts.query.split("&")
        if item and not _is_tracking(unquote_plus(item.split("=", 1)[0]))
    ]
    return urlunsplit((scheme, netloc, path, "&".join(fields), ""))


# White space or control characters never belong in a host name.
_BAD_HOST_CHAR = re.compile(r"[\s\x00-\x1f]")


# The common shape (plain host, optional port) is accepted without a full parse; anything
# else takes the careful path below. Article files hold several URLs each.
_PLAIN_HTTP_URL = re.compile(r"(?i)https?://[a-z0-9.\-]+(?::(\d{1,5}))?(?=[/?#]|$)")


def is_http_url(url: str) -> bool:
    """True when `url` is an absolute http(s) URL with a host: the only kind we link to."""
    url = url.strip()
    plain = _PLAIN_HTTP_URL.match(url)
    if plain and url[plain.end() - 1] != "." and (not plain[1] or int(plain[1]) <= 65535):
        return True
    try:
        parts = urlsplit(url.strip())
        _ = parts.port  # raises ValueError for a port out of range or not a number
    except ValueError:
        return False
    host = parts.hostname
    return (
        parts.scheme.lower() in ("http", "https")
        and bool(host)
        and _BAD_HOST_CHAR.search(host or "") is None
    )


def domain_of(url: str) -> str:
    """The host of `url` without a leading `www.`, for naming an outlet that has no name."""
    try:
        host = (urlsplit(url.strip()).hostname or "").lower()
    except ValueError:  # an unclosed IPv6 bracket
        return ""
    return host.removeprefix("www.")
