"""Tests of the fake Hyperliquid API (tests/fake_hyperliquid.py), driven through the real SDK.

Every test talks HTTP to a fresh fake on a free loopback port with ``hyperliquid.info.Info`` and
``hyperliquid.exchange.Exchange``; nothing reaches the network. Shapes are compared with the recorded
mainnet responses in tests/fixtures/hyperliquid.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hyperliquid.exchange import Exchange  # type: ignore[import-untyped]
from hyperliquid.info import Info  # type: ignore[import-untyped]
from hyperliquid.utils.error import ClientError, ServerError  # type: ignore[import-untyped]
from hyperliquid.utils.signing import (  # type: ignore[import-untyped]
    get_timestamp_ms,
    recover_agent_or_user_from_l1_action,
    sign_l1_action,
)
from hyperliquid.utils.types import Cloid  # type: ignore[import-untyped]

from tests.fake_hyperliquid import FakeHyperliquid, load_fixture, recover_l1_signer, rejection_status

MAIN: LocalAccount = Account.from_key("0x" + "11" * 32)
AGENT: LocalAccount = Account.from_key("0x" + "22" * 32)
STRANGER: LocalAccount = Account.from_key("0x" + "33" * 32)
VAULT: LocalAccount = Account.from_key("0x" + "44" * 32)  # a key, to show that a vault still cannot sign
SUB: LocalAccount = Account.from_key("0x" + "55" * 32)
CLOID = "0x0123456789abcdef0123456789abcdef"
IOC: dict[str, Any] = {"limit": {"tif": "Ioc"}}
GTC: dict[str, Any] = {"limit": {"tif": "Gtc"}}
ETH_MID = "1903.95"  # the recorded allMids value the fake starts from
DAY_MS = 24 * 3600 * 1000


@pytest.fixture(autouse=True)
def strictly_increasing_nonces(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's nonce is the millisecond clock; two calls in one millisecond would collide (API_NOTES §7)."""
    lock = threading.Lock()
    last = [0]

    def next_nonce() -> int:
        with lock:
            last[0] = max(last[0] + 1, int(time.time() * 1000))
            return last[0]

    monkeypatch.setattr("hyperliquid.exchange.get_timestamp_ms", next_nonce)


@pytest.fixture
def fake() -> Iterator[FakeHyperliquid]:
    with FakeHyperliquid() as server:
        server.add_account(MAIN.address, account_value=1000)
        yield server
        assert server.internal_errors == []


def exchange_for(fake: FakeHyperliquid, wallet: LocalAccount, **kwargs: Any) -> Any:
    kwargs.setdefault("timeout", 5)
    return Exchange(wallet, base_url=fake.base_url, **kwargs)


def info_for(fake: FakeHyperliquid) -> Any:
    return Info(fake.base_url, skip_ws=True, timeout=5)


def statuses(response: Any) -> list[Any]:
    assert response["status"] == "ok", response
    assert response["response"]["type"] == "order"
    result: list[Any] = response["response"]["data"]["statuses"]
    return result


def only_status(response: Any) -> Any:
    (status,) = statuses(response)
    return status


def envelope(
    action: dict[str, Any], nonce: int, wallet: LocalAccount, *, mainnet: bool = False
) -> dict[str, Any]:
    signature = sign_l1_action(wallet, action, None, nonce, None, mainnet)
    return {
        "action": action,
        "nonce": nonce,
        "signature": signature,
        "vaultAddress": None,
        "expiresAfter": None,
    }


def eth_order_action(size: str = "0.05", px: str = "2000") -> dict[str, Any]:
    order = {"a": 1, "b": True, "p": px, "s": size, "r": False, "t": {"limit": {"tif": "Ioc"}}}
    return {"type": "order", "orders": [order], "grouping": "na"}


# --- /info -----------------------------------------------------------------------------------------


def test_meta_and_mids_start_from_the_recording(fake: FakeHyperliquid) -> None:
    info = info_for(fake)
    assert info.meta() == load_fixture("meta.json")
    assert info.spot_meta() == {"universe": [], "tokens": []}
    assert info.all_mids() == load_fixture("all_mids.json")
    assert info.coin_to_asset["BTC"] == 0
    assert info.coin_to_asset["ETH"] == 1
    assert info.asset_to_sz_decimals[1] == 4
    # The SDK's constructor asked for spotMeta then meta (with the "dex" key the fake ignores).
    assert [r.type for r in fake.info_requests()][:2] == ["spotMeta", "meta"]
    assert fake.info_requests("meta")[0].body == {"type": "meta", "dex": ""}

    fake.set_mid("ETH", "2000.5")
    assert info.all_mids()["ETH"] == "2000.5"


def test_unknown_info_type_is_422_plain_text(fake: FakeHyperliquid) -> None:
    info = info_for(fake)
    with pytest.raises(ClientError) as caught:
        info.post("/info", {"type": "noSuchThing"})
    assert caught.value.status_code == 422
    assert caught.value.error_code is None
    assert caught.value.error_message == "Failed to deserialize the JSON body into the target type"


def test_clearinghouse_state_is_computed_from_positions_and_mids(fake: FakeHyperliquid) -> None:
    fake.set_position(MAIN.address, "ETH", "0.5", "1800")
    fake.set_position(MAIN.address, "BTC", "-0.01", "31000")
    state = info_for(fake).user_state(MAIN.address)

    summary = {
        "accountValue": "1060.625",  # 1000 + 0.5*(1903.95-1800) + -0.01*(30135-31000)
        "totalNtlPos": "1253.325",  # 951.975 + 301.35
        "totalRawUsd": "410.0",  # 1000 - (0.5*1800 - 0.01*31000)
        "totalMarginUsed": "62.66625",  # notional / 20 (the default leverage)
    }
    assert state["marginSummary"] == summary
    assert state["crossMarginSummary"] == summary
    assert state["withdrawable"] == "997.95875"
    assert isinstance(state["time"], int)
    positions = {p["position"]["coin"]: p for p in state["assetPositions"]}
    eth = positions["ETH"]
    assert eth["type"] == "oneWay"
    assert eth["position"]["szi"] == "0.5"
    assert eth["position"]["entryPx"] == "1800.0"
    assert eth["position"]["positionValue"] == "951.975"
    assert eth["position"]["unrealizedPnl"] == "51.975"
    assert eth["position"]["returnOnEquity"] == "1.155"  # 51.975 / (0.5*1800/20)
    assert eth["position"]["marginUsed"] == "47.59875"
    assert eth["position"]["leverage"] == {"type": "cross", "value": 20}
    assert eth["position"]["maxLeverage"] == 50
    assert positions["BTC"]["position"]["szi"] == "-0.01"
    assert positions["BTC"]["position"]["unrealizedPnl"] == "8.65"

    fake.set_mid("ETH", "2000")
    assert fake.account_value(MAIN.address) == Decimal("1108.65")


