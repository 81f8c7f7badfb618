"""The README's shell examples (the blocks after `<!-- tested: sh -->`), run against a live server."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from sigma_grpc.app import RunningServer, start_server
from sigma_grpc.config import Settings
from sigma_grpc.storage.pool import create_pool

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"<!-- tested: sh -->\n```sh\n(.*?)```", re.DOTALL)


def readme_blocks() -> list[str]:
    blocks = BLOCK.findall((ROOT / "README.md").read_text())
    assert len(blocks) == 2, "the README's tested blocks: buf curl and HTTP/JSON"
    return blocks


@pytest.fixture(scope="module")
async def live(database_url: str) -> AsyncIterator[RunningServer]:
    pool = await create_pool(database_url, max_size=4)
    running = await start_server(
        pool, "127.0.0.1:0", Settings(reconcile_interval_s=3600), http_addr="127.0.0.1:0"
    )
    yield running
    await running.stop(grace=1)
    await pool.close()


async def run_block(block: str, server: RunningServer) -> str:
    """The block as the README shows it, with the live server's ports; its output (stdout and stderr)."""
    if not (ROOT / "node_modules" / ".bin" / "buf").exists():
        pytest.fail("the buf CLI is missing: run `make setup` (it installs package.json's tools)")
    script = (
        block.replace("127.0.0.1:50051", f"127.0.0.1:{server.port}")
        .replace("127.0.0.1:8080", f"127.0.0.1:{server.http_port}")
        .replace("npx buf", str(ROOT / "node_modules" / ".bin" / "buf"))
    )
    result = await asyncio.to_thread(
        subprocess.run,
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


async def test_the_buf_curl_examples(live: RunningServer, clean_db: asyncpg.Pool) -> None:
    output = await run_block(readme_blocks()[0], live)
    assert "sigma.v1.DecisionService/LogDecision" in output  # --list-methods
    assert "unknown value 7" in output
    assert output.count("exit code 24") == 2  # 8 x INVALID_ARGUMENT, for both refused calls
    rows = await clean_db.fetch("SELECT request_id, outcome_pnl FROM decision_logs ORDER BY decided_at")
    assert [(r["request_id"], str(r["outcome_pnl"])) for r in rows] == [
        ("readme-1", "125.50000000"),
        (None, "None"),
    ]
    reasoning = await clean_db.fetchval("SELECT reasoning FROM decision_logs WHERE decision_type = 'skip'")
    assert reasoning == (
        "Skipped: 5 traders detected but gates failed. only 60% agreement (need 70%); "
        "effK=1.5 too low (need 2.0)."
    )


async def test_the_http_examples(live: RunningServer, clean_db: asyncpg.Pool) -> None:
    output = await run_block(readme_blocks()[1], live)
    assert '"symbol":"SOL"' in output.replace(" ", "")
    assert '"items":[' in output.replace(" ", "")
    assert "-> HTTP 400" in output
    assert '"reason":"VALIDATION_FAILED"' in output.replace(" ", "")
    row = await clean_db.fetchrow("SELECT request_id, outcome_r_multiple FROM decision_logs")
    assert row is not None
    assert (row["request_id"], str(row["outcome_r_multiple"])) == ("readme-http-1", "-0.5000")
