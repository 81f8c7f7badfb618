"""sigma_client (clients/python), the package hl-decide installs, against the real server.

Faults are injected with server interceptors around the real handlers (the
database is real too): nothing of the server is mocked.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import shutil
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import asyncpg
import grpc
import pytest
import sigma_client
from sigma_client import (
    AlreadyExistsError,
    DeadlineExceededError,
    DecisionType,
    Direction,
    ErrorReason,
    ExecutionStatus,
    FailedPreconditionError,
    Gate,
    InvalidArgumentError,
    NotFoundError,
    Outcome,
    RiskCheck,
    SigmaClient,
    SigmaError,
    UnavailableError,
    decision_pb2,
    execution_pb2,
)
from sigma_client._gen.sigma.v1 import errors_pb2
from sigma_client.errors import from_rpc_error

from sigma_grpc.app import RunningServer, start_server
from sigma_grpc.config import Settings
from sigma_grpc.storage.pool import create_pool
from tests.fake_hyperliquid import FakeHyperliquid

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]

CLIENT_DIR = Path(__file__).resolve().parent.parent / "clients" / "python"

# Short backoffs and attempts keep the retry tests fast.
FAST: dict[str, Any] = {"initial_backoff": 0.01, "max_backoff": 0.05, "attempt_timeout": 0.5}


def a_signal(**overrides: Any) -> dict[str, Any]:
    """log_decision's arguments for a valid BTC signal, in plain Python values."""
    fields: dict[str, Any] = {
        "symbol": "BTC",
        "direction": "long",
        "decision_type": "signal",
        "trader_count": 7,
        "agreement_pct": 0.8,
        "effective_k": 3.2,
        "gates": [Gate("supermajority", True, 0.8, 0.7)],
    }
    fields.update(overrides)
    return fields


# -- servers with faults ----------------------------------------------------------------------------


@dataclass
class Seen:
    """One call as the server saw it."""

    at: float  # time.monotonic() when it arrived
    request: Any
    metadata: dict[str, str | bytes]


Fault = Literal["none", "unavailable_before", "unavailable_after", "slow_after"]


