"""The client commands of `sigma-grpc`: a running server's decision log and execution, for people.

`sigma-grpc health|decisions|stats|quality|gates|execution|executions|demo` talk to a server over gRPC
through `sigma_client.SigmaClient` (imported only when such a command runs, so that
`serve` does not need it). Output is a table made with rich, sized to the terminal
(COLUMNS), or one JSON document with `--json` (proto3 JSON names).

Exit codes: 0 on success; the gRPC status number when a call fails (NOT_FOUND 5,
UNAVAILABLE 14, UNAUTHENTICATED 16, ...) with one line on stderr; 2 for a usage error;
`health` exits 1 when the server answers but is not SERVING.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import random
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import duration_pb2, json_format, timestamp_pb2
from google.protobuf.message import Message

if TYPE_CHECKING:
    from rich.console import Console
    from sigma_client import SigmaClient

COMMANDS = ("health", "decisions", "stats", "quality", "gates", "execution", "executions", "demo")
DEFAULT_TARGET = "127.0.0.1:50051"
_DIRECTIONS = ("long", "short", "none")
_TYPES = ("signal", "skip", "risk_reject")
_OUTCOMES = ("pending", "closed", "win", "loss")
_STATUSES = ("pending", "filled", "partially_filled", "rejected", "failed", "unknown", "simulated")
_BUCKETS = ("hour", "day", "week")


class UsageError(Exception):
    """A bad argument found after parsing (a date that does not parse, --cert without --key)."""


def default_target() -> str:
    """SIGMA_GRPC_ADDR as a place to connect to (a wildcard host: the loopback), else 127.0.0.1:50051."""
    addr = os.environ.get("SIGMA_GRPC_ADDR", "").strip()
    if not addr:
        return DEFAULT_TARGET
    host, _, port = addr.rpartition(":")
    if host in ("", "0.0.0.0", "[::]", "::"):  # noqa: S104 (a listen address, turned into a loopback one)
        return f"127.0.0.1:{port}"
    return addr


def add_commands(commands: Any) -> None:
    """Add the client commands to `sigma-grpc`'s subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection")
    group.add_argument(
        "--target", default=default_target(), help="host:port of the server (default: %(default)s)"
    )
    group.add_argument("--token", help="bearer token (default: $SIGMA_TOKEN)")
    group.add_argument(
        "--tls", action="store_true", help="use TLS (implied by --ca/--cert/--key/--server-name)"
    )
    group.add_argument("--ca", help="with TLS: the CA of the server's certificate (default: the system's)")
    group.add_argument("--cert", help="under mutual TLS: a client certificate (PEM)")
    group.add_argument("--key", help="under mutual TLS: the client certificate's key (PEM)")
    group.add_argument("--server-name", help="with TLS: the name the server's certificate is for")
    group.add_argument("--timeout", type=float, default=10.0, help="seconds per call (default: %(default)s)")
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print one JSON document (proto3 JSON names)")

    commands.add_parser("health", parents=[common], help="is the server SERVING? (exit 0, else 1)")

    decisions = commands.add_parser("decisions", help="the decision log: list, show")
    dsub = decisions.add_subparsers(dest="action", required=True)
    listing = dsub.add_parser("list", parents=[common, as_json], help="decisions, newest first")
    listing.add_argument("--symbol")
    listing.add_argument("--type", choices=_TYPES)
    listing.add_argument("--direction", choices=_DIRECTIONS)
    listing.add_argument("--outcome", choices=_OUTCOMES, help="signals only, by the state of their outcome")
    listing.add_argument("--since", help="from this time (ISO 8601, UTC unless it says; or e.g. 2h, 3d)")
    listing.add_argument("--until", help="before this time (same forms as --since)")
    listing.add_argument("--limit", type=_positive_int, default=20, help="at most this many (default: 20)")
    listing.add_argument("--all", action="store_true", help="every matching decision, page by page")
    show = dsub.add_parser("show", parents=[common, as_json], help="one decision, laid out")
    show.add_argument("id")

    stats = commands.add_parser("stats", parents=[common, as_json], help="the window's numbers, per symbol")
    stats.add_argument("--days", type=_positive_int, help="the window in days (server default: 7)")
    stats.add_argument("--symbol")

    quality = commands.add_parser(
        "quality",
        parents=[common, as_json],
        help="does the signal pay: over time, and by strength of consensus",
        description="The window's signals over time (signals, closed, win rate, R, cumulative R per "
        "UTC bucket) and the closed signals' win rate (with its 95 % interval) and R by agreement, "
        "effective K and trader count. A * marks a bucket with too few closed signals to tell.",
    )
    quality.add_argument("--days", type=_positive_int, help="the window in days (server default: 7)")
    quality.add_argument("--symbol")
    quality.add_argument("--bucket", choices=_BUCKETS, help="the time series' buckets (server default: day)")
    for option, what, default in (
        ("--agreement-edges", "agreement (fractions)", "0.5,0.6,0.7,0.8,0.9,1"),
        ("--effective-k-edges", "effective K", "1,2,3,4,6,10"),
        ("--trader-count-edges", "trader count", "1,3,5,10,20,50"),
    ):
        quality.add_argument(
            option,
            type=_edges,
            metavar="E0,E1,...",
            help=f"edges of the {what} buckets, increasing (server default: {default})",
        )

    gates = commands.add_parser(
        "gates",
        parents=[common, as_json],
        help="which gates cost trades: failures, gates failing together, near misses",
    )
    gates.add_argument("--days", type=_positive_int, help="the window in days (server default: 7)")
    gates.add_argument("--symbol")
    gates.add_argument(
        "--top",
        type=_positive_int,
        help="how many sets of gates failing together to list (server default: 10)",
    )

    for name in ("execution", "executions"):
        group_parser = commands.add_parser(name, help="execution: config show|set, list, show")
        esub = group_parser.add_subparsers(dest="action", required=True)
        config = esub.add_parser("config", help="the execution settings")
        csub = config.add_subparsers(dest="config_action", required=True)
        csub.add_parser("show", parents=[common, as_json], help="the settings")
        setter = csub.add_parser("set", parents=[common, as_json], help="change settings (admin token)")
        _flag(setter, "enabled", "--enabled", "--disabled", "execution on or off")
        _flag(setter, "hl_enabled", "--hl-enabled", "--hl-disabled", "Hyperliquid orders on or off")
        _flag(setter, "dry_run", "--dry-run", "--live", "simulate orders, or place them")
        setter.add_argument("--max-leverage", dest="hl_max_leverage", type=int)
        setter.add_argument("--max-position-pct", dest="hl_max_position_pct", type=float, help="a fraction")
        setter.add_argument("--max-exposure-pct", dest="hl_max_exposure_pct", type=float, help="a fraction")
        setter.add_argument("--slippage-pct", dest="hl_slippage_pct", type=float, help="a fraction")
        setter.add_argument("--max-signal-age", dest="max_signal_age_s", type=int, help="seconds")
        setter.add_argument(
            "--max-price-drift-pct", dest="max_price_drift_pct", type=float, help="a fraction"
        )
        setter.add_argument("--actor", help="who is making the change (kept in the audit)")
        elist = esub.add_parser("list", parents=[common, as_json], help="executions, newest first")
        elist.add_argument("--decision", help="of this decision only")
        elist.add_argument("--status", choices=_STATUSES)
        elist.add_argument("--limit", type=_positive_int, default=20, help="at most this many (default: 20)")
        elist.add_argument("--all", action="store_true", help="every matching execution")
        eshow = esub.add_parser("show", parents=[common, as_json], help="one execution and its state history")
        eshow.add_argument("id")

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="log sample decisions of the last 30 days, with outcomes and paper executions",
        description="Log sample decisions of the last 30 days with outcomes. When the server's "
        "execution is on in dry run, the newest few are fresh signals executed on paper "
        "(ExecuteSignal with dry_run_only: never a real order). The demo never changes the "
        "execution settings.",
    )
    demo.add_argument("--count", type=_positive_int, default=300, help="how many (default: 300)")
    demo.add_argument(
        "--paper",
        type=_non_negative_int,
        default=None,
        help="how many fresh signals to execute on paper (default: count/50, at least 1)",
    )
    demo.add_argument("--seed", type=int, default=7)


