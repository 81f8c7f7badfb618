"""The LogDecision load generator, run as its own process so its CPU is not the server's.

    python -m benchmarks.load --target 127.0.0.1:PORT --concurrency 16 --warmup 1 --duration 4 --tag run1

Keeps `concurrency` calls in flight on one channel (as hl-decide would hold
one), first for `warmup` seconds (not counted: connections, pool, caches), then
for `duration` seconds. Prints `measuring` when the counted part starts (the
parent samples the server's CPU time then), and at the end one JSON line:
calls, errors, elapsed seconds, every latency in ms, this process's CPU time.

Every call carries a fresh request id (`<tag>-<n>`), so each one stores a row.
Requests are encoded once per variant and the id appended as bytes; answers are
not decoded: the client spends as little CPU as a gRPC client can.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from dataclasses import dataclass, field

import grpc

from benchmarks import sample
from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as pb

METHOD = "/sigma.v1.DecisionService/LogDecision"


@dataclass
class _Tally:
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    first_error: str = ""


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _phase(
    call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes],
    templates: list[bytes],
    tag: str,
    *,
    concurrency: int,
    seconds: float,
    counter: list[int],
) -> tuple[_Tally, float]:
    """Keep `concurrency` calls in flight for `seconds`; the tally and the time until the last answer."""
    tally = _Tally()
    start = time.perf_counter()
    stop_at = start + seconds

    async def worker() -> None:
        while time.perf_counter() < stop_at:
            n = counter[0]
            counter[0] += 1
            body = sample.with_request_id(templates[n % len(templates)], f"{tag}-{n}")
            sent = time.perf_counter()
            try:
                await call(body, timeout=30)
            except grpc.aio.AioRpcError as error:
                name = error.code().name
                tally.errors[name] = tally.errors.get(name, 0) + 1
                tally.first_error = tally.first_error or f"{name}: {error.details()}"
                continue
            tally.latencies_ms.append((time.perf_counter() - sent) * 1000)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return tally, time.perf_counter() - start


async def run(target: str, concurrency: int, warmup: float, duration: float, tag: str) -> dict[str, object]:
    templates = [sample.request(n).SerializeToString() for n in range(sample.VARIANTS)]
    # The appended id must parse as the field it claims to be.
    assert pb.LogDecisionRequest.FromString(sample.with_request_id(templates[0], "x-1")).request_id == "x-1"
    counter = [0]
    async with grpc.aio.insecure_channel(target) as channel:
        await asyncio.wait_for(channel.channel_ready(), 10)
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(METHOD)
        if warmup > 0:
            await _phase(call, templates, tag, concurrency=concurrency, seconds=warmup, counter=counter)
        print("measuring", flush=True)
        cpu_before = _cpu_seconds()
        tally, elapsed = await _phase(
            call, templates, tag, concurrency=concurrency, seconds=duration, counter=counter
        )
        cpu = _cpu_seconds() - cpu_before
    return {
        "calls": len(tally.latencies_ms),
        "errors": tally.errors,
        "first_error": tally.first_error,
        "elapsed_s": elapsed,
        "latencies_ms": tally.latencies_ms,
        "client_cpu_s": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--tag", required=True, help="request ids are <tag>-<n>: unique per run")
    options = parser.parse_args()
    result = asyncio.run(
        run(options.target, options.concurrency, options.warmup, options.duration, options.tag)
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
    sys.exit(0)
