"""LogDecision and GetDecision through the gRPC stub, over a real PostgreSQL."""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import pytest
from google.protobuf import timestamp_pb2

from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as pb
from tests.helpers import (
    Stub,
    error_reason,
    expect_error,
    gate,
    invalid_fields,
    risk,
    risk_reject,
    signal,
    skip,
    ts,
)

NAN = math.nan
INF = math.inf
# Timestamp seconds of 0001-01-01T00:00:00Z and 10000-01-01T00:00:00Z.
YEAR_1 = -62135596800
YEAR_10000 = 253402300800

FINITE = "must be a finite number (not NaN or Infinity)"
SYMBOL = "must be 1-16 ASCII letters or digits (e.g. BTC, kPEPE)"
CONTROL = "must not contain control characters"
PLAIN_PRICE = "must be a positive plain decimal with at most 8 decimals (e.g. 97123.5)"
CHECK_NAME = "must be 1-64 characters of letters, digits and _.:-"
REQUEST_ID = "must be 1-128 printable ASCII characters"
YEARS = "must be after 0001-01-01T00:00:00Z and before 9999-12-31T23:59:59.999999Z"


async def count_rows(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM decision_logs"))


def gates_with_name(index_3_name: str) -> list[pb.Gate]:
    passed = [gate("supermajority", True), gate("effective_k", True), gate("freshness", True)]
    return [*passed, gate(index_3_name, True)]


INVALID_REQUESTS = [
    # symbol
    pytest.param(signal(symbol=""), "symbol", SYMBOL, id="symbol-empty"),
    pytest.param(signal(symbol="A" * 17), "symbol", SYMBOL, id="symbol-17-chars"),
    pytest.param(signal(symbol="BT-C"), "symbol", SYMBOL, id="symbol-dash"),
    pytest.param(signal(symbol="BTC "), "symbol", SYMBOL, id="symbol-trailing-space"),
    pytest.param(signal(symbol="BTC١"), "symbol", SYMBOL, id="symbol-arabic-digit"),
    pytest.param(signal(symbol="BTÇ"), "symbol", SYMBOL, id="symbol-non-ascii-letter"),
    pytest.param(signal(symbol="BT\x00C"), "symbol", CONTROL, id="symbol-nul"),
    # enums
    pytest.param(signal(direction=pb.DIRECTION_UNSPECIFIED), "direction", None, id="direction-unspecified"),
    pytest.param(signal(direction=7), "direction", "unknown value 7", id="direction-unknown-number"),
    pytest.param(
        signal(decision_type=pb.DECISION_TYPE_UNSPECIFIED), "decision_type", None, id="type-unspecified"
    ),
    pytest.param(signal(decision_type=9), "decision_type", "unknown value 9", id="type-unknown-number"),
    # numbers
    pytest.param(signal(trader_count=-1), "trader_count", "must be 0 or more", id="trader-count-negative"),
    pytest.param(signal(agreement_pct=-0.0001), "agreement_pct", "must be between 0 and 1", id="agree-low"),
    pytest.param(signal(agreement_pct=1.0001), "agreement_pct", "must be between 0 and 1", id="agree-high"),
    pytest.param(signal(agreement_pct=NAN), "agreement_pct", FINITE, id="agree-nan"),
    pytest.param(signal(agreement_pct=INF), "agreement_pct", FINITE, id="agree-inf"),
    pytest.param(signal(agreement_pct=-INF), "agreement_pct", FINITE, id="agree-minus-inf"),
    pytest.param(signal(avg_confidence=-0.1), "avg_confidence", "must be between 0 and 1", id="conf-low"),
    pytest.param(signal(avg_confidence=1.5), "avg_confidence", "must be between 0 and 1", id="conf-high"),
    pytest.param(signal(avg_confidence=NAN), "avg_confidence", FINITE, id="conf-nan"),
    pytest.param(signal(effective_k=-0.001), "effective_k", "must be between 0 and 999.999", id="effk-low"),
    pytest.param(signal(effective_k=1000.0), "effective_k", "must be between 0 and 999.999", id="effk-high"),
    pytest.param(signal(effective_k=999.9991), "effective_k", None, id="effk-just-above"),
    pytest.param(signal(effective_k=INF), "effective_k", FINITE, id="effk-inf"),
    pytest.param(
        signal(ev_estimate=10000.0), "ev_estimate", "must be between -9999.9999 and 9999.9999", id="ev-hi"
    ),
    pytest.param(signal(ev_estimate=-9999.99991), "ev_estimate", None, id="ev-just-below"),
    pytest.param(signal(ev_estimate=NAN), "ev_estimate", FINITE, id="ev-nan"),
    pytest.param(signal(ev_estimate=-INF), "ev_estimate", FINITE, id="ev-minus-inf"),
    # price_at_decision
    *[
        pytest.param(signal(price_at_decision=text), "price_at_decision", PLAIN_PRICE, id=f"price-{text!r}")
        for text in ["1e5", "-1", "+1", " 1", "1 ", "NaN", "Infinity", "0.000000001", "1.", ".5", "", "1,5"]
    ],
    pytest.param(signal(price_at_decision="0"), "price_at_decision", "must be greater than 0", id="price-0"),
    pytest.param(signal(price_at_decision="0.00000000"), "price_at_decision", None, id="price-0.00000000"),
    pytest.param(
        signal(price_at_decision="1234567890123"),
        "price_at_decision",
        "must have at most 12 integer digits",
        id="price-13-digits",
    ),
    pytest.param(signal(price_at_decision="1\x00"), "price_at_decision", CONTROL, id="price-nul"),
    pytest.param(signal(price_at_decision="١٢"), "price_at_decision", PLAIN_PRICE, id="price-arabic-digits"),
    # gate and risk check numbers
    pytest.param(
        signal(gates=[gate("supermajority", True, 0.8, 0.7), gate("effective_k", True, NAN, 2.0)]),
        "gates[1].value",
        FINITE,
        id="gate-value-nan",
    ),
    pytest.param(
        signal(gates=[gate("supermajority", True, 0.8, 0.7), gate("effective_k", True, 3.0, INF)]),
        "gates[1].threshold",
        FINITE,
        id="gate-threshold-inf",
    ),
    pytest.param(
        risk_reject(risk_checks=[risk("max_exposure", False, 0.12, 0.1), risk("daily_loss", True, NAN)]),
        "risk_checks[1].value",
        FINITE,
        id="risk-value-nan",
    ),
    pytest.param(
        risk_reject(
            risk_checks=[risk("max_exposure", False, 0.12, 0.1), risk("daily_loss", True, 1.0, -INF)]
        ),
        "risk_checks[1].limit",
        FINITE,
        id="risk-limit-minus-inf",
    ),
    # gate and risk check names
    *[
        pytest.param(
            signal(gates=gates_with_name(name)), "gates[3].name", CHECK_NAME, id=f"gate-name-{label}"
        )
        for label, name in [("empty", ""), ("65-chars", "g" * 65), ("space", "a b"), ("slash", "a/b")]
    ],
    pytest.param(signal(gates=gates_with_name("a\x00b")), "gates[3].name", CONTROL, id="gate-name-nul"),
    *[
        pytest.param(
            risk_reject(risk_checks=[risk("max_exposure", False), risk(name, True)]),
            "risk_checks[1].name",
            CHECK_NAME,
            id=f"risk-name-{label}",
        )
        for label, name in [("empty", ""), ("65-chars", "r" * 65), ("space", "a b"), ("slash", "a/b")]
    ],
    # list sizes
    pytest.param(
        signal(gates=[gate(f"g{i}", True) for i in range(65)]),
        "gates",
        "must have at most 64 entries",
        id="65-gates",
    ),
    pytest.param(
        signal(risk_checks=[risk(f"r{i}", True) for i in range(65)]),
        "risk_checks",
        "must have at most 64 entries",
        id="65-risk-checks",
    ),
    # request_id
    pytest.param(signal(request_id="r" * 129), "request_id", REQUEST_ID, id="request-id-129"),
    pytest.param(signal(request_id=""), "request_id", REQUEST_ID, id="request-id-empty"),
    pytest.param(signal(request_id="req-é"), "request_id", REQUEST_ID, id="request-id-non-ascii"),
    pytest.param(signal(request_id="req\x01"), "request_id", REQUEST_ID, id="request-id-control"),
    pytest.param(signal(request_id="req\n"), "request_id", REQUEST_ID, id="request-id-newline"),
    pytest.param(signal(request_id="req\x7f"), "request_id", REQUEST_ID, id="request-id-del"),
    # consistency of the decision
    pytest.param(
        signal(direction=pb.DIRECTION_NONE),
        "direction",
        "a SIGNAL needs DIRECTION_LONG or DIRECTION_SHORT",
        id="signal-direction-none",
    ),
    pytest.param(
        signal(gates=[gate("supermajority", True), gate("effective_k", False), gate("freshness", True)]),
        "gates[1].passed",
        "a SIGNAL needs every gate passed",
        id="signal-failed-gate",
    ),
    pytest.param(
        skip(gates=[gate("supermajority", True), gate("effective_k", True)]),
        "gates",
        "a SKIP needs at least one failed gate",
        id="skip-all-passed",
    ),
    pytest.param(skip(gates=[]), "gates", "a SKIP needs at least one failed gate", id="skip-no-gates"),
    pytest.param(
        risk_reject(risk_checks=[risk("max_exposure", True), risk("daily_loss", True)]),
        "risk_checks",
        "a RISK_REJECT needs at least one failed risk check",
        id="risk-reject-all-passed",
    ),
    pytest.param(
        risk_reject(risk_checks=[]),
        "risk_checks",
        "a RISK_REJECT needs at least one failed risk check",
        id="risk-reject-no-checks",
    ),
    pytest.param(
        risk_reject(gates=[gate("supermajority", True), gate("effective_k", False)]),
        "gates[1].passed",
        "a RISK_REJECT needs every gate passed",
        id="risk-reject-failed-gate",
    ),
    pytest.param(
        risk_reject(gates=[]), "gates", "a RISK_REJECT needs at least one gate (all passed)", id="rr-no-gates"
    ),
    pytest.param(
        signal(gates=[]), "gates", "a SIGNAL needs at least one gate (all passed)", id="signal-no-gates"
    ),
    pytest.param(
        signal(trader_count=0), "trader_count", "a SIGNAL needs at least 1 trader", id="signal-no-traders"
    ),
    pytest.param(
        risk_reject(trader_count=0),
        "trader_count",
        "a RISK_REJECT needs at least 1 trader",
        id="risk-reject-no-traders",
    ),
    pytest.param(
        signal(risk_checks=[risk("max_exposure", True), risk("daily_loss", False)]),
        "risk_checks[1].passed",
        "a SIGNAL needs every risk check passed",
        id="signal-failed-risk-check",
    ),
    pytest.param(
        skip(gates=[gate("freshness", False), gate("ev_gate", True), gate("freshness", True)]),
        "gates[2].name",
        "duplicates the name 'freshness' of an earlier entry",
        id="duplicate-gate-name",
    ),
    pytest.param(
        risk_reject(risk_checks=[risk("daily_loss", False), risk("daily_loss", False)]),
        "risk_checks[1].name",
        "duplicates the name 'daily_loss' of an earlier entry",
        id="duplicate-risk-check-name",
    ),
    # decided_at
    pytest.param(
        signal(decided_at=timestamp_pb2.Timestamp(seconds=YEAR_1 - 1)),
        "decided_at",
        YEARS,
        id="decided-year-0",
    ),
    # The first and last microsecond of the range are what PostgreSQL's driver reads as infinities.
    pytest.param(
        signal(decided_at=timestamp_pb2.Timestamp(seconds=YEAR_1)), "decided_at", YEARS, id="decided-first-µs"
    ),
    pytest.param(
        signal(decided_at=timestamp_pb2.Timestamp(seconds=YEAR_10000)),
        "decided_at",
        YEARS,
        id="decided-year-10000",
    ),
    pytest.param(
        signal(decided_at=timestamp_pb2.Timestamp(seconds=-(2**62))),
        "decided_at",
        YEARS,
        id="decided-huge-negative",
    ),
    pytest.param(
        signal(decided_at=timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=-1)),
        "decided_at",
        "nanos must be between 0 and 999999999",
        id="decided-negative-nanos",
    ),
    pytest.param(
        signal(decided_at=timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=1_000_000_000)),
        "decided_at",
        "nanos must be between 0 and 999999999",
        id="decided-nanos-overflow",
    ),
]