def test_clearinghouse_state_has_the_recorded_shape(fake: FakeHyperliquid) -> None:
    recorded = load_fixture("clearinghouse_state.json")
    fake.set_position(MAIN.address, "ETH", "0.1334", "1705.82")
    ours = info_for(fake).user_state(MAIN.address)

    assert set(recorded) <= set(ours)
    assert set(ours["marginSummary"]) == set(recorded["marginSummary"])
    assert set(ours["crossMarginSummary"]) == set(recorded["crossMarginSummary"])
    recorded_position = recorded["assetPositions"][0]
    our_position = ours["assetPositions"][0]
    assert set(our_position) == set(recorded_position)
    assert set(recorded_position["position"]) - {"maxTradeSzs"} <= set(our_position["position"])
    assert set(our_position["position"]["leverage"]) == set(recorded_position["position"]["leverage"])
    for key in ("szi", "entryPx", "positionValue", "unrealizedPnl", "returnOnEquity", "marginUsed"):
        assert isinstance(our_position["position"][key], str)


def test_clearinghouse_state_of_an_unknown_address_is_all_zero(fake: FakeHyperliquid) -> None:
    state = info_for(fake).user_state(STRANGER.address)
    assert state["assetPositions"] == []
    assert state["marginSummary"]["accountValue"] == "0.0"
    assert state["withdrawable"] == "0.0"


def test_order_status_and_user_fills(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN)
    status = only_status(exchange.order("ETH", True, 0.05, 2000, IOC, cloid=Cloid.from_str(CLOID)))
    oid = status["filled"]["oid"]
    info = info_for(fake)

    by_cloid = info.query_order_by_cloid(MAIN.address, Cloid.from_str(CLOID))
    assert by_cloid["status"] == "order"
    assert by_cloid["order"]["status"] == "filled"
    order = by_cloid["order"]["order"]
    assert order["coin"] == "ETH"
    assert order["side"] == "B"
    assert order["limitPx"] == "2000.0"
    assert order["origSz"] == "0.05"
    assert order["sz"] == "0.0"
    assert order["oid"] == oid
    assert order["cloid"] == CLOID
    assert order["tif"] == "Ioc"
    assert order["orderType"] == "Limit"
    assert order["reduceOnly"] is False
    assert info.query_order_by_oid(MAIN.address, oid) == by_cloid
    assert info.query_order_by_oid(MAIN.address, 424242) == {"status": "unknownOid"}
    unknown = Cloid.from_int(99)
    assert info.query_order_by_cloid(MAIN.address, unknown) == {"status": "unknownOid"}
    assert info.query_order_by_oid(STRANGER.address, oid) == {"status": "unknownOid"}
    # Same per-order shape as the recorded historicalOrders.
    recorded = load_fixture("historical_orders.json")[0]
    assert set(by_cloid["order"]) == set(recorded)
    assert set(order) == set(recorded["order"])

    exchange.order("ETH", False, 0.02, 1800, IOC)
    fills = info.user_fills(MAIN.address)
    assert [f["dir"] for f in fills] == ["Close Long", "Open Long"]  # newest first
    assert fills[0]["startPosition"] == "0.05"
    assert fills[0]["side"] == "A"
    assert "cloid" not in fills[0]
    assert fills[1]["cloid"] == CLOID
    assert fills[1]["px"] == ETH_MID
    assert fills[1]["oid"] == oid
    assert fills[0]["tid"] != fills[1]["tid"]
    assert set(load_fixture("user_fills.json")[0]) <= set(fills[0])
    assert info.user_fills_by_time(MAIN.address, fills[0]["time"]) == [fills[0]]
    assert info.user_fills_by_time(MAIN.address, 0) == fills


# --- signed orders ---------------------------------------------------------------------------------


def test_ioc_order_with_cloid_fills_at_the_mid(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN)
    response = exchange.order("ETH", True, 0.05, 2000, IOC, cloid=Cloid.from_str(CLOID))

    filled = only_status(response)["filled"]
    assert filled["totalSz"] == "0.05"
    assert filled["avgPx"] == ETH_MID
    assert filled["cloid"] == CLOID
    position = info_for(fake).user_state(MAIN.address)["assetPositions"][0]["position"]
    assert position["coin"] == "ETH"
    assert position["szi"] == "0.05"
    assert position["entryPx"] == ETH_MID
    assert fake.positions(MAIN.address)["ETH"].szi == Decimal("0.05")
    assert fake.order_status(MAIN.address, CLOID) == "filled"
    (request,) = fake.order_requests()
    assert request.signer == MAIN.address.lower()
    assert request.user == MAIN.address.lower()
    assert request.body["action"]["orders"][0]["c"] == CLOID


def test_market_open_and_close_through_the_sdk(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN)
    opened = only_status(exchange.market_open("ETH", True, 0.05))
    assert opened["filled"]["avgPx"] == ETH_MID
    assert fake.order_requests()[0].body["action"]["orders"][0]["p"] == "1999.1"  # mid + 5 %, 5 sig. figs

    fake.set_mid("ETH", "2003.95")
    closed = only_status(exchange.market_close("ETH"))
    assert closed["filled"]["totalSz"] == "0.05"
    assert fake.positions(MAIN.address) == {}
    assert fake.fills(MAIN.address)[0]["closedPnl"] == "5.0"
    assert fake.account_value(MAIN.address) == Decimal("1005")


def test_entry_price_is_the_size_weighted_average(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN)
    fake.set_mid("ETH", "1900")
    exchange.order("ETH", True, 0.1, 2000, IOC)
    fake.set_mid("ETH", "2000")
    exchange.order("ETH", True, 0.3, 2100, IOC)
    assert fake.positions(MAIN.address)["ETH"].entry_px == Decimal("1975")
    exchange.order("ETH", False, 0.6, 1900, IOC)  # flips to short: the new side opens at the fill price
    position = fake.positions(MAIN.address)["ETH"]
    assert (position.szi, position.entry_px) == (Decimal("-0.2"), Decimal("2000"))
    assert fake.fills(MAIN.address)[0]["dir"] == "Long > Short"


def test_bulk_order_statuses_match_the_orders(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN)
    response = exchange.bulk_orders(
        [
            {
                "coin": "ETH",
                "is_buy": True,
                "sz": 0.05,
                "limit_px": 2000,
                "order_type": IOC,
                "reduce_only": False,
            },
            {
                "coin": "ETH",
                "is_buy": True,
                "sz": 0.00001,
                "limit_px": 2000,
                "order_type": IOC,
                "reduce_only": False,
            },
            {
                "coin": "ETH",
                "is_buy": True,
                "sz": 0.05,
                "limit_px": 1800,
                "order_type": GTC,
                "reduce_only": False,
            },
        ]
    )
    first, second, third = statuses(response)
    assert "filled" in first
    assert second == {"error": "Order has invalid size. asset=1"}
    assert set(third) == {"resting"}


def test_agent_wallet_trades_for_its_main_account(fake: FakeHyperliquid) -> None:
    fake.add_agent(AGENT.address, MAIN.address)
    exchange = exchange_for(fake, AGENT, account_address=MAIN.address)

    assert "filled" in only_status(exchange.order("ETH", True, 0.05, 2000, IOC))
    assert fake.positions(MAIN.address)["ETH"].szi == Decimal("0.05")
    (request,) = fake.order_requests()
    assert request.signer == AGENT.address.lower()
    assert request.user == MAIN.address.lower()
    info = info_for(fake)
    assert info.user_state(AGENT.address)["assetPositions"] == []  # query the main address, never the agent
    # market_close reads the position of account_address, not of the agent.
    assert "filled" in only_status(exchange.market_close("ETH"))
    assert fake.positions(MAIN.address) == {}


