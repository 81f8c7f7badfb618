// Against a live sigma-grpc server that requires a token over mutual TLS:
// SIGMA_TLS_TARGET=https://127.0.0.1:PORT with SIGMA_TLS_CA, SIGMA_TLS_CERT, SIGMA_TLS_KEY
// (PEM files) and SIGMA_TLS_TOKEN (a writer's token). tests/test_typescript_client.py
// starts such a server, with certificates made for the run.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";

import { Code, ErrorReason, SigmaClient, SigmaError } from "@sigmapilot/sigma-client";

import { aSignal, freshSymbol } from "./helpers.js";

const TARGET = process.env.SIGMA_TLS_TARGET;
const SKIP = TARGET ? false : "SIGMA_TLS_TARGET is not set";

function file(name: string): Buffer {
  const path = process.env[name];
  if (!path) throw new Error(`${name} is not set`);
  return readFileSync(path);
}

function client(options: { token?: string; certificate?: boolean }): SigmaClient {
  const nodeOptions = options.certificate
    ? { ca: file("SIGMA_TLS_CA"), cert: file("SIGMA_TLS_CERT"), key: file("SIGMA_TLS_KEY") }
    : { ca: file("SIGMA_TLS_CA") };
  return new SigmaClient({ baseUrl: TARGET ?? "", timeoutMs: 10_000, token: options.token, nodeOptions });
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

describe("SigmaClient over mutual TLS with a token", { skip: SKIP }, () => {
  test("a client certificate and a writer's token may log a decision", async () => {
    const sigma = client({ token: process.env.SIGMA_TLS_TOKEN, certificate: true });
    try {
      const logged = await sigma.logDecision(aSignal({ symbol: freshSymbol() }));
      assert.ok(logged.decision.id);
    } finally {
      sigma.close();
    }
  });

  test("without a token the call is UNAUTHENTICATED (NOT_AUTHENTICATED)", async () => {
    const sigma = client({ certificate: true });
    try {
      const error = await rejection(sigma.getStats());
      assert.equal(error.code, Code.Unauthenticated);
      assert.equal(error.errorReason, ErrorReason.NOT_AUTHENTICATED);
      assert.equal(error.reason, "NOT_AUTHENTICATED");
    } finally {
      sigma.close();
    }
  });

  test("without a client certificate the connection is refused", async () => {
    const sigma = client({ token: process.env.SIGMA_TLS_TOKEN });
    try {
      const error = await rejection(sigma.getStats({}, { timeoutMs: 5_000 }));
      assert.equal(error.code, Code.Unavailable, `${Code[error.code]}: ${error.message}`);
    } finally {
      sigma.close();
    }
  });
});
