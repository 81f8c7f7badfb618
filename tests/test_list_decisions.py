"""ListDecisions through the gRPC stub: filters, order, page sizes, keyset pagination, errors."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from google.protobuf import timestamp_pb2

from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as pb
from tests.helpers import Stub, gate, invalid_fields, risk, risk_reject, signal, skip, ts

# Timestamps of the first and last instants the contract accepts (0001-01-01, 9999-12-31T23:59:59).
MIN_SECONDS = -62135596800
MAX_SECONDS = 253402300799


def base_time() -> datetime:
    """A whole second two days ago: every test's rows sit in the past."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)


async def log(api: Stub, request: pb.LogDecisionRequest) -> pb.Decision:
    return (await api.LogDecision(request)).decision


async def close(api: Stub, decision: pb.Decision, pnl: str, r: float) -> pb.Decision:
    request = pb.RecordOutcomeRequest(decision_id=decision.id, outcome_pnl=pnl, outcome_r_multiple=r)
    return (await api.RecordOutcome(request)).decision


async def list_page(api: Stub, **fields: Any) -> pb.ListDecisionsResponse:
    response: pb.ListDecisionsResponse = await api.ListDecisions(pb.ListDecisionsRequest(**fields))
    return response


async def list_ids(api: Stub, **fields: Any) -> list[str]:
    """The ids of one page of at most 500 decisions; asserts it is the last page."""
    response = await list_page(api, page_size=500, **fields)
    assert response.next_page_token == ""
    return [d.id for d in response.decisions]


def tie(*decisions: pb.Decision) -> list[str]:
    """Ids of decisions made at the same instant, in list order (id descending)."""
    assert len({d.decided_at.ToDatetime() for d in decisions}) == 1
    return sorted((d.id for d in decisions), reverse=True)


def key(decision: pb.Decision) -> tuple[datetime, str]:
    """The list order key; UUID strings in canonical form compare like PostgreSQL's uuid."""
    return decision.decided_at.ToDatetime(tzinfo=UTC), decision.id


def raw_ts(seconds: int, nanos: int = 0) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


@dataclass
class Seeded:
    """The filter dataset: ten decisions, three of them at the same instant."""

    base: datetime
    d1: pb.Decision  # BTC  SIGNAL LONG   t+1  win
    d2: pb.Decision  # BTC  SIGNAL SHORT  t+2  loss
    d3: pb.Decision  # ETH  SIGNAL LONG   t+3  pending
    d4: pb.Decision  # ETH  SKIP   SHORT  t+4
    d5: pb.Decision  # SOL  RISK_REJECT LONG t+5
    d6: pb.Decision  # BTC  SKIP   NONE   t+6
    d7: pb.Decision  # kPEPE SIGNAL LONG  t+7  breakeven (closed, P&L 0)
    d8: pb.Decision  # BTC  SIGNAL LONG   t+7  pending
    d9: pb.Decision  # ETH  RISK_REJECT NONE t+7
    d10: pb.Decision  # btc SIGNAL LONG   t+8  pending (lowercase: another coin)

    def at(self, minutes: int) -> timestamp_pb2.Timestamp:
        return ts(self.base + timedelta(minutes=minutes))


async def seed(api: Stub) -> Seeded:
    base = base_time()

    def at(minutes: int) -> timestamp_pb2.Timestamp:
        return ts(base + timedelta(minutes=minutes))

    # Logged out of time order on purpose: the list must order by decided_at, not insertion.
    d7 = await log(api, signal(symbol="kPEPE", decided_at=at(7)))
    d3 = await log(api, signal(symbol="ETH", decided_at=at(3)))
    d1 = await log(api, signal(symbol="BTC", decided_at=at(1)))
    d9 = await log(api, risk_reject(symbol="ETH", direction=pb.DIRECTION_NONE, decided_at=at(7)))
    d2 = await log(api, signal(symbol="BTC", direction=pb.DIRECTION_SHORT, decided_at=at(2)))
    d10 = await log(api, signal(symbol="btc", decided_at=at(8)))
    d5 = await log(api, risk_reject(symbol="SOL", decided_at=at(5)))
    d4 = await log(api, skip(symbol="ETH", decided_at=at(4)))
    d8 = await log(api, signal(symbol="BTC", decided_at=at(7)))
    d6 = await log(api, skip(symbol="BTC", direction=pb.DIRECTION_NONE, decided_at=at(6)))
    d1 = await close(api, d1, "125.5", 2.5)
    d2 = await close(api, d2, "-40.25", -1.0)
    d7 = await close(api, d7, "0", 0.0)
    return Seeded(base, d1, d2, d3, d4, d5, d6, d7, d8, d9, d10)


