"""`sigma-grpc serve` as a process when PostgreSQL comes and goes, when it is stopped, and when it is doubled.

Every test runs on a PostgreSQL of its own (started here, or by the serve process
in a temporary data folder), never on the shared test server: these tests stop it.

- chaos: PostgreSQL stopped (immediate mode, a crash for the server) and started
  again, twice, under a steady stream of LogDecision calls: every decision whose
  call returned OK is stored exactly once, the process never restarts, and health
  goes NOT_SERVING and back to SERVING by itself;
- a database that is down at start: health NOT_SERVING, calls UNAVAILABLE, then
  SERVING and serving once it is there (migrated by serve);
- SIGTERM: in-flight calls finish, exit 0 within the grace period; a second SIGTERM
  stops at once (exit 1), embedded PostgreSQL included;
- a second serve on the same embedded data folder refuses to start;
- two replicas on one database: both start at once (migrations applied once), and
  20 concurrent ExecuteSignal calls for one decision across both place one order.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
import grpc
import pytest
from google.protobuf import field_mask_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pgserver._commands import POSTGRES_BIN_PATH
from pgserver.utils import PostmasterInfo
from sigma_client import Gate, SigmaClient, SigmaError

from sigma_grpc.config import redact_url
from sigma_grpc.gen.sigma.v1 import execution_service_pb2 as epb
from sigma_grpc.storage.embedded import EmbeddedPostgres, start_embedded
from tests.execution_env import MAIN_KEY, ExecStub
from tests.execution_env import signal_request as execution_signal
from tests.fake_hyperliquid import FakeHyperliquid
from tests.helpers import ROOT, Stub, error_reason, expect_error, start_serve_process
from tests.helpers import signal as signal_request

SERVING = "SERVING"
NOT_SERVING = "NOT_SERVING"


class OwnPostgres:
    """A PostgreSQL of one test's own, in a temporary folder: stopped and started with pg_ctl."""

    def __init__(self, folder: Path, embedded: EmbeddedPostgres) -> None:
        self.folder = folder
        self.pgdata = folder / "pg"
        self.embedded = embedded
        self.url = embedded.url
        self.socket_dir = parse_qs(urlsplit(self.url).query)["host"][0]

    def _pg_ctl(self, *args: str, check: bool = True) -> None:
        # As pgserver runs it: as its own user when we are root (PostgreSQL refuses to run as root),
        # but through runuser rather than subprocess's `user=`, which forks instead of vforking and so
        # runs grpc's fork handlers in the child (which may crash while this process has calls running).
        # stdout goes nowhere: the server started inherits it, and a pipe would never close.
        as_user = ["runuser", "-u", "pgserver", "--"] if os.geteuid() == 0 else []
        subprocess.run(
            [*as_user, str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.pgdata), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            check=check,
        )

    def stop(self, mode: str = "immediate") -> None:
        """`immediate`: every backend is killed at once and the server comes back with crash recovery."""
        self._pg_ctl("-m", mode, "-w", "stop")

    def start(self) -> None:
        """Start it again, listening where it did (the same URL)."""
        self._pg_ctl(
            "-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.pgdata / "log"), "start"
        )

    def close(self) -> None:
        self._pg_ctl("-m", "fast", "-w", "stop", check=False)  # whichever server runs now
        self.embedded.stop()  # releases the folder (the server it knew may be long gone)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
async def own_pg() -> AsyncIterator[OwnPostgres]:
    folder = Path(tempfile.mkdtemp(prefix="sigma-rel-"))
    own = OwnPostgres(folder, await asyncio.to_thread(start_embedded, folder))
    try:
        yield own
    finally:
        await asyncio.to_thread(own.close)


