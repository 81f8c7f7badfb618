"""DecisionService: protobuf messages to domain values and back."""

from __future__ import annotations

from sigma_grpc.api.wire import enum_value, raw_time, set_timestamp, timestamp
from sigma_grpc.domain.models import Decision, DecisionType, Direction, Gate, OutcomeFilter, RiskCheck
from sigma_grpc.domain.quality import (
    BucketWidth,
    GateAnalytics,
    GateDirection,
    Interval,
    SignalQuality,
    StrengthBreakdown,
)
from sigma_grpc.domain.stats import Stats, Summary
from sigma_grpc.domain.validation import DecisionInput, ListInput, OutcomeInput
from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as pb

DIRECTIONS = {
    pb.DIRECTION_LONG: Direction.LONG,
    pb.DIRECTION_SHORT: Direction.SHORT,
    pb.DIRECTION_NONE: Direction.NONE,
}
DECISION_TYPES = {
    pb.DECISION_TYPE_SIGNAL: DecisionType.SIGNAL,
    pb.DECISION_TYPE_SKIP: DecisionType.SKIP,
    pb.DECISION_TYPE_RISK_REJECT: DecisionType.RISK_REJECT,
}
OUTCOMES = {
    pb.OUTCOME_PENDING: OutcomeFilter.PENDING,
    pb.OUTCOME_CLOSED: OutcomeFilter.CLOSED,
    pb.OUTCOME_WIN: OutcomeFilter.WIN,
    pb.OUTCOME_LOSS: OutcomeFilter.LOSS,
}
BUCKET_WIDTHS = {
    pb.BUCKET_WIDTH_HOUR: BucketWidth.HOUR,
    pb.BUCKET_WIDTH_DAY: BucketWidth.DAY,
    pb.BUCKET_WIDTH_WEEK: BucketWidth.WEEK,
}
BUCKET_WIDTH_TO_PB = {v: k for k, v in BUCKET_WIDTHS.items()}
GATE_DIRECTION_TO_PB = {
    GateDirection.UNKNOWN: pb.GATE_DIRECTION_UNSPECIFIED,
    GateDirection.MIN: pb.GATE_DIRECTION_MIN,
    GateDirection.MAX: pb.GATE_DIRECTION_MAX,
}
DIRECTION_TO_PB = {v: k for k, v in DIRECTIONS.items()}
DECISION_TYPE_TO_PB = {v: k for k, v in DECISION_TYPES.items()}
OUTCOME_TO_PB = {v: k for k, v in OUTCOMES.items()}


def decision_input(req: pb.LogDecisionRequest) -> DecisionInput:
    return DecisionInput(
        symbol=req.symbol,
        direction=enum_value(req.direction, DIRECTIONS),
        decision_type=enum_value(req.decision_type, DECISION_TYPES),
        trader_count=req.trader_count,
        agreement_pct=req.agreement_pct,
        effective_k=req.effective_k,
        avg_confidence=req.avg_confidence if req.HasField("avg_confidence") else None,
        ev_estimate=req.ev_estimate if req.HasField("ev_estimate") else None,
        price_at_decision=req.price_at_decision if req.HasField("price_at_decision") else None,
        # Positional: every gate of every call passes through here.
        gates=tuple(
            Gate(
                g.name,
                g.passed,
                g.value if g.HasField("value") else None,
                g.threshold if g.HasField("threshold") else None,
            )
            for g in req.gates
        ),
        risk_checks=tuple(
            RiskCheck(
                c.name,
                c.passed,
                c.value if c.HasField("value") else None,
                c.limit if c.HasField("limit") else None,
            )
            for c in req.risk_checks
        ),
        request_id=req.request_id if req.HasField("request_id") else None,
        decided_at=raw_time(req.decided_at) if req.HasField("decided_at") else None,
    )


def list_input(req: pb.ListDecisionsRequest) -> ListInput:
    return ListInput(
        symbol=req.symbol,
        decision_type=enum_value(req.decision_type, DECISION_TYPES),
        direction=enum_value(req.direction, DIRECTIONS),
        outcome=enum_value(req.outcome, OUTCOMES),
        start_time=raw_time(req.start_time) if req.HasField("start_time") else None,
        end_time=raw_time(req.end_time) if req.HasField("end_time") else None,
        page_size=req.page_size,
        page_token=req.page_token,
    )


def outcome_input(req: pb.RecordOutcomeRequest) -> OutcomeInput:
    return OutcomeInput(
        decision_id=req.decision_id,
        outcome_pnl=req.outcome_pnl,
        outcome_r_multiple=req.outcome_r_multiple if req.HasField("outcome_r_multiple") else None,
        outcome_closed_at=raw_time(req.outcome_closed_at) if req.HasField("outcome_closed_at") else None,
    )