async def test_unfiltered_list_is_newest_first_with_ties_by_id_descending(
    api: Stub,
) -> None:
    s = await seed(api)
    response = await list_page(api)
    expected = [s.d10.id, *tie(s.d7, s.d8, s.d9), s.d6.id, s.d5.id, s.d4.id, s.d3.id, s.d2.id, s.d1.id]
    assert [d.id for d in response.decisions] == expected
    assert response.next_page_token == ""
    # Every decision comes back exactly as stored, outcomes included.
    by_id = {d.id: d for d in (s.d1, s.d2, s.d3, s.d4, s.d5, s.d6, s.d7, s.d8, s.d9, s.d10)}
    for listed in response.decisions:
        assert listed == by_id[listed.id]
    assert by_id[s.d7.id].outcome_pnl == "0.00000000"


async def test_symbol_filter_is_exact_and_case_sensitive(api: Stub) -> None:
    s = await seed(api)
    assert await list_ids(api, symbol="BTC") == [s.d8.id, s.d6.id, s.d2.id, s.d1.id]
    assert await list_ids(api, symbol="btc") == [s.d10.id]
    assert await list_ids(api, symbol="ETH") == [s.d9.id, s.d4.id, s.d3.id]
    assert await list_ids(api, symbol="kPEPE") == [s.d7.id]
    assert await list_ids(api, symbol="BT") == []
    assert await list_ids(api, symbol="DOGE") == []


async def test_decision_type_filter(api: Stub) -> None:
    s = await seed(api)
    assert await list_ids(api, decision_type=pb.DECISION_TYPE_SIGNAL) == [
        s.d10.id,
        *tie(s.d7, s.d8),
        s.d3.id,
        s.d2.id,
        s.d1.id,
    ]
    assert await list_ids(api, decision_type=pb.DECISION_TYPE_SKIP) == [s.d6.id, s.d4.id]
    assert await list_ids(api, decision_type=pb.DECISION_TYPE_RISK_REJECT) == [s.d9.id, s.d5.id]


async def test_direction_filter(api: Stub) -> None:
    s = await seed(api)
    assert await list_ids(api, direction=pb.DIRECTION_LONG) == [
        s.d10.id,
        *tie(s.d7, s.d8),
        s.d5.id,
        s.d3.id,
        s.d1.id,
    ]
    assert await list_ids(api, direction=pb.DIRECTION_SHORT) == [s.d4.id, s.d2.id]
    assert await list_ids(api, direction=pb.DIRECTION_NONE) == [s.d9.id, s.d6.id]


async def test_outcome_filter(api: Stub) -> None:
    s = await seed(api)
    assert await list_ids(api, outcome=pb.OUTCOME_PENDING) == [s.d10.id, s.d8.id, s.d3.id]
    # The breakeven d7 is closed, but neither a win nor a loss.
    assert await list_ids(api, outcome=pb.OUTCOME_CLOSED) == [s.d7.id, s.d2.id, s.d1.id]
    assert await list_ids(api, outcome=pb.OUTCOME_WIN) == [s.d1.id]
    assert await list_ids(api, outcome=pb.OUTCOME_LOSS) == [s.d2.id]
    # Outcomes select signals only: skips and risk rejects are never pending.
    assert await list_ids(api, outcome=pb.OUTCOME_PENDING, decision_type=pb.DECISION_TYPE_SKIP) == []
    assert await list_ids(api, outcome=pb.OUTCOME_CLOSED, decision_type=pb.DECISION_TYPE_RISK_REJECT) == []


