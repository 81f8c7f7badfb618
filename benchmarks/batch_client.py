"""The batch logging client, run as its own process (as hl-decide is): LogDecisions, or the client's batcher.

    python -m benchmarks.batch_client --target 127.0.0.1:PORT --mode rpc --rows 10000 --batch 500 --tag t1

- `rpc`: LogDecisions calls of `batch` decisions, one at a time, encoded before
  the clock starts: what the server takes to store a batch.
- `batcher`: sigma_client's DecisionBatcher, every decision handed over with
  `log_decision_nowait` as hl-decide would, the clock running from the first
  hand-over to the last acknowledgement: the whole path, the client's work included.

Prints one JSON line: rows stored, elapsed seconds, per-call milliseconds (rpc).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import grpc

from benchmarks import sample
from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as pb

METHOD = "/sigma.v1.DecisionService/LogDecisions"


async def _rpc(target: str, rows: int, batch: int, tag: str) -> dict[str, Any]:
    bodies = [
        pb.LogDecisionsRequest(
            decisions=[sample.request(n, f"{tag}-{n}") for n in range(first, min(first + batch, rows))]
        ).SerializeToString()
        for first in range(0, rows, batch)
    ]
    latencies = []
    async with grpc.aio.insecure_channel(target) as channel:
        await asyncio.wait_for(channel.channel_ready(), 10)
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(METHOD)
        # One call to warm the connection, the server's caches and its pool, with ids of its own.
        await call(pb.LogDecisionsRequest(decisions=[sample.request(0, f"{tag}-warm")]).SerializeToString())
        start = time.perf_counter()
        for body in bodies:
            sent = time.perf_counter()
            answer = pb.LogDecisionsResponse.FromString(await call(body, timeout=60))
            latencies.append((time.perf_counter() - sent) * 1000)
            refused = [r.error.message for r in answer.results if r.WhichOneof("result") == "error"]
            if refused:
                raise RuntimeError(f"LogDecisions refused {len(refused)} decisions, first: {refused[0]}")
        elapsed = time.perf_counter() - start
    return {"rows": rows, "elapsed_s": elapsed, "call_ms": latencies}


async def _batcher(target: str, rows: int, batch: int, tag: str) -> dict[str, Any]:
    from sigma_client import SigmaClient  # noqa: PLC0415 (only this mode needs the client package)
    from sigma_client.batcher import DecisionBatcher  # noqa: PLC0415

    fields = [{**sample.decision(n), "request_id": f"{tag}-{n}"} for n in range(rows)]
    async with SigmaClient(target) as client:
        await client.log_decision(**{**sample.decision(0), "request_id": f"{tag}-warm"})
        async with DecisionBatcher(client, max_batch=batch, max_pending=max(rows, 10_000)) as batcher:
            futures, costs_ns = [], []
            start = time.perf_counter()
            for n, f in enumerate(fields):
                handed = time.perf_counter_ns()
                futures.append(batcher.log_decision_nowait(**f))
                costs_ns.append(time.perf_counter_ns() - handed)
                if n % 100 == 99:
                    # As hl-decide between evaluations: the loop runs, batches leave meanwhile.
                    await asyncio.sleep(0)
            await asyncio.gather(*futures)
            elapsed = time.perf_counter() - start
    # The least a hand-over can cost, for the same decisions in the same loop: a put on a queue.
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    queue_ns = []
    for n, f in enumerate(fields):
        handed = time.perf_counter_ns()
        queue.put_nowait(dict(f))
        queue_ns.append(time.perf_counter_ns() - handed)
        if n % 100 == 99:
            await asyncio.sleep(0)
    return {
        "rows": rows,
        "elapsed_s": elapsed,
        "call_ms": [],
        "nowait_us": [c / 1000 for c in costs_ns],
        "queue_put_us": [c / 1000 for c in queue_ns],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--mode", choices=("rpc", "batcher"), required=True)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--tag", required=True, help="request ids are <tag>-<n>: unique per run")
    options = parser.parse_args()
    run = _rpc if options.mode == "rpc" else _batcher
    result = asyncio.run(run(options.target, options.rows, options.batch, options.tag))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
    sys.exit(0)