def test_unknown_signer_is_rejected(fake: FakeHyperliquid) -> None:
    response = exchange_for(fake, STRANGER).order("ETH", True, 0.05, 2000, IOC)
    assert response == {
        "status": "err",
        "response": f"User or API Wallet {STRANGER.address.lower()} does not exist.",
    }
    assert fake.order_requests()[0].user is None


def test_duplicate_nonce_is_rejected(fake: FakeHyperliquid) -> None:
    fake.add_agent(AGENT.address, MAIN.address)
    exchange = exchange_for(fake, MAIN)
    nonce = get_timestamp_ms()
    leverage = {"type": "updateLeverage", "asset": 1, "isCross": True, "leverage": 10}

    assert exchange.post("/exchange", envelope(leverage, nonce, MAIN)) == {
        "status": "ok",
        "response": {"type": "default"},
    }
    assert exchange.post("/exchange", envelope(eth_order_action(), nonce, MAIN)) == {
        "status": "err",
        "response": f"Invalid nonce: duplicate nonce {nonce}",
    }
    assert fake.positions(MAIN.address) == {}
    # Nonces are per signer: the agent may use the same number.
    assert "filled" in only_status(exchange.post("/exchange", envelope(eth_order_action(), nonce, AGENT)))


def test_nonce_outside_the_time_window_is_rejected(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN)
    now = get_timestamp_ms()
    for nonce in (now - 3 * DAY_MS, now + 2 * DAY_MS):
        response = exchange.post("/exchange", envelope(eth_order_action(), nonce, MAIN))
        assert response["status"] == "err"
        assert response["response"].startswith("Invalid nonce")
    assert fake.positions(MAIN.address) == {}


def test_fake_clock_drives_the_nonce_window() -> None:
    with FakeHyperliquid(clock=lambda: int(time.time() * 1000) + 3 * DAY_MS) as skewed:
        skewed.add_account(MAIN.address, 1000)
        response = exchange_for(skewed, MAIN).order("ETH", True, 0.05, 2000, IOC)
        assert response["status"] == "err"
        assert response["response"].startswith("Invalid nonce")


def test_tampered_payload_recovers_another_address(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN)
    payload = envelope(eth_order_action(size="0.05"), get_timestamp_ms(), MAIN)
    payload["action"]["orders"][0]["s"] = "0.5"  # changed after signing

    response = exchange.post("/exchange", payload)
    assert response["status"] == "err"
    assert response["response"].startswith("User or API Wallet 0x")
    assert response["response"].endswith(" does not exist.")
    (request,) = fake.order_requests()
    assert request.signer is not None
    assert request.signer != MAIN.address.lower()
    assert request.signer in response["response"]
    assert fake.positions(MAIN.address) == {}


def test_reordered_keys_recover_another_address(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN)
    payload = envelope(eth_order_action(), get_timestamp_ms(), MAIN)
    payload["action"] = dict(reversed(list(payload["action"].items())))  # same content, other key order
    assert exchange.post("/exchange", payload)["response"].startswith("User or API Wallet 0x")


def test_signature_source_mainnet_versus_testnet(fake: FakeHyperliquid) -> None:
    nonce = get_timestamp_ms()
    mainnet_payload = envelope(eth_order_action(), nonce, MAIN, mainnet=True)
    assert exchange_for(fake, MAIN).post("/exchange", mainnet_payload)["status"] == "err"

    with FakeHyperliquid(source="a") as mainnet_fake:
        mainnet_fake.add_account(MAIN.address, 1000)
        response = exchange_for(mainnet_fake, MAIN).post("/exchange", mainnet_payload)
        assert "filled" in only_status(response)


def test_signer_recovery_agrees_with_the_sdk() -> None:
    action, nonce = eth_order_action(), 1_700_000_000_000
    signature = sign_l1_action(MAIN, action, None, nonce, 1_700_000_060_000, False)
    ours = recover_l1_signer(action, nonce, signature, vault_address=None, expires_after=1_700_000_060_000)
    sdk = recover_agent_or_user_from_l1_action(action, signature, None, nonce, 1_700_000_060_000, False)
    assert ours == sdk.lower() == MAIN.address.lower()


def test_expires_after_in_the_past_is_rejected(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN)
    exchange.set_expires_after(get_timestamp_ms() - 1000)
    assert exchange.order("ETH", True, 0.05, 2000, IOC) == {
        "status": "err",
        "response": "Action already expired",
    }
    exchange.set_expires_after(get_timestamp_ms() + 60_000)
    assert "filled" in only_status(exchange.order("ETH", True, 0.05, 2000, IOC))


def test_advancing_the_clock_expires_what_would_still_be_valid(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN)
    exchange.set_expires_after(get_timestamp_ms() + 30_000)
    fake.advance_clock(31)
    assert exchange.order("ETH", True, 0.05, 2000, IOC) == {
        "status": "err",
        "response": "Action already expired",
    }
    fake.reset()  # back to the real time
    fake.add_account(MAIN.address, 1000)
    assert "filled" in only_status(exchange.order("ETH", True, 0.05, 2000, IOC))


def test_vault_address_is_refused(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN, vault_address=STRANGER.address)
    response = exchange.order("ETH", True, 0.05, 2000, IOC)
    assert response["status"] == "err"
    # Even for a registered vault or sub-account: acting for them is not emulated.
    fake.add_vault(VAULT.address, 1000)
    fake.add_sub_account(SUB.address, MAIN.address, 1000)
    for address in (VAULT.address, SUB.address):
        response = exchange_for(fake, MAIN, vault_address=address).order("ETH", True, 0.05, 2000, IOC)
        assert response["status"] == "err"
    assert fake.positions(VAULT.address) == fake.positions(SUB.address) == fake.positions(MAIN.address) == {}


def test_a_nonce_must_be_larger_than_the_smallest_of_the_100_highest(fake: FakeHyperliquid) -> None:
    fake.add_agent(AGENT.address, MAIN.address)
    exchange = exchange_for(fake, MAIN)
    leverage = {"type": "updateLeverage", "asset": 1, "isCross": True, "leverage": 10}
    base = get_timestamp_ms() - 60_000

    def send(nonce: int, wallet: LocalAccount = MAIN) -> Any:
        return exchange.post("/exchange", envelope(leverage, nonce, wallet))

    for nonce in range(base + 1, base + 101):  # 100 increasing nonces: all kept
        assert send(nonce) == {"status": "ok", "response": {"type": "default"}}, nonce
    below = send(base)  # unused and inside the window, but not larger than the smallest kept (base + 1)
    assert below["status"] == "err"
    assert below["response"].startswith("Invalid nonce")
    assert "duplicate" not in below["response"]
    assert send(base + 150)["status"] == "ok"  # above it: kept, and base + 1 drops out
    assert send(base + 120)["status"] == "ok"  # unused and above the smallest kept (base + 2)
    evicted = send(base + 1)  # no longer kept, still never reusable
    assert evicted["status"] == "err"
    assert evicted["response"].startswith("Invalid nonce")
    assert send(base + 150)["response"] == f"Invalid nonce: duplicate nonce {base + 150}"
    assert fake.count("updateLeverage") == 105
    # With fewer than 100 kept, any unused nonce in the window goes, even a smaller one (per signer).
    assert send(base + 50, AGENT)["status"] == "ok"
    assert send(base, AGENT)["status"] == "ok"


