"""sigma.v1.ExecutionService over gRPC: convert, call the executor, convert back."""

from __future__ import annotations

import time

import grpc

from sigma_grpc.api.convert import decimal_text, optional_float, timestamp
from sigma_grpc.api.errors import rpc
from sigma_grpc.domain.errors import FieldViolation, InvalidArgument
from sigma_grpc.domain.execution import (
    UPDATABLE_FIELDS,
    Execution,
    ExecutionConfig,
    ExecutionReason,
    ExecutionStatus,
    Side,
)
from sigma_grpc.executor import Executor
from sigma_grpc.gen.sigma.v1 import execution_service_pb2 as pb
from sigma_grpc.gen.sigma.v1 import execution_service_pb2_grpc as pb_grpc

Context = grpc.aio.ServicerContext

_STATUS_TO_PB = {
    status: pb.ExecutionStatus.Value(f"EXECUTION_STATUS_{status.name}") for status in ExecutionStatus
}
_STATUS_FROM_PB = {number: status for status, number in _STATUS_TO_PB.items()}
_REASON_TO_PB = {
    reason: pb.ExecutionReason.Value(f"EXECUTION_REASON_{reason.name}") for reason in ExecutionReason
}
_SIDE_TO_PB = {Side.BUY: pb.SIDE_BUY, Side.SELL: pb.SIDE_SELL}
# Callers may name who changes the config; otherwise the peer address is recorded.
ACTOR_METADATA_KEY = "x-sigma-actor"


def execution_message(e: Execution) -> pb.Execution:
    return pb.Execution(
        id=str(e.id),
        decision_id=str(e.decision_id),
        created_at=timestamp(e.created_at),
        updated_at=timestamp(e.updated_at),
        symbol=e.symbol,
        side=_SIDE_TO_PB[e.side],
        size=format(e.size, "f"),
        leverage=e.leverage,
        status=_STATUS_TO_PB[e.status],
        fill_price=decimal_text(e.fill_price),
        fill_size=decimal_text(e.fill_size),
        error_message=e.error_message or "",
        reason=_REASON_TO_PB[e.reason] if e.reason else pb.EXECUTION_REASON_UNSPECIFIED,
        position_pct=optional_float(e.position_pct),
        exposure_before=optional_float(e.exposure_before),
        exposure_after=optional_float(e.exposure_after),
        cloid=e.cloid,
        exchange_order_id=e.exchange_order_id,
        network=e.network,
        account_address=e.account_address or "",
        dry_run=e.dry_run,
        mid_price=decimal_text(e.mid_price),
        limit_price=decimal_text(e.limit_price),
    )


def config_message(c: ExecutionConfig) -> pb.ExecutionConfig:
    return pb.ExecutionConfig(
        enabled=c.enabled,
        hl_enabled=c.hl_enabled,
        dry_run=c.dry_run,
        hl_max_leverage=c.hl_max_leverage,
        hl_max_position_pct=float(c.hl_max_position_pct),
        hl_max_exposure_pct=float(c.hl_max_exposure_pct),
        hl_slippage_pct=float(c.hl_slippage_pct),
        max_signal_age_s=c.max_signal_age_s,
        max_price_drift_pct=float(c.max_price_drift_pct),
        updated_at=timestamp(c.updated_at) if c.updated_at else None,
    )


class ExecutionServicer(pb_grpc.ExecutionServiceServicer):
    def __init__(self, executor: Executor) -> None:
        self._executor = executor

    @rpc
    async def ExecuteSignal(
        self,
        request: pb.ExecuteSignalRequest,
        context: Context[pb.ExecuteSignalRequest, pb.ExecuteSignalResponse],
    ) -> pb.ExecuteSignalResponse:
        remaining = context.time_remaining()
        # Answer a little before the caller's deadline, with the execution as it stands.
        wait_until = None if remaining is None else time.monotonic() + max(remaining - 0.25, 0.0)
        execution = await self._executor.execute(request.decision_id, wait_until)
        return pb.ExecuteSignalResponse(execution=execution_message(execution))

    @rpc
    async def GetExecution(
        self,
        request: pb.GetExecutionRequest,
        context: Context[pb.GetExecutionRequest, pb.GetExecutionResponse],
    ) -> pb.GetExecutionResponse:
        execution = await self._executor.get(request.id)
        return pb.GetExecutionResponse(execution=execution_message(execution))

    @rpc
    async def ListExecutions(
        self,
        request: pb.ListExecutionsRequest,
        context: Context[pb.ListExecutionsRequest, pb.ListExecutionsResponse],
    ) -> pb.ListExecutionsResponse:
        status = _STATUS_FROM_PB.get(request.status)
        if status is None and request.status != pb.EXECUTION_STATUS_UNSPECIFIED:
            raise InvalidArgument([FieldViolation("status", f"unknown status {request.status}")])
        executions, token = await self._executor.list(
            request.decision_id, status, request.page_size, request.page_token
        )
        return pb.ListExecutionsResponse(
            executions=[execution_message(e) for e in executions], next_page_token=token
        )

    @rpc
    async def GetExecutionConfig(
        self,
        request: pb.GetExecutionConfigRequest,
        context: Context[pb.GetExecutionConfigRequest, pb.GetExecutionConfigResponse],
    ) -> pb.GetExecutionConfigResponse:
        return pb.GetExecutionConfigResponse(config=config_message(await self._executor.config()))

    @rpc
    async def UpdateExecutionConfig(
        self,
        request: pb.UpdateExecutionConfigRequest,
        context: Context[pb.UpdateExecutionConfigRequest, pb.UpdateExecutionConfigResponse],
    ) -> pb.UpdateExecutionConfigResponse:
        values = {name: getattr(request.config, name) for name in UPDATABLE_FIELDS}
        actor = dict(context.invocation_metadata() or ()).get(ACTOR_METADATA_KEY) or context.peer()
        config = await self._executor.update_config(values, list(request.update_mask.paths), str(actor))
        return pb.UpdateExecutionConfigResponse(config=config_message(config))
