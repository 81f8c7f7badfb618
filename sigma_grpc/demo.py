"""Sample data for a first look at the dashboard: `sigma-grpc serve --demo`.

A week of decisions on a few coins, as the signal engine would log them (about
two thirds skips, some risk rejects, the rest signals), outcomes on most signals
that have had time to close, and paper executions of most signals. Everything is
written through the service's own use cases (validation, reasoning, outcome
rules) and marked: request ids `demo-N`, executions by the actor `demo`. It is
seeded only into an empty decision log, so it never mixes with real decisions.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from decimal import Decimal

from sigma_grpc.clock import Clock
from sigma_grpc.domain.execution import ExecutionStatus, Result, cloid_for, side_for
from sigma_grpc.domain.models import Decision, DecisionType, Direction, Gate, RiskCheck
from sigma_grpc.domain.validation import DecisionInput, OutcomeInput, RawTimestamp
from sigma_grpc.services.decisions import DecisionLog
from sigma_grpc.storage.executions import ExecutionStore

log = logging.getLogger(__name__)

_COINS = {
    "BTC": Decimal("97123.5"),
    "ETH": Decimal("3412.25"),
    "SOL": Decimal("187.42"),
    "kPEPE": Decimal("0.01834"),
}
_PAPER_EQUITY = Decimal(10000)


def _raw(moment: datetime) -> RawTimestamp:
    seconds = int(moment.timestamp())
    return RawTimestamp(seconds=seconds, nanos=int((moment.timestamp() - seconds) * 1e9) // 1000 * 1000)


def _gates(rng: random.Random, agreement: float, effective_k: float, fail: bool) -> tuple[Gate, ...]:
    freshness = rng.uniform(5, 90)
    ev = rng.uniform(-0.2, 1.2)
    gates = [
        Gate("supermajority", agreement >= 0.7, round(agreement, 4), 0.7),
        Gate("effective_k", effective_k >= 2.0, round(effective_k, 3), 2.0),
        Gate("freshness", freshness <= 60, round(freshness, 1), 60.0),
        Gate("ev_gate", ev >= 0.2, round(ev, 2), 0.2),
    ]
    if fail and all(g.passed for g in gates):
        gates[rng.randrange(len(gates))] = Gate("price_band", False, round(rng.uniform(1.1, 2.5), 2), 1.0)
    if not fail:
        gates = [Gate(g.name, True, g.value, g.threshold) for g in gates]
    return tuple(gates)


async def seed_demo(
    decisions: DecisionLog,
    executions: ExecutionStore,
    *,
    clock: Clock,
    network: str,
    count: int = 160,
    seed: int = 7,
) -> int:
    """Log `count` sample decisions over the last week; how many were logged (0 when the log is not empty)."""
    if await decisions.has_any():
        log.info("demo data not seeded: the decision log already has decisions")
        return 0
    rng = random.Random(seed)  # noqa: S311 (sample data, not security)
    now = clock()
    for n in range(count):
        decided_at = now - timedelta(minutes=rng.uniform(10, 7 * 24 * 60))
        symbol = rng.choice(list(_COINS))
        price = _COINS[symbol] * Decimal(str(round(rng.uniform(0.95, 1.05), 4)))
        roll = rng.random()
        kind = DecisionType.SIGNAL
        if roll < 0.75:
            kind = DecisionType.SKIP if roll < 0.65 else DecisionType.RISK_REJECT
        direction = rng.choice([Direction.LONG, Direction.SHORT])
        traders = rng.randint(3, 12)
        agreement = rng.uniform(0.72, 0.95) if kind is not DecisionType.SKIP else rng.uniform(0.5, 0.9)
        effective_k = rng.uniform(2.0, 6.0) if kind is not DecisionType.SKIP else rng.uniform(1.0, 4.0)
        risk: tuple[RiskCheck, ...] = ()
        if kind is DecisionType.RISK_REJECT:
            risk = (RiskCheck("max_exposure", False, round(rng.uniform(0.1, 0.2), 3), 0.1),)
        elif kind is DecisionType.SIGNAL:
            risk = (RiskCheck("max_exposure", True, round(rng.uniform(0.0, 0.08), 3), 0.1),)
        decision, _ = await decisions.log(
            DecisionInput(
                symbol=symbol,
                direction=direction,
                decision_type=kind,
                trader_count=traders,
                agreement_pct=agreement,
                effective_k=effective_k,
                avg_confidence=round(rng.uniform(0.5, 0.9), 4),
                ev_estimate=round(rng.uniform(0.1, 1.5), 4),
                price_at_decision=format(price.quantize(Decimal("0.00001")), "f"),
                gates=_gates(rng, agreement, effective_k, fail=kind is DecisionType.SKIP),
                risk_checks=risk,
                request_id=f"demo-{n}",
                decided_at=_raw(decided_at),
            )
        )
        if kind is not DecisionType.SIGNAL:
            continue
        if rng.random() < 0.85:
            await _paper_execution(executions, decision, network)
        if decided_at < now - timedelta(hours=6) and rng.random() < 0.85:
            r_multiple = round(rng.gauss(0.35, 1.2), 2)
            closed_at = decided_at + timedelta(hours=rng.uniform(1, 5))
            await decisions.record_outcome(
                OutcomeInput(
                    decision_id=str(decision.id),
                    outcome_pnl=format(Decimal(str(r_multiple)) * Decimal(50), "f"),
                    outcome_r_multiple=r_multiple,
                    outcome_closed_at=_raw(min(closed_at, now)),
                )
            )
    log.info("demo data: %d sample decisions logged", count)
    return count


async def _paper_execution(executions: ExecutionStore, decision: Decision, network: str) -> None:
    """A paper execution as a dry run records it: 2 % of the paper equity filled at the decision's price."""
    assert decision.price_at_decision is not None
    price = decision.price_at_decision
    claim = await executions.claim(
        decision_id=decision.id,
        symbol=decision.symbol,
        side=side_for(decision.direction),
        leverage=3,
        cloid=cloid_for(decision.id),
        network=network,
        account_address=None,
        dry_run=True,
        order_expires_at=decision.decided_at + timedelta(seconds=60),
        requested_by="demo",
        actor="demo",
    )
    if claim is None:
        return
    size = (_PAPER_EQUITY * Decimal("0.02") / price).quantize(Decimal("0.0001"))
    filled = Result(
        ExecutionStatus.SIMULATED, size=size, fill_price=price, fill_size=size, mid_price=price, leverage=3
    )
    await executions.record(claim.id, filled, "demo")