@pytest.mark.parametrize(("request_", "path", "description"), INVALID_REQUESTS)
async def test_invalid_request_names_the_field_and_writes_nothing(
    api: Stub,
    clean_db: asyncpg.Pool,
    request_: pb.LogDecisionRequest,
    path: str,
    description: str | None,
) -> None:
    violations = await invalid_fields(api.LogDecision(request_))
    assert list(violations) == [path]
    assert violations[path]
    if description is not None:
        assert violations[path] == description
    assert await count_rows(clean_db) == 0


async def test_decided_at_more_than_a_minute_in_the_future_is_refused(
    api: Stub, clean_db: asyncpg.Pool
) -> None:
    future = datetime.now(UTC) + timedelta(minutes=5)
    violations = await invalid_fields(api.LogDecision(signal(decided_at=ts(future))))
    assert violations == {"decided_at": "must not be more than 60 seconds in the future"}
    assert await count_rows(clean_db) == 0


async def test_decided_at_within_the_clock_skew_is_accepted(api: Stub) -> None:
    # The server's clock reads later than this one, so +30 s is always within its minute of skew.
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=30)
    decision = (await api.LogDecision(signal(decided_at=ts(soon)))).decision
    assert decision.decided_at.ToDatetime(tzinfo=UTC) == soon


