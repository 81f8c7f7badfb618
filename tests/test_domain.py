"""The domain's pure rules, without a network or a database."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import math
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from sigma_grpc.domain import models
from sigma_grpc.domain.errors import DomainError, FieldViolation, InvalidArgument
from sigma_grpc.domain.models import (
    Counts,
    Decision,
    DecisionFilter,
    DecisionType,
    Direction,
    Gate,
    Outcome,
    OutcomeFilter,
    PageCursor,
    RiskCheck,
    StatsRows,
)
from sigma_grpc.domain.outcomes import should_write_outcome
from sigma_grpc.domain.pagination import decode_page_token, encode_page_token
from sigma_grpc.domain.quality import ClosedStats, wilson_interval
from sigma_grpc.domain.reasoning import (
    describe_failed_gate,
    describe_failed_risk_check,
    generate_reasoning,
    reasoning_for,
)
from sigma_grpc.domain.stats import Summary, build_stats
from sigma_grpc.domain.validation import (
    DecisionInput,
    ListInput,
    OutcomeInput,
    RawTimestamp,
    validate_decision,
    validate_list,
    validate_outcome,
    validate_stats,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ID = uuid.UUID("0b7f2c1e-6a4d-4e5b-9a8f-3c2d1e0f9a8b")
FINITE = "must be a finite number (not NaN or Infinity)"


def raw_time(moment: datetime) -> RawTimestamp:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return RawTimestamp(seconds=delta.days * 86400 + delta.seconds, nanos=delta.microseconds * 1000)


def decision_input(**overrides: Any) -> DecisionInput:
    fields: dict[str, Any] = {
        "symbol": "BTC",
        "direction": Direction.LONG,
        "decision_type": DecisionType.SIGNAL,
        "trader_count": 7,
        "agreement_pct": 0.8,
        "effective_k": 3.2,
        "gates": (Gate("supermajority", True, 0.8, 0.7),),
    }
    fields.update(overrides)
    return DecisionInput(**fields)


def violations(error: pytest.ExceptionInfo[InvalidArgument]) -> list[tuple[str, str]]:
    return [(v.field, v.description) for v in error.value.violations]


# --- validate_decision --------------------------------------------------------------------------


def test_validate_decision_rounds_to_column_scales_and_writes_reasoning() -> None:
    new = validate_decision(
        decision_input(
            symbol="kPEPE",
            direction=Direction.SHORT,
            agreement_pct=0.12345,
            effective_k=3.14159,
            avg_confidence=0.66666,
            ev_estimate=-1.23456,
            price_at_decision="97123.5",
            risk_checks=(RiskCheck("max_exposure", True, 0.05, 0.1),),
            request_id="rid-1",
            decided_at=RawTimestamp(seconds=1_700_000_000, nanos=123_456_789),
        ),
        now=NOW,
    )
    assert (new.agreement_pct, new.effective_k) == (Decimal("0.1234"), Decimal("3.142"))
    assert (new.avg_confidence, new.ev_estimate) == (Decimal("0.6667"), Decimal("-1.2346"))
    assert str(new.price_at_decision) == "97123.50000000"
    assert new.decided_at == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    assert new.gates == (Gate("supermajority", True, 0.8, 0.7),)
    assert new.risk_checks == (RiskCheck("max_exposure", True, 0.05, 0.1),)
    assert new.request_id == "rid-1"
    # The reasoning quotes the rounded values that are stored.
    assert reasoning_for(new) == (
        "7 Alpha Pool traders opened SHORT kPEPE. 12% agreement with effK=3.1. All consensus gates passed."
    )


def test_validate_decision_leaves_unset_fields_unset() -> None:
    new = validate_decision(decision_input(), now=NOW)
    assert (new.avg_confidence, new.ev_estimate, new.price_at_decision) == (None, None, None)
    assert (new.request_id, new.decided_at, new.risk_checks) == (None, None, ())


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"symbol": "ETH\n"}, [("symbol", "must not contain control characters")]),
        ({"symbol": "ETH١"}, [("symbol", "must be 1-16 ASCII letters or digits (e.g. BTC, kPEPE)")]),
        ({"agreement_pct": math.nan}, [("agreement_pct", FINITE)]),
        ({"effective_k": 1000.0}, [("effective_k", "must be between 0 and 999.999")]),
        ({"price_at_decision": "0.0"}, [("price_at_decision", "must be greater than 0")]),
        (
            {"price_at_decision": "1000000000000"},
            [("price_at_decision", "must have at most 12 integer digits")],
        ),
        (
            {"gates": (Gate("a b", True, None, math.inf),)},
            [
                ("gates[0].name", "must be 1-64 characters of letters, digits and _.:-"),
                ("gates[0].threshold", FINITE),
            ],
        ),
        ({"request_id": "x" * 129}, [("request_id", "must be 1-128 printable ASCII characters")]),
        # decided_at may lead the server's clock by at most 60 s: 1 µs more is refused.
        (
            {"decided_at": raw_time(NOW + timedelta(seconds=60, microseconds=1))},
            [("decided_at", "must not be more than 60 seconds in the future")],
        ),
        (
            {"decided_at": RawTimestamp(seconds=-62135596801, nanos=0)},
            [("decided_at", "must be after 0001-01-01T00:00:00Z and before 9999-12-31T23:59:59.999999Z")],
        ),
        (
            {"direction": None, "decision_type": None, "trader_count": -1},
            [
                ("direction", "must be set (DIRECTION_LONG, DIRECTION_SHORT or DIRECTION_NONE)"),
                ("decision_type", "must be set (DECISION_TYPE_SIGNAL, DECISION_TYPE_SKIP or ...RISK_REJECT)"),
                ("trader_count", "must be 0 or more"),
            ],
        ),
        (
            {"direction": Direction.NONE, "gates": (Gate("a", True), Gate("b", False), Gate("c", False))},
            [
                ("direction", "a SIGNAL needs DIRECTION_LONG or DIRECTION_SHORT"),
                ("gates[1].passed", "a SIGNAL needs every gate passed"),
                ("gates[2].passed", "a SIGNAL needs every gate passed"),
            ],
        ),
        (
            {"decision_type": DecisionType.SKIP, "gates": ()},
            [("gates", "a SKIP needs at least one failed gate")],
        ),
        (
            {"decision_type": DecisionType.RISK_REJECT, "risk_checks": (RiskCheck("daily_loss", True),)},
            [("risk_checks", "a RISK_REJECT needs at least one failed risk check")],
        ),
    ],
    ids=[
        "symbol-control",
        "symbol-arabic-digit",
        "agreement-nan",
        "effk-range",
        "price-zero",
        "price-13-digits",
        "gate-name-and-threshold",
        "request-id-129",
        "decided-61s-ahead",
        "decided-year-0",
        "unset-enums",
        "signal-none-failed-gates",
        "skip-no-gates",
        "risk-reject-all-passed",
    ],
)
def test_validate_decision_lists_violations_in_order(
    overrides: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    with pytest.raises(InvalidArgument) as error:
        validate_decision(decision_input(**overrides), now=NOW)
    assert violations(error) == expected
    assert error.value.reason == "VALIDATION_FAILED"


def test_validate_decision_accepts_the_edges() -> None:
    new = validate_decision(
        decision_input(
            decision_type=DecisionType.RISK_REJECT,
            direction=Direction.NONE,
            trader_count=1,
            agreement_pct=1.0,
            effective_k=999.999,
            ev_estimate=-9999.9999,
            price_at_decision="999999999999.99999999",
            gates=tuple(Gate(f"g{i}", True) for i in range(64)),
            risk_checks=tuple(RiskCheck(f"r{i}", False) for i in range(64)),
            request_id=" " * 128,
            decided_at=raw_time(NOW + timedelta(seconds=60)),
        ),
        now=NOW,
    )
    assert (new.agreement_pct, new.effective_k, new.ev_estimate) == (
        Decimal("1.0000"),
        Decimal("999.999"),
        Decimal("-9999.9999"),
    )
    assert new.price_at_decision == Decimal("999999999999.99999999")
    assert new.decided_at == NOW + timedelta(seconds=60)
    assert reasoning_for(new).endswith("Failed risk checks: " + ", ".join(f"r{i}" for i in range(64)) + ".")


def test_range_violations_state_the_real_bounds() -> None:
    with pytest.raises(InvalidArgument) as error:
        validate_decision(decision_input(ev_estimate=10000.0), now=NOW)
    assert violations(error) == [("ev_estimate", "must be between -9999.9999 and 9999.9999")]


# --- validate_outcome, validate_stats, validate_list ---------------------------------------------


def test_validate_outcome_parses_and_rounds() -> None:
    closed = NOW - timedelta(hours=1)
    outcome = validate_outcome(
        OutcomeInput(str(ID).upper(), "-12.5", 1.23456, raw_time(closed)),
        now=NOW,
    )
    assert outcome == Outcome(
        decision_id=ID, pnl=Decimal("-12.5"), r_multiple=Decimal("1.2346"), closed_at=closed
    )
    assert str(outcome.pnl) == "-12.50000000"
    unset = validate_outcome(OutcomeInput(str(ID), "0.00012345", 0.0), now=NOW)
    assert (unset.pnl, unset.r_multiple, unset.closed_at) == (Decimal("0.00012345"), Decimal(0), None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            OutcomeInput("nope", "1", 1.0),
            [
                (
                    "decision_id",
                    "must be a UUID in its canonical form, such as 0b7f2c1e-6a4d-4e5b-9a8f-3c2d1e0f9a8b",
                )
            ],
        ),
        (OutcomeInput(str(ID), "", 1.0), [("outcome_pnl", "is required: a signed decimal such as -12.5")]),
        (
            OutcomeInput(str(ID), "+1", 1.0),
            [("outcome_pnl", "must be a signed plain decimal with at most 8 decimals (e.g. 97123.5)")],
        ),
        (
            OutcomeInput(str(ID), "-1234567890123", 1.0),
            [("outcome_pnl", "must have at most 12 integer digits")],
        ),
        (OutcomeInput(str(ID), "1", math.nan), [("outcome_r_multiple", FINITE)]),
        (
            OutcomeInput(str(ID), "1", -10000.0),
            [("outcome_r_multiple", "must be between -9999.9999 and 9999.9999")],
        ),
        (
            OutcomeInput(str(ID), "1", 1.0, raw_time(NOW + timedelta(minutes=2))),
            [("outcome_closed_at", "must not be in the future (at most 5 seconds of clock skew)")],
        ),
        (
            OutcomeInput("", "", math.inf),
            [
                (
                    "decision_id",
                    "must be a UUID in its canonical form, such as 0b7f2c1e-6a4d-4e5b-9a8f-3c2d1e0f9a8b",
                ),
                ("outcome_pnl", "is required: a signed decimal such as -12.5"),
                ("outcome_r_multiple", FINITE),
            ],
        ),
    ],
    ids=["bad-id", "no-pnl", "plus-sign", "13-digits", "r-nan", "r-range", "future-close", "all-wrong"],
)
def test_validate_outcome_rejects(raw: OutcomeInput, expected: list[tuple[str, str]]) -> None:
    with pytest.raises(InvalidArgument) as error:
        validate_outcome(raw, now=NOW)
    assert violations(error) == expected


@pytest.mark.parametrize(
    ("days", "symbol", "window", "stats_symbol"),
    [(None, None, 7, None), (0, "", 7, None), (1, "BTC", 1, "BTC"), (365, "kPEPE", 365, "kPEPE")],
)
def test_validate_stats_defaults(
    days: int | None, symbol: str | None, window: int, stats_symbol: str | None
) -> None:
    query = validate_stats(days, symbol)
    assert (query.days, query.symbol) == (window, stats_symbol)


def test_validate_stats_rejects() -> None:
    with pytest.raises(InvalidArgument) as error:
        validate_stats(366, "BT-C")
    assert [field for field, _ in violations(error)] == ["days", "symbol"]
    with pytest.raises(InvalidArgument) as error:
        validate_stats(-1, None)
    assert violations(error) == [("days", "must be between 1 and 365 (0 or unset means 7)")]


@pytest.mark.parametrize(
    ("page_size", "expected"), [(0, 50), (1, 1), (500, 500), (501, 500), (2**31 - 1, 500)]
)
def test_validate_list_page_size(page_size: int, expected: int) -> None:
    assert validate_list(ListInput(page_size=page_size)).page_size == expected


def test_validate_list_builds_the_filter_and_reads_its_token() -> None:
    start, end = NOW - timedelta(days=1), NOW
    raw = ListInput(
        symbol="ETH",
        decision_type=DecisionType.SKIP,
        direction=Direction.SHORT,
        outcome=None,
        start_time=raw_time(start),
        end_time=raw_time(end),
    )
    query = validate_list(raw)
    expected_filter = DecisionFilter("ETH", DecisionType.SKIP, Direction.SHORT, None, start, end)
    assert query.filter == expected_filter
    assert query.cursor is None
    cursor = PageCursor(NOW - timedelta(hours=3), ID)
    token = encode_page_token(cursor, expected_filter)
    assert validate_list(dataclasses.replace(raw, page_token=token)).cursor == cursor


def test_validate_list_rejects() -> None:
    with pytest.raises(InvalidArgument) as error:
        validate_list(ListInput(symbol="B C", start_time=raw_time(NOW), end_time=raw_time(NOW), page_size=-1))
    assert violations(error) == [
        ("symbol", "must be 1-16 ASCII letters or digits (e.g. BTC, kPEPE)"),
        ("end_time", "must be after start_time"),
        ("page_size", "must not be negative (0 means the default, 50)"),
    ]


# --- pagination ---------------------------------------------------------------------------------

NOT_OURS = [("page_token", "is not a page token issued by this service")]


def forged(body: dict[str, Any]) -> str:
    """A token with a valid checksum around an arbitrary body."""
    text = json.dumps(body)
    checksum = hashlib.sha256(f"sigma.v1/page/{text}".encode()).hexdigest()[:12]
    return base64.urlsafe_b64encode(json.dumps({"b": text, "c": checksum}).encode()).decode()


def test_page_token_round_trips() -> None:
    decision_filter = DecisionFilter(symbol="BTC", outcome=OutcomeFilter.WIN, start_time=NOW)
    cursor = PageCursor(datetime(2025, 2, 3, 4, 5, 6, 789012, tzinfo=UTC), ID)
    token = encode_page_token(cursor, decision_filter)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert (
        decode_page_token(token, DecisionFilter(symbol="BTC", outcome=OutcomeFilter.WIN, start_time=NOW))
        == cursor
    )


def test_page_token_for_other_filters_is_refused() -> None:
    token = encode_page_token(PageCursor(NOW, ID), DecisionFilter(symbol="BTC"))
    with pytest.raises(InvalidArgument) as error:
        decode_page_token(token, DecisionFilter(symbol="ETH"))
    assert violations(error) == [
        ("page_token", "was issued for other filters: repeat the request's filters exactly")
    ]


def test_a_token_made_before_a_filter_field_was_added_still_works() -> None:
    """Simulates the next release adding a filter: a token from today's server must page on."""

    @dataclasses.dataclass(frozen=True)
    class DecisionFilter:  # the same list's filters, one field longer
        symbol: str | None = None
        decision_type: DecisionType | None = None
        direction: Direction | None = None
        outcome: OutcomeFilter | None = None
        start_time: datetime | None = None
        end_time: datetime | None = None
        min_trader_count: int | None = None

    today = models.DecisionFilter(symbol="BTC", outcome=OutcomeFilter.WIN)
    token = encode_page_token(PageCursor(NOW, ID), today)
    assert decode_page_token(token, DecisionFilter(symbol="BTC", outcome=OutcomeFilter.WIN)) == PageCursor(
        NOW, ID
    )
    # Setting the new filter (or changing an old one) makes it a different list.
    for other in (
        DecisionFilter(symbol="BTC", outcome=OutcomeFilter.WIN, min_trader_count=3),
        DecisionFilter(symbol="BTC"),
    ):
        with pytest.raises(InvalidArgument) as error:
            decode_page_token(token, other)
        assert error.value.reason == "INVALID_PAGE_TOKEN"


