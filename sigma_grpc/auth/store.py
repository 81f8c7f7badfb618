"""The credentials in force, read at start and reloaded without a restart (SIGHUP, or the file's change)."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from pathlib import Path

from sigma_grpc.auth.credentials import Credentials, CredentialsError, parse_env, parse_file_text
from sigma_grpc.config import ConfigError, Settings

log = logging.getLogger(__name__)

# How often the tokens file is checked for a change.
POLL_INTERVAL_S = 1.0


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def _read(path: Path) -> Credentials:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CredentialsError(f"SIGMA_AUTH_TOKENS_FILE: cannot read {path}: {error}") from None
    credentials = parse_file_text(text, str(path))
    if not len(credentials):
        raise CredentialsError(f"SIGMA_AUTH_TOKENS_FILE: {path} has no entries")
    return credentials


class CredentialStore:
    """Holds the current Credentials; a reload that fails keeps the ones in force and logs why."""

    def __init__(self, credentials: Credentials, path: Path | None = None) -> None:
        self._credentials = credentials
        self._path = path
        self._signature = _signature(path) if path is not None else None
        # SIGHUP reloads on the event loop, the watcher in a thread: one at a time, so an older
        # read can never be put in force after a newer one.
        self._reloading = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> CredentialStore | None:
        """The configured credentials; None when authentication is off. ConfigError names a bad line."""
        try:
            if settings.auth_tokens_file is not None:
                return cls(_read(settings.auth_tokens_file), settings.auth_tokens_file)
            if settings.auth_tokens is not None:
                credentials = parse_env(settings.auth_tokens.reveal())
                if not len(credentials):
                    raise CredentialsError("SIGMA_AUTH_TOKENS has no entries")
                return cls(credentials)
        except CredentialsError as error:
            raise ConfigError(str(error)) from None
        return None

    @property
    def current(self) -> Credentials:
        return self._credentials

    def reload(self) -> bool:
        """Re-read the tokens file; True when the new entries are in force."""
        if self._path is None:
            log.info("credentials come from SIGMA_AUTH_TOKENS: nothing to reload")
            return False
        with self._reloading:
            self._signature = _signature(self._path)
            try:
                credentials = _read(self._path)
            except CredentialsError as error:
                log.error("tokens file not reloaded, the previous credentials stay in force: %s", error)
                return False
            self._credentials = credentials
        log.info("tokens file reloaded: %r", credentials)
        return True

    async def watch(self, interval_s: float = POLL_INTERVAL_S) -> None:
        """Reload whenever the file changes (replaced, rewritten or touched), until cancelled."""
        if self._path is None:
            return
        while True:
            await asyncio.sleep(interval_s)
            if _signature(self._path) != self._signature:
                await asyncio.to_thread(self.reload)


def describe(store: CredentialStore | None, settings: Settings) -> str:
    """One line for the start-up log saying how callers are authenticated (never a token)."""
    if store is None:
        if settings.auth_none:
            return (
                "AUTHENTICATION IS OFF (SIGMA_AUTH=none): anyone who can reach the ports may read the log, "
                "execute signals and change the execution config"
            )
        return "authentication is off: listening on loopback only (configure tokens to serve other machines)"
    source = f"{settings.auth_tokens_file}" if settings.auth_tokens_file else "SIGMA_AUTH_TOKENS"
    return f"authentication on: {store.current!r} from {source} (pid {os.getpid()}: SIGHUP reloads)"
