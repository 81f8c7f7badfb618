"""`serve`: the service's life from start to exit.

Start (waiting for the database with backoff while health says NOT_SERVING),
serve (health following the database), and stop: gracefully on SIGTERM/SIGINT,
at once on a second one. SIGHUP reloads the tokens file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

import asyncpg

from sigma_grpc.app import (
    DB_CONNECT_TIMEOUT_S,
    SERVICE_NAMES,
    RunningServer,
    database,
    start_server,
)
from sigma_grpc.auth.store import describe as describe_credentials
from sigma_grpc.clock import utc_now
from sigma_grpc.config import Settings, is_loopback, redact_url, split_host_port
from sigma_grpc.demo import seed_demo
from sigma_grpc.domain.errors import DomainError, Reason
from sigma_grpc.health_monitor import NOT_SERVING, DatabaseMonitor, StartupGate, set_health
from sigma_grpc.services.decisions import DecisionLog
from sigma_grpc.storage.decisions import DecisionStore
from sigma_grpc.storage.executions import ExecutionStore
from sigma_grpc.storage.migrate import apply_migrations
from sigma_grpc.storage.pool import Database, create_pool, is_unavailable

log = logging.getLogger(__name__)


async def serve(settings: Settings, *, demo: bool = False) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully; `demo` seeds sample data into an empty log.

    When the database cannot be reached at start, the gRPC server starts anyway with
    health NOT_SERVING (sigma.v1 calls answer UNAVAILABLE), connecting and migrating
    is retried with a capped exponential backoff, and health turns SERVING by itself
    once that succeeds. Afterwards a monitor keeps health NOT_SERVING while the
    database is unreachable. A second SIGTERM/SIGINT during the graceful stop stops
    at once: calls still running are cancelled, the pool is terminated, the embedded
    PostgreSQL is still stopped, and the exit status is 1 (SystemExit).
    """
    signals = _StopSignals()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, signals.received, sig)
    # Until the server runs (then SIGHUP reloads the tokens file), a SIGHUP must not end the process.
    loop.add_signal_handler(
        signal.SIGHUP, log.info, "SIGHUP before serving: the tokens file is read at start"
    )
    forced = False
    async with database(settings) as url:
        if signals.stop.is_set():
            log.info("stopping before serving: a signal came while the database was starting")
        else:
            forced = await _serve_on(url, settings, signals, demo=demo)
    log.info("stopped" if not forced else "stopped (forced: calls still running were cancelled)")
    if forced:
        raise SystemExit(1)


# While the database cannot be reached at start: the first retry's delay, doubled up to the cap.
DB_RETRY_INITIAL_S = 0.5
DB_RETRY_MAX_S = 10.0
# After the graceful stop, how long closing the pool may take before its connections are terminated.
POOL_CLOSE_TIMEOUT_S = 5.0
# The graceful stop's phases are each bounded by the grace period; the whole by grace + this.
GRACE_MARGIN_S = 1.0
# A forced stop (second signal, or the grace period over) may still take this long (the gateway's second).
FORCED_STOP_TIMEOUT_S = 5.0


class _StopSignals:
    """A first SIGTERM/SIGINT asks for a graceful stop (`stop`), a second one to stop at once (`force`)."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.force = asyncio.Event()

    def received(self, sig: signal.Signals) -> None:
        if not self.stop.is_set():
            log.info("%s received: stopping gracefully (%s again stops at once)", sig.name, sig.name)
            self.stop.set()
        elif not self.force.is_set():
            log.warning("%s received again: stopping at once", sig.name)
            self.force.set()


def _is_unavailable(error: BaseException) -> bool:
    """A database that cannot be reached (yet): worth waiting for, unlike a bad password or migration."""
    if isinstance(error, DomainError):
        return error.reason is Reason.DATABASE_UNAVAILABLE
    return is_unavailable(error)


async def _prepare(url: str, pool: asyncpg.Pool, settings: Settings, *, demo: bool) -> None:
    """One attempt at what serving needs first: connect, migrate, seed the demo data when asked."""
    conn = await asyncpg.connect(url, timeout=DB_CONNECT_TIMEOUT_S)
    try:
        applied = await apply_migrations(conn, settings.migrations_dir)
    finally:
        conn.terminate()  # nothing left to say to it; never wait on a database that may be gone
    log.info("migrations applied at start: %s", ", ".join(applied) or "none pending")
    if demo:
        db = Database(pool)
        await seed_demo(
            DecisionLog(DecisionStore(db)), ExecutionStore(db), clock=utc_now, network=settings.hl_network
        )


async def _unless_stopped(work: asyncio.Future[None], stop: asyncio.Event) -> bool:
    """Await `work` unless `stop` comes first (then cancel it); whether it ran to the end."""
    stopping = asyncio.ensure_future(stop.wait())
    waiting: set[asyncio.Future[Any]] = {work, stopping}
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not work.done():
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await work
        return False
    work.result()
    return True


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    """Wait up to `seconds` for `stop`; whether it came."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


