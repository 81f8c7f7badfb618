"""1. LogDecision under load through the real server, against a bare handler; and 6. the server's peak RSS.

Both servers run as their own processes on the bench database, each alone
under load at any time:
  - the service: `sigma-grpc serve` as a user runs it (start_server with its
    interceptors, a real pool of the default size, health, the HTTP gateway on a
    free port, the database monitor), SIGMA_GRPC_ADDR on port 0, read back
    from its log;
  - the baseline: benchmarks/bare_server.py, a grpc.aio generic handler on the
    same method with no interceptors, doing one asyncpg INSERT of the same row
    into the same decision_logs table (same pool size).

The load comes from a third process (benchmarks/load.py): 16, then 64 calls in
flight on one channel, a warm-up, then a fixed duration, real requests with
fresh request ids and the five gates. Why a separate process: on two cores, a
client in the server's process would take its event loop and GIL, and the
service, which spends more CPU per call than the bare handler, would lose more
to it. Apart, client, server and the PostgreSQL backends share the two cores
the same way for both sides; the client encodes each request variant once and
never decodes answers, so it takes as little of them as it can, and its CPU per
call is reported (the same for both sides: if it is close to the server's, the
client limits both and the ratio understates the gap). Runs alternate
(bare, service, service, bare…) so drift in other load on the machine touches
both sides alike. Rows pile up in decision_logs as in production, a few
thousand per second of load.

Peak RSS: VmHWM of each server process after all its load, and VmRSS once
started and idle (Linux /proc). Only the server's own process: not the client,
not PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from dataclasses import dataclass, field
from typing import Any

from benchmarks.bare_server import URL_VARIABLE
from benchmarks.context import Context, progress
from benchmarks.processes import ROOT, Child, child_env, cpu_seconds, proc_status, serve_command, wait_serving
from benchmarks.report import Goal, Measurement, Row
from benchmarks.stats import ratio, summarize

STARTUP_TIMEOUT_S = 120.0
CLIENT_LINE_LIMIT = 64 * 1024 * 1024


@dataclass
class _Side:
    """One server under test and what its load runs measured."""

    name: str
    child: Child
    address: str
    idle_rss_mib: float = 0.0
    runs: dict[int, list[dict[str, Any]]] = field(default_factory=dict)


def _start_service(url: str) -> _Side:
    env = child_env(
        {
            "SIGMA_DATABASE_URL": url,
            "SIGMA_GRPC_ADDR": "127.0.0.1:0",
            "SIGMA_HTTP_ADDR": "127.0.0.1:0",
            "SIGMA_SHUTDOWN_GRACE_S": "2",
        }
    )
    child = Child(serve_command(), env)
    port = int(child.wait_for_line(r"listening on 127\.0\.0\.1:(\d+)", STARTUP_TIMEOUT_S).group(1))
    address = f"127.0.0.1:{port}"
    wait_serving(address, child, STARTUP_TIMEOUT_S)
    return _Side("service", child, address)


def _start_bare(url: str) -> _Side:
    child = Child([sys.executable, "-m", "benchmarks.bare_server"], child_env({URL_VARIABLE: url}))
    port = int(child.wait_for_line(r"^port (\d+)", STARTUP_TIMEOUT_S, stderr=False).group(1))
    return _Side("bare", child, f"127.0.0.1:{port}")


async def _load(side: _Side, concurrency: int, ctx: Context, tag: str) -> dict[str, Any]:
    """One load run against `side`; the client's result plus the server's CPU time while counted."""
    sizes = ctx.sizes
    client = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.load",
        "--target",
        side.address,
        "--concurrency",
        str(concurrency),
        "--warmup",
        str(sizes.load_warmup_s),
        "--duration",
        str(sizes.load_duration_s),
        "--tag",
        tag,
        cwd=ROOT,
        env=child_env({}),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        # The result line carries every latency: far beyond asyncio's 64 KiB line limit.
        limit=CLIENT_LINE_LIMIT,
    )
    assert client.stdout is not None and client.stderr is not None
    cpu_start = None
    result: dict[str, Any] | None = None

    async def read_stdout() -> None:
        nonlocal cpu_start, result
        assert client.stdout is not None
        async for raw in client.stdout:
            line = raw.decode().strip()
            if line == "measuring":
                cpu_start = cpu_seconds(side.child.pid)
            elif line.startswith("{"):
                server_cpu = cpu_seconds(side.child.pid) - (cpu_start or 0.0)
                result = {**json.loads(line), "server_cpu_s": server_cpu}

    # Both pipes at once: a client stuck writing to a full stderr pipe would never finish its stdout.
    _, stderr = await asyncio.gather(read_stdout(), client.stderr.read())
    errors = stderr.decode()
    if await client.wait() != 0 or result is None or cpu_start is None:
        raise RuntimeError(f"the load client failed against the {side.name} server:\n{errors[-3000:]}")
    if result["errors"]:
        raise RuntimeError(
            f"{side.name} server answered errors under load: {result['errors']} "
            f"(first: {result['first_error']})"
        )
    return result


def _combined(runs: list[dict[str, Any]]) -> dict[str, Any]:
    calls = sum(r["calls"] for r in runs)
    elapsed = sum(r["elapsed_s"] for r in runs)
    latencies = [x for r in runs for x in r["latencies_ms"]]
    return {
        "calls": calls,
        "elapsed_s": elapsed,
        "throughput": calls / elapsed if elapsed else None,
        "latency_ms": summarize(latencies).as_dict() if latencies else None,
        "server_cpu_ms_per_call": 1000 * sum(r["server_cpu_s"] for r in runs) / calls if calls else None,
        "client_cpu_ms_per_call": 1000 * sum(r["client_cpu_s"] for r in runs) / calls if calls else None,
    }


async def run(ctx: Context) -> list[Measurement]:
    sizes = ctx.sizes
    progress("LogDecision: starting the service (sigma-grpc serve) and the bare baseline server")
    service = await asyncio.to_thread(_start_service, ctx.url)
    try:
        bare = await asyncio.to_thread(_start_bare, ctx.url)
        try:
            service.idle_rss_mib = proc_status(service.child.pid)["VmRSS"]
            bare.idle_rss_mib = proc_status(bare.child.pid)["VmRSS"]
            run_id = secrets.token_hex(3)
            for concurrency in sizes.concurrencies:
                for round_ in range(sizes.load_rounds):
                    order = (bare, service) if round_ % 2 == 0 else (service, bare)
                    for side in order:
                        progress(f"LogDecision, {concurrency} in flight, {side.name} (round {round_ + 1})")
                        tag = f"bench-{run_id}-{side.name}-{concurrency}-{round_}"
                        side.runs.setdefault(concurrency, []).append(await _load(side, concurrency, ctx, tag))
            peak = {s.name: proc_status(s.child.pid)["VmHWM"] for s in (service, bare)}
        finally:
            await asyncio.to_thread(bare.child.stop)
    finally:
        status = await asyncio.to_thread(service.child.stop)
    if status not in (0, None):
        raise RuntimeError(f"serve exited with status {status} on SIGTERM:\n{service.child.output()}")

    writes = Measurement(
        "log_decision", "LogDecision through the service vs a bare grpc.aio + asyncpg handler"
    )
    for concurrency in sizes.concurrencies:
        ours, base = _combined(service.runs[concurrency]), _combined(bare.runs[concurrency])
        writes.details[f"in_flight_{concurrency}"] = {"service": ours, "bare": base}
        lat, base_lat = ours["latency_ms"], base["latency_ms"]
        writes.rows += [
            Row(
                f"calls/s, {concurrency} in flight",
                ours["throughput"],
                "/s",
                baseline=base["throughput"],
                ratio=ratio(ours["throughput"], base["throughput"]),
                ratio_label="service/bare",
                goal=Goal("ratio", ">=", 0.85),
            ),
            Row(
                f"latency p50, {concurrency} in flight",
                lat["p50"],
                "ms",
                baseline=base_lat["p50"],
                ratio=ratio(lat["p50"], base_lat["p50"]),
                ratio_label="service/bare",
            ),
            Row(
                f"latency p99, {concurrency} in flight",
                lat["p99"],
                "ms",
                baseline=base_lat["p99"],
                ratio=ratio(lat["p99"], base_lat["p99"]),
                ratio_label="service/bare",
            ),
            Row(
                f"server CPU per call, {concurrency} in flight",
                ours["server_cpu_ms_per_call"],
                "ms",
                baseline=base["server_cpu_ms_per_call"],
                ratio=ratio(ours["server_cpu_ms_per_call"], base["server_cpu_ms_per_call"]),
                ratio_label="service/bare",
            ),
        ]
        writes.notes.append(
            f"{concurrency} in flight: {ours['calls']:,} calls to the service, {base['calls']:,} to the bare "
            f"handler; the load client used {ours['client_cpu_ms_per_call']:.2f} / "
            f"{base['client_cpu_ms_per_call']:.2f} ms CPU per call"
        )
    writes.details["load"] = {
        "warmup_s": sizes.load_warmup_s,
        "duration_s": sizes.load_duration_s,
        "rounds_per_side": sizes.load_rounds,
        "client": "benchmarks.load, its own process, one channel",
    }

    memory = Measurement("rss", "Server memory under the write load")
    memory.rows += [
        Row(
            "peak RSS (VmHWM) after the write load",
            peak["service"],
            "MiB",
            baseline=peak["bare"],
            ratio=ratio(peak["service"], peak["bare"]),
            ratio_label="service/bare",
        ),
        Row(
            "RSS once started, idle",
            service.idle_rss_mib,
            "MiB",
            baseline=bare.idle_rss_mib,
            ratio=ratio(service.idle_rss_mib, bare.idle_rss_mib),
            ratio_label="service/bare",
        ),
    ]
    memory.details = {
        "service_vmhwm_mib": peak["service"],
        "bare_vmhwm_mib": peak["bare"],
        "service_idle_vmrss_mib": service.idle_rss_mib,
        "bare_idle_vmrss_mib": bare.idle_rss_mib,
    }
    memory.notes.append(
        "the server processes only (sigma-grpc serve with its gateway; the bare handler), not PostgreSQL"
    )
    return [writes, memory]