@dataclass
class Faults(grpc.aio.ServerInterceptor):
    """Records the calls of `method`; the first `times` of them meet `fault`.

    - unavailable_before: UNAVAILABLE without running the handler (nothing is written);
    - unavailable_after: the real handler runs (its write commits), then UNAVAILABLE;
    - slow_after: the real handler runs, then the answer is held back `delay` seconds.
    """

    method: str
    fault: Fault = "none"
    times: int = 0
    delay: float = 0.0
    seen: list[Seen] = field(default_factory=list)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        if not str(handler_call_details.method).endswith(f"/{self.method}"):
            return handler
        inner: Any = handler.unary_unary

        async def faulty(request: Any, context: Any) -> Any:
            faulted = len(self.seen) < self.times
            metadata = dict(context.invocation_metadata() or ())
            self.seen.append(Seen(time.monotonic(), request, metadata))
            if faulted and self.fault == "unavailable_before":
                await context.abort(grpc.StatusCode.UNAVAILABLE, "injected: unavailable")
            response = await inner(request, context)
            if faulted and self.fault == "unavailable_after":
                await context.abort(grpc.StatusCode.UNAVAILABLE, "injected: connection lost after the write")
            if faulted and self.fault == "slow_after":
                await asyncio.sleep(self.delay)
            return response

        return grpc.unary_unary_rpc_method_handler(
            faulty,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


Starter = Callable[..., Awaitable[str]]


@pytest.fixture
async def start(database_url: str, clean_db: asyncpg.Pool) -> AsyncIterator[Starter]:
    """Start a server with these interceptors (and Settings overrides); returns its target."""
    started: list[tuple[RunningServer, asyncpg.Pool]] = []

    async def starter(*interceptors: grpc.aio.ServerInterceptor, port: int = 0, **settings: Any) -> str:
        pool = await create_pool(database_url, max_size=4)
        running = await start_server(
            pool,
            f"127.0.0.1:{port}",
            Settings(reconcile_interval_s=3600, **settings),
            interceptors=interceptors,
        )
        started.append((running, pool))
        return f"127.0.0.1:{running.port}"

    yield starter
    for running, pool in started:
        await running.stop(grace=1)
        await pool.close()


@pytest.fixture
async def client(server: RunningServer, clean_db: asyncpg.Pool) -> AsyncIterator[SigmaClient]:
    async with SigmaClient(f"127.0.0.1:{server.port}", timeout=5, **FAST) as sigma:
        yield sigma


@pytest.fixture
def fake() -> Iterator[FakeHyperliquid]:
    with FakeHyperliquid() as running:
        yield running
        assert running.internal_errors == []


async def count_decisions(db: asyncpg.Pool) -> int:
    count: int = await db.fetchval("SELECT count(*) FROM decision_logs")
    return count


# -- the whole flow ---------------------------------------------------------------------------------


async def test_the_decision_flow_with_plain_python_values(client: SigmaClient) -> None:
    decided = datetime.now(UTC) - timedelta(minutes=5)
    signal = await client.log_decision(
        **a_signal(
            avg_confidence=0.66,
            price_at_decision=Decimal("97123.5"),
            gates=[
                Gate("supermajority", True, 0.8, 0.7),
                {"name": "effective_k", "passed": True, "value": 3.2, "threshold": 2.0},
            ],
            decided_at=decided,
        )
    )
    assert not signal.replayed
    assert signal.decision.request_id == signal.request_id
    assert uuid.UUID(signal.request_id).version == 4  # generated for the call
    assert signal.decision.direction == decision_pb2.DIRECTION_LONG
    assert signal.decision.price_at_decision == "97123.50000000"
    assert signal.decision.avg_confidence == 0.66
    assert not signal.decision.HasField("ev_estimate")
    assert signal.decision.decided_at.ToDatetime(tzinfo=UTC) == decided

    reject = await client.log_decision(
        symbol="ETH",
        direction=Direction.NONE,
        decision_type=DecisionType.RISK_REJECT,
        trader_count=3,
        agreement_pct=0.7,
        effective_k=1.5,
        gates=[Gate("supermajority", True, 0.7, 0.6)],
        risk_checks=[RiskCheck("max_exposure", False, 0.2, 0.1)],
    )
    assert reject.decision.decision_type == decision_pb2.DECISION_TYPE_RISK_REJECT
    assert "max_exposure" in reject.decision.reasoning

    closed = await client.record_outcome(signal.decision.id, pnl=Decimal("-3.5"), r_multiple=-0.7)
    assert (closed.outcome_pnl, closed.outcome_r_multiple) == ("-3.50000000", -0.7)
    assert await client.get_decision(signal.decision.id) == closed
    assert await client.get_decision(uuid.UUID(signal.decision.id)) == closed
    # The same outcome again is a success: RecordOutcome is idempotent by value.
    assert await client.record_outcome(signal.decision.id, pnl="-3.5", r_multiple=-0.7) == closed

    page = await client.list_decisions(decision_type="signal", outcome=Outcome.LOSS)
    assert [d.id for d in page.decisions] == [signal.decision.id]
    assert page.next_page_token == ""
    assert [d.id for d in (await client.list_decisions(symbol="ETH")).decisions] == [reject.decision.id]
    everything = [d.id async for d in client.iter_decisions(page_size=1)]
    assert everything == [reject.decision.id, signal.decision.id]
    recent = client.iter_decisions(start_time=decided + timedelta(seconds=1), page_size=1)
    assert [d.id async for d in recent] == [reject.decision.id]

    stats = await client.get_stats(days=1)
    assert (stats.totals.total_decisions, stats.totals.signal_count, stats.totals.loss_count) == (2, 1, 1)
    assert stats.totals.total_pnl == "-3.50000000"
    assert [(s.symbol, s.stats.total_decisions) for s in stats.by_symbol] == [("BTC", 1), ("ETH", 1)]
    assert (await client.get_stats(symbol="ETH")).totals.risk_reject_count == 1


async def test_the_execution_flow_in_dry_run_on_the_paper_account(
    start: Starter, fake: FakeHyperliquid, clean_db: asyncpg.Pool
) -> None:
    target = await start(hl_base_url=fake.base_url, hl_timeout_s=1)  # no key: the paper account
    async with SigmaClient(target, timeout=10, **FAST) as sigma:
        config = await sigma.get_execution_config()
        assert (config.enabled, config.hl_enabled, config.dry_run) == (False, False, True)

        updated = await sigma.update_execution_config(
            enabled=True, hl_enabled=True, dry_run=True, hl_max_leverage=2, actor="test-suite"
        )
        assert (updated.enabled, updated.hl_enabled, updated.dry_run, updated.hl_max_leverage) == (
            True,
            True,
            True,
            2,
        )
        assert updated.hl_max_position_pct == config.hl_max_position_pct  # not in the mask: unchanged
        assert await sigma.get_execution_config() == updated
        audit = await clean_db.fetch("SELECT field, note FROM execution_config_audit ORDER BY field")
        assert [(r["field"], r["note"]) for r in audit] == [
            ("enabled", "test-suite"),
            ("hl_enabled", "test-suite"),
            ("hl_max_leverage", "test-suite"),
        ]  # dry_run was already true: no change, no audit row

        signal = await sigma.log_decision(**a_signal(symbol="ETH", price_at_decision=1903.95))
        execution = await sigma.execute_signal(signal.decision.id)
        assert execution.status == execution_pb2.EXECUTION_STATUS_SIMULATED
        assert (execution.dry_run, execution.account_address) == (True, "")
        assert execution.fill_price == "1903.95000000"
        assert execution.decision_id == signal.decision.id
        # One execution per decision: asking again returns it.
        assert (await sigma.execute_signal(signal.decision.id)).id == execution.id

        assert await sigma.get_execution(execution.id) == execution
        same, history = await sigma.get_execution_history(execution.id)
        assert same == execution
        assert [(e.from_status, e.to_status, e.actor) for e in history] == [
            (
                execution_pb2.EXECUTION_STATUS_UNSPECIFIED,
                execution_pb2.EXECUTION_STATUS_PENDING,
                "execute_signal",
            ),
            (
                execution_pb2.EXECUTION_STATUS_PENDING,
                execution_pb2.EXECUTION_STATUS_SIMULATED,
                "execute_signal",
            ),
        ]
        listed = await sigma.list_executions(decision_id=signal.decision.id)
        assert [e.id for e in listed.executions] == [execution.id]
        assert [e.id async for e in sigma.iter_executions(status=ExecutionStatus.SIMULATED)] == [execution.id]
        assert (await sigma.list_executions(status="filled")).executions == []
    assert fake.exchange_requests() == []  # nothing signed


# -- retries keep one request_id ----------------------------------------------------------------------


async def test_unavailable_after_the_write_is_retried_with_the_same_request_id(
    start: Starter, clean_db: asyncpg.Pool
) -> None:
    faults = Faults("LogDecision", "unavailable_after", times=2)
    async with SigmaClient(await start(faults), timeout=5, **FAST) as sigma:
        logged = await sigma.log_decision(**a_signal())
    assert logged.attempts == 3
    assert [s.request.request_id for s in faults.seen] == [logged.request_id] * 3
    assert await count_decisions(clean_db) == 1
    assert logged.replayed  # the first attempt stored it; the last one found it
    assert logged.decision.request_id == logged.request_id


async def test_an_attempt_past_its_timeout_is_retried_with_the_same_request_id(
    start: Starter, clean_db: asyncpg.Pool
) -> None:
    faults = Faults("LogDecision", "slow_after", times=1, delay=2.0)
    target = await start(faults)
    async with SigmaClient(target, timeout=5, **{**FAST, "attempt_timeout": 0.3}) as sigma:
        logged = await sigma.log_decision(**a_signal(), request_id="hl-decide-buffered-7")
    assert logged.request_id == "hl-decide-buffered-7"
    assert logged.attempts == 2
    assert [s.request.request_id for s in faults.seen] == ["hl-decide-buffered-7"] * 2
    assert await count_decisions(clean_db) == 1
    assert logged.replayed


async def test_record_outcome_is_retried_after_the_write(start: Starter, clean_db: asyncpg.Pool) -> None:
    faults = Faults("RecordOutcome", "unavailable_after", times=1)
    async with SigmaClient(await start(faults), timeout=5, **FAST) as sigma:
        logged = await sigma.log_decision(**a_signal())
        closed = await sigma.record_outcome(logged.decision.id, pnl=12.5, r_multiple=1.25)
    assert len(faults.seen) == 2
    assert (closed.outcome_pnl, closed.outcome_r_multiple) == ("12.50000000", 1.25)


async def test_execute_signal_is_retried_and_still_executes_once(
    start: Starter, fake: FakeHyperliquid, clean_db: asyncpg.Pool
) -> None:
    faults = Faults("ExecuteSignal", "unavailable_after", times=1)
    target = await start(faults, hl_base_url=fake.base_url, hl_timeout_s=1)
    async with SigmaClient(target, timeout=10, **FAST) as sigma:
        await sigma.update_execution_config(enabled=True, hl_enabled=True, dry_run=True)
        signal = await sigma.log_decision(**a_signal(symbol="ETH"))
        execution = await sigma.execute_signal(signal.decision.id)
    assert len(faults.seen) == 2
    assert execution.status == execution_pb2.EXECUTION_STATUS_SIMULATED
    assert await clean_db.fetchval("SELECT count(*) FROM execution_logs") == 1


async def test_a_slow_read_is_waited_for_not_cut_at_the_attempt_timeout(start: Starter) -> None:
    """Only LogDecision and RecordOutcome cap their attempts; a read gets all the time left."""
    faults = Faults("GetStats", "slow_after", times=1, delay=0.5)
    async with SigmaClient(await start(faults), timeout=5, **{**FAST, "attempt_timeout": 0.2}) as sigma:
        stats = await sigma.get_stats()
    assert stats.totals.total_decisions == 0
    assert len(faults.seen) == 1


async def test_retries_stop_at_the_overall_deadline(start: Starter, clean_db: asyncpg.Pool) -> None:
    faults = Faults("LogDecision", "unavailable_before", times=1_000_000)
    target = await start(faults)
    timeout = 1.0
    async with SigmaClient(target, timeout=timeout, initial_backoff=0.02, max_backoff=0.1) as sigma:
        began = time.monotonic()
        with pytest.raises(UnavailableError) as caught:
            await sigma.log_decision(**a_signal())
        elapsed = time.monotonic() - began
    error = caught.value
    assert error.attempts == len(faults.seen) > 3
    # It kept trying until the deadline, and stopped there (generous margin for a loaded machine).
    assert faults.seen[-1].at - began > 0.6 * timeout
    assert elapsed < timeout + 0.75
    assert {s.request.request_id for s in faults.seen} == {error.request_id}
    assert error.code == grpc.StatusCode.UNAVAILABLE
    assert await count_decisions(clean_db) == 0


async def test_max_attempts_one_makes_exactly_one_attempt(start: Starter) -> None:
    faults = Faults("LogDecision", "unavailable_before", times=1_000_000)
    async with SigmaClient(await start(faults), max_attempts=1, **FAST) as sigma:
        with pytest.raises(UnavailableError) as caught:
            await sigma.log_decision(**a_signal())
    assert caught.value.attempts == 1
    assert len(faults.seen) == 1


async def test_max_attempts_bounds_the_retries(start: Starter) -> None:
    faults = Faults("GetDecision", "unavailable_before", times=1_000_000)
    async with SigmaClient(await start(faults), max_attempts=3, **FAST) as sigma:
        with pytest.raises(UnavailableError):
            await sigma.get_decision(str(uuid.uuid4()))
    assert len(faults.seen) == 3


async def test_errors_that_are_not_retryable_are_raised_at_once(start: Starter) -> None:
    faults = Faults("LogDecision")
    async with SigmaClient(await start(faults), **FAST) as sigma:
        with pytest.raises(InvalidArgumentError) as caught:
            await sigma.log_decision(**a_signal(agreement_pct=1.5))
    assert caught.value.attempts == 1
    assert len(faults.seen) == 1


async def test_deadline_exceeded_of_a_read_is_not_retried(start: Starter) -> None:
    faults = Faults("ListDecisions", "slow_after", times=1_000_000, delay=2.0)
    async with SigmaClient(await start(faults), timeout=0.5, **FAST) as sigma:
        with pytest.raises(DeadlineExceededError) as caught:
            await sigma.list_decisions()
    assert caught.value.attempts == 1
    assert len(faults.seen) == 1


# -- values -----------------------------------------------------------------------------------------


async def test_floats_convert_as_python_shows_them(client: SigmaClient) -> None:
    logged = await client.log_decision(**a_signal(price_at_decision=97123.5))
    assert logged.decision.price_at_decision == "97123.50000000"
    tiny = await client.log_decision(**a_signal(symbol="kPEPE", price_at_decision=1e-05))
    assert tiny.decision.price_at_decision == "0.00001000"
    closed = await client.record_outcome(logged.decision.id, pnl=0.1, r_multiple=0.05)
    assert closed.outcome_pnl == "0.10000000"
    exact = await client.log_decision(**a_signal(price_at_decision="97123.12345678"))
    assert exact.decision.price_at_decision == "97123.12345678"


@pytest.mark.parametrize(
    "price",
    [
        0.123456789,
        "97123.123456789",
        Decimal("1E-9"),
        0.1 + 0.2,
        float("nan"),
        float("inf"),
        True,
        "1,5",
        "1000000000000",  # 13 integer digits: more than DECIMAL(20,8) holds
        Decimal("1E+999999999"),  # refused at once, never written out digit by digit
    ],
)
async def test_bad_prices_are_refused_before_any_call(
    start: Starter, clean_db: asyncpg.Pool, price: object
) -> None:
    faults = Faults("LogDecision")
    async with SigmaClient(await start(faults), **FAST) as sigma:
        with pytest.raises(ValueError, match="price_at_decision"):
            await sigma.log_decision(**a_signal(price_at_decision=price))
        with pytest.raises(ValueError, match="pnl"):
            await sigma.record_outcome(str(uuid.uuid4()), pnl=price, r_multiple=1.0)  # type: ignore[arg-type]
    assert faults.seen == []
    assert await count_decisions(clean_db) == 0


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"direction": "up"}, "direction must be one of 'long', 'short', 'none'"),
        ({"decision_type": "buy"}, "decision_type must be one of"),
        ({"decided_at": datetime(2026, 1, 1)}, "decided_at must be timezone-aware"),
        ({"trader_count": 7.0}, "trader_count must be an int"),
        ({"agreement_pct": "0.8"}, "agreement_pct must be a number"),
        ({"agreement_pct": 10**400}, "agreement_pct must be a number a double can hold"),
        ({"gates": [Gate("supermajority", "yes", 0.8, 0.7)]}, r"gates\[0\].passed must be a bool"),  # type: ignore[arg-type]
        ({"gates": [{"name": "x", "pass": True}]}, r"gates\[0\] needs the keys"),
        ({"request_id": ""}, "request_id must be a non-empty str"),
        ({"timeout": 0}, "timeout must be a positive number"),
    ],
)
async def test_bad_values_are_refused_before_any_call(
    start: Starter, arguments: dict[str, Any], match: str
) -> None:
    faults = Faults("LogDecision")
    async with SigmaClient(await start(faults), **FAST) as sigma:
        with pytest.raises(ValueError, match=match):
            await sigma.log_decision(**a_signal(**arguments))
    assert faults.seen == []


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"target": ""}, "target"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
        ({"attempt_timeout": -1}, "attempt_timeout"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"max_attempts": 2.5}, "max_attempts"),
        ({"initial_backoff": 0}, "initial_backoff"),
        ({"initial_backoff": 1, "max_backoff": 0.5}, "max_backoff"),
        ({"backoff_multiplier": 0.5}, "backoff_multiplier"),
        ({"wait_for_ready": "yes"}, "wait_for_ready"),
        ({"metadata": "authorization: x"}, "metadata"),
        ({"metadata": [("authorization",)]}, "metadata"),
        ({"credentials": "tls"}, "credentials"),
        ({"interceptors": [object()]}, "interceptors"),
    ],
)
async def test_constructor_arguments_are_checked(arguments: dict[str, Any], match: str) -> None:
    arguments = {"target": "127.0.0.1:1", **arguments}
    with pytest.raises(ValueError, match=match):
        SigmaClient(**arguments)