async def test_every_mistake_of_a_request_is_listed(api: Stub, clean_db: asyncpg.Pool) -> None:
    request = signal(
        symbol="BT-C",
        direction=pb.DIRECTION_NONE,
        trader_count=-3,
        agreement_pct=1.5,
        effective_k=NAN,
        avg_confidence=2.0,
        ev_estimate=INF,
        price_at_decision="1e5",
        gates=[gate("supermajority", True), gate("bad name", False, NAN, 0.7)],
        risk_checks=[risk("max/exposure", True, 1.0, NAN)],
        request_id="",
        decided_at=timestamp_pb2.Timestamp(seconds=YEAR_10000),
    )
    violations = await invalid_fields(api.LogDecision(request))
    assert violations == {
        "symbol": SYMBOL,
        # A NONE direction on a SIGNAL; the key appears once in the dict.
        "direction": "a SIGNAL needs DIRECTION_LONG or DIRECTION_SHORT",
        "trader_count": "must be 0 or more",
        "agreement_pct": "must be between 0 and 1",
        "effective_k": FINITE,
        "avg_confidence": "must be between 0 and 1",
        "ev_estimate": FINITE,
        "price_at_decision": PLAIN_PRICE,
        "gates[1].name": CHECK_NAME,
        "gates[1].value": FINITE,
        "gates[1].passed": "a SIGNAL needs every gate passed",
        "risk_checks[0].name": CHECK_NAME,
        "risk_checks[0].limit": FINITE,
        "request_id": REQUEST_ID,
        "decided_at": YEARS,
    }
    assert await count_rows(clean_db) == 0