async def test_time_filters_are_half_open_on_decided_at(api: Stub) -> None:
    s = await seed(api)
    # [t+4, t+7): the three decisions at t+7 are excluded, the one at t+4 included.
    assert await list_ids(api, start_time=s.at(4), end_time=s.at(7)) == [s.d6.id, s.d5.id, s.d4.id]
    assert await list_ids(api, start_time=s.at(7)) == [s.d10.id, *tie(s.d7, s.d8, s.d9)]
    assert await list_ids(api, end_time=s.at(2)) == [s.d1.id]
    assert await list_ids(api, end_time=s.at(1)) == []
    # One microsecond after t+7 drops the tie group; one before t+1 keeps d1.
    just_after_7 = ts(s.base + timedelta(minutes=7, microseconds=1))
    assert await list_ids(api, start_time=just_after_7) == [s.d10.id]
    just_before_1 = ts(s.base + timedelta(minutes=1, microseconds=-1))
    assert await list_ids(api, start_time=just_before_1, end_time=s.at(2)) == [s.d1.id]
    # The extreme timestamps the contract accepts are valid filters.
    everything = await list_ids(api, start_time=raw_ts(MIN_SECONDS, nanos=1000), end_time=raw_ts(MAX_SECONDS))
    assert len(everything) == 10


async def test_filters_combine(api: Stub) -> None:
    s = await seed(api)
    assert await list_ids(
        api, symbol="BTC", decision_type=pb.DECISION_TYPE_SIGNAL, outcome=pb.OUTCOME_PENDING
    ) == [s.d8.id]
    assert await list_ids(api, symbol="BTC", direction=pb.DIRECTION_LONG, end_time=s.at(7)) == [s.d1.id]
    assert await list_ids(
        api, symbol="ETH", direction=pb.DIRECTION_NONE, decision_type=pb.DECISION_TYPE_RISK_REJECT
    ) == [s.d9.id]
    assert await list_ids(api, symbol="SOL", decision_type=pb.DECISION_TYPE_SIGNAL) == []


async def test_filtered_pages_split_ties_and_end_with_empty_token(api: Stub) -> None:
    s = await seed(api)
    expected = [s.d10.id, *tie(s.d7, s.d8), s.d3.id, s.d2.id, s.d1.id]
    pages: list[list[str]] = []
    tokens: list[str] = []
    token = ""
    while True:
        page = await list_page(api, decision_type=pb.DECISION_TYPE_SIGNAL, page_size=2, page_token=token)
        pages.append([d.id for d in page.decisions])
        tokens.append(page.next_page_token)
        token = page.next_page_token
        if not token:
            break
    # Six signals in pages of two: the last page is full and still ends the list.
    assert pages == [expected[0:2], expected[2:4], expected[4:6]]
    assert [bool(t) for t in tokens] == [True, True, False]

    # One decision per page over everything, splitting the three-way tie.
    all_expected = [s.d10.id, *tie(s.d7, s.d8, s.d9), s.d6.id, s.d5.id, s.d4.id, s.d3.id, s.d2.id, s.d1.id]
    seen: list[str] = []
    token = ""
    for index in range(10):
        page = await list_page(api, page_size=1, page_token=token)
        assert len(page.decisions) == 1
        seen.append(page.decisions[0].id)
        token = page.next_page_token
        assert bool(token) == (index < 9)
    assert seen == all_expected


async def test_page_token_can_be_repeated_and_page_size_may_change(api: Stub) -> None:
    s = await seed(api)
    first = await list_page(api, symbol="BTC", page_size=1)
    assert [d.id for d in first.decisions] == [s.d8.id]
    again = await list_page(api, symbol="BTC", page_size=1, page_token=first.next_page_token)
    twice = await list_page(api, symbol="BTC", page_size=1, page_token=first.next_page_token)
    assert [d.id for d in again.decisions] == [d.id for d in twice.decisions] == [s.d6.id]
    # The token is tied to the filters, not to the page size.
    rest = await list_page(api, symbol="BTC", page_size=10, page_token=first.next_page_token)
    assert [d.id for d in rest.decisions] == [s.d6.id, s.d2.id, s.d1.id]
    assert rest.next_page_token == ""