async def test_max_attempts_one_and_no_attempt_timeout_are_valid() -> None:
    async with SigmaClient("127.0.0.1:1", max_attempts=1, attempt_timeout=None, backoff_multiplier=1):
        pass


async def test_update_execution_config_needs_a_value_and_checks_types(client: SigmaClient) -> None:
    with pytest.raises(ValueError, match="at least one setting"):
        await client.update_execution_config(actor="someone")
    with pytest.raises(ValueError, match="dry_run must be a bool"):
        await client.update_execution_config(dry_run=1)  # type: ignore[arg-type]


def test_update_execution_config_takes_every_setting_of_the_contract() -> None:
    settings = {f.name for f in execution_pb2.ExecutionConfig.DESCRIPTOR.fields} - {"updated_at"}
    parameters = set(inspect.signature(SigmaClient.update_execution_config).parameters)
    assert parameters - {"self", "actor", "timeout", "metadata", "wait_for_ready"} == settings


def test_the_client_enums_are_the_contract_enums() -> None:
    def names(wrapper: Any, prefix: str) -> set[str]:
        return {k.removeprefix(prefix).lower() for k in wrapper.keys() if not k.endswith("UNSPECIFIED")}  # noqa: SIM118

    assert {d.value for d in Direction} == names(decision_pb2.Direction, "DIRECTION_")
    assert {d.value for d in DecisionType} == names(decision_pb2.DecisionType, "DECISION_TYPE_")
    assert {o.value for o in Outcome} == names(decision_pb2.Outcome, "OUTCOME_")
    assert {s.value for s in ExecutionStatus} == names(execution_pb2.ExecutionStatus, "EXECUTION_STATUS_")
    assert {b.value for b in sigma_client.BucketWidth} == names(decision_pb2.BucketWidth, "BUCKET_WIDTH_")
    reasons = {r.value.lower() for r in ErrorReason}
    assert reasons == names(errors_pb2.ErrorReason, "ERROR_REASON_")


