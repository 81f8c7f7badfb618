"""Secrets must never reach a log line or an error text: every test's records are scanned for them.

A handler on the root logger keeps every record (DEBUG and up, the service's
own and the libraries') of the test that is running; the autouse fixture in
conftest.py fails the test when one holds a registered secret. The service logs
each error status it answers at DEBUG (api/errors.py), so error texts are
scanned too; serve subprocesses' output is scanned (tests/helpers.py), and so are
the audit and history rows every test using `clean_db` leaves (conftest.py).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

_secrets: set[str] = set()
_outputs: list[list[str]] = []


def register_secret(value: str) -> str:
    """Remember `value` as a secret (a private key also without its 0x); returns it."""
    _secrets.add(value)
    if value.startswith("0x"):
        _secrets.add(value[2:])
    return value


def leaks(texts: Iterable[str]) -> list[str]:
    """The texts that hold a registered secret (in any letter case), each shortened around it."""
    if not _secrets:
        return []
    pattern = re.compile("|".join(re.escape(s) for s in sorted(_secrets, key=len, reverse=True)), re.I)
    found = []
    for text in texts:
        match = pattern.search(text)
        if match:
            found.append(text[max(match.start() - 60, 0) : match.start()] + "<SECRET>")
    return found


class RecordingHandler(logging.Handler):
    """Keeps the formatted text of every record (with its traceback) since the last `take`."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self._texts: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._texts.append(self.format(record))
        except Exception:  # a record that cannot be formatted is the logging call's bug, not ours
            self._texts.append(repr(record.msg))

    def take(self) -> list[str]:
        texts, self._texts = self._texts, []
        return texts


def scan(texts: Iterable[str], where: str) -> None:
    """Fail when any of `texts` (e.g. a subprocess's output) holds a registered secret."""
    found = leaks(texts)
    assert not found, f"a secret reached {where}: {found[:3]}"


def watch_output(lines: list[str]) -> list[str]:
    """Scan `lines` (a subprocess's output, still growing) at the end of the running test."""
    _outputs.append(lines)
    return lines


def take_outputs() -> list[str]:
    texts = [line for lines in _outputs for line in list(lines)]
    _outputs.clear()
    return texts
