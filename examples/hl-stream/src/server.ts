// hl-stream's entry point, reduced to what concerns sigma-grpc:
//
//   SIGMA_GRPC_URL=http://127.0.0.1:50051 SIGMA_TOKEN=... PORT=3000 node dist/server.js
//   curl 'http://127.0.0.1:3000/dashboard/api/decisions?type=signal&days=1'

import express, { type Express } from "express";

import { SigmaClient } from "@sigmapilot/sigma-client";

import { dashboardRouter, sigmaErrors } from "./dashboard.js";

export function createApp(sigma: SigmaClient): Express {
  const app = express();
  app.use(dashboardRouter(sigma), sigmaErrors);
  return app;
}

export function main(env: NodeJS.ProcessEnv = process.env): void {
  // One client (one HTTP/2 connection) for the whole process.
  const sigma = new SigmaClient({
    baseUrl: env.SIGMA_GRPC_URL ?? "http://127.0.0.1:50051",
    timeoutMs: 5_000,
    token: env.SIGMA_TOKEN, // undefined: no authorization header
    userAgent: "hl-stream",
    headers: { "x-sigma-actor": "hl-stream" },
  });
  const port = Number(env.PORT ?? 3000);
  const server = createApp(sigma).listen(port, () => console.log(`hl-stream dashboard on :${port}`));
  process.once("SIGTERM", () => server.close(() => sigma.close()));
}
