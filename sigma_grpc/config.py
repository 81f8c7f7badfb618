"""Settings: the one place that reads SIGMA_* environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_GRPC_ADDR = "127.0.0.1:50051"
DEFAULT_DATA_DIR = ".sigma-data"
DEFAULT_MIGRATIONS_DIR = _PACKAGE_ROOT / "migrations"


class ConfigError(ValueError):
    """A SIGMA_* variable has a value the service cannot use."""


def redact_url(url: str) -> str:
    """The URL with its password replaced, safe for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    """Service settings; see the README's configuration table."""

    # A PostgreSQL URL; None starts the embedded PostgreSQL under data_dir.
    database_url: str | None = field(default=None, repr=False)
    grpc_addr: str = DEFAULT_GRPC_ADDR
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    migrations_dir: Path = DEFAULT_MIGRATIONS_DIR
    db_pool_size: int = 10
    shutdown_grace_s: int = 10
    log_level: str = "INFO"

    def __repr__(self) -> str:
        url = redact_url(self.database_url) if self.database_url else None
        return (
            f"Settings(database_url={url!r}, grpc_addr={self.grpc_addr!r}, data_dir={str(self.data_dir)!r}, "
            f"migrations_dir={str(self.migrations_dir)!r}, db_pool_size={self.db_pool_size}, "
            f"shutdown_grace_s={self.shutdown_grace_s}, log_level={self.log_level!r})"
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        url = env.get("SIGMA_DATABASE_URL", "").strip() or None
        if url is not None and urlsplit(url).scheme not in ("postgres", "postgresql"):
            raise ConfigError("SIGMA_DATABASE_URL must be a postgresql:// URL")
        addr = env.get("SIGMA_GRPC_ADDR", "").strip() or DEFAULT_GRPC_ADDR
        if ":" not in addr:
            raise ConfigError(f"SIGMA_GRPC_ADDR must be host:port, got {addr!r}")
        level = env.get("SIGMA_LOG_LEVEL", "").strip().upper() or "INFO"
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"SIGMA_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
        return cls(
            database_url=url,
            grpc_addr=addr,
            data_dir=Path(env.get("SIGMA_DATA_DIR", "").strip() or DEFAULT_DATA_DIR),
            migrations_dir=Path(env.get("SIGMA_MIGRATIONS_DIR", "").strip() or DEFAULT_MIGRATIONS_DIR),
            db_pool_size=_int(env, "SIGMA_DB_POOL_SIZE", 10, 1, 200),
            shutdown_grace_s=_int(env, "SIGMA_SHUTDOWN_GRACE_S", 10, 0, 600),
            log_level=level,
        )
