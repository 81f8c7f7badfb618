"""3. ListDecisions: a page ~100,000 rows deep costs what the first page costs (keyset pagination).

For each filter case (none, a symbol, a decision type, both), through the real
server (in this process: calls go one at a time, so client and server never
compete for a core):
  - the first page of 50 and the page `deep_rows` deep, reached with a page
    token built as a client holding the previous page would hold it (the last
    row's (decided_at, id) under the same filters), timed in turns; goal: deep
    p50 at most 1.5x the first page's;
  - the deep page's client-observed RPC time against its SQL alone: the very
    SELECT the store runs (captured from the store, not rewritten here) timed on
    one asyncpg connection set up as the server's are; goal: at most 2x;
  - the plan's OFFSET query for the same deep page, the baseline pagination
    this design replaced (as the old bench_list_pages.py measured it).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import asyncpg

from benchmarks.context import PAGE, Context, interleaved, progress, served
from benchmarks.report import Goal, Measurement, Row
from benchmarks.stats import ratio, summarize
from sigma_grpc.domain.models import DecisionFilter, DecisionType, ListQuery, PageCursor
from sigma_grpc.domain.pagination import encode_page_token
from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as pb
from sigma_grpc.storage.decisions import DecisionStore
from sigma_grpc.storage.pool import Database, create_pool


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    domain: DecisionFilter
    request: dict[str, Any]
    # The same filter in SQL, for counting, finding the cursor row and the OFFSET baseline.
    where: str
    args: tuple[Any, ...]


CASES = (
    Case("no filter", DecisionFilter(), {}, "TRUE", ()),
    Case("symbol=ETH", DecisionFilter(symbol="ETH"), {"symbol": "ETH"}, "symbol = $1", ("ETH",)),
    Case(
        "type=SIGNAL",
        DecisionFilter(decision_type=DecisionType.SIGNAL),
        {"decision_type": pb.DECISION_TYPE_SIGNAL},
        "decision_type = $1",
        ("signal",),
    ),
    Case(
        "symbol=BTC type=SIGNAL",
        DecisionFilter(symbol="BTC", decision_type=DecisionType.SIGNAL),
        {"symbol": "BTC", "decision_type": pb.DECISION_TYPE_SIGNAL},
        "symbol = $1 AND decision_type = $2",
        ("BTC", "signal"),
    ),
)


class _Recording(Database):
    """A Database that remembers the statements the store sends through `fetch`."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool)
        self.seen: list[tuple[str, tuple[Any, ...]]] = []

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        self.seen.append((sql, args))
        return await super().fetch(sql, *args)


async def _store_sql(pool: asyncpg.Pool, query: ListQuery) -> tuple[str, tuple[Any, ...]]:
    """The SELECT (and its arguments) the store runs for `query`."""
    recording = _Recording(pool)
    await DecisionStore(recording).list(query)
    if len(recording.seen) != 1:
        raise RuntimeError(f"expected one SELECT from DecisionStore.list, saw {len(recording.seen)}")
    return recording.seen[0]


async def run(ctx: Context) -> Measurement:
    m = Measurement("list", "ListDecisions: deep page vs first page")
    sizes = ctx.sizes
    async with served(ctx.url) as s:
        # The server's own pool settings (the JSONB codec), but the SQL is timed on one held
        # connection: taking and resetting a pooled connection is the server's overhead, not the SQL's.
        sql_pool = await create_pool(ctx.url, max_size=2)
        sql_conn = await sql_pool.acquire()
        try:
            for case in CASES:
                progress(f"ListDecisions, {case.name}")
                matching: int = await s.pool.fetchval(
                    f"SELECT count(*) FROM decision_logs WHERE {case.where}", *case.args
                )
                depth = min(sizes.deep_rows, matching - PAGE - 1)
                if depth < 1:
                    m.notes.append(f"{case.name}: only {matching} rows match, no deep page to read")
                    continue
                cursor_row = await s.pool.fetchrow(
                    f"SELECT decided_at, id FROM decision_logs WHERE {case.where} "
                    f"ORDER BY decided_at DESC, id DESC OFFSET {depth - 1} LIMIT 1",
                    *case.args,
                )
                assert cursor_row is not None
                cursor = PageCursor(cursor_row["decided_at"], cursor_row["id"])
                token = encode_page_token(cursor, case.domain)
                first_request = pb.ListDecisionsRequest(**case.request)
                deep_request = pb.ListDecisionsRequest(**case.request, page_token=token)

                # The deep page must be the page `depth` rows down, or the figure means nothing.
                page = await s.stub.ListDecisions(deep_request)
                expected = await s.pool.fetchval(
                    f"SELECT id FROM decision_logs WHERE {case.where} "
                    f"ORDER BY decided_at DESC, id DESC OFFSET {depth} LIMIT 1",
                    *case.args,
                )
                if len(page.decisions) != PAGE or page.decisions[0].id != str(expected):
                    raise RuntimeError(f"{case.name}: the page token did not lead {depth} rows deep")

                sql, args = await _store_sql(sql_pool, ListQuery(case.domain, PAGE, cursor))
                offset_sql = (
                    f"SELECT * FROM decision_logs WHERE {case.where} "
                    f"ORDER BY decided_at DESC, id DESC OFFSET {depth} LIMIT {PAGE + 1}"
                )
                rpc = await interleaved(
                    {
                        "first": functools.partial(s.stub.ListDecisions, first_request),
                        "deep": functools.partial(s.stub.ListDecisions, deep_request),
                        "sql": functools.partial(sql_conn.fetch, sql, *args),
                    },
                    sizes.list_repeat,
                )
                offset = await interleaved(
                    {"offset": functools.partial(sql_conn.fetch, offset_sql, *case.args)},
                    sizes.offset_repeat,
                    warmup=1,
                )
                first, deep, alone = summarize(rpc["first"]), summarize(rpc["deep"]), summarize(rpc["sql"])
                off = summarize(offset["offset"])
                m.rows += [
                    Row(
                        f"deep page ({depth:,} rows) vs first page p50, {case.name}",
                        deep.p50,
                        "ms",
                        baseline=first.p50,
                        ratio=ratio(deep.p50, first.p50),
                        ratio_label="deep/first",
                        goal=Goal("ratio", "<=", 1.5),
                    ),
                    Row(
                        f"deep page RPC vs its SQL alone p50, {case.name}",
                        deep.p50,
                        "ms",
                        baseline=alone.p50,
                        ratio=ratio(deep.p50, alone.p50),
                        ratio_label="RPC/SQL",
                        goal=Goal("ratio", "<=", 2.0),
                    ),
                    Row(
                        f"deep page SQL, keyset vs OFFSET {depth:,} p50, {case.name}",
                        alone.p50,
                        "ms",
                        baseline=off.p50,
                        ratio=ratio(off.p50, alone.p50),
                        ratio_label="OFFSET/keyset",
                    ),
                ]
                m.details[case.name] = {
                    "matching_rows": matching,
                    "depth": depth,
                    "first_page_ms": first.as_dict(),
                    "deep_page_ms": deep.as_dict(),
                    "deep_page_sql_ms": alone.as_dict(),
                    "offset_sql_ms": off.as_dict(),
                }
                m.notes.append(
                    f"{case.name}: p99 first {first.p99:.2f} ms, deep {deep.p99:.2f} ms, "
                    f"SQL {alone.p99:.2f} ms, OFFSET {off.p99:.2f} ms"
                )
        finally:
            await sql_pool.release(sql_conn)
            await sql_pool.close()
    return m
