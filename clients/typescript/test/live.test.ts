// Against a live sigma-grpc server: SIGMA_TARGET=http://127.0.0.1:PORT npm test
// (tests/test_typescript_client.py runs it on the pytest server, over empty tables).
// Each test logs on a symbol of its own, so they also pass on a server with data.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";

import {
  Code,
  DecisionType,
  ErrorReason,
  ExecutionStatus,
  SigmaClient,
  SigmaError,
  timestampDate,
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
});