async def test_unset_enums_are_both_listed(api: Stub) -> None:
    request = signal(direction=pb.DIRECTION_UNSPECIFIED, decision_type=pb.DECISION_TYPE_UNSPECIFIED)
    assert set(await invalid_fields(api.LogDecision(request))) == {"direction", "decision_type"}


@pytest.mark.parametrize("symbol", ["kPEPE", "1000PEPE", "A" * 16, "0", "btc"])
async def test_valid_symbols_are_stored_as_given(api: Stub, symbol: str) -> None:
    decision = (await api.LogDecision(signal(symbol=symbol))).decision
    assert decision.symbol == symbol
    fetched = (await api.GetDecision(pb.GetDecisionRequest(id=decision.id))).decision
    assert fetched.symbol == symbol


async def test_boundary_values_are_accepted(api: Stub, clean_db: asyncpg.Pool) -> None:
    name = "Aa0_.:-" + "z" * 57
    assert len(name) == 64
    low = (
        await api.LogDecision(
            signal(
                trader_count=1,
                agreement_pct=0.0,
                effective_k=0.0,
                avg_confidence=0.0,
                ev_estimate=-9999.9999,
                price_at_decision="0.00000001",
                gates=[gate(name, True, -1e15, 5e-324)] + [gate(f"g{i}", True) for i in range(63)],
                risk_checks=[risk(name, True, 0.0, -0.5)] + [risk(f"r{i}", True) for i in range(63)],
                request_id=" " + "~" * 127,
                decided_at=timestamp_pb2.Timestamp(seconds=YEAR_1, nanos=1000),
            )
        )
    ).decision
    assert (low.trader_count, low.agreement_pct, low.effective_k) == (1, 0.0, 0.0)
    assert low.HasField("avg_confidence") and low.avg_confidence == 0.0
    assert low.ev_estimate == -9999.9999
    assert low.price_at_decision == "0.00000001"
    assert len(low.gates) == 64 and len(low.risk_checks) == 64
    assert low.gates[0] == pb.Gate(name=name, passed=True, value=-1e15, threshold=5e-324)
    assert low.risk_checks[0] == pb.RiskCheck(name=name, passed=True, value=0.0, limit=-0.5)
    assert low.request_id == " " + "~" * 127
    assert low.decided_at == timestamp_pb2.Timestamp(seconds=YEAR_1, nanos=1000)

    high = (
        await api.LogDecision(
            signal(
                agreement_pct=1.0,
                effective_k=999.999,
                avg_confidence=1.0,
                ev_estimate=9999.9999,
                price_at_decision="999999999999.99999999",
            )
        )
    ).decision
    assert (high.agreement_pct, high.effective_k, high.avg_confidence, high.ev_estimate) == (
        1.0,
        999.999,
        1.0,
        9999.9999,
    )
    assert high.price_at_decision == "999999999999.99999999"
    assert await count_rows(clean_db) == 2


