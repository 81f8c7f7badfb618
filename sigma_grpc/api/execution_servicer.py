"""sigma.v1.ExecutionService over gRPC: convert, call the executor, convert back."""

from __future__ import annotations

import time

import grpc

from sigma_grpc import deadline
from sigma_grpc.api import call_log
from sigma_grpc.api.authentication import audit_name
from sigma_grpc.api.errors import rpc
from sigma_grpc.api.execution_convert import (
    STATUS_FROM_PB,
    config_message,
    event_message,
    execution_message,
)
from sigma_grpc.api.wire import enum_value
from sigma_grpc.domain.errors import FieldViolation, InvalidArgument
from sigma_grpc.domain.execution import UPDATABLE_FIELDS
from sigma_grpc.gen.sigma.v1 import execution_service_pb2 as pb
from sigma_grpc.gen.sigma.v1 import execution_service_pb2_grpc as pb_grpc
from sigma_grpc.services.execution import Executor

Context = grpc.aio.ServicerContext
# What a caller says about a config change (a ticket, the person behind a shared
# token): recorded as a note beside the authenticated name, never instead of it.
NOTE_METADATA_KEY = "x-sigma-actor"
MAX_NOTE_LENGTH = 200
# Time kept for reading the execution after waiting for it.
_LAST_READ_S = 0.25


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
        # Stop waiting for an execution in progress early enough to read it once more (a storage
        # call, which ends its own margins before the deadline) and answer with it as it stands.
        call_log.note(decision_id=request.decision_id)
        room = deadline.ANSWER_MARGIN_S + deadline.CLEANUP_MARGIN_S + _LAST_READ_S
        wait_until = None if remaining is None else time.monotonic() + max(remaining - room, 0.0)
        execution = await self._executor.execute(
            request.decision_id,
            wait_until,
            requested_by=audit_name(context),
            dry_run_only=request.dry_run_only,
        )
        call_log.note(execution_id=str(execution.id), execution_status=execution.status.value)
        return pb.ExecuteSignalResponse(execution=execution_message(execution))

    @rpc
    async def GetExecution(
        self,
        request: pb.GetExecutionRequest,
        context: Context[pb.GetExecutionRequest, pb.GetExecutionResponse],
    ) -> pb.GetExecutionResponse:
        call_log.note(execution_id=request.id)
        execution, events = await self._executor.get(request.id)
        return pb.GetExecutionResponse(
            execution=execution_message(execution), events=[event_message(e) for e in events]
        )

    @rpc
    async def ListExecutions(
        self,
        request: pb.ListExecutionsRequest,
        context: Context[pb.ListExecutionsRequest, pb.ListExecutionsResponse],
    ) -> pb.ListExecutionsResponse:
        executions, token = await self._executor.list(
            request.decision_id,
            request.decision_ids,
            enum_value(request.status, STATUS_FROM_PB),
            request.page_size,
            request.page_token,
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
        note = dict(context.invocation_metadata() or ()).get(NOTE_METADATA_KEY)
        if isinstance(note, str) and len(note) > MAX_NOTE_LENGTH:
            raise InvalidArgument(
                [FieldViolation(NOTE_METADATA_KEY, f"must be at most {MAX_NOTE_LENGTH} characters")]
            )
        config = await self._executor.update_config(
            values,
            list(request.update_mask.paths),
            audit_name(context),
            note if isinstance(note, str) and note else None,
        )
        return pb.UpdateExecutionConfigResponse(config=config_message(config))
