"""The TypeScript client (clients/typescript, hl-stream's) against the real server.

Runs, as subprocesses: the strict typecheck of the package, its tests and the hl-stream
example (`npm run typecheck`), then its Node tests (`npm test`: node:test, live against
this session's server through SIGMA_TARGET, plus offline tests on a fake gRPC server).
The drift check of its generated code is `make gen-check`'s. The commands run without
blocking the event loop, on which the test server lives.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

import asyncpg
import pytest

from sigma_grpc.app import RunningServer
from sigma_grpc.auth.policy import Role
from tests.auth_env import TOKENS, Certificates, serving, tls_settings

ROOT = Path(__file__).resolve().parent.parent
TS_CLIENT = ROOT / "clients" / "typescript"
SETUP_HINT = "run `make setup` (or `npm ci` in clients/typescript, and at the repository root for buf)"
LIVE_SUITES = (
    "SigmaClient against a live server",
    "the hl-stream example over a live server",
    "SigmaClient over mutual TLS with a token",
)
SUMMARY = re.compile(r"^\S* ?(tests|pass|fail|skipped) (\d+)$", re.MULTILINE)


def _npm() -> str:
    """The npm executable, with the client's dependencies installed; fails (never skips) otherwise."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(f"npm is not on PATH: the TypeScript client needs Node.js 20+, then {SETUP_HINT}.")
    for tool in ("tsc", "protoc-gen-es"):
        if not (TS_CLIENT / "node_modules" / ".bin" / tool).exists():
            pytest.fail(f"clients/typescript/node_modules is missing (no .bin/{tool}): {SETUP_HINT}.")
    return npm


async def _npm_run(*args: str, env: dict[str, str] | None = None, timeout: float = 90) -> str:
    """`npm <args>` in clients/typescript; its combined output. Fails with that output on a non-zero exit."""
    command = [_npm(), *args]
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=TS_CLIENT,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        out, _ = await process.communicate()
        pytest.fail(f"`npm {' '.join(args)}` did not finish in {timeout} s:\n{out.decode(errors='replace')}")
    output = out.decode(errors="replace")
    if process.returncode != 0:
        pytest.fail(f"`npm {' '.join(args)}` failed (exit {process.returncode}):\n{output}")
    return output


async def test_typescript_client_typechecks_and_passes_its_tests_against_the_server(
    server: RunningServer,
    clean_db: asyncpg.Pool,
    database_url: str,
    tmp_path: Path,
    certificates: Certificates,
) -> None:
    await _npm_run("run", "--silent", "typecheck")
    # A second server requiring a token over mutual TLS, for the TLS suite.
    files = certificates.server_files()
    client_cert, client_key = certificates.client("hl-stream.sigma.internal")
    guarded = tls_settings(files, tmp_path, mutual=True)
    async with serving(database_url, guarded) as tls_server:
        output = await _npm_run(
            "test",
            env={
                "SIGMA_TARGET": f"http://127.0.0.1:{server.port}",
                "SIGMA_TLS_TARGET": f"https://127.0.0.1:{tls_server.server.port}",
                "SIGMA_TLS_CA": str(files["ca"]),
                "SIGMA_TLS_CERT": str(client_cert),
                "SIGMA_TLS_KEY": str(client_key),
                "SIGMA_TLS_TOKEN": TOKENS[Role.WRITER],
            },
        )
    counts = {name: int(n) for name, n in SUMMARY.findall(output)}
    assert counts.get("tests", 0) > 0 and counts.get("fail") == 0 and counts.get("skipped") == 0, output
    assert counts["pass"] == counts["tests"], output
    # The live suites ran (without SIGMA_TARGET they are skipped whole, which the counts above miss).
    for suite in LIVE_SUITES:
        passed = re.search(rf"^✔ {re.escape(suite)} \(", output, re.MULTILINE)
        assert passed, f"{suite!r} did not pass:\n{output}"