async def test_a_skip_may_have_no_traders_and_names_may_repeat_across_gates_and_checks(api: Stub) -> None:
    decision = (
        await api.LogDecision(
            skip(
                trader_count=0,
                gates=[gate("freshness", False)],
                risk_checks=[risk("freshness", True)],
            )
        )
    ).decision
    assert decision.trader_count == 0


async def test_get_decision_with_a_malformed_id_is_invalid(api: Stub) -> None:
    logged = (await api.LogDecision(signal())).decision
    hex_digits = uuid.UUID(logged.id).hex
    other_spellings = [
        f"urn:uuid:{logged.id}",
        "{" + logged.id + "}",
        hex_digits,
        hex_digits.upper(),
        f" {logged.id}",
        f"{logged.id}\n",
    ]
    for bad in [
        "",
        "not-a-uuid",
        "1234",
        str(uuid.uuid4()) + "0",
        "\x00" + str(uuid.uuid4()),
        *other_spellings,
    ]:
        violations = await invalid_fields(api.GetDecision(pb.GetDecisionRequest(id=bad)))
        assert list(violations) == ["id"], bad
        assert (
            violations["id"]
            == "must be a UUID in its canonical form, such as 0b7f2c1e-6a4d-4e5b-9a8f-3c2d1e0f9a8b"
        )


async def test_get_decision_accepts_an_uppercase_uuid(api: Stub) -> None:
    logged = (await api.LogDecision(signal())).decision
    fetched = (await api.GetDecision(pb.GetDecisionRequest(id=logged.id.upper()))).decision
    assert fetched == logged
    assert fetched.id == logged.id.lower()


async def test_get_decision_with_an_unknown_id_is_not_found(api: Stub) -> None:
    await api.LogDecision(signal())
    error = await expect_error(
        api.GetDecision(pb.GetDecisionRequest(id=str(uuid.uuid4()))), grpc.StatusCode.NOT_FOUND
    )
    assert error_reason(error) == "DECISION_NOT_FOUND"


async def test_logged_decision_echoes_every_field(api: Stub, clean_db: asyncpg.Pool) -> None:
    decided = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    gates = [
        gate("supermajority", True, 0.8125, 0.7),
        gate("effective_k", True, 0.1 + 0.2, 2.0),
        gate("custom:gate-1.x", True),
        gate("freshness", True, None, 30.0),
    ]
    checks = [
        risk("max_exposure", True, 0.05, 0.1),
        risk("daily_loss", True),
        risk("kill_switch", True, None, 1.0),
    ]
    request = pb.LogDecisionRequest(
        symbol="kPEPE",
        direction=pb.DIRECTION_SHORT,
        decision_type=pb.DECISION_TYPE_SIGNAL,
        trader_count=9,
        agreement_pct=0.8125,
        effective_k=4.25,
        avg_confidence=0.6543,
        ev_estimate=-1.2345,
        price_at_decision="0.00012345",
        gates=gates,
        risk_checks=checks,
        request_id="echo-1",
        decided_at=ts(decided),
    )
    decision = (await api.LogDecision(request)).decision

    assert str(uuid.UUID(decision.id)) == decision.id
    assert decision.symbol == "kPEPE"
    assert decision.direction == pb.DIRECTION_SHORT
    assert decision.decision_type == pb.DECISION_TYPE_SIGNAL
    assert decision.trader_count == 9
    assert decision.agreement_pct == 0.8125
    assert decision.effective_k == 4.25
    assert decision.avg_confidence == 0.6543
    assert decision.ev_estimate == -1.2345
    assert decision.price_at_decision == "0.00012345"
    assert list(decision.gates) == gates
    assert not decision.gates[2].HasField("value") and not decision.gates[2].HasField("threshold")
    assert not decision.gates[3].HasField("value") and decision.gates[3].threshold == 30.0
    assert list(decision.risk_checks) == checks
    assert not decision.risk_checks[1].HasField("value") and not decision.risk_checks[1].HasField("limit")
    assert decision.request_id == "echo-1"
    assert decision.reasoning == (
        "9 Alpha Pool traders opened SHORT kPEPE. 81% agreement with effK=4.2. All consensus gates passed."
    )
    assert decision.decided_at.ToDatetime(tzinfo=UTC) == decided
    assert decision.HasField("created_at") and decision.created_at.seconds > 0
    assert not decision.HasField("outcome_pnl")
    assert not decision.HasField("outcome_r_multiple")
    assert not decision.HasField("outcome_closed_at")

    fetched = (await api.GetDecision(pb.GetDecisionRequest(id=decision.id))).decision
    assert fetched == decision
    stored = await clean_db.fetchrow(
        "SELECT decided_at, price_at_decision::text AS price FROM decision_logs WHERE id = $1",
        uuid.UUID(decision.id),
    )
    assert stored is not None
    assert (stored["decided_at"], stored["price"]) == (decided, "0.00012345")


