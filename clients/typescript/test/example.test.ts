// The hl-stream example (examples/hl-stream) served by Express on a free port, in
// front of the live server: the routes answer JSON a browser can read, and map
// sigma-grpc's errors to HTTP statuses.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";

import type { GetStatsResponseJson, SigmaClient } from "@sigmapilot/sigma-client";

import type { DecisionsPageBody, ErrorBody } from "../../../examples/hl-stream/src/dashboard.js";
import { createApp } from "../../../examples/hl-stream/src/server.js";
import { SKIP_LIVE, aSignal, aSkip, freshSymbol, liveClient } from "./helpers.js";

describe("the hl-stream example over a live server", { skip: SKIP_LIVE }, () => {
  let sigma: SigmaClient;
  let server: Server;
  let base: string;
  before(async () => {
    sigma = liveClient();
    server = createApp(sigma).listen(0, "127.0.0.1");
    await new Promise((resolve) => server.once("listening", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise((resolve) => server.close(resolve));
    sigma.close();
  });

  test("GET /dashboard/api/decisions: one page of decisions and the stats, as proto3 JSON", async () => {
    const symbol = freshSymbol();
    const signal = await sigma.logDecision(aSignal({ symbol }));
    await sigma.logDecision(aSkip({ symbol }));

    const response = await fetch(`${base}/dashboard/api/decisions?symbol=${symbol}&type=signal&days=1`);
    assert.equal(response.status, 200);
    const body = (await response.json()) as DecisionsPageBody;
    assert.deepEqual(
      body.items.map((d) => [d.id, d.decisionType, d.priceAtDecision]),
      [[signal.decision.id, "DECISION_TYPE_SIGNAL", "97123.50000000"]],
    );
    assert.equal(body.nextPageToken, "");
    assert.equal(body.stats.totals?.totalDecisions, "2", "int64 counts are JSON strings");
    assert.equal(body.stats.totals?.skipCount, "1");
    assert.equal(body.stats.days, 1);
    assert.deepEqual(body.stats.gateFailures, [{ name: "supermajority", count: "1" }]);

    const stats = await fetch(`${base}/dashboard/api/decisions/stats?days=1&symbol=${symbol}`);
    assert.equal(stats.status, 200);
    assert.equal(((await stats.json()) as GetStatsResponseJson).totals?.totalDecisions, "2");

    const one = await fetch(`${base}/dashboard/api/decisions/${signal.decision.id}`);
    assert.equal(one.status, 200);
    assert.equal(((await one.json()) as { decision: { id: string } }).decision.id, signal.decision.id);
  });

  test("sigma-grpc errors become HTTP statuses with the reason and violations", async () => {
    const missing = await fetch(`${base}/dashboard/api/decisions/${randomUUID()}`);
    assert.equal(missing.status, 404);
    const notFound = (await missing.json()) as ErrorBody;
    assert.equal(notFound.code, "NOT_FOUND");
    assert.equal(notFound.reason, "DECISION_NOT_FOUND");

    const malformed = await fetch(`${base}/dashboard/api/decisions/not-a-uuid`);
    assert.equal(malformed.status, 400);
    const invalid = (await malformed.json()) as ErrorBody;
    assert.equal(invalid.reason, "VALIDATION_FAILED");
    assert.ok(invalid.fieldViolations?.some((v) => v.field === "id"), JSON.stringify(invalid));

    const badToken = await fetch(`${base}/dashboard/api/decisions?pageToken=garbage`);
    assert.equal(badToken.status, 400);
    assert.equal(((await badToken.json()) as ErrorBody).reason, "INVALID_PAGE_TOKEN");

    const badType = await fetch(`${base}/dashboard/api/decisions?type=bogus`);
    assert.equal(badType.status, 400);
    assert.match(((await badType.json()) as ErrorBody).error, /type must be one of/);
  });
});