# --- order validation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderCase:
    coin: str
    is_buy: bool
    size: float
    price: float
    tif: str
    expected: str | None  # the per-order error, or None when the order must be accepted


NO_MATCH = "Order could not immediately match against any resting orders."
VALIDATION_CASES = {
    "size-step": OrderCase("ETH", True, 0.00001, 2000, "Ioc", "Order has invalid size. asset=1"),
    "zero-size": OrderCase("ETH", True, 0, 2000, "Ioc", "Order has zero size. asset=1"),
    "six-sig-figs": OrderCase(
        "ETH", True, 0.05, 1904.951, "Ioc", "Price must be divisible by tick size. asset=1"
    ),
    "five-sig-figs-ok": OrderCase("ETH", True, 0.05, 1904.5, "Ioc", None),
    # kPEPE has szDecimals 0, so at most 6 decimals even with only 5 significant figures.
    "too-many-decimals": OrderCase(
        "kPEPE", True, 10000, 0.0016001, "Ioc", "Price must be divisible by tick size. asset=15"
    ),
    "integer-price-always-valid": OrderCase("BTC", False, 0.001, 123456, "Gtc", None),
    "below-$10": OrderCase("ETH", True, 0.004, 2000, "Ioc", "Order must have minimum value of $10. asset=1"),
    "margin": OrderCase("BTC", True, 1, 31000, "Ioc", "Insufficient margin to place order. asset=0"),
    "ioc-buy-below-mid": OrderCase("ETH", True, 0.05, 1800, "Ioc", f"{NO_MATCH} asset=1"),
    "ioc-sell-above-mid": OrderCase("ETH", False, 0.05, 2000, "Ioc", f"{NO_MATCH} asset=1"),
    "alo-crossing": OrderCase(
        "ETH",
        True,
        0.05,
        2000,
        "Alo",
        "Post only order would have immediately matched, bbo was 1903.95@1903.95. asset=1",
    ),
    "gtc-below-mid-rests": OrderCase("ETH", True, 0.05, 1800, "Gtc", None),
}


@pytest.mark.parametrize("case", list(VALIDATION_CASES.values()), ids=list(VALIDATION_CASES))
def test_order_validation(fake: FakeHyperliquid, case: OrderCase) -> None:
    exchange = exchange_for(fake, MAIN)
    status = only_status(
        exchange.order(case.coin, case.is_buy, case.size, case.price, {"limit": {"tif": case.tif}})
    )
    if case.expected is None:
        assert "error" not in status
    else:
        assert status == {"error": case.expected}
        assert fake.positions(MAIN.address) == {}


def test_rejected_orders_keep_a_rejected_status(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN)
    exchange.order("ETH", True, 0.05, 1800, IOC, cloid=Cloid.from_str(CLOID))
    assert fake.order_status(MAIN.address, CLOID) == "iocCancelRejected"
    exchange.order("BTC", True, 1, 31000, IOC, cloid=Cloid.from_int(2))
    assert fake.order_status(MAIN.address, Cloid.from_int(2).to_raw()) == "perpMarginRejected"
    exchange.order("ETH", True, 0.00001, 2000, IOC, cloid=Cloid.from_int(3))  # never gets an oid
    assert fake.order_status(MAIN.address, Cloid.from_int(3).to_raw()) is None


@dataclass(frozen=True)
class RejectionCase:
    coin: str
    is_buy: bool
    size: float
    price: float
    tif: str
    reduce_only: bool
    status: str


REJECTION_CASES = {
    "tick": RejectionCase("ETH", True, 0.05, 1904.951, "Ioc", False, "tickRejected"),
    "min-notional": RejectionCase("ETH", True, 0.004, 2000, "Ioc", False, "minTradeNtlRejected"),
    "reduce-only": RejectionCase("ETH", False, 0.05, 1800, "Ioc", True, "reduceOnlyRejected"),
    "alo-crossing": RejectionCase("ETH", True, 0.05, 2000, "Alo", False, "badAloPxRejected"),
    "margin": RejectionCase("BTC", True, 1, 31000, "Ioc", False, "perpMarginRejected"),
    "ioc-no-match": RejectionCase("ETH", True, 0.05, 1800, "Ioc", False, "iocCancelRejected"),
}


@pytest.mark.parametrize("case", list(REJECTION_CASES.values()), ids=list(REJECTION_CASES))
def test_validation_rejections_are_kept_with_the_exchange_status(
    fake: FakeHyperliquid, case: RejectionCase
) -> None:
    exchange = exchange_for(fake, MAIN)
    cloid = Cloid.from_str(CLOID)
    order_type = {"limit": {"tif": case.tif}}
    error = only_status(
        exchange.order(case.coin, case.is_buy, case.size, case.price, order_type, case.reduce_only, cloid)
    )["error"]
    assert rejection_status(error) == case.status  # the fake's own sentences map like injected ones
    info = info_for(fake)
    entry = info.query_order_by_cloid(MAIN.address, cloid)
    assert entry["status"] == "order"
    assert entry["order"]["status"] == case.status
    order = entry["order"]["order"]
    assert (order["coin"], order["side"], order["cloid"], order["tif"]) == (
        case.coin,
        "B" if case.is_buy else "A",
        CLOID,
        case.tif,
    )
    assert order["sz"] == order["origSz"]
    assert info.query_order_by_oid(MAIN.address, order["oid"]) == entry
    assert info.open_orders(MAIN.address) == []
    assert fake.positions(MAIN.address) == {}


INJECTED_ERRORS = {
    "margin": ("Insufficient margin to place order. asset={asset}", None, "perpMarginRejected"),
    "ioc": (
        "Order could not immediately match against any resting orders. asset={asset}",
        None,
        "iocCancelRejected",
    ),
    "tick": ("Price must be divisible by tick size. asset={asset}", None, "tickRejected"),
    "oracle": ("Order price too far from oracle. asset={asset}", None, "oracleRejected"),
    "unknown-sentence": ("Something the fake has never heard of. asset={asset}", None, "rejected"),
    "explicit-status": (
        "Insufficient margin to place order. asset={asset}",
        "marginCanceled",
        "marginCanceled",
    ),
}


@pytest.mark.parametrize(
    ("message", "status", "expected"), list(INJECTED_ERRORS.values()), ids=list(INJECTED_ERRORS)
)
def test_an_injected_order_error_leaves_a_rejected_order(
    fake: FakeHyperliquid, message: str, status: str | None, expected: str
) -> None:
    exchange = exchange_for(fake, MAIN)
    fake.fail_orders(message, status=status)
    sent = get_timestamp_ms()
    response = exchange.order("ETH", True, 0.05, 2000, IOC, cloid=Cloid.from_str(CLOID))
    assert only_status(response) == {"error": message.replace("{asset}", "1")}
    assert fake.positions(MAIN.address) == {}

    info = info_for(fake)
    entry = info.query_order_by_cloid(MAIN.address, Cloid.from_str(CLOID))
    assert entry["status"] == "order"
    assert entry["order"]["status"] == expected
    order = entry["order"]["order"]
    assert (order["coin"], order["side"], order["limitPx"], order["sz"], order["origSz"]) == (
        "ETH",
        "B",
        "2000.0",
        "0.05",
        "0.05",
    )
    assert (order["cloid"], order["tif"], order["reduceOnly"]) == (CLOID, "Ioc", False)
    assert order["timestamp"] >= sent
    assert entry["order"]["statusTimestamp"] == order["timestamp"]
    assert set(entry["order"]) == set(load_fixture("historical_orders.json")[0])
    assert info.query_order_by_oid(MAIN.address, order["oid"]) == entry
    assert [h["status"] for h in info.historical_orders(MAIN.address)] == [expected]
    assert info.open_orders(MAIN.address) == []
    assert fake.order_status(MAIN.address, CLOID) == expected


