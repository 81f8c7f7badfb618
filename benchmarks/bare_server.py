"""The LogDecision benchmark's baseline: the least a gRPC server can do for that call.

    BENCH_BARE_DATABASE_URL=postgresql://... python -m benchmarks.bare_server

A grpc.aio server on 127.0.0.1 (a free port, printed as `port N` on stdout once
it serves) with one generic handler on /sigma.v1.DecisionService/LogDecision and
no interceptors, validation, reasoning or idempotency check: it decodes the
request, runs one asyncpg INSERT of the same row into the same decision_logs
table, and answers. What `serve` does on top of this is what the benchmark
prices. Kept equal on purpose:

- the INSERT keeps `ON CONFLICT (request_id) DO NOTHING` and the request id, so
  the same unique index does the same work, and the table's own triggers run;
- the answer echoes the request into a Decision with the stored id and times, so
  as many bytes go back as the service sends;
- the pool has `serve`'s size (SIGMA_DB_POOL_SIZE's default) and, like it, opens
  connections on demand; the loop is asyncio's default, as in `serve`.

Runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from decimal import Decimal
from typing import Any

import asyncpg
import grpc
from google.protobuf import timestamp_pb2

from sigma_grpc.config import Settings
from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as pb

URL_VARIABLE = "BENCH_BARE_DATABASE_URL"
_DIRECTIONS = {pb.DIRECTION_LONG: "long", pb.DIRECTION_SHORT: "short", pb.DIRECTION_NONE: "none"}
_TYPES = {
    pb.DECISION_TYPE_SIGNAL: "signal",
    pb.DECISION_TYPE_SKIP: "skip",
    pb.DECISION_TYPE_RISK_REJECT: "risk_reject",
}
_INSERT = """
    INSERT INTO decision_logs (
        symbol, direction, decision_type, trader_count, agreement_pct, effective_k, avg_confidence,
        ev_estimate, price_at_decision, gates, risk_checks, reasoning, request_id
    )
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11::jsonb, $12, $13)
    ON CONFLICT (request_id) DO NOTHING
    RETURNING id, created_at, decided_at
"""
# The service writes a reasoning of about this length for a typical decision.
_REASONING = "Skipped: 7 traders detected but gates failed. only 62% agreement (need 70%)."


def _timestamp(value: Any) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _optional(message: Any, name: str) -> float | None:
    return getattr(message, name) if message.HasField(name) else None


class BareLogDecision:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def log_decision(
        self, request: pb.LogDecisionRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.LogDecisionResponse:
        gates = [
            {
                "name": g.name,
                "passed": g.passed,
                "value": _optional(g, "value"),
                "threshold": _optional(g, "threshold"),
            }
            for g in request.gates
        ]
        checks = [
            {
                "name": c.name,
                "passed": c.passed,
                "value": _optional(c, "value"),
                "limit": _optional(c, "limit"),
            }
            for c in request.risk_checks
        ]
        row = await self._pool.fetchrow(
            _INSERT,
            request.symbol,
            _DIRECTIONS[request.direction],
            _TYPES[request.decision_type],
            request.trader_count,
            Decimal(repr(request.agreement_pct)),
            Decimal(repr(request.effective_k)),
            Decimal(repr(request.avg_confidence)) if request.HasField("avg_confidence") else None,
            Decimal(repr(request.ev_estimate)) if request.HasField("ev_estimate") else None,
            Decimal(request.price_at_decision) if request.HasField("price_at_decision") else None,
            json.dumps(gates),
            json.dumps(checks),
            _REASONING,
            request.request_id if request.HasField("request_id") else None,
        )
        if row is None:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, "request_id used")
        decision = pb.Decision(
            id=str(row["id"]),
            created_at=_timestamp(row["created_at"]),
            decided_at=_timestamp(row["decided_at"]),
            symbol=request.symbol,
            direction=request.direction,
            decision_type=request.decision_type,
            trader_count=request.trader_count,
            agreement_pct=request.agreement_pct,
            effective_k=request.effective_k,
            avg_confidence=request.avg_confidence,
            ev_estimate=request.ev_estimate,
            price_at_decision=request.price_at_decision,
            gates=request.gates,
            risk_checks=request.risk_checks,
            reasoning=_REASONING,
            request_id=request.request_id,
        )
        return pb.LogDecisionResponse(decision=decision)


async def main() -> None:
    url = os.environ[URL_VARIABLE]
    pool = await asyncpg.create_pool(url, min_size=0, max_size=Settings().db_pool_size)
    assert pool is not None
    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(
        # A bound coroutine method: grpc.aio tells async handlers apart with iscoroutinefunction.
        BareLogDecision(pool).log_decision,
        request_deserializer=pb.LogDecisionRequest.FromString,
        response_serializer=pb.LogDecisionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("sigma.v1.DecisionService", {"LogDecision": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"port {port}", flush=True)
    await stop.wait()
    await server.stop(1)
    await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