async def test_decided_at_keeps_microseconds_and_drops_nanoseconds(api: Stub) -> None:
    request = signal(decided_at=timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=123_456_789))
    decision = (await api.LogDecision(request)).decision
    assert decision.decided_at == timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=123_456_000)


async def test_unset_optional_fields_stay_unset(api: Stub) -> None:
    request = signal(gates=[gate("supermajority", True)])
    request.ClearField("price_at_decision")
    decision = (await api.LogDecision(request)).decision
    fetched = (await api.GetDecision(pb.GetDecisionRequest(id=decision.id))).decision
    for message in (decision, fetched):
        for name in (
            "avg_confidence",
            "ev_estimate",
            "price_at_decision",
            "request_id",
            "outcome_pnl",
            "outcome_r_multiple",
            "outcome_closed_at",
        ):
            assert not message.HasField(name), name
        assert not message.gates[0].HasField("value")
        assert not message.gates[0].HasField("threshold")
        assert list(message.risk_checks) == []
    # Without a decided_at, the decision's time is the server's time of storing it.
    assert decision.decided_at == decision.created_at
    assert decision.decided_at.seconds > 0


async def test_zero_optional_values_stay_set(api: Stub) -> None:
    decision = (await api.LogDecision(signal(avg_confidence=0.0, ev_estimate=0.0))).decision
    assert decision.HasField("avg_confidence") and decision.avg_confidence == 0.0
    assert decision.HasField("ev_estimate") and decision.ev_estimate == 0.0


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("0.00012345", "0.00012345"),
        ("97123.5", "97123.50000000"),
        ("999999999999.99999999", "999999999999.99999999"),
        ("1", "1.00000000"),
        ("0001.10", "1.10000000"),
        ("0.00000001", "0.00000001"),
    ],
)
async def test_price_round_trips_as_an_exact_decimal(api: Stub, given: str, stored: str) -> None:
    decision = (await api.LogDecision(signal(price_at_decision=given))).decision
    assert decision.price_at_decision == stored
    fetched = (await api.GetDecision(pb.GetDecisionRequest(id=decision.id))).decision
    assert fetched.price_at_decision == stored


async def test_concurrent_retries_with_one_request_id_write_one_row(
    api: Stub, clean_db: asyncpg.Pool
) -> None:
    request = signal(request_id="retry-me")
    responses = await asyncio.gather(*(api.LogDecision(request) for _ in range(20)))
    assert len(responses) == 20
    assert {r.decision.id for r in responses} == {responses[0].decision.id}
    assert all(r.decision == responses[0].decision for r in responses)
    assert sorted(r.replayed for r in responses) == [False] + [True] * 19
    assert await count_rows(clean_db) == 1
    assert await clean_db.fetchval("SELECT request_id FROM decision_logs") == "retry-me"


async def test_a_retry_says_it_was_replayed(api: Stub, clean_db: asyncpg.Pool) -> None:
    first = await api.LogDecision(signal(request_id="counted"))
    again = await api.LogDecision(signal(request_id="counted"))
    assert (first.replayed, again.replayed) == (False, True)
    assert again.decision == first.decision
    unkeyed = await api.LogDecision(signal())
    assert not unkeyed.replayed
    assert await count_rows(clean_db) == 2


