"""How much a deep page of ListDecisions costs compared with the first page.

    make bench        # or: python benchmarks/bench_list_pages.py [--rows N]

Fills a throwaway embedded PostgreSQL with N decisions, then times, through the
real gRPC server:
  - the first page of 50,
  - the last page of 50 reached by keyset pagination (a page token),
and, as the baseline measured in the same run, the OFFSET query the plan's
`limit/offset` endpoint would have run for that same last page. It prints each
median and the ratios deep/first (keyset: should stay near 1) and
offset/keyset for the deep page.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import grpc

from sigma_grpc.app import start_server
from sigma_grpc.config import DEFAULT_MIGRATIONS_DIR
from sigma_grpc.domain.models import DecisionFilter, PageCursor
from sigma_grpc.domain.pagination import encode_page_token
from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as pb
from sigma_grpc.gen.sigma.v1 import decision_service_pb2_grpc as pb_grpc
from sigma_grpc.storage.embedded import start_embedded
from sigma_grpc.storage.migrate import apply_migrations
from sigma_grpc.storage.pool import create_pool

PAGE = 50


async def _median_ms(call: Callable[[], Awaitable[object]], repeat: int) -> float:
    for _ in range(3):  # warm caches and plans
        await call()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


async def _fill(pool: asyncpg.Pool, rows: int) -> None:
    await pool.execute(
        """
        INSERT INTO decision_logs (symbol, direction, decision_type, trader_count, agreement_pct,
                                   effective_k, gates, reasoning, decided_at)
        SELECT (ARRAY['BTC','ETH','SOL','kPEPE'])[1 + i % 4], 'long', 'signal', 5, 0.8, 3.0,
               '[{"name":"supermajority","passed":true,"value":0.8,"threshold":0.7}]'::jsonb,
               'benchmark row', NOW() - make_interval(secs => i)
        FROM generate_series(1, $1) AS i
        """,
        rows,
    )
    await pool.execute("ANALYZE decision_logs")


async def run(rows: int, repeat: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="sigma-bench-"))
    embedded = await asyncio.to_thread(start_embedded, folder)
    try:
        pool = await create_pool(embedded.url, max_size=4)
        async with pool.acquire() as conn:
            await apply_migrations(conn, DEFAULT_MIGRATIONS_DIR)
        await _fill(pool, rows)
        server = await start_server(pool, "127.0.0.1:0")
        try:
            # The cursor just before the last page, as a client would hold after paging there.
            cursor_row = await pool.fetchrow(
                "SELECT decided_at, id FROM decision_logs "
                "ORDER BY decided_at DESC, id DESC OFFSET $1 LIMIT 1",
                rows - PAGE - 1,
            )
            assert cursor_row is not None
            token = encode_page_token(
                PageCursor(cursor_row["decided_at"], cursor_row["id"]), DecisionFilter()
            )
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                stub = pb_grpc.DecisionServiceStub(channel)
                first = await _median_ms(lambda: stub.ListDecisions(pb.ListDecisionsRequest()), repeat)
                deep = await _median_ms(
                    lambda: stub.ListDecisions(pb.ListDecisionsRequest(page_token=token)), repeat
                )
                deep_page = await stub.ListDecisions(pb.ListDecisionsRequest(page_token=token))
                assert len(deep_page.decisions) == PAGE and not deep_page.next_page_token
            offset = await _median_ms(
                lambda: pool.fetch(
                    "SELECT * FROM decision_logs ORDER BY decided_at DESC, id DESC OFFSET $1 LIMIT $2",
                    rows - PAGE,
                    PAGE,
                ),
                repeat,
            )
            keyset_sql = await _median_ms(
                lambda: pool.fetch(
                    "SELECT * FROM decision_logs WHERE (decided_at, id) < ($1, $2) "
                    "ORDER BY decided_at DESC, id DESC LIMIT $3",
                    cursor_row["decided_at"],
                    cursor_row["id"],
                    PAGE,
                ),
                repeat,
            )
        finally:
            await server.stop(grace=1)
            await pool.close()
    finally:
        await asyncio.to_thread(embedded.stop)
        shutil.rmtree(folder, ignore_errors=True)

    print(f"rows: {rows}, page size: {PAGE}, median of {repeat} calls")
    print(f"ListDecisions first page (gRPC):        {first:8.2f} ms")
    print(f"ListDecisions last page, keyset (gRPC): {deep:8.2f} ms")
    print(
        f"  ratio last/first:                     {deep / first:8.2f}x  (keyset: page depth costs ~nothing)"
    )
    print(f"SQL last page, keyset:                  {keyset_sql:8.2f} ms")
    print(f"SQL last page, OFFSET (baseline):       {offset:8.2f} ms")
    print(f"  ratio OFFSET/keyset:                  {offset / keyset_sql:8.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=30)
    options = parser.parse_args()
    asyncio.run(run(options.rows, options.repeat))


if __name__ == "__main__":
    main()
