"""SIGMA_DATABASE_READ_URL: DecisionService reads on a real hot standby, everything else on the primary.

Each proof pauses the standby's replay (`pg_wal_replay_pause()`), writes on the
primary, and reads: what the standby has not replayed is invisible to a read it
answers, so a ListDecisions that misses a row the primary has came from the
replica, and a GetDecision that finds it came from the primary.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import asyncpg
import grpc
import pytest
from google.protobuf import field_mask_pb2

from sigma_grpc import deadline
from sigma_grpc.app import RunningServer, start_server
from sigma_grpc.config import ConfigError, Settings
from sigma_grpc.domain.errors import DomainError, Reason
from sigma_grpc.domain.models import Decision, ListQuery
from sigma_grpc.domain.validation import ListInput
from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as pb
from sigma_grpc.gen.sigma.v1 import decision_service_pb2_grpc as pb_grpc
from sigma_grpc.gen.sigma.v1 import execution_service_pb2 as epb
from sigma_grpc.services.decisions import DecisionLog
from sigma_grpc.storage.decisions import DecisionStore
from sigma_grpc.storage.pool import Database, create_pool
from sigma_grpc.storage.replica import ReplicaMonitor, ReplicaReads
from tests.db_proxy import FreezableProxy
from tests.execution_env import ExecStub
from tests.helpers import Stub, error_reason, expect_error, signal, skip, start_serve_process
from tests.replica_env import Replication, replication_fixture  # noqa: F401 (the module's fixture)

REPLICA_LOG = "sigma_grpc.storage.replica"


@dataclass
class Served:
    running: RunningServer
    monitor: ReplicaMonitor
    primary_pool: asyncpg.Pool
    read_pool: asyncpg.Pool
    api: Stub
    executions: ExecStub


@pytest.fixture(scope="module")
async def served(replication: Replication) -> AsyncIterator[Served]:
    """The service on the primary, with the standby as its read replica (sampled every 0.1 s)."""
    primary_pool = await create_pool(replication.primary_url, max_size=6)
    read_pool = await create_pool(replication.standby.url, min_size=0, max_size=4)
    running = await start_server(
        primary_pool,
        "127.0.0.1:0",
        Settings(reconcile_interval_s=3600),
        read_pool=read_pool,
        replica_poll_s=0.1,
    )
    try:
        assert running.replica is not None
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield Served(
                running,
                running.replica,
                primary_pool,
                read_pool,
                pb_grpc.DecisionServiceStub(channel),
                ExecStub(channel),
            )
    finally:
        await running.stop(grace=1)
        await read_pool.close()
        await primary_pool.close()


@pytest.fixture
async def ready(replication: Replication, served: Served) -> Served:
    """The service over empty tables, its standby running, replaying, caught up and in use."""
    if not replication.standby.running():
        await replication.standby.start()
    await replication.resume_replay()
    await served.primary_pool.execute("DELETE FROM decision_logs")  # no executions refer to them here
    await served.primary_pool.execute("UPDATE execution_config SET max_signal_age_s = DEFAULT")
    await replication.caught_up()
    await _until(lambda: served.monitor.usable)
    return served


async def _until(condition: Callable[[], bool], timeout: float = 10) -> None:
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the condition did not come true in time")


async def _listed(api: Stub) -> list[str]:
    return [d.id for d in (await api.ListDecisions(pb.ListDecisionsRequest(), timeout=5)).decisions]


async def _total(api: Stub) -> int:
    return (await api.GetStats(pb.GetStatsRequest(), timeout=5)).totals.total_decisions


def _replica_logs(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == REPLICA_LOG and text in r.getMessage()]


async def test_lists_and_stats_come_from_the_replica_and_a_new_id_from_the_primary(
    ready: Served, replication: Replication
) -> None:
    api = ready.api
    first = (await api.LogDecision(signal(request_id="replica-1"), timeout=5)).decision
    await replication.caught_up()
    assert await _listed(api) == [first.id]

    await replication.pause_replay()
    second = (await api.LogDecision(skip(request_id="replica-2"), timeout=5)).decision
    assert await replication.primary_fetchval("SELECT count(*) FROM decision_logs") == 2
    assert await replication.standby.fetchval("SELECT count(*) FROM decision_logs") == 1
    # Answered by the replica, which has not replayed the second decision yet.
    assert await _listed(api) == [first.id]
    assert await _total(api) == 1
    # Read-your-writes: the replica misses the new id, the primary has it.
    assert (await api.GetDecision(pb.GetDecisionRequest(id=second.id), timeout=5)).decision == second
    assert (await api.GetDecision(pb.GetDecisionRequest(id=first.id), timeout=5)).decision == first
    unknown = pb.GetDecisionRequest(id=str(uuid.uuid4()))
    error = await expect_error(api.GetDecision(unknown, timeout=5), grpc.StatusCode.NOT_FOUND)
    assert error_reason(error) == "DECISION_NOT_FOUND"

    await replication.resume_replay()
    await replication.caught_up()
    assert await _listed(api) == [second.id, first.id]
    assert await _total(api) == 2


async def test_writes_and_executions_stay_on_the_primary(ready: Served, replication: Replication) -> None:
    api = ready.api
    logged = (await api.LogDecision(signal(request_id="replica-w1"), timeout=5)).decision
    await replication.caught_up()
    await replication.pause_replay()

    recorded = await api.RecordOutcome(
        pb.RecordOutcomeRequest(decision_id=logged.id, outcome_pnl="12.5", outcome_r_multiple=1.5), timeout=5
    )
    assert recorded.decision.outcome_pnl == "12.50000000"
    outcome_sql = f"SELECT outcome_pnl::text FROM decision_logs WHERE id = '{logged.id}'"
    assert await replication.primary_fetchval(outcome_sql) == "12.50000000"
    assert await replication.standby.fetchval(outcome_sql) is None
    # The idempotency check of a replayed request_id reads the primary too.
    again = await api.LogDecision(signal(request_id="replica-w1"), timeout=5)
    assert again.replayed and again.decision.id == logged.id
    new = await api.LogDecision(signal(request_id="replica-w2"), timeout=5)
    assert not new.replayed
    assert await replication.standby.fetchval("SELECT count(*) FROM decision_logs") == 1

    # ExecutionService reads its own write at once: the paused replica still has the old config.
    await ready.executions.UpdateExecutionConfig(
        epb.UpdateExecutionConfigRequest(
            config=epb.ExecutionConfig(max_signal_age_s=42),
            update_mask=field_mask_pb2.FieldMask(paths=["max_signal_age_s"]),
        ),
        timeout=5,
    )
    config = await ready.executions.GetExecutionConfig(epb.GetExecutionConfigRequest(), timeout=5)
    assert config.config.max_signal_age_s == 42
    assert await replication.standby.fetchval("SELECT max_signal_age_s FROM execution_config") != 42


async def test_lag_is_measured_and_a_lagging_replica_is_logged(
    ready: Served, replication: Replication, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=REPLICA_LOG)
    # One with a low warning threshold, beside the server's own (whose lag is checked too).
    monitor = ReplicaMonitor(
        Database(ready.primary_pool), Database(ready.read_pool), interval_s=0.05, warn_lag_s=0.3
    )
    monitor.start()
    try:
        await _until(lambda: monitor.lag_bytes == 0 and monitor.lag_s == 0.0)
        await replication.pause_replay()
        await ready.api.LogDecision(signal(request_id="replica-lag"), timeout=5)
        await _until(lambda: (monitor.lag_bytes or 0) > 0 and (monitor.lag_s or 0) > 0.3)
        await _until(lambda: (ready.monitor.lag_bytes or 0) > 0 and (ready.monitor.lag_s or 0) > 0)
        assert _replica_logs(caplog, "behind the primary, more than 0.3 s")
        assert ready.monitor.usable  # lagging is not down: the replica still answers the reads

        await replication.resume_replay()
        await _until(lambda: monitor.lag_bytes == 0 and monitor.lag_s == 0.0)
        await _until(lambda: ready.monitor.lag_bytes == 0 and ready.monitor.lag_s == 0.0)
        assert _replica_logs(caplog, "the read replica caught up")
    finally:
        await monitor.stop()


async def test_reads_fail_over_to_the_primary_while_the_replica_is_down(
    ready: Served, replication: Replication, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=REPLICA_LOG)
    api = ready.api
    logged = (await api.LogDecision(signal(request_id="replica-down"), timeout=5)).decision
    await replication.caught_up()
    # The read path alone, with a monitor that does not sample: a read that meets the stopped
    # replica marks it down and is answered by the primary.
    idle = ReplicaMonitor(Database(ready.primary_pool), Database(ready.read_pool))
    await idle.sample()
    assert idle.usable
    primary = DecisionStore(Database(ready.primary_pool))
    decisions = DecisionLog(
        primary, reads=ReplicaReads(DecisionStore(Database(ready.read_pool)), primary, idle)
    )

    await replication.standby.stop()
    assert (await decisions.get(logged.id)).id == uuid.UUID(logged.id)
    assert not idle.usable
    assert (await decisions.stats(None, None)).overall.total_decisions == 1
    for _ in range(3):  # every RPC, again and again: answered from the primary
        assert await _listed(api) == [logged.id]
        assert (await api.GetDecision(pb.GetDecisionRequest(id=logged.id), timeout=5)).decision == logged
        assert await _total(api) == 1
        await asyncio.sleep(0.1)  # the server's monitor samples meanwhile
    assert not ready.monitor.usable
    assert ready.monitor.lag_s is None
    # Once per outage and monitor (the idle one's and the server's), however many reads and samples.
    assert len(_replica_logs(caplog, "the read replica cannot be reached")) == 2

    await replication.standby.start()
    await _until(lambda: ready.monitor.usable)
    assert len(_replica_logs(caplog, "the read replica answers again")) == 1
    # Back on the replica: a write it has not replayed is not listed.
    await replication.caught_up()
    await replication.pause_replay()
    unseen = (await api.LogDecision(signal(request_id="replica-after"), timeout=5)).decision
    assert await _listed(api) == [logged.id]
    assert (await api.GetDecision(pb.GetDecisionRequest(id=unseen.id), timeout=5)).decision == unseen


async def test_a_replica_that_stops_answering_is_left_by_the_monitor(
    ready: Served, replication: Replication
) -> None:
    # A partition (no reset, no refusal: only timeouts notice), between the service and the replica.
    proxy = FreezableProxy(replication.standby.url)
    await proxy.start()
    read_pool = await create_pool(proxy.url, min_size=0, max_size=2)
    monitor = ReplicaMonitor(Database(ready.primary_pool), Database(read_pool), interval_s=0.1, timeout_s=0.5)
    primary = DecisionStore(Database(ready.primary_pool))
    decisions = DecisionLog(primary, reads=ReplicaReads(DecisionStore(Database(read_pool)), primary, monitor))
    logged = (await ready.api.LogDecision(signal(request_id="replica-partition"), timeout=5)).decision
    monitor.start()
    try:
        await _until(lambda: monitor.usable)
        proxy.freeze()
        # A read already on its way to the replica is not re-run on the primary: the call's time
        # is spent. It still answers a retryable error within its deadline.
        started = time.monotonic()
        with deadline.bounded_by(1.0), pytest.raises(DomainError) as caught:
            await decisions.list(ListInput())
        assert caught.value.reason is Reason.DATABASE_UNAVAILABLE
        assert time.monotonic() - started < 1.0
        # The monitor's sample times out too: from then on the primary answers, at once.
        await _until(lambda: not monitor.usable)
        started = time.monotonic()
        with deadline.bounded_by(1.0):
            page, _ = await decisions.list(ListInput())
        assert [str(d.id) for d in page] == [logged.id]
        assert time.monotonic() - started < 0.5

        proxy.thaw()
        await _until(lambda: monitor.usable)
    finally:
        await monitor.stop()
        await proxy.close()
        read_pool.terminate()


@pytest.mark.parametrize(
    "refusal",
    [
        asyncpg.SerializationError("canceling statement due to conflict with recovery"),
        asyncpg.UndefinedTableError('relation "decision_stats" does not exist'),
    ],
)
async def test_a_read_the_standby_cannot_answer_yet_is_answered_by_the_primary(
    ready: Served, refusal: asyncpg.PostgresError
) -> None:
    class Refusing(DecisionStore):
        async def list(self, query: ListQuery) -> tuple[list[Decision], bool]:
            raise refusal

    logged = (await ready.api.LogDecision(signal(request_id="replica-refused"), timeout=5)).decision
    primary = DecisionStore(Database(ready.primary_pool))
    decisions = DecisionLog(
        primary, reads=ReplicaReads(Refusing(Database(ready.read_pool)), primary, ready.monitor)
    )
    page, _ = await decisions.list(ListInput())
    assert [str(d.id) for d in page] == [logged.id]
    assert ready.monitor.usable  # passing trouble: the replica stays in use


async def test_a_server_that_is_not_a_standby_answers_no_reads(
    ready: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=REPLICA_LOG)
    # SIGMA_DATABASE_READ_URL naming the primary itself (or a promoted replica): never read from.
    wrong = ReplicaMonitor(Database(ready.primary_pool), Database(ready.primary_pool))
    await wrong.sample()
    assert not wrong.usable
    assert _replica_logs(caplog, "the read replica is not a standby")


async def test_serve_reads_from_the_replica_the_environment_names(
    ready: Served, replication: Replication
) -> None:
    process, port, lines = start_serve_process(
        {
            "SIGMA_DATABASE_URL": replication.primary_url,
            "SIGMA_DATABASE_READ_URL": replication.standby.url,
            "SIGMA_HTTP_ADDR": "off",
        }
    )
    try:
        await _until(lambda: any("the read replica answers" in line for line in lines))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            api: Stub = pb_grpc.DecisionServiceStub(channel)
            first = (await api.LogDecision(signal(request_id="replica-serve-1"), timeout=5)).decision
            await replication.caught_up()
            await replication.pause_replay()
            second = (await api.LogDecision(signal(request_id="replica-serve-2"), timeout=5)).decision
            assert await _listed(api) == [first.id]
            assert (await api.GetDecision(pb.GetDecisionRequest(id=second.id), timeout=5)).decision == second
    finally:
        process.terminate()
        exit_code = await asyncio.to_thread(process.wait, 30)
    assert exit_code == 0, "".join(lines)
    assert any("go to the read replica at" in line for line in lines)


def test_the_read_url_comes_from_the_environment_and_its_password_never_shows() -> None:
    settings = Settings.from_env(
        {
            "SIGMA_DATABASE_URL": "postgresql://sigma:primary-pw@db1:5432/sigma",
            "SIGMA_DATABASE_READ_URL": "postgresql://sigma:replica-pw@db2:5432/sigma",
        }
    )
    assert settings.database_read_url == "postgresql://sigma:replica-pw@db2:5432/sigma"
    assert "postgresql://sigma:***@db2:5432/sigma" in repr(settings)
    assert "replica-pw" not in repr(settings)
    assert Settings.from_env({}).database_read_url is None
    with pytest.raises(ConfigError, match="SIGMA_DATABASE_READ_URL must be a postgresql:// URL") as caught:
        Settings.from_env({"SIGMA_DATABASE_READ_URL": "mysql://sigma:replica-pw@db2/sigma"})
    assert "replica-pw" not in str(caught.value)
