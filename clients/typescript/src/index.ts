/**
 * @sigmapilot/sigma-client: a typed TypeScript client of sigma-grpc's sigma.v1 API
 * (DecisionService, ExecutionService) over gRPC, for hl-stream and other Node services.
 *
 * The message types, enums and schemas are generated from protos/sigma/v1 by
 * protoc-gen-es (src/gen); they are re-exported here with the client.
 */
export {
  SigmaClient,
  DEFAULT_TIMEOUT_MS,
  type CallOptions,
  type DecisionPage,
  type ExecuteSignalOptions,
  type ExecutionConfigChanges,
  type ExecutionPage,
  type ExecutionWithEvents,
  type HeaderValues,
  type GetGateAnalyticsInput,
  type GetSignalQualityInput,
  type GetStatsInput,
  type ListDecisionsInput,
  type ListExecutionsInput,
  type LogDecisionInput,
  type LoggedDecision,
  type RecordOutcomeInput,
  type SigmaClientOptions,
} from "./client.js";
export { ERROR_DOMAIN, SigmaError, codeName, type ErrorReasonName, type FieldViolation } from "./errors.js";
export { VERSION } from "./version.js";

export * from "./gen/sigma/v1/decision_service_pb.js";
export * from "./gen/sigma/v1/execution_service_pb.js";
export * from "./gen/sigma/v1/errors_pb.js";
// The google.rpc messages of error details (SigmaError decodes them; a ConnectError's
// findDetails() takes these schemas), and google.rpc.Status.
export {
  BadRequestSchema,
  BadRequest_FieldViolationSchema,
  ErrorInfoSchema,
  type BadRequest,
  type BadRequest_FieldViolation,
  type ErrorInfo,
} from "./gen/google/rpc/error_details_pb.js";
export { StatusSchema, type Status } from "./gen/google/rpc/status_pb.js";

// What callers need from the runtime libraries without depending on them directly:
// status codes, and proto3 JSON / timestamps (int64 counts are bigint, which
// JSON.stringify refuses: use toJson(GetStatsResponseSchema, stats) for JSON).
export { Code, ConnectError } from "@connectrpc/connect";
export { create, toJson, toJsonString, fromJson, type MessageInitShape, type JsonValue } from "@bufbuild/protobuf";
export { timestampDate, timestampFromDate, timestampNow, type Timestamp } from "@bufbuild/protobuf/wkt";