def _flag(parser: argparse.ArgumentParser, dest: str, on: str, off: str, help_text: str) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(on, dest=dest, action="store_const", const=True, help=help_text)
    group.add_argument(off, dest=dest, action="store_const", const=False)


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _edges(text: str) -> list[float]:
    """Bucket edges as given on the command line: "0.5,0.6,0.7"."""
    try:
        edges = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not numbers separated by commas: {text!r}") from None
    if len(edges) < 2 or not all(math.isfinite(e) for e in edges):
        raise argparse.ArgumentTypeError(f"give at least two finite numbers, got {text!r}")
    if any(b <= a for a, b in itertools.pairwise(edges)):
        raise argparse.ArgumentTypeError(f"the edges must increase, got {text!r}")
    return edges


def run(options: argparse.Namespace) -> int:
    """Run a client command; its exit code."""
    try:
        from sigma_client import SigmaError  # noqa: PLC0415 (only the client commands need it)
    except ImportError:
        print(
            "sigma-grpc: the client commands need sigma-grpc-client (pip install clients/python)",
            file=sys.stderr,
        )
        return 2
    try:
        return asyncio.run(_dispatch(options))
    except UsageError as error:
        print(f"sigma-grpc: {error}", file=sys.stderr)
        return 2
    except SigmaError as error:
        # SigmaError's text is the status, the reason and the server's message: never the token.
        print(f"sigma-grpc: {error}", file=sys.stderr)
        return int(error.code.value[0]) or 1
    except OSError as error:
        print(f"sigma-grpc: cannot read {error.filename}: {error.strerror}", file=sys.stderr)
        return 2


def _credentials(options: argparse.Namespace) -> grpc.ChannelCredentials | None:
    if not (options.tls or options.ca or options.cert or options.key or options.server_name):
        return None
    if (options.cert is None) != (options.key is None):
        raise UsageError("--cert and --key go together")
    return grpc.ssl_channel_credentials(
        root_certificates=Path(options.ca).read_bytes() if options.ca else None,
        private_key=Path(options.key).read_bytes() if options.key else None,
        certificate_chain=Path(options.cert).read_bytes() if options.cert else None,
    )


