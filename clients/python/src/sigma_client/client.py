"""An async, typed client of sigma.v1.DecisionService for hl-decide.

    async with DecisionClient("127.0.0.1:50051") as client:
        decision = await client.log_decision(
            symbol="BTC", direction="long", decision_type="signal",
            trader_count=7, agreement_pct=0.8, effective_k=3.2,
            gates=[Gate("supermajority", True, 0.8, 0.7)],
            price_at_decision="97123.5",
        )
        await client.record_outcome(decision.id, pnl="12.5", r_multiple=1.2)

Every call has a deadline (5 s by default). Calls that fail with UNAVAILABLE
(server restarting, connection refused) are retried by gRPC's own retry policy
with exponential backoff. That is safe for every method: LogDecision always
carries a request_id (one is generated when the caller gives none), so a retry
of a call that did reach the server returns the first decision; RecordOutcome
is idempotent by value; the others only read.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import Any

import grpc

from sigma_grpc.api.decision_convert import DECISION_TYPE_TO_PB, DIRECTION_TO_PB, OUTCOME_TO_PB
from sigma_grpc.api.wire import timestamp
from sigma_grpc.domain.models import DecisionType, Direction, Gate, OutcomeFilter, RiskCheck
from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as pb
from sigma_grpc.gen.sigma.v1 import decision_service_pb2_grpc as pb_grpc

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_MAX_ATTEMPTS = 5

__all__ = ["DecisionClient", "DecisionType", "Direction", "Gate", "OutcomeFilter", "RiskCheck"]


def _service_config(max_attempts: int) -> str:
    return json.dumps(
        {
            "methodConfig": [
                {
                    "name": [{"service": "sigma.v1.DecisionService"}],
                    "retryPolicy": {
                        "maxAttempts": max_attempts,
                        "initialBackoff": "0.1s",
                        "maxBackoff": "2s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ]
        }
    )


def _decimal_text(value: Decimal | str) -> str:
    return format(value, "f") if isinstance(value, Decimal) else value


class DecisionClient:
    """A connection to sigma-grpc; use as an async context manager or call `close()`."""

    def __init__(
        self,
        target: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        options: list[tuple[str, Any]] = [
            ("grpc.enable_retries", 1),
            ("grpc.service_config", _service_config(max_attempts)),
            # Reconnect quickly after a server restart instead of backing off for seconds.
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 2000),
        ]
        self._channel = (
            grpc.aio.secure_channel(target, credentials, options=options)
            if credentials
            else grpc.aio.insecure_channel(target, options=options)
        )
        self._stub = pb_grpc.DecisionServiceStub(self._channel)
        self._timeout = timeout

    async def __aenter__(self) -> DecisionClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def log_decision(
        self,
        *,
        symbol: str,
        direction: Direction | str,
        decision_type: DecisionType | str,
        trader_count: int,
        agreement_pct: float,
        effective_k: float,
        gates: Sequence[Gate] = (),
        risk_checks: Sequence[RiskCheck] = (),
        avg_confidence: float | None = None,
        ev_estimate: float | None = None,
        price_at_decision: Decimal | str | None = None,
        decided_at: datetime | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> pb.Decision:
        """Record a decision; `direction` is long/short/none, `decision_type` signal/skip/risk_reject."""
        request = pb.LogDecisionRequest(
            symbol=symbol,
            direction=DIRECTION_TO_PB[Direction(direction)],
            decision_type=DECISION_TYPE_TO_PB[DecisionType(decision_type)],
            trader_count=trader_count,
            agreement_pct=agreement_pct,
            effective_k=effective_k,
            avg_confidence=avg_confidence,
            ev_estimate=ev_estimate,
            price_at_decision=None if price_at_decision is None else _decimal_text(price_at_decision),
            gates=[
                pb.Gate(name=g.name, passed=g.passed, value=g.value, threshold=g.threshold) for g in gates
            ],
            risk_checks=[
                pb.RiskCheck(name=c.name, passed=c.passed, value=c.value, limit=c.limit) for c in risk_checks
            ],
            request_id=request_id or str(uuid.uuid4()),
            decided_at=None if decided_at is None else timestamp(decided_at),
        )
        response = await self._stub.LogDecision(request, timeout=timeout or self._timeout)
        return response.decision

    async def get_decision(self, decision_id: str, *, timeout: float | None = None) -> pb.Decision:
        response = await self._stub.GetDecision(
            pb.GetDecisionRequest(id=decision_id), timeout=timeout or self._timeout
        )
        return response.decision

    async def list_decisions(
        self,
        *,
        symbol: str = "",
        decision_type: DecisionType | str | None = None,
        direction: Direction | str | None = None,
        outcome: OutcomeFilter | str | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> pb.ListDecisionsResponse:
        """One page of decisions, newest first; pass `next_page_token` back for the next."""
        request = pb.ListDecisionsRequest(
            symbol=symbol,
            decision_type=(
                DECISION_TYPE_TO_PB[DecisionType(decision_type)]
                if decision_type
                else pb.DECISION_TYPE_UNSPECIFIED
            ),
            direction=DIRECTION_TO_PB[Direction(direction)] if direction else pb.DIRECTION_UNSPECIFIED,
            outcome=OUTCOME_TO_PB[OutcomeFilter(outcome)] if outcome else pb.OUTCOME_UNSPECIFIED,
            start_time=None if start_time is None else timestamp(start_time),
            end_time=None if end_time is None else timestamp(end_time),
            page_size=page_size,
            page_token=page_token,
        )
        response: pb.ListDecisionsResponse = await self._stub.ListDecisions(
            request, timeout=timeout or self._timeout
        )
        return response

    async def iter_decisions(self, **filters: Any) -> AsyncIterator[pb.Decision]:
        """Every decision matching the filters of `list_decisions`, page by page."""
        token = ""
        while True:
            page = await self.list_decisions(**filters, page_token=token)
            for decision in page.decisions:
                yield decision
            token = page.next_page_token
            if not token:
                return

    async def get_stats(
        self, *, days: int | None = None, symbol: str | None = None, timeout: float | None = None
    ) -> pb.GetStatsResponse:
        response: pb.GetStatsResponse = await self._stub.GetStats(
            pb.GetStatsRequest(days=days, symbol=symbol), timeout=timeout or self._timeout
        )
        return response

    async def record_outcome(
        self,
        decision_id: str,
        *,
        pnl: Decimal | str,
        r_multiple: float,
        closed_at: datetime | None = None,
        timeout: float | None = None,
    ) -> pb.Decision:
        request = pb.RecordOutcomeRequest(
            decision_id=decision_id,
            outcome_pnl=_decimal_text(pnl),
            outcome_r_multiple=r_multiple,
            outcome_closed_at=None if closed_at is None else timestamp(closed_at),
        )
        response = await self._stub.RecordOutcome(request, timeout=timeout or self._timeout)
        return response.decision


def gates_from_dicts(gates: Sequence[Mapping[str, Any]]) -> list[Gate]:
    """Gates in the plan's dict shape ({"name", "passed", "value", "threshold"})."""
    return [Gate(g["name"], bool(g["passed"]), g.get("value"), g.get("threshold")) for g in gates]