async def test_a_retry_is_recognised_after_normalisation(api: Stub, clean_db: asyncpg.Pool) -> None:
    """Spellings that store the same value are the same request: 0.8 and 0.80001 (4 decimals), 97123.5."""
    first = await api.LogDecision(signal(request_id="norm", agreement_pct=0.8, price_at_decision="97123.5"))
    again = await api.LogDecision(
        signal(request_id="norm", agreement_pct=0.80001, price_at_decision="97123.50000000")
    )
    assert again.replayed and again.decision == first.decision
    assert await count_rows(clean_db) == 1


async def test_a_negative_zero_is_the_same_request_as_zero(api: Stub, clean_db: asyncpg.Pool) -> None:
    """-0.0, and what rounds to -0 at its column's scale, stores 0: a retry sending it is a replay."""
    zeros = {"ev_estimate": 0.0, "agreement_pct": 0.0, "gates": [gate("supermajority", True, 0.0, 0.0)]}
    first = await api.LogDecision(signal(request_id="zero", **zeros))
    assert not first.replayed
    for variant in (
        {"ev_estimate": -0.0},
        {"ev_estimate": -0.00001},
        {"agreement_pct": -0.0},
        {"gates": [gate("supermajority", True, -0.0, -0.0)]},
    ):
        again = await api.LogDecision(signal(request_id="zero", **{**zeros, **variant}))
        assert again.replayed, variant
        assert again.decision == first.decision
    assert await count_rows(clean_db) == 1
    # Nothing comes back as a negative zero either.
    unkeyed = await api.LogDecision(
        signal(**{**zeros, "ev_estimate": -0.0, "gates": [gate("g", True, -0.0)]})
    )
    assert math.copysign(1, unkeyed.decision.ev_estimate) == 1
    assert math.copysign(1, unkeyed.decision.gates[0].value) == 1


async def test_concurrent_different_requests_with_one_id_store_one_and_refuse_the_others(
    api: Stub, clean_db: asyncpg.Pool
) -> None:
    """20 concurrent calls with one request_id: 10 copies of A, 10 variants of it that differ."""
    a = signal(request_id="contested")
    variants = [signal(request_id="contested", trader_count=10 + i) for i in range(10)]
    requests = [r for pair in zip([a] * 10, variants, strict=True) for r in pair]
    outcomes = await asyncio.gather(*(api.LogDecision(r) for r in requests), return_exceptions=True)
    assert await count_rows(clean_db) == 1
    stored = (await api.ListDecisions(pb.ListDecisionsRequest())).decisions[0]
    for request_, outcome in zip(requests, outcomes, strict=True):
        if request_.trader_count == stored.trader_count:
            # The winning content (stored once) or a copy of it: the stored decision.
            assert isinstance(outcome, pb.LogDecisionResponse), outcome
            assert outcome.decision == stored
        else:
            assert isinstance(outcome, grpc.aio.AioRpcError), outcome
            assert outcome.code() == grpc.StatusCode.ALREADY_EXISTS
            assert error_reason(outcome) == "REQUEST_ID_REUSED"
    successes = [o for o in outcomes if isinstance(o, pb.LogDecisionResponse)]
    assert sorted(o.replayed for o in successes) == [False] + [True] * (len(successes) - 1)


async def test_a_request_id_stored_before_hashes_were_kept_is_answered_as_a_replay(
    api: Stub, clean_db: asyncpg.Pool
) -> None:
    """Rows from before migration 062 have no hash: their ids behave as they did then."""
    first = (await api.LogDecision(signal(request_id="legacy"))).decision
    await clean_db.execute("UPDATE decision_logs SET request_hash = NULL")
    again = await api.LogDecision(signal(request_id="legacy", trader_count=99))
    assert again.replayed and again.decision == first
    assert await count_rows(clean_db) == 1


async def test_a_request_id_reused_for_other_content_is_refused(api: Stub, clean_db: asyncpg.Pool) -> None:
    first = (await api.LogDecision(signal(request_id="key-1"))).decision
    error = await expect_error(
        api.LogDecision(skip(request_id="key-1", symbol="DOGE")), grpc.StatusCode.ALREADY_EXISTS
    )
    assert error_reason(error) == "REQUEST_ID_REUSED"
    assert first.id in (error.details() or "")
    # One field differing is enough, and nothing is written either way.
    for changed in (
        signal(request_id="key-1", trader_count=8),
        signal(request_id="key-1", price_at_decision="97123.6"),
        signal(request_id="key-1", gates=[gate("supermajority", True, 0.8, 0.71)]),
        signal(request_id="key-1", decided_at=ts(datetime.now(UTC))),
    ):
        error = await expect_error(api.LogDecision(changed), grpc.StatusCode.ALREADY_EXISTS)
        assert error_reason(error) == "REQUEST_ID_REUSED"
    assert await count_rows(clean_db) == 1
    assert (await api.GetDecision(pb.GetDecisionRequest(id=first.id))).decision == first


