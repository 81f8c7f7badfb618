"""An embedded PostgreSQL 16 (the `pgserver` wheel) for running without a database URL.

pgserver leaves its server running when the owning process dies, so the caller
must call `stop()`; `serve` does on SIGTERM/SIGINT.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

with warnings.catch_warnings():
    # pgserver asks platformdirs for a runtime dir at import; XDG_RUNTIME_DIR is often unset.
    warnings.simplefilter("ignore", UserWarning)
    import pgserver

log = logging.getLogger(__name__)

# PostgreSQL listens on a unix socket inside the data folder, and socket paths
# are limited to about 107 bytes on Linux.
_MAX_SOCKET_DIR = 90


class EmbeddedDatabaseError(RuntimeError):
    pass


@dataclass
class EmbeddedPostgres:
    """A running embedded server; `url` is a libpq URL over its unix socket."""

    url: str
    _server: Any

    def stop(self) -> None:
        log.info("stopping embedded PostgreSQL")
        self._server.cleanup()


def start_embedded(data_dir: Path) -> EmbeddedPostgres:
    """Start (or reuse) the embedded server whose data lives in `data_dir/pg`."""
    data_dir = data_dir.resolve()
    pgdata = data_dir / "pg"
    if len(str(pgdata)) > _MAX_SOCKET_DIR:
        raise EmbeddedDatabaseError(
            f"SIGMA_DATA_DIR resolves to a path too long for PostgreSQL's unix socket "
            f"({len(str(pgdata))} > {_MAX_SOCKET_DIR} characters): choose a shorter one"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    log.info("starting embedded PostgreSQL in %s", pgdata)
    with warnings.catch_warnings():
        # pgserver asks platformdirs for a runtime dir; XDG_RUNTIME_DIR is often unset.
        warnings.simplefilter("ignore", UserWarning)
        server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    return EmbeddedPostgres(url=server.get_uri(), _server=server)
