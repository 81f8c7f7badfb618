"""sigma-grpc's benchmark suite: every figure beside a baseline measured in the same run.

    make bench                                  # = python -m benchmarks (1,000,000 rows)
    python -m benchmarks --rows 200000 --json bench.json
    python -m benchmarks --quick                # a smoke run: tiny sizes, seconds; figures mean nothing
    python -m benchmarks --only list,stats      # some measurements only

Measurements (one module each; the table lists them in this order):
  log_decision  LogDecision at 16 and 64 in flight, service vs a bare grpc.aio + asyncpg handler
  batch         LogDecisions and the client batcher vs asyncpg executemany; the triggers' cost
  list          ListDecisions, a page 100,000 rows deep vs the first page, vs its SQL, vs OFFSET
  stats         GetStats(days=7) vs the naive single SQL aggregate, warm and after a restart
  quality       GetStats, GetSignalQuality, GetGateAnalytics (days=7) vs the naive SQL of each
  startup       process start to SERVING vs `python -c "import grpc, asyncpg"`
  rss           the server process's peak RSS under the write load (measured with log_decision)

The database: an embedded PostgreSQL in a temporary folder, removed at the end;
or, with SIGMA_BENCH_DATABASE_URL set, a database the suite creates on that
server and drops at the end (a schema in the given database when the role may
not create databases). Nothing outside it is read or written. It is seeded with
--rows decisions over the last 30 days first (see benchmarks/seed.py).

Goals are printed (met: yes/NO), never asserted: the exit status is non-zero
only when a measurement could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks import batch, get_stats, list_pages, log_decision, quality, startup
from benchmarks.context import Context, Sizes, progress
from benchmarks.database import URL_VARIABLE, bench_database
from benchmarks.report import Measurement, format_table, write_json
from benchmarks.seed import seed

DEFAULT_ROWS = 1_000_000
QUICK_ROWS = 2_000
# Measured in this order: reads first, on the seeded table as it is; the write load adds rows.
ORDER = ("list", "stats", "quality", "startup", "log_decision", "batch")
# Printed in this order (rss comes with log_decision).
PRESENTED = ("log_decision", "batch", "list", "stats", "quality", "startup", "rss")
RUNNERS: dict[str, Callable[[Context], Awaitable[Measurement | list[Measurement]]]] = {
    "list": list_pages.run,
    "stats": get_stats.run,
    "quality": quality.run,
    "startup": startup.run,
    "log_decision": log_decision.run,
    "batch": batch.run,
}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return None


async def machine(url: str, kind: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        pg = await conn.fetchval("SHOW server_version")
        shared_buffers = await conn.fetchval("SHOW shared_buffers")
    finally:
        await conn.close()
    load = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "load_average_at_start": [round(x, 2) for x in load],
        "postgresql": pg,
        "postgresql_shared_buffers": shared_buffers,
        "database": kind,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "grpcio": version("grpcio"),
        "asyncpg": version("asyncpg"),
    }


def _header(info: dict[str, Any]) -> str:
    memory = f"{info['memory_gib']:.1f} GiB" if info["memory_gib"] else "unknown"
    return "\n".join(
        [
            f"machine:    {info['cpus']} CPUs ({info['cpus_usable']} usable), {info['cpu_model']}, "
            f"{memory} RAM, load {' '.join(str(x) for x in info['load_average_at_start'])}",
            f"PostgreSQL: {info['postgresql']} (shared_buffers {info['postgresql_shared_buffers']}), "
            f"{info['database']}",
            f"Python:     {info['python']} on {info['platform']}; "
            f"grpcio {info['grpcio']}, asyncpg {info['asyncpg']}",
        ]
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="sigma-grpc's benchmarks: each figure beside a baseline measured in the same run.",
        epilog=(
            f"Database: an embedded PostgreSQL in a temporary folder, removed at the end. With "
            f"{URL_VARIABLE} set, the suite creates a database of its own on that server "
            "(sigma_bench_<pid>_<random>; or, when the role may not create databases, a schema of that "
            "name in the given database) and drops it at the end: nothing outside it is read or written. "
            "Seeding switches triggers off for its own session (session_replication_role, superusers "
            "only; otherwise it seeds with them on). Timings are printed, never asserted: the exit "
            "status is 1 only when a measurement could not run."
        ),
    )
    parser.add_argument(
        "--rows", type=int, help=f"decisions to seed (default {DEFAULT_ROWS:,}; --quick: {QUICK_ROWS:,})"
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes, seconds: checks that everything runs"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every figure and detail here")
    parser.add_argument(
        "--only",
        metavar="NAMES",
        help=f"comma-separated measurements to run, of: {', '.join(ORDER)} (rss comes with log_decision)",
    )
    options = parser.parse_args(argv)
    if options.rows is not None and options.rows < 0:
        parser.error("--rows must be at least 0")
    chosen = ORDER if not options.only else tuple(n.strip() for n in options.only.split(",") if n.strip())
    unknown = [n for n in chosen if n not in ORDER]
    if unknown:
        parser.error(f"unknown measurement(s): {', '.join(unknown)} (choose from {', '.join(ORDER)})")
    options.chosen = [n for n in ORDER if n in chosen]
    return options


async def run(options: argparse.Namespace) -> int:
    rows = options.rows if options.rows is not None else (QUICK_ROWS if options.quick else DEFAULT_ROWS)
    sizes = Sizes.quick_run(rows) if options.quick else Sizes.full(rows)
    # Short: the embedded PostgreSQL's socket lives in it (at most ~90 characters).
    workdir = Path(tempfile.mkdtemp(prefix="sb-"))
    results: dict[str, Measurement] = {}
    errors: dict[str, str] = {}
    started = time.perf_counter()
    try:
        progress("starting the database" + (f" ({URL_VARIABLE})" if os.environ.get(URL_VARIABLE) else ""))
        async with bench_database(workdir) as db:
            info = await machine(db.url, db.description)
            info["bench_database"] = {"kind": db.kind, "name": db.name}
            print(_header(info), flush=True)
            progress(f"seeding {rows:,} decisions")
            seeded = await seed(db.url, rows)
            print(
                f"seeded:     {rows:,} decisions in {seeded.insert_s:.1f} s + indexes {seeded.index_s:.1f} s"
                + (f" + rollup rebuild {seeded.rebuild_s:.1f} s" if seeded.rebuild_s is not None else "")
                + f" + VACUUM ANALYZE {seeded.vacuum_s:.1f} s"
                + f" + close summaries {seeded.summaries_s:.1f} s",
                flush=True,
            )
            ctx = Context(url=db.url, sizes=sizes, workdir=workdir)
            for name in options.chosen:
                try:
                    found = await RUNNERS[name](ctx)
                except Exception as error:
                    errors[name] = f"{type(error).__name__}: {error}"
                    progress(f"{name} failed:\n{traceback.format_exc()}")
                    continue
                for measurement in found if isinstance(found, list) else [found]:
                    results[measurement.key] = measurement
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    ordered = [results[k] for k in PRESENTED if k in results]
    print()
    print(format_table(ordered))
    for m in ordered:
        for note in [*(f"{r.label}: {r.note}" for r in m.rows if r.note), *m.notes]:
            print(f"  {m.key}: {note}")
    for seeded_note in seeded.notes:
        print(f"  seed: {seeded_note}")
    if sizes.quick:
        print("  --quick: tiny sizes and durations; these figures only show that everything runs")
    for name, message in errors.items():
        print(f"  ERROR in {name}: {message}")
    print(f"\ntotal time {time.perf_counter() - started:.0f} s")
    if options.json:
        write_json(
            options.json,
            {
                "version": 1,
                "machine": info,
                "sizes": dataclasses.asdict(sizes),
                "seed": {
                    "rows": seeded.rows,
                    "insert_s": seeded.insert_s,
                    "index_s": seeded.index_s,
                    "rollup_rebuild_s": seeded.rebuild_s,
                    "close_summaries_s": seeded.summaries_s,
                    "vacuum_analyze_s": seeded.vacuum_s,
                    "triggers_off": seeded.triggers_off,
                    "notes": list(seeded.notes),
                },
                "measurements": {m.key: m.as_dict() for m in ordered},
                "errors": errors,
            },
        )
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    return asyncio.run(run(options))


if __name__ == "__main__":
    sys.exit(main())