def test_an_injected_error_keeps_every_order_of_the_batch(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN)
    fake.fail_orders("Insufficient margin to place order. asset={asset}")
    requests_ = [
        {
            "coin": coin,
            "is_buy": True,
            "sz": size,
            "limit_px": px,
            "order_type": IOC,
            "reduce_only": False,
            "cloid": Cloid.from_int(n),
        }
        for n, (coin, size, px) in enumerate([("ETH", 0.05, 2000), ("BTC", 0.001, 31000)], start=1)
    ]
    assert statuses(exchange.bulk_orders(requests_)) == [
        {"error": "Insufficient margin to place order. asset=1"},
        {"error": "Insufficient margin to place order. asset=0"},
    ]
    eth, btc = fake.orders(MAIN.address)
    assert (eth.coin, eth.cloid, eth.status) == ("ETH", Cloid.from_int(1).to_raw(), "perpMarginRejected")
    assert (btc.coin, btc.cloid, btc.status) == ("BTC", Cloid.from_int(2).to_raw(), "perpMarginRejected")
    assert eth.oid != btc.oid


def test_an_injected_error_raised_before_an_oid_leaves_no_order(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN)
    fake.fail_orders("Order has invalid size. asset={asset}")
    assert only_status(exchange.order("ETH", True, 0.05, 2000, IOC, cloid=Cloid.from_str(CLOID))) == {
        "error": "Order has invalid size. asset=1"
    }
    assert info_for(fake).query_order_by_cloid(MAIN.address, Cloid.from_str(CLOID)) == {
        "status": "unknownOid"
    }
    assert fake.orders(MAIN.address) == []
    # The cloid was never used, so the same order may be sent again.
    assert "filled" in only_status(exchange.order("ETH", True, 0.05, 2000, IOC, cloid=Cloid.from_str(CLOID)))


def test_a_cloid_is_used_once_per_account(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN)
    filled, resting, canceled, rejected, injected = (Cloid.from_int(n) for n in range(1, 6))
    assert "filled" in only_status(exchange.order("ETH", True, 0.05, 2000, IOC, cloid=filled))
    assert "resting" in only_status(exchange.order("ETH", True, 0.05, 1800, GTC, cloid=resting))
    assert "resting" in only_status(exchange.order("ETH", True, 0.05, 1800, GTC, cloid=canceled))
    assert exchange.cancel_by_cloid("ETH", canceled)["response"]["data"]["statuses"] == ["success"]
    assert "error" in only_status(exchange.order("ETH", True, 0.05, 1800, IOC, cloid=rejected))
    fake.fail_orders("Insufficient margin to place order. asset={asset}")
    assert "error" in only_status(exchange.order("ETH", True, 0.05, 2000, IOC, cloid=injected))
    before = fake.orders(MAIN.address)
    assert [o.status for o in before] == [
        "filled",
        "open",
        "canceled",
        "iocCancelRejected",
        "perpMarginRejected",
    ]

    for cloid in (filled, resting, canceled, rejected, injected):
        status = only_status(exchange.order("ETH", True, 0.05, 2000, IOC, cloid=cloid))
        assert status == {"error": f"Duplicate cloid {cloid.to_raw()}: the account already used it. asset=1"}
    fake.fail_orders("Insufficient margin to place order. asset={asset}")  # a reused cloid wins over it
    assert only_status(exchange.order("ETH", True, 0.05, 2000, IOC, cloid=filled))["error"].startswith(
        "Duplicate cloid"
    )
    assert fake.orders(MAIN.address) == before  # nothing placed, nothing changed
    assert fake.positions(MAIN.address)["ETH"].szi == Decimal("0.05")
    assert info_for(fake).query_order_by_cloid(MAIN.address, filled)["order"]["status"] == "filled"

    # Twice in one batch: the second is refused.
    again = {
        "coin": "ETH",
        "is_buy": True,
        "sz": 0.05,
        "limit_px": 2000,
        "order_type": IOC,
        "reduce_only": False,
    }
    first, second = statuses(exchange.bulk_orders([again | {"cloid": Cloid.from_int(9)}] * 2))
    assert "filled" in first
    assert second["error"].startswith("Duplicate cloid")
    # Per account: another account may use the same cloid.
    fake.add_account(STRANGER.address, 1000)
    assert "filled" in only_status(
        exchange_for(fake, STRANGER).order("ETH", True, 0.05, 2000, IOC, cloid=filled)
    )


def test_reduce_only_is_exempt_from_the_minimum_and_never_grows_a_position(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN)
    assert only_status(exchange.order("ETH", False, 0.003, 1800, IOC, reduce_only=True)) == {
        "error": "Reduce only order would increase position. asset=1"
    }
    fake.set_position(MAIN.address, "ETH", "0.003", "1900")  # about $5.7
    filled = only_status(exchange.order("ETH", False, 0.01, 1800, IOC, reduce_only=True))["filled"]
    assert filled["totalSz"] == "0.003"  # clipped to the position
    assert fake.positions(MAIN.address) == {}


def test_margin_counts_the_leverage(fake: FakeHyperliquid) -> None:
    fake.add_account(STRANGER.address, account_value=100)
    exchange = exchange_for(fake, STRANGER)
    assert "filled" in only_status(exchange.order("ETH", True, 0.5, 2000, IOC))  # $952 at 20x: $47.6 margin
    assert exchange.update_leverage(5, "ETH")["status"] == "ok"
    assert only_status(exchange.order("ETH", True, 0.5, 2000, IOC)) == {
        "error": "Insufficient margin to place order. asset=1"  # now 0.5 more needs $190 at 5x
    }


# --- leverage --------------------------------------------------------------------------------------


def test_update_leverage_is_stored_and_reflected(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN)
    assert exchange.update_leverage(5, "ETH") == {"status": "ok", "response": {"type": "default"}}
    assert fake.leverage(MAIN.address, "ETH") == 5
    assert fake.leverage(MAIN.address, "BTC") == 20
    exchange.order("ETH", True, 0.1, 2000, IOC)
    position = info_for(fake).user_state(MAIN.address)["assetPositions"][0]["position"]
    assert position["leverage"] == {"type": "cross", "value": 5}
    assert position["marginUsed"] == "38.079"  # 0.1 * 1903.95 / 5
    assert fake.positions(MAIN.address)["ETH"].leverage == 5

    for bad in (0, 51):
        response = exchange.update_leverage(bad, "ETH")
        assert response["status"] == "err", bad
    assert fake.leverage(MAIN.address, "ETH") == 5

    assert exchange.update_leverage(3, "BTC", is_cross=False)["status"] == "ok"
    exchange.order("BTC", True, 0.001, 31000, IOC)
    btc = info_for(fake).user_state(MAIN.address)["assetPositions"][1]["position"]
    assert btc["leverage"]["type"] == "isolated"
    assert btc["leverage"]["value"] == 3
    assert fake.count("updateLeverage") == 4