async def bulk_insert(db: asyncpg.Pool, count: int, base: datetime, per_instant: int = 1) -> list[str]:
    """Insert `count` signals straight into the table, `per_instant` of them per second from `base`.

    Returns their ids in list order (newest first, ties by id descending).
    """
    rows = await db.fetch(
        """
        INSERT INTO decision_logs (symbol, direction, decision_type, trader_count, agreement_pct,
                                   effective_k, gates, reasoning, decided_at)
        SELECT 'BTC', 'long', 'signal', 5, 0.8, 3.0, '[{"name": "supermajority", "passed": true}]'::jsonb,
               'bulk row',
               $1::timestamptz + make_interval(secs => g / $3)
        FROM generate_series(0, $2 - 1) AS g
        RETURNING id, decided_at
        """,
        base,
        count,
        per_instant,
    )
    assert len(rows) == count
    ordered = sorted(((r["decided_at"], str(r["id"])) for r in rows), reverse=True)
    return [row_id for _, row_id in ordered]


async def test_page_size_zero_means_50(api: Stub, clean_db: asyncpg.Pool) -> None:
    ids = await bulk_insert(clean_db, 60, base_time())
    page = await list_page(api, page_size=0)
    assert [d.id for d in page.decisions] == ids[:50]
    assert page.next_page_token != ""
    rest = await list_page(api, page_token=page.next_page_token)
    assert [d.id for d in rest.decisions] == ids[50:]
    assert rest.next_page_token == ""


async def test_page_size_above_500_is_clamped(api: Stub, clean_db: asyncpg.Pool) -> None:
    ids = await bulk_insert(clean_db, 520, base_time())
    for size in (501, 1000, 2**31 - 1):
        page = await list_page(api, page_size=size)
        assert [d.id for d in page.decisions] == ids[:500], size
        assert page.next_page_token != ""
    exact = await list_page(api, page_size=500)
    assert [d.id for d in exact.decisions] == ids[:500]
    rest = await list_page(api, page_size=501, page_token=exact.next_page_token)
    assert [d.id for d in rest.decisions] == ids[500:]
    assert rest.next_page_token == ""
    # 520 rows in pages of 260: the second page is full and the last.
    first = await list_page(api, page_size=260)
    second = await list_page(api, page_size=260, page_token=first.next_page_token)
    assert [d.id for d in first.decisions] + [d.id for d in second.decisions] == ids
    assert second.next_page_token == ""


async def test_negative_page_size_is_invalid(api: Stub) -> None:
    for size in (-1, -(2**31)):
        fields = await invalid_fields(api.ListDecisions(pb.ListDecisionsRequest(page_size=size)))
        assert list(fields) == ["page_size"]


async def test_paging_while_rows_are_inserted_never_duplicates_or_skips(
    api: Stub, clean_db: asyncpg.Pool
) -> None:
    base = base_time()
    # 300 rows, three per second, so page boundaries fall inside ties.
    existing = await bulk_insert(clean_db, 300, base, per_instant=3)
    written: list[str] = []
    progress = asyncio.Event()
    stop = asyncio.Event()

    async def writer() -> None:
        k = 0
        try:
            while not stop.is_set():
                kind = k % 3
                if kind == 0:  # now: newer than every existing row
                    request = signal(symbol="ETH")
                elif kind == 1:  # between two existing instants
                    moment = base + timedelta(seconds=(k * 37) % 100, milliseconds=500)
                    request = signal(symbol="ETH", decided_at=ts(moment))
                else:  # exactly at an existing instant: joins a tie
                    request = skip(symbol="SOL", decided_at=ts(base + timedelta(seconds=(k * 13) % 100)))
                written.append((await api.LogDecision(request)).decision.id)
                k += 1
                progress.set()
        finally:
            progress.set()  # never leave the pager waiting on a writer that stopped

    task = asyncio.create_task(writer())
    seen: list[pb.Decision] = []
    tokens: list[str] = []
    try:
        token = ""
        while True:
            # Wait for at least one more concurrent insert before every page.
            progress.clear()
            await progress.wait()
            if task.done():
                await task  # the writer failed: raise its error
                raise AssertionError("the writer stopped before paging ended")
            page = await list_page(api, page_size=7, page_token=token)
            seen.extend(page.decisions)
            tokens.append(page.next_page_token)
            token = page.next_page_token
            if not token:
                break
    finally:
        stop.set()
        await task

    seen_ids = [d.id for d in seen]
    assert len(seen_ids) == len(set(seen_ids)), "a decision was listed twice"
    assert set(existing) <= set(seen_ids), "a decision that existed when paging started was skipped"
    assert set(seen_ids) <= set(existing) | set(written)
    # The pages, joined, are strictly newest first: the keyset never moves backwards.
    keys = [key(d) for d in seen]
    assert all(a > b for a, b in itertools.pairwise(keys))
    # The existing rows keep their relative order.
    assert [i for i in seen_ids if i in set(existing)] == existing
    assert all(tokens[:-1]) and tokens[-1] == ""
    assert len(tokens) >= 300 // 7
    assert len(written) >= len(tokens)


