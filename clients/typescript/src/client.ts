import { randomUUID } from "node:crypto";
import type { SecureClientSessionOptions } from "node:http2";

import type { DescMessage, Message, MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";

import { SigmaError } from "./errors.js";
import {
  DecisionService,
  type Decision,
  type DecisionType,
  type Direction,
  type GetGateAnalyticsRequestSchema,
  type GetGateAnalyticsResponse,
  type GetSignalQualityRequestSchema,
  type GetSignalQualityResponse,
  type GetStatsRequestSchema,
  type GetStatsResponse,
  type ListDecisionsRequestSchema,
  type LogDecisionRequestSchema,
  type RecordOutcomeRequestSchema,
} from "./gen/sigma/v1/decision_service_pb.js";
import {
  ExecutionConfigSchema,
  ExecutionService,
  type Execution,
  type ExecutionConfig,
  type ExecutionEvent,
  type ListExecutionsRequestSchema,
} from "./gen/sigma/v1/execution_service_pb.js";
import { VERSION } from "./version.js";

/** The plain-object form of a message's init shape (camelCase fields, all optional). */
type Init<D extends DescMessage> = Exclude<MessageInitShape<D>, Message>;

/** Request headers: a Headers object, a record, or [name, value] pairs (what `new Headers()` takes). */
export type HeaderValues = Headers | Record<string, string> | Array<[string, string]>;

/** The default deadline of every call, in milliseconds. */
export const DEFAULT_TIMEOUT_MS = 10_000;

export interface SigmaClientOptions {
  /**
   * The service's gRPC address as a URL: "http://127.0.0.1:50051" (plaintext HTTP/2,
   * prior knowledge) or "https://sigma.internal:443" (TLS). Not the HTTP/JSON gateway.
   */
  baseUrl: string;
  /**
   * Default deadline of each call in milliseconds (DEFAULT_TIMEOUT_MS, 10 s, when
   * omitted); `0` means no deadline. The server bounds its own work by the deadline it
   * receives (`grpc-timeout`), so a slow database is answered with UNAVAILABLE
   * (DATABASE_UNAVAILABLE) before the client gives up.
   */
  timeoutMs?: number;
  /**
   * Sent as `authorization: Bearer <token>` on every call (a call's own `authorization`
   * header wins); undefined or "" sends none.
   */
  token?: string;
  /** Prepended to the user agent: "hl-stream/1.4.0" gives `hl-stream/1.4.0 sigma-client-ts/0.2.0`. */
  userAgent?: string;
  /** Headers sent on every call, e.g. `{"x-sigma-actor": "hl-stream"}` (a note beside the config audit's authenticated "who"). */
  headers?: HeaderValues;
  /** Connect interceptors run around every call (logging, metrics, retries). */
  interceptors?: Interceptor[];
  /** Options of node:http2's connect(), e.g. `{ ca }` for a private CA with an https:// baseUrl. */
  nodeOptions?: SecureClientSessionOptions;
}

/** Options of one call. */
export interface CallOptions {
  /** This call's deadline in milliseconds, instead of the client's `timeoutMs`; `0` means none. */
  timeoutMs?: number;
  /** Cancels the call when aborted (the call rejects with a SigmaError of code CANCELED). */
  signal?: AbortSignal;
  /** Extra request headers (metadata) of this call; they win over the client's. */
  headers?: HeaderValues;
}

/**
 * LogDecision's request (camelCase fields of sigma.v1.LogDecisionRequest). `requestId`
 * is optional here: the client generates one when omitted. `priceAtDecision` is a
 * decimal string.
 */
export type LogDecisionInput = Init<typeof LogDecisionRequestSchema> & {
  symbol: string;
  direction: Direction;
  decisionType: DecisionType;
};
/** ListDecisions' filters and page; every field is optional. */
export type ListDecisionsInput = Init<typeof ListDecisionsRequestSchema>;
/** GetStats' window (`days`, 7 when omitted) and optional `symbol`. */
export type GetStatsInput = Init<typeof GetStatsRequestSchema>;
/**
 * GetSignalQuality's window (`days`, 7 when omitted), optional `symbol`, the time
 * series' `bucketWidth` (BucketWidth.DAY when omitted) and the edges of the
 * consensus-strength buckets (`agreementEdges`, `effectiveKEdges`, `traderCountEdges`:
 * 2-50 strictly increasing numbers each; the server's defaults when omitted or empty).
 */
export type GetSignalQualityInput = Init<typeof GetSignalQualityRequestSchema>;
/** GetGateAnalytics' window (`days`, 7 when omitted), optional `symbol`, and `topCombinations` (1-100, 10 when omitted). */
export type GetGateAnalyticsInput = Init<typeof GetGateAnalyticsRequestSchema>;
/** RecordOutcome's request: `decisionId`, `outcomePnl` (a decimal string), `outcomeRMultiple`, optional `outcomeClosedAt`. */
export type RecordOutcomeInput = Init<typeof RecordOutcomeRequestSchema> & {
  decisionId: string;
  outcomePnl: string;
  outcomeRMultiple: number;
};
/** Options of executeSignal: a call's options, and `dryRunOnly`. */
export interface ExecuteSignalOptions extends CallOptions {
  /**
   * Paper trading only: the server refuses with FAILED_PRECONDITION (DRY_RUN_REQUIRED),
   * executing nothing, unless execution is in dry run, so the call can never place a
   * real order (even if the config is switched to live meanwhile). Default false: the
   * config alone decides.
   */
  dryRunOnly?: boolean;
}
/** ListExecutions' filters and page; every field is optional. */
export type ListExecutionsInput = Init<typeof ListExecutionsRequestSchema>;
/** The settings UpdateExecutionConfig may change (`updatedAt` is output only). */
export type ExecutionConfigChanges = Partial<Omit<ExecutionConfig, "$typeName" | "$unknown" | "updatedAt">>;

export interface LoggedDecision {
  /** The decision as stored (the first one stored, when `replayed`). */
  decision: Decision;
  /** True when this request repeated an earlier one (same request_id and content): nothing was written now. */
  replayed: boolean;
  /** The request_id the decision was logged with: the caller's, or the one the client generated. */
  requestId: string;
}

export interface DecisionPage {
  decisions: Decision[];
  /** Pass as `pageToken` (same filters) for the next page; "" on the last page. */
  nextPageToken: string;
}

export interface ExecutionWithEvents {
  execution: Execution;
  /** Every state change, oldest first. */
  events: ExecutionEvent[];
}

export interface ExecutionPage {
  executions: Execution[];
  /** Pass as `pageToken` (same filters) for the next page; "" on the last page. */
  nextPageToken: string;
}

/**
 * A typed client of sigma-grpc's sigma.v1 API (DecisionService and ExecutionService)
 * over gRPC on HTTP/2 (connect-node's gRPC transport), straight to the gRPC port.
 *
 * One client holds one HTTP/2 connection, opened on first use and shared by all calls;
 * create one per process. Every method rejects with a SigmaError.
 */
export class SigmaClient {
  /** The generated connect client of DecisionService, for anything this class does not wrap. */
  readonly decisions: Client<typeof DecisionService>;
  /** The generated connect client of ExecutionService. */
  readonly executions: Client<typeof ExecutionService>;
  private readonly session: Http2SessionManager;
  private readonly defaultHeaders: Headers;
  /** How many times close() was called: a call that sees it change was cancelled by it. */
  private closes = 0;

  constructor(options: SigmaClientOptions) {
    const url = new URL(options.baseUrl); // throws on a malformed URL, before any call
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TypeError(`baseUrl must be an http:// or https:// URL, not ${JSON.stringify(options.baseUrl)}`);
    }
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs < 0) {
      throw new RangeError(`timeoutMs must be a finite number >= 0, not ${timeoutMs}`);
    }
    this.defaultHeaders = new Headers(options.headers);
    this.defaultHeaders.set("user-agent", [options.userAgent, `sigma-client-ts/${VERSION}`].filter(Boolean).join(" "));
    if (options.token) this.defaultHeaders.set("authorization", `Bearer ${options.token}`);

    this.session = new Http2SessionManager(options.baseUrl, {}, options.nodeOptions);
    const transport = createGrpcTransport({
      baseUrl: options.baseUrl,
      sessionManager: this.session,
      // 0 ("no deadline") is passed as undefined: connect would read 0 as "already expired".
      defaultTimeoutMs: timeoutMs > 0 ? timeoutMs : undefined,
      interceptors: options.interceptors ?? [],
    });
    this.decisions = createClient(DecisionService, transport);
    this.executions = createClient(ExecutionService, transport);
  }

  /**
   * LogDecision: records one evaluation. Always sends a request_id (a random UUID when
   * `input.requestId` is omitted) and returns it, so that a caller may retry with it:
   * repeating the same request returns the first decision with `replayed: true`.
   * Keep your own id (`crypto.randomUUID()`) with a buffered decision to survive a crash.
   *
   * Errors: INVALID_ARGUMENT (VALIDATION_FAILED, with fieldViolations), ALREADY_EXISTS
   * (REQUEST_ID_REUSED), UNAVAILABLE (DATABASE_UNAVAILABLE; retry with the same request_id).
   */
  async logDecision(input: LogDecisionInput, options: CallOptions = {}): Promise<LoggedDecision> {
    assertDecimalString("priceAtDecision", input.priceAtDecision);
    const requestId = input.requestId ?? randomUUID();
    const response = await this.call(options, (callOptions) => this.decisions.logDecision({ ...input, requestId }, callOptions));
    return { decision: required(response.decision, "decision"), replayed: response.replayed, requestId };
  }

  /** GetDecision: one decision by id. Errors: NOT_FOUND (DECISION_NOT_FOUND), INVALID_ARGUMENT. */
  async getDecision(id: string, options: CallOptions = {}): Promise<Decision> {
    const response = await this.call(options, (callOptions) => this.decisions.getDecision({ id }, callOptions));
    return required(response.decision, "decision");
  }

  /**
   * ListDecisions: newest first, filtered (symbol, decisionType, direction, outcome,
   * startTime/endTime), one page of `pageSize` (0 -> 50, at most 500).
   * Errors: INVALID_ARGUMENT (VALIDATION_FAILED, INVALID_PAGE_TOKEN).
   */
  async listDecisions(input: ListDecisionsInput = {}, options: CallOptions = {}): Promise<DecisionPage> {
    const response = await this.call(options, (callOptions) => this.decisions.listDecisions(input, callOptions));
    return { decisions: response.decisions, nextPageToken: response.nextPageToken };
  }

  /**
   * GetStats: aggregates over the last `days` (7 by default). Counts are int64, so
   * bigint (`totals.totalDecisions`); `totalPnl` is a decimal string.
   */
  async getStats(input: GetStatsInput = {}, options: CallOptions = {}): Promise<GetStatsResponse> {
    return this.call(options, (callOptions) => this.decisions.getStats(input, callOptions));
  }

  /**
   * GetSignalQuality: does the consensus signal pay over time, and does stronger
   * consensus pay more? A time series of the window in UTC buckets (`bucketWidth`),
   * oldest first, with the equity curve in R (`cumulativeR`), and the closed signals'
   * outcomes bucketed by agreement, effective-K and trader count (`byAgreement`,
   * `byEffectiveK`, `byTraderCount`: one bucket per range of the edges, then the
   * out-of-range one). Counts are int64, so bigint; rates are fractions. Buckets with
   * fewer than `minClosed` closed signals are flagged `insufficientData`.
   * Errors: INVALID_ARGUMENT (VALIDATION_FAILED: days, symbol, bucket width or edges).
   */
  async getSignalQuality(input: GetSignalQualityInput = {}, options: CallOptions = {}): Promise<GetSignalQualityResponse> {
    return this.call(options, (callOptions) => this.decisions.getSignalQuality(input, callOptions));
  }

  /**
   * GetGateAnalytics: which gates cost trades. Per gate (`gates`, most failures
   * first): how often it was evaluated, failed, and was the only failing gate, its
   * inferred direction and its near-misses by distance from the threshold; the exact
   * sets of gates that failed together in skips (`failedTogether`, at most
   * `topCombinations`); and `skipsWithFailures`. Counts are int64, so bigint.
   * Errors: INVALID_ARGUMENT (VALIDATION_FAILED: days, symbol, topCombinations).
   */
  async getGateAnalytics(input: GetGateAnalyticsInput = {}, options: CallOptions = {}): Promise<GetGateAnalyticsResponse> {
    return this.call(options, (callOptions) => this.decisions.getGateAnalytics(input, callOptions));
  }

  /**
   * RecordOutcome: attaches the closed position's P&L (a decimal string, e.g. "-12.5")
   * and R-multiple to a SIGNAL. Repeating the same outcome is a no-op.
   * Errors: NOT_FOUND (DECISION_NOT_FOUND), FAILED_PRECONDITION (NOT_A_SIGNAL,
   * OUTCOME_ALREADY_RECORDED), INVALID_ARGUMENT.
   */
  async recordOutcome(input: RecordOutcomeInput, options: CallOptions = {}): Promise<Decision> {
    assertDecimalString("outcomePnl", input.outcomePnl);
    const response = await this.call(options, (callOptions) => this.decisions.recordOutcome(input, callOptions));
    return required(response.decision, "decision");
  }

  /**
   * ExecuteSignal: executes a SIGNAL decision (at most one execution per decision;
   * calling again returns it). With `options.dryRunOnly`, paper trading only: a live
   * config is refused with DRY_RUN_REQUIRED and nothing is executed.
   * Errors: NOT_FOUND (DECISION_NOT_FOUND), FAILED_PRECONDITION (NOT_EXECUTABLE,
   * EXECUTION_DISABLED, DRY_RUN_REQUIRED, NO_SIGNER, ...), UNAVAILABLE
   * (EXCHANGE_UNAVAILABLE, DATABASE_UNAVAILABLE; safe to retry).
   */
  async executeSignal(decisionId: string, options: ExecuteSignalOptions = {}): Promise<Execution> {
    const dryRunOnly = options.dryRunOnly ?? false;
    const response = await this.call(options, (callOptions) =>
      this.executions.executeSignal({ decisionId, dryRunOnly }, callOptions),
    );
    return required(response.execution, "execution");
  }

  /** GetExecution: one execution with its events, oldest first. Errors: NOT_FOUND (EXECUTION_NOT_FOUND). */
  async getExecution(id: string, options: CallOptions = {}): Promise<ExecutionWithEvents> {
    const response = await this.call(options, (callOptions) => this.executions.getExecution({ id }, callOptions));
    return { execution: required(response.execution, "execution"), events: response.events };
  }

  /** ListExecutions: newest first; filters decisionId / decisionIds / status. */
  async listExecutions(input: ListExecutionsInput = {}, options: CallOptions = {}): Promise<ExecutionPage> {
    const response = await this.call(options, (callOptions) => this.executions.listExecutions(input, callOptions));
    return { executions: response.executions, nextPageToken: response.nextPageToken };
  }

  /** GetExecutionConfig: the execution settings. */
  async getExecutionConfig(options: CallOptions = {}): Promise<ExecutionConfig> {
    const response = await this.call(options, (callOptions) => this.executions.getExecutionConfig({}, callOptions));
    return required(response.config, "config");
  }

  /**
   * UpdateExecutionConfig: changes exactly the settings present in `changes` (their
   * proto names form the update mask), e.g. `{ enabled: false }` as a kill switch.
   * `actor` is sent as `x-sigma-actor`: the audit records the authenticated caller as
   * "who" and keeps `actor` (at most 200 characters) beside it as a note. An empty `changes` is
   * INVALID_ARGUMENT (VALIDATION_FAILED) from the server.
   */
  async updateExecutionConfig(
    changes: ExecutionConfigChanges,
    options: CallOptions & { actor?: string } = {},
  ): Promise<ExecutionConfig> {
    const paths: string[] = [];
    for (const [key, value] of Object.entries(changes)) {
      if (value === undefined) continue;
      const field = ExecutionConfigSchema.fields.find((f) => f.localName === key);
      if (field === undefined) throw new TypeError(`ExecutionConfig has no field ${JSON.stringify(key)}`);
      paths.push(field.name);
    }
    const headers = new Headers(options.headers);
    if (options.actor !== undefined) headers.set("x-sigma-actor", options.actor);
    const response = await this.call({ ...options, headers }, (callOptions) =>
      this.executions.updateExecutionConfig({ config: changes, updateMask: { paths } }, callOptions),
    );
    return required(response.config, "config");
  }

  /**
   * Closes the HTTP/2 connection; calls in flight fail with CANCELED. A later call
   * opens a new connection. An idle connection does not keep the process alive,
   * so calling this is optional.
   */
  close(): void {
    this.closes += 1;
    this.session.abort();
  }

  private callOptions(options: CallOptions): { timeoutMs?: number; signal?: AbortSignal; headers: Headers } {
    const headers = new Headers(this.defaultHeaders);
    new Headers(options.headers).forEach((value, key) => headers.set(key, value));
    const out: { timeoutMs?: number; signal?: AbortSignal; headers: Headers } = { headers };
    if (options.timeoutMs !== undefined) {
      if (!Number.isFinite(options.timeoutMs) || options.timeoutMs < 0) {
        throw new RangeError(`timeoutMs must be a finite number >= 0, not ${options.timeoutMs}`);
      }
      // connect reads a timeout <= 0 as "no deadline" per call.
      out.timeoutMs = options.timeoutMs;
    }
    if (options.signal !== undefined) out.signal = options.signal;
    return out;
  }

  private async call<T>(options: CallOptions, run: (callOptions: ReturnType<SigmaClient["callOptions"]>) => Promise<T>): Promise<T> {
    const callOptions = this.callOptions(options);
    const closes = this.closes;
    try {
      return await run(callOptions);
    } catch (error) {
      const failure = ConnectError.from(error);
      // A stream the transport cancelled (the server closed the connection, e.g. refusing a TLS
      // handshake) is not a cancellation of ours: it is a server that could not be reached.
      if (failure.code === Code.Canceled && !options.signal?.aborted && this.closes === closes) {
        throw new SigmaError(new ConnectError(`the connection was closed before an answer (${failure.rawMessage})`, Code.Unavailable));
      }
      throw SigmaError.from(error);
    }
  }
}

/** A response field the contract always sets; its absence is a broken server or proxy. */
function required<T>(value: T | undefined, field: string): T {
  if (value === undefined) {
    throw new SigmaError(new ConnectError(`the response has no ${field}`, Code.Internal));
  }
  return value;
}

/**
 * Prices and P&L are decimal strings in the contract: a JS number is not exact
 * (0.1 + 0.2 !== 0.3; 97123.123456789 has no exact double), so a number is refused
 * here rather than silently rounded. Callers holding numbers format them themselves.
 */
function assertDecimalString(field: string, value: unknown): void {
  if (value !== undefined && typeof value !== "string") {
    throw new TypeError(`${field} must be a decimal string such as "97123.5" (JS numbers are not exact), not ${typeof value}`);
  }
}
