// What the client sends and how it reads answers, against a fake gRPC server
// (fake-server.ts): headers, deadlines, request ids, update masks, rich errors.

import assert from "node:assert/strict";
import { createRequire } from "node:module";
import net from "node:net";
import { after, before, describe, test } from "node:test";

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";

import {
  BadRequestSchema,
  BucketWidth,
  Code,
  DecisionType,
  Direction,
  ErrorInfoSchema,
  ErrorReason,
  ExecuteSignalRequestSchema,
  ExecuteSignalResponseSchema,
  ExecutionStatus,
  GateDirection,
  GetDecisionResponseSchema,
  GetExecutionConfigResponseSchema,
  GetGateAnalyticsRequestSchema,
  GetGateAnalyticsResponseSchema,
  GetSignalQualityRequestSchema,
  GetSignalQualityResponseSchema,
  LogDecisionRequestSchema,
  LogDecisionResponseSchema,
  SigmaClient,
  SigmaError,
  StatusSchema,
  UpdateExecutionConfigRequestSchema,
  UpdateExecutionConfigResponseSchema,
  VERSION,
} from "@sigmapilot/sigma-client";

import { startFakeServer, type Answer, type FakeServer, type RecordedRequest } from "./fake-server.js";
import { aSignal } from "./helpers.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function richError(code: Code, message: string, domain: string, reason: string, violations: [string, string][] = []): Answer {
  const details = [anyPack(ErrorInfoSchema, create(ErrorInfoSchema, { domain, reason, metadata: { field_count: String(violations.length) } }))];
  if (violations.length > 0) {
    details.push(
      anyPack(
        BadRequestSchema,
        create(BadRequestSchema, { fieldViolations: violations.map(([field, description]) => ({ field, description })) }),
      ),
    );
  }
  const status = create(StatusSchema, { code, message, details });
  return { grpcStatus: code, grpcMessage: message, details: toBinary(StatusSchema, status) };
}

/** Answers by method; "hang" never answers. */
function answer(request: RecordedRequest): Answer {
  switch (request.path) {
    case "/sigma.v1.ExecutionService/GetExecutionConfig":
      return { message: toBinary(GetExecutionConfigResponseSchema, create(GetExecutionConfigResponseSchema, { config: { hlMaxLeverage: 3 } })) };
    case "/sigma.v1.ExecutionService/UpdateExecutionConfig": {
      const sent = fromBinary(UpdateExecutionConfigRequestSchema, request.message);
      return { message: toBinary(UpdateExecutionConfigResponseSchema, create(UpdateExecutionConfigResponseSchema, { config: sent.config })) };
    }
    case "/sigma.v1.DecisionService/LogDecision": {
      const sent = fromBinary(LogDecisionRequestSchema, request.message);
      if (sent.agreementPct > 1) {
        return richError(Code.InvalidArgument, "agreement_pct: must be in [0, 1]", "sigma.v1", "VALIDATION_FAILED", [
          ["agreement_pct", "must be in [0, 1], got 1.5"],
          ["gates[0].name", "must be 1-64 characters"],
        ]);
      }
      return {
        message: toBinary(
          LogDecisionResponseSchema,
          create(LogDecisionResponseSchema, {
            decision: { id: "0b7f2c1e-6a4d-4e5b-9a8f-3c2d1e0f9a8b", symbol: sent.symbol, requestId: sent.requestId },
            replayed: sent.requestId === "seen-before",
          }),
        ),
      };
    }
    case "/sigma.v1.DecisionService/GetSignalQuality": {
      // Echoes what was sent, with one closed bucket per breakdown.
      const sent = fromBinary(GetSignalQualityRequestSchema, request.message);
      const breakdown = (edges: number[]) => ({
        edges,
        buckets: [
          { lower: edges[0], upper: edges[1], closed: 12n, wins: 9n, winRate: 0.75, winRateInterval: { low: 0.47, high: 0.91 }, avgR: 1.25 },
          { outOfRange: true, insufficientData: true },
        ],
      });
      return {
        message: toBinary(
          GetSignalQualityResponseSchema,
          create(GetSignalQualityResponseSchema, {
            days: sent.days ?? 7,
            bucketWidth: sent.bucketWidth || BucketWidth.DAY,
            timeSeries: [{ start: { seconds: 1_700_000_000n }, signals: 3n, closed: 2n, wins: 1n, winRate: 0.5, avgR: 0.5, cumulativeR: 1, insufficientData: true }],
            byAgreement: breakdown(sent.agreementEdges),
            byEffectiveK: breakdown(sent.effectiveKEdges),
            byTraderCount: breakdown(sent.traderCountEdges),
            minClosed: 10,
          }),
        ),
      };
    }
    case "/sigma.v1.DecisionService/GetGateAnalytics": {
      const sent = fromBinary(GetGateAnalyticsRequestSchema, request.message);
      if ((sent.topCombinations ?? 10) > 100) {
        return richError(Code.InvalidArgument, "top_combinations: must be 1-100", "sigma.v1", "VALIDATION_FAILED", [
          ["top_combinations", "must be 1-100, got 101"],
        ]);
      }
      return {
        message: toBinary(
          GetGateAnalyticsResponseSchema,
          create(GetGateAnalyticsResponseSchema, {
            days: sent.days ?? 7,
            gates: [
              {
                name: "supermajority",
                evaluated: 4n,
                failed: 2n,
                failureRate: 0.5,
                onlyFailure: 1n,
                direction: GateDirection.MIN,
                nearMisses: [{ lower: 0.01, upper: 0.02, count: 2n }, { lower: 1, count: 0n }],
              },
            ],
            failedTogether: [{ gates: ["effective_k", "supermajority"], count: 1n }],
            skipsWithFailures: 2n,
          }),
        ),
      };
    }
    case "/sigma.v1.ExecutionService/ExecuteSignal": {
      const sent = fromBinary(ExecuteSignalRequestSchema, request.message);
      if (sent.dryRunOnly) {
        return richError(Code.FailedPrecondition, "execution is live", "sigma.v1", "DRY_RUN_REQUIRED");
      }
      return {
        message: toBinary(
          ExecuteSignalResponseSchema,
          create(ExecuteSignalResponseSchema, { execution: { id: "e-1", decisionId: sent.decisionId, status: ExecutionStatus.FILLED } }),
        ),
      };
    }
    case "/sigma.v1.DecisionService/GetDecision":
      return { message: toBinary(GetDecisionResponseSchema, create(GetDecisionResponseSchema, {})) }; // no decision: broken
    case "/sigma.v1.DecisionService/GetStats":
      return "hang";
    case "/sigma.v1.DecisionService/ListDecisions":
      return richError(Code.NotFound, "not ours", "other.example", "SOMETHING_ELSE");
    case "/sigma.v1.ExecutionService/GetExecution":
      return { grpcStatus: Code.Internal, grpcMessage: "boom: no details" };
    default:
      return { grpcStatus: Code.Unimplemented, grpcMessage: request.path };
  }
}