def unpack_token(token: str) -> dict[str, Any]:
    packed: dict[str, Any] = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    return packed


def pack_token(packed: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(packed, separators=(",", ":")).encode()).decode().rstrip("=")


async def test_garbage_page_tokens_are_invalid(api: Stub) -> None:
    await seed(api)
    garbage = [
        "garbage",
        "!!!!",
        "ü",
        "a",
        base64.urlsafe_b64encode(b"not json").decode(),
        base64.urlsafe_b64encode(b"[1, 2, 3]").decode(),
        base64.urlsafe_b64encode(b'{"b": "x"}').decode(),
        base64.urlsafe_b64encode(b"\xff\xfe\x00").decode(),
        "x" * 5000,
        # Nesting deep enough to exhaust the JSON parser's recursion, bare and inside a checksum.
        base64.urlsafe_b64encode(b"[" * 5000).decode(),
        forge_text("[" * 5000),
    ]
    for token in garbage:
        fields = await invalid_fields(
            api.ListDecisions(pb.ListDecisionsRequest(page_token=token)), "INVALID_PAGE_TOKEN"
        )
        assert list(fields) == ["page_token"], token


async def test_tampered_page_tokens_are_invalid(api: Stub) -> None:
    s = await seed(api)
    token = (await list_page(api, page_size=2)).next_page_token
    assert token
    packed = unpack_token(token)
    body = json.loads(packed["b"])

    moved = dict(body, i=s.d1.id)  # point the cursor elsewhere, keep the old checksum
    earlier = dict(body, t=(s.base + timedelta(minutes=3)).isoformat())
    refiltered = dict(body, f="0" * 16)
    tampered = [
        pack_token({"b": json.dumps(moved, separators=(",", ":"), sort_keys=True), "c": packed["c"]}),
        pack_token({"b": json.dumps(earlier, separators=(",", ":"), sort_keys=True), "c": packed["c"]}),
        pack_token({"b": json.dumps(refiltered, separators=(",", ":"), sort_keys=True), "c": packed["c"]}),
        pack_token({"b": packed["b"], "c": "0" * len(packed["c"])}),
        pack_token({"b": packed["b"]}),
        token[:-3],
        token + "AAAA",
        token[:10] + ("A" if token[10] != "A" else "B") + token[11:],
    ]
    for bad in tampered:
        fields = await invalid_fields(
            api.ListDecisions(pb.ListDecisionsRequest(page_size=2, page_token=bad)), "INVALID_PAGE_TOKEN"
        )
        assert list(fields) == ["page_token"], bad
    # The untouched token still works.
    page = await list_page(api, page_size=2, page_token=token)
    assert [d.id for d in page.decisions] == tie(s.d7, s.d8, s.d9)[1:]