def _client(options: argparse.Namespace) -> SigmaClient:
    from sigma_client import SigmaClient  # noqa: PLC0415 (only the client commands need it)

    token = options.token or os.environ.get("SIGMA_TOKEN") or None
    channel_options = [("grpc.ssl_target_name_override", options.server_name)] if options.server_name else []
    if options.timeout <= 0:
        raise UsageError("--timeout must be positive")
    try:
        return SigmaClient(
            options.target,
            token=token,
            credentials=_credentials(options),
            timeout=options.timeout,
            max_attempts=3,  # a person waits: a server that is down is reported in a second, not in 10
            channel_options=channel_options,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None


async def _dispatch(options: argparse.Namespace) -> int:
    from rich.console import Console  # noqa: PLC0415 (only the client commands need it)

    out = Console(highlight=False, soft_wrap=False)
    handlers: dict[str, Callable[[SigmaClient, argparse.Namespace, Console], Awaitable[int]]] = {
        "health": _health,
        "decisions list": _decisions_list,
        "decisions show": _decisions_show,
        "stats": _stats,
        "quality": _quality,
        "gates": _gates,
        "config show": _config_show,
        "config set": _config_set,
        "list": _executions_list,
        "show": _executions_show,
        "demo": _demo,
    }
    if options.command in ("execution", "executions"):
        key = f"config {options.config_action}" if options.action == "config" else options.action
    elif options.command == "decisions":
        key = f"decisions {options.action}"
    else:
        key = options.command
    handler = handlers[key]
    async with _client(options) as client:
        return await handler(client, options, out)


def _enums() -> tuple[Any, Any]:
    """sigma.v1's generated modules (decision, execution): their enums' names."""
    from sigma_client import decision_pb2, execution_pb2  # noqa: PLC0415 (only the client commands need it)

    return decision_pb2, execution_pb2


# -- output helpers ---------------------------------------------------------------------------------


def _to_dict(message: Message) -> dict[str, Any]:
    result: dict[str, Any] = json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    return result


def _print_json(document: object) -> None:
    print(json.dumps(document, indent=2, ensure_ascii=False))


def _when(stamp: timestamp_pb2.Timestamp, *, seconds: bool = False) -> str:
    if not stamp.seconds and not stamp.nanos:
        return "-"
    moment = stamp.ToDatetime(tzinfo=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%m-%d %H:%M")


def _enum(value: str, prefix: str) -> str:
    return value.removeprefix(prefix).lower()


def _num(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}"


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _interval(interval: Message) -> str:
    """A 95 % interval of a rate (a sigma.v1.Interval of fractions) as "45.1-70.0%"."""
    held: Any = interval
    return f"{held.low * 100:.1f}-{held.high * 100:.1f}%"


def _duration(duration: duration_pb2.Duration) -> str:
    """A duration in its two largest units: "2d 4h", "3h 12m", "4m 5s", "12s"."""
    seconds = duration.ToTimedelta().total_seconds()
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 1 or seconds == 0 else f"{seconds:.2f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s"


def _time(text: str | None, name: str) -> datetime | None:
    """An ISO 8601 time (UTC unless it says otherwise) or an age such as 90m, 2h, 3d."""
    if text is None:
        return None
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    if text[-1:] in units and text[:-1].isdigit():
        return datetime.now(UTC) - timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{name}: not an ISO 8601 time or an age like 2h/3d: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# A table of decisions or executions shows its ids in a column of their own from this width.
_WIDE = 100
# Columns whose cells are short and must not break: the others give way in a narrow terminal.
_NO_WRAP = frozenset({"ID", "When (UTC)", "Outcome", "Status"})


def _amount(text: str) -> str:
    """A decimal amount of the API (e.g. "61.50000000") with its trailing zeros beyond the cents cut."""
    if not text:
        return "0"
    try:
        value = Decimal(text)
    except ArithmeticError:
        return text
    return format(
        value.quantize(Decimal("0.01")) if value == value.quantize(Decimal("0.01")) else value.normalize(),
        "f",
    )


def _table(*columns: str, title: str | None = None) -> Any:
    from rich import box  # noqa: PLC0415 (only the client commands need it)
    from rich.table import Table  # noqa: PLC0415 (only the client commands need it)

    table = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left", pad_edge=False, show_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold", no_wrap=column in _NO_WRAP)
    return table


def _pairs(rows: Sequence[tuple[str, str]], title: str | None = None) -> Any:
    from rich import box  # noqa: PLC0415 (only the client commands need it)
    from rich.table import Table  # noqa: PLC0415 (only the client commands need it)

    table = Table(box=box.SIMPLE, show_header=False, title=title, title_justify="left", pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    return table


# -- commands -----------------------------------------------------------------------------------------


async def _health(client: SigmaClient, options: argparse.Namespace, out: Console) -> int:
    from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: PLC0415 (only the client commands need it)
    from sigma_client.errors import from_rpc_error  # noqa: PLC0415 (only the client commands need it)

    async with _health_channel(options) as channel:
        try:
            response = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=options.timeout
            )
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error) from None
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    out.print(status)
    return 0 if response.status == health_pb2.HealthCheckResponse.SERVING else 1


