"""sigma_client's batch logging: SigmaClient.log_decisions and DecisionBatcher, against the real server.

Calls are counted with a grpc client interceptor given to the client; the server is
real, its database too, and faults are a server interceptor around the real
handler (holding a call until the test lets it go, or losing the answer after the
write), a server that is not started yet, and a database behind a proxy that stops
relaying. Nothing of the batcher is mocked.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import socket
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import grpc
import pytest
from sigma_client import (
    AlreadyExistsError,
    BatcherClosed,
    BatcherFull,
    DecisionBatcher,
    DecisionFields,
    ErrorReason,
    Gate,
    InvalidArgumentError,
    LoggedDecision,
    PendingDecision,
    PermissionDeniedError,
    RiskCheck,
    SigmaClient,
    UnauthenticatedError,
    UnavailableError,
)

from sigma_grpc.app import RunningServer, start_server
from sigma_grpc.auth.policy import Role
from sigma_grpc.config import Settings
from sigma_grpc.storage.pool import create_pool
from tests.auth_env import TOKENS, write_tokens_file
from tests.db_proxy import FreezableProxy

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]

# Short backoffs and attempts keep the retry tests fast.
FAST: dict[str, Any] = {"initial_backoff": 0.01, "max_backoff": 0.05, "attempt_timeout": 0.5}
LOG_DECISIONS = "/sigma.v1.DecisionService/LogDecisions"


def a_decision(**overrides: Any) -> DecisionFields:
    """log_decision's arguments for a valid BTC signal."""
    fields: dict[str, Any] = {
        "symbol": "BTC",
        "direction": "long",
        "decision_type": "signal",
        "trader_count": 7,
        "agreement_pct": 0.8,
        "effective_k": 3.2,
        "gates": [Gate("supermajority", True, 0.8, 0.7)],
        "risk_checks": [RiskCheck("max_exposure", True, 0.05, 0.1)],
        "price_at_decision": 97123.5,
    }
    fields.update(overrides)
    return fields  # type: ignore[return-value]


async def stored(db: asyncpg.Pool) -> Counter[str]:
    """How many rows each request_id has."""
    rows = await db.fetch("SELECT request_id FROM decision_logs")
    return Counter(row["request_id"] for row in rows)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.02)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# -- observing the calls ------------------------------------------------------------------------------