def test_update_leverage_failure_can_be_injected(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN)
    fake.fail_update_leverage("Insufficient margin to change leverage")
    assert exchange.update_leverage(5, "ETH") == {
        "status": "err",
        "response": "Insufficient margin to change leverage",
    }
    assert fake.leverage(MAIN.address, "ETH") == 20
    assert exchange.update_leverage(5, "ETH")["status"] == "ok"


def test_the_margin_mode_cannot_switch_with_an_open_position(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN)
    assert "filled" in only_status(exchange.order("ETH", True, 0.05, 2000, IOC))  # cross, 20x
    assert exchange.update_leverage(5, "ETH", is_cross=False) == {
        "status": "err",
        "response": "Cannot switch leverage type with open position.",
    }
    position = fake.positions(MAIN.address)["ETH"]
    assert (position.leverage, position.is_cross) == (20, True)
    assert exchange.update_leverage(5, "ETH") == {"status": "ok", "response": {"type": "default"}}
    assert fake.leverage(MAIN.address, "ETH") == 5
    # No position in BTC: its mode may change.
    assert exchange.update_leverage(3, "BTC", is_cross=False)["status"] == "ok"
    assert exchange.update_leverage(3, "BTC", is_cross=True)["status"] == "ok"
    # Once the position is closed, ETH may change too.
    assert "filled" in only_status(exchange.market_close("ETH"))
    assert exchange.update_leverage(4, "ETH", is_cross=False)["status"] == "ok"
    assert fake.count("updateLeverage") == 5


def test_a_seeded_isolated_position_is_reported_isolated_and_keeps_its_mode(fake: FakeHyperliquid) -> None:
    fake.set_leverage(MAIN.address, "ETH", 3, is_cross=False)
    fake.set_position(MAIN.address, "ETH", "0.1", "1900")
    info, exchange = info_for(fake), exchange_for(fake, MAIN)
    (item,) = info.user_state(MAIN.address)["assetPositions"]
    leverage = item["position"]["leverage"]
    assert (leverage["type"], leverage["value"]) == ("isolated", 3)
    assert isinstance(leverage["rawUsd"], str)
    assert fake.positions(MAIN.address)["ETH"].is_cross is False

    assert exchange.update_leverage(3, "ETH", is_cross=True)["response"] == (
        "Cannot switch leverage type with open position."
    )
    assert exchange.update_leverage(5, "ETH", is_cross=False)["status"] == "ok"
    leverage = info.user_state(MAIN.address)["assetPositions"][0]["position"]["leverage"]
    assert (leverage["type"], leverage["value"]) == ("isolated", 5)


# --- userRole, vaults, sub-accounts ----------------------------------------------------------------


def test_user_role_in_every_shape(fake: FakeHyperliquid) -> None:
    fake.add_agent(AGENT.address, MAIN.address)
    assert fake.add_vault(VAULT.address, account_value=500) == VAULT.address.lower()
    assert fake.add_sub_account(SUB.address, MAIN.address, account_value=200) == SUB.address.lower()
    info = info_for(fake)
    assert info.user_role(MAIN.address) == {"role": "user"}
    assert info.user_role(AGENT.address) == {"role": "agent", "data": {"user": MAIN.address.lower()}}
    assert info.user_role(VAULT.address) == {"role": "vault"}
    assert info.user_role(SUB.address) == {"role": "subAccount", "data": {"master": MAIN.address.lower()}}
    assert info.user_role(STRANGER.address) == {"role": "missing"}
    with pytest.raises(ClientError) as caught:
        info.post("/info", {"type": "userRole", "user": "nope"})
    assert caught.value.status_code == 422


def test_vaults_and_sub_accounts_have_state_but_cannot_sign(fake: FakeHyperliquid) -> None:
    fake.add_vault(VAULT.address, account_value=500)
    fake.add_sub_account(SUB.address, MAIN.address, account_value=200)
    fake.set_position(VAULT.address, "ETH", "0.1", "1900")
    info = info_for(fake)
    state = info.user_state(VAULT.address)
    assert state["marginSummary"]["accountValue"] == "500.395"  # 500 + 0.1 * (1903.95 - 1900)
    assert state["assetPositions"][0]["position"]["szi"] == "0.1"
    assert info.user_state(SUB.address)["marginSummary"]["accountValue"] == "200.0"

    for wallet in (VAULT, SUB):  # even holding the key of the address: they never sign
        response = exchange_for(fake, wallet).order("ETH", True, 0.05, 2000, IOC)
        assert response == {
            "status": "err",
            "response": f"User or API Wallet {wallet.address.lower()} does not exist.",
        }
    assert fake.positions(SUB.address) == {}
    with pytest.raises(ValueError, match="vault"):
        fake.add_agent(AGENT.address, VAULT.address)
    with pytest.raises(ValueError, match="subAccount"):
        fake.add_agent(AGENT.address, SUB.address)
    with pytest.raises(KeyError):
        fake.add_sub_account(STRANGER.address, VAULT.address)
    with pytest.raises(KeyError):
        fake.add_sub_account(STRANGER.address, AGENT.address)


# --- liquidity, resting orders ---------------------------------------------------------------------


def test_partial_fill_when_liquidity_is_capped(fake: FakeHyperliquid) -> None:
    fake.set_liquidity("ETH", "0.02")
    exchange = exchange_for(fake, MAIN)
    filled = only_status(exchange.order("ETH", True, 0.05, 2000, IOC, cloid=Cloid.from_str(CLOID)))["filled"]
    assert filled["totalSz"] == "0.02"
    assert fake.positions(MAIN.address)["ETH"].szi == Decimal("0.02")
    entry = info_for(fake).query_order_by_cloid(MAIN.address, Cloid.from_str(CLOID))["order"]
    assert entry["status"] == "canceled"  # the unfilled rest of an IOC is canceled
    assert (entry["order"]["sz"], entry["order"]["origSz"]) == ("0.03", "0.05")

    fake.set_liquidity("ETH", 0)
    assert only_status(exchange.order("ETH", True, 0.05, 2000, IOC)) == {
        "error": "Order could not immediately match against any resting orders. asset=1"
    }
    fake.set_liquidity("ETH", None)
    assert only_status(exchange.order("ETH", True, 0.05, 2000, IOC))["filled"]["totalSz"] == "0.05"


def test_gtc_order_rests_and_can_be_canceled(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN)
    info = info_for(fake)
    oid = only_status(exchange.order("ETH", True, 0.05, 1800, GTC))["resting"]["oid"]
    assert [o["oid"] for o in info.open_orders(MAIN.address)] == [oid]
    assert info.query_order_by_oid(MAIN.address, oid)["order"]["status"] == "open"

    assert exchange.cancel("ETH", oid)["response"]["data"]["statuses"] == ["success"]
    assert info.query_order_by_oid(MAIN.address, oid)["order"]["status"] == "canceled"
    assert info.open_orders(MAIN.address) == []
    assert exchange.cancel("ETH", oid)["response"]["data"]["statuses"] == [
        {"error": "Order was never placed, already canceled, or filled. asset=1"}
    ]

    exchange.order("ETH", True, 0.05, 1800, GTC, cloid=Cloid.from_str(CLOID))
    assert exchange.cancel_by_cloid("ETH", Cloid.from_str(CLOID))["response"]["data"]["statuses"] == [
        "success"
    ]
    assert fake.order_status(MAIN.address, CLOID) == "canceled"


