import { randomBytes } from "node:crypto";

import { DecisionType, Direction, SigmaClient, type LogDecisionInput } from "@sigmapilot/sigma-client";

/** The live server's gRPC URL (tests/test_typescript_client.py sets it), or undefined. */
export const TARGET = process.env.SIGMA_TARGET;

/** Why the live tests skip, or false when they run. */
export const SKIP_LIVE = TARGET ? false : "SIGMA_TARGET is not set (e.g. SIGMA_TARGET=http://127.0.0.1:50051)";

export function liveClient(): SigmaClient {
  if (!TARGET) throw new Error("SIGMA_TARGET is not set");
  // SIGMA_TOKEN: for a deployment that checks tokens (the test server does not).
  return new SigmaClient({ baseUrl: TARGET, timeoutMs: 10_000, userAgent: "sigma-client-tests", token: process.env.SIGMA_TOKEN });
}

/** A symbol of this run's own (1-16 letters/digits), so that lists and stats see only this test's rows. */
export function freshSymbol(): string {
  return `T${randomBytes(6).toString("hex").toUpperCase()}`;
}

/** A valid SIGNAL (tests/helpers.py `signal()`); fields of `overrides` replace its own. */
export function aSignal(overrides: Partial<LogDecisionInput> = {}): LogDecisionInput {
  return {
    symbol: "BTC",
    direction: Direction.LONG,
    decisionType: DecisionType.SIGNAL,
    traderCount: 7,
    agreementPct: 0.8,
    effectiveK: 3.2,
    priceAtDecision: "97123.5",
    gates: [
      { name: "supermajority", passed: true, value: 0.8, threshold: 0.7 },
      { name: "effective_k", passed: true, value: 3.2, threshold: 2.0 },
    ],
    ...overrides,
  };
}

/** A valid SKIP (supermajority failed; tests/helpers.py `skip()`). */
export function aSkip(overrides: Partial<LogDecisionInput> = {}): LogDecisionInput {
  return {
    symbol: "ETH",
    direction: Direction.SHORT,
    decisionType: DecisionType.SKIP,
    traderCount: 5,
    agreementPct: 0.6,
    effectiveK: 2.5,
    gates: [
      { name: "supermajority", passed: false, value: 0.6, threshold: 0.7 },
      { name: "effective_k", passed: true, value: 2.5, threshold: 2.0 },
    ],
    ...overrides,
  };
}
