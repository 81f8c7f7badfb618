"""Wiring: database → stores → services → gRPC server (and gateway); `migrate`; the gateway alone."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from sigma_grpc.api.authentication import Authentication
from sigma_grpc.api.decision_servicer import DecisionServicer
from sigma_grpc.api.execution_servicer import ExecutionServicer
from sigma_grpc.api.in_flight import InFlightCalls
from sigma_grpc.api.undecodable import UndecodableRequests
from sigma_grpc.auth.store import CredentialStore
from sigma_grpc.clock import Clock, utc_now
from sigma_grpc.config import ConfigError, Settings, redact_url, split_host_port
from sigma_grpc.exchange.hyperliquid import Hyperliquid
from sigma_grpc.gateway.server import GatewayServer
from sigma_grpc.gen.sigma.v1 import (
    decision_service_pb2,
    decision_service_pb2_grpc,
    execution_service_pb2,
    execution_service_pb2_grpc,
)
from sigma_grpc.metrics import GrpcServerMetrics, Metrics
from sigma_grpc.services.decisions import (
    STATS_MAINTENANCE_FIRST_DELAY_S,
    STATS_MAINTENANCE_INTERVAL_S,
    DecisionLog,
    maintain_stats_periodically,
)
from sigma_grpc.services.execution import Executor
from sigma_grpc.storage.decisions import DecisionStore
from sigma_grpc.storage.embedded import EmbeddedDatabaseError, EmbeddedPostgres, start_embedded
from sigma_grpc.storage.executions import ExecutionStore
from sigma_grpc.storage.migrate import apply_migrations
from sigma_grpc.storage.pool import Database
from sigma_grpc.storage.replica import POLL_INTERVAL_S, ReplicaMonitor, ReplicaReads
from sigma_grpc.tls import TlsFiles

log = logging.getLogger(__name__)

# The largest request accepted over gRPC (a LogDecision at the contract's limits is about 20 kB);
# larger ones end RESOURCE_EXHAUSTED before any handler runs.
MAX_REQUEST_BYTES = 4 * 1024 * 1024
# How long connecting (for migrations at start) may take before the attempt counts as failed.
DB_CONNECT_TIMEOUT_S = 5.0

SERVICE_NAMES = (
    decision_service_pb2.DESCRIPTOR.services_by_name["DecisionService"].full_name,
    execution_service_pb2.DESCRIPTOR.services_by_name["ExecutionService"].full_name,
)


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    executor: Executor
    reconciler: asyncio.Task[None]
    in_flight: InFlightCalls
    metrics: Metrics
    stats_maintenance: asyncio.Task[None] | None = None
    gateway: GatewayServer | None = None
    http_port: int | None = None
    credentials: CredentialStore | None = None
    credentials_watch: asyncio.Task[None] | None = None
    # The private directory of the socket the built-in gateway reaches the server through.
    private_dir: Path | None = None
    # With a read replica: whether reads go to it, and its lag (for metrics).
    replica: ReplicaMonitor | None = None

    def reload_credentials(self) -> None:
        """Re-read the tokens file now (SIGHUP); a file that does not parse leaves the current ones."""
        if self.credentials is not None:
            self.credentials.reload()

    async def stop(self, grace: float | None) -> None:
        """Refuse new calls, let in-flight ones (and execution attempts) finish within `grace` seconds."""
        await self.health.enter_graceful_shutdown()
        self.reconciler.cancel()
        if self.stats_maintenance is not None:
            self.stats_maintenance.cancel()
        if self.replica is not None:
            # Calls still running keep the replica's last known state, and fail over on their own.
            await self.replica.stop()
        if self.credentials_watch is not None:
            self.credentials_watch.cancel()
        if self.gateway is not None:
            await self.gateway.stop(grace)
        await self.server.stop(grace)
        await self.in_flight.wait(grace)
        await self.executor.drain(grace)
        if self.private_dir is not None:
            shutil.rmtree(self.private_dir, ignore_errors=True)


def build_exchange(settings: Settings) -> Hyperliquid:
    """The Hyperliquid client; refuses a network that disagrees with the URL (ConfigError)."""
    return Hyperliquid(
        network=settings.hl_network,
        base_url=settings.hl_base_url,
        timeout_s=settings.hl_timeout_s,
        private_key=settings.hl_private_key,
        account_address=settings.hl_account_address,
    )


# How long a starting server spends on `DecisionLog.warm_up` at most.
WARM_UP_TIMEOUT_S = 10.0


async def _warm_up(decision_log: DecisionLog) -> None:
    """Best effort: a server whose database is away, or slow, starts all the same."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(WARM_UP_TIMEOUT_S):
            await decision_log.warm_up()
    except Exception as error:
        log.warning("warm-up skipped: %s", getattr(error, "message", None) or type(error).__name__)
    else:
        log.info("read path warmed up in %.0f ms", (time.perf_counter() - started) * 1000)