async def _try_prepare(
    url: str,
    pool: asyncpg.Pool,
    settings: Settings,
    stop: asyncio.Event,
    *,
    demo: bool,
    attempt: int,
    then: float,
) -> bool | None:
    """True: ready; False: the database cannot be reached (logged, with `then`: the next try's delay);
    None: a stop came first. Other errors (a refused password, a migration edited after it was
    applied) are raised: waiting would not mend them."""
    try:
        if not await _unless_stopped(asyncio.ensure_future(_prepare(url, pool, settings, demo=demo)), stop):
            return None
    except Exception as error:
        if not _is_unavailable(error):
            raise
        log.warning(
            "waiting for the database at %s: %s (attempt %d; next in %.1f s)",
            redact_url(url),
            _describe(error),
            attempt,
            then,
        )
        return False
    return True


async def _prepare_until_ready(
    url: str, pool: asyncpg.Pool, settings: Settings, stop: asyncio.Event, *, demo: bool
) -> bool:
    """After a first failed attempt: retry with a capped exponential backoff; False when stopped first."""
    attempt, delay = 1, DB_RETRY_INITIAL_S
    while not await _stopped_within(stop, delay):
        attempt, delay = attempt + 1, min(delay * 2, DB_RETRY_MAX_S)
        outcome = await _try_prepare(url, pool, settings, stop, demo=demo, attempt=attempt, then=delay)
        if outcome is None:  # a stop came first
            return False
        if outcome:
            return True
    return False


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


async def _serve_on(url: str, settings: Settings, signals: _StopSignals, *, demo: bool) -> bool:
    """Serve on the database at `url` until a signal; whether the stop had to be forced."""
    # No connection at creation (min_size 0): the database may not be reachable yet.
    pool = await create_pool(url, min_size=0, max_size=settings.db_pool_size)
    read_pool: asyncpg.Pool | None = None
    monitor: DatabaseMonitor | None = None
    forced = True  # until the graceful stop has run: after an error, nothing is waited for
    try:
        if settings.database_read_url:
            # No migrations there: a standby replays the primary's. Lazy like the primary's pool,
            # so a replica that is down at start only sends reads to the primary.
            read_pool = await create_pool(
                settings.database_read_url, min_size=0, max_size=settings.db_pool_size
            )
            log.info(
                "DecisionService reads (ListDecisions, GetDecision, GetStats) go to the read replica at %s "
                "while it answers; writes and ExecutionService stay on the primary",
                redact_url(settings.database_read_url),
            )
        gate = StartupGate(SERVICE_NAMES)
        # The usual case: the database is there, and the server starts ready (SERVING).
        ready = await _try_prepare(
            url, pool, settings, signals.stop, demo=demo, attempt=1, then=DB_RETRY_INITIAL_S
        )
        if ready is None:
            forced = False
            return False
        if ready:
            gate.open()
        running = await start_server(
            pool,
            settings.grpc_addr,
            settings,
            interceptors=[gate],
            http_addr=settings.http_addr,
            read_pool=read_pool,
        )
        if not gate.is_open:
            await set_health(running.health, SERVICE_NAMES, NOT_SERVING)
        # Up: migrated and answering (the monitor's last ping; before its first, the start's own check).
        running.metrics.watch_database(
            lambda: gate.is_open and (monitor is None or monitor.reachable is not False),
            embedded=settings.database_url is None,
        )
        _announce(running, settings)
        if not gate.is_open:
            log.warning("health NOT_SERVING until the database is reachable and migrated")
            if await _prepare_until_ready(url, pool, settings, signals.stop, demo=demo):
                gate.open()
                log.info("the database is reachable and migrated: serving")
        if gate.is_open:
            monitor = DatabaseMonitor(url, running.health, SERVICE_NAMES, pool=pool)
            monitor.start()
        await signals.stop.wait()
        if monitor is not None:
            await monitor.stop()
        log.info("stopping: finishing in-flight calls (up to %ss)", settings.shutdown_grace_s)
        forced = await _stop_server(running, settings.shutdown_grace_s, signals.force)
        return forced
    finally:
        if monitor is not None:
            await monitor.stop()
        await _close_pool(pool, at_once=forced)
        if read_pool is not None:
            await _close_pool(read_pool, at_once=forced)


