"""The benchmark suite runs end to end (`python -m benchmarks --quick`) and reports every measurement.

Only that: the quick run's sizes are far too small for its figures to mean
anything, and timings are never asserted. It runs on the tests' PostgreSQL
server through SIGMA_BENCH_DATABASE_URL, where the suite creates a database of
its own and drops it at the end (checked here), so the tests' data is never touched.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
MEASUREMENTS = {"log_decision", "batch", "list", "stats", "quality", "startup", "rss"}


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


async def test_a_quick_run_reports_every_measurement_with_numbers(server_url: str, tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGMA_")}
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "benchmarks", "--quick", "--json", str(report)],
        cwd=ROOT,
        env={**env, "SIGMA_BENCH_DATABASE_URL": server_url},
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(report.read_text())

    assert document["errors"] == {}
    assert set(document["measurements"]) == MEASUREMENTS
    for key, measurement in document["measurements"].items():
        assert measurement["rows"], key
        for row in measurement["rows"]:
            where = f"{key}: {row['label']}"
            # A pending row is one whose side of the comparison is not in this tree yet.
            assert _number(row["figure"]) or row["pending"], where
            assert _number(row["baseline"]), where
            assert _number(row["ratio"]) or row["pending"], where
            assert row["goal"] is None or row["met"] in (True, False), where
    assert document["machine"]["postgresql"]
    assert "deep page" in result.stdout  # the table was printed

    created = document["machine"]["bench_database"]
    assert created["kind"] == "database"
    conn = await asyncpg.connect(server_url)
    try:
        assert not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", created["name"]
        )
    finally:
        await conn.close()
