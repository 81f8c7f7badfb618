"""An embedded PostgreSQL 16 (the `pgserver` wheel) for running without a database URL.

pgserver leaves its server running when the owning process dies, so the caller
must call `stop()`; `serve` does on SIGTERM/SIGINT.

One process at a time: `start_embedded` takes an exclusive lock on
`<data_dir>/sigma.lock` (flock, so the kernel drops it when the process dies,
however it dies) and holds it until `stop()`. Without it a second `serve` on the
same folder would reuse the first one's server, and stopping either would stop
the database under the other. Within one process, starting the same folder again
reuses the lock (pgserver reuses its server the same way).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# PostgreSQL listens on a unix socket inside the data folder, and socket paths
# are limited to about 107 bytes on Linux.
_MAX_SOCKET_DIR = 90

LOCK_FILE = "sigma.lock"

# Data folders this process has locked: folder → the lock file's descriptor.
_locks: dict[Path, int] = {}


def _pgserver() -> Any:
    """The pgserver module, imported when an embedded server is started: a service on an
    external database never needs it (nor psutil and the rest it brings)."""
    with warnings.catch_warnings():
        # pgserver asks platformdirs for a runtime dir at import; XDG_RUNTIME_DIR is often unset.
        warnings.simplefilter("ignore", UserWarning)
        import pgserver  # noqa: PLC0415 (deferred on purpose)

    return pgserver


class EmbeddedDatabaseError(RuntimeError):
    pass


class DataDirInUse(EmbeddedDatabaseError):
    """Another process holds the data folder's lock."""


def _lock(data_dir: Path) -> None:
    """Lock `data_dir` for this process (re-entrant within it), or raise DataDirInUse."""
    if data_dir in _locks:
        return
    path = data_dir / LOCK_FILE
    # Not inherited (PEP 446): the PostgreSQL server pgserver spawns must not keep the lock.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        owner = os.pread(fd, 64, 0).decode(errors="replace").strip()
        os.close(fd)
        who = f"process {owner}" if owner.isdigit() else "another process"
        raise DataDirInUse(
            f"the embedded PostgreSQL in {data_dir} is in use by {who} (another sigma-grpc serve or "
            f"migrate?); refusing to share it: stop that process first, or set SIGMA_DATA_DIR to "
            f"another folder (lock file: {path})"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _locks[data_dir] = fd


def _unlock(data_dir: Path) -> None:
    fd = _locks.pop(data_dir, None)
    if fd is not None:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # releases the flock


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop processes that no longer run from pgserver's list of the server's users.

    pgserver stops the server only when the last process on that list lets go, and
    never prunes it: after a crash (SIGKILL, OOM) the dead process would stay on it
    forever, and no later `stop()` would stop the server. Holding the folder's lock,
    this process is the only sigma-grpc one using it.
    """
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(pids, list):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and _running(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class EmbeddedPostgres:
    """A running embedded server; `url` is a libpq URL over its unix socket."""

    url: str
    _server: Any
    data_dir: Path | None = None

    def stop(self) -> None:
        """Stop the server and release the data folder's lock."""
        log.info("stopping embedded PostgreSQL")
        try:
            self._server.cleanup()
        finally:
            if self.data_dir is not None:
                _unlock(self.data_dir)


def start_embedded(data_dir: Path) -> EmbeddedPostgres:
    """Start (or, in this process, reuse) the embedded server whose data lives in `data_dir/pg`.

    Raises DataDirInUse when another process has the folder.
    """
    data_dir = data_dir.resolve()
    pgdata = data_dir / "pg"
    if len(str(pgdata)) > _MAX_SOCKET_DIR:
        raise EmbeddedDatabaseError(
            f"SIGMA_DATA_DIR resolves to a path too long for PostgreSQL's unix socket "
            f"({len(str(pgdata))} > {_MAX_SOCKET_DIR} characters): choose a shorter one"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    locked_here = data_dir not in _locks
    _lock(data_dir)
    try:
        _forget_dead_handles(pgdata)
        log.info("starting embedded PostgreSQL in %s", pgdata)
        with warnings.catch_warnings():
            # pgserver asks platformdirs for a runtime dir; XDG_RUNTIME_DIR is often unset.
            warnings.simplefilter("ignore", UserWarning)
            server = _pgserver().get_server(pgdata, cleanup_mode="stop")
    except BaseException:
        if locked_here:
            _unlock(data_dir)
        raise
    return EmbeddedPostgres(url=server.get_uri(), _server=server, data_dir=data_dir)