async def start_server(
    pool: asyncpg.Pool,
    addr: str,
    settings: Settings | None = None,
    clock: Clock = utc_now,
    *,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    http_addr: str | None = None,
    read_pool: asyncpg.Pool | None = None,
    replica_poll_s: float = POLL_INTERVAL_S,
) -> RunningServer:
    """Serve sigma.v1, health and reflection on `addr` (port 0 picks a free port).

    With `read_pool` (a streaming replica's), DecisionService's reads go to the
    replica while it is usable (sampled every `replica_poll_s`); nothing else does.

    With `http_addr`, the HTTP/JSON gateway and the dashboard are served there too,
    in this event loop, forwarding to the gRPC server over a private unix socket.
    Credentials (off when `settings` has none) and TLS come from `settings`.
    `interceptors` run inside the service's own (tests use them to inject faults).
    Metrics (served at the gateway's `/metrics`) are kept in a registry of this server's own.
    """
    settings = settings or Settings()
    tls = TlsFiles.from_settings(settings)
    credentials = CredentialStore.from_settings(settings)
    metrics = Metrics()
    metrics.watch_pool("primary", pool)
    db = Database(pool, on_acquire=metrics.pool_acquire_wait.observe)
    decisions = DecisionStore(db)
    executor = Executor(
        executions=ExecutionStore(db),
        decisions=decisions,
        exchange=build_exchange(settings),
        paper_equity=settings.paper_equity,
        order_expiry_s=settings.order_expiry_s,
        clock=clock,
        metrics=metrics,
    )
    in_flight = InFlightCalls()
    # Only the built-in gateway knows this key: it vouches for the client certificates it relays.
    gateway_key = secrets.token_urlsafe(32) if http_addr is not None else None
    server = grpc.aio.server(
        interceptors=[
            # Outermost: calls refused by authentication (or the start-up gate) are counted too.
            GrpcServerMetrics(metrics),
            in_flight,
            Authentication(credentials, gateway_key),
            UndecodableRequests(),
            *interceptors,
        ],
        options=[("grpc.max_receive_message_length", MAX_REQUEST_BYTES)],
    )
    replica, reads = None, None
    if read_pool is not None:
        replica = ReplicaMonitor(db, Database(read_pool), interval_s=replica_poll_s)
        metrics.watch_pool("replica", read_pool)
        metrics.watch_replica(replica)
        reads = ReplicaReads(DecisionStore(Database(read_pool)), decisions, replica)
    decision_log = DecisionLog(decisions, reads=reads)
    decision_service_pb2_grpc.add_DecisionServiceServicer_to_server(
        DecisionServicer(decision_log, metrics), server
    )
    execution_service_pb2_grpc.add_ExecutionServiceServicer_to_server(ExecutionServicer(executor), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    port = server.add_secure_port(addr, tls.grpc_credentials()) if tls else server.add_insecure_port(addr)
    if port == 0:
        raise RuntimeError(f"could not bind {addr}")
    private_dir = None
    if http_addr is not None:
        # The gateway's own hop: plaintext, on a socket in a directory only this user can enter
        # (so it keeps working under mutual TLS, where the TCP port wants a client certificate).
        private_dir = Path(tempfile.mkdtemp(prefix="sigma-grpc-"))
        if server.add_insecure_port(f"unix:{private_dir / 'grpc.sock'}") == 0:
            raise RuntimeError(f"could not bind a unix socket in {private_dir}")
    if settings.warm_up:
        await _warm_up(decision_log)
    await server.start()
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reconciler = asyncio.create_task(executor.run_reconciler(settings.reconcile_interval_s))
    stats_maintenance = asyncio.create_task(
        maintain_stats_periodically(decisions, STATS_MAINTENANCE_INTERVAL_S, STATS_MAINTENANCE_FIRST_DELAY_S)
    )
    gateway, http_port = None, None
    if private_dir is not None and http_addr is not None:
        gateway = GatewayServer(
            f"unix:{private_dir / 'grpc.sock'}", relay_key=gateway_key, tls=tls, metrics=metrics
        )
        try:
            http_port = await gateway.start(*split_host_port(http_addr))
        except OSError:
            reconciler.cancel()
            stats_maintenance.cancel()
            await server.stop(None)
            shutil.rmtree(private_dir, ignore_errors=True)
            raise
    if replica is not None:
        replica.start()
    return RunningServer(
        stats_maintenance=stats_maintenance,
        replica=replica,
        credentials=credentials,
        credentials_watch=asyncio.create_task(credentials.watch()) if credentials else None,
        private_dir=private_dir,
        gateway=gateway,
        http_port=http_port,
        server=server,
        port=port,
        health=health_servicer,
        executor=executor,
        reconciler=reconciler,
        in_flight=in_flight,
        metrics=metrics,
    )


@contextlib.asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[str]:
    """The database URL to use: SIGMA_DATABASE_URL, or an embedded server stopped on exit.

    The embedded server's folder is locked for this process: when another process
    has it, this logs why and exits with status 2 (SystemExit) rather than share it.
    """
    if settings.database_url:
        log.info("using database %s", redact_url(settings.database_url))
        yield settings.database_url
        return
    try:
        embedded: EmbeddedPostgres = await asyncio.to_thread(start_embedded, settings.data_dir)
    except EmbeddedDatabaseError as error:
        log.error("%s", error)
        raise SystemExit(2) from None
    try:
        yield embedded.url
    finally:
        await asyncio.to_thread(embedded.stop)


async def migrate(settings: Settings) -> list[str]:
    async with database(settings) as url:
        conn = await asyncpg.connect(url, timeout=DB_CONNECT_TIMEOUT_S)
        try:
            return await apply_migrations(conn, settings.migrations_dir)
        finally:
            await conn.close()


async def run_gateway(settings: Settings, target: str) -> None:
    """Only the HTTP/JSON gateway (and dashboard), forwarding to a remote gRPC `target`, until a signal."""
    if settings.http_addr is None:
        raise ConfigError("SIGMA_HTTP_ADDR is off: the gateway has nowhere to listen")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tls = TlsFiles.from_settings(settings)
    # Tokens pass through to the target, which checks them; certificate names cannot be vouched for.
    gateway = GatewayServer(target, tls=tls)
    host, port = split_host_port(settings.http_addr)
    bound = await gateway.start(host, port)
    scheme = "https" if tls else "http"
    log.info(
        "HTTP/JSON gateway on %s://%s:%d (dashboard: /dashboard), forwarding to %s",
        scheme,
        host,
        bound,
        target,
    )
    await stop.wait()
    await gateway.stop()
    log.info("stopped")
