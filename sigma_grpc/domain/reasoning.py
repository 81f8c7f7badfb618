"""The human-readable reasoning of a decision.

The sentences for a signal, a skip of the plan's five gates and a risk reject
follow the Phase 3e plan word for word. Unlike the plan, every failed gate is
named (also gates the plan does not know), failed risk checks are listed, and a
missing value never renders as `None`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from sigma_grpc.domain.models import DecisionType, Direction, Gate, NewDecision, RiskCheck


def _number(value: float) -> str:
    """A compact rendering for values whose unit we do not know."""
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return format(value, ".6g")


def _comparison(value: float | None, bound: float | None, bound_name: str) -> str:
    """ "value V vs <bound_name> B", leaving out whichever is missing ("" when both are)."""
    parts = []
    if value is not None:
        parts.append(f"value {_number(value)}")
    if bound is not None:
        parts.append(f"{bound_name} {_number(bound)}")
    return " vs ".join(parts)


def _generic_gate(gate: Gate) -> str:
    detail = _comparison(gate.value, gate.threshold, "threshold")
    return f"gate {gate.name} failed" + (f": {detail}" if detail else "")


def _supermajority(g: Gate) -> str | None:
    if g.value is None or g.threshold is None:
        return None
    return f"only {g.value:.0%} agreement (need {g.threshold:.0%})"


def _effective_k(g: Gate) -> str | None:
    if g.value is None or g.threshold is None:
        return None
    return f"effK={g.value:.1f} too low (need {g.threshold:.1f})"


def _freshness(g: Gate) -> str | None:
    return None if g.value is None else f"signal {g.value:.0f}s stale"


def _price_band(g: Gate) -> str | None:
    return None if g.value is None else f"price drifted {g.value:.2f}R"


def _ev_gate(g: Gate) -> str | None:
    return None if g.value is None else f"EV={g.value:.2f}R below threshold"


_KNOWN_GATES: dict[str, Callable[[Gate], str | None]] = {
    "supermajority": _supermajority,
    "effective_k": _effective_k,
    "freshness": _freshness,
    "price_band": _price_band,
    "ev_gate": _ev_gate,
}


def describe_failed_gate(gate: Gate) -> str:
    """The plan's phrase for a known gate with its values, the generic phrase otherwise."""
    phrase = _KNOWN_GATES.get(gate.name)
    return (phrase(gate) if phrase else None) or _generic_gate(gate)


def describe_failed_risk_check(check: RiskCheck) -> str:
    detail = _comparison(check.value, check.limit, "limit")
    return check.name + (f" ({detail})" if detail else "")


def generate_reasoning(
    *,
    decision_type: DecisionType,
    symbol: str,
    direction: Direction,
    trader_count: int,
    agreement_pct: float,
    effective_k: float,
    gates: Sequence[Gate],
    risk_checks: Sequence[RiskCheck],
) -> str:
    """Two to four sentences saying why the engine decided what it did."""
    if decision_type is DecisionType.SIGNAL:
        return (
            f"{trader_count} Alpha Pool traders opened {direction.value.upper()} {symbol}. "
            f"{agreement_pct:.0%} agreement with effK={effective_k:.1f}. "
            f"All consensus gates passed."
        )
    if decision_type is DecisionType.SKIP:
        reasons = [describe_failed_gate(g) for g in gates if not g.passed]
        return f"Skipped: {trader_count} traders detected but gates failed. {'; '.join(reasons)}."
    failed = [describe_failed_risk_check(c) for c in risk_checks if not c.passed]
    return (
        f"Consensus detected but rejected by risk limits. "
        f"{trader_count} traders, {agreement_pct:.0%} agreement. "
        f"Failed risk checks: {', '.join(failed)}."
    )


def reasoning_for(decision: NewDecision) -> str:
    """The reasoning of a validated decision, quoting the rounded values that are stored."""
    return generate_reasoning(
        decision_type=decision.decision_type,
        symbol=decision.symbol,
        direction=decision.direction,
        trader_count=decision.trader_count,
        agreement_pct=float(decision.agreement_pct),
        effective_k=float(decision.effective_k),
        gates=decision.gates,
        risk_checks=decision.risk_checks,
    )
