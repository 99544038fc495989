"""Canonical URLs: the identity of a story.

Two spellings of one page (upper-case host, a `#fragment`, `utm_*` tracking, a raw space in the
path) must map to one key, or the same story would be posted twice.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

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


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered.startswith("utm_") or lowered in _TRACKING_PARAMS


def normalize_url(url: str) -> str:
    """The canonical form of `url`: scheme and host lower-cased, default port, fragment and
    tracking parameters dropped, path and query percent-encoded consistently."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port if parts.port is not None else None
    netloc = host
    if port is not None and str(port) != _DEFAULT_PORTS.get(scheme):
        netloc = f"{host}:{port}"
    path = quote(parts.path, safe=_PATH_SAFE) or "/"
    query_pairs = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k)
    ]
    query = urlencode(query_pairs, quote_via=quote, safe=_PATH_SAFE.replace("&", "").replace("=", ""))
    return urlunsplit((scheme, netloc, path, query, ""))


def is_http_url(url: str) -> bool:
    """True when `url` is an absolute http(s) URL with a host: the only kind we link to."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def domain_of(url: str) -> str:
    """The host of `url` without a leading `www.`, for naming an outlet that has no name."""
    host = (urlsplit(url.strip()).hostname or "").lower()
    return host.removeprefix("www.")