def legacy_v1_token(last: pb.Decision, symbol: str) -> str:
    """A token as version 1 made them: its fingerprint covered every filter field, set or not."""
    filters = {
        "kind": "DecisionFilter",
        "symbol": symbol,
        "decision_type": None,
        "direction": None,
        "outcome": None,
        "start_time": None,
        "end_time": None,
    }
    fingerprint = hashlib.sha256(json.dumps(filters, sort_keys=True).encode()).hexdigest()[:16]
    moment = last.decided_at.ToDatetime(tzinfo=UTC).isoformat()
    return forge({"v": 1, "f": fingerprint, "t": moment, "i": last.id})


def forge(body: object) -> str:
    """A token with a well-formed checksum around an arbitrary body (the checksum is not secret)."""
    return forge_text(json.dumps(body, separators=(",", ":"), sort_keys=True))


def forge_text(text: str) -> str:
    checksum = hashlib.sha256(f"sigma.v1/page/{text}".encode()).hexdigest()[:12]
    return pack_token({"b": text, "c": checksum})


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            {"v": 1, "t": "2025-01-01T00:00:00+00:00", "i": "00000000-0000-4000-8000-000000000000"}, id="no-f"
        ),
        pytest.param({"v": 1, "f": "x", "t": "2025-01-01T00:00:00+00:00", "i": 5}, id="int-id"),
        pytest.param(
            {"v": 1, "f": "x", "t": "2025-01-01T00:00:00", "i": "00000000-0000-4000-8000-000000000000"},
            id="naive-time",
        ),
        pytest.param(
            {"v": 2, "f": "x", "t": "2025-01-01T00:00:00+00:00", "i": "00000000-0000-4000-8000-000000000000"},
            id="version",
        ),
        pytest.param({"v": 1, "f": "x", "t": 12, "i": "00000000-0000-4000-8000-000000000000"}, id="int-time"),
        pytest.param(["v", 1], id="list-body"),
    ],
)
async def test_made_up_page_tokens_are_invalid(api: Stub, body: object) -> None:
    request = pb.ListDecisionsRequest(page_token=forge(body))
    fields = await invalid_fields(api.ListDecisions(request), "INVALID_PAGE_TOKEN")
    assert list(fields) == ["page_token"]


async def test_made_up_cursor_outside_the_timestamp_range_is_invalid(api: Stub) -> None:
    """A forged token with the right fingerprint but a time PostgreSQL cannot hold."""
    s = await seed(api)
    real = json.loads(unpack_token((await list_page(api, page_size=1)).next_page_token)["b"])
    for moment in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"):
        token = forge(dict(real, t=moment, i=s.d1.id))
        fields = await invalid_fields(
            api.ListDecisions(pb.ListDecisionsRequest(page_size=1, page_token=token)), "INVALID_PAGE_TOKEN"
        )
        assert list(fields) == ["page_token"], moment


async def test_page_token_for_other_filters_is_invalid(api: Stub) -> None:
    s = await seed(api)
    btc = (await list_page(api, symbol="BTC", page_size=1)).next_page_token
    signals = (await list_page(api, decision_type=pb.DECISION_TYPE_SIGNAL, page_size=1)).next_page_token
    windowed = (await list_page(api, start_time=s.at(1), page_size=1)).next_page_token
    unfiltered = (await list_page(api, page_size=1)).next_page_token
    assert btc and signals and windowed and unfiltered

    mismatches: list[tuple[str, dict[str, Any]]] = [
        (btc, {}),
        (btc, {"symbol": "ETH"}),
        (btc, {"symbol": "BTC", "decision_type": pb.DECISION_TYPE_SIGNAL}),
        (btc, {"symbol": "BTC", "direction": pb.DIRECTION_LONG}),
        (btc, {"symbol": "BTC", "outcome": pb.OUTCOME_PENDING}),
        (signals, {"decision_type": pb.DECISION_TYPE_SKIP}),
        (windowed, {"start_time": s.at(2)}),
        (windowed, {"start_time": s.at(1), "end_time": s.at(9)}),
        (unfiltered, {"symbol": "BTC"}),
    ]
    for token, filters in mismatches:
        request = pb.ListDecisionsRequest(page_size=1, page_token=token, **filters)
        fields = await invalid_fields(api.ListDecisions(request), "INVALID_PAGE_TOKEN")
        assert list(fields) == ["page_token"], filters


