"""What every measurement gets: the seeded database, the sizes of this run, an in-process server."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import grpc

from sigma_grpc.app import RunningServer, start_server
from sigma_grpc.config import Settings
from sigma_grpc.gen.sigma.v1 import decision_service_pb2_grpc as pb_grpc
from sigma_grpc.storage.pool import create_pool

# The async stub type exists only in the generated .pyi; at run time one stub class serves both channels.
if TYPE_CHECKING:
    Stub = pb_grpc.DecisionServiceAsyncStub
else:
    Stub = pb_grpc.DecisionServiceStub

# The list page the benchmarks read (the API's default page size).
PAGE = 50


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much each measurement does: a full run, or `--quick` (seconds; only checks it all runs)."""

    rows: int
    quick: bool
    # LogDecision under load: warm-up and counted seconds per run, runs per side (alternating).
    load_warmup_s: float
    load_duration_s: float
    load_rounds: int
    concurrencies: tuple[int, ...]
    # ListDecisions: calls per timed figure, how deep the deep page is, OFFSET queries timed.
    list_repeat: int
    deep_rows: int
    offset_repeat: int
    # GetStats: warm calls, and how many server restarts for the first call after one.
    stats_repeat: int
    restarts: int
    # Process start: runs against the migrated database (and of the import baseline).
    startup_runs: int
    # executemany: rows per batch, batches per variant.
    batch_rows: int
    batches: int

    @classmethod
    def full(cls, rows: int) -> Sizes:
        return cls(
            rows=rows,
            quick=False,
            load_warmup_s=1.0,
            load_duration_s=4.0,
            load_rounds=2,
            concurrencies=(16, 64),
            list_repeat=200,
            deep_rows=100_000,
            offset_repeat=10,
            stats_repeat=15,
            restarts=3,
            startup_runs=5,
            batch_rows=500,
            batches=10,
        )

    @classmethod
    def quick_run(cls, rows: int) -> Sizes:
        return cls(
            rows=rows,
            quick=True,
            load_warmup_s=0.2,
            load_duration_s=0.5,
            load_rounds=1,
            concurrencies=(16, 64),
            list_repeat=8,
            deep_rows=1_000,
            offset_repeat=3,
            stats_repeat=3,
            restarts=1,
            startup_runs=1,
            batch_rows=50,
            batches=2,
        )


@dataclass(frozen=True, slots=True)
class Context:
    url: str
    sizes: Sizes
    workdir: Path


def progress(message: str) -> None:
    """What the suite is doing, on stderr (stdout is the report)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


@dataclass
class Served:
    server: RunningServer
    pool: asyncpg.Pool
    channel: grpc.aio.Channel
    stub: Stub


@contextlib.asynccontextmanager
async def served(url: str) -> AsyncIterator[Served]:
    """The service in this process (start_server, a real pool, a real socket on a free port) and a channel.

    For the read benchmarks, whose calls go one at a time: client and server never
    compete for a core, and the server can be stopped and started again in-process.
    The pool is the tests' and `serve`'s (create_pool); its first connection is made
    before the first call, so a first call measures the service, not a TCP handshake.
    """
    pool = await create_pool(url, max_size=Settings().db_pool_size)
    try:
        server = await start_server(pool, "127.0.0.1:0", Settings())
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                await asyncio.wait_for(channel.channel_ready(), 10)
                yield Served(server, pool, channel, Stub(channel))
        finally:
            await server.stop(grace=1)
    finally:
        await pool.close()


async def time_ms(call: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await call()
    return (time.perf_counter() - start) * 1000


async def interleaved(
    calls: dict[str, Callable[[], Awaitable[object]]], repeat: int, warmup: int = 3
) -> dict[str, list[float]]:
    """Milliseconds of each call, `repeat` times, taking turns.

    Taking turns (a, b, a, b…) rather than all of a then all of b: on a shared machine,
    a burst of someone else's load then slows both sides alike instead of one.
    """
    for _ in range(warmup):
        for call in calls.values():
            await call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeat):
        for name, call in calls.items():
            samples[name].append(await time_ms(call))
    return samples
