"""Decisions as hl-decide logs them, for the write benchmarks: LogDecision requests and table rows.

The mix follows the seeded history (70 % skips, 10 % risk rejects, the rest
signals; the plan's five gates, two risk checks), so a write costs what a real
one costs: the same JSONB sizes, the same type rules, a request id each.
"""

from __future__ import annotations

import hashlib
import json
import random
from datetime import datetime
from decimal import Decimal
from typing import Any

from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as pb

_SYMBOLS = (
    ("BTC", "97123.5"),
    ("ETH", "3412.25"),
    ("SOL", "187.42"),
    ("kPEPE", "0.01834"),
    ("HYPE", "24.61"),
)
# The LogDecisionRequest field number of `request_id` (a string: wire type 2).
_REQUEST_ID_TAG = bytes([(12 << 3) | 2])

_PRICE_SCALE = Decimal("0.00000001")
# Ten variants are enough to vary the rows; more would only cost the client time to build.
VARIANTS = 10


def _gates(rng: random.Random, failing: set[str]) -> list[dict[str, Any]]:
    def gate(name: str, passed_value: float, failed_value: float, threshold: float) -> dict[str, Any]:
        passed = name not in failing
        return {
            "name": name,
            "passed": passed,
            "value": round(passed_value if passed else failed_value, 4),
            "threshold": threshold,
        }

    return [
        gate("supermajority", rng.uniform(0.7, 0.98), rng.uniform(0.45, 0.69), 0.7),
        gate("effective_k", rng.uniform(2.0, 7.0), rng.uniform(0.8, 1.99), 2.0),
        gate("freshness", rng.uniform(2, 59), rng.uniform(61, 260), 60.0),
        gate("price_band", rng.uniform(0, 0.99), rng.uniform(1.01, 2.5), 1.0),
        gate("ev_gate", rng.uniform(0.2, 1.5), rng.uniform(-0.3, 0.19), 0.2),
    ]


def decision(n: int) -> dict[str, Any]:
    """The `n`th sample decision (deterministic), as plain values in the API's terms."""
    rng = random.Random(n)  # noqa: S311 (sample data, not security)
    symbol, price = _SYMBOLS[n % len(_SYMBOLS)]
    roll = n % 10
    kind = "skip" if roll < 7 else ("risk_reject" if roll == 7 else "signal")
    failing: set[str] = set()
    if kind == "skip":
        failing = {"supermajority"} if n % 3 else {"effective_k", "ev_gate"}
    gates = _gates(rng, failing)
    risk: list[dict[str, Any]] = []
    if kind != "skip":
        risk = [
            {
                "name": "max_exposure",
                "passed": kind == "signal",
                "value": 0.06 if kind == "signal" else 0.13,
                "limit": 0.1,
            },
            {"name": "daily_loss", "passed": True, "value": 0.01, "limit": 0.03},
        ]
    return {
        "symbol": symbol,
        "direction": "none" if kind == "skip" and n % 4 == 0 else ("long" if n % 2 else "short"),
        "decision_type": kind,
        "trader_count": 3 + n % 9,
        "agreement_pct": gates[0]["value"],
        "effective_k": round(gates[1]["value"], 3),
        "avg_confidence": round(rng.uniform(0.5, 0.95), 4),
        "ev_estimate": round(rng.uniform(-0.5, 1.5), 4),
        "price_at_decision": format(
            (Decimal(price) * Decimal(str(round(rng.uniform(0.95, 1.05), 4)))).quantize(_PRICE_SCALE), "f"
        ),
        "gates": gates,
        "risk_checks": risk,
    }


_DIRECTION = {"long": pb.DIRECTION_LONG, "short": pb.DIRECTION_SHORT, "none": pb.DIRECTION_NONE}
_TYPE = {
    "signal": pb.DECISION_TYPE_SIGNAL,
    "skip": pb.DECISION_TYPE_SKIP,
    "risk_reject": pb.DECISION_TYPE_RISK_REJECT,
}


def request(n: int, request_id: str | None = None) -> pb.LogDecisionRequest:
    d = decision(n)
    message = pb.LogDecisionRequest(
        symbol=d["symbol"],
        direction=_DIRECTION[d["direction"]],
        decision_type=_TYPE[d["decision_type"]],
        trader_count=d["trader_count"],
        agreement_pct=d["agreement_pct"],
        effective_k=d["effective_k"],
        avg_confidence=d["avg_confidence"],
        ev_estimate=d["ev_estimate"],
        price_at_decision=d["price_at_decision"],
        gates=[pb.Gate(**g) for g in d["gates"]],
        risk_checks=[pb.RiskCheck(**c) for c in d["risk_checks"]],
    )
    if request_id is not None:
        message.request_id = request_id
    return message


def with_request_id(template: bytes, request_id: str) -> bytes:
    """A serialised request plus its `request_id` field, without building a message.

    Protobuf lets a field be appended to an encoded message, so the load client
    serialises each variant once and adds only the id per call: its CPU goes to
    sending calls rather than to encoding them (on two shared cores, a busy client
    would slow the server it measures).
    """
    raw = request_id.encode()
    if not 0 < len(raw) < 128:  # a one-byte varint length
        raise ValueError("request ids here are 1-127 bytes")
    return template + _REQUEST_ID_TAG + bytes([len(raw)]) + raw


INSERT_COLUMNS = (
    "symbol, direction, decision_type, trader_count, agreement_pct, effective_k, avg_confidence, "
    "ev_estimate, price_at_decision, gates, risk_checks, reasoning, request_id, request_hash, decided_at"
)


def row(n: int, request_id: str, decided_at: datetime) -> tuple[Any, ...]:
    """The `n`th sample decision as the values of INSERT_COLUMNS (JSONB as text, cast in the SQL)."""
    d = decision(n)
    reasoning = (
        f"Sample {d['decision_type']} on {d['symbol']}: {d['trader_count']} traders, "
        f"{d['agreement_pct']:.0%} agreement with effK={d['effective_k']:.1f}."
    )
    return (
        d["symbol"],
        d["direction"],
        d["decision_type"],
        d["trader_count"],
        Decimal(str(d["agreement_pct"])),
        Decimal(str(d["effective_k"])),
        Decimal(str(d["avg_confidence"])),
        Decimal(str(d["ev_estimate"])),
        Decimal(d["price_at_decision"]),
        json.dumps(d["gates"]),
        json.dumps(d["risk_checks"]),
        reasoning,
        request_id,
        hashlib.sha256(request_id.encode()).digest(),
        decided_at,
    )
