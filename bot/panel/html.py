"""HTML with escaping by default: every value that goes into a template is escaped unless it is
already `Markup` (HTML we built). There is no way to put a plain string into a page unescaped
but to wrap it in `Markup` by hand, which only this package's own templates do."""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import SupportsIndex


class Markup(str):
    """A string of HTML that is safe to put in a page as it is."""

    __slots__ = ()

    def format(self, *args: object, **kwargs: object) -> Markup:
        return Markup(
            str.format(self, *map(_arg, args), **{k: _arg(v) for k, v in kwargs.items()})
        )

    def join(self, parts: Iterable[object]) -> Markup:
        return Markup(str.join(self, (escape(p) for p in parts)))

    def __add__(self, other: object) -> Markup:
        return Markup(str.__add__(self, escape(other)))

    def __radd__(self, other: object) -> Markup:
        return Markup(str.__add__(escape(other), self))

    def __mul__(self, count: SupportsIndex) -> Markup:
        return Markup(str.__mul__(self, count))


def _arg(value: object) -> object:
    """Numbers stay numbers (a format spec such as `{:.1f}` needs them; they hold no markup),
    everything else is escaped."""
    if isinstance(value, int | float):
        return value
    return escape(value)


def escape(value: object) -> Markup:
    """`value` as HTML text: `<`, `>`, `&`, `"` and `'` escaped (so it is safe in an attribute
    too); Markup is kept as it is; None is empty."""
    if isinstance(value, Markup):
        return value
    if value is None:
        return Markup("")
    return Markup(html.escape(str(value), quote=True))


VOID = frozenset({"input", "br", "hr", "meta", "link", "img"})


def tag(name: str, content: object = "", /, **attrs: object) -> Markup:
    """`<name attrs>content</name>` (a void element: no content, no end tag); attribute values
    escaped, None or False left out, True written bare. `class_` is `class`, `aria_x` is
    `aria-x`."""
    parts = [name]
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        attr = key.rstrip("_").replace("_", "-")
        parts.append(attr if value is True else f'{attr}="{escape(value)}"')
    if name in VOID:
        return Markup("<{}>").format(Markup(" ".join(parts)))
    return Markup("<{}>{}</{}>").format(Markup(" ".join(parts)), content, Markup(name))


def join(parts: Iterable[object], separator: str = "") -> Markup:
    return Markup(separator).join(parts)
