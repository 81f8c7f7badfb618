"""2. Batch logging: LogDecisions and the client's batcher against raw asyncpg executemany; trigger costs.

The baseline is `measure_executemany`: raw asyncpg `executemany` of the same
sample rows (with request ids, ON CONFLICT on them as the service does) into
decision_logs with its triggers off (or, for a role that may not turn them
off, into a trigger-less copy), `batch_rows` rows per call, one call at a time,
in rows/s: the table as the raw stack writes it, without the service's
rollup triggers, which executemany would fire once per row.

The service's side (`measure_log_decisions`), in a client process of its own
against the service in this process (one batch at a time, so they never
compete for a core): LogDecisions calls of the same size, encoded beforehand;
and, when the client package has it, sigma_client's DecisionBatcher fed with
`log_decision_nowait`, timed from the first hand-over to the last
acknowledgement. Either is reported as pending when this tree lacks it.

The cost of decision_logs' triggers (the type rules of migration 062 and, once
migration 065 is there, the statistics rollup's statement triggers, which
executemany fires once per row), on the same table, in turns with the baseline:
  - decision_logs with its triggers off (a session with session_replication_role
    = replica: superusers only; those rows are then deleted by a session that
    skips the triggers too, so the rollup never counted them);
  - a copy made with CREATE TABLE … (LIKE decision_logs INCLUDING ALL): same
    columns, constraints and indexes, no triggers, but empty, so its indexes
    are shallower than the big table's; part of that gap is size, not triggers.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import secrets
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from benchmarks import sample
from benchmarks.context import Context, progress, served
from benchmarks.processes import ROOT, child_env
from benchmarks.report import Goal, Measurement, Row
from benchmarks.stats import ratio, summarize

COPY_TABLE = "bench_decision_logs_copy"
_PLACEHOLDERS = ", ".join(f"${i}::jsonb" if i in (10, 11) else f"${i}" for i in range(1, 16))


def _insert_sql(table: str) -> str:
    return (
        f"INSERT INTO {table} ({sample.INSERT_COLUMNS}) VALUES ({_PLACEHOLDERS}) "
        "ON CONFLICT (request_id) DO NOTHING"
    )


def _rows(tag: str, count: int) -> list[tuple[Any, ...]]:
    now = datetime.now(UTC)
    return [sample.row(n, f"{tag}-{n}", now) for n in range(count)]


async def measure_executemany(
    targets: dict[str, tuple[asyncpg.Connection, str]], batch_rows: int, batches: int, tag: str
) -> dict[str, list[float]]:
    """The baseline: seconds per executemany of `batch_rows` rows, for each target (connection, table),
    in turns, `batches` times each."""
    seconds: dict[str, list[float]] = {name: [] for name in targets}
    for b in range(batches):
        for name, (conn, table) in targets.items():
            rows = _rows(f"{tag}-{name.replace(' ', '_')}-{b}", batch_rows)
            start = time.perf_counter()
            await conn.executemany(_insert_sql(table), rows)
            seconds[name].append(time.perf_counter() - start)
    return seconds


async def _client(address: str, mode: str, rows: int, batch: int, tag: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.batch_client",
        "--target",
        address,
        "--mode",
        mode,
        "--rows",
        str(rows),
        "--batch",
        str(batch),
        "--tag",
        tag,
        cwd=ROOT,
        env=child_env({}),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the batch client ({mode}) failed:\n{err.decode()[-3000:]}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def has_batcher() -> bool:
    return importlib.util.find_spec("sigma_client.batcher") is not None


async def measure_log_decisions(ctx: Context, tag: str) -> dict[str, dict[str, Any] | None]:
    """The service's side: LogDecisions calls, and the client's batcher when the client package has one."""
    rows = ctx.sizes.batch_rows * ctx.sizes.batches
    found: dict[str, dict[str, Any] | None] = {"rpc": None, "batcher": None}
    async with served(ctx.url) as s:
        address = f"127.0.0.1:{s.server.port}"
        progress(f"LogDecisions, {rows:,} rows in calls of {ctx.sizes.batch_rows}")
        found["rpc"] = await _client(address, "rpc", rows, ctx.sizes.batch_rows, f"{tag}-rpc")
        if has_batcher():
            progress(f"DecisionBatcher.log_decision_nowait, {rows:,} rows")
            found["batcher"] = await _client(address, "batcher", rows, ctx.sizes.batch_rows, f"{tag}-batcher")
    return found


async def _triggers(conn: asyncpg.Connection) -> list[str]:
    names: list[str] = [
        r["tgname"]
        for r in await conn.fetch(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'decision_logs'::regclass AND NOT tgisinternal "
            "ORDER BY tgname"
        )
    ]
    return names


def _rate(rows_per_call: int, seconds: Sequence[float]) -> float:
    return rows_per_call * len(seconds) / sum(seconds)


async def run(ctx: Context) -> Measurement:
    m = Measurement("batch", "Batch logging vs executemany")
    sizes = ctx.sizes
    tag = f"batch-{secrets.token_hex(3)}"
    rows_total = sizes.batch_rows * sizes.batches

    conn = await asyncpg.connect(ctx.url)
    bare = await asyncpg.connect(ctx.url)
    try:
        triggers = await _triggers(conn)
        await conn.execute(f"CREATE TABLE {COPY_TABLE} (LIKE decision_logs INCLUDING ALL)")
        targets: dict[str, tuple[asyncpg.Connection, str]] = {
            "decision_logs": (conn, "decision_logs"),
            "copy": (conn, COPY_TABLE),
        }
        try:
            await bare.execute("SET session_replication_role = replica")
            targets["triggers off"] = (bare, "decision_logs")
        except asyncpg.InsufficientPrivilegeError:
            m.notes.append("not a superuser: decision_logs with its triggers off was not measured")
        try:
            progress(f"executemany, {sizes.batches} x {sizes.batch_rows} rows into each target")
            seconds = await measure_executemany(targets, sizes.batch_rows, sizes.batches, tag)
        finally:
            await conn.execute(f"DROP TABLE {COPY_TABLE}")
            if "triggers off" in targets:
                # Its rows never reached the rollup: they leave the same way.
                await bare.execute(
                    "DELETE FROM decision_logs WHERE request_id LIKE $1", f"{tag}-triggers_off-%"
                )
    finally:
        await conn.close()
        await bare.close()

    service = await measure_log_decisions(ctx, tag)

    base = _rate(sizes.batch_rows, seconds["decision_logs"])
    # The goal's baseline is raw executemany: the table without the service's triggers
    # (they fire once per executemany row; the service's own batch path fires them once).
    raw_target = "triggers off" if "triggers off" in seconds else "copy"
    raw = _rate(sizes.batch_rows, seconds[raw_target])
    rpc, batcher = service["rpc"], service["batcher"]
    rpc_rate = rpc["rows"] / rpc["elapsed_s"] if rpc else None
    batcher_rate = batcher["rows"] / batcher["elapsed_s"] if batcher else None
    m.rows += [
        Row(
            f"LogDecisions calls of {sizes.batch_rows} vs raw executemany ({raw_target})",
            rpc_rate,
            "rows/s",
            baseline=raw,
            ratio=ratio(rpc_rate, raw),
            ratio_label="RPC/executemany",
            goal=Goal("ratio", ">=", 0.4),
            pending=rpc is None,
        ),
        Row(
            f"DecisionBatcher (log_decision_nowait) vs raw executemany ({raw_target})",
            batcher_rate,
            "rows/s",
            baseline=raw,
            ratio=ratio(batcher_rate, raw),
            ratio_label="batcher/executemany",
            goal=Goal("ratio", ">=", 0.4),
            pending=batcher is None,
            note="" if batcher else "sigma_client has no DecisionBatcher in this tree",
        ),
    ]
    if batcher:
        nowait, put = summarize(batcher["nowait_us"]), summarize(batcher["queue_put_us"])
        m.rows.append(
            Row(
                "log_decision_nowait, the caller's cost per decision, p99 (vs Queue.put_nowait)",
                nowait.p99,
                "µs",
                baseline=put.p99,
                ratio=ratio(nowait.p99, put.p99),
                ratio_label="nowait/put",
                goal=Goal("figure", "<=", 50, "µs"),
            )
        )
        m.notes.append(
            f"log_decision_nowait: p50 {nowait.p50:.1f} µs, p99 {nowait.p99:.1f} µs over "
            f"{len(batcher['nowait_us']):,} calls (a producer yielding to the loop every 100 decisions)"
        )
    if "triggers off" in seconds:
        off = _rate(sizes.batch_rows, seconds["triggers off"])
        m.rows.append(
            Row(
                "executemany into decision_logs, triggers on vs off",
                base,
                "rows/s",
                baseline=off,
                ratio=ratio(base, off),
                ratio_label="on/off",
            )
        )
    copy = _rate(sizes.batch_rows, seconds["copy"])
    m.rows.append(
        Row(
            "executemany into decision_logs vs an empty copy without triggers",
            base,
            "rows/s",
            baseline=copy,
            ratio=ratio(base, copy),
            ratio_label="table/copy",
        )
    )
    m.details = {
        "rows_per_call": sizes.batch_rows,
        "calls": sizes.batches,
        "rows_total": rows_total,
        "triggers_on_decision_logs": triggers,
        "stats_triggers": [t for t in triggers if t.startswith("decision_stats")],
        "executemany_call_ms": {k: summarize([x * 1000 for x in v]).as_dict() for k, v in seconds.items()},
        "log_decisions": rpc,
        "batcher": None if batcher is None else {k: v for k, v in batcher.items() if k != "call_ms"},
    }
    if rpc:
        m.details["log_decisions_call_ms"] = summarize(rpc["call_ms"]).as_dict()
        del rpc["call_ms"]
    m.notes.append(f"triggers on decision_logs: {', '.join(triggers) or 'none'}")
    if any(t.startswith("decision_stats") for t in triggers):
        m.notes.append(
            "executemany runs its INSERT once per row, so the rollup's statement-level trigger fires once "
            "per row too; LogDecisions stores a batch in one statement"
        )
    else:
        m.notes.append(
            "no statistics rollup triggers in the migrations yet: 'on/off' is the type rules alone"
        )
    return m