def _health_channel(options: argparse.Namespace) -> grpc.aio.Channel:
    """grpc.health.v1 is not part of sigma.v1, so SigmaClient has no method for it: a channel of its own."""
    credentials = _credentials(options)
    channel_options = [("grpc.ssl_target_name_override", options.server_name)] if options.server_name else []
    if credentials is None:
        return grpc.aio.insecure_channel(options.target)
    return grpc.aio.secure_channel(options.target, credentials, options=channel_options)


async def _decisions_list(client: SigmaClient, options: argparse.Namespace, out: Console) -> int:
    DPB = _enums()[0]
    limit = None if options.all else options.limit
    found: list[Any] = []
    more = False
    async for decision in client.iter_decisions(
        symbol=options.symbol,
        decision_type=options.type,
        direction=options.direction,
        outcome=options.outcome,
        start_time=_time(options.since, "--since"),
        end_time=_time(options.until, "--until"),
        page_size=min(limit, 500) if limit is not None else 500,
    ):
        if limit is not None and len(found) == limit:
            more = True
            break
        found.append(decision)
    if options.json:
        _print_json({"decisions": [_to_dict(d) for d in found], "more": more})
        return 0
    # An id is 36 characters: a terminal narrower than a row of its own puts it under the decision.
    wide = out.width >= _WIDE
    table = (
        _table("ID", "When (UTC)", "Symbol", "Type", "Side", "Agree", "Outcome")
        if wide
        else _table("Decision", "When (UTC)", "Outcome")
    )
    for d in found:
        kind = _enum(DPB.DecisionType.Name(d.decision_type), "DECISION_TYPE_")
        side = _enum(DPB.Direction.Name(d.direction), "DIRECTION_")
        outcome = "-"
        if d.HasField("outcome_r_multiple") or d.HasField("outcome_pnl"):
            outcome = f"{d.outcome_r_multiple:+.2f}R" if d.HasField("outcome_r_multiple") else d.outcome_pnl
        elif kind == "signal":
            outcome = "open"
        agree = _pct(d.agreement_pct)
        if wide:
            table.add_row(d.id, _when(d.decided_at), d.symbol, kind, side, agree, outcome)
        else:
            table.add_row(f"{d.symbol} {kind} {side} {agree}\n{d.id}", _when(d.decided_at), outcome)
    out.print(table)
    note = f"{len(found)} decision(s)"
    if more:
        note += "; more with --limit N or --all"
    out.print(note)
    return 0


async def _decisions_show(client: SigmaClient, options: argparse.Namespace, out: Console) -> int:
    DPB = _enums()[0]
    from rich.padding import Padding  # noqa: PLC0415 (only the client commands need it)
    from rich.text import Text  # noqa: PLC0415 (only the client commands need it)

    d = await client.get_decision(options.id)
    if options.json:
        _print_json(_to_dict(d))
        return 0
    kind = _enum(DPB.DecisionType.Name(d.decision_type), "DECISION_TYPE_")
    side = _enum(DPB.Direction.Name(d.direction), "DIRECTION_")
    rows = [
        ("id", d.id),
        ("decided", _when(d.decided_at, seconds=True) + " UTC"),
        ("logged", _when(d.created_at, seconds=True) + " UTC"),
        ("decision", f"{kind} {side} {d.symbol}"),
        ("traders", str(d.trader_count)),
        ("agreement", _pct(d.agreement_pct)),
        ("effective k", _num(d.effective_k)),
        ("confidence", _pct(d.avg_confidence) if d.HasField("avg_confidence") else "-"),
        ("EV estimate", _num(d.ev_estimate, 4) if d.HasField("ev_estimate") else "-"),
        ("price", _amount(d.price_at_decision) if d.HasField("price_at_decision") else "-"),
    ]
    if d.HasField("request_id"):
        rows.append(("request id", d.request_id))
    out.print(_pairs(rows, title=f"Decision {d.symbol}"))
    out.print(Text("Reasoning", style="bold"))
    out.print(Padding(Text(d.reasoning or "-"), (0, 0, 1, 2)))
    for title, checks, bound in (("Gates", d.gates, "threshold"), ("Risk checks", d.risk_checks, "limit")):
        if not checks:
            out.print(f"{title}: none\n")
            continue
        table = _table("", "Name", "Value", bound.capitalize(), title=title)
        for check in checks:
            held: Any = check  # a Gate or a RiskCheck: their bound has another name
            value = _num(held.value, 4) if held.HasField("value") else "-"
            limit = _num(getattr(held, bound), 4) if held.HasField(bound) else "-"
            table.add_row("pass" if check.passed else "FAIL", check.name, value, limit)
        out.print(table)
    if d.HasField("outcome_pnl") or d.HasField("outcome_r_multiple"):
        outcome = [
            ("PnL", _amount(d.outcome_pnl) if d.HasField("outcome_pnl") else "-"),
            ("R multiple", f"{d.outcome_r_multiple:+.2f}" if d.HasField("outcome_r_multiple") else "-"),
            ("closed", _when(d.outcome_closed_at, seconds=True) + " UTC"),
        ]
        out.print(_pairs(outcome, title="Outcome"))
    elif kind == "signal":
        out.print("Outcome: pending")
    return 0