# -- typed errors -----------------------------------------------------------------------------------


async def test_invalid_argument_carries_its_reason_and_field_violations(client: SigmaClient) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await client.log_decision(**a_signal(agreement_pct=1.5, effective_k=-1), request_id="rid-1")
    error = caught.value
    assert isinstance(error, SigmaError)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.request_id == "rid-1"  # the caller may retry later with the same id
    assert {f for f, _ in error.field_violations} >= {"agreement_pct", "effective_k"}
    assert "agreement_pct" in error.violations
    assert error.message
    assert error.reason == ErrorReason.VALIDATION_FAILED


async def test_an_unknown_decision_is_not_found(client: SigmaClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        await client.get_decision(str(uuid.uuid4()))
    assert caught.value.code == grpc.StatusCode.NOT_FOUND
    assert caught.value.field_violations == ()
    assert caught.value.reason == "DECISION_NOT_FOUND"


async def test_an_outcome_of_a_skip_is_a_failed_precondition(client: SigmaClient) -> None:
    skip = await client.log_decision(
        **a_signal(decision_type="skip", direction="short", gates=[Gate("supermajority", False, 0.5, 0.7)])
    )
    with pytest.raises(FailedPreconditionError) as caught:
        await client.record_outcome(skip.decision.id, pnl="1", r_multiple=0.1)
    assert caught.value.reason == ErrorReason.NOT_A_SIGNAL


async def test_executing_while_disabled_is_a_failed_precondition(client: SigmaClient) -> None:
    signal = await client.log_decision(**a_signal())
    with pytest.raises(FailedPreconditionError) as caught:
        await client.execute_signal(signal.decision.id)
    assert caught.value.reason == ErrorReason.EXECUTION_DISABLED


async def test_dry_run_only_is_refused_while_execution_is_live(client: SigmaClient) -> None:
    signal = await client.log_decision(**a_signal())
    await client.update_execution_config(enabled=True, hl_enabled=True, dry_run=False)
    with pytest.raises(FailedPreconditionError) as caught:
        await client.execute_signal(signal.decision.id, dry_run_only=True)
    assert caught.value.reason == ErrorReason.DRY_RUN_REQUIRED


async def test_a_reused_request_id_with_other_content_already_exists(
    client: SigmaClient, clean_db: asyncpg.Pool
) -> None:
    first = await client.log_decision(**a_signal(), request_id="hl-decide-42")
    again = await client.log_decision(**a_signal(), request_id="hl-decide-42")
    assert (again.decision, again.replayed) == (first.decision, True)
    with pytest.raises(AlreadyExistsError) as caught:
        await client.log_decision(**a_signal(trader_count=8), request_id="hl-decide-42")
    assert caught.value.request_id == "hl-decide-42"
    assert caught.value.attempts == 1
    assert await count_decisions(clean_db) == 1
    assert caught.value.reason == ErrorReason.REQUEST_ID_REUSED


# -- connection options -----------------------------------------------------------------------------


async def test_metadata_and_user_agent_reach_the_server(start: Starter) -> None:
    faults = Faults("GetStats")
    target = await start(faults)
    async with SigmaClient(target, metadata=[("authorization", "Bearer t0k3n")], **FAST) as sigma:
        await sigma.get_stats(metadata=(("x-trace-id", "abc"),))
    seen = faults.seen[0].metadata
    assert (seen["authorization"], seen["x-trace-id"]) == ("Bearer t0k3n", "abc")
    assert str(seen["user-agent"]).startswith(f"sigma-grpc-client/{sigma_client.__version__} ")
    assert sigma_client.USER_AGENT == "sigma-grpc-client/1.3.0"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_unavailable_is_retried_until_the_server_is_up(start: Starter) -> None:
    port = _free_port()
    async with SigmaClient(f"127.0.0.1:{port}", timeout=10, **FAST) as sigma:
        call = asyncio.ensure_future(sigma.get_stats())
        await asyncio.sleep(0.3)
        assert not call.done()
        await start(port=port)
        assert (await call).totals.total_decisions == 0


async def test_wait_for_ready_waits_for_the_server_within_one_attempt(start: Starter) -> None:
    port = _free_port()
    async with SigmaClient(f"127.0.0.1:{port}", timeout=10, max_attempts=1, **FAST) as sigma:
        with pytest.raises(UnavailableError):
            await sigma.get_stats()  # not waiting: one attempt fails at once
        call = asyncio.ensure_future(sigma.get_stats(wait_for_ready=True))
        await asyncio.sleep(0.3)
        assert not call.done()
        await start(port=port)
        assert (await call).totals.total_decisions == 0


async def test_credentials_make_a_tls_channel(server: RunningServer) -> None:
    """The test server speaks plaintext only, so a TLS handshake with it fails: TLS was used."""
    credentials = grpc.ssl_channel_credentials()
    async with SigmaClient(f"127.0.0.1:{server.port}", credentials=credentials, max_attempts=1) as sigma:
        with pytest.raises(UnavailableError):
            await sigma.get_stats(timeout=5)


# -- the package alone ------------------------------------------------------------------------------


async def _run(*command: str | Path, cwd: Path, env: dict[str, str], timeout: float) -> str:
    """Run a command without blocking the event loop (the test server lives on it); its stdout."""
    process = await asyncio.create_subprocess_exec(
        *map(str, command),
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, f"{command} failed:\n{out.decode()}\n{err.decode()}"
    return out.decode()


INSPECT_VENV = """
import importlib.metadata as md, importlib.util, json, re

def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()

def requirement(text):
    name, _, marker = text.partition(";")
    return None if "extra" in marker else norm(re.split(r"[\\s<>=!~\\[(]", name.strip())[0])

installed = {norm(d.metadata["Name"]) for d in md.distributions()}
closure, todo = set(), ["sigma-grpc-client"]
while todo:
    name = todo.pop()
    if name in closure:
        continue
    closure.add(name)
    todo.extend(r for r in map(requirement, md.requires(name) or []) if r)
print(json.dumps({
    "installed": sorted(installed),
    "closure": sorted(closure),
    "sigma_grpc": importlib.util.find_spec("sigma_grpc") is not None,
    "client_file": importlib.util.find_spec("sigma_client").origin,
    "files": sorted(str(f) for f in md.files("sigma-grpc-client")),
}))
"""

USE_THE_CLIENT = """
import asyncio, json, sys
from sigma_client import Gate, NotFoundError, SigmaClient

async def main():
    async with SigmaClient(sys.argv[1], timeout=10) as sigma:
        logged = await sigma.log_decision(
            symbol="BTC", direction="long", decision_type="signal", trader_count=5,
            agreement_pct=0.8, effective_k=2.5, gates=[Gate("supermajority", True, 0.8, 0.7)],
            price_at_decision=97123.5, request_id="from-a-fresh-venv",
        )
        again = await sigma.get_decision(logged.decision.id)
        try:
            await sigma.get_decision("00000000-0000-4000-8000-000000000000")
            missing = None
        except NotFoundError as error:
            missing = error.code.name
    print(json.dumps({"id": again.id, "price": again.price_at_decision, "request_id": again.request_id,
                      "missing": missing}))

asyncio.run(main())
"""


@pytest.mark.timeout(300)
async def test_the_package_installs_alone_and_talks_to_the_server(
    server: RunningServer, clean_db: asyncpg.Pool, tmp_path: Path
) -> None:
    # A copy, so that building the wheel leaves no build/ or egg-info in the working tree.
    source = tmp_path / "client-source"
    shutil.copytree(
        CLIENT_DIR, source, ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__")
    )
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    await _run(sys.executable, "-m", "venv", venv, cwd=tmp_path, env=env, timeout=120)
    await _run(python, "-m", "pip", "install", "--quiet", source, cwd=tmp_path, env=env, timeout=240)

    (tmp_path / "inspect_venv.py").write_text(INSPECT_VENV)
    found = json.loads(await _run(python, "inspect_venv.py", cwd=tmp_path, env=env, timeout=60))
    assert "sigma-grpc-client" in found["installed"]
    assert set(found["closure"]) >= {"grpcio", "grpcio-status", "protobuf", "googleapis-common-protos"}
    assert set(found["installed"]) - set(found["closure"]) <= {"pip", "setuptools", "wheel"}
    assert not {"sigma-grpc", "asyncpg", "hyperliquid-python-sdk", "pgserver"} & set(found["installed"])
    assert not found["sigma_grpc"]
    assert found["client_file"].startswith(str(venv))  # the installed copy, not the source tree
    assert {"sigma_client/py.typed", "sigma_client/_gen/sigma/v1/decision_service_pb2.pyi"} <= set(
        found["files"]
    )
    assert "sigma_client/_gen/sigma/v1/execution_service_pb2_grpc.pyi" in found["files"]

    (tmp_path / "use_the_client.py").write_text(USE_THE_CLIENT)
    target = f"127.0.0.1:{server.port}"
    result = json.loads(await _run(python, "use_the_client.py", target, cwd=tmp_path, env=env, timeout=60))
    assert result["price"] == "97123.50000000"
    assert result["request_id"] == "from-a-fresh-venv"
    assert result["missing"] == "NOT_FOUND"
    stored = await clean_db.fetchval(
        "SELECT request_id FROM decision_logs WHERE id = $1", uuid.UUID(result["id"])
    )
    assert stored == "from-a-fresh-venv"


def test_a_reason_from_another_error_domain_is_not_taken_for_sigmas() -> None:
    """A proxy or another service may add its own ErrorInfo: only domain sigma.v1 names an ErrorReason."""
    from google.protobuf import any_pb2
    from google.rpc import error_details_pb2, status_pb2

    def failed_call(domain: str) -> grpc.aio.AioRpcError:
        info = any_pb2.Any()
        info.Pack(error_details_pb2.ErrorInfo(reason="DECISION_NOT_FOUND", domain=domain))
        status = status_pb2.Status(code=grpc.StatusCode.NOT_FOUND.value[0], message="no", details=[info])
        trailers = grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString()))
        return grpc.aio.AioRpcError(grpc.StatusCode.NOT_FOUND, grpc.aio.Metadata(), trailers, details="no")

    assert from_rpc_error(failed_call("sigma.v1")).reason == ErrorReason.DECISION_NOT_FOUND
    assert from_rpc_error(failed_call("envoy.example")).reason is None


