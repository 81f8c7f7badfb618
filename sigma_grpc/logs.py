"""Log lines through the standard `logging` module: text for a terminal, JSON lines otherwise.

`configure` installs one handler on the root logger, so the service's own
loggers, grpc's Python loggers, asyncpg's and uvicorn's (the gateway gives
uvicorn no logging config of its own) all come out in one format; users can
reconfigure `logging` as they like instead. Fields given in `extra=` (a call's
method, code, duration, caller, request and decision ids) become JSON keys, or
`key=value` pairs after a text line's message. python-json-logger writes the
JSON: a well-kept formatter that handles exceptions, stack traces and
non-JSON values, rather than one of our own.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter

FORMATS = ("json", "text")
_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Attributes every LogRecord has (plus those the formatters add): anything else came from `extra=`,
# except uvicorn's `color_message`, its message again with terminal colour codes.
_STANDARD = frozenset(RESERVED_ATTRS) | {"message", "asctime", "taskName", "color_message"}


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in record.__dict__.items() if key not in _STANDARD}


class TextFormatter(logging.Formatter):
    """The classic one-line format, with the record's extra fields appended as key=value."""

    def __init__(self) -> None:
        super().__init__(_TEXT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = extra_fields(record)
        if not fields:
            return line
        head, newline, rest = line.partition("\n")  # keep a traceback below the fields
        pairs = " ".join(f"{key}={value}" for key, value in fields.items())
        return f"{head} {pairs}{newline}{rest}"


def default_format() -> str:
    """Text when a person is watching (stderr is a terminal), JSON lines for a collector otherwise."""
    return "text" if sys.stderr.isatty() else "json"


def configure(level: str, log_format: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(
            # Its orjson flavour: half the cost of the json module's, on every call's line.
            OrjsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                reserved_attrs=sorted(_STANDARD),
            )
        )
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # pgserver logs every initdb/pg_ctl command line at INFO.
    logging.getLogger("pgserver").setLevel(max(logging.WARNING, logging.getLevelName(level)))
