"""Settings: the one place that reads SIGMA_* environment variables."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from sigma_grpc import logs

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_GRPC_ADDR = "127.0.0.1:50051"
DEFAULT_HTTP_ADDR = "127.0.0.1:8080"
DEFAULT_DATA_DIR = ".sigma-data"
DEFAULT_MIGRATIONS_DIR = _PACKAGE_ROOT / "migrations"


class ConfigError(ValueError):
    """A SIGMA_* variable has a value the service cannot use."""


class Secret:
    """A string that never shows itself in repr, str, logs or tracebacks' locals."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _private_key(env: Mapping[str, str]) -> Secret | None:
    inline = env.get("SIGMA_HL_PRIVATE_KEY", "").strip()
    path = env.get("SIGMA_HL_PRIVATE_KEY_FILE", "").strip()
    if inline and path:
        raise ConfigError("set SIGMA_HL_PRIVATE_KEY or SIGMA_HL_PRIVATE_KEY_FILE, not both")
    if path:
        try:
            inline = Path(path).read_text().strip()
        except OSError as error:
            raise ConfigError(f"SIGMA_HL_PRIVATE_KEY_FILE: cannot read {path}: {error.strerror}") from None
        if not inline:
            raise ConfigError(f"SIGMA_HL_PRIVATE_KEY_FILE: {path} is empty")
    if not inline:
        return None
    body = inline.removeprefix("0x")
    if len(body) != 64 or any(c not in "0123456789abcdefABCDEF" for c in body):
        # Never echo the value: it may be a real key with a typo.
        raise ConfigError("the Hyperliquid private key must be 32 bytes of hex (64 hex digits, 0x optional)")
    return Secret("0x" + body.lower())


