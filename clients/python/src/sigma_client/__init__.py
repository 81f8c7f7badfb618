"""sigma-grpc-client: a light, typed asyncio client of sigma-grpc's sigma.v1 API.

    from sigma_client import SigmaClient, Gate, SigmaError
    from sigma_client import DecisionBatcher  # hl-decide: log decisions in batches, in the background

The responses are the generated protobuf messages (`Decision`, `Execution`,
`ExecutionConfig`, ...); their modules are `sigma_client.decision_pb2` and
`sigma_client.execution_pb2` (enum values such as `decision_pb2.DIRECTION_LONG`).
"""

from sigma_client._gen.sigma.v1 import decision_service_pb2 as decision_pb2
from sigma_client._gen.sigma.v1 import execution_service_pb2 as execution_pb2
from sigma_client._version import __version__
from sigma_client.batcher import (
    DEFAULT_GIVE_UP_AFTER_S,
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_DELAY_S,
    DEFAULT_MAX_PENDING,
    BatcherClosed,
    BatcherError,
    BatcherFull,
    DecisionBatcher,
    ErrorHandler,
    PendingDecision,
)
from sigma_client.client import (
    DEFAULT_ATTEMPT_TIMEOUT_S,
    DEFAULT_BACKOFF_MULTIPLIER,
    DEFAULT_INITIAL_BACKOFF_S,
    DEFAULT_MAX_BACKOFF_S,
    DEFAULT_TIMEOUT_S,
    MAX_BATCH_SIZE,
    USER_AGENT,
    LoggedDecision,
    SigmaClient,
    new_request_id,
)
from sigma_client.errors import (
    AlreadyExistsError,
    DeadlineExceededError,
    ErrorReason,
    FailedPreconditionError,
    FieldViolation,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    SigmaError,
    UnauthenticatedError,
    UnavailableError,
)
from sigma_client.models import (
    BucketWidth,
    DecisionFields,
    DecisionType,
    Direction,
    ExecutionStatus,
    Gate,
    Metadata,
    Outcome,
    RiskCheck,
)

Decision = decision_pb2.Decision
GetStatsResponse = decision_pb2.GetStatsResponse
GetSignalQualityResponse = decision_pb2.GetSignalQualityResponse
GetGateAnalyticsResponse = decision_pb2.GetGateAnalyticsResponse
ListDecisionsResponse = decision_pb2.ListDecisionsResponse
Execution = execution_pb2.Execution
ExecutionEvent = execution_pb2.ExecutionEvent
ExecutionConfig = execution_pb2.ExecutionConfig
ListExecutionsResponse = execution_pb2.ListExecutionsResponse

__all__ = [
    "DEFAULT_ATTEMPT_TIMEOUT_S",
    "DEFAULT_BACKOFF_MULTIPLIER",
    "DEFAULT_GIVE_UP_AFTER_S",
    "DEFAULT_INITIAL_BACKOFF_S",
    "DEFAULT_MAX_BACKOFF_S",
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_DELAY_S",
    "DEFAULT_MAX_PENDING",
    "DEFAULT_TIMEOUT_S",
    "MAX_BATCH_SIZE",
    "USER_AGENT",
    "AlreadyExistsError",
    "BatcherClosed",
    "BatcherError",
    "BatcherFull",
    "BucketWidth",
    "DeadlineExceededError",
    "Decision",
    "DecisionBatcher",
    "DecisionFields",
    "DecisionType",
    "Direction",
    "ErrorHandler",
    "ErrorReason",
    "Execution",
    "ExecutionConfig",
    "ExecutionEvent",
    "ExecutionStatus",
    "FailedPreconditionError",
    "FieldViolation",
    "Gate",
    "GetGateAnalyticsResponse",
    "GetSignalQualityResponse",
    "GetStatsResponse",
    "InternalError",
    "InvalidArgumentError",
    "ListDecisionsResponse",
    "ListExecutionsResponse",
    "LoggedDecision",
    "Metadata",
    "NotFoundError",
    "Outcome",
    "PendingDecision",
    "PermissionDeniedError",
    "RiskCheck",
    "SigmaClient",
    "SigmaError",
    "UnauthenticatedError",
    "UnavailableError",
    "__version__",
    "decision_pb2",
    "execution_pb2",
    "new_request_id",
]
