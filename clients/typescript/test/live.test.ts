// Against a live sigma-grpc server: SIGMA_TARGET=http://127.0.0.1:PORT npm test
// (tests/test_typescript_client.py runs it on the pytest server, over empty tables).
// Each test logs on a symbol of its own, so they also pass on a server with data.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";

import {
  BucketWidth,
  Code,
  DecisionType,
  ErrorReason,
  ExecutionStatus,
  GateDirection,
  SigmaClient,
  SigmaError,
  timestampDate,
  timestampFromDate,
  type StrengthBucket,
  type TimeBucket,
} from "@sigmapilot/sigma-client";

import { SKIP_LIVE, aSignal, aSkip, freshSymbol, liveClient } from "./helpers.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The SigmaError a call rejects with. */
async function rejection(call: Promise<unknown>): Promise<SigmaError> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof SigmaError, `expected a SigmaError, got ${String(error)}`);
    return error;
  }
  assert.fail("the call succeeded");
}

const HOUR_MS = 3_600_000;

/** Two doubles equal up to rounding (server-side means and sums). */
function near(actual: number | undefined, expected: number, what: string): void {
  assert.ok(actual !== undefined && Math.abs(actual - expected) < 1e-9, `${what}: ${actual} is not ${expected}`);
}

/** A strength bucket as [lower, upper, outOfRange, closed, wins, winRate, avgR] (avgR rounded to 1e-9). */
function strength(b: StrengthBucket): unknown[] {
  return [b.lower, b.upper, b.outOfRange, b.closed, b.wins, b.winRate, Math.round(b.avgR * 1e9) / 1e9];
}

