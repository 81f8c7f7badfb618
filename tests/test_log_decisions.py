"""LogDecisions: a batch answered decision by decision, stored in one statement, over a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import grpc
import httpx
import pytest

from sigma_grpc.app import RunningServer, start_server
from sigma_grpc.config import Settings
from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as pb
from sigma_grpc.storage.pool import create_pool
from tests.helpers import (
    Stub,
    gate,
    invalid_fields,
    risk,
    risk_reject,
    signal,
    skip,
    status_reason,
    status_violations,
    ts,
)

SYMBOL = "must be 1-16 ASCII letters or digits (e.g. BTC, kPEPE)"


def batch(*decisions: pb.LogDecisionRequest) -> pb.LogDecisionsRequest:
    return pb.LogDecisionsRequest(decisions=decisions)


def logged(result: pb.LogDecisionResult) -> pb.LogDecisionResponse:
    assert result.WhichOneof("result") == "logged", result
    return result.logged


def refused(result: pb.LogDecisionResult) -> tuple[grpc.StatusCode, str]:
    assert result.WhichOneof("result") == "error", result
    code = next(c for c in grpc.StatusCode if c.value[0] == result.error.code)
    return code, status_reason(result.error)


async def count_rows(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM decision_logs"))


def echo_request(request_id: str, **overrides: object) -> pb.LogDecisionRequest:
    """A request using every field, optional ones included."""
    fields: dict[str, object] = {
        "symbol": "kPEPE",
        "direction": pb.DIRECTION_SHORT,
        "decision_type": pb.DECISION_TYPE_SIGNAL,
        "trader_count": 9,
        "agreement_pct": 0.8125,
        "effective_k": 4.25,
        "avg_confidence": 0.6543,
        "ev_estimate": -1.2345,
        "price_at_decision": "0.00012345",
        "gates": [gate("supermajority", True, 0.8125, 0.7), gate("freshness", True, None, 30.0)],
        "risk_checks": [risk("max_exposure", True, 0.05, 0.1), risk("daily_loss", True)],
        "request_id": request_id,
        "decided_at": ts(datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)),
    }
    fields.update(overrides)
    return pb.LogDecisionRequest(**fields)  # type: ignore[arg-type]


async def test_a_batch_stores_what_log_decision_would_in_one_statement(
    api: Stub, clean_db: asyncpg.Pool
) -> None:
    single = (await api.LogDecision(echo_request("single"))).decision
    requests = [
        echo_request("in-batch"),
        skip(symbol="ETH"),
        risk_reject(symbol="SOL"),
        signal(),  # no request_id, no optional field
        echo_request("in-batch-no-time", decided_at=None, avg_confidence=None),
    ]
    results = (await api.LogDecisions(batch(*requests))).results

    assert len(results) == len(requests)
    answers = [logged(r) for r in results]
    assert not any(a.replayed for a in answers)
    # The same decision as LogDecision stores, field by field (ids and receipt times aside).
    batched = pb.Decision()
    batched.CopyFrom(answers[0].decision)
    for field in ("id", "request_id", "created_at"):
        single.ClearField(field)
        batched.ClearField(field)
    assert batched == single
    assert [a.decision.symbol for a in answers] == ["kPEPE", "ETH", "SOL", "BTC", "kPEPE"]
    assert answers[1].decision.reasoning.startswith("Skipped")
    assert not answers[4].decision.HasField("avg_confidence")
    # An unset decided_at is the server's time, as for LogDecision.
    assert answers[4].decision.decided_at.ToDatetime(tzinfo=UTC).year >= 2026
    for answer in answers:
        fetched = await api.GetDecision(pb.GetDecisionRequest(id=answer.decision.id))
        assert fetched.decision == answer.decision
    # One statement: every row of the batch has that statement's transaction time.
    created = await clean_db.fetch(
        "SELECT DISTINCT created_at FROM decision_logs WHERE id = ANY($1)",
        [uuid.UUID(a.decision.id) for a in answers],
    )
    assert len(created) == 1
    assert await count_rows(clean_db) == 6


async def test_an_invalid_decision_is_refused_alone_with_its_violations(
    api: Stub, clean_db: asyncpg.Pool
) -> None:
    results = (
        await api.LogDecisions(
            batch(signal(request_id="a"), signal(symbol="BT-C", request_id="b"), skip(request_id="c"))
        )
    ).results

    assert logged(results[0]).decision.request_id == "a"
    assert refused(results[1]) == (grpc.StatusCode.INVALID_ARGUMENT, "VALIDATION_FAILED")
    # Named from the decision itself, as LogDecision names them.
    assert status_violations(results[1].error) == {"symbol": SYMBOL}
    assert "symbol" in results[1].error.message
    assert logged(results[2]).decision.request_id == "c"
    stored = await clean_db.fetch("SELECT request_id FROM decision_logs ORDER BY request_id")
    assert [r["request_id"] for r in stored] == ["a", "c"]


async def test_retrying_a_batch_replays_every_decision_and_writes_nothing(
    api: Stub, clean_db: asyncpg.Pool
) -> None:
    request = batch(*(signal(request_id=f"retry-{i}", symbol=f"S{i}") for i in range(20)))
    first = [logged(r) for r in (await api.LogDecisions(request)).results]
    again = [logged(r) for r in (await api.LogDecisions(request)).results]

    assert [a.replayed for a in first] == [False] * 20
    assert [a.replayed for a in again] == [True] * 20
    assert [a.decision for a in again] == [a.decision for a in first]
    assert await count_rows(clean_db) == 20


async def test_a_request_id_twice_in_one_batch_is_a_replay_or_a_reuse(
    api: Stub, clean_db: asyncpg.Pool
) -> None:
    results = (
        await api.LogDecisions(
            batch(
                signal(request_id="twice"),
                signal(request_id="twice"),
                signal(request_id="twice", symbol="ETH"),
            )
        )
    ).results

    first, second = logged(results[0]), logged(results[1])
    assert (first.replayed, second.replayed) == (False, True)
    assert second.decision == first.decision
    assert refused(results[2]) == (grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED")
    assert first.decision.id in results[2].error.message
    assert await count_rows(clean_db) == 1


async def test_a_request_id_used_before_is_replayed_or_refused_per_decision(
    api: Stub, clean_db: asyncpg.Pool
) -> None:
    earlier = (await api.LogDecision(signal(request_id="earlier"))).decision
    results = (
        await api.LogDecisions(
            batch(signal(request_id="earlier"), signal(request_id="earlier", trader_count=3), skip())
        )
    ).results

    assert logged(results[0]).replayed and logged(results[0]).decision == earlier
    assert refused(results[1]) == (grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED")
    assert not logged(results[2]).replayed
    assert await count_rows(clean_db) == 2


async def test_an_invalid_first_use_of_a_request_id_leaves_it_to_the_next(
    api: Stub, clean_db: asyncpg.Pool
) -> None:
    results = (
        await api.LogDecisions(batch(signal(request_id="x", symbol=""), signal(request_id="x")))
    ).results

    assert refused(results[0])[1] == "VALIDATION_FAILED"
    assert not logged(results[1]).replayed
    assert await count_rows(clean_db) == 1


@pytest.mark.parametrize("size", [0, 1001])
async def test_an_empty_or_oversized_batch_is_refused_whole(
    api: Stub, clean_db: asyncpg.Pool, size: int
) -> None:
    fields = await invalid_fields(api.LogDecisions(batch(*(skip() for _ in range(size)))))

    assert fields == {"decisions": f"must hold 1 to 1000 decisions, not {size}"}
    assert await count_rows(clean_db) == 0


async def test_a_full_batch_of_a_thousand_is_stored(api: Stub, clean_db: asyncpg.Pool) -> None:
    results = (await api.LogDecisions(batch(*(skip(request_id=f"full-{i}") for i in range(1000))))).results

    assert [logged(r).decision.request_id for r in results] == [f"full-{i}" for i in range(1000)]
    assert await count_rows(clean_db) == 1000


async def test_concurrent_identical_batches_store_each_decision_once(
    api: Stub, clean_db: asyncpg.Pool
) -> None:
    request = batch(*(skip(request_id=f"race-{i}") for i in range(50)))
    answers = await asyncio.gather(*(api.LogDecisions(request) for _ in range(4)))

    assert await count_rows(clean_db) == 50
    for i in range(50):
        per_call = [logged(a.results[i]) for a in answers]
        assert sum(not p.replayed for p in per_call) == 1
        assert len({p.decision.id for p in per_call}) == 1


# -- over HTTP/JSON ----------------------------------------------------------------------------------------


@pytest.fixture
async def http(database_url: str, clean_db: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    pool = await create_pool(database_url, max_size=2)
    running: RunningServer = await start_server(
        pool, "127.0.0.1:0", Settings(reconcile_interval_s=3600), http_addr="127.0.0.1:0"
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.http_port}", timeout=30) as client:
            yield client
    finally:
        await running.stop(grace=1)
        await pool.close()


async def test_the_gateway_serves_batches_with_an_error_per_decision(
    http: httpx.AsyncClient, clean_db: asyncpg.Pool
) -> None:
    good = {
        "symbol": "BTC",
        "direction": "DIRECTION_LONG",
        "decisionType": "DECISION_TYPE_SIGNAL",
        "traderCount": 7,
        "agreementPct": 0.8,
        "effectiveK": 3.2,
        "gates": [{"name": "supermajority", "passed": True}],
        "requestId": "http-1",
    }
    response = await http.post("/v1/decisions:batch", json={"decisions": [good, {**good, "symbol": "B-TC"}]})

    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results[0]["logged"]["decision"]["requestId"] == "http-1"
    assert results[0]["logged"]["replayed"] is False
    error = results[1]["error"]
    assert error["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    types = {detail["@type"] for detail in error["details"]}
    assert types == {"type.googleapis.com/google.rpc.ErrorInfo", "type.googleapis.com/google.rpc.BadRequest"}
    assert await count_rows(clean_db) == 1
