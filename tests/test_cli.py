"""The client commands of `sigma-grpc` (sigma_grpc/console.py), run as subprocesses against a real server.

The subprocesses run with asyncio's subprocess API: the server under test runs in this
process's event loop, which a blocking subprocess.run would stall. Independent commands
run together (asyncio.gather) to keep the module short.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from google.protobuf import json_format
from google.protobuf.message import Message
from sigma_client import Gate, RiskCheck, SigmaClient, decision_pb2

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


# -- signal quality, gates and the stats' figures --------------------------------------------------

# The R multiples of the closed signals at 85 % agreement (twelve: enough for a bucket to say
# something) and at 65 % (three: too few).
STRONG = [1.5, -1.0, 2.0, -0.5, 1.2, 0.8, -1.0, 1.0, -0.7, 2.5, 0.9, -0.4]
WEAK = [-1.0, 0.6, -0.8]


async def seed_analytics(target: str) -> None:
    """Fifteen closed signals and an open one, decided over the last day, and four skips whose
    gates failed alone, together, and on either side of their thresholds."""
    now = datetime.now(UTC)
    decisions: list[dict[str, object]] = []
    for i, (agreement, k, traders) in enumerate(
        [(0.85, 3.5, 7)] * len(STRONG) + [(0.65, 1.5, 3)] * len(WEAK) + [(0.95, 5.0, 12)]
    ):
        decisions.append(
            {
                "symbol": "BTC" if i % 2 else "ETH",
                "direction": "long",
                "decision_type": "signal",
                "trader_count": traders,
                "agreement_pct": agreement,
                "effective_k": k,
                "gates": [Gate("supermajority", True, agreement, 0.6), Gate("effective_k", True, k, 1.0)],
                "decided_at": now - timedelta(hours=20 - i),
            }
        )
    skips = [
        [Gate("supermajority", False, 0.55, 0.6), Gate("effective_k", True, 2.0, 1.0)],
        [Gate("supermajority", False, 0.59, 0.6), Gate("effective_k", True, 2.0, 1.0)],
        [Gate("supermajority", False, 0.5, 0.6), Gate("effective_k", False, 0.8, 1.0)],
        [Gate("supermajority", True, 0.7, 0.6), Gate("freshness", False, 75.0, 60.0)],
    ]
    for gates in skips:
        decisions.append(
            {
                "symbol": "SOL",
                "direction": "none",
                "decision_type": "skip",
                "trader_count": 4,
                "agreement_pct": 0.6,
                "effective_k": 1.0,
                "gates": gates,
                "decided_at": now - timedelta(minutes=30),
            }
        )
    async with SigmaClient(target) as client:
        logged = await client.log_decisions(decisions)  # type: ignore[arg-type]
        for result, r_multiple in zip(logged, STRONG + WEAK, strict=False):
            assert not isinstance(result, Exception)
            decided = result.decision.decided_at.ToDatetime(tzinfo=UTC)
            await client.record_outcome(
                result.decision.id,
                pnl=round(r_multiple * 40, 2),
                r_multiple=r_multiple,
                closed_at=min(decided + timedelta(hours=2, minutes=15), now),
            )


def cells(text: str, title: str, first: str) -> list[str]:
    """The cells of the first row after the line `title` whose first cell is `first`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(title))
    for line in lines[start + 1 :]:
        row = re.split(r"\s{2,}", line.strip())
        if row[0] == first:
            return row
    raise AssertionError(f"no row {first!r} after {title!r} in:\n{text}")


def without_window_start(document: object) -> object:
    """A response's JSON without the times that follow the moment of the call."""
    assert isinstance(document, dict)
    return {k: v for k, v in document.items() if k != "windowStart"}


def api_json(message: Message) -> object:
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