def _announce(running: RunningServer, settings: Settings) -> None:
    """Log where the service listens and how it authenticates; SIGHUP reloads the tokens file from now on."""
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, running.reload_credentials)
    tls = "TLS" if settings.tls_client_ca is None else "mutual TLS"
    host = settings.grpc_addr.rsplit(":", 1)[0]
    log.info(
        "sigma-grpc listening on %s:%d (%s)", host, running.port, tls if settings.tls_cert else "plaintext"
    )
    if settings.http_addr is not None:
        scheme = "https" if settings.tls_cert else "http"
        http_host = split_host_port(settings.http_addr)[0]
        log.info(
            "HTTP/JSON gateway on %s://%s:%d (dashboard: /dashboard)", scheme, http_host, running.http_port
        )
    description = describe_credentials(running.credentials, settings)
    if settings.auth_none:
        log.warning(description)
    else:
        log.info(description)
    exposed = [
        a for a in (settings.grpc_addr, settings.http_addr) if a and not is_loopback(split_host_port(a)[0])
    ]
    if running.credentials is not None and settings.tls_cert is None and exposed:
        log.warning(
            "bearer tokens travel in plaintext on %s: set SIGMA_TLS_CERT and SIGMA_TLS_KEY, or terminate "
            "TLS in front of the service",
            ", ".join(exposed),
        )


async def _stop_server(running: RunningServer, grace: float, force: asyncio.Event) -> bool:
    """The graceful stop, bounded as a whole and cut short by a second signal; whether it was forced."""
    stopping = asyncio.ensure_future(running.stop(grace))
    forcing = asyncio.ensure_future(force.wait())
    waiting: set[asyncio.Future[Any]] = {stopping, forcing}
    try:
        await asyncio.wait(waiting, timeout=grace + GRACE_MARGIN_S, return_when=asyncio.FIRST_COMPLETED)
    finally:
        forcing.cancel()
    if stopping.done():
        stopping.result()
        return False
    if not force.is_set():
        log.warning("the grace period (%ss) is over: cancelling the calls still running", grace)
    stopping.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await stopping
    # The same stop again, with no grace: calls still running are cancelled, nothing is waited for.
    try:
        await asyncio.wait_for(running.stop(0), FORCED_STOP_TIMEOUT_S)
    except TimeoutError:
        log.warning("the server did not stop within %ss of being forced to", FORCED_STOP_TIMEOUT_S)
    return force.is_set()


async def _close_pool(pool: asyncpg.Pool, *, at_once: bool) -> None:
    """Close the pool, waiting (boundedly) for connections still lent unless `at_once`."""
    if not at_once:
        try:
            await asyncio.wait_for(pool.close(), POOL_CLOSE_TIMEOUT_S)
        except TimeoutError:
            log.warning(
                "the pool did not close within %ss: terminating its connections", POOL_CLOSE_TIMEOUT_S
            )
        else:
            return
    pool.terminate()