async function rejection(call: Promise<unknown>): Promise<SigmaError> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof SigmaError, `expected a SigmaError, got ${String(error)}`);
    return error;
  }
  assert.fail("the call succeeded");
}

describe("SigmaClient against a fake gRPC server", () => {
  let fake: FakeServer;
  let sigma: SigmaClient;
  before(async () => {
    fake = await startFakeServer(answer);
    sigma = new SigmaClient({
      baseUrl: fake.url,
      timeoutMs: 5_000,
      token: "s3cret",
      userAgent: "hl-stream/1.4.0",
      headers: { "x-sigma-actor": "hl-stream" },
    });
  });
  after(async () => {
    sigma.close();
    await fake.close();
  });

  function last(): RecordedRequest {
    const request = fake.requests.at(-1);
    assert.ok(request, "no request reached the server");
    return request;
  }

  test("sends gRPC over HTTP/2 with the token, user agent, deadline and default headers", async () => {
    const config = await sigma.getExecutionConfig();
    assert.equal(config.hlMaxLeverage, 3);
    const { path, headers } = last();
    assert.equal(path, "/sigma.v1.ExecutionService/GetExecutionConfig");
    assert.equal(headers[":method"], "POST");
    assert.equal(headers["content-type"], "application/grpc+proto");
    assert.equal(headers["te"], "trailers");
    assert.equal(headers["authorization"], "Bearer s3cret");
    assert.equal(headers["user-agent"], `hl-stream/1.4.0 sigma-client-ts/${VERSION}`);
    assert.equal(headers["x-sigma-actor"], "hl-stream");
    assert.equal(headers["grpc-timeout"], "5000m");
  });

  test("a call's own timeout and headers win over the client's", async () => {
    await sigma.getExecutionConfig({ timeoutMs: 1_500, headers: { authorization: "Bearer user-token", "x-trace": "t1" } });
    const { headers } = last();
    assert.equal(headers["grpc-timeout"], "1500m");
    assert.equal(headers["authorization"], "Bearer user-token");
    assert.equal(headers["x-trace"], "t1");

    await sigma.getExecutionConfig({ timeoutMs: 0 });
    assert.equal(last().headers["grpc-timeout"], undefined, "timeoutMs 0: no deadline");
  });

  test("a client without a token sends no authorization; timeoutMs 0 sends no deadline", async () => {
    const bare = new SigmaClient({ baseUrl: fake.url, timeoutMs: 0 });
    try {
      await bare.getExecutionConfig();
      const { headers } = last();
      assert.equal(headers["authorization"], undefined);
      assert.equal(headers["grpc-timeout"], undefined);
      assert.equal(headers["user-agent"], `sigma-client-ts/${VERSION}`);
    } finally {
      bare.close();
    }
  });

  test("logDecision always sends a request_id and returns it", async () => {
    const generated = await sigma.logDecision(aSignal());
    assert.match(generated.requestId, UUID);
    assert.equal(fromBinary(LogDecisionRequestSchema, last().message).requestId, generated.requestId);
    assert.equal(generated.decision.requestId, generated.requestId);
    assert.equal(generated.replayed, false);

    const other = await sigma.logDecision(aSignal());
    assert.notEqual(other.requestId, generated.requestId, "a new id per call");

    const given = await sigma.logDecision(aSignal({ requestId: "seen-before" }));
    assert.equal(given.requestId, "seen-before");
    assert.equal(given.replayed, true);
    const sent = fromBinary(LogDecisionRequestSchema, last().message);
    assert.equal(sent.symbol, "BTC");
    assert.equal(sent.direction, Direction.LONG);
    assert.equal(sent.decisionType, DecisionType.SIGNAL);
    assert.equal(sent.priceAtDecision, "97123.5");
  });

  test("prices and P&L must be decimal strings, never JS numbers", async () => {
    const before = fake.requests.length;
    await assert.rejects(
      sigma.logDecision(aSignal({ priceAtDecision: 97123.5 as unknown as string })),
      (error: unknown) => error instanceof TypeError && /decimal string/.test(error.message),
    );
    await assert.rejects(
      sigma.recordOutcome({ decisionId: "x", outcomePnl: 12.5 as unknown as string, outcomeRMultiple: 1 }),
      TypeError,
    );
    assert.equal(fake.requests.length, before, "nothing was sent");
  });

  test("updateExecutionConfig sends the given fields as the update mask, and the actor", async () => {
    const config = await sigma.updateExecutionConfig({ enabled: false, hlMaxLeverage: 2, dryRun: undefined }, { actor: "ops:alice" });
    assert.equal(config.hlMaxLeverage, 2);
    const request = last();
    const sent = fromBinary(UpdateExecutionConfigRequestSchema, request.message);
    assert.deepEqual(sent.updateMask?.paths, ["enabled", "hl_max_leverage"]);
    assert.equal(sent.config?.hlMaxLeverage, 2);
    assert.equal(request.headers["x-sigma-actor"], "ops:alice");

    await assert.rejects(sigma.updateExecutionConfig({ bogus: 1 } as never), TypeError);
  });

  test("decodes ErrorInfo (domain sigma.v1) and BadRequest into a SigmaError", async () => {
    const error = await rejection(sigma.logDecision(aSignal({ agreementPct: 1.5 })));
    assert.equal(error.name, "SigmaError");
    assert.equal(error.code, Code.InvalidArgument);
    assert.equal(error.codeName, "INVALID_ARGUMENT");
    assert.equal(error.reason, "VALIDATION_FAILED");
    assert.deepEqual(error.reasonMetadata, { field_count: "2" });
    assert.deepEqual(error.fieldViolations, [
      { field: "agreement_pct", description: "must be in [0, 1], got 1.5" },
      { field: "gates[0].name", description: "must be 1-64 characters" },
    ]);
    assert.equal(error.violation("gates[0].name"), "must be 1-64 characters");
    assert.equal(error.rawMessage, "agreement_pct: must be in [0, 1]");
    assert.equal(error.message, "INVALID_ARGUMENT (VALIDATION_FAILED): agreement_pct: must be in [0, 1]");
    assert.ok(error instanceof Error);
  });

  test("an ErrorInfo of another domain gives no reason; no details give none either", async () => {
    const foreign = await rejection(sigma.listDecisions());
    assert.equal(foreign.code, Code.NotFound);
    assert.equal(foreign.reason, undefined);
    assert.equal(foreign.errorReason, undefined);
    assert.equal(foreign.cause.findDetails(ErrorInfoSchema)[0]?.reason, "SOMETHING_ELSE", "still in the ConnectError");

    const bare = await rejection(sigma.getExecution("0b7f2c1e-6a4d-4e5b-9a8f-3c2d1e0f9a8b"));
    assert.equal(bare.code, Code.Internal);
    assert.equal(bare.reason, undefined);
    assert.deepEqual(bare.fieldViolations, []);
    assert.equal(bare.message, "INTERNAL: boom: no details");
  });

  test("a response without its message field is an INTERNAL SigmaError", async () => {
    const error = await rejection(sigma.getDecision("0b7f2c1e-6a4d-4e5b-9a8f-3c2d1e0f9a8b"));
    assert.equal(error.code, Code.Internal);
    assert.match(error.message, /no decision/);
  });

  test("getSignalQuality sends the window, bucket width and edges, and returns the response", async () => {
    const quality = await sigma.getSignalQuality(
      {
        days: 30,
        symbol: "BTC",
        bucketWidth: BucketWidth.WEEK,
        agreementEdges: [0.6, 0.8, 1],
        effectiveKEdges: [2, 4],
        traderCountEdges: [1, 5, 10, 50],
      },
      { timeoutMs: 2_500 },
    );
    const request = last();
    assert.equal(request.path, "/sigma.v1.DecisionService/GetSignalQuality");
    assert.equal(request.headers["grpc-timeout"], "2500m");
    assert.equal(request.headers["authorization"], "Bearer s3cret");
    const sent = fromBinary(GetSignalQualityRequestSchema, request.message);
    assert.equal(sent.days, 30);
    assert.equal(sent.symbol, "BTC");
    assert.equal(sent.bucketWidth, BucketWidth.WEEK);
    assert.deepEqual(sent.agreementEdges, [0.6, 0.8, 1]);
    assert.deepEqual(sent.effectiveKEdges, [2, 4]);
    assert.deepEqual(sent.traderCountEdges, [1, 5, 10, 50]);

    assert.equal(quality.days, 30);
    assert.equal(quality.bucketWidth, BucketWidth.WEEK);
    assert.equal(quality.minClosed, 10);
    assert.equal(quality.timeSeries.length, 1);
    assert.equal(quality.timeSeries[0]?.signals, 3n, "int64 counts are bigint");
    assert.equal(quality.timeSeries[0]?.cumulativeR, 1);
    assert.deepEqual(quality.byAgreement?.edges, [0.6, 0.8, 1]);
    assert.deepEqual(quality.byTraderCount?.edges, [1, 5, 10, 50]);
    const [first, outside] = quality.byEffectiveK?.buckets ?? [];
    assert.deepEqual(
      [first?.lower, first?.upper, first?.closed, first?.wins, first?.winRate, first?.avgR, first?.outOfRange],
      [2, 4, 12n, 9n, 0.75, 1.25, false],
    );
    assert.deepEqual([first?.winRateInterval?.low, first?.winRateInterval?.high], [0.47, 0.91]);
    assert.deepEqual([outside?.lower, outside?.upper, outside?.outOfRange, outside?.closed], [undefined, undefined, true, 0n]);
    assert.equal(outside?.winRateInterval, undefined);

    // No input: an empty request (the server's defaults).
    await sigma.getSignalQuality();
    const bare = fromBinary(GetSignalQualityRequestSchema, last().message);
    assert.deepEqual(
      [bare.days, bare.symbol, bare.bucketWidth, bare.agreementEdges, bare.effectiveKEdges, bare.traderCountEdges],
      [undefined, undefined, BucketWidth.UNSPECIFIED, [], [], []],
    );
  });

  test("getGateAnalytics sends the window and topCombinations; its validation errors are SigmaErrors", async () => {
    const analytics = await sigma.getGateAnalytics({ days: 14, symbol: "ETH", topCombinations: 3 });
    const request = last();
    assert.equal(request.path, "/sigma.v1.DecisionService/GetGateAnalytics");
    const sent = fromBinary(GetGateAnalyticsRequestSchema, request.message);
    assert.deepEqual([sent.days, sent.symbol, sent.topCombinations], [14, "ETH", 3]);
    assert.equal(analytics.days, 14);
    assert.equal(analytics.skipsWithFailures, 2n);
    const [gate] = analytics.gates;
    assert.deepEqual(
      [gate?.name, gate?.evaluated, gate?.failed, gate?.failureRate, gate?.onlyFailure, gate?.direction],
      ["supermajority", 4n, 2n, 0.5, 1n, GateDirection.MIN],
    );
    assert.deepEqual(
      gate?.nearMisses.map((b) => [b.lower, b.upper, b.count]),
      [
        [0.01, 0.02, 2n],
        [1, undefined, 0n],
      ],
    );
    assert.deepEqual(
      analytics.failedTogether.map((c) => [c.gates, c.count]),
      [[["effective_k", "supermajority"], 1n]],
    );

    await sigma.getGateAnalytics();
    const bare = fromBinary(GetGateAnalyticsRequestSchema, last().message);
    assert.deepEqual([bare.days, bare.symbol, bare.topCombinations], [undefined, undefined, undefined]);

    const error = await rejection(sigma.getGateAnalytics({ topCombinations: 101 }));
    assert.equal(error.code, Code.InvalidArgument);
    assert.equal(error.reason, "VALIDATION_FAILED");
    assert.equal(error.violation("top_combinations"), "must be 1-100, got 101");
  });

  test("executeSignal sends dryRunOnly when asked (false otherwise); DRY_RUN_REQUIRED is decoded", async () => {
    const execution = await sigma.executeSignal("0b7f2c1e-6a4d-4e5b-9a8f-3c2d1e0f9a8b");
    assert.equal(execution.decisionId, "0b7f2c1e-6a4d-4e5b-9a8f-3c2d1e0f9a8b");
    let sent = fromBinary(ExecuteSignalRequestSchema, last().message);
    assert.equal(sent.dryRunOnly, false, "the existing call signature: the config alone decides");

    await sigma.executeSignal("0b7f2c1e-6a4d-4e5b-9a8f-3c2d1e0f9a8b", { dryRunOnly: false, timeoutMs: 1_000 });
    sent = fromBinary(ExecuteSignalRequestSchema, last().message);
    assert.equal(sent.dryRunOnly, false);
    assert.equal(last().headers["grpc-timeout"], "1000m");

    const refused = await rejection(
      sigma.executeSignal("0b7f2c1e-6a4d-4e5b-9a8f-3c2d1e0f9a8b", { dryRunOnly: true, headers: { "x-trace": "paper" } }),
    );
    sent = fromBinary(ExecuteSignalRequestSchema, last().message);
    assert.equal(sent.dryRunOnly, true);
    assert.equal(sent.decisionId, "0b7f2c1e-6a4d-4e5b-9a8f-3c2d1e0f9a8b");
    assert.equal(last().headers["x-trace"], "paper", "the call's options still apply");
    assert.equal(refused.code, Code.FailedPrecondition);
    assert.equal(refused.reason, "DRY_RUN_REQUIRED");
    assert.equal(refused.errorReason, ErrorReason.DRY_RUN_REQUIRED);
    assert.equal(refused.retryable, false);
    assert.equal(refused.message, "FAILED_PRECONDITION (DRY_RUN_REQUIRED): execution is live");
  });

  test("the deadline ends a call the server never answers: DEADLINE_EXCEEDED", async () => {
    const started = Date.now();
    const error = await rejection(sigma.getStats({}, { timeoutMs: 200 }));
    const elapsed = Date.now() - started;
    assert.equal(error.code, Code.DeadlineExceeded);
    assert.equal(error.retryable, false);
    assert.ok(elapsed >= 150 && elapsed < 3_000, `took ${elapsed} ms`);
    assert.equal(last().headers["grpc-timeout"], "200m");
  });

  test("aborting the signal cancels a call in flight: CANCELED", async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const error = await rejection(sigma.getStats({}, { signal: controller.signal }));
    assert.equal(error.code, Code.Canceled);
  });
});

describe("SigmaClient without a server", () => {
  test("an unreachable server is UNAVAILABLE, retryable", async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, "127.0.0.1", () => {
        const { port } = probe.address() as net.AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const sigma = new SigmaClient({ baseUrl: `http://127.0.0.1:${port}`, timeoutMs: 2_000 });
    try {
      const error = await rejection(sigma.getExecutionConfig());
      assert.equal(error.code, Code.Unavailable);
      assert.equal(error.retryable, true);
    } finally {
      sigma.close();
    }
  });

  test("a malformed baseUrl or timeout is refused at construction", () => {
    assert.throws(() => new SigmaClient({ baseUrl: "127.0.0.1:50051" }), TypeError);
    assert.throws(() => new SigmaClient({ baseUrl: "grpc://127.0.0.1:50051" }), TypeError);
    assert.throws(() => new SigmaClient({ baseUrl: "http://127.0.0.1:50051", timeoutMs: -1 }), RangeError);
  });

  test("VERSION is package.json's version", () => {
    const pkg = createRequire(import.meta.url)("@sigmapilot/sigma-client/package.json") as { version: string };
    assert.equal(VERSION, pkg.version);
  });
});
