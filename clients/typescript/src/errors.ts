import { Code, ConnectError } from "@connectrpc/connect";

import { BadRequestSchema, ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import { ErrorReason } from "./gen/sigma/v1/errors_pb.js";

/** The domain of every sigma.v1 google.rpc.ErrorInfo. */
export const ERROR_DOMAIN = "sigma.v1";

/**
 * The name of an ErrorReason as the server sends it (the enum value's name without
 * its `ERROR_REASON_` prefix), e.g. "VALIDATION_FAILED". A newer server may send a
 * reason this client does not know yet: handle those by their `code`.
 */
export type ErrorReasonName = Exclude<keyof typeof ErrorReason, "UNSPECIFIED">;

/** One offending field of an INVALID_ARGUMENT, from its google.rpc.BadRequest. */
export interface FieldViolation {
  /** The field's proto path: `agreement_pct`, `gates[3].name` ("" for undecodable bytes). */
  field: string;
  /** What is wrong with it, for people. */
  description: string;
}

/** The gRPC name of a status code: Code.InvalidArgument -> "INVALID_ARGUMENT". */
export function codeName(code: Code): string {
  const name = Code[code] as string | undefined;
  return name === undefined ? `CODE_${code}` : name.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/**
 * Every failed call of SigmaClient rejects with a SigmaError: a status from the
 * server, a deadline that passed (DEADLINE_EXCEEDED), an aborted signal (CANCELED),
 * a server that cannot be reached (UNAVAILABLE).
 *
 * Switch on `reason` (and `code` for reasons you do not know), never on the message.
 */
export class SigmaError extends Error {
  override readonly name = "SigmaError";
  /** The status code: connect's Code, numerically the gRPC status code (Code.NotFound === 5). */
  readonly code: Code;
  /** The reason of the google.rpc.ErrorInfo when its domain is "sigma.v1", e.g. "DECISION_NOT_FOUND". */
  readonly reason: ErrorReasonName | (string & {}) | undefined;
  /** The ErrorInfo's metadata (sigma.v1 domain only), empty when there is none. */
  readonly reasonMetadata: Readonly<Record<string, string>>;
  /** The google.rpc.BadRequest's violations (INVALID_ARGUMENT), empty when there are none. */
  readonly fieldViolations: readonly FieldViolation[];
  /** The server's message, without the code prefix. */
  readonly rawMessage: string;
  /** Response headers and trailers of the failed call. */
  readonly metadata: Headers;
  /** The underlying ConnectError (all details, including ones this class does not decode). */
  override readonly cause: ConnectError;

  constructor(error: ConnectError) {
    const infos = error.findDetails(ErrorInfoSchema).filter((info) => info.domain === ERROR_DOMAIN);
    const violations = error
      .findDetails(BadRequestSchema)
      .flatMap((bad) => bad.fieldViolations.map((v) => ({ field: v.field, description: v.description })));
    const reason = infos[0]?.reason || undefined;
    super(`${codeName(error.code)}${reason ? ` (${reason})` : ""}: ${error.rawMessage}`, { cause: error });
    this.code = error.code;
    this.reason = reason;
    this.reasonMetadata = { ...infos[0]?.metadata };
    this.fieldViolations = violations;
    this.rawMessage = error.rawMessage;
    this.metadata = error.metadata;
    this.cause = error;
  }

  /** Wraps anything a call threw (a ConnectError or any other error) as a SigmaError. */
  static from(error: unknown): SigmaError {
    return error instanceof SigmaError ? error : new SigmaError(ConnectError.from(error));
  }

  /** The gRPC name of `code`, e.g. "INVALID_ARGUMENT". */
  get codeName(): string {
    return codeName(this.code);
  }

  /** The ErrorReason enum value of `reason`, or undefined (no reason, or one this client does not know). */
  get errorReason(): ErrorReason | undefined {
    const value: unknown = this.reason === undefined ? undefined : (ErrorReason as Record<string, unknown>)[this.reason];
    return typeof value === "number" && value !== ErrorReason.UNSPECIFIED ? (value as ErrorReason) : undefined;
  }

  /**
   * Whether the same call may simply be sent again: UNAVAILABLE, which the contract
   * makes safe to retry (LogDecision with the same request_id, RecordOutcome with the
   * same values, ExecuteSignal with the same decision). A DEADLINE_EXCEEDED is not
   * flagged: the call may have completed; retry it only when it is idempotent.
   */
  get retryable(): boolean {
    return this.code === Code.Unavailable;
  }

  /** The description of one field's violation, e.g. `violation("agreement_pct")`. */
  violation(field: string): string | undefined {
    return this.fieldViolations.find((v) => v.field === field)?.description;
  }
}
