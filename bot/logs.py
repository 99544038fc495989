"""Logging set-up, called once from the command line: readable text or JSON lines.

Log messages quote untrusted text (file names, titles, channel names). Both formats keep one
record to one line and print no control character raw (see bot/printable.py), so a hostile
name can neither forge a record nor send escape codes to whoever reads the log.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

from bot.printable import json_text, printable


class TextFormatter(logging.Formatter):
    """`HH:MM:SS LEVEL logger: message`, the message escaped onto one line. A traceback
    follows on lines indented by four spaces, so that only a record's first line starts at
    the margin."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        text = printable(self.formatMessage(record))
        # Built here rather than cached in record.exc_text: other handlers format it their way.
        details = []
        if record.exc_info:
            details.append(self.formatException(record.exc_info))
        if record.stack_info:
            details.append(self.formatStack(record.stack_info))
        for block in details:
            text += "".join(f"\n    {printable(line)}" for line in block.splitlines())
        return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "delivery", None)
        if isinstance(fields, dict):
            entry.update(fields)  # platform, channel, article, attempt, latency_ms, ...
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json_text(entry)


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party libraries are chatty at DEBUG; ours is what an operator reads.
    for noisy in ("aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))
    # watchfiles logs every batch of changes at INFO.
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