async def test_a_page_of_decisions_at_the_contracts_limits_is_received(
    client: SigmaClient, clean_db: asyncpg.Pool
) -> None:
    """500 decisions with 64 gates of 64-character names: several MB, above gRPC's default 4 MB."""
    gates = [
        {"name": f"g{i:02d}".ljust(64, "x"), "passed": True, "value": 0.5, "threshold": 0.5}
        for i in range(64)
    ]
    await clean_db.execute(
        """
        INSERT INTO decision_logs (symbol, direction, decision_type, trader_count, agreement_pct, effective_k,
                                   gates, risk_checks, reasoning)
        SELECT 'BTC', 'long', 'signal', 5, 0.8, 3.0, $1::jsonb, $1::jsonb, repeat('r', 400)
        FROM generate_series(1, 500)
        """,
        gates,
    )
    page = await client.list_decisions(page_size=500)
    assert len(page.decisions) == 500


# -- signal quality and gate analytics --------------------------------------------------------------


async def test_signal_quality_and_gate_analytics(client: SigmaClient) -> None:
    now = datetime.now(UTC)
    strong = [1.5, -1.0, 2.0, 0.5]  # agreement 0.85: three wins, one loss
    weak = [-0.5, -1.0]  # agreement 0.65: two losses
    decisions: list[sigma_client.DecisionFields] = []
    for i, pct in enumerate([0.85] * len(strong) + [0.65] * len(weak) + [0.9]):  # the last stays open
        decisions.append(
            {
                **a_signal(agreement_pct=pct, trader_count=4 + i, effective_k=2.5),  # type: ignore[typeddict-item]
                "gates": [Gate("supermajority", True, pct, 0.7), Gate("effective_k", True, 2.5, 2.0)],
                "decided_at": now - timedelta(hours=3, minutes=i),
            }
        )
    skips = [
        [Gate("supermajority", False, 0.65, 0.7), Gate("effective_k", True, 3.0, 2.0)],
        [Gate("supermajority", False, 0.6, 0.7), Gate("effective_k", False, 1.5, 2.0)],
        [Gate("supermajority", False, 0.69, 0.7), Gate("effective_k", False, 1.8, 2.0)],
    ]
    for failed in skips:
        decisions.append(
            {**a_signal(decision_type="skip", direction="none", gates=failed), "decided_at": now}  # type: ignore[typeddict-item]
        )
    logged = await client.log_decisions(decisions)
    signals = [r for r in logged if isinstance(r, sigma_client.LoggedDecision)][: len(strong) + len(weak)]
    for result, r_multiple in zip(signals, strong + weak, strict=True):
        await client.record_outcome(
            result.decision.id, pnl=r_multiple * 10, r_multiple=r_multiple, closed_at=now - timedelta(hours=1)
        )

    quality = await client.get_signal_quality(
        days=2,
        bucket_width="HOUR",  # by name, case-insensitive
        agreement_edges=[0.6, 0.8, 1],
        effective_k_edges=(1, 2.0, 5),
        trader_count_edges=[1, 100],
    )
    assert quality.days == 2 and quality.bucket_width == decision_pb2.BUCKET_WIDTH_HOUR
    assert list(quality.by_agreement.edges) == [0.6, 0.8, 1.0]
    assert list(quality.by_effective_k.edges) == [1.0, 2.0, 5.0]
    agreement = [(b.lower, b.upper, b.out_of_range, b.closed, b.wins) for b in quality.by_agreement.buckets]
    assert agreement[:2] == [(0.6, 0.8, False, 2, 0), (0.8, 1.0, False, 4, 3)]
    assert agreement[-1][2:] == (True, 0, 0)
    assert quality.by_agreement.buckets[1].win_rate == 0.75
    assert quality.by_agreement.buckets[1].avg_r == pytest.approx(0.75)
    assert [b.closed for b in quality.by_effective_k.buckets][:2] == [0, 6]
    assert quality.by_trader_count.buckets[0].closed == 6
    assert sum(b.signals for b in quality.time_series) == 7
    assert sum(b.closed for b in quality.time_series) == 6
    assert quality.time_series[-1].cumulative_r == pytest.approx(sum(strong + weak))
    assert all(b.insufficient_data for b in quality.by_agreement.buckets)  # fewer than min_closed (10)
    assert quality.min_closed == 10

    by_default = await client.get_signal_quality()
    assert by_default.days == 7 and by_default.bucket_width == decision_pb2.BUCKET_WIDTH_DAY
    assert list(by_default.by_agreement.edges) == [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    weekly = await client.get_signal_quality(bucket_width=sigma_client.BucketWidth.WEEK, symbol="BTC")
    assert weekly.bucket_width == decision_pb2.BUCKET_WIDTH_WEEK
    assert (await client.get_signal_quality(bucket_width=decision_pb2.BUCKET_WIDTH_HOUR)).bucket_width == (
        decision_pb2.BUCKET_WIDTH_HOUR
    )
    assert sum(b.signals for b in (await client.get_signal_quality(symbol="ETH")).time_series) == 0

    analytics = await client.get_gate_analytics(days=2, top_combinations=1)
    assert analytics.days == 2 and analytics.skips_with_failures == 3
    gates = {g.name: g for g in analytics.gates}
    assert [g.name for g in analytics.gates] == ["supermajority", "effective_k"]  # most failures first
    majority, k = gates["supermajority"], gates["effective_k"]
    assert (majority.evaluated, majority.failed, majority.only_failure) == (10, 3, 1)
    assert (k.evaluated, k.failed, k.only_failure) == (10, 2, 0)
    assert majority.failure_rate == pytest.approx(0.3)
    assert majority.direction == k.direction == decision_pb2.GATE_DIRECTION_MIN
    assert sum(b.count for b in majority.near_misses) == 3
    # |0.69 - 0.7| / 0.7 = 0.014: the near miss of the bin [0.01, 0.02).
    assert [b.count for b in majority.near_misses if b.lower == 0.01] == [1]
    assert [(list(c.gates), c.count) for c in analytics.failed_together] == [
        (["effective_k", "supermajority"], 2)
    ]
    assert len((await client.get_gate_analytics()).failed_together) == 2
    assert list((await client.get_gate_analytics(symbol="ETH")).gates) == []


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"bucket_width": "month"}, "bucket_width must be one of 'hour', 'day', 'week', got 'month'"),
        ({"bucket_width": 0}, "bucket_width must be one of"),
        ({"bucket_width": 9}, "bucket_width must be one of"),
        ({"agreement_edges": "0.5,0.6"}, "agreement_edges must be a sequence"),
        ({"effective_k_edges": [1, "2"]}, r"effective_k_edges\[1\] must be a number"),
        ({"trader_count_edges": [1, True]}, r"trader_count_edges\[1\] must be a number"),
        ({"days": 7.0}, "days must be an int"),
        ({"symbol": b"BTC"}, "symbol must be a str"),
        ({"timeout": -1}, "timeout must be a positive number"),
    ],
)
async def test_bad_signal_quality_arguments_are_refused_before_any_call(
    start: Starter, arguments: dict[str, Any], match: str
) -> None:
    faults = Faults("GetSignalQuality")
    async with SigmaClient(await start(faults), **FAST) as sigma:
        with pytest.raises(ValueError, match=match):
            await sigma.get_signal_quality(**arguments)
    assert faults.seen == []