async def test_malformed_filters_are_invalid(api: Stub) -> None:
    s = await seed(api)
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"start_time": s.at(5), "end_time": s.at(5)}, {"end_time"}),
        ({"start_time": s.at(5), "end_time": s.at(4)}, {"end_time"}),
        ({"symbol": "BTC-PERP"}, {"symbol"}),
        ({"symbol": "A" * 17}, {"symbol"}),
        ({"symbol": "BT C"}, {"symbol"}),
        ({"symbol": "BTC\n"}, {"symbol"}),
        ({"start_time": raw_ts(MIN_SECONDS - 1)}, {"start_time"}),
        ({"start_time": raw_ts(MAX_SECONDS + 1)}, {"start_time"}),
        ({"end_time": raw_ts(MIN_SECONDS - 1)}, {"end_time"}),
        ({"end_time": raw_ts(MAX_SECONDS + 1)}, {"end_time"}),
        ({"start_time": raw_ts(MIN_SECONDS)}, {"start_time"}),
        ({"end_time": raw_ts(MAX_SECONDS, nanos=999_999_000)}, {"end_time"}),
        ({"start_time": raw_ts(0, nanos=1_000_000_000)}, {"start_time"}),
        ({"start_time": raw_ts(0, nanos=-1)}, {"start_time"}),
        # Every violation is listed at once.
        (
            {"symbol": "B!", "page_size": -5, "start_time": s.at(3), "end_time": s.at(1)},
            {"symbol", "page_size", "end_time"},
        ),
    ]
    for filters, expected in cases:
        fields = await invalid_fields(api.ListDecisions(pb.ListDecisionsRequest(**filters)))
        assert set(fields) == expected, filters
        assert all(fields.values()), fields


async def test_empty_database_lists_nothing(api: Stub) -> None:
    page = await list_page(api)
    assert list(page.decisions) == []
    assert page.next_page_token == ""


async def test_risk_checks_and_gates_survive_the_list(api: Stub) -> None:
    request = risk_reject(
        symbol="AVAX",
        gates=[gate("supermajority", True, 0.9, 0.7)],
        risk_checks=[risk("max_exposure", False, 0.2, 0.1), risk("daily_loss", True)],
        decided_at=ts(base_time()),
    )
    logged = await log(api, request)
    page = await list_page(api, symbol="AVAX")
    assert list(page.decisions) == [logged]


@pytest.mark.parametrize(
    ("field", "number"),
    [("decision_type", 7), ("direction", 9), ("outcome", 5), ("decision_type", -1), ("outcome", 2**31 - 1)],
)
async def test_an_unknown_enum_value_in_a_filter_is_invalid_not_ignored(
    api: Stub, field: str, number: int
) -> None:
    """An unknown filter value once counted as unset, so the call listed every decision."""
    await seed(api)
    request = pb.ListDecisionsRequest(**{field: number})  # type: ignore[arg-type]
    fields = await invalid_fields(api.ListDecisions(request))
    assert fields == {field: f"unknown value {number}"}


async def test_a_page_token_of_the_previous_version_still_pages(api: Stub) -> None:
    """Tokens in flight during a rolling upgrade keep working: version 1 tokens are still read."""
    s = await seed(api)
    first = await list_page(api, symbol="BTC", page_size=2)
    assert first.next_page_token
    rest = await list_page(
        api, symbol="BTC", page_size=10, page_token=legacy_v1_token(first.decisions[-1], "BTC")
    )
    same = await list_page(api, symbol="BTC", page_size=10, page_token=first.next_page_token)
    assert list(rest.decisions) == list(same.decisions)
    # BTC: d8, d6 on the first page, then d2, d1.
    assert [d.id for d in [*first.decisions, *rest.decisions]] == [s.d8.id, s.d6.id, s.d2.id, s.d1.id]
    # A version 1 token made for other filters is still refused.
    other = legacy_v1_token(first.decisions[-1], "ETH")
    fields = await invalid_fields(
        api.ListDecisions(pb.ListDecisionsRequest(symbol="BTC", page_token=other)), "INVALID_PAGE_TOKEN"
    )
    assert list(fields) == ["page_token"]
