"""Credentials for the tests: one token per role, made fresh each run, and the tokens file line for each.

Every secret made here is registered with tests/secret_scan.py, which fails any
test in whose logs one appears.
"""

from __future__ import annotations

import contextlib
import secrets
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc
import httpx
import pytest
import trustme

from sigma_grpc.app import RunningServer, start_server
from sigma_grpc.auth.policy import Role
from sigma_grpc.config import Settings
from sigma_grpc.gen.sigma.v1 import decision_service_pb2_grpc as dpb_grpc
from sigma_grpc.gen.sigma.v1 import execution_service_pb2_grpc as epb_grpc
from sigma_grpc.storage.pool import create_pool
from tests.secret_scan import register_secret


def _token(role: str) -> str:
    return register_secret(f"{role}-{secrets.token_urlsafe(24)}")


TOKENS: dict[Role, str] = {role: _token(role.label) for role in Role}
UNKNOWN_TOKEN = _token("unknown")
NAMES: dict[Role, str] = {
    Role.READER: "dashboard",
    Role.WRITER: "recorder",
    Role.EXECUTOR: "hl-decide",
    Role.ADMIN: "alice",
}
# The client certificate name hl-decide presents under mutual TLS, and its role.
CERT_NAME = "hl-decide.sigma.internal"
CERT_IDENTITY = "hl-decide-cert"


def tokens_text(extra: str = "") -> str:
    lines = ["# name  role  token"]
    lines += [f"{NAMES[role]} {role.label} {token}" for role, token in TOKENS.items()]
    lines.append(f"{CERT_IDENTITY} executor cert:{CERT_NAME}")
    return "\n".join(lines) + "\n" + extra


def write_tokens_file(directory: Path, extra: str = "") -> Path:
    path = directory / "tokens"
    path.write_text(tokens_text(extra))
    path.chmod(0o600)
    return path


def tls_settings(
    files: dict[str, Path], directory: Path, *, mutual: bool, extra_tokens: str = ""
) -> Settings:
    """Settings serving TLS with `files` (from Certificates.server_files), requiring client
    certificates from its CA when `mutual`, with the test tokens file plus `extra_tokens`."""
    return Settings(
        reconcile_interval_s=3600,
        auth_tokens_file=write_tokens_file(directory, extra=extra_tokens),
        tls_cert=files["tls_cert"],
        tls_key=files["tls_key"],
        tls_client_ca=files["ca"] if mutual else None,
    )


def bearer(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


def call_metadata(role: Role | None) -> tuple[tuple[str, str], ...]:
    return bearer(TOKENS[role]) if role is not None else ()


def code_of(error: BaseException) -> grpc.StatusCode | None:
    return error.code() if isinstance(error, grpc.aio.AioRpcError) else None


@dataclass
class Served:
    server: RunningServer
    decisions: dpb_grpc.DecisionServiceAsyncStub
    executions: epb_grpc.ExecutionServiceAsyncStub
    http: httpx.AsyncClient
    db: asyncpg.Pool


@dataclass
class Certificates:
    directory: Path
    ca: trustme.CA

    def server_files(self) -> dict[str, Path]:
        cert = self.ca.issue_cert("localhost", "127.0.0.1")
        cert.private_key_pem.write_to_path(str(self.directory / "server.key"))
        cert.cert_chain_pems[0].write_to_path(str(self.directory / "server.pem"))
        self.ca.cert_pem.write_to_path(str(self.directory / "ca.pem"))
        return {
            "tls_cert": self.directory / "server.pem",
            "tls_key": self.directory / "server.key",
            "ca": self.directory / "ca.pem",
        }

    def client(self, name: str, ca: trustme.CA | None = None) -> tuple[Path, Path]:
        """A client certificate for `name` (issued by `ca`, ours by default): (cert file, key file)."""
        issued = (ca or self.ca).issue_cert(name)
        stem = f"{name}-{secrets.token_hex(4)}"  # the same name from another CA gets files of its own
        cert, key = self.directory / f"{stem}.pem", self.directory / f"{stem}.key"
        issued.cert_chain_pems[0].write_to_path(str(cert))
        issued.private_key_pem.write_to_path(str(key))
        return cert, key

    def grpc_credentials(self, client: tuple[Path, Path] | None = None) -> grpc.ChannelCredentials:
        root = self.ca.cert_pem.bytes()
        if client is None:
            return grpc.ssl_channel_credentials(root_certificates=root)
        return grpc.ssl_channel_credentials(
            root_certificates=root,
            private_key=client[1].read_bytes(),
            certificate_chain=client[0].read_bytes(),
        )


@pytest.fixture
def certificates(tmp_path: Path) -> Certificates:
    return Certificates(tmp_path, trustme.CA())


@contextlib.asynccontextmanager
async def serving(
    database_url: str,
    settings: Settings,
    *,
    channel_credentials: grpc.ChannelCredentials | None = None,
    http_verify: ssl.SSLContext | bool = True,
) -> AsyncIterator[Served]:
    pool = await create_pool(database_url, max_size=4)
    server = await start_server(pool, "127.0.0.1:0", settings, http_addr="127.0.0.1:0")
    target = f"127.0.0.1:{server.port}"
    channel = (
        grpc.aio.secure_channel(target, channel_credentials)
        if channel_credentials
        else grpc.aio.insecure_channel(target)
    )
    scheme = "https" if settings.tls_cert else "http"
    http = httpx.AsyncClient(
        base_url=f"{scheme}://127.0.0.1:{server.http_port}", timeout=30, verify=http_verify
    )
    try:
        yield Served(
            server, dpb_grpc.DecisionServiceStub(channel), epb_grpc.ExecutionServiceStub(channel), http, pool
        )
    finally:
        await http.aclose()
        await channel.close()
        await server.stop(grace=1)
        await pool.close()