def _address(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    body = raw.removeprefix("0x")
    if len(body) != 40 or any(c not in "0123456789abcdefABCDEF" for c in body):
        raise ConfigError(f"{name} must be a 0x-prefixed 20-byte hex address")
    return "0x" + body.lower()


def _decimal(env: Mapping[str, str], name: str, default: str) -> Decimal:
    raw = env.get(name, "").strip() or default
    try:
        value = Decimal(raw)
    except ArithmeticError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not value.is_finite() or value <= 0:
        raise ConfigError(f"{name} must be a positive number, got {raw!r}")
    return value


def _host_port(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    if value != "off" and (":" not in value or not value.rsplit(":", 1)[1].isdigit()):
        raise ConfigError(f"{name} must be host:port, got {value!r}")
    if value == "off" and name == "SIGMA_GRPC_ADDR":
        raise ConfigError("SIGMA_GRPC_ADDR cannot be off: the gRPC service is the service")
    return value


def split_host_port(addr: str) -> tuple[str, int]:
    """("127.0.0.1", 8080) from "127.0.0.1:8080" (and "[::1]:80" → ("::1", 80))."""
    host, port = addr.rsplit(":", 1)
    return host.strip("[]"), int(port)


def redact_url(url: str) -> str:
    """The URL with its password replaced, safe for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address) only reaches this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _database_url(env: Mapping[str, str], name: str) -> str | None:
    url = env.get(name, "").strip() or None
    if url is not None and urlsplit(url).scheme not in ("postgres", "postgresql"):
        # Never echo the value: it may hold a password.
        raise ConfigError(f"{name} must be a postgresql:// URL")
    return url


def _file(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    path = Path(raw)
    if not path.is_file():
        raise ConfigError(f"{name}: {raw} is not a readable file")
    return path


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1/true/yes/on or 0/false/no/off, got {raw!r}")


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

    # A PostgreSQL URL; None starts the embedded PostgreSQL under data_dir (when embedded_db).
    database_url: str | None = field(default=None, repr=False)
    # False (SIGMA_EMBEDDED_DB=0, set in the Docker image): `serve` and `migrate` refuse to
    # start without database_url rather than start a PostgreSQL of their own.
    embedded_db: bool = True
    # A streaming replica of it for DecisionService's reads (see the README); None: all on the primary.
    database_read_url: str | None = field(default=None, repr=False)
    grpc_addr: str = DEFAULT_GRPC_ADDR
    # The HTTP/JSON gateway and the dashboard; None: not served.
    http_addr: str | None = DEFAULT_HTTP_ADDR
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    migrations_dir: Path = DEFAULT_MIGRATIONS_DIR
    db_pool_size: int = 10
    # Answer the default GetStats, GetSignalQuality and GetGateAnalytics before reporting SERVING.
    warm_up: bool = False
    shutdown_grace_s: int = 10
    log_level: str = "INFO"
    # "json" or "text"; from_env defaults it to text on a terminal, JSON otherwise.
    log_format: str = "text"
    # Hyperliquid execution (see the README). The key is the signer: the main
    # account's key or an API (agent) wallet's.
    hl_private_key: Secret | None = field(default=None, repr=False)
    hl_account_address: str | None = None
    hl_network: str = "testnet"
    hl_base_url: str | None = None
    hl_timeout_s: int = 10
    order_expiry_s: int = 60
    reconcile_interval_s: int = 5
    paper_equity: Decimal = Decimal(10000)
    # Authentication (see the README's "Running in production"): a tokens file, or the
    # same entries inline; with neither, only loopback addresses may be bound unless
    # auth_none (SIGMA_AUTH=none) says the network is trusted.
    auth_tokens_file: Path | None = None
    auth_tokens: Secret | None = field(default=None, repr=False)
    auth_none: bool = False
    # TLS for gRPC and the gateway; a client CA turns on mutual TLS.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None

    @property
    def auth_configured(self) -> bool:
        return self.auth_tokens_file is not None or self.auth_tokens is not None

    def check_database(self) -> None:
        """For `serve` and `migrate`: a database URL, unless the embedded PostgreSQL may be used."""
        if self.database_url is None and not self.embedded_db:
            raise ConfigError(
                "SIGMA_DATABASE_URL is not set and SIGMA_EMBEDDED_DB is off (as in the Docker image, "
                "which has no embedded PostgreSQL): set SIGMA_DATABASE_URL to your server's "
                "postgresql:// URL"
            )

    def __repr__(self) -> str:
        # Derived from the fields, so a new setting shows up; secrets are redacted.
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["database_url"] = redact_url(self.database_url) if self.database_url else None
        shown["database_read_url"] = redact_url(self.database_read_url) if self.database_read_url else None
        shown["hl_private_key"] = "set" if self.hl_private_key else None
        shown["auth_tokens"] = "set" if self.auth_tokens else None
        return "Settings(" + ", ".join(f"{name}={value!r}" for name, value in shown.items()) + ")"

    def __post_init__(self) -> None:
        # Nothing is signed with less than two exchange calls' time (+5 s) left before the
        # order's expiry: an expiry shorter than that would fail every live execution.
        needed = 2 * (self.hl_timeout_s + 1) + 5
        if self.order_expiry_s <= needed:
            raise ConfigError(
                f"SIGMA_ORDER_EXPIRY_S ({self.order_expiry_s}) must exceed 2 x (SIGMA_HL_TIMEOUT_S + 1) + 5 "
                f"= {needed}: every live execution would run out of time before signing"
            )
        self._check_security()

    def _check_security(self) -> None:
        if self.auth_tokens_file is not None and self.auth_tokens is not None:
            raise ConfigError("set SIGMA_AUTH_TOKENS_FILE or SIGMA_AUTH_TOKENS, not both")
        if self.auth_none and self.auth_configured:
            raise ConfigError("SIGMA_AUTH=none turns authentication off, yet tokens are configured")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("SIGMA_TLS_CERT and SIGMA_TLS_KEY go together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ConfigError("SIGMA_TLS_CLIENT_CA (mutual TLS) needs SIGMA_TLS_CERT and SIGMA_TLS_KEY")
        if self.auth_configured or self.auth_none:
            return
        for name, addr in (("SIGMA_GRPC_ADDR", self.grpc_addr), ("SIGMA_HTTP_ADDR", self.http_addr)):
            if addr is not None and not is_loopback(split_host_port(addr)[0]):
                raise ConfigError(
                    f"{name} is {addr}, which other machines can reach, and no credentials are configured: "
                    "set SIGMA_AUTH_TOKENS_FILE (or SIGMA_AUTH_TOKENS), or SIGMA_AUTH=none to serve "
                    "without authentication on a network you trust"
                )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        url = _database_url(env, "SIGMA_DATABASE_URL")
        read_url = _database_url(env, "SIGMA_DATABASE_READ_URL")
        addr = _host_port(env, "SIGMA_GRPC_ADDR", DEFAULT_GRPC_ADDR)
        http_addr: str | None = _host_port(env, "SIGMA_HTTP_ADDR", DEFAULT_HTTP_ADDR)
        if http_addr == "off":
            http_addr = None
        level = env.get("SIGMA_LOG_LEVEL", "").strip().upper() or "INFO"
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"SIGMA_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
        log_format = env.get("SIGMA_LOG_FORMAT", "").strip().lower() or logs.default_format()
        if log_format not in logs.FORMATS:
            raise ConfigError(f"SIGMA_LOG_FORMAT must be json or text, got {log_format!r}")
        auth = env.get("SIGMA_AUTH", "").strip().lower()
        if auth not in ("", "none"):
            raise ConfigError(f"SIGMA_AUTH must be unset or none, got {auth!r}")
        inline_tokens = env.get("SIGMA_AUTH_TOKENS", "").strip()
        network = env.get("SIGMA_HL_NETWORK", "").strip().lower() or "testnet"
        if network not in ("mainnet", "testnet"):
            raise ConfigError(f"SIGMA_HL_NETWORK must be mainnet or testnet, got {network!r}")
        return cls(
            database_url=url,
            database_read_url=read_url,
            embedded_db=_bool(env, "SIGMA_EMBEDDED_DB", True),
            grpc_addr=addr,
            http_addr=http_addr,
            data_dir=Path(env.get("SIGMA_DATA_DIR", "").strip() or DEFAULT_DATA_DIR),
            migrations_dir=Path(env.get("SIGMA_MIGRATIONS_DIR", "").strip() or DEFAULT_MIGRATIONS_DIR),
            # Two at least: an execution holds one for its account's lock and needs another.
            db_pool_size=_int(env, "SIGMA_DB_POOL_SIZE", 10, 2, 200),
            warm_up=_bool(env, "SIGMA_WARM_UP", False),
            shutdown_grace_s=_int(env, "SIGMA_SHUTDOWN_GRACE_S", 10, 0, 600),
            log_level=level,
            log_format=log_format,
            hl_private_key=_private_key(env),
            hl_account_address=_address(env, "SIGMA_HL_ACCOUNT_ADDRESS"),
            hl_network=network,
            hl_base_url=env.get("SIGMA_HL_BASE_URL", "").strip().rstrip("/") or None,
            hl_timeout_s=_int(env, "SIGMA_HL_TIMEOUT_S", 10, 1, 120),
            order_expiry_s=_int(env, "SIGMA_ORDER_EXPIRY_S", 60, 10, 600),
            reconcile_interval_s=_int(env, "SIGMA_RECONCILE_INTERVAL_S", 5, 1, 3600),
            paper_equity=_decimal(env, "SIGMA_PAPER_EQUITY", "10000"),
            auth_tokens_file=_file(env, "SIGMA_AUTH_TOKENS_FILE"),
            auth_tokens=Secret(inline_tokens) if inline_tokens else None,
            auth_none=auth == "none",
            tls_cert=_file(env, "SIGMA_TLS_CERT"),
            tls_key=_file(env, "SIGMA_TLS_KEY"),
            tls_client_ca=_file(env, "SIGMA_TLS_CLIENT_CA"),
        )
