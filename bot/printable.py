"""Untrusted text made safe to print on one line of a terminal or a log.

File names, titles, channel names and the reasons that quote them come from anywhere. Printed
raw, a newline forges a log record, an escape sequence recolours or rewrites the reader's
terminal, a line separator splits a line for tools that honour it, and a bidi override makes
`txt.exe.md` read as something else. `printable` escapes all of these visibly (the text stays
readable and the escape shows what was there); `json_text` does the same inside JSON, where
the escapes are JSON's own, so any JSON reader gets the exact original back.
"""

from __future__ import annotations

import json

# C0 controls, DEL and C1 controls (0x9b is an 8-bit CSI, acted on by some terminals).
_CONTROLS = (*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0))
# Unicode line and paragraph separators; bidi marks, embeddings, overrides and isolates.
_UNICODE_HAZARDS = (
    0x061C,
    0x200E,
    0x200F,
    0x2028,
    0x2029,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
)
# Lone surrogates: a file name that is not UTF-8 decodes to U+DC80..U+DCFF (one per raw byte),
# which no UTF-8 stream can print.
_SURROGATES = range(0xD800, 0xE000)

_PRINTABLE: dict[int, str] = {
    **{code: f"\\x{code:02x}" for code in _CONTROLS},
    0x09: "\\t",
    0x0A: "\\n",
    0x0D: "\\r",
    **{code: f"\\u{code:04x}" for code in _UNICODE_HAZARDS},
    **{code: f"\\u{code:04x}" for code in _SURROGATES},
    # The raw byte a surrogate-escaped file name held, as `ls -b` would show it.
    **{code: f"\\x{code - 0xDC00:02x}" for code in range(0xDC80, 0xDD00)},
}
# json.dumps escapes C0 itself; the rest it leaves raw when ensure_ascii is off.
_JSON: dict[int, str] = {
    code: f"\\u{code:04x}"
    for code in (0x7F, *range(0x80, 0xA0), *_UNICODE_HAZARDS, *_SURROGATES)
}


def printable(text: str) -> str:
    """`text` on one line with every control and hazardous character shown as an escape."""
    return text.translate(_PRINTABLE)


def json_text(value: object, indent: int | None = None) -> str:
    """JSON with readable non-ASCII text but no raw control, separator or bidi character."""
    # Those characters can only occur inside JSON strings, where a \\u escape means the same.
    return json.dumps(value, ensure_ascii=False, indent=indent).translate(_JSON)