async def _stats(client: SigmaClient, options: argparse.Namespace, out: Console) -> int:
    from rich.text import Text  # noqa: PLC0415 (only the client commands need it)

    stats = await client.get_stats(days=options.days, symbol=options.symbol)
    if options.json:
        _print_json(_to_dict(stats))
        return 0
    t = stats.totals
    title = f"Last {stats.days} day(s), since {_when(stats.window_start, seconds=True)} UTC"
    if options.symbol:
        title += f", {options.symbol}"
    out.print(Text(title, style="bold"))
    out.print(
        _pairs(
            [
                ("decisions", str(t.total_decisions)),
                ("signals", str(t.signal_count)),
                ("skips", f"{t.skip_count} ({_pct(t.skip_rate)})"),
                ("risk rejects", str(t.risk_reject_count)),
                ("closed", f"{t.closed_count} ({t.win_count} won, {t.loss_count} lost)"),
                ("pending", str(t.pending_count)),
                *_performance_rows(t),
                ("total PnL", _amount(t.total_pnl)),
            ],
        )
    )
    if stats.by_symbol:
        table = _table("Symbol", "Dec.", "Sig.", "Skip", "Win", "Avg R", "PnL", title="By symbol")
        for row in stats.by_symbol:
            s = row.stats
            table.add_row(
                row.symbol,
                str(s.total_decisions),
                str(s.signal_count),
                _pct(s.skip_rate),
                _pct(s.win_rate),
                f"{s.avg_r_multiple:+.2f}",
                _amount(s.total_pnl),
            )
        out.print(table)
    if stats.gate_failures:
        gates = _table("Gate", "Failures", title="Gate failures")
        for failure in stats.gate_failures:
            gates.add_row(failure.name, str(failure.count))
        out.print(gates)
    return 0


def _performance_rows(t: Any) -> list[tuple[str, str]]:
    """The closed signals' figures of a sigma.v1.DecisionStats, one short line each."""
    closed = t.closed_count > 0
    win_rate = _pct(t.win_rate)
    if t.HasField("win_rate_interval"):
        win_rate += f" (95% CI {_interval(t.win_rate_interval)})"
    profit_factor = "- (no loss)" if closed else "-"
    if t.HasField("profit_factor"):
        profit_factor = _num(t.profit_factor)
    best_worst = "-"
    if t.HasField("best_r") and t.HasField("worst_r"):
        best_worst = f"{t.best_r:+.2f}R / {t.worst_r:+.2f}R"
    return [
        ("win rate", win_rate),
        ("avg R", f"{t.avg_r_multiple:+.2f}R"),
        ("avg win/loss", f"{t.avg_win_r:+.2f}R / {t.avg_loss_r:+.2f}R" if closed else "-"),
        ("best/worst", best_worst),
        ("profit factor", profit_factor),
        ("max drawdown", f"{t.max_drawdown_r:.2f}R"),
        ("longest runs", f"{t.longest_win_streak} won, {t.longest_loss_streak} lost in a row"),
        (
            "median hold",
            _duration(t.median_holding_time) if t.HasField("median_holding_time") else "-",
        ),
    ]