def _tampered() -> str:
    token = encode_page_token(PageCursor(NOW, ID), DecisionFilter())
    packed = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    packed["b"] = packed["b"].replace(str(ID), str(uuid.UUID(int=1)))
    return base64.urlsafe_b64encode(json.dumps(packed).encode()).decode()


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="empty"),
        pytest.param("not a token", id="garbage"),
        pytest.param("é", id="non-ascii"),
        pytest.param(base64.urlsafe_b64encode(b"[1, 2]").decode(), id="json-list"),
        pytest.param(base64.urlsafe_b64encode(b"\xff\xfe").decode(), id="not-utf8"),
        pytest.param(base64.urlsafe_b64encode(b"[" * 5000).decode(), id="deeply-nested"),
        pytest.param(_tampered(), id="tampered-cursor"),
        pytest.param(forged({"v": 3, "f": "x", "t": NOW.isoformat(), "i": str(ID)}), id="unknown-version"),
        pytest.param(forged({"v": 1, "f": "x", "t": "2025-01-01T00:00:00", "i": str(ID)}), id="naive-time"),
        # Checksummed but malformed bodies must be refused too, not crash the call.
        pytest.param(forged({"v": 1, "t": NOW.isoformat(), "i": str(ID)}), id="no-fingerprint"),
        pytest.param(forged({"v": 1, "f": "x", "t": NOW.isoformat(), "i": 5}), id="id-not-a-string"),
    ],
)
def test_page_token_not_issued_here_is_refused(token: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        decode_page_token(token, DecisionFilter())
    assert violations(error) == NOT_OURS
    assert error.value.reason == "INVALID_PAGE_TOKEN"


# --- stats --------------------------------------------------------------------------------------


def test_build_stats_sums_rates_and_orders() -> None:
    rows = StatsRows(
        window_start=NOW - timedelta(days=7),
        by_symbol={
            "ETH": Counts(total=3, skips=3),
            "BTC": Counts(
                total=6,
                signals=4,
                skips=1,
                risk_rejects=1,
                closed=3,
                wins=1,
                losses=1,
                r_multiple_sum=Decimal("1.5"),
                pnl_sum=Decimal("-3.123456789"),
            ),
        },
        gate_failures={"supermajority": 2, "freshness": 5, "effective_k": 2},
    )
    stats = build_stats(7, rows)
    assert (stats.days, stats.window_start) == (7, NOW - timedelta(days=7))
    assert stats.overall == Summary(
        total_decisions=9,
        signal_count=4,
        skip_count=4,
        risk_reject_count=1,
        skip_rate=4 / 9,
        closed_count=3,
        win_count=1,
        loss_count=1,
        pending_count=1,
        win_rate=1 / 3,
        avg_r_multiple=0.5,
        total_pnl="-3.12345679",
        closed_stats=ClosedStats(),  # no closed signal rows given
        win_rate_interval=wilson_interval(1, 3),
    )
    assert [symbol for symbol, _ in stats.by_symbol] == ["BTC", "ETH"]
    eth = stats.by_symbol[1][1]
    assert (eth.skip_rate, eth.win_rate, eth.avg_r_multiple, eth.pending_count, eth.total_pnl) == (
        1.0,
        0.0,
        0.0,
        0,
        "0.00000000",
    )
    assert stats.by_symbol[0][1].skip_rate == 1 / 6
    assert stats.gate_failures == (("freshness", 5), ("effective_k", 2), ("supermajority", 2))
    # The inputs are not modified by the aggregation.
    assert rows.by_symbol["ETH"] == Counts(total=3, skips=3)


def test_build_stats_of_nothing_is_all_zero() -> None:
    stats = build_stats(30, StatsRows(window_start=NOW))
    assert stats.overall == Summary(0, 0, 0, 0, 0.0, 0, 0, 0, 0, 0.0, 0.0, "0.00000000", ClosedStats(), None)
    assert (stats.by_symbol, stats.gate_failures) == ((), ())


# --- outcomes -----------------------------------------------------------------------------------


def stored(decision_type: DecisionType = DecisionType.SIGNAL, **outcome: Any) -> Decision:
    return Decision(
        id=ID,
        created_at=NOW,
        decided_at=NOW,
        symbol="BTC",
        direction=Direction.LONG,
        decision_type=decision_type,
        trader_count=7,
        agreement_pct=Decimal("0.8000"),
        effective_k=Decimal("3.200"),
        avg_confidence=None,
        ev_estimate=None,
        price_at_decision=None,
        gates=(),
        risk_checks=(),
        reasoning="r",
        request_id=None,
        **outcome,
    )


CLOSED = NOW + timedelta(hours=2)
RECORDED: dict[str, Any] = {
    "outcome_pnl": Decimal("10.5"),
    "outcome_r_multiple": Decimal("1.5000"),
    "outcome_closed_at": CLOSED,
}


def outcome(pnl: str = "10.5", r: str = "1.5", closed_at: datetime | None = None) -> Outcome:
    return Outcome(decision_id=ID, pnl=Decimal(pnl), r_multiple=Decimal(r), closed_at=closed_at)


@pytest.mark.parametrize("decision_type", [DecisionType.SKIP, DecisionType.RISK_REJECT])
def test_only_signals_take_outcomes(decision_type: DecisionType) -> None:
    with pytest.raises(DomainError) as error:
        should_write_outcome(stored(decision_type), outcome(), CLOSED)
    assert error.value.reason == "NOT_A_SIGNAL"


@pytest.mark.parametrize("closed_at", [NOW, CLOSED])
def test_a_first_outcome_is_written(closed_at: datetime) -> None:
    assert should_write_outcome(stored(), outcome(closed_at=closed_at), closed_at) is True


def test_an_outcome_before_the_decision_is_invalid() -> None:
    early = NOW - timedelta(microseconds=1)
    with pytest.raises(InvalidArgument) as error:
        should_write_outcome(stored(), outcome(closed_at=early), early)
    assert error.value.violations == (
        FieldViolation(
            "outcome_closed_at", "must not be before the decision was made (2025-03-01T12:00:00+00:00)"
        ),
    )


@pytest.mark.parametrize("closed_at", [None, CLOSED])
def test_the_same_outcome_again_is_not_rewritten(closed_at: datetime | None) -> None:
    assert should_write_outcome(stored(**RECORDED), outcome("10.50000000", "1.5", closed_at), CLOSED) is False


@pytest.mark.parametrize(
    "second",
    [outcome(pnl="10.6"), outcome(r="1.4999"), outcome(closed_at=CLOSED + timedelta(seconds=1))],
    ids=["pnl", "r_multiple", "closed_at"],
)
def test_a_different_second_outcome_is_refused(second: Outcome) -> None:
    with pytest.raises(DomainError) as error:
        should_write_outcome(stored(**RECORDED), second, CLOSED)
    assert error.value.reason == "OUTCOME_ALREADY_RECORDED"


# --- reasoning ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failed", "phrase"),
    [
        (Gate("supermajority", False, 0.655, 0.7), "only 66% agreement (need 70%)"),
        (Gate("effective_k", False, 1.0, 2.0), "effK=1.0 too low (need 2.0)"),
        (Gate("freshness", False, 120.4), "signal 120s stale"),
        (Gate("price_band", False, 1.0), "price drifted 1.00R"),
        (Gate("ev_gate", False, -0.5, 0.1), "EV=-0.50R below threshold"),
        (Gate("ev_gate", False, None, 0.1), "gate ev_gate failed: threshold 0.1"),
        (Gate("depth", False, 1e20, 1234567.5), "gate depth failed: value 1e+20 vs threshold 1.23457e+06"),
        (Gate("depth", False), "gate depth failed"),
    ],
)
def test_describe_failed_gate(failed: Gate, phrase: str) -> None:
    assert describe_failed_gate(failed) == phrase


