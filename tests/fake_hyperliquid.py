"""A local fake of the Hyperliquid HTTP API, for tests that drive the real ``hyperliquid-python-sdk``.

``FakeHyperliquid`` runs a stdlib ``ThreadingHTTPServer`` on ``127.0.0.1`` (a free port chosen by the
OS) in a background thread. Point the SDK at ``fake.base_url``::

    with FakeHyperliquid() as fake:
        fake.add_account(wallet.address, account_value=1000)
        exchange = Exchange(wallet, base_url=fake.base_url, timeout=5)
        exchange.order("ETH", True, 0.05, 2000, {"limit": {"tif": "Ioc"}})

What it emulates (perpetuals of the default dex only):

* ``POST /info``: ``meta`` (the recorded 2023 mainnet universe unless replaced), ``spotMeta`` (empty),
  ``allMids``, ``clearinghouseState`` (computed from the fake's own accounts at the current mids),
  ``orderStatus`` (by oid or cloid), ``userFills``, ``userFillsByTime``, ``openOrders``,
  ``frontendOpenOrders``, ``historicalOrders``, a one-level ``l2Book`` at the mid and ``userRole`` in all
  its shapes: ``user``, ``agent`` (with ``data.user``, its main account), ``vault``, ``subAccount`` (with
  ``data.master``) and ``missing``. Unknown keys such as ``dex`` are ignored; an unknown ``type`` gets
  HTTP 422 in plain text, like the real API.
* Accounts: ``add_account`` (signs for itself), ``add_agent`` (an API wallet signing for a main account),
  ``add_vault`` and ``add_sub_account`` (state that can be read and seeded, but no key: they never sign).
* ``POST /exchange``: the L1 signature is checked the way the exchange does it: the signer is
  *recovered* from the EIP-712 "Agent" message built over the msgpack of the action exactly as received
  (``json.loads`` keeps key order), so a tampered or re-ordered payload recovers some other address and
  is rejected as an unknown wallet. Registered accounts sign for themselves, agent (API) wallets for their
  main account. ``expiresAfter`` earlier than the fake's clock *when the request is processed* is refused
  (``Action already expired``). Nonces follow API_NOTES section 7, per signer: the 100 highest are kept;
  a nonce is refused if already kept (``duplicate nonce``), if 100 are kept and it is not larger than the
  smallest of them, or if it lies outside (now - 2 days, now + 1 day). A nonce is used up only when its
  action is carried out (not by an unknown signer, an expired action, a vault or an unsupported action,
  all refused first). Actions: ``order`` (limit orders: Gtc, Ioc, Alo), ``updateLeverage``, ``cancel``
  and ``cancelByCloid``; others answer ``Unsupported action``.
* Orders are validated like the exchange (size step, zero size, tick/significant figures, the $10
  minimum unless reduce-only, reduce-only direction, initial margin at the user's leverage, Alo/Ioc
  crossing) and get the exchange's error sentences with the `` asset=N`` suffix. A cloid is unique per
  account: an order reusing one the account already used (open, filled, canceled or rejected) is refused
  and nothing is placed. An order whose price crosses the mid fills *at the mid* (partly when a liquidity
  cap is set for the coin); others rest. Fills update positions (average entry price, realised PnL into
  the USDC balance, an optional taker fee) and are reported by ``userFills``.
* Rejected orders are kept, as on the exchange: an order refused for tick, minimum value, reduce-only,
  Alo crossing, margin or an IOC that did not match gets an oid and a status (``tickRejected``,
  ``minTradeNtlRejected``, ``reduceOnlyRejected``, ``badAloPxRejected``, ``perpMarginRejected``,
  ``iocCancelRejected``) that ``orderStatus`` and ``historicalOrders`` report. Orders refused before they
  get an oid (invalid or zero size, unknown asset, duplicate cloid, trigger orders) leave no record.
  Errors injected with ``fail_orders`` are kept the same way, their status found by the sentence's prefix
  in ``REJECTION_STATUSES`` (``rejected`` for a sentence it does not know) or given explicitly.
* ``updateLeverage`` stores leverage and margin mode (cross or isolated); switching the mode of a coin
  with an open position is refused (``Cannot switch leverage type with open position.``), changing only
  the leverage is allowed. An isolated position reports ``{"type": "isolated", "value": N, "rawUsd": …}``.
* Fault injection for the next N requests (or until cleared): per-order error strings, HTTP 4xx/5xx in
  plain text, a top-level ``{"status": "err"}``, a 200 non-JSON body, a hang (the request applied first,
  or dropped), a *late* request (held N seconds, only then processed against the clock of that moment,
  then answered or dropped: the order reaches the exchange after the client gave up) and a ``resting``
  answer for an IOC. Every request is recorded for assertions.

What it does not emulate: spot, HIP-3 dexes, acting for vaults and sub-accounts (a non-null
``vaultAddress`` is refused), trigger/TP-SL orders, an order book (there is only the mid;
``set_liquidity`` caps the size one order can take), isolated-margin accounting (isolated leverage is
stored and reported, but the margin maths stays cross), funding, liquidations, maintenance-margin checks,
rate limits, user-signed actions (transfers, ``approveAgent``: add agents with ``add_agent``) and the
websocket (use ``skip_ws=True``).

Error sentences come from the official "Error responses" list and API_NOTES. ``Cannot switch leverage
type with open position.`` is the sentence third-party client code quotes from the live API (it is not
in API_NOTES or the fixtures). These texts are invented here but keep the real prefixes: a nonce outside
the time window and a nonce not larger than the smallest kept (``Invalid nonce``), a bad leverage value
(``Invalid leverage value``), an unknown asset (``Invalid asset.``), a reused cloid (``Duplicate cloid``;
the real wording is unknown) and a vault (refused as not supported). Status names are the exchange's
(``orderStatus``); mapping a sentence to one is the fake's reading of the docs. Match errors by prefix,
as one must with the real API.
"""

from __future__ import annotations

import copy
import heapq
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TypeVar, cast

import msgpack  # type: ignore[import-untyped]
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak

__all__ = [
    "FIXTURES_DIR",
    "REJECTION_STATUSES",
    "Asset",
    "FakeHyperliquid",
    "Fault",
    "OrderRecord",
    "PositionView",
    "RecordedRequest",
    "load_fixture",
    "recover_l1_signer",
    "rejection_status",
]

JsonDict = dict[str, Any]
T = TypeVar("T")
Number = Decimal | int | float | str

FIXTURES_DIR = Path(__file__).parent / "fixtures" / "hyperliquid"

# --- the exchange's sentences ---------------------------------------------------------------------

ERR_UNKNOWN_SIGNER = "User or API Wallet {address} does not exist."
ERR_DUPLICATE_NONCE = "Invalid nonce: duplicate nonce {nonce}"
ERR_NONCE_WINDOW = "Invalid nonce: nonce {nonce} is outside the allowed time window"  # wording invented
ERR_NONCE_TOO_LOW = (  # wording invented
    "Invalid nonce: nonce {nonce} is not larger than {smallest}, the smallest of the 100 highest nonces"
)
ERR_EXPIRED = "Action already expired"
ERR_UNSUPPORTED = "Unsupported action"
ERR_BAD_SIGNATURE = "Invalid signature"
ERR_VAULT = "Vault and sub-account actions are not supported by the fake"  # wording invented
ERR_LEVERAGE = "Invalid leverage value"  # wording invented
ERR_SWITCH_MARGIN_MODE = "Cannot switch leverage type with open position."  # quoted by client code
ERR_DESERIALIZE = "Failed to deserialize the JSON body into the target type"