def test_book_open_orders_and_history(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN)
    info = info_for(fake)
    book = info.l2_snapshot("ETH")
    assert book["coin"] == "ETH"
    assert book["levels"][0][0]["px"] == book["levels"][1][0]["px"] == ETH_MID
    resting = only_status(exchange.order("ETH", True, 0.05, 1800, GTC, cloid=Cloid.from_str(CLOID)))
    filled = only_status(exchange.order("ETH", True, 0.05, 2000, IOC))
    frontend = info.frontend_open_orders(MAIN.address)
    assert [(o["oid"], o["cloid"], o["tif"]) for o in frontend] == [(resting["resting"]["oid"], CLOID, "Gtc")]
    history = info.historical_orders(MAIN.address)
    assert [h["status"] for h in history] == ["filled", "open"]  # newest first
    assert history[0]["order"]["oid"] == filled["filled"]["oid"]


def test_accounts_by_key_deposits_and_fees() -> None:
    with FakeHyperliquid(taker_fee_rate="0.00045") as fake:
        address = fake.add_account(key="0x" + "11" * 32, account_value=500)
        assert address == MAIN.address.lower()
        fake.deposit(MAIN.address, 500)
        assert fake.usdc(MAIN.address) == Decimal(1000)
        exchange_for(fake, MAIN).order("ETH", True, 0.05, 2000, IOC)
        fee = Decimal("0.05") * Decimal(ETH_MID) * Decimal("0.00045")
        assert fake.fills(MAIN.address)[0]["fee"] == "0.042839"
        assert fake.account_value(MAIN.address) == Decimal(1000) - fee
        with pytest.raises(ValueError, match="does not match"):
            fake.add_account(AGENT.address, key="0x" + "11" * 32)
        with pytest.raises(KeyError):
            fake.add_agent(AGENT.address, STRANGER.address)


# --- fault injection -------------------------------------------------------------------------------


def test_fault_per_order_error(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN)
    fake.fail_orders("Too many cumulative requests sent. asset={asset}")
    assert only_status(exchange.order("ETH", True, 0.05, 2000, IOC)) == {
        "error": "Too many cumulative requests sent. asset=1"
    }
    assert fake.positions(MAIN.address) == {}
    assert "filled" in only_status(exchange.order("ETH", True, 0.05, 2000, IOC))  # only the next request


def test_fault_persists_until_cleared(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN)
    fake.fail_orders("Insufficient margin to place order. asset={asset}", times=None)
    for _ in range(2):
        assert "error" in only_status(exchange.order("ETH", True, 0.05, 2000, IOC))
    fake.clear_faults()
    assert "filled" in only_status(exchange.order("ETH", True, 0.05, 2000, IOC))


def test_fault_http_429(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN)
    fake.http_error(429, "Too Many Requests")
    with pytest.raises(ClientError) as caught:
        exchange.order("ETH", True, 0.05, 2000, IOC)
    assert caught.value.status_code == 429
    assert caught.value.error_message == "Too Many Requests"
    assert fake.positions(MAIN.address) == {}
    assert [r.status for r in fake.order_requests()] == [429]


def test_fault_http_5xx(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN)
    fake.http_error(502, "Bad Gateway")
    with pytest.raises(ServerError) as caught:
        exchange.order("ETH", True, 0.05, 2000, IOC)
    assert caught.value.status_code == 502
    assert caught.value.message == "Bad Gateway"
    assert fake.positions(MAIN.address) == {}


def test_fault_top_level_error(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN)
    fake.reject_requests("Must deposit before performing actions.")
    response = exchange.order("ETH", True, 0.05, 2000, IOC)
    assert response == {"status": "err", "response": "Must deposit before performing actions."}
    assert fake.positions(MAIN.address) == {}


def test_fault_non_json_body(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN)
    fake.non_json("<html>oops</html>")
    assert exchange.order("ETH", True, 0.05, 2000, IOC) == {
        "error": "Could not parse JSON: <html>oops</html>"
    }
    assert fake.positions(MAIN.address) == {}


def test_fault_hang_with_the_order_applied(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN, timeout=0.5)
    fake.hang(10, apply=True)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.Timeout):
        exchange.order("ETH", True, 0.05, 2000, IOC, cloid=Cloid.from_str(CLOID))
    assert time.monotonic() - started < 2
    # Timed out, but the exchange did fill it.
    assert fake.positions(MAIN.address)["ETH"].szi == Decimal("0.05")
    assert (
        info_for(fake).query_order_by_cloid(MAIN.address, Cloid.from_str(CLOID))["order"]["status"]
        == "filled"
    )
    (request,) = fake.order_requests()
    assert (request.status, request.delay) == (200, 10)


def test_fault_hang_with_the_order_dropped(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN, timeout=0.5)
    fake.hang(10, apply=False)
    with pytest.raises(requests.exceptions.Timeout):
        exchange.order("ETH", True, 0.05, 2000, IOC, cloid=Cloid.from_str(CLOID))
    assert fake.positions(MAIN.address) == {}
    assert info_for(fake).query_order_by_cloid(MAIN.address, Cloid.from_str(CLOID)) == {
        "status": "unknownOid"
    }
    assert fake.order_requests()[0].status == 0
    # A retry with the same cloid goes through.
    assert "filled" in only_status(exchange.order("ETH", True, 0.05, 2000, IOC, cloid=Cloid.from_str(CLOID)))

    # The hung handler must not hold up shutdown.
    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 1


def test_fault_hang_shorter_than_the_timeout_answers_late(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN, timeout=2)
    fake.hang(0.2, apply=True)
    started = time.monotonic()
    assert "filled" in only_status(exchange.order("ETH", True, 0.05, 2000, IOC))
    assert time.monotonic() - started >= 0.2


def test_late_order_before_its_expiry_is_placed_after_the_client_gave_up(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN, timeout=0.3)
    exchange.set_expires_after(get_timestamp_ms() + 60_000)
    fake.late(1.0)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.Timeout):
        exchange.order("ETH", True, 0.05, 2000, IOC, cloid=Cloid.from_str(CLOID))
    assert time.monotonic() - started < 1.0
    # The client gave up; the exchange has not seen the order yet.
    assert fake.order_status(MAIN.address, CLOID) is None
    (held,) = fake.order_requests()
    assert (held.status, held.response, held.user, held.processed_at, held.delay) == (
        0,
        None,
        None,
        None,
        1.0,
    )

    assert fake.wait_late(5)
    assert fake.order_status(MAIN.address, CLOID) == "filled"
    assert fake.positions(MAIN.address)["ETH"].szi == Decimal("0.05")
    (request,) = fake.order_requests()
    assert request.status == 0  # the connection was dropped: no answer ever reached the client
    assert "filled" in request.response["response"]["data"]["statuses"][0]  # what it would have said
    assert request.user == MAIN.address.lower()
    assert request.processed_at is not None
    assert request.processed_at >= request.body["nonce"] + 900  # processed after the hold
    assert fake.fills(MAIN.address)[0]["time"] == request.processed_at