async def _quality(client: SigmaClient, options: argparse.Namespace, out: Console) -> int:
    from rich.text import Text  # noqa: PLC0415 (only the client commands need it)

    DPB = _enums()[0]
    quality = await client.get_signal_quality(
        days=options.days,
        symbol=options.symbol,
        bucket_width=options.bucket,
        agreement_edges=options.agreement_edges,
        effective_k_edges=options.effective_k_edges,
        trader_count_edges=options.trader_count_edges,
    )
    if options.json:
        _print_json(_to_dict(quality))
        return 0
    width = _enum(DPB.BucketWidth.Name(quality.bucket_width), "BUCKET_WIDTH_")
    title = (
        f"Signal quality, last {quality.days} day(s), since {_when(quality.window_start, seconds=True)} UTC"
    )
    if options.symbol:
        title += f", {options.symbol}"
    out.print(Text(title, style="bold"))
    flagged = False

    def rate(closed: int, win_rate: float, insufficient: bool) -> str:
        nonlocal flagged
        if not closed:
            return "-"
        flagged |= insufficient
        return _pct(win_rate) + ("*" if insufficient else "")

    heading = {"hour": "By hour (UTC)", "day": "By day (UTC)", "week": "By week (from Monday, UTC)"}
    series = _table("Start", "Sig.", "Closed", "Won", "Win", "Avg R", "Cum. R", title=heading.get(width))
    empty = 0
    for bucket in quality.time_series:
        if not bucket.signals and not bucket.closed:
            empty += 1  # nothing happened: its cumulative R is the previous bucket's
            continue
        start = bucket.start.ToDatetime(tzinfo=UTC)
        series.add_row(
            start.strftime("%m-%d %H:00" if width == "hour" else "%Y-%m-%d"),
            str(bucket.signals),
            str(bucket.closed),
            str(bucket.wins),
            rate(bucket.closed, bucket.win_rate, bucket.insufficient_data),
            f"{bucket.avg_r:+.2f}" if bucket.closed else "-",
            f"{bucket.cumulative_r:+.2f}",
        )
    out.print(series)
    if empty:
        out.print(f"{empty} of {len(quality.time_series)} {width}s without signals or closes not shown")
    for heading_text, name, breakdown in (
        ("By agreement", "Agreement", quality.by_agreement),
        ("By effective K", "Eff. K", quality.by_effective_k),
        ("By trader count", "Traders", quality.by_trader_count),
    ):
        table = _table(name, "Closed", "Won", "Win", "95% CI", "Avg R", title=heading_text)
        last = breakdown.edges[-1] if breakdown.edges else None
        for strength in breakdown.buckets:
            if strength.out_of_range:
                if not strength.closed:
                    continue
                label = "outside"
            else:
                closing = "]" if strength.upper == last else ")"
                label = f"[{strength.lower:g}, {strength.upper:g}{closing}"
            table.add_row(
                label,
                str(strength.closed),
                str(strength.wins),
                rate(strength.closed, strength.win_rate, strength.insufficient_data),
                _interval(strength.win_rate_interval) if strength.HasField("win_rate_interval") else "-",
                f"{strength.avg_r:+.2f}" if strength.closed else "-",
            )
        out.print(table)
    if flagged:
        out.print(f"* fewer than {quality.min_closed} closed signals: too few to tell")
    return 0


def _distance(bin_: Any) -> str:
    """A near-miss bin's distance from the threshold, as a percentage of it: "2-5%", ">=100%"."""
    if not bin_.HasField("upper"):
        return f">={bin_.lower * 100:g}%"
    return f"{bin_.lower * 100:g}-{bin_.upper * 100:g}%"


async def _gates(client: SigmaClient, options: argparse.Namespace, out: Console) -> int:
    from rich.text import Text  # noqa: PLC0415 (only the client commands need it)

    DPB = _enums()[0]
    analytics = await client.get_gate_analytics(
        days=options.days, symbol=options.symbol, top_combinations=options.top
    )
    if options.json:
        _print_json(_to_dict(analytics))
        return 0
    title = f"Gates, last {analytics.days} day(s), since {_when(analytics.window_start, seconds=True)} UTC"
    if options.symbol:
        title += f", {options.symbol}"
    out.print(Text(title, style="bold"))
    sides = {"min": "min", "max": "max", "unspecified": "?"}
    table = _table("Gate", "Eval.", "Failed", "Rate", "Alone", "Side", title="Per gate")
    for gate in analytics.gates:
        side = _enum(DPB.GateDirection.Name(gate.direction), "GATE_DIRECTION_")
        table.add_row(
            gate.name,
            str(gate.evaluated),
            str(gate.failed),
            _pct(gate.failure_rate),
            str(gate.only_failure),
            sides.get(side, side),
        )
    out.print(table)
    out.print(
        "Alone: the decision's only failed gate. Side: min fails below its threshold, max above, ? unknown."
    )
    together = _table(
        "Gates failing together",
        "Skips",
        "Share",
        title=f"Skips with a failed gate: {analytics.skips_with_failures}",
    )
    for combination in analytics.failed_together:
        share = combination.count / analytics.skips_with_failures if analytics.skips_with_failures else 0.0
        together.add_row(" + ".join(combination.gates), str(combination.count), _pct(share))
    out.print(together)
    misses = _table("Gate", "Distance", "Failed", title="Near misses")
    unknown = []
    for gate in analytics.gates:
        rows = [(_distance(b), str(b.count)) for b in gate.near_misses if b.count]
        if gate.failed_on_passing_side:
            rows.append(("passing side", str(gate.failed_on_passing_side)))
        if gate.failed_without_value:
            rows.append(("no value", str(gate.failed_without_value)))
        if gate.failed and not gate.near_misses:
            unknown.append(gate.name)
        for i, (distance, count) in enumerate(rows):
            misses.add_row(gate.name if i == 0 else "", distance, count)
    out.print(misses)
    out.print(
        "Distance: how far a failed value was from the threshold, |value - threshold| as a share "
        "of it (absolute when it is 0)."
    )
    if unknown:
        out.print(f"Not binned, their failing side unknown: {', '.join(unknown)}")
    return 0


