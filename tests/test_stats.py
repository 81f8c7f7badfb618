"""GetStats through the gRPC stub, against numbers worked out by hand.

The dataset (times relative to the start of the test; "out" = outside the 7-day window):

    id  symbol  type         when    outcome (P&L, R)            failed gates / risk checks
    A1  AVAX    SIGNAL       -10m    loss (-0.00000001, -0.0001)
    B1  BTC     SIGNAL       -1h     win (120.5, 2.0)
    B2  BTC     SIGNAL       -2h     loss (-40.25, -1.0)
    B3  BTC     SIGNAL       -3d     breakeven (0, 0.25)
    B4  BTC     SIGNAL       -3h     pending
    B5  BTC     SKIP         -4h                                 supermajority
    B6  BTC     RISK_REJECT  -3d                                 risk max_exposure
    E1  ETH     SIGNAL       -30m    win (75.12345678, 1.5)
    E2  ETH     SIGNAL       -2d     loss (-10, -0.5)
    E3  ETH     SKIP         -5h                                 supermajority, freshness
    E4  ETH     SKIP         -4d                                 whale_veto (not a gate of the plan)
    E5  ETH     SKIP         -6h                                 freshness, ev_gate
    S1  SOL     SIGNAL       -1h     pending
    S2  SOL     RISK_REJECT  -2h                                 risk daily_loss
    S3  SOL     SKIP         -5d                                 price_band, freshness
    O1  BTC     SIGNAL       -10d    win (1000, 5.0)             (out)
    O2  DOGE    SKIP         -8d                                 supermajority, old_gate (out)
    O3  ETH     SKIP         -30d                                freshness (out)
    O4  SOL     SIGNAL       -8d     pending                     (out)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from google.protobuf import timestamp_pb2

from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as pb
from tests.helpers import Stub, gate, invalid_fields, risk, risk_reject, signal, skip, ts


def summary(
    *,
    total: int,
    signals: int,
    skips: int,
    risk_rejects: int,
    skip_rate: float,
    closed: int,
    wins: int,
    losses: int,
    pending: int,
    win_rate: float,
    avg_r: float,
    pnl: str,
) -> dict[str, Any]:
    """The expected summary fields, in the names of the proto."""
    return {
        "total_decisions": total,
        "signal_count": signals,
        "skip_count": skips,
        "risk_reject_count": risk_rejects,
        "skip_rate": pytest.approx(skip_rate, abs=1e-12),
        "closed_count": closed,
        "win_count": wins,
        "loss_count": losses,
        "pending_count": pending,
        "win_rate": pytest.approx(win_rate, abs=1e-12),
        "avg_r_multiple": pytest.approx(avg_r, abs=1e-12),
        "total_pnl": pnl,
    }


def fields_of(container: pb.GetStatsResponse | pb.SymbolStats) -> dict[str, Any]:
    message = container.totals if isinstance(container, pb.GetStatsResponse) else container.stats
    return {
        "total_decisions": message.total_decisions,
        "signal_count": message.signal_count,
        "skip_count": message.skip_count,
        "risk_reject_count": message.risk_reject_count,
        "skip_rate": message.skip_rate,
        "closed_count": message.closed_count,
        "win_count": message.win_count,
        "loss_count": message.loss_count,
        "pending_count": message.pending_count,
        "win_rate": message.win_rate,
        "avg_r_multiple": message.avg_r_multiple,
        "total_pnl": message.total_pnl,
    }


def by_symbol(response: pb.GetStatsResponse) -> list[tuple[str, dict[str, Any]]]:
    return [(s.symbol, fields_of(s)) for s in response.by_symbol]


def gate_failures(response: pb.GetStatsResponse) -> list[tuple[str, int]]:
    return [(g.name, g.count) for g in response.gate_failures]


ZERO = summary(
    total=0,
    signals=0,
    skips=0,
    risk_rejects=0,
    skip_rate=0,
    closed=0,
    wins=0,
    losses=0,
    pending=0,
    win_rate=0,
    avg_r=0,
    pnl="0.00000000",
)

# The last 7 days.
AVAX_7 = summary(
    total=1,
    signals=1,
    skips=0,
    risk_rejects=0,
    skip_rate=0,
    closed=1,
    wins=0,
    losses=1,
    pending=0,
    win_rate=0,
    avg_r=-0.0001,
    pnl="-0.00000001",
)
BTC_7 = summary(
    total=6,
    signals=4,
    skips=1,
    risk_rejects=1,
    skip_rate=0.16666666666666666,  # 1/6
    closed=3,
    wins=1,
    losses=1,
    pending=1,
    win_rate=0.3333333333333333,  # 1/3
    avg_r=0.4166666666666667,  # (2.0 - 1.0 + 0.25) / 3
    pnl="80.25000000",
)
ETH_7 = summary(
    total=5,
    signals=2,
    skips=3,
    risk_rejects=0,
    skip_rate=0.6,
    closed=2,
    wins=1,
    losses=1,
    pending=0,
    win_rate=0.5,
    avg_r=0.5,  # (1.5 - 0.5) / 2
    pnl="65.12345678",
)
SOL_7 = summary(
    total=3,
    signals=1,
    skips=1,
    risk_rejects=1,
    skip_rate=0.3333333333333333,  # 1/3
    closed=0,
    wins=0,
    losses=0,
    pending=1,
    win_rate=0,
    avg_r=0,
    pnl="0.00000000",
)
ALL_7 = summary(
    total=15,
    signals=8,
    skips=5,
    risk_rejects=2,
    skip_rate=0.3333333333333333,  # 5/15
    closed=6,
    wins=2,
    losses=3,
    pending=2,
    win_rate=0.3333333333333333,  # 2/6
    avg_r=0.37498333333333334,  # (-0.0001 + 2.0 - 1.0 + 0.25 + 1.5 - 0.5) / 6 = 2.2499 / 6
    pnl="145.37345677",
)
GATES_7 = [("freshness", 3), ("supermajority", 2), ("ev_gate", 1), ("price_band", 1), ("whale_veto", 1)]

# The last day.
BTC_1 = summary(
    total=4,
    signals=3,
    skips=1,
    risk_rejects=0,
    skip_rate=0.25,
    closed=2,
    wins=1,
    losses=1,
    pending=1,
    win_rate=0.5,
    avg_r=0.5,  # (2.0 - 1.0) / 2
    pnl="80.25000000",
)
ETH_1 = summary(
    total=3,
    signals=1,
    skips=2,
    risk_rejects=0,
    skip_rate=0.6666666666666666,  # 2/3
    closed=1,
    wins=1,
    losses=0,
    pending=0,
    win_rate=1.0,
    avg_r=1.5,
    pnl="75.12345678",
)
SOL_1 = summary(
    total=2,
    signals=1,
    skips=0,
    risk_rejects=1,
    skip_rate=0,
    closed=0,
    wins=0,
    losses=0,
    pending=1,
    win_rate=0,
    avg_r=0,
    pnl="0.00000000",
)
ALL_1 = summary(
    total=10,
    signals=6,
    skips=3,
    risk_rejects=1,
    skip_rate=0.3,
    closed=4,
    wins=2,
    losses=2,
    pending=2,
    win_rate=0.5,
    avg_r=0.624975,  # (-0.0001 + 2.0 - 1.0 + 1.5) / 4 = 2.4999 / 4
    pnl="155.37345677",
)
# freshness and supermajority tie at 2: ordered by name.
GATES_1 = [("freshness", 2), ("supermajority", 2), ("ev_gate", 1)]

# The last 365 days: everything.
ALL_365 = summary(
    total=19,
    signals=10,
    skips=7,
    risk_rejects=2,
    skip_rate=0.3684210526315789,  # 7/19
    closed=7,
    wins=3,
    losses=3,
    pending=3,
    win_rate=0.42857142857142855,  # 3/7
    avg_r=1.0357,  # (2.2499 + 5.0) / 7 = 7.2499 / 7
    pnl="1145.37345677",
)
GATES_365 = [
    ("freshness", 4),
    ("supermajority", 3),
    ("ev_gate", 1),
    ("old_gate", 1),
    ("price_band", 1),
    ("whale_veto", 1),
]


async def seed(api: Stub) -> None:
    """Log the dataset of the module docstring, deliberately not in symbol or time order."""
    now = datetime.now(UTC)

    def ago(**delta: float) -> timestamp_pb2.Timestamp:
        return ts(now - timedelta(**delta))

    async def log(request: pb.LogDecisionRequest) -> str:
        decision_id: str = (await api.LogDecision(request)).decision.id
        return decision_id

    async def close(decision_id: str, pnl: str, r: float) -> None:
        request = pb.RecordOutcomeRequest(decision_id=decision_id, outcome_pnl=pnl, outcome_r_multiple=r)
        closed = (await api.RecordOutcome(request)).decision
        assert closed.HasField("outcome_pnl")

    # S1, S2, S3, O4
    await log(signal(symbol="SOL", decided_at=ago(hours=1)))
    sol_risk = [risk("daily_loss", False, 0.06, 0.05)]
    await log(risk_reject(symbol="SOL", risk_checks=sol_risk, decided_at=ago(hours=2)))
    sol_gates = [gate("supermajority", True), gate("price_band", False, 1.4, 1.0), gate("freshness", False)]
    await log(skip(symbol="SOL", direction=pb.DIRECTION_NONE, gates=sol_gates, decided_at=ago(days=5)))
    await log(signal(symbol="SOL", decided_at=ago(days=8)))

    # E1, E2, E3, E4, E5, O3
    e1 = await log(signal(symbol="ETH", direction=pb.DIRECTION_SHORT, decided_at=ago(minutes=30)))
    await close(e1, "75.12345678", 1.5)
    await close(await log(signal(symbol="ETH", decided_at=ago(days=2))), "-10", -0.5)
    e3_gates = [gate("supermajority", False), gate("freshness", False)]
    await log(skip(symbol="ETH", gates=e3_gates, decided_at=ago(hours=5)))
    e4_gates = [gate("supermajority", True), gate("whale_veto", False)]
    await log(skip(symbol="ETH", gates=e4_gates, decided_at=ago(days=4)))
    e5_gates = [gate("freshness", False, 400, 300), gate("ev_gate", False, -0.1, 0.2)]
    await log(skip(symbol="ETH", gates=e5_gates, decided_at=ago(hours=6)))
    await log(skip(symbol="ETH", gates=[gate("freshness", False)], decided_at=ago(days=30)))

    # B1, B2, B3 (breakeven), B4, B5 (supermajority failed), B6 (max_exposure failed), O1
    await close(await log(signal(symbol="BTC", decided_at=ago(hours=1))), "120.5", 2.0)
    b2 = await log(signal(symbol="BTC", direction=pb.DIRECTION_SHORT, decided_at=ago(hours=2)))
    await close(b2, "-40.25", -1.0)
    await close(await log(signal(symbol="BTC", decided_at=ago(days=3))), "0", 0.25)
    await log(signal(symbol="BTC", decided_at=ago(hours=3)))
    await log(skip(symbol="BTC", decided_at=ago(hours=4)))
    await log(risk_reject(symbol="BTC", decided_at=ago(days=3)))
    await close(await log(signal(symbol="BTC", decided_at=ago(days=10))), "1000", 5.0)

    # O2: DOGE only has decisions outside the 7-day window.
    o2_gates = [gate("supermajority", False), gate("old_gate", False)]
    await log(skip(symbol="DOGE", gates=o2_gates, decided_at=ago(days=8)))

    # A1
    a1 = await log(signal(symbol="AVAX", direction=pb.DIRECTION_SHORT, decided_at=ago(minutes=10)))
    await close(a1, "-0.00000001", -0.0001)


async def db_now(db: asyncpg.Pool) -> datetime:
    moment: datetime = await db.fetchval("SELECT NOW()")
    return moment


async def test_seven_day_window(api: Stub, clean_db: asyncpg.Pool) -> None:
    await seed(api)
    before = await db_now(clean_db)
    response = await api.GetStats(pb.GetStatsRequest(days=7))
    after = await db_now(clean_db)

    assert fields_of(response) == ALL_7
    assert by_symbol(response) == [("AVAX", AVAX_7), ("BTC", BTC_7), ("ETH", ETH_7), ("SOL", SOL_7)]
    assert gate_failures(response) == GATES_7
    assert response.days == 7
    window_start = response.window_start.ToDatetime(tzinfo=UTC)
    assert before - timedelta(days=7) <= window_start <= after - timedelta(days=7)


async def test_days_defaults_to_seven(api: Stub, clean_db: asyncpg.Pool) -> None:
    await seed(api)
    for request in (pb.GetStatsRequest(), pb.GetStatsRequest(days=0), pb.GetStatsRequest(symbol="")):
        before = await db_now(clean_db)
        response = await api.GetStats(request)
        after = await db_now(clean_db)
        assert response.days == 7
        assert fields_of(response) == ALL_7
        assert by_symbol(response) == [("AVAX", AVAX_7), ("BTC", BTC_7), ("ETH", ETH_7), ("SOL", SOL_7)]
        assert gate_failures(response) == GATES_7
        window_start = response.window_start.ToDatetime(tzinfo=UTC)
        assert before - timedelta(days=7) <= window_start <= after - timedelta(days=7)


async def test_one_day_window(api: Stub, clean_db: asyncpg.Pool) -> None:
    await seed(api)
    before = await db_now(clean_db)
    response = await api.GetStats(pb.GetStatsRequest(days=1))
    after = await db_now(clean_db)

    assert fields_of(response) == ALL_1
    assert by_symbol(response) == [("AVAX", AVAX_7), ("BTC", BTC_1), ("ETH", ETH_1), ("SOL", SOL_1)]
    assert gate_failures(response) == GATES_1
    assert response.days == 1
    window_start = response.window_start.ToDatetime(tzinfo=UTC)
    assert before - timedelta(days=1) <= window_start <= after - timedelta(days=1)


async def test_year_window_includes_the_old_decisions(api: Stub) -> None:
    await seed(api)
    response = await api.GetStats(pb.GetStatsRequest(days=365))
    assert response.days == 365
    assert fields_of(response) == ALL_365
    assert [s.symbol for s in response.by_symbol] == ["AVAX", "BTC", "DOGE", "ETH", "SOL"]
    doge = response.by_symbol[2]
    assert fields_of(doge) == summary(
        total=1,
        signals=0,
        skips=1,
        risk_rejects=0,
        skip_rate=1.0,
        closed=0,
        wins=0,
        losses=0,
        pending=0,
        win_rate=0,
        avg_r=0,
        pnl="0.00000000",
    )
    assert gate_failures(response) == GATES_365


async def test_symbol_filter(api: Stub) -> None:
    await seed(api)
    eth = await api.GetStats(pb.GetStatsRequest(symbol="ETH"))
    assert eth.days == 7
    assert fields_of(eth) == ETH_7
    assert by_symbol(eth) == [("ETH", ETH_7)]
    # E3 failed supermajority and freshness, E4 whale_veto, E5 freshness and ev_gate.
    assert gate_failures(eth) == [("freshness", 2), ("ev_gate", 1), ("supermajority", 1), ("whale_veto", 1)]

    btc_day = await api.GetStats(pb.GetStatsRequest(symbol="BTC", days=1))
    assert fields_of(btc_day) == BTC_1
    assert by_symbol(btc_day) == [("BTC", BTC_1)]
    assert gate_failures(btc_day) == [("supermajority", 1)]

    # DOGE only has decisions outside the window; "eth" is another coin than "ETH".
    for symbol in ("DOGE", "eth", "XRP"):
        empty = await api.GetStats(pb.GetStatsRequest(symbol=symbol))
        assert fields_of(empty) == ZERO, symbol
        assert list(empty.by_symbol) == []
        assert list(empty.gate_failures) == []


async def test_empty_database(api: Stub, clean_db: asyncpg.Pool) -> None:
    before = await db_now(clean_db)
    response = await api.GetStats(pb.GetStatsRequest())
    after = await db_now(clean_db)
    assert fields_of(response) == ZERO
    assert response.totals.total_pnl == "0.00000000"
    assert list(response.by_symbol) == []
    assert list(response.gate_failures) == []
    assert response.days == 7
    window_start = response.window_start.ToDatetime(tzinfo=UTC)
    assert before - timedelta(days=7) <= window_start <= after - timedelta(days=7)


async def test_window_bounds_are_accepted(api: Stub) -> None:
    await seed(api)
    assert (await api.GetStats(pb.GetStatsRequest(days=1))).days == 1
    assert (await api.GetStats(pb.GetStatsRequest(days=365))).days == 365


async def test_days_out_of_range_is_invalid(api: Stub) -> None:
    for days in (366, -1, 1000, -(2**31), 2**31 - 1):
        fields = await invalid_fields(api.GetStats(pb.GetStatsRequest(days=days)))
        assert list(fields) == ["days"], days


async def test_malformed_symbol_is_invalid(api: Stub) -> None:
    for symbol in ("BTC-PERP", "A" * 17, "BT C", "ETH\t"):
        fields = await invalid_fields(api.GetStats(pb.GetStatsRequest(symbol=symbol)))
        assert list(fields) == ["symbol"], symbol
    both = await invalid_fields(api.GetStats(pb.GetStatsRequest(days=366, symbol="$$$")))
    assert set(both) == {"days", "symbol"}