describe("SigmaClient against a live server", { skip: SKIP_LIVE }, () => {
  let sigma: SigmaClient;
  before(() => {
    sigma = liveClient();
  });
  after(() => sigma.close());

  test("logs a signal, reads it back by id and in the list", async () => {
    const symbol = freshSymbol();
    const logged = await sigma.logDecision(aSignal({ symbol }));
    assert.match(logged.requestId, UUID, "a request_id is generated when none is given");
    assert.equal(logged.replayed, false);
    const decision = logged.decision;
    assert.match(decision.id, UUID);
    assert.equal(decision.symbol, symbol);
    assert.equal(decision.decisionType, DecisionType.SIGNAL);
    assert.equal(decision.requestId, logged.requestId, "the generated request_id was sent");
    assert.equal(decision.priceAtDecision, "97123.50000000", "decimals come back as 8-decimal strings");
    assert.equal(decision.agreementPct, 0.8);
    assert.deepEqual(
      decision.gates.map((g) => [g.name, g.passed, g.value, g.threshold]),
      [
        ["supermajority", true, 0.8, 0.7],
        ["effective_k", true, 3.2, 2.0],
      ],
    );
    assert.ok(decision.reasoning.length > 0, "the server writes the reasoning");
    assert.ok(decision.decidedAt && Math.abs(timestampDate(decision.decidedAt).getTime() - Date.now()) < 60_000);

    assert.deepEqual(await sigma.getDecision(decision.id), decision);

    const page = await sigma.listDecisions({ symbol, decisionType: DecisionType.SIGNAL });
    assert.deepEqual(
      page.decisions.map((d) => d.id),
      [decision.id],
    );
    assert.equal(page.nextPageToken, "");
  });

  test("pages through a list with next_page_token", async () => {
    const symbol = freshSymbol();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await sigma.logDecision(aSignal({ symbol }))).decision.id);
    const first = await sigma.listDecisions({ symbol, pageSize: 2 });
    assert.equal(first.decisions.length, 2);
    assert.notEqual(first.nextPageToken, "");
    const second = await sigma.listDecisions({ symbol, pageSize: 2, pageToken: first.nextPageToken });
    assert.equal(second.nextPageToken, "");
    assert.deepEqual(
      [...first.decisions, ...second.decisions].map((d) => d.id).sort(),
      [...ids].sort(),
    );
  });

  test("a repeated request_id is a replay; with other content it is REQUEST_ID_REUSED", async () => {
    const symbol = freshSymbol();
    const requestId = `ts-client-${randomUUID()}`;
    const first = await sigma.logDecision(aSignal({ symbol, requestId }));
    const again = await sigma.logDecision(aSignal({ symbol, requestId }));
    assert.equal(first.replayed, false);
    assert.equal(again.replayed, true);
    assert.equal(again.requestId, requestId);
    assert.equal(again.decision.id, first.decision.id);
    assert.equal((await sigma.listDecisions({ symbol })).decisions.length, 1, "stored once");

    const reused = await rejection(sigma.logDecision(aSignal({ symbol, requestId, traderCount: 8 })));
    assert.equal(reused.code, Code.AlreadyExists);
    assert.equal(reused.reason, "REQUEST_ID_REUSED");
    assert.equal(reused.errorReason, ErrorReason.REQUEST_ID_REUSED);
  });

  test("reads stats, and an outcome moves them", async () => {
    const symbol = freshSymbol();
    const signal = await sigma.logDecision(aSignal({ symbol }));
    await sigma.logDecision(aSkip({ symbol }));

    const before = await sigma.getStats({ days: 1, symbol });
    assert.equal(before.days, 1);
    assert.ok(before.totals);
    assert.equal(before.totals.totalDecisions, 2n, "int64 counts are bigint");
    assert.equal(before.totals.signalCount, 1n);
    assert.equal(before.totals.skipCount, 1n);
    assert.equal(before.totals.pendingCount, 1n);
    assert.equal(before.totals.skipRate, 0.5);
    assert.equal(before.totals.totalPnl, "0.00000000");
    assert.deepEqual(
      before.bySymbol.map((s) => s.symbol),
      [symbol],
    );
    assert.deepEqual(
      before.gateFailures.map((g) => [g.name, g.count]),
      [["supermajority", 1n]],
    );

    const closed = await sigma.recordOutcome({
      decisionId: signal.decision.id,
      outcomePnl: "125.5",
      outcomeRMultiple: 1.8,
    });
    assert.equal(closed.outcomePnl, "125.50000000");
    assert.equal(closed.outcomeRMultiple, 1.8);

    const after = await sigma.getStats({ days: 1, symbol });
    assert.equal(after.totals?.winCount, 1n);
    assert.equal(after.totals?.winRate, 1);
    assert.equal(after.totals?.totalPnl, "125.50000000");

    const different = await rejection(
      sigma.recordOutcome({ decisionId: signal.decision.id, outcomePnl: "-3", outcomeRMultiple: -0.1 }),
    );
    assert.equal(different.code, Code.FailedPrecondition);
    assert.equal(different.reason, "OUTCOME_ALREADY_RECORDED");
  });

  test("getSignalQuality: the time series and the strength breakdowns of seeded outcomes", async () => {
    const symbol = freshSymbol();
    const now = Date.now();
    const at = (hoursAgo: number) => timestampFromDate(new Date(now - hoursAgo * HOUR_MS));
    // Closed signals: [agreement, effective_k, traders, decided h ago, closed h ago, pnl, R].
    const seeds: [number, number, number, number, number, string, number][] = [
      [0.65, 1.5, 3, 50, 49, "100", 2], // a win
      [0.55, 12, 30, 50, 48, "0", 0], // a breakeven (not a win), out of every range
      [0.85, 5, 4, 26, 25, "-50", -1], // a loss
      [1.0, 10, 10, 26, 2, "150", 3], // a win on every top edge (the last range is closed)
      [0.95, 7, 20, 240, 3, "-20", -0.5], // decided before the window: in the time series, not the breakdowns
    ];
    const closes: { closedAt: number; win: boolean; r: number }[] = [];
    for (const [agreementPct, effectiveK, traderCount, decided, closed, outcomePnl, outcomeRMultiple] of seeds) {
      const { decision } = await sigma.logDecision(
        aSignal({ symbol, agreementPct, effectiveK, traderCount, decidedAt: at(decided) }),
      );
      await sigma.recordOutcome({ decisionId: decision.id, outcomePnl, outcomeRMultiple, outcomeClosedAt: at(closed) });
      closes.push({ closedAt: now - closed * HOUR_MS, win: Number(outcomePnl) > 0, r: outcomeRMultiple });
    }
    await sigma.logDecision(aSignal({ symbol, agreementPct: 0.7, effectiveK: 3, traderCount: 4, decidedAt: at(1) })); // pending
    await sigma.logDecision(aSkip({ symbol })); // not a signal
    const decidedInWindow = [50, 50, 26, 26, 1].map((h) => now - h * HOUR_MS);

    const quality = await sigma.getSignalQuality({
      days: 3,
      symbol,
      bucketWidth: BucketWidth.DAY,
      agreementEdges: [0.6, 0.8, 1],
      effectiveKEdges: [2, 4, 10],
      traderCountEdges: [1, 5, 10],
    });
    assert.equal(quality.days, 3);
    assert.equal(quality.bucketWidth, BucketWidth.DAY);
    assert.equal(quality.minClosed, 10);
    assert.ok(quality.windowStart);
    const windowStart = timestampDate(quality.windowStart).getTime();
    assert.ok(Math.abs(windowStart - (now - 72 * HOUR_MS)) < 60_000, "the window is the last 3 days");

    // Days from 00:00 UTC: the one holding the window's start to today, every one listed.
    const series = quality.timeSeries;
    assert.equal(series.length, 4, `buckets: ${series.map((b) => b.start && timestampDate(b.start).toISOString())}`);
    const starts = series.map((b) => timestampDate(b.start!).getTime());
    for (const [i, start] of starts.entries()) {
      assert.equal(start % (24 * HOUR_MS), 0, "a bucket starts at 00:00 UTC");
      if (i > 0) assert.equal(start - starts[i - 1]!, 24 * HOUR_MS, "consecutive days");
    }
    assert.ok(starts[0]! <= windowStart && windowStart < starts[0]! + 24 * HOUR_MS);
    const bucketOf = (t: number) => starts.filter((start) => start <= t).length - 1;
    let cumulative = 0;
    for (const [i, bucket] of series.entries()) {
      const closedHere = closes.filter((c) => bucketOf(c.closedAt) === i);
      const wins = closedHere.filter((c) => c.win).length;
      const sumR = closedHere.reduce((sum, c) => sum + c.r, 0);
      cumulative += sumR;
      const day = new Date(starts[i]!).toISOString();
      assert.deepEqual(
        [bucket.signals, bucket.closed, bucket.wins, bucket.insufficientData],
        [BigInt(decidedInWindow.filter((t) => bucketOf(t) === i).length), BigInt(closedHere.length), BigInt(wins), true],
        `bucket ${day}`,
      );
      near(bucket.winRate, closedHere.length ? wins / closedHere.length : 0, `win rate of ${day}`);
      near(bucket.avgR, closedHere.length ? sumR / closedHere.length : 0, `avg R of ${day}`);
      near(bucket.cumulativeR, cumulative, `cumulative R to ${day}`);
    }
    const total = (f: (b: TimeBucket) => bigint) => series.reduce((sum, b) => sum + f(b), 0n);
    assert.deepEqual([total((b) => b.signals), total((b) => b.closed), total((b) => b.wins)], [5n, 5n, 2n]);
    near(series.at(-1)?.cumulativeR, 3.5, "the equity curve ends at +3.5 R");

    // The four closed signals decided in the window, by each measure of consensus.
    assert.deepEqual(quality.byAgreement?.edges, [0.6, 0.8, 1]);
    assert.deepEqual(quality.byAgreement?.buckets.map(strength), [
      [0.6, 0.8, false, 1n, 1n, 1, 2],
      [0.8, 1, false, 2n, 1n, 0.5, 1],
      [undefined, undefined, true, 1n, 0n, 0, 0],
    ]);
    assert.deepEqual(quality.byEffectiveK?.edges, [2, 4, 10]);
    assert.deepEqual(quality.byEffectiveK?.buckets.map(strength), [
      [2, 4, false, 0n, 0n, 0, 0],
      [4, 10, false, 2n, 1n, 0.5, 1],
      [undefined, undefined, true, 2n, 1n, 0.5, 1],
    ]);
    assert.deepEqual(quality.byTraderCount?.edges, [1, 5, 10]);
    assert.deepEqual(quality.byTraderCount?.buckets.map(strength), [
      [1, 5, false, 2n, 1n, 0.5, 0.5],
      [5, 10, false, 1n, 1n, 1, 3],
      [undefined, undefined, true, 1n, 0n, 0, 0],
    ]);
    for (const b of [quality.byAgreement, quality.byEffectiveK, quality.byTraderCount].flatMap((s) => s?.buckets ?? [])) {
      assert.equal(b.insufficientData, true, "fewer than 10 closed");
      if (b.closed === 0n) {
        assert.equal(b.winRateInterval, undefined, "no interval without a closed signal");
      } else {
        const { low, high } = b.winRateInterval!;
        assert.ok(0 <= low && low <= b.winRate && b.winRate <= high && high <= 1, `Wilson interval ${low}..${high} of ${b.winRate}`);
        assert.ok(high - low > 0.3, "a wide interval: too few trades to tell");
      }
    }

    // GetStats' outcome measures over the same decisions (those decided in the window):
    // closed in order win +2 R, breakeven, loss -1 R, win +3 R; held 1 h, 2 h, 1 h, 24 h.
    const stats = (await sigma.getStats({ days: 3, symbol })).totals;
    assert.ok(stats);
    assert.deepEqual([stats.closedCount, stats.winCount, stats.lossCount], [4n, 2n, 1n]);
    near(stats.avgWinR, 2.5, "avgWinR");
    near(stats.avgLossR, -1, "avgLossR");
    near(stats.profitFactor, 5, "profitFactor: 250 / 50");
    near(stats.maxDrawdownR, 1, "maxDrawdownR");
    assert.deepEqual([stats.bestR, stats.worstR], [3, -1]);
    assert.deepEqual([stats.longestWinStreak, stats.longestLossStreak], [1, 1], "the breakeven ends the first win run");
    assert.deepEqual([stats.medianHoldingTime?.seconds, stats.medianHoldingTime?.nanos], [5_400n, 0], "median of 1, 1, 2 and 24 h");
    assert.ok(stats.winRateInterval && stats.winRateInterval.low < 0.5 && stats.winRateInterval.high > 0.5);

    // Defaults: 7 days, day buckets, the server's edges.
    const defaults = await sigma.getSignalQuality({ symbol });
    assert.equal(defaults.days, 7);
    assert.equal(defaults.bucketWidth, BucketWidth.DAY);
    assert.ok(defaults.timeSeries.length >= 7 && defaults.timeSeries.length <= 8, `${defaults.timeSeries.length} days`);
    assert.deepEqual(defaults.byAgreement?.edges, [0.5, 0.6, 0.7, 0.8, 0.9, 1]);
    assert.deepEqual(defaults.byEffectiveK?.edges, [1, 2, 3, 4, 6, 10]);
    assert.deepEqual(defaults.byTraderCount?.edges, [1, 3, 5, 10, 20, 50]);
    assert.equal(defaults.byAgreement?.buckets.length, 6, "5 ranges and the out-of-range bucket");
    const hourly = await sigma.getSignalQuality({ days: 1, symbol, bucketWidth: BucketWidth.HOUR });
    assert.equal(hourly.bucketWidth, BucketWidth.HOUR);
    assert.ok(hourly.timeSeries.length >= 24 && hourly.timeSeries.length <= 25, `${hourly.timeSeries.length} hours`);

    const bad = await rejection(sigma.getSignalQuality({ symbol, agreementEdges: [0.8, 0.6] }));
    assert.equal(bad.code, Code.InvalidArgument);
    assert.equal(bad.reason, "VALIDATION_FAILED");
    assert.ok(bad.fieldViolations.some((v) => v.field.startsWith("agreement_edges")), JSON.stringify(bad.fieldViolations));
  });

  test("getGateAnalytics: failures, lone failures, directions, near-misses and gates failing together", async () => {
    const symbol = freshSymbol();
    const skip = (gates: [string, boolean, number, number][]) =>
      sigma.logDecision(
        aSkip({ symbol, gates: gates.map(([name, passed, value, threshold]) => ({ name, passed, value, threshold })) }),
      );
    await sigma.logDecision(aSignal({ symbol })); // supermajority 0.8/0.7 and effective_k 3.2/2 passed
    await skip([["supermajority", false, 0.69, 0.7], ["effective_k", true, 2.5, 2]]); // distance 0.014
    await skip([["supermajority", false, 0.5, 0.7]]); // 0.29
    await skip([["supermajority", false, 0.6, 0.7], ["effective_k", false, 1.7, 2]]); // 0.14 and 0.15
    await skip([["supermajority", true, 0.75, 0.7], ["effective_k", false, 1.5, 2]]); // 0.25
    await skip([["supermajority", true, 0.8, 0.7], ["freshness", false, 150, 60]]); // above its maximum: 1.5

    const analytics = await sigma.getGateAnalytics({ days: 1, symbol, topCombinations: 3 });
    assert.equal(analytics.days, 1);
    assert.ok(analytics.windowStart);
    assert.equal(analytics.skipsWithFailures, 5n);
    assert.deepEqual(
      analytics.gates.map((g) => [g.name, g.evaluated, g.failed, g.failureRate, g.onlyFailure, g.direction]),
      [
        ["supermajority", 6n, 3n, 0.5, 2n, GateDirection.MIN],
        ["effective_k", 4n, 2n, 0.5, 1n, GateDirection.MIN],
        ["freshness", 1n, 1n, 1, 1n, GateDirection.MAX],
      ],
      "most failures first",
    );
    const misses = (name: string) =>
      analytics.gates
        .find((g) => g.name === name)!
        .nearMisses.filter((b) => b.count > 0n)
        .map((b) => [b.lower, b.upper, b.count]);
    assert.deepEqual(misses("supermajority"), [
      [0.01, 0.02, 1n],
      [0.1, 0.2, 1n],
      [0.2, 0.5, 1n],
    ]);
    assert.deepEqual(misses("effective_k"), [
      [0.1, 0.2, 1n],
      [0.2, 0.5, 1n],
    ]);
    assert.deepEqual(misses("freshness"), [[1, undefined, 1n]], "the last bin is open");
    for (const gate of analytics.gates) {
      assert.deepEqual([gate.failedOnPassingSide, gate.failedWithoutValue], [0n, 0n], gate.name);
    }
    assert.deepEqual(
      analytics.failedTogether.map((c) => [c.gates, c.count]),
      [
        [["supermajority"], 2n],
        [["effective_k"], 1n],
        [["effective_k", "supermajority"], 1n],
      ],
      "most frequent first, ties by the names, at most topCombinations",
    );

    const all = await sigma.getGateAnalytics({ days: 1, symbol });
    assert.equal(all.failedTogether.length, 4, "the default top 10 holds all four sets");
    assert.deepEqual(all.failedTogether.at(-1)?.gates, ["freshness"]);

    const bad = await rejection(sigma.getGateAnalytics({ symbol, topCombinations: 101 }));
    assert.equal(bad.code, Code.InvalidArgument);
    assert.equal(bad.reason, "VALIDATION_FAILED");
    assert.ok(bad.fieldViolations.some((v) => v.field === "top_combinations"), JSON.stringify(bad.fieldViolations));
  });

  test("INVALID_ARGUMENT carries VALIDATION_FAILED and every field violation", async () => {
    const error = await rejection(
      sigma.logDecision(aSignal({ symbol: freshSymbol(), agreementPct: 1.5, gates: [{ name: "bad name!", passed: true }] })),
    );
    assert.equal(error.code, Code.InvalidArgument);
    assert.equal(error.codeName, "INVALID_ARGUMENT");
    assert.equal(error.reason, "VALIDATION_FAILED");
    assert.equal(error.errorReason, ErrorReason.VALIDATION_FAILED);
    assert.equal(error.retryable, false);
    const fields = error.fieldViolations.map((v) => v.field);
    assert.ok(fields.includes("agreement_pct"), `violations: ${JSON.stringify(error.fieldViolations)}`);
    assert.ok(fields.includes("gates[0].name"), `violations: ${JSON.stringify(error.fieldViolations)}`);
    assert.ok(error.violation("agreement_pct")!.length > 0);
    assert.match(error.message, /^INVALID_ARGUMENT \(VALIDATION_FAILED\): /);
    assert.ok(error.cause.details.length >= 2, "the ConnectError keeps the raw details");
  });

  test("NOT_FOUND carries DECISION_NOT_FOUND", async () => {
    const error = await rejection(sigma.getDecision(randomUUID()));
    assert.equal(error.code, Code.NotFound);
    assert.equal(error.reason, "DECISION_NOT_FOUND");
    assert.deepEqual(error.fieldViolations, []);

    const outcome = await rejection(sigma.recordOutcome({ decisionId: randomUUID(), outcomePnl: "1", outcomeRMultiple: 1 }));
    assert.equal(outcome.reason, "DECISION_NOT_FOUND");
  });

  test("a damaged page token is INVALID_PAGE_TOKEN", async () => {
    const error = await rejection(sigma.listDecisions({ pageToken: "not-a-token" }));
    assert.equal(error.code, Code.InvalidArgument);
    assert.equal(error.reason, "INVALID_PAGE_TOKEN");
  });

  test("an aborted signal cancels the call", async () => {
    const error = await rejection(sigma.getStats({}, { signal: AbortSignal.abort() }));
    assert.equal(error.code, Code.Canceled);
  });

  test("execution: config, the kill switch's validation, lookups and a disabled execution", async () => {
    const config = await sigma.getExecutionConfig();
    assert.ok(config.hlMaxLeverage >= 1);

    const empty = await rejection(sigma.updateExecutionConfig({}, { actor: "sigma-client-tests" }));
    assert.equal(empty.code, Code.InvalidArgument);
    assert.equal(empty.reason, "VALIDATION_FAILED");
    assert.ok(empty.fieldViolations.some((v) => v.field.startsWith("update_mask")), JSON.stringify(empty.fieldViolations));

    // Writing the value it already has changes nothing (and is audited under our actor).
    const same = await sigma.updateExecutionConfig(
      { hlMaxLeverage: config.hlMaxLeverage },
      { actor: "sigma-client-tests" },
    );
    assert.equal(same.hlMaxLeverage, config.hlMaxLeverage);
    assert.equal(same.enabled, config.enabled);

    const signal = await sigma.logDecision(aSignal({ symbol: freshSymbol() }));
    assert.deepEqual((await sigma.listExecutions({ decisionId: signal.decision.id })).executions, []);
    if (!(config.enabled && config.hlEnabled)) {
      const disabled = await rejection(sigma.executeSignal(signal.decision.id));
      assert.equal(disabled.code, Code.FailedPrecondition);
      assert.equal(disabled.reason, "EXECUTION_DISABLED");
    }
    const skip = await sigma.logDecision(aSkip({ symbol: freshSymbol() }));
    const notExecutable = await rejection(sigma.executeSignal(skip.decision.id));
    assert.equal(notExecutable.code, Code.FailedPrecondition);

    const missing = await rejection(sigma.getExecution(randomUUID()));
    assert.equal(missing.code, Code.NotFound);
    assert.equal(missing.reason, "EXECUTION_NOT_FOUND");

    const filtered = await sigma.listExecutions({ status: ExecutionStatus.FILLED, pageSize: 1 });
    assert.ok(filtered.executions.every((e) => e.status === ExecutionStatus.FILLED));
  });

  test("executeSignal with dryRunOnly on a live config: DRY_RUN_REQUIRED, nothing executed", async () => {
    const actor = { actor: "sigma-client-tests" };
    const config = await sigma.getExecutionConfig();
    const signal = await sigma.logDecision(aSignal({ symbol: freshSymbol() }));
    // Live execution switched on for this test only. Only the dry-run-only call is made while it
    // is live: the server refuses it before any signer or exchange is involved.
    const live = await sigma.updateExecutionConfig({ enabled: true, hlEnabled: true, dryRun: false }, actor);
    try {
      assert.deepEqual([live.enabled, live.hlEnabled, live.dryRun], [true, true, false]);
      const refused = await rejection(sigma.executeSignal(signal.decision.id, { dryRunOnly: true }));
      assert.equal(refused.code, Code.FailedPrecondition);
      assert.equal(refused.reason, "DRY_RUN_REQUIRED");
      assert.equal(refused.errorReason, ErrorReason.DRY_RUN_REQUIRED);
      assert.equal(refused.retryable, false);
      assert.match(refused.rawMessage, /dry run/);
    } finally {
      await sigma.updateExecutionConfig({ enabled: config.enabled, hlEnabled: config.hlEnabled, dryRun: config.dryRun }, actor);
    }
    assert.deepEqual((await sigma.listExecutions({ decisionId: signal.decision.id })).executions, [], "nothing was executed");
    const restored = await sigma.getExecutionConfig();
    assert.deepEqual([restored.enabled, restored.hlEnabled, restored.dryRun], [config.enabled, config.hlEnabled, config.dryRun]);
  });
});
