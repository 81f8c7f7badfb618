"""sigma.v1.DecisionService over gRPC: convert, call the decision log, convert back."""

from __future__ import annotations

import grpc

from sigma_grpc.api import call_log
from sigma_grpc.api import decision_convert as convert
from sigma_grpc.api.errors import rpc, status_message
from sigma_grpc.api.wire import enum_value
from sigma_grpc.domain.errors import DomainError
from sigma_grpc.domain.models import Decision
from sigma_grpc.domain.quality import MIN_CLOSED
from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as pb
from sigma_grpc.gen.sigma.v1 import decision_service_pb2_grpc as pb_grpc
from sigma_grpc.metrics import Metrics
from sigma_grpc.services.decisions import DecisionLog

Context = grpc.aio.ServicerContext


class DecisionServicer(pb_grpc.DecisionServiceServicer):
    def __init__(self, decisions: DecisionLog, metrics: Metrics | None = None) -> None:
        self._decisions = decisions
        self._metrics = metrics

    def _count(self, decision: Decision, replayed: bool) -> None:
        """A decision newly recorded (a replay was counted when it was first logged)."""
        if self._metrics is not None and not replayed:
            self._metrics.decisions_logged.labels(decision.decision_type.value, decision.symbol).inc()

    @rpc
    async def LogDecision(
        self, request: pb.LogDecisionRequest, context: Context[pb.LogDecisionRequest, pb.LogDecisionResponse]
    ) -> pb.LogDecisionResponse:
        call_log.note(request_id=request.request_id)
        decision, replayed = await self._decisions.log(convert.decision_input(request))
        call_log.note(decision_id=str(decision.id), replayed="true" if replayed else None)
        self._count(decision, replayed)
        response = pb.LogDecisionResponse(replayed=replayed)
        convert.fill_decision(response.decision, decision)
        return response

    @rpc
    async def LogDecisions(
        self,
        request: pb.LogDecisionsRequest,
        context: Context[pb.LogDecisionsRequest, pb.LogDecisionsResponse],
    ) -> pb.LogDecisionsResponse:
        call_log.note(decisions=str(len(request.decisions)))
        answers = await self._decisions.log_many([convert.decision_input(d) for d in request.decisions])
        response = pb.LogDecisionsResponse()
        for answer in answers:
            result = response.results.add()
            if isinstance(answer, DomainError):
                result.error.CopyFrom(status_message(answer))
            else:
                self._count(*answer)
                result.logged.replayed = answer[1]
                convert.fill_decision(result.logged.decision, answer[0])
        return response

    @rpc
    async def GetDecision(
        self, request: pb.GetDecisionRequest, context: Context[pb.GetDecisionRequest, pb.GetDecisionResponse]
    ) -> pb.GetDecisionResponse:
        call_log.note(decision_id=request.id)
        response = pb.GetDecisionResponse()
        convert.fill_decision(response.decision, await self._decisions.get(request.id))
        return response

    @rpc
    async def ListDecisions(
        self,
        request: pb.ListDecisionsRequest,
        context: Context[pb.ListDecisionsRequest, pb.ListDecisionsResponse],
    ) -> pb.ListDecisionsResponse:
        decisions, next_token = await self._decisions.list(convert.list_input(request))
        response = pb.ListDecisionsResponse(next_page_token=next_token)
        for decision in decisions:
            convert.fill_decision(response.decisions.add(), decision)
        return response

    @rpc
    async def GetStats(
        self, request: pb.GetStatsRequest, context: Context[pb.GetStatsRequest, pb.GetStatsResponse]
    ) -> pb.GetStatsResponse:
        stats = await self._decisions.stats(
            request.days if request.HasField("days") else None,
            request.symbol if request.HasField("symbol") else None,
        )
        return convert.stats_message(stats)

    @rpc
    async def GetSignalQuality(
        self,
        request: pb.GetSignalQualityRequest,
        context: Context[pb.GetSignalQualityRequest, pb.GetSignalQualityResponse],
    ) -> pb.GetSignalQualityResponse:
        quality = await self._decisions.signal_quality(
            request.days if request.HasField("days") else None,
            request.symbol if request.HasField("symbol") else None,
            enum_value(request.bucket_width, convert.BUCKET_WIDTHS),
            (request.agreement_edges, request.effective_k_edges, request.trader_count_edges),
        )
        return convert.quality_message(quality, MIN_CLOSED)

    @rpc
    async def GetGateAnalytics(
        self,
        request: pb.GetGateAnalyticsRequest,
        context: Context[pb.GetGateAnalyticsRequest, pb.GetGateAnalyticsResponse],
    ) -> pb.GetGateAnalyticsResponse:
        analytics = await self._decisions.gate_analytics(
            request.days if request.HasField("days") else None,
            request.symbol if request.HasField("symbol") else None,
            request.top_combinations if request.HasField("top_combinations") else None,
        )
        return convert.gate_analytics_message(analytics)

    @rpc
    async def RecordOutcome(
        self,
        request: pb.RecordOutcomeRequest,
        context: Context[pb.RecordOutcomeRequest, pb.RecordOutcomeResponse],
    ) -> pb.RecordOutcomeResponse:
        call_log.note(decision_id=request.decision_id)
        response = pb.RecordOutcomeResponse()
        convert.fill_decision(
            response.decision, await self._decisions.record_outcome(convert.outcome_input(request))
        )
        return response
