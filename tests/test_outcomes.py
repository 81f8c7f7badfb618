"""RecordOutcome: only signals, once, idempotent by value, validated, exact decimals."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import pytest
from google.protobuf import timestamp_pb2

from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as pb
from tests.helpers import Stub, error_reason, expect_error, invalid_fields, risk_reject, signal, skip, ts


def outcome(decision_id: str, pnl: str = "12.5", r: float = 1.25, **more: object) -> pb.RecordOutcomeRequest:
    return pb.RecordOutcomeRequest(decision_id=decision_id, outcome_pnl=pnl, outcome_r_multiple=r, **more)  # type: ignore[arg-type]


async def _stored_outcome(db: asyncpg.Pool, decision_id: str) -> tuple[object, ...]:
    row = await db.fetchrow(
        "SELECT outcome_pnl, outcome_r_multiple, outcome_closed_at FROM decision_logs WHERE id = $1::uuid",
        decision_id,
    )
    assert row is not None
    return tuple(row)


async def test_outcome_is_attached_to_a_signal(api: Stub) -> None:
    decision = (await api.LogDecision(signal())).decision
    assert not decision.HasField("outcome_pnl")
    before = datetime.now(UTC)
    updated = (await api.RecordOutcome(outcome(decision.id, "-0.00012345", -0.5))).decision
    after = datetime.now(UTC)
    assert updated.id == decision.id
    assert updated.outcome_pnl == "-0.00012345"
    assert updated.outcome_r_multiple == -0.5
    closed = updated.outcome_closed_at.ToDatetime(tzinfo=UTC)
    assert before - timedelta(seconds=1) <= closed <= after + timedelta(seconds=1)
    assert (await api.GetDecision(pb.GetDecisionRequest(id=decision.id))).decision == updated


async def test_explicit_close_time_and_rounding_to_four_decimals(api: Stub) -> None:
    decided = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    decision = (await api.LogDecision(signal(decided_at=ts(decided)))).decision
    closed = decided + timedelta(hours=3, microseconds=123456)
    updated = (
        await api.RecordOutcome(outcome(decision.id, "1234.56789012", 2.34567, outcome_closed_at=ts(closed)))
    ).decision
    assert updated.outcome_pnl == "1234.56789012"
    assert updated.outcome_r_multiple == 2.3457
    assert updated.outcome_closed_at.ToDatetime(tzinfo=UTC) == closed


async def test_repeating_the_same_outcome_is_a_no_op(api: Stub, clean_db: asyncpg.Pool) -> None:
    decision = (await api.LogDecision(signal())).decision
    first = (await api.RecordOutcome(outcome(decision.id, "10", 1.0))).decision
    stored = await _stored_outcome(clean_db, decision.id)
    # Same values, close time omitted: not a difference.
    again = (await api.RecordOutcome(outcome(decision.id, "10.00000000", 1.0))).decision
    assert again == first
    # Same values with the same close time given explicitly.
    explicit = (
        await api.RecordOutcome(outcome(decision.id, "10", 1.0, outcome_closed_at=first.outcome_closed_at))
    ).decision
    assert explicit == first
    assert await _stored_outcome(clean_db, decision.id) == stored


@pytest.mark.parametrize(
    ("pnl", "r", "closed_offset"),
    [("11", 1.0, None), ("10", 1.5, None), ("10", 1.0, timedelta(minutes=-5))],
    ids=["other pnl", "other r", "other close time"],
)
async def test_a_different_second_outcome_is_refused(
    api: Stub, clean_db: asyncpg.Pool, pnl: str, r: float, closed_offset: timedelta | None
) -> None:
    decision = (await api.LogDecision(signal(decided_at=ts(datetime.now(UTC) - timedelta(hours=1))))).decision
    first = (await api.RecordOutcome(outcome(decision.id, "10", 1.0))).decision
    stored = await _stored_outcome(clean_db, decision.id)
    more = {}
    if closed_offset is not None:
        more["outcome_closed_at"] = ts(first.outcome_closed_at.ToDatetime(tzinfo=UTC) + closed_offset)
    error = await expect_error(
        api.RecordOutcome(outcome(decision.id, pnl, r, **more)), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert error_reason(error) == "OUTCOME_ALREADY_RECORDED"
    assert await _stored_outcome(clean_db, decision.id) == stored


@pytest.mark.parametrize("make", [skip, risk_reject], ids=["skip", "risk_reject"])
async def test_only_signals_have_outcomes(
    api: Stub, clean_db: asyncpg.Pool, make: Callable[[], pb.LogDecisionRequest]
) -> None:
    decision = (await api.LogDecision(make())).decision
    error = await expect_error(api.RecordOutcome(outcome(decision.id)), grpc.StatusCode.FAILED_PRECONDITION)
    assert error_reason(error) == "NOT_A_SIGNAL"
    assert await _stored_outcome(clean_db, decision.id) == (None, None, None)


async def test_unknown_decision_is_not_found(api: Stub) -> None:
    error = await expect_error(
        api.RecordOutcome(outcome("5b1f5a4e-0000-4000-8000-000000000000")), grpc.StatusCode.NOT_FOUND
    )
    assert error_reason(error) == "DECISION_NOT_FOUND"


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"decision_id": "not-a-uuid"}, "decision_id"),
        ({"decision_id": ""}, "decision_id"),
        ({"outcome_pnl": ""}, "outcome_pnl"),
        ({"outcome_pnl": "1e3"}, "outcome_pnl"),
        ({"outcome_pnl": "+1"}, "outcome_pnl"),
        ({"outcome_pnl": "NaN"}, "outcome_pnl"),
        ({"outcome_pnl": "1.123456789"}, "outcome_pnl"),
        ({"outcome_pnl": "-1000000000000"}, "outcome_pnl"),
        ({"outcome_pnl": "1\x00"}, "outcome_pnl"),
        ({"outcome_r_multiple": float("nan")}, "outcome_r_multiple"),
        ({"outcome_r_multiple": float("inf")}, "outcome_r_multiple"),
        ({"outcome_r_multiple": 10000.0}, "outcome_r_multiple"),
        ({"outcome_r_multiple": -10000.0}, "outcome_r_multiple"),
        ({"outcome_closed_at": ts(datetime.now(UTC) + timedelta(days=1))}, "outcome_closed_at"),
        ({"outcome_closed_at": timestamp_pb2.Timestamp(seconds=253402300800)}, "outcome_closed_at"),
    ],
)
async def test_invalid_outcomes_change_nothing(
    api: Stub, clean_db: asyncpg.Pool, request_fields: dict[str, object], field: str
) -> None:
    decision = (await api.LogDecision(signal())).decision
    fields: dict[str, object] = {"decision_id": decision.id, "outcome_pnl": "1", "outcome_r_multiple": 1.0}
    fields.update(request_fields)
    violations = await invalid_fields(api.RecordOutcome(pb.RecordOutcomeRequest(**fields)))  # type: ignore[arg-type]
    assert list(violations) == [field]
    assert await _stored_outcome(clean_db, decision.id) == (None, None, None)


async def test_an_omitted_r_multiple_is_refused_not_stored_as_zero(api: Stub, clean_db: asyncpg.Pool) -> None:
    decision = (await api.LogDecision(signal())).decision
    request = pb.RecordOutcomeRequest(decision_id=decision.id, outcome_pnl="12.5")
    violations = await invalid_fields(api.RecordOutcome(request))
    assert violations == {"outcome_r_multiple": "is required: the realised R-multiple (0 for a breakeven)"}
    assert await _stored_outcome(clean_db, decision.id) == (None, None, None)
    # An explicit 0 is a breakeven R, and is stored.
    breakeven = (await api.RecordOutcome(outcome(decision.id, pnl="0", r=0.0))).decision
    assert breakeven.HasField("outcome_r_multiple") and breakeven.outcome_r_multiple == 0.0


async def test_a_close_time_ahead_of_the_server_by_more_than_five_seconds_is_refused(
    api: Stub, clean_db: asyncpg.Pool
) -> None:
    decision = (await api.LogDecision(signal())).decision
    ahead = datetime.now(UTC) + timedelta(seconds=30)
    violations = await invalid_fields(api.RecordOutcome(outcome(decision.id, outcome_closed_at=ts(ahead))))
    assert violations == {"outcome_closed_at": "must not be in the future (at most 5 seconds of clock skew)"}
    assert await _stored_outcome(clean_db, decision.id) == (None, None, None)
    # Within the skew (the server's clock reads later than this one): accepted as given.
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    closed = (await api.RecordOutcome(outcome(decision.id, outcome_closed_at=ts(soon)))).decision
    assert closed.outcome_closed_at.ToDatetime(tzinfo=UTC) == soon


async def test_close_before_the_decision_is_refused(api: Stub, clean_db: asyncpg.Pool) -> None:
    decided = datetime.now(UTC) - timedelta(hours=1)
    decision = (await api.LogDecision(signal(decided_at=ts(decided)))).decision
    violations = await invalid_fields(
        api.RecordOutcome(outcome(decision.id, outcome_closed_at=ts(decided - timedelta(seconds=1))))
    )
    assert list(violations) == ["outcome_closed_at"]
    assert "before the decision" in violations["outcome_closed_at"]
    assert await _stored_outcome(clean_db, decision.id) == (None, None, None)


async def test_concurrent_different_outcomes_store_exactly_one(api: Stub, clean_db: asyncpg.Pool) -> None:
    decision = (await api.LogDecision(signal())).decision
    results = await asyncio.gather(
        *(api.RecordOutcome(outcome(decision.id, str(i), 1.0)) for i in range(1, 11)), return_exceptions=True
    )
    winners = [r for r in results if isinstance(r, pb.RecordOutcomeResponse)]
    losers = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(winners) == 1
    assert len(losers) == 9
    assert {e.code() for e in losers} == {grpc.StatusCode.FAILED_PRECONDITION}
    pnl, _, _ = await _stored_outcome(clean_db, decision.id)
    assert format(pnl, "f") == winners[0].decision.outcome_pnl
