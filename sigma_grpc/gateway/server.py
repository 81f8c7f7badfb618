"""Serving the gateway with uvicorn in the service's own event loop (or alone, against a remote target)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import grpc
import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from sigma_grpc.auth.credentials import certificate_name
from sigma_grpc.gateway.app import CLIENT_CERTIFICATE_NAMES, LOOPBACK_HOSTS, Gateway
from sigma_grpc.metrics import Metrics
from sigma_grpc.tls import TlsFiles

log = logging.getLogger(__name__)

# A page of 500 decisions at the contract's limits is several MB: above gRPC's default 4 MB.
_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
]


def _certificate_names(transport: asyncio.BaseTransport) -> tuple[str, ...]:
    """The subject alternative names of the client certificate the handshake verified (none: ())."""
    peer = transport.get_extra_info("peercert")
    if not peer:
        return ()
    return tuple(
        certificate_name(str(value))
        for kind, value in peer.get("subjectAltName", ())
        if kind in ("DNS", "URI", "email", "IP Address")
    )


class _CertificateAwareH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, putting the client certificate's names into each request's scope."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        names = _certificate_names(transport)
        if names:
            app = self.app

            async def with_names(scope: Scope, receive: Receive, send: Send) -> None:
                scope[CLIENT_CERTIFICATE_NAMES] = names
                await app(scope, receive, send)

            self.app = with_names


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # `serve` owns SIGTERM/SIGINT and stops the gateway with everything else.
        yield


class GatewayServer:
    """The HTTP/JSON gateway listening on `host:port` (port 0: a free one), forwarding to `target`."""

    def __init__(
        self,
        target: str,
        *,
        relay_key: str | None = None,
        tls: TlsFiles | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """`target`: the gRPC server ("host:port", "unix:/path"); `relay_key`, `metrics`: see Gateway;
        `tls`: serve HTTPS (with a client CA: clients must present a certificate)."""
        self._target = target
        self._metrics = metrics
        self._relay_key = relay_key
        self._tls = tls
        self._channel: grpc.aio.Channel | None = None
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen and return the bound port; raises OSError when the address cannot be bound."""
        self._channel = grpc.aio.insecure_channel(self._target, options=_CHANNEL_OPTIONS)
        loopback = host in ("localhost", "::1") or host.startswith("127.")
        gateway = Gateway(
            self._channel,
            allowed_hosts=LOOPBACK_HOSTS if loopback else None,
            relay_key=self._relay_key,
            metrics=self._metrics,
        )
        config = uvicorn.Config(
            gateway.app(),
            host=host,
            port=port,
            http=_CertificateAwareH11,
            # The client's address is the socket's: X-Forwarded-For is anyone's to write.
            proxy_headers=False,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            **(self._tls.uvicorn_options() if self._tls else {}),
        )
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                # uvicorn logs a bind failure and exits instead of raising.
                await self._channel.close()
                raise OSError(f"the HTTP gateway could not listen on {host}:{port}")
            await asyncio.sleep(0.01)
        sockets = self._server.servers[0].sockets
        bound: int = sockets[0].getsockname()[1]
        return bound

    async def stop(self, grace: float | None = None) -> None:
        """Stop listening; requests still running get `grace` seconds (None: as long as they take)."""
        if self._server is not None and self._task is not None:
            self._server.config.timeout_graceful_shutdown = None if grace is None else max(int(grace), 1)
            self._server.should_exit = True
            done, _ = await asyncio.wait({self._task}, timeout=None if grace is None else grace + 1)
            if not done:
                self._server.force_exit = True
                await self._task
        if self._channel is not None:
            await self._channel.close()