ORDER_INVALID_SIZE = "Order has invalid size."
ORDER_ZERO_SIZE = "Order has zero size."
ORDER_TICK = "Price must be divisible by tick size."
ORDER_MIN_NOTIONAL = "Order must have minimum value of $10."
ORDER_MARGIN = "Insufficient margin to place order."
ORDER_IOC_CANCEL = "Order could not immediately match against any resting orders."
ORDER_REDUCE_ONLY = "Reduce only order would increase position."
ORDER_BAD_ALO = "Post only order would have immediately matched, bbo was {bbo}."
ORDER_UNKNOWN_ASSET = "Invalid asset."  # wording invented
ORDER_TRIGGER = "Trigger orders are not supported by the fake."
ORDER_DUPLICATE_CLOID = "Duplicate cloid {cloid}: the account already used it."  # wording invented
CANCEL_MISSING = "Order was never placed, already canceled, or filled."

# The exchange's order status for a per-order error, by the error's prefix (first match wins). None: the
# order never got an oid (the exchange rejects it before placing it), so orderStatus does not know it.
# Statuses are the exchange's names (orderStatus / historicalOrders); an unlisted error maps to "rejected".
REJECTION_STATUSES: tuple[tuple[str, str | None], ...] = (
    ("Order has invalid size", None),
    ("Order has zero size", None),
    ("Invalid asset", None),
    ("Duplicate cloid", None),
    ("Trigger orders are not supported", None),
    ("Price must be divisible by tick size", "tickRejected"),
    ("Order must have minimum value of $", "minTradeNtlRejected"),
    ("Order must have minimum value of", "minTradeSpotNtlRejected"),
    ("Insufficient margin to place order", "perpMarginRejected"),
    ("Reduce only order would increase position", "reduceOnlyRejected"),
    ("Post only order would have immediately matched", "badAloPxRejected"),
    ("Order could not immediately match", "iocCancelRejected"),
    ("Invalid TP/SL price", "badTriggerPxRejected"),
    ("No liquidity available for market order", "marketOrderNoLiquidityRejected"),
    # PositionIncreaseAtOpenInterestCap and PositionFlipAtOpenInterestCap share this sentence.
    ("Order would increase open interest while", "positionIncreaseAtOpenInterestCapRejected"),
    ("Order price too far from oracle", "oracleRejected"),
    ("Order would cause position to exceed margin tier limit", "perpMaxPositionRejected"),
)
DEFAULT_REJECTION_STATUS = "rejected"

MIN_NOTIONAL = Decimal(10)
NONCES_KEPT = 100
NONCE_PAST_MS = 2 * 24 * 3600 * 1000
NONCE_FUTURE_MS = 1 * 24 * 3600 * 1000
USD_QUANTUM = Decimal("0.000001")
PX_QUANTUM = Decimal("0.00000001")

# --- signing ---------------------------------------------------------------------------------------


def _agent_typed_data(source: str, connection_id: bytes) -> JsonDict:
    return {
        "domain": {
            "chainId": 1337,
            "name": "Exchange",
            "verifyingContract": "0x0000000000000000000000000000000000000000",
            "version": "1",
        },
        "types": {
            "Agent": [
                {"name": "source", "type": "string"},
                {"name": "connectionId", "type": "bytes32"},
            ],
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
        },
        "primaryType": "Agent",
        "message": {"source": source, "connectionId": connection_id},
    }


def recover_l1_signer(
    action: Any,
    nonce: int,
    signature: Mapping[str, Any],
    *,
    vault_address: str | None,
    expires_after: int | None,
    source: str = "b",
) -> str:
    """The lower-case address that signed an L1 action (API_NOTES section 7).

    ``action`` must be the object exactly as received; its key order is part of the hash. A wrong
    payload does not fail: it recovers a different, valid-looking address.
    """
    data: bytes = msgpack.packb(action)
    data += nonce.to_bytes(8, "big")
    if vault_address is None:
        data += b"\x00"
    else:
        data += b"\x01" + bytes.fromhex(vault_address.removeprefix("0x"))
    if expires_after is not None:
        data += b"\x00" + expires_after.to_bytes(8, "big")
    message = encode_typed_data(full_message=_agent_typed_data(source, keccak(data)))
    vrs = (int(signature["v"]), int(str(signature["r"]), 16), int(str(signature["s"]), 16))
    return str(Account.recover_message(message, vrs=vrs)).lower()


# --- helpers ---------------------------------------------------------------------------------------


def load_fixture(name: str) -> Any:
    """A recorded response from tests/fixtures/hyperliquid (see its README.md)."""
    return json.loads((FIXTURES_DIR / name).read_text())


def _dec(value: Number) -> Decimal:
    return Decimal(str(value)) if isinstance(value, float) else Decimal(value)


def _fmt(value: Decimal) -> str:
    """A decimal string the way the API writes numbers: no exponent, at least one decimal."""
    text = format(value.quantize(PX_QUANTUM, ROUND_HALF_EVEN).normalize(), "f")
    if text in ("-0", "-0.0"):
        text = "0"
    return text if "." in text else text + ".0"


def _usd(value: Decimal) -> str:
    return _fmt(value.quantize(USD_QUANTUM, ROUND_HALF_EVEN))


def _address(address: str) -> str:
    text = address.lower()
    if len(text) != 42 or not text.startswith("0x"):
        raise ValueError(f"not an address: {address!r}")
    int(text, 16)
    return text


def _now_ms() -> int:
    return int(time.time() * 1000)


def _valid_size(size: Decimal, sz_decimals: int) -> bool:
    steps = size.scaleb(sz_decimals)
    return size >= 0 and steps == steps.to_integral_value()


def _valid_price(price: Decimal, sz_decimals: int) -> bool:
    """At most 5 significant figures and 6 - szDecimals decimals; integer prices always pass."""
    if price <= 0:
        return False
    if price == price.to_integral_value():
        return True
    digits, exponent = price.normalize().as_tuple()[1:]
    assert isinstance(exponent, int)
    return len(digits) <= 5 and -exponent <= 6 - sz_decimals


def rejection_status(message: str) -> str | None:
    """The order status the exchange gives an order refused with ``message`` (see REJECTION_STATUSES).

    None when such an order never gets an oid; ``"rejected"`` for an error the table does not know.
    """
    for prefix, status in REJECTION_STATUSES:
        if message.startswith(prefix):
            return status
    return DEFAULT_REJECTION_STATUS


def _ok(response: JsonDict) -> JsonDict:
    return {"status": "ok", "response": response}


def _err(message: str) -> JsonDict:
    return {"status": "err", "response": message}


class _BadRequest(Exception):
    """The body does not have the shape the endpoint expects: HTTP 422, like the real API."""


# --- public data types -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Asset:
    """One perpetual of the ``meta`` universe; its asset id is its position in the list."""

    name: str
    sz_decimals: int
    max_leverage: int

    def to_json(self) -> JsonDict:
        return {"maxLeverage": self.max_leverage, "name": self.name, "szDecimals": self.sz_decimals}


@dataclass(frozen=True)
class PositionView:
    """A snapshot of one open position, as ``fake.positions(address)`` returns it."""

    coin: str
    szi: Decimal
    entry_px: Decimal
    leverage: int
    is_cross: bool


