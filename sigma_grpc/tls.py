"""TLS for the gRPC port and the HTTP gateway (SIGMA_TLS_CERT, SIGMA_TLS_KEY; SIGMA_TLS_CLIENT_CA: mTLS)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from sigma_grpc.config import ConfigError, Settings


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the server's certificate chain and key, and the CA client certificates must chain to."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> TlsFiles | None:
        """The configured files, checked to load together (ConfigError otherwise); None: plaintext."""
        if settings.tls_cert is None or settings.tls_key is None:
            return None
        files = cls(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
        files.ssl_context()  # a key that does not match the certificate fails here, not at the first call
        return files

    @property
    def mutual(self) -> bool:
        return self.client_ca is not None

    def _read(self, path: Path, name: str) -> bytes:
        try:
            return path.read_bytes()
        except OSError as error:
            raise ConfigError(f"{name}: cannot read {path}: {error.strerror}") from None

    def grpc_credentials(self) -> grpc.ServerCredentials:
        """gRPC server credentials; under mutual TLS a client without a certificate from the CA is refused."""
        key = self._read(self.key, "SIGMA_TLS_KEY")
        chain = self._read(self.cert, "SIGMA_TLS_CERT")
        roots = self._read(self.client_ca, "SIGMA_TLS_CLIENT_CA") if self.client_ca else None
        return grpc.ssl_server_credentials(
            [(key, chain)], root_certificates=roots, require_client_auth=self.mutual
        )

    def ssl_context(self) -> ssl.SSLContext:
        """The HTTP gateway's server context (the same certificate, and the same client CA)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(
                f"SIGMA_TLS_CERT/SIGMA_TLS_KEY: cannot use {self.cert} with {self.key}: {error}"
            ) from None
        if self.client_ca is not None:
            try:
                context.load_verify_locations(cafile=self.client_ca)
            except (OSError, ssl.SSLError) as error:
                raise ConfigError(f"SIGMA_TLS_CLIENT_CA: cannot use {self.client_ca}: {error}") from None
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def uvicorn_options(self) -> dict[str, Any]:
        return {"ssl_context_factory": lambda _config, _default: self.ssl_context()}