async def test_different_request_ids_make_different_rows(api: Stub, clean_db: asyncpg.Pool) -> None:
    a = (await api.LogDecision(signal(request_id="key-a"))).decision
    b = (await api.LogDecision(signal(request_id="key-b"))).decision
    assert a.id != b.id
    assert (a.request_id, b.request_id) == ("key-a", "key-b")
    assert await count_rows(clean_db) == 2


async def test_requests_without_request_id_each_make_a_row(api: Stub, clean_db: asyncpg.Pool) -> None:
    ids = [(await api.LogDecision(signal())).decision.id for _ in range(3)]
    assert len(set(ids)) == 3
    assert await count_rows(clean_db) == 3


async def reasoning_of(api: Stub, request: pb.LogDecisionRequest) -> str:
    decision = (await api.LogDecision(request)).decision
    fetched = (await api.GetDecision(pb.GetDecisionRequest(id=decision.id))).decision
    assert fetched.reasoning == decision.reasoning
    return decision.reasoning


async def test_signal_reasoning_follows_the_plan(api: Stub) -> None:
    assert await reasoning_of(api, signal()) == (
        "7 Alpha Pool traders opened LONG BTC. 80% agreement with effK=3.2. All consensus gates passed."
    )


async def test_skip_reasoning_names_each_failed_gate_in_order(api: Stub) -> None:
    request = skip(
        trader_count=5,
        gates=[
            gate("supermajority", False, 0.6, 0.7),
            gate("effective_k", False, 1.5, 2.0),
            gate("liquidity", True, 1.0, 0.5),
            gate("freshness", False, 45.0, 30.0),
            gate("price_band", False, 0.35, 0.25),
            gate("ev_gate", False, 0.12, 0.2),
        ],
    )
    assert await reasoning_of(api, request) == (
        "Skipped: 5 traders detected but gates failed. only 60% agreement (need 70%); "
        "effK=1.5 too low (need 2.0); signal 45s stale; price drifted 0.35R; EV=0.12R below threshold."
    )


async def test_skip_reasoning_of_an_unknown_gate(api: Stub) -> None:
    request = skip(
        trader_count=4, gates=[gate("supermajority", True, 0.8, 0.7), gate("liquidity", False, 5.0, 3.0)]
    )
    assert await reasoning_of(api, request) == (
        "Skipped: 4 traders detected but gates failed. gate liquidity failed: value 5 vs threshold 3."
    )


async def test_skip_reasoning_of_known_gates_without_values(api: Stub) -> None:
    request = skip(
        trader_count=3,
        gates=[
            gate("supermajority", False, 0.6),
            gate("effective_k", False, None, 2.0),
            gate("freshness", False),
            gate("price_band", False, None, 0.25),
            gate("ev_gate", False),
        ],
    )
    reasoning = await reasoning_of(api, request)
    assert reasoning == (
        "Skipped: 3 traders detected but gates failed. gate supermajority failed: value 0.6; "
        "gate effective_k failed: threshold 2; gate freshness failed; "
        "gate price_band failed: threshold 0.25; gate ev_gate failed."
    )
    assert "None" not in reasoning


async def test_risk_reject_reasoning_lists_failed_checks(api: Stub) -> None:
    assert await reasoning_of(api, risk_reject()) == (
        "Consensus detected but rejected by risk limits. 6 traders, 75% agreement. "
        "Failed risk checks: max_exposure (value 0.12 vs limit 0.1)."
    )
    several = risk_reject(
        direction=pb.DIRECTION_NONE,
        risk_checks=[
            risk("max_exposure", False, 0.12, 0.1),
            risk("daily_loss", True, 0.01, 0.05),
            risk("kill_switch", False),
            risk("max_leverage", False, None, 5.0),
        ],
    )
    reasoning = await reasoning_of(api, several)
    assert reasoning == (
        "Consensus detected but rejected by risk limits. 6 traders, 75% agreement. Failed risk checks: "
        "max_exposure (value 0.12 vs limit 0.1), kill_switch, max_leverage (limit 5)."
    )
    assert "None" not in reasoning