async def test_quality_gates_and_stats_show_what_the_api_returns(api: Stub, server: RunningServer) -> None:
    target = f"127.0.0.1:{server.port}"
    await seed_analytics(target)
    t = ("--target", target)
    (
        quality,
        quality_narrow,
        quality_json,
        hourly_json,
        gates,
        gates_narrow,
        gates_json,
        stats,
        stats_narrow,
        stats_json,
    ) = await asyncio.gather(
        cli("quality", *t),
        cli("quality", *t, "--days", "2", "--bucket", "hour", columns=60),
        cli("quality", *t, "--json"),
        cli(
            "quality",
            *t,
            "--json",
            "--symbol",
            "BTC",
            "--bucket",
            "hour",
            "--agreement-edges",
            "0.6,0.8,1",
            "--effective-k-edges",
            "1,2,4",
            "--trader-count-edges=1,5,10",
        ),
        cli("gates", *t),
        cli("gates", *t, "--days", "3", columns=60),
        cli("gates", *t, "--json", "--top", "1"),
        cli("stats", *t),
        cli("stats", *t, columns=60),
        cli("stats", *t, "--json"),
    )
    async with SigmaClient(target) as client:
        q = await client.get_signal_quality()
        hourly = await client.get_signal_quality(
            symbol="BTC",
            bucket_width="hour",
            agreement_edges=[0.6, 0.8, 1],
            effective_k_edges=[1, 2, 4],
            trader_count_edges=[1, 5, 10],
        )
        g = await client.get_gate_analytics()
        top = await client.get_gate_analytics(top_combinations=1)
        s = await client.get_stats()
    for ran in (quality, quality_narrow, quality_json, hourly_json, gates, gates_narrow, gates_json, stats):
        assert ran.code == 0, ran.err

    # The seed reached the numbers: otherwise the comparisons below would compare empty tables.
    strong = q.by_agreement.buckets[3]
    assert (strong.lower, strong.closed, strong.insufficient_data) == (0.8, len(STRONG), False)
    assert q.by_agreement.buckets[1].closed == len(WEAK) and q.by_agreement.buckets[1].insufficient_data

    # --json is the API's answer in proto3 JSON names.
    assert without_window_start(quality_json.json()) == without_window_start(api_json(q))
    assert without_window_start(hourly_json.json()) == without_window_start(api_json(hourly))
    assert without_window_start(gates_json.json()) == without_window_start(api_json(top))
    assert without_window_start(stats_json.json()) == without_window_start(api_json(s))
    hourly_document = hourly_json.json()
    assert isinstance(hourly_document, dict)
    assert hourly_document["bucketWidth"] == "BUCKET_WIDTH_HOUR"
    assert hourly_document["byAgreement"]["edges"] == [0.6, 0.8, 1]

    # The tables carry the API's numbers.
    for title, breakdown in (
        ("By agreement", q.by_agreement),
        ("By effective K", q.by_effective_k),
        ("By trader count", q.by_trader_count),
    ):
        for bucket in breakdown.buckets:
            if bucket.out_of_range:
                continue
            closing = "]" if bucket.upper == breakdown.edges[-1] else ")"
            row = cells(quality.out, title, f"[{bucket.lower:g}, {bucket.upper:g}{closing}")
            if not bucket.closed:
                assert row[1:] == ["0", "0", "-", "-", "-"]
                continue
            interval = bucket.win_rate_interval
            assert row[1:] == [
                str(bucket.closed),
                str(bucket.wins),
                f"{bucket.win_rate * 100:.1f}%" + ("*" if bucket.insufficient_data else ""),
                f"{interval.low * 100:.1f}-{interval.high * 100:.1f}%",
                f"{bucket.avg_r:+.2f}",
            ]
    shown = [b for b in q.time_series if b.signals or b.closed]
    assert shown
    for step in shown:
        row = cells(quality.out, "By day", step.start.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d"))
        assert row[1:4] == [str(step.signals), str(step.closed), str(step.wins)]
        assert row[-1] == f"{step.cumulative_r:+.2f}"
    assert f"* fewer than {q.min_closed} closed signals" in quality.out
    assert widest(quality_narrow.out) <= 60, quality_narrow.out
    assert "By hour (UTC)" in quality_narrow.out and "By trader count" in quality_narrow.out

    assert [gate.name for gate in g.gates][:2] == ["supermajority", "effective_k"]
    sides = {decision_pb2.GATE_DIRECTION_MIN: "min", decision_pb2.GATE_DIRECTION_MAX: "max"}
    for gate in g.gates:
        assert cells(gates.out, "Per gate", gate.name) == [
            gate.name,
            str(gate.evaluated),
            str(gate.failed),
            f"{gate.failure_rate * 100:.1f}%",
            str(gate.only_failure),
            sides.get(gate.direction, "?"),
        ]
    directions = {gate.name: gate.direction for gate in g.gates}
    assert directions["supermajority"] == decision_pb2.GATE_DIRECTION_MIN
    assert directions["freshness"] == decision_pb2.GATE_DIRECTION_MAX
    for combination in g.failed_together:
        share = f"{combination.count / g.skips_with_failures * 100:.1f}%"
        assert cells(gates.out, "Skips with a failed gate", " + ".join(combination.gates)) == [
            " + ".join(combination.gates),
            str(combination.count),
            share,
        ]
    assert f"Skips with a failed gate: {g.skips_with_failures}" in gates.out
    majority = g.gates[0]
    nearest = next(b for b in majority.near_misses if b.count)
    distance = f"{nearest.lower * 100:g}-{nearest.upper * 100:g}%"
    assert cells(gates.out, "Near misses", "supermajority") == ["supermajority", distance, str(nearest.count)]
    assert widest(gates_narrow.out) <= 60, gates_narrow.out

    # The stats' new figures, as the API computed them.
    totals = s.totals
    interval = totals.win_rate_interval
    ci = f"{interval.low * 100:.1f}-{interval.high * 100:.1f}%"
    expected = {
        "win rate": f"{totals.win_rate * 100:.1f}% (95% CI {ci})",
        "avg win/loss": f"{totals.avg_win_r:+.2f}R / {totals.avg_loss_r:+.2f}R",
        "best/worst": f"{totals.best_r:+.2f}R / {totals.worst_r:+.2f}R",
        "profit factor": f"{totals.profit_factor:.2f}",
        "max drawdown": f"{totals.max_drawdown_r:.2f}R",
        "longest runs": f"{totals.longest_win_streak} won, {totals.longest_loss_streak} lost in a row",
        "median hold": "2h 15m",
    }
    for name, value in expected.items():
        assert cells(stats.out, "Last 7 day(s)", name) == [name, value], stats.out
    assert totals.median_holding_time.ToTimedelta() == timedelta(hours=2, minutes=15)
    assert (totals.longest_win_streak, totals.closed_count) != (0, 0)
    assert stats_narrow.code == 0 and widest(stats_narrow.out) <= 60, stats_narrow.out


async def test_quality_and_gates_usage_errors() -> None:
    nothing = ("--target", f"127.0.0.1:{free_port()}")
    runs = await asyncio.gather(
        cli("quality", *nothing, "--bucket", "month"),
        cli("quality", *nothing, "--agreement-edges", "0.9,0.5"),
        cli("quality", *nothing, "--effective-k-edges", "one,two"),
        cli("quality", *nothing, "--trader-count-edges", "5"),
        cli("quality", *nothing, "--days", "0"),
        cli("gates", *nothing, "--top", "0"),
        cli("gates", *nothing, "--days", "x"),
    )
    for ran, option in zip(
        runs,
        [
            "--bucket",
            "--agreement-edges",
            "--effective-k-edges",
            "--trader-count-edges",
            "--days",
            "--top",
            "--days",
        ],
        strict=True,
    ):
        assert ran.code == 2, ran
        assert option in ran.err and ran.out == ""
    down = await cli("gates", *nothing)
    assert down.code == 14 and down.err.startswith("sigma-grpc: UNAVAILABLE")