def fill_decision(target: pb.Decision, d: Decision) -> pb.Decision:
    """Write `d` into an empty `target` (e.g. `response.decisions.add()`) and return it.

    Filled in place rather than built from keyword arguments: nested messages
    passed that way are copied, and a page holds 50 decisions of 8-20 nested
    messages each. None leaves an optional field unset, so clients can tell "0"
    from "absent".
    """
    target.id = str(d.id)
    target.symbol = d.symbol
    target.direction = DIRECTION_TO_PB[d.direction]
    target.decision_type = DECISION_TYPE_TO_PB[d.decision_type]
    target.trader_count = d.trader_count
    target.agreement_pct = float(d.agreement_pct)
    target.effective_k = float(d.effective_k)
    if d.avg_confidence is not None:
        target.avg_confidence = float(d.avg_confidence)
    if d.ev_estimate is not None:
        target.ev_estimate = float(d.ev_estimate)
    if d.price_at_decision is not None:
        target.price_at_decision = format(d.price_at_decision, "f")
    target.reasoning = d.reasoning
    if d.request_id is not None:
        target.request_id = d.request_id
    set_timestamp(target.created_at, d.created_at)
    set_timestamp(target.decided_at, d.decided_at)
    add_gate = target.gates.add
    for g in d.gates:
        add_gate(name=g.name, passed=g.passed, value=g.value, threshold=g.threshold)
    add_check = target.risk_checks.add
    for c in d.risk_checks:
        add_check(name=c.name, passed=c.passed, value=c.value, limit=c.limit)
    if d.outcome_pnl is not None:
        target.outcome_pnl = format(d.outcome_pnl, "f")
    if d.outcome_r_multiple is not None:
        target.outcome_r_multiple = float(d.outcome_r_multiple)
    if d.outcome_closed_at is not None:
        set_timestamp(target.outcome_closed_at, d.outcome_closed_at)
    return target


def _set_interval(target: pb.Interval, interval: Interval | None) -> None:
    if interval is not None:
        target.low, target.high = interval.low, interval.high


def _stats_message(s: Summary) -> pb.DecisionStats:
    c = s.closed_stats
    message = pb.DecisionStats(
        avg_win_r=c.avg_win_r,
        avg_loss_r=c.avg_loss_r,
        profit_factor=c.profit_factor,
        max_drawdown_r=c.max_drawdown_r,
        best_r=c.best_r,
        worst_r=c.worst_r,
        longest_win_streak=c.longest_win_streak,
        longest_loss_streak=c.longest_loss_streak,
        total_decisions=s.total_decisions,
        signal_count=s.signal_count,
        skip_count=s.skip_count,
        risk_reject_count=s.risk_reject_count,
        skip_rate=s.skip_rate,
        closed_count=s.closed_count,
        win_count=s.win_count,
        loss_count=s.loss_count,
        pending_count=s.pending_count,
        win_rate=s.win_rate,
        avg_r_multiple=s.avg_r_multiple,
        total_pnl=s.total_pnl,
    )
    if c.median_holding_time is not None:
        message.median_holding_time.FromTimedelta(c.median_holding_time)
    _set_interval(message.win_rate_interval, s.win_rate_interval)
    return message


def stats_message(stats: Stats) -> pb.GetStatsResponse:
    return pb.GetStatsResponse(
        totals=_stats_message(stats.overall),
        by_symbol=[
            pb.SymbolStats(symbol=symbol, stats=_stats_message(summary))
            for symbol, summary in stats.by_symbol
        ],
        gate_failures=[pb.GateFailure(name=name, count=count) for name, count in stats.gate_failures],
        days=stats.days,
        window_start=timestamp(stats.window_start),
    )


def _breakdown_message(target: pb.StrengthBreakdown, breakdown: StrengthBreakdown) -> None:
    target.edges.extend(breakdown.edges)
    for b in breakdown.buckets:
        bucket = target.buckets.add(
            lower=b.lower,
            upper=b.upper,
            out_of_range=b.out_of_range,
            closed=b.closed,
            wins=b.wins,
            win_rate=b.win_rate,
            avg_r=b.avg_r,
            insufficient_data=b.insufficient_data,
        )
        _set_interval(bucket.win_rate_interval, b.interval)


def quality_message(quality: SignalQuality, min_closed: int) -> pb.GetSignalQualityResponse:
    response = pb.GetSignalQualityResponse(
        days=quality.days, bucket_width=BUCKET_WIDTH_TO_PB[quality.width], min_closed=min_closed
    )
    set_timestamp(response.window_start, quality.window_start)
    for t in quality.time_series:
        bucket = response.time_series.add(
            signals=t.signals,
            closed=t.closed,
            wins=t.wins,
            win_rate=t.win_rate,
            avg_r=t.avg_r,
            cumulative_r=t.cumulative_r,
            insufficient_data=t.insufficient_data,
        )
        set_timestamp(bucket.start, t.start)
    _breakdown_message(response.by_agreement, quality.by_agreement)
    _breakdown_message(response.by_effective_k, quality.by_effective_k)
    _breakdown_message(response.by_trader_count, quality.by_trader_count)
    return response


def gate_analytics_message(analytics: GateAnalytics) -> pb.GetGateAnalyticsResponse:
    response = pb.GetGateAnalyticsResponse(
        days=analytics.days, skips_with_failures=analytics.skips_with_failures
    )
    set_timestamp(response.window_start, analytics.window_start)
    for g in analytics.gates:
        response.gates.add(
            name=g.name,
            evaluated=g.evaluated,
            failed=g.failed,
            failure_rate=g.failure_rate,
            only_failure=g.only_failure,
            direction=GATE_DIRECTION_TO_PB[g.direction],
            near_misses=[pb.NearMissBin(lower=n.lower, upper=n.upper, count=n.count) for n in g.near_misses],
            failed_on_passing_side=g.failed_on_passing_side,
            failed_without_value=g.failed_without_value,
        )
    for names, count in analytics.failed_together:
        response.failed_together.add(gates=names, count=count)
    return response
