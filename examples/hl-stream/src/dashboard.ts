// hl-stream's dashboard API over sigma-grpc: Express routes that call the typed
// client and answer JSON. Copy into hl-stream (see ../README.md).
//
//   GET /dashboard/api/decisions?symbol=BTC&type=signal&pageSize=20&pageToken=...&days=7
//     -> { items: Decision[] (proto3 JSON), nextPageToken, stats: GetStatsResponse (proto3 JSON) }
//        (the plan's shape, {items, stats}, which the dashboard's frontend reads, plus a page token)
//   GET /dashboard/api/decisions/stats?days=7
//     -> GetStatsResponse (proto3 JSON)
//   GET /dashboard/api/decisions/:id
//     -> { decision: Decision (proto3 JSON) }
//
// proto3 JSON (toJson) is what a browser can read: int64 counts become strings
// ("totalDecisions": "12"; a bigint would make res.json throw), enums their names
// ("DECISION_TYPE_SIGNAL"), timestamps RFC 3339 strings, decimals stay strings.

import { Router, type ErrorRequestHandler, type Request, type Response } from "express";

import {
  Code,
  DecisionSchema,
  DecisionType,
  GetStatsResponseSchema,
  SigmaError,
  toJson,
  type DecisionJson,
  type GetStatsResponseJson,
  type SigmaClient,
} from "@sigmapilot/sigma-client";

/** The body of GET /dashboard/api/decisions. */
export interface DecisionsPageBody {
  items: DecisionJson[];
  nextPageToken: string;
  stats: GetStatsResponseJson;
}

/** The body of every error answer. */
export interface ErrorBody {
  error: string;
  code: string;
  reason?: string;
  fieldViolations?: { field: string; description: string }[];
}

const DECISION_TYPES: Record<string, DecisionType> = {
  signal: DecisionType.SIGNAL,
  skip: DecisionType.SKIP,
  risk_reject: DecisionType.RISK_REJECT,
};

/** Each dashboard request's budget for sigma-grpc; the browser should not wait longer. */
const SIGMA_TIMEOUT_MS = 3_000;

/** A 400 of this route's own (a query parameter sigma-grpc would not understand). */
class BadQuery extends Error {}

function intParam(req: Request, name: string): number | undefined {
  const raw = req.query[name];
  if (raw === undefined || raw === "") return undefined;
  if (typeof raw !== "string" || !/^\d{1,6}$/.test(raw)) throw new BadQuery(`${name} must be a non-negative integer`);
  return Number(raw);
}

function stringParam(req: Request, name: string): string | undefined {
  const raw = req.query[name];
  if (raw === undefined || raw === "") return undefined;
  if (typeof raw !== "string") throw new BadQuery(`${name} must be given once`);
  return raw;
}

/** Aborts the sigma-grpc calls when the browser goes away before the answer. */
function abortOnClose(res: Response): AbortSignal {
  const controller = new AbortController();
  res.on("close", () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller.signal;
}

export function dashboardRouter(sigma: SigmaClient): Router {
  const router = Router();

  router.get("/dashboard/api/decisions", async (req, res: Response<DecisionsPageBody>) => {
    const type = stringParam(req, "type");
    if (type !== undefined && !(type in DECISION_TYPES)) {
      throw new BadQuery(`type must be one of ${Object.keys(DECISION_TYPES).join(", ")}`);
    }
    const symbol = stringParam(req, "symbol");
    const call = { timeoutMs: SIGMA_TIMEOUT_MS, signal: abortOnClose(res) };
    // Both calls run at once on the client's one HTTP/2 connection.
    const [page, stats] = await Promise.all([
      sigma.listDecisions(
        {
          symbol,
          decisionType: type === undefined ? DecisionType.UNSPECIFIED : DECISION_TYPES[type],
          pageSize: intParam(req, "pageSize") ?? 20,
          pageToken: stringParam(req, "pageToken"),
        },
        call,
      ),
      sigma.getStats({ days: intParam(req, "days"), symbol }, call),
    ]);
    res.json({
      items: page.decisions.map((decision) => toJson(DecisionSchema, decision)),
      nextPageToken: page.nextPageToken,
      stats: toJson(GetStatsResponseSchema, stats),
    });
  });

  // Before /:id, which would otherwise take "stats" for an id.
  router.get("/dashboard/api/decisions/stats", async (req, res: Response<GetStatsResponseJson>) => {
    const stats = await sigma.getStats(
      { days: intParam(req, "days"), symbol: stringParam(req, "symbol") },
      { timeoutMs: SIGMA_TIMEOUT_MS, signal: abortOnClose(res) },
    );
    res.json(toJson(GetStatsResponseSchema, stats));
  });

  router.get("/dashboard/api/decisions/:id", async (req, res: Response<{ decision: DecisionJson }>) => {
    const decision = await sigma.getDecision(req.params.id as string, {
      timeoutMs: SIGMA_TIMEOUT_MS,
      signal: abortOnClose(res),
    });
    res.json({ decision: toJson(DecisionSchema, decision) });
  });

  return router;
}

/** The HTTP status hl-stream answers for a sigma-grpc error. */
export function httpStatus(error: SigmaError): number {
  switch (error.code) {
    case Code.InvalidArgument:
      return 400;
    case Code.NotFound:
      return 404;
    case Code.Unauthenticated:
      return 401;
    case Code.PermissionDenied:
      return 403;
    case Code.Unavailable:
      return 503; // DATABASE_UNAVAILABLE and friends: the browser may retry
    case Code.DeadlineExceeded:
      return 504;
    default:
      return 502;
  }
}

/**
 * Errors of the routes above as JSON. Express 5 passes a rejected async handler's
 * error here. Install it after the router: `app.use(dashboardRouter(sigma), sigmaErrors)`.
 */
export const sigmaErrors: ErrorRequestHandler = (error: unknown, _req, res: Response<ErrorBody>, next) => {
  if (res.headersSent) {
    next(error);
    return;
  }
  if (error instanceof BadQuery) {
    res.status(400).json({ error: error.message, code: "INVALID_ARGUMENT" });
    return;
  }
  if (error instanceof SigmaError) {
    if (error.code === Code.Canceled) return; // the browser left; nobody to answer
    const body: ErrorBody = { error: error.rawMessage, code: error.codeName };
    if (error.reason !== undefined) body.reason = error.reason;
    if (error.fieldViolations.length > 0) body.fieldViolations = [...error.fieldViolations];
    res.status(httpStatus(error)).json(body);
    return;
  }
  next(error);
};