async def test_bad_gate_analytics_arguments_are_refused_before_any_call(start: Starter) -> None:
    faults = Faults("GetGateAnalytics")
    async with SigmaClient(await start(faults), **FAST) as sigma:
        with pytest.raises(ValueError, match="top_combinations must be an int"):
            await sigma.get_gate_analytics(top_combinations="3")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="days must be an int"):
            await sigma.get_gate_analytics(days=True)
    assert faults.seen == []


async def test_the_server_checks_the_ranges_of_the_analytics(client: SigmaClient) -> None:
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: client.get_signal_quality(agreement_edges=[0.9, 0.5]),  # not increasing
        lambda: client.get_signal_quality(trader_count_edges=[1]),  # one edge
        lambda: client.get_signal_quality(days=400),
        lambda: client.get_gate_analytics(top_combinations=101),
    ]
    for call in calls:
        with pytest.raises(InvalidArgumentError) as caught:
            await call()
        assert caught.value.reason == ErrorReason.VALIDATION_FAILED
        assert caught.value.attempts == 1


async def test_the_analytics_are_retried_as_reads(start: Starter) -> None:
    """UNAVAILABLE is retried; a slow answer is waited for, not cut at attempt_timeout; an attempt's
    DEADLINE_EXCEEDED is not retried: the same policy as get_stats."""
    quality = Faults("GetSignalQuality", "unavailable_before", times=2)
    gates = Faults("GetGateAnalytics", "slow_after", times=1, delay=0.5)
    target = await start(quality, gates)
    async with SigmaClient(target, timeout=5, **{**FAST, "attempt_timeout": 0.2}) as sigma:
        assert (await sigma.get_signal_quality(metadata=[("x-trace-id", "q1")])).days == 7
        assert (await sigma.get_gate_analytics(wait_for_ready=True)).skips_with_failures == 0
        gates.times, gates.delay = 2, 2.0  # the next call meets a hung server
        with pytest.raises(DeadlineExceededError) as caught:
            await sigma.get_gate_analytics(timeout=0.5)
    assert len(quality.seen) == 3 and quality.seen[-1].metadata["x-trace-id"] == "q1"
    assert len(gates.seen) == 2 and caught.value.attempts == 1