@dataclass
class OrderRecord:
    """An order the fake accepted, or rejected after giving it an oid (its status then says why)."""

    user: str
    coin: str
    asset: int
    is_buy: bool
    limit_px: Decimal
    orig_sz: Decimal
    sz: Decimal  # what is left open
    oid: int
    timestamp: int
    tif: str
    reduce_only: bool
    cloid: str | None
    status: str = "open"
    status_timestamp: int = 0

    def order_json(self) -> JsonDict:
        return {
            "coin": self.coin,
            "side": "B" if self.is_buy else "A",
            "limitPx": _fmt(self.limit_px),
            "sz": _fmt(self.sz),
            "oid": self.oid,
            "timestamp": self.timestamp,
            "triggerCondition": "N/A",
            "isTrigger": False,
            "triggerPx": "0.0",
            "children": [],
            "isPositionTpsl": False,
            "reduceOnly": self.reduce_only,
            "orderType": "Limit",
            "origSz": _fmt(self.orig_sz),
            "tif": self.tif,
            "cloid": self.cloid,
        }

    def status_json(self) -> JsonDict:
        return {"order": self.order_json(), "status": self.status, "statusTimestamp": self.status_timestamp}


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received, with what it answered."""

    path: str
    body: Any  # the parsed JSON body (None when it was not JSON)
    status: int  # HTTP status sent; 0 when the connection was dropped without an answer
    response: Any  # the JSON answer, or the text of a non-JSON answer
    signer: str | None = None  # /exchange: the recovered signer (lower case)
    user: str | None = None  # /exchange: the account the signer acts for
    delay: float = 0.0  # seconds the answer (hang) or the whole request (late) was held back
    # The fake clock (ms) when the fake acted on the request; None when it never did (a transport fault, a
    # hang(apply=False), a late request still held or released by stop()/reset(), a 422 body).
    processed_at: int | None = None

    @property
    def type(self) -> str | None:
        """The ``type`` of an /info request or of an /exchange action."""
        body = self.body if isinstance(self.body, dict) else {}
        source = body.get("action") if self.path == "/exchange" else body
        kind = source.get("type") if isinstance(source, dict) else None
        return kind if isinstance(kind, str) else None


FaultKind = Literal["order_error", "http_error", "top_level_error", "non_json", "hang", "late", "rest_ioc"]
_TRANSPORT_FAULTS = frozenset({"http_error", "top_level_error", "non_json", "hang", "late"})
_ORDER_FAULTS = frozenset({"order_error", "rest_ioc"})


@dataclass
class Fault:
    """A scripted misbehaviour for requests to ``path`` whose type is in ``types`` (None: any type).

    ``remaining`` counts the requests it still affects; None keeps it until ``clear_faults()``.
    ``order_status`` (order_error only) overrides the status the rejected orders are recorded with.
    ``answer`` (late only): answer once processed, or drop the connection.
    """

    kind: FaultKind
    remaining: int | None = 1
    path: str = "/exchange"
    types: frozenset[str] | None = frozenset({"order"})
    message: str = ""
    status: int = 200
    seconds: float = 0.0
    apply: bool = True
    order_status: str | None = None
    answer: bool = True

    def matches(self, path: str, kind: str | None) -> bool:
        return self.path == path and (self.types is None or kind in self.types)


# --- internal state --------------------------------------------------------------------------------


@dataclass
class _Position:
    szi: Decimal
    entry_px: Decimal


@dataclass
class _LeverageSetting:
    value: int
    is_cross: bool = True


AccountRole = Literal["user", "vault", "subAccount"]


@dataclass
class _Account:
    address: str
    usdc: Decimal
    positions: dict[str, _Position] = field(default_factory=dict)
    leverage: dict[str, _LeverageSetting] = field(default_factory=dict)
    fills: list[JsonDict] = field(default_factory=list)  # oldest first
    orders: dict[int, OrderRecord] = field(default_factory=dict)
    cloids: dict[str, int] = field(default_factory=dict)  # every cloid the account used -> its oid
    role: AccountRole = "user"  # vaults and sub-accounts have no key: they never sign
    master: str | None = None  # a sub-account's master account


@dataclass
class _Nonces:
    """One signer's nonces: the exchange keeps the 100 highest; a new one must be above the smallest kept."""

    kept: list[int] = field(default_factory=list)  # a min-heap
    members: set[int] = field(default_factory=set)

    def refusal(self, nonce: int) -> str | None:
        if nonce in self.members:
            return ERR_DUPLICATE_NONCE.format(nonce=nonce)
        if len(self.kept) >= NONCES_KEPT and nonce <= self.kept[0]:
            return ERR_NONCE_TOO_LOW.format(nonce=nonce, smallest=self.kept[0])
        return None

    def add(self, nonce: int) -> None:
        heapq.heappush(self.kept, nonce)
        self.members.add(nonce)
        if len(self.kept) > NONCES_KEPT:
            self.members.discard(heapq.heappop(self.kept))


@dataclass(frozen=True)
class _OrderWire:
    asset: int
    is_buy: bool
    px: Decimal
    sz: Decimal
    reduce_only: bool
    tif: str | None  # None for a trigger order
    cloid: str | None


@dataclass(frozen=True)
class _Reply:
    status: int
    payload: Any = None
    text: str | None = None
    content_type: str = "application/json"
    delay: float = 0.0
    drop: bool = False
    body: bytes = b""  # filled in by FakeHyperliquid._handle, under the lock
    # A late fault: the handler calls it, and it waits ``delay`` (cut short by stop() or reset()), then
    # processes the request and returns what to send. Until then nothing was processed.
    deferred: Callable[[], _Reply] | None = None

    def encode(self) -> bytes:
        return (self.text if self.text is not None else json.dumps(self.payload)).encode()

    @property
    def recorded(self) -> Any:
        return self.text if self.text is not None else self.payload


@dataclass
class _Context:
    signer: str | None = None
    user: str | None = None
    processed_at: int | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeHyperliquid, host: str) -> None:
        super().__init__((host, 0), _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers after stop()

    def do_POST(self) -> None:
        fake = cast(_Server, self.server).fake
        length = int(self.headers.get("Content-Length") or 0)
        reply = fake._handle(self.path, self.rfile.read(length))
        if reply.deferred is not None:  # a late request: hold it, then process it (unless released)
            reply = reply.deferred()
        elif reply.delay:
            fake._stopping.wait(reply.delay)
        if reply.drop:
            return  # the connection closes with no answer at all
        self._send(reply)

    def do_GET(self) -> None:
        self._send(_Reply(405, content_type="text/plain", body=b"Method Not Allowed"))

    def _send(self, reply: _Reply) -> None:
        body = reply.body
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. its timeout fired during a hang)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet


# --- the fake --------------------------------------------------------------------------------------


