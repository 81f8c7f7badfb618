"""The client commands of `sigma-grpc` (sigma_grpc/console.py), run as subprocesses against a real server.

The subprocesses run with asyncio's subprocess API: the server under test runs in this
process's event loop, which a blocking subprocess.run would stall. Independent commands
run together (asyncio.gather) to keep the module short.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from sigma_client import Gate, RiskCheck, SigmaClient

from sigma_grpc.app import RunningServer
from sigma_grpc.auth.policy import Role
from sigma_grpc.config import Settings
from tests.auth_env import TOKENS, UNKNOWN_TOKEN, Certificates, serving, tls_settings, write_tokens_file
from tests.execution_env import Env, Starter
from tests.helpers import Stub
from tests.secret_scan import watch_output

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> object:
        return json.loads(self.out)


async def cli(*args: str, columns: int = 120, env: dict[str, str] | None = None) -> Ran:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SIGMA_")}
    environment.update({"COLUMNS": str(columns), "NO_COLOR": "1", **(env or {})})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sigma_grpc",
        *args,
        cwd=ROOT,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    watch_output([out.decode(), err.decode()])  # no token in any output: scanned after the test
    return Ran(process.returncode, out.decode(), err.decode())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens on it once the probe is closed


async def seed(target: str) -> dict[str, str]:
    """Three decisions of known content (a BTC signal with its outcome, an ETH skip, a SOL risk
    reject); their ids by symbol."""
    now = datetime.now(UTC)
    async with SigmaClient(target) as client:
        btc = await client.log_decision(
            symbol="BTC",
            direction="long",
            decision_type="signal",
            trader_count=7,
            agreement_pct=0.82,
            effective_k=3.4,
            gates=[Gate("supermajority", True, 0.82, 0.7), Gate("effective_k", True, 3.4, 2.0)],
            risk_checks=[RiskCheck("max_exposure", True, 0.05, 0.1)],
            price_at_decision="97123.5",
            decided_at=now - timedelta(hours=3),
        )
        await client.record_outcome(btc.decision.id, pnl="61.5", r_multiple=1.23)
        eth = await client.log_decision(
            symbol="ETH",
            direction="none",
            decision_type="skip",
            trader_count=4,
            agreement_pct=0.55,
            effective_k=1.5,
            gates=[Gate("supermajority", False, 0.55, 0.7)],
            decided_at=now - timedelta(hours=2),
        )
        sol = await client.log_decision(
            symbol="SOL",
            direction="none",
            decision_type="risk_reject",
            trader_count=9,
            agreement_pct=0.9,
            effective_k=4.0,
            gates=[Gate("supermajority", True, 0.9, 0.7)],
            risk_checks=[RiskCheck("max_exposure", False, 0.15, 0.1)],
            decided_at=now - timedelta(hours=1),
        )
    return {"BTC": btc.decision.id, "ETH": eth.decision.id, "SOL": sol.decision.id}


def widest(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


async def test_read_commands(api: Stub, server: RunningServer) -> None:
    target = f"127.0.0.1:{server.port}"
    ids = await seed(target)
    t = ("--target", target)
    (
        health,
        table,
        narrow,
        as_json,
        limited,
        show,
        show_json,
        missing,
        stats,
        stats_narrow,
        stats_json,
        config,
        executions,
        no_execution,
    ) = await asyncio.gather(
        cli("health", *t),
        cli("decisions", "list", *t),
        cli("decisions", "list", *t, columns=60),
        cli("decisions", "list", *t, "--json", "--symbol", "BTC", "--outcome", "closed", "--since", "1d"),
        cli("decisions", "list", *t, "--limit", "2", "--json"),
        cli("decisions", "show", ids["BTC"], *t),
        cli("decisions", "show", ids["SOL"], *t, "--json"),
        cli("decisions", "show", str(uuid.uuid4()), *t),
        cli("stats", *t),
        cli("stats", *t, "--days", "7", columns=60),
        cli("stats", *t, "--json"),
        cli("execution", "config", "show", *t, "--json"),
        cli("executions", "list", *t),
        cli("executions", "show", str(uuid.uuid4()), *t),
    )
    assert (health.code, health.out.strip()) == (0, "SERVING")

    assert table.code == 0, table.err
    for symbol, decision_id in ids.items():
        assert symbol in table.out and decision_id in table.out
    assert "+1.23R" in table.out and "risk_reject" in table.out and "3 decision(s)" in table.out

    assert narrow.code == 0, narrow.err
    assert widest(narrow.out) <= 60, narrow.out
    for symbol in ids:
        assert symbol in narrow.out

    document = as_json.json()
    assert isinstance(document, dict)
    [btc] = document["decisions"]
    assert btc["id"] == ids["BTC"]
    assert btc["decisionType"] == "DECISION_TYPE_SIGNAL" and btc["agreementPct"] == 0.82
    assert btc["outcomeRMultiple"] == 1.23 and btc["gates"][0]["name"] == "supermajority"

    page = limited.json()
    assert isinstance(page, dict)
    assert len(page["decisions"]) == 2 and page["more"] is True
    assert [d["symbol"] for d in page["decisions"]] == ["SOL", "ETH"]  # newest first

    assert show.code == 0, show.err
    assert "Reasoning" in show.out and "supermajority" in show.out and "max_exposure" in show.out
    assert "signal long BTC" in show.out and "61.5" in show.out and "+1.23" in show.out
    sol = show_json.json()
    assert isinstance(sol, dict)
    assert sol["id"] == ids["SOL"] and sol["reasoning"]
    assert sol["riskChecks"][0]["passed"] is False

    assert missing.code == 5 and missing.out == ""
    assert missing.err.startswith("sigma-grpc: NOT_FOUND") and len(missing.err.strip().splitlines()) == 1

    assert stats.code == 0, stats.err
    assert "By symbol" in stats.out and "BTC" in stats.out and "Gate failures" in stats.out
    assert stats_narrow.code == 0 and widest(stats_narrow.out) <= 60, stats_narrow.out
    totals = stats_json.json()
    assert isinstance(totals, dict)
    assert totals["totals"]["totalDecisions"] == "3" and len(totals["bySymbol"]) == 3

    settings = config.json()
    assert isinstance(settings, dict)
    assert config.code == 0 and "enabled" in settings and "dryRun" in settings
    assert executions.code == 0 and "0 execution(s)" in executions.out
    assert no_execution.code == 5


async def test_errors_and_usage() -> None:
    nothing = f"127.0.0.1:{free_port()}"
    down, down_health, usage, bad_time, no_setting = await asyncio.gather(
        cli("decisions", "list", "--target", nothing),
        cli("health", "--target", nothing),
        cli("decisions", "list", "--limit", "0"),
        cli("decisions", "list", "--target", nothing, "--since", "last tuesday"),
        cli("execution", "config", "set", "--target", nothing),
    )
    assert down.code == 14 and down.err.startswith("sigma-grpc: UNAVAILABLE"), down.err
    assert len(down.err.strip().splitlines()) == 1
    assert down_health.code == 14
    assert usage.code == 2 and "--limit" in usage.err
    assert bad_time.code == 2 and "--since" in bad_time.err
    assert no_setting.code == 2


async def test_tokens(database_url: str, clean_db: asyncpg.Pool, tmp_path: Path) -> None:
    settings = Settings(reconcile_interval_s=3600, auth_tokens_file=write_tokens_file(tmp_path))
    async with serving(database_url, settings) as served:
        t = ("--target", f"127.0.0.1:{served.server.port}")
        wrong, none, reader, reader_set, admin_set = await asyncio.gather(
            cli("decisions", "list", *t, "--token", UNKNOWN_TOKEN),
            cli("stats", *t),
            cli("decisions", "list", *t, env={"SIGMA_TOKEN": TOKENS[Role.READER]}),
            cli("execution", "config", "set", "--enabled", *t, "--token", TOKENS[Role.READER]),
            cli(
                "executions",
                "config",
                "set",
                "--enabled",
                "--max-leverage",
                "2",
                "--actor",
                "bob",
                *t,
                "--token",
                TOKENS[Role.ADMIN],
                "--json",
            ),
        )
    assert wrong.code == 16 and wrong.err.startswith("sigma-grpc: UNAUTHENTICATED"), wrong.err
    assert UNKNOWN_TOKEN not in wrong.err + wrong.out
    assert none.code == 16
    assert reader.code == 0, reader.err
    assert reader_set.code == 7 and TOKENS[Role.READER] not in reader_set.err
    assert admin_set.code == 0, admin_set.err
    changed = admin_set.json()
    assert isinstance(changed, dict)
    assert changed["enabled"] is True and changed["hlMaxLeverage"] == 2


async def test_demo(api: Stub, server: RunningServer) -> None:
    target = f"127.0.0.1:{server.port}"
    demo = await cli("demo", "--count", "120", "--target", target)
    assert demo.code == 0, demo.err
    assert "logged 120 sample decisions" in demo.out
    async with SigmaClient(target) as client:
        stats = await client.get_stats(days=30)
        closed = [d async for d in client.iter_decisions(outcome="closed", page_size=500)]
    assert stats.totals.total_decisions == 120
    assert {s.symbol for s in stats.by_symbol} >= {"BTC", "ETH", "SOL"}
    assert closed and stats.totals.skip_count > stats.totals.signal_count
    # Execution is off on a new server: said plainly, and nothing was executed.
    assert "no paper executions: execution is off on the server" in demo.out
    assert "paper executions of" not in demo.out


async def test_demo_executes_fresh_signals_on_paper(start: Starter) -> None:
    env = await start(hl_private_key=None)
    await env.enable(dry_run=True)
    target = f"127.0.0.1:{env.server.port}"
    demo = await cli("demo", "--count", "60", "--paper", "6", "--target", target)
    assert demo.code == 0, demo.err
    assert "logged 60 sample decisions" in demo.out
    # Five 2 % paper positions fill the 10 % exposure limit; the sixth is refused by it.
    assert "paper executions of the 6 newest signals: 1 rejected, 5 simulated" in demo.out, demo.out
    assert "paper executions" in demo.err  # the progress bar
    rows = await env.db.fetch("SELECT status, reason, dry_run FROM execution_logs ORDER BY created_at")
    assert [(r["status"], r["dry_run"]) for r in rows] == [("simulated", True)] * 5 + [("rejected", True)]
    assert rows[-1]["reason"] == "exposure_limit"
    assert env.exchange_calls() == []  # nothing signed


async def test_demo_never_executes_on_a_live_server(env: Env) -> None:
    await env.enable(dry_run=False)
    demo = await cli("demo", "--count", "40", "--target", f"127.0.0.1:{env.server.port}")
    assert demo.code == 0, demo.err
    assert "no paper executions: execution is live on the server" in demo.out
    assert await env.db.fetchval("SELECT count(*) FROM execution_logs") == 0
    assert env.exchange_calls() == []


async def test_executions(env: Env) -> None:
    await env.enable(dry_run=True)
    execution = await env.execute(await env.signal("ETH"))
    t = ("--target", f"127.0.0.1:{env.server.port}")
    listed, narrow, as_json, show, show_json = await asyncio.gather(
        cli("execution", "list", *t),
        cli("executions", "list", *t, "--status", "simulated", columns=60),
        cli("execution", "list", *t, "--json", "--decision", execution.decision_id),
        cli("executions", "show", execution.id, *t),
        cli("executions", "show", execution.id, *t, "--json"),
    )
    assert listed.code == 0 and execution.id in listed.out and "simulated" in listed.out, listed.err
    assert narrow.code == 0 and execution.id in narrow.out and widest(narrow.out) <= 60, narrow.out
    page = as_json.json()
    assert isinstance(page, dict)
    assert [e["id"] for e in page["executions"]] == [execution.id]
    assert show.code == 0 and "State history" in show.out and "simulated" in show.out, show.err
    history = show_json.json()
    assert isinstance(history, dict)
    assert history["execution"]["id"] == execution.id
    assert history["events"] and history["events"][-1]["toStatus"] == "EXECUTION_STATUS_SIMULATED"


async def test_tls(
    database_url: str, clean_db: asyncpg.Pool, certificates: Certificates, tmp_path: Path
) -> None:
    files = certificates.server_files()
    settings = tls_settings(files, tmp_path, mutual=False)
    credentials = certificates.grpc_credentials()
    async with serving(database_url, settings, channel_credentials=credentials) as served:
        t = ("--target", f"127.0.0.1:{served.server.port}", "--token", TOKENS[Role.READER])
        health, listed, plaintext = await asyncio.gather(
            cli("health", *t, "--ca", str(files["ca"])),
            cli("decisions", "list", *t, "--ca", str(files["ca"]), "--server-name", "localhost"),
            cli("decisions", "list", *t),
        )
    assert (health.code, health.out.strip()) == (0, "SERVING"), health.err
    assert listed.code == 0 and "0 decision(s)" in listed.out, listed.err
    assert plaintext.code == 14