def _config_rows(config: Message) -> list[tuple[str, str]]:
    data = json_format.MessageToDict(
        config, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return [(key, json.dumps(value) if not isinstance(value, str) else value) for key, value in data.items()]


async def _config_show(client: SigmaClient, options: argparse.Namespace, out: Console) -> int:
    config = await client.get_execution_config()
    if options.json:
        _print_json(_to_dict(config))
        return 0
    out.print(_pairs(_config_rows(config), title="Execution config"))
    return 0


_SETTINGS = (
    "enabled",
    "hl_enabled",
    "dry_run",
    "hl_max_leverage",
    "hl_max_position_pct",
    "hl_max_exposure_pct",
    "hl_slippage_pct",
    "max_signal_age_s",
    "max_price_drift_pct",
)


async def _config_set(client: SigmaClient, options: argparse.Namespace, out: Console) -> int:
    changes = {name: getattr(options, name) for name in _SETTINGS if getattr(options, name) is not None}
    if not changes:
        raise UsageError("execution config set: give at least one setting (e.g. --enabled, --dry-run)")
    try:
        config = await client.update_execution_config(actor=options.actor, **changes)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if options.json:
        _print_json(_to_dict(config))
        return 0
    out.print(_pairs(_config_rows(config), title=f"Execution config (changed: {', '.join(changes)})"))
    return 0


async def _executions_list(client: SigmaClient, options: argparse.Namespace, out: Console) -> int:
    EPB = _enums()[1]
    limit = None if options.all else options.limit
    found: list[Any] = []
    more = False
    async for execution in client.iter_executions(
        decision_id=options.decision,
        status=options.status,
        page_size=min(limit, 500) if limit is not None else 500,
    ):
        if limit is not None and len(found) == limit:
            more = True
            break
        found.append(execution)
    if options.json:
        _print_json({"executions": [_to_dict(e) for e in found], "more": more})
        return 0
    wide = out.width >= _WIDE
    table = (
        _table("ID", "When (UTC)", "Symbol", "Side", "Size", "Status")
        if wide
        else _table("Execution", "When (UTC)")
    )
    for e in found:
        side = _enum(EPB.Side.Name(e.side), "SIDE_")
        status = _enum(EPB.ExecutionStatus.Name(e.status), "EXECUTION_STATUS_")
        size = _amount(e.size) if e.size else "-"
        if wide:
            table.add_row(e.id, _when(e.created_at), e.symbol, side, size, status)
        else:
            table.add_row(f"{e.symbol} {side} {size} {status}\n{e.id}", _when(e.created_at))
    out.print(table)
    out.print(f"{len(found)} execution(s)" + ("; more with --limit N or --all" if more else ""))
    return 0


async def _executions_show(client: SigmaClient, options: argparse.Namespace, out: Console) -> int:
    EPB = _enums()[1]
    execution, events = await client.get_execution_history(options.id)
    if options.json:
        _print_json({"execution": _to_dict(execution), "events": [_to_dict(e) for e in events]})
        return 0
    out.print(_pairs(_config_rows(execution), title=f"Execution {execution.symbol}"))
    history = _table("When (UTC)", "From", "To", "Reason", "Actor", title="State history")
    for event in events:
        history.add_row(
            _when(event.time, seconds=True),
            _enum(EPB.ExecutionStatus.Name(event.from_status), "EXECUTION_STATUS_"),
            _enum(EPB.ExecutionStatus.Name(event.to_status), "EXECUTION_STATUS_"),
            _enum(EPB.ExecutionReason.Name(event.reason), "EXECUTION_REASON_"),
            event.actor or "-",
        )
    out.print(history)
    return 0


# -- demo ---------------------------------------------------------------------------------------------

_COINS = {"BTC": 97123.5, "ETH": 3412.25, "SOL": 187.42, "HYPE": 31.7, "XRP": 2.41}
# Fresh signals go to the majors every Hyperliquid universe lists.
_PAPER_COINS = ("BTC", "ETH", "SOL")


def demo_decisions(count: int, seed: int, now: datetime, fresh_signals: int = 0) -> list[dict[str, Any]]:
    """`count` sample decisions: the last `fresh_signals` are signals decided at `now` (to execute
    on paper), the rest lie over the 30 days before `now`: about 60 % skips, 10 % risk rejects, the
    rest signals, each signal older than 6 hours with an `_outcome` (pnl, r_multiple, closed_at)
    most of the time."""
    from sigma_client import Gate, RiskCheck  # noqa: PLC0415 (only the client commands need it)

    rng = random.Random(seed)  # noqa: S311 (sample data, not security)
    made = []
    for n in range(count):
        fresh = n >= count - fresh_signals
        decided_at = now if fresh else now - timedelta(minutes=rng.uniform(10, 30 * 24 * 60))
        symbol = rng.choice(_PAPER_COINS if fresh else list(_COINS))
        roll = rng.random()
        kind = "signal" if fresh else "skip" if roll < 0.6 else "risk_reject" if roll < 0.7 else "signal"
        agreement = rng.uniform(0.72, 0.95) if kind != "skip" else rng.uniform(0.5, 0.9)
        effective_k = rng.uniform(2.0, 6.0) if kind != "skip" else rng.uniform(1.0, 4.0)
        freshness, ev = rng.uniform(5, 90), rng.uniform(-0.2, 1.2)
        gates = [
            Gate("supermajority", agreement >= 0.7, round(agreement, 4), 0.7),
            Gate("effective_k", effective_k >= 2.0, round(effective_k, 3), 2.0),
            Gate("freshness", freshness <= 60, round(freshness, 1), 60.0),
            Gate("ev_gate", ev >= 0.2, round(ev, 2), 0.2),
        ]
        if kind != "skip":
            gates = [Gate(g.name, True, g.value, g.threshold) for g in gates]
        elif all(g.passed for g in gates):
            gates[rng.randrange(len(gates))] = Gate("price_band", False, round(rng.uniform(1.1, 2.5), 2), 1.0)
        risk = []
        if kind == "risk_reject":
            risk = [RiskCheck("max_exposure", False, round(rng.uniform(0.1, 0.2), 3), 0.1)]
        elif kind == "signal":
            risk = [RiskCheck("max_exposure", True, round(rng.uniform(0.0, 0.08), 3), 0.1)]
        fields: dict[str, Any] = {
            "symbol": symbol,
            "direction": rng.choice(["long", "short"]),
            "decision_type": kind,
            "trader_count": rng.randint(3, 12),
            "agreement_pct": agreement,
            "effective_k": effective_k,
            "avg_confidence": round(rng.uniform(0.5, 0.9), 4),
            "ev_estimate": round(rng.uniform(0.1, 1.5), 4),
            "gates": gates,
            "risk_checks": risk,
            "decided_at": decided_at,
        }
        if fresh:
            # No price: the demo cannot know today's, and the executor checks drift only against one.
            fields["_paper"] = True
        else:
            fields["price_at_decision"] = f"{_COINS[symbol] * rng.uniform(0.9, 1.1):.5f}"
        if kind == "signal" and decided_at < now - timedelta(hours=6) and rng.random() < 0.85:
            r_multiple = round(rng.gauss(0.35, 1.2), 2)
            closed_at = min(decided_at + timedelta(hours=rng.uniform(1, 5)), now)
            fields["_outcome"] = (f"{r_multiple * 50:.2f}", r_multiple, closed_at)
        made.append(fields)
    return made


async def _why_no_paper(client: SigmaClient) -> str | None:
    """None when the server executes in dry run; else why the demo makes no paper executions."""
    config = await client.get_execution_config()
    if not (config.enabled and config.hl_enabled):
        return (
            "execution is off on the server; to see paper executions too, turn it on in dry run "
            "(`sigma-grpc execution config set --enabled --hl-enabled --dry-run`, an admin token) "
            "and run the demo again"
        )
    if not config.dry_run:
        return "execution is live on the server, and the demo only ever executes on paper"
    return None


async def _demo(client: SigmaClient, options: argparse.Namespace, out: Console) -> int:
    from rich.console import Console  # noqa: PLC0415 (only the client commands need it)
    from rich.progress import Progress  # noqa: PLC0415 (only the client commands need it)
    from sigma_client import (  # noqa: PLC0415 (only the client commands need it)
        FailedPreconditionError,
        LoggedDecision,
        SigmaError,
        UnavailableError,
    )

    EPB = _enums()[1]
    no_paper = await _why_no_paper(client)
    wanted = options.paper if options.paper is not None else max(1, options.count // 50)
    fresh = 0 if no_paper else min(wanted, options.count)
    planned = demo_decisions(options.count, options.seed, datetime.now(UTC), fresh_signals=fresh)
    outcomes = sum(1 for fields in planned if "_outcome" in fields)
    logged = recorded = 0
    to_execute: list[str] = []
    statuses: Counter[str] = Counter()
    with Progress(console=Console(stderr=True), transient=False) as progress:
        logging_task = progress.add_task("logging decisions", total=len(planned))
        outcome_task = progress.add_task("recording outcomes", total=outcomes)
        paper_task = progress.add_task("paper executions", total=fresh)
        for start in range(0, len(planned), 100):
            batch = planned[start : start + 100]
            results = await client.log_decisions(
                [{k: v for k, v in fields.items() if not k.startswith("_")} for fields in batch]  # type: ignore[misc]
            )
            for fields, result in zip(batch, results, strict=True):
                progress.advance(logging_task)
                if isinstance(result, SigmaError):
                    raise result
                assert isinstance(result, LoggedDecision)
                logged += 1
                if "_paper" in fields:
                    to_execute.append(result.decision.id)
                if "_outcome" in fields:
                    pnl, r_multiple, closed_at = fields["_outcome"]
                    await client.record_outcome(
                        result.decision.id, pnl=pnl, r_multiple=r_multiple, closed_at=closed_at
                    )
                    recorded += 1
                    progress.advance(outcome_task)
        for decision_id in to_execute:
            try:
                execution = await client.execute_signal(decision_id, dry_run_only=True, timeout=30)
            except (FailedPreconditionError, UnavailableError) as error:
                # The settings changed since the demo read them, or the exchange is out of reach.
                no_paper = f"the server refused a paper execution: {error.message}"
                break
            statuses[_enum(EPB.ExecutionStatus.Name(execution.status), "EXECUTION_STATUS_")] += 1
            progress.advance(paper_task)
    out.print(f"logged {logged} sample decisions over the last 30 days, {recorded} with an outcome")
    if statuses:
        made = ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
        out.print(f"paper executions of the {len(to_execute)} newest signals: {made}")
    if no_paper:
        out.print(f"no paper executions: {no_paper}")
    return 0