class FakeHyperliquid:
    """The fake exchange. Use as a context manager, or call ``start()`` and ``stop()``."""

    def __init__(
        self,
        *,
        source: Literal["a", "b"] = "b",
        universe: Sequence[Asset] | None = None,
        mids: Mapping[str, Number] | None = None,
        default_leverage: int = 20,
        taker_fee_rate: Number = 0,
        clock: Callable[[], int] = _now_ms,
        host: str = "127.0.0.1",
    ) -> None:
        """``source`` "b" accepts the testnet-style signatures the SDK makes for any non-mainnet URL.

        ``universe`` and ``mids`` default to the recorded mainnet ``meta`` and ``allMids``;
        ``clock`` gives "now" in milliseconds (nonce window, expiresAfter, timestamps).
        """
        self.source = source
        self.default_leverage = default_leverage
        self.taker_fee_rate = _dec(taker_fee_rate)
        self._base_clock = clock
        self._clock_offset_ms = 0
        self._host = host
        if universe is None:
            universe = [
                Asset(a["name"], int(a["szDecimals"]), int(a["maxLeverage"]))
                for a in load_fixture("meta.json")["universe"]
            ]
        self._initial_universe = list(universe)
        self._initial_mids = {c: _dec(p) for c, p in (mids or load_fixture("all_mids.json")).items()}
        self._lock = threading.RLock()
        self._late_done = threading.Condition(self._lock)
        self._held = 0  # late requests being held back (not reset: their threads still run)
        self._generation = 0  # bumped by reset(): a late request held across it is released, not run
        self._release = threading.Event()  # set by stop() and reset(): held late requests give up waiting
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._info_handlers: dict[str, Callable[[JsonDict], Any]] = {
            "meta": self._info_meta,
            "spotMeta": self._info_spot_meta,
            "allMids": self._info_all_mids,
            "clearinghouseState": self._info_clearinghouse_state,
            "orderStatus": self._info_order_status,
            "userFills": self._info_user_fills,
            "userFillsByTime": self._info_user_fills_by_time,
            "openOrders": self._info_open_orders,
            "frontendOpenOrders": self._info_frontend_open_orders,
            "historicalOrders": self._info_historical_orders,
            "l2Book": self._info_l2_book,
            "userRole": self._info_user_role,
        }
        self._action_handlers: dict[str, Callable[[_Account, JsonDict, int], JsonDict]] = {
            "order": self._action_order,
            "updateLeverage": self._action_update_leverage,
            "cancel": self._action_cancel,
            "cancelByCloid": self._action_cancel_by_cloid,
        }
        self.reset()

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind a free port on 127.0.0.1 and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("already started")
        self._stopping.clear()
        self._release = threading.Event()
        self._server = _Server(self, self._host)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving. Hung and late requests are released at once (they wait on an Event).

        A late request released this way is dropped unprocessed: the exchange never sees it.
        """
        self._stopping.set()
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.wait_late(timeout=1)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, to pass as the SDK's ``base_url``."""
        if self._server is None:
            raise RuntimeError("not started")
        return f"http://{self._host}:{self._server.server_port}"

    def reset(self) -> None:
        """Forget accounts, agents, nonces, orders, fills, faults and recorded requests; restore the mids.

        Late requests still held are released unprocessed.
        """
        with self._lock:
            self._clock_offset_ms = 0
            self._generation += 1
            self._release.set()
            self._release = threading.Event()
            self._universe: list[Asset] = list(self._initial_universe)
            self._mids: dict[str, Decimal] = dict(self._initial_mids)
            self._liquidity: dict[str, Decimal] = {}
            self._accounts: dict[str, _Account] = {}
            self._agents: dict[str, str] = {}
            self._nonces: dict[str, _Nonces] = {}
            self._faults: list[Fault] = []
            self._requests: list[RecordedRequest] = []
            self._internal_errors: list[str] = []
            self._next_oid = 1_000_000
            self._next_tid = 5_000_000

    # -- market set-up ------------------------------------------------------------------------------

    def add_asset(
        self, name: str, sz_decimals: int, max_leverage: int = 50, mid: Number | None = None
    ) -> int:
        """Append a perpetual to the universe (build Info/Exchange afterwards); returns its asset id."""
        with self._lock:
            self._universe.append(Asset(name, sz_decimals, max_leverage))
            if mid is not None:
                self._mids[name] = _dec(mid)
            return len(self._universe) - 1

    def set_mid(self, coin: str, px: Number) -> None:
        """Set the mid price of a coin (the price every crossing order fills at)."""
        with self._lock:
            self._mids[coin] = _dec(px)

    def set_mids(self, mids: Mapping[str, Number]) -> None:
        with self._lock:
            self._mids.update({coin: _dec(px) for coin, px in mids.items()})

    def mid(self, coin: str) -> Decimal:
        with self._lock:
            return self._mids[coin]

    def set_liquidity(self, coin: str, max_size: Number | None) -> None:
        """Cap the size one order can fill in ``coin`` (None: unlimited). The rest of an IOC is canceled."""
        with self._lock:
            if max_size is None:
                self._liquidity.pop(coin, None)
            else:
                self._liquidity[coin] = _dec(max_size)

    # -- accounts -----------------------------------------------------------------------------------

    def add_account(
        self, address: str | None = None, account_value: Number = 0, *, key: str | None = None
    ) -> str:
        """Register an account that signs for itself, with ``account_value`` USDC deposited.

        Give its address, or its private ``key`` (the address is derived), or both (they must agree).
        Returns the lower-case address.
        """
        if key is not None:
            derived = _address(Account.from_key(key).address)
            if address is not None and _address(address) != derived:
                raise ValueError("address does not match key")
            address = derived
        if address is None:
            raise ValueError("give an address or a key")
        addr = _address(address)
        with self._lock:
            self._accounts[addr] = _Account(addr, _dec(account_value))
        return addr

    def add_agent(self, agent_address: str, main_address: str) -> None:
        """Approve an agent (API) wallet: its signatures act for ``main_address``.

        ``main_address`` must be an account added with ``add_account`` (KeyError otherwise); a vault or a
        sub-account cannot approve agents (ValueError).
        """
        main = _address(main_address)
        with self._lock:
            account = self._accounts.get(main)
            if account is None:
                raise KeyError(f"unknown main account {main_address}")
            if account.role != "user":
                raise ValueError(f"{main_address} is a {account.role}: it cannot approve agents")
            self._agents[_address(agent_address)] = main

    def add_vault(self, address: str, account_value: Number = 0) -> str:
        """Register a vault: its state can be read (clearinghouseState, userRole ``vault``), it cannot sign.

        Trading for a vault (``vaultAddress`` on /exchange) is not emulated. Returns the lower-case address.
        """
        addr = _address(address)
        with self._lock:
            self._accounts[addr] = _Account(addr, _dec(account_value), role="vault")
        return addr

    def add_sub_account(self, sub_address: str, master_address: str, account_value: Number = 0) -> str:
        """Register a sub-account of ``master_address`` (an ``add_account`` account, KeyError otherwise).

        Like a vault it has state but no key: userRole answers ``subAccount`` with its master; trading it
        (``vaultAddress``) is not emulated. Returns the lower-case sub-account address.
        """
        sub, master = _address(sub_address), _address(master_address)
        with self._lock:
            owner = self._accounts.get(master)
            if owner is None or owner.role != "user":
                raise KeyError(f"unknown master account {master_address}")
            self._accounts[sub] = _Account(sub, _dec(account_value), role="subAccount", master=master)
        return sub

    def deposit(self, address: str, amount: Number) -> None:
        """Add (or with a negative amount, remove) USDC."""
        with self._lock:
            self._account(address).usdc += _dec(amount)

    def set_position(self, address: str, coin: str, szi: Number, entry_px: Number) -> None:
        """Seed a position (signed size; 0 removes it). Its PnL counts at the current mid."""
        with self._lock:
            account = self._account(address)
            size = _dec(szi)
            if size == 0:
                account.positions.pop(coin, None)
            else:
                account.positions[coin] = _Position(size, _dec(entry_px))

    def set_leverage(self, address: str, coin: str, leverage: int, *, is_cross: bool = True) -> None:
        """Seed the leverage of a coin for a user, as ``updateLeverage`` would."""
        with self._lock:
            self._account(address).leverage[coin] = _LeverageSetting(leverage, is_cross)

    # -- inspection ---------------------------------------------------------------------------------

    def positions(self, address: str) -> dict[str, PositionView]:
        """The user's open positions by coin."""
        with self._lock:
            account = self._account(address)
            return {
                coin: PositionView(coin, pos.szi, pos.entry_px, *self._leverage_of(account, coin))
                for coin, pos in account.positions.items()
            }

    def account_value(self, address: str) -> Decimal:
        """Deposited USDC (plus realised PnL, minus fees) plus unrealised PnL at the current mids."""
        with self._lock:
            return self._summary(self._account(address))["accountValue"]

    def usdc(self, address: str) -> Decimal:
        with self._lock:
            return self._account(address).usdc

    def leverage(self, address: str, coin: str) -> int:
        with self._lock:
            return self._leverage_of(self._account(address), coin)[0]

    def fills(self, address: str) -> list[JsonDict]:
        """The user's fills, newest first, as ``userFills`` serves them."""
        with self._lock:
            return copy.deepcopy(self._account(address).fills[::-1])

    def orders(self, address: str) -> list[OrderRecord]:
        """Every order of the user (open, filled, canceled or rejected), oldest first."""
        with self._lock:
            return [replace(order) for order in self._account(address).orders.values()]

    def order_status(self, address: str, oid_or_cloid: int | str) -> str | None:
        """The status string of an order, or None when the fake does not know it."""
        with self._lock:
            account = self._accounts.get(_address(address))
            order = self._find_order(account, oid_or_cloid) if account else None
            return order.status if order else None

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def exchange_requests(self, action_type: str | None = None) -> list[RecordedRequest]:
        """/exchange requests, optionally only those whose action has this ``type``."""
        return [
            r
            for r in self.requests
            if r.path == "/exchange" and (action_type is None or r.type == action_type)
        ]

    def order_requests(self) -> list[RecordedRequest]:
        """/exchange requests carrying an ``order`` action (faulted ones included)."""
        return self.exchange_requests("order")

    def info_requests(self, info_type: str | None = None) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/info" and (info_type is None or r.type == info_type)]

    def count(self, action_type: str) -> int:
        """How many /exchange requests with this action type arrived (``"order"``, ``"updateLeverage"``)."""
        return len(self.exchange_requests(action_type))

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    @property
    def internal_errors(self) -> list[str]:
        """Unexpected exceptions inside the fake (each also answered HTTP 500); should stay empty."""
        with self._lock:
            return list(self._internal_errors)

    def _clock(self) -> int:
        return self._base_clock() + self._clock_offset_ms

    def now_ms(self) -> int:
        """The exchange's "now" in milliseconds."""
        return self._clock()

    def advance_clock(self, seconds: float) -> None:
        """Move the exchange's "now" forward (expiresAfter, the nonce window and timestamps see it)."""
        with self._lock:
            self._clock_offset_ms += int(seconds * 1000)

    def wait_late(self, timeout: float = 5.0) -> bool:
        """Block until no request is held by a ``late`` fault (each processed, or released by stop/reset).

        Returns False if some are still held after ``timeout`` seconds.
        """
        with self._late_done:
            return self._late_done.wait_for(lambda: self._held == 0, timeout)

    # -- fault injection ----------------------------------------------------------------------------

    def inject(self, fault: Fault) -> Fault:
        """Queue a fault. The first queued fault that matches a request fires and uses up one count."""
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def fail_orders(self, message: str, *, times: int | None = 1, status: str | None = None) -> Fault:
        """Answer every order of the next order requests with ``{"error": message}``; nothing is placed.

        ``{asset}`` in ``message`` is replaced by the order's asset id, e.g.
        ``"Insufficient margin to place order. asset={asset}"``. The request is still authenticated (and
        its nonce used). Like the exchange, each refused order is kept with a rejection status that
        orderStatus (by oid or cloid) and historicalOrders report and its cloid counts as used: ``status``
        when given, else ``rejection_status(message)`` (REJECTION_STATUSES: e.g. "perpMarginRejected",
        "iocCancelRejected", "rejected" for an unknown sentence). Sentences the exchange answers before an
        order gets an oid (invalid size, zero size, unknown asset, duplicate cloid) leave no record. An
        order for an unknown asset or with an already used cloid gets that error instead of ``message``.
        """
        return self.inject(Fault("order_error", times, message=message, order_status=status))

    def http_error(
        self,
        status: int,
        body: str | None = None,
        *,
        times: int | None = 1,
        path: str = "/exchange",
        types: Iterable[str] | None = ("order",),
    ) -> Fault:
        """Answer with HTTP ``status`` and a plain-text body (429 -> ClientError, 5xx -> ServerError)."""
        text = body if body is not None else f"fake HTTP {status}"
        return self.inject(Fault("http_error", times, path, _types(types), message=text, status=status))

    def reject_requests(
        self, message: str, *, times: int | None = 1, types: Iterable[str] | None = ("order",)
    ) -> Fault:
        """Answer 200 ``{"status": "err", "response": message}`` without looking at the request."""
        return self.inject(Fault("top_level_error", times, "/exchange", _types(types), message=message))

    def fail_update_leverage(
        self, message: str = "Leverage update rejected by the fake", *, times: int | None = 1
    ) -> Fault:
        """Make the next ``updateLeverage`` requests fail with a top-level err."""
        return self.reject_requests(message, times=times, types=("updateLeverage",))

    def non_json(
        self,
        body: str = "<html><body>502 Bad Gateway</body></html>",
        *,
        times: int | None = 1,
        path: str = "/exchange",
        types: Iterable[str] | None = ("order",),
    ) -> Fault:
        """Answer HTTP 200 with a non-JSON body; the SDK returns ``{"error": "Could not parse JSON: …"}``."""
        return self.inject(Fault("non_json", times, path, _types(types), message=body))

    def hang(
        self,
        seconds: float,
        *,
        apply: bool,
        times: int | None = 1,
        path: str = "/exchange",
        types: Iterable[str] | None = ("order",),
    ) -> Fault:
        """Hold the answer back for ``seconds`` (use more than the client's timeout).

        ``apply=True``: the request is processed first (the order is placed/filled, the nonce used) and
        the answer is sent late, to a client that has probably given up. ``apply=False``: the request is
        dropped unprocessed and the connection is closed with no answer after the delay. To have the
        request processed only *after* the delay, use ``late()``.
        """
        return self.inject(Fault("hang", times, path, _types(types), seconds=seconds, apply=apply))

    def late(
        self,
        seconds: float,
        *,
        answer: bool = False,
        times: int | None = 1,
        types: Iterable[str] | None = ("order",),
    ) -> Fault:
        """Hold the next /exchange requests of these action types for ``seconds``, THEN process them.

        The request reaches the exchange after the client (whose timeout is shorter) gave up: it is
        authenticated and applied only after the delay, against the fake's clock at that moment, so an
        ``expiresAfter`` that has passed by then refuses it (``Action already expired``, nothing placed),
        and the nonce window, nonce set and cloids are those of that moment. Then it answers
        (``answer=True``) or drops the connection (``answer=False``). Until processed the request is
        recorded with status 0 and ``processed_at`` None; afterwards with what it answered (or, dropped,
        what it would have answered) and ``processed_at``. ``wait_late()`` blocks until it is processed;
        ``stop()`` and ``reset()`` release it at once, unprocessed.
        """
        return self.inject(
            Fault("late", times, "/exchange", _types(types), seconds=seconds, answer=answer, apply=False)
        )

    def rest_ioc(self, *, times: int | None = 1) -> Fault:
        """Let the IOC orders of the next order requests rest (``{"resting": …}``, status open), not fill."""
        return self.inject(Fault("rest_ioc", times))

    # -- request handling ---------------------------------------------------------------------------

    def _handle(self, path: str, raw: bytes) -> _Reply:
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        context = _Context()
        with self._lock:
            reply = self._guarded(lambda: self._route(path, body, context))
            if reply.deferred is not None:
                return self._hold(path, body, context, reply)
            reply = replace(reply, body=reply.encode())
            self._requests.append(
                RecordedRequest(
                    path=path,
                    body=body,
                    status=0 if reply.drop else reply.status,
                    response=None if reply.drop else reply.recorded,
                    signer=context.signer,
                    user=context.user,
                    delay=reply.delay,
                    processed_at=context.processed_at,
                )
            )
        return reply

    def _route(self, path: str, body: Any, context: _Context) -> _Reply:
        routes: dict[str, Callable[[JsonDict, _Context], _Reply]] = {
            "/info": self._route_info,
            "/exchange": self._route_exchange,
        }
        route = routes.get(path)
        if route is None:
            return _Reply(404, text="Not Found", content_type="text/plain")
        if not isinstance(body, dict):
            return _Reply(422, text=ERR_DESERIALIZE, content_type="text/plain")
        return route(body, context)

    def _guarded(self, run: Callable[[], _Reply]) -> _Reply:
        try:
            return run()
        except _BadRequest:
            return _Reply(422, text=ERR_DESERIALIZE, content_type="text/plain")
        except Exception as exc:  # a bug in the fake: answer 500 and keep it for the test to see
            self._internal_errors.append(repr(exc))
            return _Reply(500, text=f"fake internal error: {exc!r}", content_type="text/plain")

    def _hold(self, path: str, body: Any, context: _Context, reply: _Reply) -> _Reply:
        """Record a late request as not yet processed; the handler thread runs ``finish`` after the delay."""
        process, answer, generation = reply.deferred, not reply.drop, self._generation
        assert process is not None
        release, delay = self._release, reply.delay
        placeholder = RecordedRequest(path=path, body=body, status=0, response=None, delay=delay)
        self._requests.append(placeholder)
        self._held += 1

        def finish() -> _Reply:
            released = release.wait(delay)
            with self._lock:
                try:
                    if released or self._stopping.is_set() or generation != self._generation:
                        return _Reply(0, drop=True)  # released: the exchange never sees it
                    late = self._guarded(process)
                    late = replace(late, body=late.encode(), drop=not answer)
                    final = replace(
                        placeholder,
                        status=late.status if answer else 0,
                        response=late.recorded,
                        signer=context.signer,
                        user=context.user,
                        processed_at=context.processed_at,
                    )
                    for index, recorded in enumerate(self._requests):
                        if recorded is placeholder:
                            self._requests[index] = final
                    return late
                finally:
                    self._held -= 1
                    self._late_done.notify_all()

        return replace(reply, deferred=finish)

    def _take_fault(self, path: str, kind: str | None, kinds: frozenset[str]) -> Fault | None:
        for fault in self._faults:
            if fault.kind in kinds and fault.matches(path, kind):
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    def _with_transport_fault(self, path: str, kind: str | None, process: Callable[[], _Reply]) -> _Reply:
        fault = self._take_fault(path, kind, _TRANSPORT_FAULTS)
        if fault is None:
            return process()
        if fault.kind == "http_error":
            return _Reply(fault.status, text=fault.message, content_type="text/plain")
        if fault.kind == "non_json":
            return _Reply(200, text=fault.message, content_type="text/html")
        if fault.kind == "top_level_error":
            return _Reply(200, payload=_err(fault.message))
        if fault.kind == "late":  # processed only after the delay, by _hold's finish
            return _Reply(0, delay=fault.seconds, drop=not fault.answer, deferred=process)
        if fault.apply:  # hang, request applied
            return replace(process(), delay=fault.seconds)
        return _Reply(0, delay=fault.seconds, drop=True)  # hang, request dropped

    def _route_info(self, body: JsonDict, context: _Context) -> _Reply:
        kind = body.get("type")
        handler = self._info_handlers.get(kind) if isinstance(kind, str) else None
        if handler is None:
            return _Reply(422, text=ERR_DESERIALIZE, content_type="text/plain")

        def process() -> _Reply:
            now = self._clock()
            reply = _Reply(200, payload=handler(body))
            context.processed_at = now
            return reply

        return self._with_transport_fault("/info", kind, process)

    def _route_exchange(self, body: JsonDict, context: _Context) -> _Reply:
        action = body.get("action")
        if not isinstance(action, dict) or not isinstance(action.get("type"), str):
            raise _BadRequest

        def process() -> _Reply:
            now = self._clock()  # for a late request: the time it is finally processed
            reply = _Reply(200, payload=self._exchange(body, action, context, now))
            context.processed_at = now
            return reply

        return self._with_transport_fault("/exchange", action["type"], process)

    def _exchange(self, body: JsonDict, action: JsonDict, context: _Context, now: int) -> JsonDict:
        nonce, signature = body.get("nonce"), body.get("signature")
        vault, expires = body.get("vaultAddress"), body.get("expiresAfter")
        if not isinstance(nonce, int) or not isinstance(signature, dict):
            raise _BadRequest
        if not (vault is None or isinstance(vault, str)) or not (expires is None or isinstance(expires, int)):
            raise _BadRequest
        try:
            signer = recover_l1_signer(
                action, nonce, signature, vault_address=vault, expires_after=expires, source=self.source
            )
        except Exception:  # malformed r/s/v, an unencodable action...: the exchange refuses the signature
            return _err(ERR_BAD_SIGNATURE)
        context.signer = signer
        own = self._accounts.get(signer)
        user = signer if own is not None and own.role == "user" else self._agents.get(signer)
        if user is None:  # vaults and sub-accounts have no key: they never sign
            return _err(ERR_UNKNOWN_SIGNER.format(address=signer))
        context.user = user
        if expires is not None and expires < now:
            return _err(ERR_EXPIRED)
        used = self._nonces.setdefault(signer, _Nonces())
        refusal = used.refusal(nonce)
        if refusal is not None:
            return _err(refusal)
        if not now - NONCE_PAST_MS < nonce < now + NONCE_FUTURE_MS:
            return _err(ERR_NONCE_WINDOW.format(nonce=nonce))
        if vault is not None:
            return _err(ERR_VAULT)
        handler = self._action_handlers.get(action["type"])
        if handler is None:
            return _err(ERR_UNSUPPORTED)
        result = handler(self._accounts[user], action, now)
        used.add(nonce)
        return result

    # -- /info --------------------------------------------------------------------------------------

    def _info_meta(self, body: JsonDict) -> JsonDict:
        return {"universe": [asset.to_json() for asset in self._universe]}

    def _info_user_role(self, body: JsonDict) -> JsonDict:
        # Shapes from the exchange's docs; the recorded cassette shows {"role": "vault"}.
        user = _user_of(body)
        if user in self._agents:
            return {"role": "agent", "data": {"user": self._agents[user]}}
        account = self._accounts.get(user)
        if account is None:
            return {"role": "missing"}
        if account.role == "subAccount":
            return {"role": "subAccount", "data": {"master": account.master}}
        return {"role": account.role}

    def _info_spot_meta(self, body: JsonDict) -> JsonDict:
        return {"universe": [], "tokens": []}

    def _info_all_mids(self, body: JsonDict) -> dict[str, str]:
        return {coin: format(px, "f") for coin, px in sorted(self._mids.items())}

    def _info_clearinghouse_state(self, body: JsonDict) -> JsonDict:
        account = self._accounts.get(_user_of(body)) or _Account("", Decimal(0))
        summary = self._summary(account)
        money = {
            k: _usd(summary[k]) for k in ("accountValue", "totalNtlPos", "totalRawUsd", "totalMarginUsed")
        }
        return {
            "marginSummary": money,
            "crossMarginSummary": dict(money),
            "crossMaintenanceMarginUsed": _usd(summary["maintenance"]),
            "withdrawable": _usd(max(Decimal(0), summary["accountValue"] - summary["totalMarginUsed"])),
            "assetPositions": [
                {"type": "oneWay", "position": self._position_json(account, coin, pos)}
                for coin, pos in account.positions.items()
            ],
            "time": self._clock(),
        }

    def _info_order_status(self, body: JsonDict) -> JsonDict:
        account = self._accounts.get(_user_of(body))
        oid = body.get("oid")
        if not isinstance(oid, int | str):
            raise _BadRequest
        order = self._find_order(account, oid) if account else None
        if order is None:
            return {"status": "unknownOid"}
        return {"status": "order", "order": order.status_json()}

    def _info_user_fills(self, body: JsonDict) -> list[JsonDict]:
        account = self._accounts.get(_user_of(body))
        return account.fills[::-1] if account else []

    def _info_user_fills_by_time(self, body: JsonDict) -> list[JsonDict]:
        start, end = body.get("startTime"), body.get("endTime")
        if not isinstance(start, int) or not (end is None or isinstance(end, int)):
            raise _BadRequest
        return [
            f for f in self._info_user_fills(body) if start <= f["time"] and (end is None or f["time"] <= end)
        ]

    def _open_orders(self, body: JsonDict) -> list[OrderRecord]:
        account = self._accounts.get(_user_of(body))
        orders = account.orders.values() if account else []
        return [o for o in reversed(list(orders)) if o.status == "open"]

    def _info_open_orders(self, body: JsonDict) -> list[JsonDict]:
        return [
            {k: o.order_json()[k] for k in ("coin", "limitPx", "oid", "side", "sz", "timestamp")}
            for o in self._open_orders(body)
        ]

    def _info_frontend_open_orders(self, body: JsonDict) -> list[JsonDict]:
        return [o.order_json() for o in self._open_orders(body)]

    def _info_historical_orders(self, body: JsonDict) -> list[JsonDict]:
        account = self._accounts.get(_user_of(body))
        return [o.status_json() for o in reversed(list(account.orders.values()))] if account else []

    def _info_l2_book(self, body: JsonDict) -> JsonDict:
        coin = body.get("coin")
        if not isinstance(coin, str):
            raise _BadRequest
        mid = self._mids.get(coin)
        size = self._liquidity.get(coin, Decimal(1_000_000))
        level = [{"px": _fmt(mid), "sz": _fmt(size), "n": 1}] if mid is not None else []
        return {"coin": coin, "time": self._clock(), "levels": [level, list(level)]}

    # -- /exchange actions --------------------------------------------------------------------------

    def _action_order(self, account: _Account, action: JsonDict, now: int) -> JsonDict:
        raw_orders = action.get("orders")
        if not isinstance(raw_orders, list):
            raise _BadRequest
        wires = [_parse_order(raw) for raw in raw_orders]
        fault = self._take_fault("/exchange", "order", _ORDER_FAULTS)
        if fault is not None and fault.kind == "order_error":
            statuses = [self._reject_injected(account, w, fault, now) for w in wires]
        else:
            statuses = [self._place(account, w, now, rest_ioc=fault is not None) for w in wires]
        return _ok({"type": "order", "data": {"statuses": statuses}})

    def _action_update_leverage(self, account: _Account, action: JsonDict, now: int) -> JsonDict:
        asset_id, leverage, is_cross = action.get("asset"), action.get("leverage"), action.get("isCross")
        if not isinstance(asset_id, int) or not isinstance(leverage, int) or not isinstance(is_cross, bool):
            raise _BadRequest
        asset = self._asset(asset_id)
        if asset is None:
            return _err(f"{ORDER_UNKNOWN_ASSET} asset={asset_id}")
        if not 1 <= leverage <= asset.max_leverage:
            return _err(ERR_LEVERAGE)
        if asset.name in account.positions and is_cross != self._leverage_of(account, asset.name)[1]:
            return _err(ERR_SWITCH_MARGIN_MODE)
        account.leverage[asset.name] = _LeverageSetting(leverage, is_cross)
        return _ok({"type": "default"})

    def _action_cancel(self, account: _Account, action: JsonDict, now: int) -> JsonDict:
        cancels = action.get("cancels")
        if not isinstance(cancels, list):
            raise _BadRequest
        statuses = [self._cancel(account, _field(c, "a", int), _field(c, "o", int), now) for c in cancels]
        return _ok({"type": "cancel", "data": {"statuses": statuses}})

    def _action_cancel_by_cloid(self, account: _Account, action: JsonDict, now: int) -> JsonDict:
        cancels = action.get("cancels")
        if not isinstance(cancels, list):
            raise _BadRequest
        statuses = [
            self._cancel(account, _field(c, "asset", int), _field(c, "cloid", str), now) for c in cancels
        ]
        return _ok({"type": "cancel", "data": {"statuses": statuses}})

    def _cancel(self, account: _Account, asset_id: int, oid: int | str, now: int) -> Any:
        order = self._find_order(account, oid)
        if order is None or order.asset != asset_id or order.status != "open":
            return {"error": f"{CANCEL_MISSING} asset={asset_id}"}
        order.status, order.status_timestamp = "canceled", now
        return "success"

    # -- order placement ----------------------------------------------------------------------------

    def _reject_injected(self, account: _Account, wire: _OrderWire, fault: Fault, now: int) -> JsonDict:
        """A ``fail_orders`` answer for one order, kept as a rejected order unless it never gets an oid."""
        asset = self._asset(wire.asset)
        suffix = f" asset={wire.asset}"
        if asset is None:
            return {"error": ORDER_UNKNOWN_ASSET + suffix}
        if wire.cloid is not None and wire.cloid in account.cloids:
            return {"error": ORDER_DUPLICATE_CLOID.format(cloid=wire.cloid) + suffix}
        message = fault.message.replace("{asset}", str(wire.asset))
        status = fault.order_status or rejection_status(message)
        if status is not None:
            self._new_order(account, asset, wire, now).status = status
        return {"error": message}

    def _place(self, account: _Account, wire: _OrderWire, now: int, *, rest_ioc: bool) -> JsonDict:
        """Validate one order, then fill it at the mid, rest it, or reject it; returns its status entry."""
        asset = self._asset(wire.asset)
        suffix = f" asset={wire.asset}"
        if asset is None:
            return {"error": ORDER_UNKNOWN_ASSET + suffix}
        if wire.cloid is not None and wire.cloid in account.cloids:  # any earlier order, in any state
            return {"error": ORDER_DUPLICATE_CLOID.format(cloid=wire.cloid) + suffix}
        if wire.tif is None:
            return {"error": ORDER_TRIGGER + suffix}
        if not _valid_size(wire.sz, asset.sz_decimals):
            return {"error": ORDER_INVALID_SIZE + suffix}
        if wire.sz == 0:
            return {"error": ORDER_ZERO_SIZE + suffix}
        order = self._new_order(account, asset, wire, now)

        def reject(status: str, message: str) -> JsonDict:
            order.status = status
            return {"error": message + suffix}

        if not _valid_price(wire.px, asset.sz_decimals):
            return reject("tickRejected", ORDER_TICK)
        if not wire.reduce_only and wire.sz * wire.px < MIN_NOTIONAL:
            return reject("minTradeNtlRejected", ORDER_MIN_NOTIONAL)
        position = account.positions.get(asset.name)
        if wire.reduce_only:
            if position is None or (position.szi > 0) == wire.is_buy:
                return reject("reduceOnlyRejected", ORDER_REDUCE_ONLY)
            order.sz = min(wire.sz, abs(position.szi))  # never more than closes the position
        mid = self._mids.get(asset.name)
        crosses = mid is not None and (wire.px >= mid if wire.is_buy else wire.px <= mid)
        if wire.tif == "Alo" and crosses:
            return reject("badAloPxRejected", ORDER_BAD_ALO.format(bbo=f"{mid}@{mid}"))
        exec_px = mid if crosses and mid is not None else wire.px
        if self._required_margin(account, asset, wire.is_buy, order.sz, exec_px) > self._free_margin(account):
            return reject("perpMarginRejected", ORDER_MARGIN)
        if wire.tif == "Ioc" and not crosses:
            return reject("iocCancelRejected", ORDER_IOC_CANCEL)
        if not crosses or mid is None or (rest_ioc and wire.tif == "Ioc"):
            return self._rest(order)
        fill_sz = min(order.sz, self._liquidity.get(asset.name, order.sz))
        if fill_sz <= 0:
            if wire.tif == "Ioc":
                return reject("iocCancelRejected", ORDER_IOC_CANCEL)
            return self._rest(order)
        self._fill(account, order, fill_sz, mid, now)
        if order.sz > 0 and wire.tif == "Gtc":
            return self._rest(order)
        order.status = "filled" if order.sz == 0 else "canceled"  # an IOC's unfilled rest is canceled
        order.status_timestamp = now
        filled = {"totalSz": _fmt(fill_sz), "avgPx": _fmt(mid), "oid": order.oid}
        return {"filled": filled | ({"cloid": order.cloid} if order.cloid else {})}

    def _new_order(self, account: _Account, asset: Asset, wire: _OrderWire, now: int) -> OrderRecord:
        self._next_oid += 1
        order = OrderRecord(
            user=account.address,
            coin=asset.name,
            asset=wire.asset,
            is_buy=wire.is_buy,
            limit_px=wire.px,
            orig_sz=wire.sz,
            sz=wire.sz,
            oid=self._next_oid,
            timestamp=now,
            tif=wire.tif or "Gtc",
            reduce_only=wire.reduce_only,
            cloid=wire.cloid,
            status_timestamp=now,
        )
        account.orders[order.oid] = order
        if wire.cloid is not None:
            account.cloids[wire.cloid] = order.oid
        return order

    @staticmethod
    def _rest(order: OrderRecord) -> JsonDict:
        order.status = "open"
        return {"resting": {"oid": order.oid} | ({"cloid": order.cloid} if order.cloid else {})}

    def _fill(self, account: _Account, order: OrderRecord, size: Decimal, px: Decimal, now: int) -> None:
        position = account.positions.get(order.coin) or _Position(Decimal(0), Decimal(0))
        start, entry = position.szi, position.entry_px
        signed = size if order.is_buy else -size
        closing = start != 0 and (start > 0) != order.is_buy
        closed = min(abs(start), size) if closing else Decimal(0)
        closed_pnl = closed * (px - entry) * (1 if start > 0 else -1)
        new = start + signed
        if new == 0:
            account.positions.pop(order.coin, None)
        elif not closing:
            account.positions[order.coin] = _Position(new, (abs(start) * entry + size * px) / abs(new))
        elif size > closed:  # flipped: the new side opens at the fill price
            account.positions[order.coin] = _Position(new, px)
        else:
            account.positions[order.coin] = _Position(new, entry)
        fee = size * px * self.taker_fee_rate
        account.usdc += closed_pnl - fee
        order.sz -= size
        self._next_tid += 1
        digest = keccak(text=f"{account.address}:{order.oid}:{self._next_tid}").hex()
        fill: JsonDict = {
            "coin": order.coin,
            "px": _fmt(px),
            "sz": _fmt(size),
            "side": "B" if order.is_buy else "A",
            "time": now,
            "startPosition": _fmt(start),
            "dir": _direction(start, new, order.is_buy),
            "closedPnl": _usd(closed_pnl),
            "hash": "0x" + digest.removeprefix("0x"),
            "oid": order.oid,
            "crossed": True,
            "fee": _usd(fee),
            "tid": self._next_tid,
            "feeToken": "USDC",
        }
        if order.cloid is not None:
            fill["cloid"] = order.cloid
        account.fills.append(fill)

    # -- margin and accounting ----------------------------------------------------------------------

    def _leverage_of(self, account: _Account, coin: str) -> tuple[int, bool]:
        setting = account.leverage.get(coin)
        if setting is not None:
            return setting.value, setting.is_cross
        asset = next((a for a in self._universe if a.name == coin), None)
        cap = asset.max_leverage if asset else self.default_leverage
        return min(self.default_leverage, cap), True

    def _mark(self, coin: str, fallback: Decimal) -> Decimal:
        return self._mids.get(coin, fallback)

    def _summary(self, account: _Account) -> dict[str, Decimal]:
        value, ntl, raw, margin, maintenance = account.usdc, Decimal(0), account.usdc, Decimal(0), Decimal(0)
        for coin, pos in account.positions.items():
            mark = self._mark(coin, pos.entry_px)
            notional = abs(pos.szi) * mark
            value += pos.szi * (mark - pos.entry_px)
            ntl += notional
            raw -= pos.szi * pos.entry_px
            margin += notional / self._leverage_of(account, coin)[0]
            maintenance += notional / (2 * self._max_leverage(coin))
        return {
            "accountValue": value,
            "totalNtlPos": ntl,
            "totalRawUsd": raw,
            "totalMarginUsed": margin,
            "maintenance": maintenance,
        }

    def _max_leverage(self, coin: str) -> int:
        return next((a.max_leverage for a in self._universe if a.name == coin), self.default_leverage)

    def _free_margin(self, account: _Account) -> Decimal:
        summary = self._summary(account)
        resting = sum(
            (
                o.sz * o.limit_px / self._leverage_of(account, o.coin)[0]
                for o in account.orders.values()
                if o.status == "open" and not o.reduce_only
            ),
            Decimal(0),
        )
        return summary["accountValue"] - summary["totalMarginUsed"] - resting

    def _required_margin(
        self, account: _Account, asset: Asset, is_buy: bool, size: Decimal, px: Decimal
    ) -> Decimal:
        """Initial margin for the part of the order that opens or grows a position."""
        position = account.positions.get(asset.name)
        opening = size
        if position is not None and (position.szi > 0) != is_buy:
            opening = max(Decimal(0), size - abs(position.szi))
        return opening * px / self._leverage_of(account, asset.name)[0]

    def _position_json(self, account: _Account, coin: str, pos: _Position) -> JsonDict:
        mark = self._mark(coin, pos.entry_px)
        leverage, is_cross = self._leverage_of(account, coin)
        value = abs(pos.szi) * mark
        pnl = pos.szi * (mark - pos.entry_px)
        margin = value / leverage
        entry_margin = abs(pos.szi) * pos.entry_px / leverage
        lev_json: JsonDict = {"type": "cross" if is_cross else "isolated", "value": leverage}
        if not is_cross:
            lev_json["rawUsd"] = _usd(margin - pos.szi * pos.entry_px)
        return {
            "coin": coin,
            "szi": _fmt(pos.szi),
            "leverage": lev_json,
            "entryPx": _fmt(pos.entry_px),
            "positionValue": _usd(value),
            "unrealizedPnl": _usd(pnl),
            "returnOnEquity": _fmt(pnl / entry_margin) if entry_margin else "0.0",
            "liquidationPx": None,
            "marginUsed": _usd(margin),
            "maxLeverage": self._max_leverage(coin),
            "cumFunding": {"allTime": "0.0", "sinceOpen": "0.0", "sinceChange": "0.0"},
        }

    # -- lookups ------------------------------------------------------------------------------------

    def _account(self, address: str) -> _Account:
        account = self._accounts.get(_address(address))
        if account is None:
            raise KeyError(f"unknown account {address}")
        return account

    def _asset(self, asset_id: int) -> Asset | None:
        return self._universe[asset_id] if 0 <= asset_id < len(self._universe) else None

    @staticmethod
    def _find_order(account: _Account, oid_or_cloid: int | str) -> OrderRecord | None:
        if isinstance(oid_or_cloid, str):
            oid = account.cloids.get(oid_or_cloid.lower())
            return account.orders.get(oid) if oid is not None else None
        return account.orders.get(oid_or_cloid)