@pytest.mark.parametrize("how", ["the fake clock jumps", "real time passes"])
def test_late_order_after_its_expiry_is_never_placed(how: str) -> None:
    offset = [0]
    with FakeHyperliquid(clock=lambda: int(time.time() * 1000) + offset[0]) as fake:
        fake.add_account(MAIN.address, account_value=1000)
        exchange = exchange_for(fake, MAIN, timeout=0.3)
        if how == "real time passes":
            exchange.set_expires_after(get_timestamp_ms() + 300)  # expired when the 1 s hold ends
        else:
            exchange.set_expires_after(get_timestamp_ms() + 60_000)
        fake.late(1.0)
        with pytest.raises(requests.exceptions.Timeout):
            exchange.order("ETH", True, 0.05, 2000, IOC, cloid=Cloid.from_str(CLOID))
        if how == "the fake clock jumps":
            offset[0] = 2 * 60_000  # two minutes pass before the exchange processes it
        assert fake.wait_late(5)

        (request,) = fake.order_requests()
        assert request.response == {"status": "err", "response": "Action already expired"}
        assert request.processed_at is not None
        assert fake.positions(MAIN.address) == {}
        info = info_for(fake)
        assert info.query_order_by_cloid(MAIN.address, Cloid.from_str(CLOID)) == {"status": "unknownOid"}
        # Never placed: its cloid (and nonce) are still free.
        retry = exchange_for(fake, MAIN)
        retry.set_expires_after(get_timestamp_ms() + offset[0] + 60_000)
        nonce = request.body["nonce"]
        leverage = {"type": "updateLeverage", "asset": 1, "isCross": True, "leverage": 10}
        assert retry.post("/exchange", envelope(leverage, nonce, MAIN))["status"] == "ok"
        assert "filled" in only_status(retry.order("ETH", True, 0.05, 2000, IOC, cloid=Cloid.from_str(CLOID)))


def test_late_answer_arrives_after_the_hold(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN, timeout=5)
    fake.late(0.5, answer=True)
    started = time.monotonic()
    assert "filled" in only_status(exchange.order("ETH", True, 0.05, 2000, IOC))
    assert time.monotonic() - started >= 0.5
    (request,) = fake.order_requests()
    assert (request.status, request.delay) == (200, 0.5)
    assert request.processed_at is not None
    assert request.processed_at >= request.body["nonce"] + 450
    assert fake.wait_late(0)


def test_late_original_after_a_retry_is_a_duplicate_cloid(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN, timeout=0.3)
    fake.late(1.0)
    with pytest.raises(requests.exceptions.Timeout):
        exchange.order("ETH", True, 0.05, 2000, IOC, cloid=Cloid.from_str(CLOID))
    retry = exchange_for(fake, MAIN)
    assert "filled" in only_status(retry.order("ETH", True, 0.05, 2000, IOC, cloid=Cloid.from_str(CLOID)))
    assert fake.wait_late(5)
    original = fake.order_requests()[0]
    assert original.response["response"]["data"]["statuses"] == [
        {"error": f"Duplicate cloid {CLOID}: the account already used it. asset=1"}
    ]
    assert fake.positions(MAIN.address)["ETH"].szi == Decimal("0.05")  # filled once


def test_late_only_holds_the_chosen_action_types(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN, timeout=0.3)
    fake.late(1.0, types=["updateLeverage"], times=None)
    assert "filled" in only_status(exchange.order("ETH", True, 0.05, 2000, IOC))
    with pytest.raises(requests.exceptions.Timeout):
        exchange.update_leverage(5, "ETH")
    assert fake.leverage(MAIN.address, "ETH") == 20
    assert fake.wait_late(5)
    assert fake.leverage(MAIN.address, "ETH") == 5


@pytest.mark.parametrize("release", ["stop", "reset"])
def test_stop_and_reset_release_a_late_request_unprocessed(fake: FakeHyperliquid, release: str) -> None:
    exchange = exchange_for(fake, MAIN, timeout=0.3)
    fake.late(30)
    with pytest.raises(requests.exceptions.Timeout):
        exchange.order("ETH", True, 0.05, 2000, IOC)
    assert fake.order_requests()[0].processed_at is None
    started = time.monotonic()
    if release == "stop":
        fake.stop()
    else:
        fake.reset()
        fake.add_account(MAIN.address, account_value=1000)
    assert fake.wait_late(2)
    assert time.monotonic() - started < 1
    assert fake.positions(MAIN.address) == {}
    if release == "stop":
        (request,) = fake.order_requests()
        assert (request.status, request.processed_at) == (0, None)


def test_fault_ioc_answered_resting(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN)
    fake.rest_ioc()
    status = only_status(exchange.order("ETH", True, 0.05, 2000, IOC, cloid=Cloid.from_str(CLOID)))
    assert set(status) == {"resting"}
    assert fake.order_status(MAIN.address, CLOID) == "open"
    assert fake.positions(MAIN.address) == {}
    assert exchange.cancel_by_cloid("ETH", Cloid.from_str(CLOID))["response"]["data"]["statuses"] == [
        "success"
    ]


def test_fault_on_an_info_endpoint(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN)
    fake.http_error(503, "unavailable", path="/info", types=["allMids"])
    with pytest.raises(ServerError):
        exchange.market_open("ETH", True, 0.05)  # market_open reads allMids first
    assert fake.count("order") == 0
    assert "filled" in only_status(exchange.market_open("ETH", True, 0.05))


# --- recording, reset, concurrency -----------------------------------------------------------------


def test_recording_helpers_and_reset(fake: FakeHyperliquid) -> None:
    exchange = exchange_for(fake, MAIN)
    exchange.update_leverage(10, "ETH")
    exchange.order("ETH", True, 0.05, 2000, IOC)
    exchange.order("ETH", True, 0.05, 1800, IOC)
    assert fake.count("order") == 2
    assert fake.count("updateLeverage") == 1
    assert [r.type for r in fake.exchange_requests()] == ["updateLeverage", "order", "order"]
    assert all(r.signer == MAIN.address.lower() for r in fake.exchange_requests())
    assert (
        fake.order_requests()[1]
        .response["response"]["data"]["statuses"][0]["error"]
        .startswith("Order could")
    )
    assert len(fake.info_requests("spotMeta")) == 1

    fake.reset()
    assert fake.requests == []
    assert fake.count("order") == 0
    with pytest.raises(KeyError):
        fake.positions(MAIN.address)
    assert fake.mid("ETH") == Decimal(ETH_MID)


def test_concurrent_orders_from_several_wallets(fake: FakeHyperliquid) -> None:
    wallets = [Account.from_key("0x" + f"{n:064x}") for n in range(101, 105)]
    for wallet in wallets:
        fake.add_account(wallet.address, 1000)
    exchanges = [exchange_for(fake, wallet) for wallet in wallets]
    results: list[Any] = []

    def trade(exchange: Any) -> None:
        results.extend(only_status(exchange.order("ETH", True, 0.01, 2000, IOC)) for _ in range(3))

    threads = [threading.Thread(target=trade, args=(e,)) for e in exchanges]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 12
    assert all("filled" in r for r in results)
    oids = [r["filled"]["oid"] for r in results]
    assert len(set(oids)) == 12
    for wallet in wallets:
        assert fake.positions(wallet.address)["ETH"].szi == Decimal("0.03")
    assert sum(len(fake.fills(w.address)) for w in wallets) == 12