class CountCalls(grpc.aio.UnaryUnaryClientInterceptor):
    """A client interceptor: the request ids of every LogDecisions attempt the client makes."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.times: list[float] = []  # time.monotonic() of each

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        method = client_call_details.method
        if (method.decode() if isinstance(method, bytes) else method) == LOG_DECISIONS:
            self.calls.append([d.request_id for d in request.decisions])
            self.times.append(time.monotonic())
        return await continuation(client_call_details, request)

    @property
    def sizes(self) -> list[int]:
        return [len(call) for call in self.calls]


@dataclass
class Gatekeeper(grpc.aio.ServerInterceptor):
    """Around the real LogDecisions handler: records each call's request ids; holds calls while
    `hold` is set (until `release()`); the first `lose_answers` calls are written, then answered
    UNAVAILABLE, as when the connection breaks after the commit."""

    lose_answers: int = 0
    held: bool = False
    arrived: list[list[str]] = field(default_factory=list)
    _open: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        if not self.held:
            self._open.set()

    def release(self) -> None:
        self._open.set()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None or handler_call_details.method != LOG_DECISIONS:
            return handler
        inner: Any = handler.unary_unary

        async def gated(request: Any, context: Any) -> Any:
            self.arrived.append([d.request_id for d in request.decisions])
            lose = len(self.arrived) <= self.lose_answers
            await self._open.wait()
            response = await inner(request, context)
            if lose:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "injected: connection lost after the write")
            return response

        return grpc.unary_unary_rpc_method_handler(
            gated,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class Servers:
    """Servers of the test's own on the session's database, stopped at the end of the test."""

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._running: list[tuple[RunningServer, asyncpg.Pool]] = []

    async def start(
        self,
        *interceptors: grpc.aio.ServerInterceptor,
        port: int = 0,
        database_url: str | None = None,
        **settings: Any,
    ) -> str:
        pool = await create_pool(database_url or self._database_url, max_size=4)
        running = await start_server(
            pool,
            f"127.0.0.1:{port}",
            Settings(reconcile_interval_s=3600, **settings),
            interceptors=interceptors,
        )
        self._running.append((running, pool))
        return f"127.0.0.1:{running.port}"

    async def stop_all(self) -> None:
        for running, pool in self._running:
            await running.stop(grace=1)
            await pool.close()
        self._running.clear()


@pytest.fixture
async def servers(database_url: str, clean_db: asyncpg.Pool) -> AsyncIterator[Servers]:
    started = Servers(database_url)
    yield started
    await started.stop_all()


@dataclass
class Errors:
    """An on_error that keeps what it is given."""

    seen: list[tuple[PendingDecision, Exception]] = field(default_factory=list)

    def __call__(self, pending: PendingDecision, error: Exception) -> None:
        self.seen.append((pending, error))

    @property
    def request_ids(self) -> list[str]:
        return [pending.request_id for pending, _ in self.seen]


def batcher_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("sigma-decision-batcher")]


# -- SigmaClient.log_decisions ------------------------------------------------------------------------


async def test_log_decisions_answers_each_decision_in_order_as_log_decision_would(
    server: RunningServer, clean_db: asyncpg.Pool
) -> None:
    counter = CountCalls()
    async with SigmaClient(f"127.0.0.1:{server.port}", interceptors=[counter], **FAST) as sigma:
        earlier = await sigma.log_decision(**a_decision(request_id="used-before"))
        results = await sigma.log_decisions(
            [
                a_decision(),
                a_decision(agreement_pct=1.5, effective_k=-1, request_id="bad-values"),
                a_decision(trader_count=9, request_id="used-before"),
                a_decision(request_id="used-before"),
                {
                    "symbol": "ETH",
                    "direction": "none",
                    "decision_type": "skip",
                    "trader_count": 3,
                    "agreement_pct": 0.5,
                    "effective_k": 1.0,
                    "gates": [{"name": "supermajority", "passed": False}],
                },
            ]
        )
    assert counter.sizes == [5]  # one LogDecisions call (log_decision's LogDecision is not counted)
    first, invalid, reused, replayed, skip = results
    assert isinstance(first, LoggedDecision) and not first.replayed
    assert uuid.UUID(first.request_id).version == 4  # given one, as log_decision does
    assert first.decision.request_id == first.request_id
    assert isinstance(invalid, InvalidArgumentError)
    assert invalid.reason == ErrorReason.VALIDATION_FAILED
    assert {"agreement_pct", "effective_k"} <= set(invalid.violations)  # named from the decision itself
    assert invalid.request_id == "bad-values"
    assert isinstance(reused, AlreadyExistsError) and reused.reason == ErrorReason.REQUEST_ID_REUSED
    assert reused.request_id == "used-before"
    assert isinstance(replayed, LoggedDecision) and replayed.replayed
    assert replayed.decision == earlier.decision
    assert isinstance(skip, LoggedDecision) and skip.decision.reasoning.startswith("Skipped")
    assert await stored(clean_db) == Counter({"used-before": 1, first.request_id: 1, skip.request_id: 1})


async def test_log_decisions_refuses_bad_values_before_any_call(server: RunningServer) -> None:
    counter = CountCalls()
    async with SigmaClient(f"127.0.0.1:{server.port}", interceptors=[counter], **FAST) as sigma:
        with pytest.raises(ValueError, match=r"decisions\[1\]: price_at_decision has more than 8 decimals"):
            await sigma.log_decisions([a_decision(), a_decision(price_at_decision=0.1 + 0.2)])
        with pytest.raises(ValueError, match=r"decisions\[0\]: unexpected field\(s\) 'symbl'"):
            await sigma.log_decisions([{**a_decision(), "symbl": "BTC"}])  # type: ignore[typeddict-unknown-key]
        with pytest.raises(ValueError, match=r"decisions\[0\]: missing required field\(s\) 'symbol'"):
            await sigma.log_decisions([{k: v for k, v in a_decision().items() if k != "symbol"}])  # type: ignore[list-item]
        for size in (0, 1001):
            with pytest.raises(ValueError, match="1 to 1000 decisions"):
                await sigma.log_decisions([a_decision()] * size)
    assert counter.calls == []


def test_decision_fields_are_log_decisions_per_decision_arguments() -> None:
    parameters = inspect.signature(SigmaClient.log_decision).parameters
    per_call = {"self", "timeout", "metadata", "wait_for_ready"}
    required = {n for n, p in parameters.items() if p.default is inspect.Parameter.empty} - per_call
    assert DecisionFields.__required_keys__ == required
    assert DecisionFields.__optional_keys__ == set(parameters) - per_call - required


# -- when a batch leaves --------------------------------------------------------------------------------


async def test_a_full_batch_leaves_at_once_and_the_rest_waits(
    server: RunningServer, clean_db: asyncpg.Pool
) -> None:
    counter = CountCalls()
    async with (
        SigmaClient(f"127.0.0.1:{server.port}", interceptors=[counter], **FAST) as sigma,
        DecisionBatcher(sigma, max_batch=50, max_delay=60) as batcher,
    ):
        futures = [batcher.log_decision_nowait(**a_decision(request_id=f"size-{i}")) for i in range(120)]
        # Two full batches leave without waiting a minute for max_delay...
        await asyncio.wait_for(asyncio.gather(*futures[:100]), 10)
        assert counter.sizes == [50, 50]
        assert [c[0] for c in counter.calls] == ["size-0", "size-50"]  # in the order queued
        assert len(await stored(clean_db)) == 100
        # ...and the 20 left wait for it.
        await asyncio.sleep(0.2)
        assert not any(f.done() for f in futures[100:])
        assert batcher.pending == 20
        await asyncio.wait_for(batcher.flush(), 10)
        assert counter.sizes == [50, 50, 20]
    results = [f.result() for f in futures]
    assert [r.request_id for r in results] == [f"size-{i}" for i in range(120)]
    assert all(r.decision.request_id == r.request_id for r in results)
    assert await stored(clean_db) == Counter({f"size-{i}": 1 for i in range(120)})


async def test_a_partial_batch_leaves_max_delay_after_its_first_decision(
    server: RunningServer, clean_db: asyncpg.Pool
) -> None:
    counter = CountCalls()
    async with (
        SigmaClient(f"127.0.0.1:{server.port}", interceptors=[counter], **FAST) as sigma,
        DecisionBatcher(sigma, max_batch=500, max_delay=0.6) as batcher,
    ):
        began = time.monotonic()
        first = batcher.log_decision_nowait(**a_decision())
        await asyncio.sleep(0.4)
        later = batcher.log_decision_nowait(**a_decision(symbol="ETH"))
        if time.monotonic() - began < 0.55:  # (a machine stalled that long proves nothing either way)
            assert counter.calls == []
        await asyncio.wait_for(asyncio.gather(first, later), 10)
    assert counter.sizes == [2]
    # Not before max_delay, and timed from the first decision: the second's would be 1.0 s.
    assert 0.6 <= counter.times[0] - began < 1.0
    assert len(await stored(clean_db)) == 2


async def test_batches_are_cut_under_the_servers_request_bound(
    server: RunningServer, clean_db: asyncpg.Pool
) -> None:
    """300 decisions at the contract's limits (64 gates, 64 risk checks with long names) are about
    3.5 MB: sent as one call the server would refuse them all (above its 4 MiB bound with room)."""
    gates = [Gate(f"g{i:02d}".ljust(64, "x"), True, 0.5, 0.5) for i in range(64)]
    checks = [RiskCheck(f"r{i:02d}".ljust(64, "x"), True, 0.5, 0.5) for i in range(64)]
    counter = CountCalls()
    errors = Errors()
    async with (
        SigmaClient(
            f"127.0.0.1:{server.port}", interceptors=[counter], timeout=30, attempt_timeout=20
        ) as sigma,
        DecisionBatcher(sigma, max_batch=1000, max_delay=60, on_error=errors) as batcher,
    ):
        for i in range(300):
            batcher.log_decision_nowait(**a_decision(request_id=f"big-{i}", gates=gates, risk_checks=checks))
        await asyncio.wait_for(batcher.flush(), 10)
    assert errors.seen == []
    assert len(counter.sizes) == 2 and sum(counter.sizes) == 300
    assert len(await stored(clean_db)) == 300


async def test_more_batches_may_be_in_flight_when_allowed(servers: Servers, clean_db: asyncpg.Pool) -> None:
    gate = Gatekeeper(held=True)
    target = await servers.start(gate)
    async with (
        SigmaClient(target, timeout=10, attempt_timeout=5) as sigma,
        DecisionBatcher(sigma, max_batch=10, max_delay=60, max_in_flight=2) as two,
    ):
        futures = [two.log_decision_nowait(**a_decision()) for _ in range(30)]
        # Two batches reach the held server; the third waits for one of them.
        await eventually(lambda: asyncio.sleep(0, len(gate.arrived) == 2))
        await asyncio.sleep(0.2)
        assert len(gate.arrived) == 2
        gate.release()
        await asyncio.wait_for(asyncio.gather(*futures), 10)
    assert [len(a) for a in gate.arrived] == [10, 10, 10]
    assert len(await stored(clean_db)) == 30


# -- back-pressure ---------------------------------------------------------------------------------------


async def test_a_full_queue_makes_producers_wait_or_refuses_and_drops_nothing(
    servers: Servers, clean_db: asyncpg.Pool
) -> None:
    """No server yet: the queue fills, log_decision waits, log_decision_nowait raises BatcherFull;
    when the server starts on that port, everything queued is stored, once."""
    port = free_port()
    async with (
        SigmaClient(f"127.0.0.1:{port}", timeout=1, **FAST) as sigma,
        DecisionBatcher(sigma, max_batch=2, max_delay=0.01, max_pending=4) as batcher,
    ):
        queued = [batcher.log_decision_nowait(**a_decision(request_id=f"queued-{i}")) for i in range(4)]
        assert batcher.pending == 4
        with pytest.raises(BatcherFull):
            batcher.log_decision_nowait(**a_decision(request_id="refused"))
        waiting = asyncio.ensure_future(batcher.log_decision(**a_decision(request_id="waited")))
        await asyncio.sleep(0.5)
        assert not waiting.done()  # waits for room...
        with pytest.raises(BatcherFull):  # ...and nowait may not take its place in the meantime
            batcher.log_decision_nowait(**a_decision(request_id="refused-too"))
        assert not any(f.done() for f in queued)  # still being retried, not failed

        await servers.start(port=port)
        waited = await asyncio.wait_for(waiting, 15)
        await asyncio.wait_for(batcher.flush(), 15)
        assert waited.result().request_id == "waited"
        assert all(f.result().decision.request_id == f"queued-{i}" for i, f in enumerate(queued))
    assert await stored(clean_db) == Counter({"waited": 1, **{f"queued-{i}": 1 for i in range(4)}})


# -- retries ----------------------------------------------------------------------------------------------


async def test_a_batch_whose_answer_was_lost_is_retried_with_the_same_request_ids(
    servers: Servers, clean_db: asyncpg.Pool
) -> None:
    gate = Gatekeeper(lose_answers=2)
    target = await servers.start(gate)
    errors = Errors()
    async with (
        # One attempt per call: the batcher's own retries are the ones tested here.
        SigmaClient(target, timeout=5, max_attempts=1, **FAST) as sigma,
        DecisionBatcher(sigma, max_batch=10, on_error=errors) as batcher,
    ):
        futures = [batcher.log_decision_nowait(**a_decision(symbol=f"S{i}")) for i in range(10)]
        results = await asyncio.wait_for(asyncio.gather(*futures), 10)
    ids = [r.request_id for r in results]
    assert gate.arrived == [ids, ids, ids]  # the same batch, the same ids, three times
    assert all(r.replayed and r.attempts == 3 for r in results)  # stored by the first attempt
    assert errors.seen == []
    assert await stored(clean_db) == Counter(dict.fromkeys(ids, 1))


async def test_a_database_outage_is_retried_through_and_stores_each_decision_once(
    servers: Servers, database_url: str, clean_db: asyncpg.Pool
) -> None:
    proxy = FreezableProxy(database_url)
    await proxy.start()
    try:
        target = await servers.start(database_url=proxy.url)
        errors = Errors()
        async with (
            SigmaClient(target, timeout=1, **FAST) as sigma,
            DecisionBatcher(sigma, max_batch=5, max_delay=0.01, on_error=errors) as batcher,
        ):
            before = batcher.log_decision_nowait(**a_decision(request_id="before"))
            await asyncio.wait_for(before, 10)
            proxy.freeze()  # the database stops answering: the server says DATABASE_UNAVAILABLE
            during = [batcher.log_decision_nowait(**a_decision(request_id=f"during-{i}")) for i in range(12)]
            await asyncio.sleep(1.5)  # more than the client's deadline: retried round after round
            assert not any(f.done() for f in during)
            proxy.thaw()
            await asyncio.wait_for(asyncio.gather(*during), 15)
        assert errors.seen == []
    finally:
        await servers.stop_all()
        await proxy.close()
    assert await stored(clean_db) == Counter({"before": 1, **{f"during-{i}": 1 for i in range(12)}})


async def test_retries_end_give_up_after_the_decision_was_queued(
    servers: Servers, clean_db: asyncpg.Pool
) -> None:
    port = free_port()
    errors = Errors()
    async with (
        SigmaClient(f"127.0.0.1:{port}", timeout=0.3, **FAST) as sigma,
        DecisionBatcher(sigma, max_batch=3, max_delay=0.01, give_up_after=0.5, on_error=errors) as batcher,
    ):
        began = time.monotonic()
        futures = [batcher.log_decision_nowait(**a_decision(request_id=f"lost-{i}")) for i in range(5)]
        done, _ = await asyncio.wait(futures, timeout=10)
        elapsed = time.monotonic() - began
        assert len(done) == 5
        assert batcher.pending == 0
    assert 0.5 <= elapsed < 5
    for i, future in enumerate(futures):
        error = future.exception()
        assert isinstance(error, UnavailableError) and error.attempts > 1
        assert error.request_id == f"lost-{i}"
    assert sorted(errors.request_ids) == [f"lost-{i}" for i in range(5)]  # once each
    assert [e for _, e in errors.seen] == [f.exception() for f in futures]


# -- refused decisions ------------------------------------------------------------------------------------


async def test_refused_decisions_go_to_on_error_once_and_the_others_are_stored(
    server: RunningServer, clean_db: asyncpg.Pool
) -> None:
    counter = CountCalls()
    errors = Errors()
    async with SigmaClient(f"127.0.0.1:{server.port}", interceptors=[counter], **FAST) as sigma:
        await sigma.log_decision(**a_decision(request_id="taken"))
        async with DecisionBatcher(sigma, max_delay=0.01, on_error=errors) as batcher:
            good = [batcher.log_decision_nowait(**a_decision(request_id=f"good-{i}")) for i in range(3)]
            invalid = batcher.log_decision_nowait(**a_decision(agreement_pct=1.5, request_id="invalid"))
            reused = batcher.log_decision_nowait(**a_decision(trader_count=3, request_id="taken"))
            # Checked in the background, where the request is built: the caller is not slowed down.
            unsendable = batcher.log_decision_nowait(
                **a_decision(price_at_decision=0.1 + 0.2, request_id="local")
            )
            more = batcher.log_decision_nowait(**a_decision(request_id="good-3"))
            await asyncio.wait_for(batcher.flush(), 10)
            await asyncio.sleep(0.2)  # nothing is retried after the flush either
    assert counter.sizes == [6]  # one batch, not retried: "local" never left
    assert sorted(errors.request_ids) == ["invalid", "local", "taken"]
    by_id = {pending.request_id: error for pending, error in errors.seen}
    assert (
        isinstance(by_id["invalid"], InvalidArgumentError) and "agreement_pct" in by_id["invalid"].violations
    )
    assert isinstance(by_id["taken"], AlreadyExistsError) and by_id["taken"].reason == "REQUEST_ID_REUSED"
    assert isinstance(by_id["local"], ValueError) and "price_at_decision" in str(by_id["local"])
    for future, request_id in ((invalid, "invalid"), (reused, "taken"), (unsendable, "local")):
        assert future.exception() is by_id[request_id]
        with pytest.raises(type(by_id[request_id])):
            await future
    assert all(not f.result().replayed for f in [*good, more])
    assert await stored(clean_db) == Counter({"taken": 1, "good-0": 1, "good-1": 1, "good-2": 1, "good-3": 1})


async def test_a_batch_refused_whole_goes_to_on_error_and_is_logged_without_the_token(
    servers: Servers, tmp_path: Path, clean_db: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    target = await servers.start(auth_tokens_file=write_tokens_file(tmp_path))
    counter = CountCalls()
    reader = TOKENS[Role.READER]
    async with SigmaClient(target, token=reader, interceptors=[counter], **FAST) as sigma:
        with caplog.at_level(logging.ERROR, logger="sigma_client.batcher"):
            async with DecisionBatcher(sigma, max_delay=0.01) as batcher:  # the default on_error
                futures = [
                    batcher.log_decision_nowait(**a_decision(request_id=f"denied-{i}")) for i in range(3)
                ]
                await asyncio.wait_for(batcher.flush(), 10)
                await asyncio.sleep(0.2)
    assert counter.sizes == [3]  # refused, not retried
    for i, future in enumerate(futures):
        error = future.exception()
        assert isinstance(error, PermissionDeniedError) and error.reason == ErrorReason.ROLE_NOT_ALLOWED
        assert error.request_id == f"denied-{i}"
    logged = [r for r in caplog.records if r.name == "sigma_client.batcher"]
    assert len(logged) == 3
    assert all(r.levelno == logging.ERROR for r in logged)
    assert all(
        f"denied-{i}" in r.getMessage() and "PERMISSION_DENIED" in r.getMessage()
        for i, r in enumerate(logged)
    )
    assert not any(reader in r.getMessage() for r in caplog.records)

    errors = Errors()
    async with (
        SigmaClient(target, **FAST) as anonymous,
        DecisionBatcher(anonymous, max_delay=0.01, on_error=errors) as batcher,
    ):
        batcher.log_decision_nowait(**a_decision(request_id="anonymous"))
        await asyncio.wait_for(batcher.flush(), 10)
    assert [(p.request_id, type(e)) for p, e in errors.seen] == [("anonymous", UnauthenticatedError)]
    assert await stored(clean_db) == Counter()


async def test_the_caller_gets_type_errors_at_once_and_bad_options_are_refused(server: RunningServer) -> None:
    async with SigmaClient(f"127.0.0.1:{server.port}", **FAST) as sigma:
        async with DecisionBatcher(sigma) as batcher:
            with pytest.raises(TypeError, match="unexpected field"):
                batcher.log_decision_nowait(**{**a_decision(), "symbl": "BTC"})  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="missing required field"):
                batcher.log_decision_nowait(symbol="BTC")  # type: ignore[call-arg]
            with pytest.raises(ValueError, match="request_id"):
                batcher.log_decision_nowait(**a_decision(request_id=""))
            assert batcher.pending == 0
        for options in (
            {"max_batch": 1001},
            {"max_batch": 0},
            {"max_pending": 0},
            {"max_in_flight": 5},
            {"max_delay": -1},
            {"give_up_after": 0},
            {"on_error": "log"},
        ):
            with pytest.raises(ValueError, match=next(iter(options))):
                DecisionBatcher(sigma, **options)
    assert batcher_tasks() == []


# -- flush, close, cancellation ---------------------------------------------------------------------------


async def test_flush_waits_for_the_answer_and_decided_at_is_the_time_queued(
    servers: Servers, clean_db: asyncpg.Pool
) -> None:
    gate = Gatekeeper(held=True)
    target = await servers.start(gate)
    async with (
        SigmaClient(target, timeout=10, attempt_timeout=5) as sigma,
        DecisionBatcher(sigma, max_delay=60) as batcher,
    ):
        queued_at = datetime.now(UTC)
        futures = [batcher.log_decision_nowait(**a_decision()) for _ in range(5)]
        flushing = asyncio.ensure_future(batcher.flush())
        # flush() sends at once (max_delay is a minute)...
        await eventually(lambda: asyncio.sleep(0, len(gate.arrived) == 1))
        await asyncio.sleep(0.3)
        # ...but returns only once the server has answered.
        assert not flushing.done()
        assert not any(f.done() for f in futures)
        released_at = datetime.now(UTC)
        gate.release()
        await asyncio.wait_for(flushing, 10)
        assert all(f.done() for f in futures)
        assert batcher.pending == 0
    for future in futures:
        decided = future.result().decision.decided_at.ToDatetime(tzinfo=UTC)
        assert queued_at <= decided < released_at  # when it was queued, not when it was stored


async def test_close_flushes_stops_and_refuses_more(server: RunningServer, clean_db: asyncpg.Pool) -> None:
    async with SigmaClient(f"127.0.0.1:{server.port}", **FAST) as sigma:
        batcher = DecisionBatcher(sigma, max_delay=60)
        futures = [batcher.log_decision_nowait(**a_decision(request_id=f"close-{i}")) for i in range(7)]
        assert len(batcher_tasks()) == 1
        await asyncio.wait_for(batcher.close(), 10)
        assert all(f.done() and f.exception() is None for f in futures)
        assert len(await stored(clean_db)) == 7
        assert batcher_tasks() == []
        assert batcher.closed
        with pytest.raises(BatcherClosed):
            batcher.log_decision_nowait(**a_decision())
        with pytest.raises(BatcherClosed):
            await batcher.log_decision(**a_decision())
        await batcher.close()  # again: harmless
    assert len(await stored(clean_db)) == 7


async def test_close_with_a_timeout_hands_what_is_left_to_on_error(servers: Servers) -> None:
    port = free_port()
    errors = Errors()
    async with SigmaClient(f"127.0.0.1:{port}", timeout=1, **FAST) as sigma:
        batcher = DecisionBatcher(sigma, max_batch=2, max_delay=0.01, max_pending=3, on_error=errors)
        futures = [batcher.log_decision_nowait(**a_decision(request_id=f"left-{i}")) for i in range(3)]
        waiting = asyncio.ensure_future(batcher.log_decision(**a_decision(request_id="never-queued")))
        await asyncio.sleep(0.1)
        await asyncio.wait_for(batcher.close(timeout=0.3), 5)
        assert batcher_tasks() == []
    with pytest.raises(BatcherClosed):
        await waiting  # it was waiting for room: never queued, so not on_error's either
    assert sorted(errors.request_ids) == ["left-0", "left-1", "left-2"]
    assert all(isinstance(f.exception(), BatcherClosed) for f in futures)


async def test_a_cancelled_producer_leaves_nothing_behind(servers: Servers, clean_db: asyncpg.Pool) -> None:
    gate = Gatekeeper(held=True)
    target = await servers.start(gate)
    errors = Errors()
    async with (
        SigmaClient(target, timeout=10, attempt_timeout=5) as sigma,
        DecisionBatcher(sigma, max_batch=1, max_delay=0, max_pending=1, on_error=errors) as batcher,
    ):
        first = batcher.log_decision_nowait(**a_decision(request_id="first"))
        cancelled = asyncio.ensure_future(batcher.log_decision(**a_decision(request_id="cancelled")))
        woken = asyncio.ensure_future(batcher.log_decision(**a_decision(request_id="woken-then-cancelled")))
        last = asyncio.ensure_future(batcher.log_decision(**a_decision(request_id="last")))
        await asyncio.sleep(0.1)
        # Cancelled while waiting for room.
        cancelled.cancel()
        await asyncio.sleep(0.1)
        assert batcher.pending == 1
        # Cancelled after room was made for it, before it could run: the first decision's callbacks
        # run after the batcher has granted the room and before the granted producer resumes.
        first.add_done_callback(lambda _: woken.cancel())
        gate.release()
        queued = await asyncio.wait_for(last, 10)  # the room passed on to the next producer
        assert (await asyncio.wait_for(queued, 10)).request_id == "last"
        await asyncio.wait_for(batcher.flush(), 10)
        assert batcher.pending == 0
    assert cancelled.cancelled() and woken.cancelled()
    assert errors.seen == []
    assert await stored(clean_db) == Counter({"first": 1, "last": 1})
    assert [ids for ids in gate.arrived] == [["first"], ["last"]]


async def test_unawaited_futures_of_refused_decisions_are_not_reported_twice(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    """on_error reports them; asyncio must not add "exception was never retrieved" at collection."""
    # Garbage other tests left (asyncpg leaves a future behind when a connect is cancelled
    # during its SSL negotiation) is collected first, so what is counted below is this test's.
    gc.collect()
    await asyncio.sleep(0)
    caplog.clear()
    errors = Errors()
    async with (
        SigmaClient(f"127.0.0.1:{server.port}", **FAST) as sigma,
        DecisionBatcher(sigma, max_delay=0.01, on_error=errors) as batcher,
    ):
        batcher.log_decision_nowait(**a_decision(agreement_pct=1.5))
        await asyncio.wait_for(batcher.flush(), 10)
    assert len(errors.seen) == 1
    errors.seen.clear()  # the last reference to the failed future
    gc.collect()
    await asyncio.sleep(0)
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