# --- request parsing -------------------------------------------------------------------------------


def _types(types: Iterable[str] | None) -> frozenset[str] | None:
    return None if types is None else frozenset(types)


def _field(obj: Any, key: str, kind: type[T]) -> T:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _BadRequest
    return value


def _user_of(body: JsonDict) -> str:
    user = body.get("user")
    if not isinstance(user, str):
        raise _BadRequest
    try:
        return _address(user)
    except ValueError as exc:
        raise _BadRequest from exc


def _parse_order(raw: Any) -> _OrderWire:
    order_type = _field(raw, "t", dict)
    limit = order_type.get("limit")
    tif = _field(limit, "tif", str) if limit is not None else None
    if tif is not None and tif not in ("Gtc", "Ioc", "Alo"):
        raise _BadRequest
    if limit is None and "trigger" not in order_type:
        raise _BadRequest
    cloid = raw.get("c")
    if cloid is not None and (not isinstance(cloid, str) or len(cloid) != 34 or not cloid.startswith("0x")):
        raise _BadRequest
    try:
        px, sz = Decimal(_field(raw, "p", str)), Decimal(_field(raw, "s", str))
    except InvalidOperation as exc:
        raise _BadRequest from exc
    if not px.is_finite() or not sz.is_finite():
        raise _BadRequest
    return _OrderWire(
        asset=_field(raw, "a", int),
        is_buy=_field(raw, "b", bool),
        px=px,
        sz=sz,
        reduce_only=_field(raw, "r", bool),
        tif=tif,
        cloid=cloid.lower() if cloid else None,
    )


def _direction(start: Decimal, new: Decimal, is_buy: bool) -> str:
    if start == 0 or (start > 0) == is_buy:
        return "Open Long" if is_buy else "Open Short"
    if new != 0 and (new > 0) != (start > 0):
        return "Short > Long" if is_buy else "Long > Short"
    return "Close Short" if is_buy else "Close Long"
