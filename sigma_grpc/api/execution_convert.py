"""ExecutionService: protobuf messages to domain values and back."""

from __future__ import annotations

from sigma_grpc.api.wire import decimal_text, optional_float, timestamp
from sigma_grpc.domain.execution import (
    Execution,
    ExecutionConfig,
    ExecutionEvent,
    ExecutionReason,
    ExecutionStatus,
    Side,
)
from sigma_grpc.gen.sigma.v1 import execution_service_pb2 as pb

_STATUS_TO_PB = {
    status: pb.ExecutionStatus.Value(f"EXECUTION_STATUS_{status.name}") for status in ExecutionStatus
}
STATUS_FROM_PB = {number: status for status, number in _STATUS_TO_PB.items()}
_REASON_TO_PB = {
    reason: pb.ExecutionReason.Value(f"EXECUTION_REASON_{reason.name}") for reason in ExecutionReason
}
_SIDE_TO_PB = {Side.BUY: pb.SIDE_BUY, Side.SELL: pb.SIDE_SELL}


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
        requested_by=e.requested_by or "",
    )


def event_message(e: ExecutionEvent) -> pb.ExecutionEvent:
    return pb.ExecutionEvent(
        time=timestamp(e.recorded_at),
        from_status=_STATUS_TO_PB[e.from_status] if e.from_status else pb.EXECUTION_STATUS_UNSPECIFIED,
        to_status=_STATUS_TO_PB[e.to_status],
        reason=_REASON_TO_PB[e.reason] if e.reason else pb.EXECUTION_REASON_UNSPECIFIED,
        error_message=e.error_message or "",
        actor=e.actor,
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