@pytest.mark.parametrize(
    ("check", "phrase"),
    [
        (RiskCheck("max_exposure", False, 0.12, 0.1), "max_exposure (value 0.12 vs limit 0.1)"),
        (RiskCheck("daily_loss", False, -250.0), "daily_loss (value -250)"),
        (RiskCheck("leverage", False, None, 5.0), "leverage (limit 5)"),
        (RiskCheck("kill_switch", False), "kill_switch"),
    ],
)
def test_describe_failed_risk_check(check: RiskCheck, phrase: str) -> None:
    assert describe_failed_risk_check(check) == phrase


def test_generate_reasoning_of_each_type() -> None:
    common: dict[str, Any] = {"symbol": "ETH", "trader_count": 4, "agreement_pct": 0.7, "effective_k": 2.05}
    gates = (Gate("supermajority", True), Gate("freshness", False, 45.0), Gate("x", False, 2.0))
    checks = (RiskCheck("a", True), RiskCheck("b", False, 3.0, 2.0), RiskCheck("c", False))
    text = {
        kind: generate_reasoning(
            decision_type=kind, direction=Direction.SHORT, gates=gates, risk_checks=checks, **common
        )
        for kind in DecisionType
    }
    assert text == {
        DecisionType.SIGNAL: (
            "4 Alpha Pool traders opened SHORT ETH. 70% agreement with effK=2.0. All consensus gates passed."
        ),
        DecisionType.SKIP: (
            "Skipped: 4 traders detected but gates failed. signal 45s stale; gate x failed: value 2."
        ),
        DecisionType.RISK_REJECT: (
            "Consensus detected but rejected by risk limits. 4 traders, 70% agreement. "
            "Failed risk checks: b (value 3 vs limit 2), c."
        ),
    }