async def _until(condition: Callable[[], Awaitable[bool] | bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result if isinstance(result, bool) else await result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not reached within {timeout} s: {what}")


async def _health(stub: health_pb2_grpc.HealthStub, service: str = "") -> str:
    try:
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
    except grpc.aio.AioRpcError as error:
        return f"error {error.code().name}"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def _http_base(lines: list[str]) -> str:
    """The gateway's base URL, from the serve process's announcement."""
    for line in list(lines):
        match = re.search(r"HTTP/JSON gateway on (http://127\.0\.0\.1:\d+)", line)
        if match:
            return match.group(1)
    raise AssertionError(f"no gateway announced in {lines}")


async def _scrape(url: str) -> str:
    def get() -> str:
        with urllib.request.urlopen(url, timeout=5) as response:
            body: bytes = response.read()
            return body.decode()

    return await asyncio.to_thread(get)


def _sample(exposition: str, name: str) -> float:
    """The value of an unlabelled sample in a Prometheus text exposition."""
    for line in exposition.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


def _log_count(lines: list[str], text: str) -> int:
    return sum(text in line for line in list(lines))


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(10)


async def _waiting_on_lock(url: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'decision_logs'::regclass"
        )
    finally:
        await conn.close()
    return count > 0


async def test_postgres_crashing_twice_under_load_loses_nothing_and_heals(own_pg: OwnPostgres) -> None:
    process, port, lines = start_serve_process({"SIGMA_DATABASE_URL": own_pg.url})
    target = f"127.0.0.1:{port}"
    seen: list[str] = []  # health of the server as polled, repeats collapsed
    outcomes: dict[str, tuple[str, int] | str] = {}  # request_id → (decision id, attempts) or the error
    try:
        async with (
            SigmaClient(target, timeout=30, attempt_timeout=3, max_backoff=0.5) as client,
            grpc.aio.insecure_channel(target) as channel,
        ):
            health = health_pb2_grpc.HealthStub(channel)
            done = asyncio.Event()

            async def watch_health() -> None:
                while not done.is_set():
                    status = await _health(health)
                    if not seen or seen[-1] != status:
                        seen.append(status)
                    await asyncio.sleep(0.05)

            async def log_one(request_id: str) -> None:
                try:
                    logged = await client.log_decision(
                        symbol="BTC",
                        direction="long",
                        decision_type="signal",
                        trader_count=7,
                        agreement_pct=0.8,
                        effective_k=3.2,
                        gates=[Gate("supermajority", True, value=0.8, threshold=0.7)],
                        price_at_decision="97123.5",
                        request_id=request_id,
                    )
                except SigmaError as error:
                    outcomes[request_id] = f"{type(error).__name__}: {error}"
                else:
                    outcomes[request_id] = (logged.decision.id, logged.attempts)

            calls: list[asyncio.Task[None]] = []

            async def steady_load() -> None:
                n = 0
                while not done.is_set():
                    calls.append(asyncio.create_task(log_one(f"chaos-{n:04d}")))
                    n += 1
                    await asyncio.sleep(0.05)

            watcher = asyncio.create_task(watch_health())
            load = asyncio.create_task(steady_load())
            await asyncio.sleep(1)
            for _ in range(2):
                await asyncio.to_thread(own_pg.stop, "immediate")
                await _until(lambda: seen[-1] == NOT_SERVING, 10, "health NOT_SERVING after the crash")
                await asyncio.sleep(1)  # calls keep coming and being retried
                await asyncio.to_thread(own_pg.start)
                await _until(lambda: seen[-1] == SERVING, 15, "health SERVING once PostgreSQL is back")
                await asyncio.sleep(1)
            done.set()
            await load
            await asyncio.gather(*calls)
            await watcher

        assert process.poll() is None, "".join(lines)  # the same process, still running: never restarted
        assert _log_count(lines, "sigma-grpc listening on") == 1
        # Two outages, each logged once when it began and once when it ended (not at every ping).
        assert _log_count(lines, "the database cannot be reached") == 2, "".join(lines)
        assert _log_count(lines, "the database answers again") == 2, "".join(lines)
        assert [s for s in seen if s in (SERVING, NOT_SERVING)] == [
            SERVING,
            NOT_SERVING,
            SERVING,
            NOT_SERVING,
            SERVING,
        ], seen
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(15) == 0
        finally:
            _stop(process)

    ok = {rid: outcome for rid, outcome in outcomes.items() if isinstance(outcome, tuple)}
    failed = {rid: outcome for rid, outcome in outcomes.items() if isinstance(outcome, str)}
    assert len(outcomes) >= 100
    assert not failed, (failed, "".join(lines))  # a 30 s budget of retries outlasts each outage
    assert any(attempts > 1 for _, attempts in ok.values()), "no call was ever retried: no outage seen"
    conn = await asyncpg.connect(own_pg.url)
    try:
        rows = await conn.fetch("SELECT request_id, id::text AS id FROM decision_logs")
    finally:
        await conn.close()
    stored: dict[str, list[str]] = {}
    for row in rows:
        stored.setdefault(row["request_id"], []).append(row["id"])
    for request_id, (decision_id, _) in ok.items():
        assert stored.get(request_id) == [decision_id], request_id  # exactly once, the one answered
    assert set(stored) <= set(outcomes)


async def test_serve_waits_for_a_database_that_is_down_at_start(own_pg: OwnPostgres) -> None:
    """Health NOT_SERVING and UNAVAILABLE meanwhile; SERVING, migrated and serving once it is up."""
    await asyncio.to_thread(own_pg.stop, "fast")
    process, port, lines = start_serve_process({"SIGMA_DATABASE_URL": own_pg.url})
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            api = Stub(channel)
            for service in ("", "sigma.v1.DecisionService", "sigma.v1.ExecutionService"):
                assert await _health(health, service) == NOT_SERVING
            error = await expect_error(
                api.LogDecision(signal_request(request_id="early"), timeout=5), grpc.StatusCode.UNAVAILABLE
            )
            assert error_reason(error) == "DATABASE_UNAVAILABLE"
            assert "retrying is safe" in (error.details() or "")
            # Each attempt says what it waits for, and why; with a growing delay.
            await _until(lambda: _log_count(lines, "waiting for the database at") >= 2, 10, "a retry")
            waiting = [line for line in lines if "waiting for the database at" in line]
            assert redact_url(own_pg.url) in waiting[0] and "(attempt 1; next in 0.5 s)" in waiting[0]
            assert "(attempt 2; next in 1.0 s)" in waiting[1]
            metrics_url = f"{_http_base(lines)}/metrics"
            assert _sample(await _scrape(metrics_url), "sigma_database_up") == 0
            assert _sample(await _scrape(metrics_url), "sigma_database_embedded") == 0

            await asyncio.to_thread(own_pg.start)

            async def serving() -> bool:
                return await _health(health) == SERVING

            await _until(serving, 20, "SERVING once the database is up")
            assert await _health(health, "sigma.v1.DecisionService") == SERVING
            logged = await api.LogDecision(signal_request(request_id="early"), timeout=5)
            assert not logged.replayed
            assert _sample(await _scrape(metrics_url), "sigma_database_up") == 1
        assert process.poll() is None
        assert _log_count(lines, "applied migration 060_decision_logs") == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        _stop(process)


def test_sigterm_while_waiting_for_the_database_stops_cleanly(tmp_path: Path) -> None:
    # Nothing listens on this socket folder: the database never comes.
    process, _, lines = start_serve_process(
        {"SIGMA_DATABASE_URL": f"postgresql://postgres@/postgres?host={tmp_path}"}
    )
    try:
        deadline = time.monotonic() + 10
        while _log_count(lines, "waiting for the database at") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0, "".join(lines)
    finally:
        _stop(process)
    assert "stopped" in lines[-1]


async def test_sigterm_during_a_burst_lets_every_accepted_call_finish(own_pg: OwnPostgres) -> None:
    process, port, lines = start_serve_process(
        {"SIGMA_DATABASE_URL": own_pg.url, "SIGMA_SHUTDOWN_GRACE_S": "5"}
    )
    blocker = await asyncpg.connect(own_pg.url)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            api = Stub(channel)
            # The burst waits on a lock the test holds, so it is surely in flight when SIGTERM comes.
            tx = blocker.transaction()
            await tx.start()
            await blocker.execute("LOCK TABLE decision_logs IN ACCESS EXCLUSIVE MODE")
            burst = {
                f"burst-{n:02d}": asyncio.ensure_future(
                    api.LogDecision(signal_request(request_id=f"burst-{n:02d}"), timeout=15)
                )
                for n in range(30)
            }
            await _until(lambda: _waiting_on_lock(own_pg.url), 10, "calls waiting on the lock")
            await asyncio.sleep(0.2)
            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            await _until(lambda: _log_count(lines, "stopping: finishing in-flight calls") == 1, 5, "stopping")
            await asyncio.sleep(0.3)  # the gateway stops first (a few ms), then the gRPC server
            # The stop has begun: a new call is refused at once (not left waiting on the lock)...
            asked = time.monotonic()
            late = await expect_error(
                api.LogDecision(signal_request(request_id="late"), timeout=3), grpc.StatusCode.UNAVAILABLE
            )
            assert time.monotonic() - asked < 2
            assert process.poll() is None
            # ...while the calls already in flight are let finish.
            await tx.rollback()
            results = await asyncio.gather(*burst.values(), return_exceptions=True)
            code = await asyncio.to_thread(process.wait, 10)
            elapsed = time.monotonic() - signalled
    finally:
        blocker.terminate()
        _stop(process)
    assert code == 0, "".join(lines)
    assert elapsed < 5, elapsed  # within the grace period
    assert late.code() == grpc.StatusCode.UNAVAILABLE
    answered = {
        rid for rid, result in zip(burst, results, strict=True) if not isinstance(result, BaseException)
    }
    assert answered == set(burst), [r for r in results if isinstance(r, BaseException)]
    conn = await asyncpg.connect(own_pg.url)
    try:
        stored = {r["request_id"] for r in await conn.fetch("SELECT request_id FROM decision_logs")}
    finally:
        await conn.close()
    assert stored == answered


async def test_a_second_sigterm_during_the_grace_period_stops_at_once(tmp_path: Path) -> None:
    """On the embedded PostgreSQL, which is stopped all the same."""
    env = {"SIGMA_DATA_DIR": str(tmp_path), "SIGMA_DATABASE_URL": "", "SIGMA_SHUTDOWN_GRACE_S": "60"}
    process, port, lines = start_serve_process(env)
    pgdata = tmp_path / "pg"
    info = PostmasterInfo.read_from_pgdata(pgdata)
    assert info is not None
    url = info.get_uri()
    blocker = await asyncpg.connect(url)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            api = Stub(channel)
            await blocker.execute("BEGIN")
            await blocker.execute("LOCK TABLE decision_logs IN ACCESS EXCLUSIVE MODE")
            slow = asyncio.ensure_future(api.LogDecision(signal_request(request_id="slow"), timeout=60))
            await _until(lambda: _waiting_on_lock(url), 10, "the call waiting on the lock")
            process.send_signal(signal.SIGTERM)
            await asyncio.sleep(1)
            assert process.poll() is None  # waiting for the slow call, up to 60 s
            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            code = await asyncio.to_thread(process.wait, 15)
            elapsed = time.monotonic() - signalled
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await slow
    finally:
        blocker.terminate()
        _stop(process)
    log = "".join(lines)
    assert code == 1, log  # a forced stop says so
    assert elapsed < 5, elapsed
    assert caught.value.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
    assert "SIGTERM received again: stopping at once" in log
    assert "stopped (forced" in log
    assert "Traceback" not in log, log
    assert not (pgdata / "postmaster.pid").exists(), log  # the embedded PostgreSQL was stopped too


async def test_a_second_serve_on_the_same_data_folder_refuses_to_start(tmp_path: Path) -> None:
    env = {"SIGMA_DATA_DIR": str(tmp_path), "SIGMA_DATABASE_URL": ""}
    first, port, lines = start_serve_process(env)
    try:
        for command in ("serve", "migrate"):
            second = subprocess.run(
                [sys.executable, "-m", "sigma_grpc", command],
                cwd=ROOT,
                env={**os.environ, "SIGMA_GRPC_ADDR": "127.0.0.1:0", "SIGMA_HTTP_ADDR": "127.0.0.1:0", **env},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert second.returncode == 2, second.stderr
            assert f"is in use by process {first.pid}" in second.stderr, second.stderr
            assert "SIGMA_DATA_DIR" in second.stderr
            assert "Traceback" not in second.stderr
            assert "sigma-grpc listening on" not in second.stderr
        # The first one still serves, on its database.
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            assert await _health(health_pb2_grpc.HealthStub(channel)) == SERVING
            logged = await Stub(channel).LogDecision(signal_request(request_id="still-here"), timeout=10)
            assert logged.decision.request_id == "still-here"
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0, "".join(lines)
    finally:
        _stop(first)
    assert not (tmp_path / "pg" / "postmaster.pid").exists()


async def test_two_replicas_on_one_database_migrate_once_and_place_one_order(
    own_pg: OwnPostgres, fake: FakeHyperliquid
) -> None:
    """Both start at the same moment on an empty database; 20 concurrent ExecuteSignal calls for
    one decision, spread across both, put exactly one order on the exchange."""
    fake.add_account(key=MAIN_KEY, account_value=10_000)
    env = {
        "SIGMA_DATABASE_URL": own_pg.url,
        "SIGMA_HTTP_ADDR": "off",
        "SIGMA_HL_BASE_URL": fake.base_url,
        "SIGMA_HL_PRIVATE_KEY": MAIN_KEY,
        "SIGMA_HL_TIMEOUT_S": "2",
        "SIGMA_RECONCILE_INTERVAL_S": "3600",
    }
    (first, first_port, first_lines), (second, second_port, second_lines) = await asyncio.gather(
        asyncio.to_thread(start_serve_process, env), asyncio.to_thread(start_serve_process, env)
    )
    try:
        applied = [line for line in first_lines + second_lines if "applied migration " in line]
        migrations = sorted(path.stem for path in (ROOT / "migrations").glob("*.sql"))
        assert sorted(line.rsplit(" ", 1)[1].strip() for line in applied) == migrations
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{first_port}") as one,
            grpc.aio.insecure_channel(f"127.0.0.1:{second_port}") as other,
        ):
            replicas = [ExecStub(one), ExecStub(other)]
            await replicas[0].UpdateExecutionConfig(
                epb.UpdateExecutionConfigRequest(
                    config=epb.ExecutionConfig(enabled=True, hl_enabled=True, dry_run=False),
                    update_mask=field_mask_pb2.FieldMask(paths=["enabled", "hl_enabled", "dry_run"]),
                ),
                timeout=10,
            )
            logged = await Stub(other).LogDecision(execution_signal("ETH"), timeout=10)
            request = epb.ExecuteSignalRequest(decision_id=logged.decision.id)
            answers = await asyncio.gather(
                *(replicas[i % 2].ExecuteSignal(request, timeout=30) for i in range(20))
            )
        assert len({answer.execution.id for answer in answers}) == 1
        assert {answer.execution.status for answer in answers} == {epb.EXECUTION_STATUS_FILLED}
        assert fake.count("order") == 1
        conn = await asyncpg.connect(own_pg.url)
        try:
            assert await conn.fetchval("SELECT count(*) FROM execution_logs") == 1
            assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(migrations)
        finally:
            await conn.close()
        assert first.poll() is None and second.poll() is None
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in (first, second):
            try:
                assert process.wait(20) == 0
            finally:
                _stop(process)
