"""5. From process start to SERVING: `sigma-grpc serve` as a deployment starts it.

The clock starts just before the process is spawned and stops when the gRPC
health check (the whole server, "") answers SERVING, polled every few
milliseconds with a channel that reconnects at once. `serve` connects, checks
the migrations (all applied: this is a restart), starts the gRPC server and the
HTTP gateway (SIGMA_HTTP_ADDR on a free port, as by default) and opens health.
Median of a few runs; goal 0.5 s.

Once more with no SIGMA_DATABASE_URL and a fresh SIGMA_DATA_DIR: the embedded
PostgreSQL runs initdb, starts and is migrated first (a first `make run`).

Baseline, in the same run: `python -c "import grpc, asyncpg"`, the interpreter
and the two libraries any such server needs, to exit.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.context import Context, progress
from benchmarks.processes import Child, ChildFailed, child_env, free_port, serve_command, wait_serving
from benchmarks.report import Goal, Measurement, Row
from benchmarks.stats import ratio

# A free port can be taken by someone else between our probe and the server's bind: try again then.
ATTEMPTS = 3


def _time_to_serving(env: dict[str, str]) -> float:
    for attempt in range(1, ATTEMPTS + 1):
        port = free_port()
        address = f"127.0.0.1:{port}"
        child_vars = {
            **env,
            "SIGMA_GRPC_ADDR": address,
            "SIGMA_HTTP_ADDR": f"127.0.0.1:{free_port()}",
            "SIGMA_SHUTDOWN_GRACE_S": "1",
        }
        start = time.perf_counter()
        child = Child(serve_command(), child_env(child_vars))
        try:
            serving = wait_serving(address, child)
        except ChildFailed as error:
            child.stop()
            if attempt < ATTEMPTS and ("bind" in str(error) or "in use" in str(error)):
                continue
            raise
        status = child.stop()
        if status not in (0, None):
            raise ChildFailed(f"serve exited with status {status} on SIGTERM:\n{child.output()}")
        return serving - start
    raise AssertionError("unreachable")


def _import_baseline() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import grpc, asyncpg"], check=True)
    return time.perf_counter() - start


def _measure(url: str, runs: int, cold_dir: Path) -> dict[str, list[float]]:
    warm = [_time_to_serving({"SIGMA_DATABASE_URL": url}) for _ in range(runs)]
    imports = [_import_baseline() for _ in range(runs)]
    progress("serve to SERVING on a fresh embedded PostgreSQL (initdb)")
    cold = [_time_to_serving({"SIGMA_DATA_DIR": str(cold_dir)})]
    return {"warm": warm, "imports": imports, "cold": cold}


async def run(ctx: Context) -> Measurement:
    m = Measurement("startup", "Process start to SERVING")
    progress(f"serve to SERVING (x{ctx.sizes.startup_runs})")
    # Short: PostgreSQL's socket lives in it.
    cold_dir = ctx.workdir / "cold"
    found = await asyncio.to_thread(_measure, ctx.url, ctx.sizes.startup_runs, cold_dir)
    warm, imports = statistics.median(found["warm"]), statistics.median(found["imports"])
    cold = found["cold"][0]
    m.rows += [
        Row(
            "serve → SERVING, migrated database (median)",
            warm,
            "s",
            baseline=imports,
            ratio=ratio(warm, imports),
            ratio_label="serve/import",
            goal=Goal("figure", "<=", 0.5, "s"),
        ),
        Row(
            "serve → SERVING, fresh embedded PostgreSQL (initdb, once)",
            cold,
            "s",
            baseline=imports,
            ratio=ratio(cold, imports),
            ratio_label="serve/import",
        ),
    ]
    m.details = {
        "serve_to_serving_s": found["warm"],
        "fresh_embedded_to_serving_s": cold,
        "import_grpc_asyncpg_s": found["imports"],
        "command": " ".join(Path(a).name if i == 0 else a for i, a in enumerate(serve_command())),
    }
    m.notes.append(
        'baseline: `python -c "import grpc, asyncpg"` from spawn to exit, median of the same number of runs'
    )
    return m
