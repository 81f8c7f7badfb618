"""Wiring: database → migrations → stores → services → gRPC server, and a graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncpg
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from sigma_grpc.api.decision_servicer import DecisionServicer
from sigma_grpc.api.execution_servicer import ExecutionServicer
from sigma_grpc.api.in_flight import InFlightCalls
from sigma_grpc.api.undecodable import UndecodableRequests
from sigma_grpc.clock import Clock, utc_now
from sigma_grpc.config import ConfigError, Settings, redact_url, split_host_port
from sigma_grpc.demo import seed_demo
from sigma_grpc.exchange.hyperliquid import Hyperliquid
from sigma_grpc.gateway.server import GatewayServer
from sigma_grpc.gen.sigma.v1 import (
    decision_service_pb2,
    decision_service_pb2_grpc,
    execution_service_pb2,
    execution_service_pb2_grpc,
)
from sigma_grpc.services.decisions import DecisionLog
from sigma_grpc.services.execution import Executor
from sigma_grpc.storage.decisions import DecisionStore
from sigma_grpc.storage.embedded import EmbeddedPostgres, start_embedded
from sigma_grpc.storage.executions import ExecutionStore
from sigma_grpc.storage.migrate import apply_migrations
from sigma_grpc.storage.pool import Database, create_pool

log = logging.getLogger(__name__)

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
    gateway: GatewayServer | None = None
    http_port: int | None = None

    async def stop(self, grace: float | None) -> None:
        """Refuse new calls, let in-flight ones (and execution attempts) finish within `grace` seconds."""
        await self.health.enter_graceful_shutdown()
        self.reconciler.cancel()
        if self.gateway is not None:
            await self.gateway.stop(grace)
        await self.server.stop(grace)
        await self.in_flight.wait(grace)
        await self.executor.drain(grace)


def build_exchange(settings: Settings) -> Hyperliquid:
    """The Hyperliquid client; refuses a network that disagrees with the URL (ConfigError)."""
    return Hyperliquid(
        network=settings.hl_network,
        base_url=settings.hl_base_url,
        timeout_s=settings.hl_timeout_s,
        private_key=settings.hl_private_key,
        account_address=settings.hl_account_address,
    )


def _local_target(addr: str, port: int) -> str:
    """Where this process reaches its own gRPC port: the address it listens on (loopback for "any")."""
    host = split_host_port(addr)[0]
    if host in ("0.0.0.0", ""):  # noqa: S104 (reading the bind address, not binding)
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def start_server(
    pool: asyncpg.Pool,
    addr: str,
    settings: Settings | None = None,
    clock: Clock = utc_now,
    *,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    http_addr: str | None = None,
) -> RunningServer:
    """Serve sigma.v1, health and reflection on `addr` (port 0 picks a free port).

    With `http_addr`, the HTTP/JSON gateway and the dashboard are served there too,
    in this event loop, forwarding to the gRPC port. `interceptors` run inside the
    service's own (tests use them to inject faults).
    """
    settings = settings or Settings()
    db = Database(pool)
    decisions = DecisionStore(db)
    executor = Executor(
        executions=ExecutionStore(db),
        decisions=decisions,
        exchange=build_exchange(settings),
        paper_equity=settings.paper_equity,
        order_expiry_s=settings.order_expiry_s,
        clock=clock,
    )
    in_flight = InFlightCalls()
    server = grpc.aio.server(interceptors=[in_flight, UndecodableRequests(), *interceptors])
    decision_service_pb2_grpc.add_DecisionServiceServicer_to_server(
        DecisionServicer(DecisionLog(decisions)), server
    )
    execution_service_pb2_grpc.add_ExecutionServiceServicer_to_server(ExecutionServicer(executor), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    port = server.add_insecure_port(addr)
    if port == 0:
        raise RuntimeError(f"could not bind {addr}")
    await server.start()
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reconciler = asyncio.create_task(executor.run_reconciler(settings.reconcile_interval_s))
    gateway, http_port = None, None
    if http_addr is not None:
        gateway = GatewayServer(_local_target(addr, port))
        try:
            http_port = await gateway.start(*split_host_port(http_addr))
        except OSError:
            reconciler.cancel()
            await server.stop(None)
            raise
    return RunningServer(
        gateway=gateway,
        http_port=http_port,
        server=server,
        port=port,
        health=health_servicer,
        executor=executor,
        reconciler=reconciler,
        in_flight=in_flight,
    )


@contextlib.asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[str]:
    """The database URL to use: SIGMA_DATABASE_URL, or an embedded server stopped on exit."""
    if settings.database_url:
        log.info("using database %s", redact_url(settings.database_url))
        yield settings.database_url
        return
    embedded: EmbeddedPostgres = await asyncio.to_thread(start_embedded, settings.data_dir)
    try:
        yield embedded.url
    finally:
        await asyncio.to_thread(embedded.stop)


async def migrate(settings: Settings) -> list[str]:
    async with database(settings) as url:
        conn = await asyncpg.connect(url)
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
    gateway = GatewayServer(target)
    host, port = split_host_port(settings.http_addr)
    bound = await gateway.start(host, port)
    log.info(
        "HTTP/JSON gateway on http://%s:%d (dashboard: /dashboard), forwarding to %s", host, bound, target
    )
    await stop.wait()
    await gateway.stop()
    log.info("stopped")


async def serve(settings: Settings, *, demo: bool = False) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully; `demo` seeds sample data into an empty log."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with database(settings) as url:
        pool = await create_pool(url, max_size=settings.db_pool_size)
        try:
            async with pool.acquire() as conn:
                applied = await apply_migrations(conn, settings.migrations_dir)
            log.info("migrations applied at start: %s", ", ".join(applied) or "none pending")
            if demo:
                db = Database(pool)
                await seed_demo(
                    DecisionLog(DecisionStore(db)),
                    ExecutionStore(db),
                    clock=utc_now,
                    network=settings.hl_network,
                )
            running = await start_server(pool, settings.grpc_addr, settings, http_addr=settings.http_addr)
            host = settings.grpc_addr.rsplit(":", 1)[0]
            log.info("sigma-grpc listening on %s:%d", host, running.port)
            if settings.http_addr is not None:
                http_host = split_host_port(settings.http_addr)[0]
                log.info(
                    "HTTP/JSON gateway on http://%s:%d (dashboard: /dashboard)", http_host, running.http_port
                )
            await stop.wait()
            log.info("stopping: finishing in-flight calls (up to %ss)", settings.shutdown_grace_s)
            await running.stop(settings.shutdown_grace_s)
        finally:
            await pool.close()
    log.info("stopped")
