"""The only module that uses hyperliquid-python-sdk (imported through `_sdk`, on first need).

The SDK is synchronous: every call runs in a worker thread (`asyncio.to_thread`)
under the SDK's own HTTP timeout and an asyncio timeout, so the event loop never
blocks. SDK objects are built once, off the loop. Signing goes through the SDK's
own functions with a nonce the caller chooses (the SDK's nonce is the current
millisecond, which collides for two signed calls in one millisecond).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from types import ModuleType
from typing import Any, TypeVar

from sigma_grpc.config import ConfigError, Secret
from sigma_grpc.domain.execution import (
    AccountState,
    AssetInfo,
    ExecutionReason,
    ExecutionStatus,
    Position,
    Result,
    classify_order_response,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

_EMPTY_SPOT_META: dict[str, list[Any]] = {"universe": [], "tokens": []}

# The SDK's hyperliquid.utils.constants (a test checks they still agree): known here
# without importing the SDK, so the network settings are checked at start regardless.
MAINNET_API_URL = "https://api.hyperliquid.xyz"
TESTNET_API_URL = "https://api.hyperliquid-testnet.xyz"


class ExchangeCallFailed(Exception):
    """A read from the exchange failed; the message is safe to show (no secrets)."""


class AgentWithoutAccount(Exception):
    """The key belongs to an API (agent) wallet but no main account was configured."""


class SignerAccountMismatch(Exception):
    """The key may not trade for the configured account; the message names both addresses."""


# An unknown symbol reloads the asset list at most this often (a listing is rare; meta is heavy).
META_REFRESH_S = 60.0


def _sdk() -> ModuleType:
    """The SDK's names (sigma_grpc.exchange._sdk), imported on the first call."""
    from sigma_grpc.exchange import _sdk as sdk  # noqa: PLC0415 (deferred on purpose)

    return sdk


def resolve_base_url(network: str, base_url: str | None) -> str:
    """The API URL, refusing a network that disagrees with it.

    The SDK signs for mainnet only when the URL is exactly its mainnet constant,
    so `mainnet` with another URL would sign testnet-style (every order refused),
    and `testnet` with the mainnet URL would sign real orders.
    """
    if network == "mainnet":
        url = base_url or MAINNET_API_URL
        if url != MAINNET_API_URL:
            raise ConfigError(
                f"SIGMA_HL_NETWORK=mainnet needs SIGMA_HL_BASE_URL unset or exactly {MAINNET_API_URL}: "
                f"the SDK signs mainnet actions only for that URL (got {url})"
            )
        return url
    url = base_url or TESTNET_API_URL
    if url == MAINNET_API_URL:
        raise ConfigError(
            "SIGMA_HL_BASE_URL is the mainnet URL but SIGMA_HL_NETWORK is testnet: "
            "set SIGMA_HL_NETWORK=mainnet to trade on mainnet"
        )
    return url


@dataclass(frozen=True)
class Signer:
    """The signing wallet and the main account it acts for."""

    address: str
    account_address: str

    def __repr__(self) -> str:
        return f"Signer(address={self.address!r}, account_address={self.account_address!r})"


def is_known_order(status: Any) -> bool:
    """Whether an orderStatus answer describes an order the exchange has (in any state)."""
    return isinstance(status, dict) and status.get("status") == "order"


def _fills_of(fills: Any, oid: int | None, cloid: str) -> list[tuple[Decimal, Decimal]]:
    found = []
    for fill in fills if isinstance(fills, list) else []:
        if fill.get("cloid") == cloid or (oid is not None and fill.get("oid") == oid):
            found.append((Decimal(str(fill["px"])), Decimal(str(fill["sz"]))))
    return found


class Hyperliquid:
    """Reads and signed writes against one Hyperliquid API."""

    def __init__(
        self,
        *,
        network: str,
        base_url: str | None,
        timeout_s: float,
        private_key: Secret | None,
        account_address: str | None,
    ) -> None:
        self.network = network
        self.base_url = resolve_base_url(network, base_url)
        self._timeout = timeout_s
        try:
            self._wallet = _sdk().Account.from_key(private_key.reveal()) if private_key else None
        except ValueError:
            # eth_account's message never contains the key, but say it in our words.
            raise ConfigError("the Hyperliquid private key is not a valid secp256k1 key") from None
        if self._wallet is not None:
            self.signer: Signer | None = Signer(
                address=self._wallet.address.lower(),
                account_address=(account_address or self._wallet.address).lower(),
            )
        else:
            self.signer = None
        # Balances and positions are always read for the main account, never an agent's.
        self.account_address = self.signer.account_address if self.signer else account_address
        self._account_configured = account_address is not None
        # Whether the key may trade for the account: asked once, on first use.
        self._signer_verified = self.signer is None
        self._info: Any = None
        self._api: Any = None
        self._assets: dict[str, tuple[int, AssetInfo]] = {}
        # When an unknown symbol last made the asset list reload.
        self._refreshed_for_unknown_at = -META_REFRESH_S
        self._start_lock = asyncio.Lock()

    @property
    def call_budget_s(self) -> float:
        """The longest one exchange call may take."""
        return self._timeout + 1

    def __repr__(self) -> str:
        return f"Hyperliquid(network={self.network!r}, base_url={self.base_url!r}, signer={self.signer!r})"

    async def _call(self, fn: Callable[[], T]) -> T:
        # The SDK's own timeout ends the worker thread; the asyncio one bounds the wait.
        return await asyncio.wait_for(asyncio.to_thread(fn), self.call_budget_s)

    async def _read(self, what: str, fn: Callable[[], T]) -> T:
        sdk = _sdk()
        try:
            return await self._call(fn)
        except (
            TimeoutError,
            sdk.requests.RequestException,
            sdk.ClientError,
            sdk.ServerError,
            ValueError,
            KeyError,
            TypeError,
        ) as error:
            raise ExchangeCallFailed(
                f"reading {what} from Hyperliquid failed: {type(error).__name__}"
            ) from error

    async def _ensure_started(self) -> None:
        async with self._start_lock:
            if self._info is None:
                await self._load_meta()

    async def _load_meta(self) -> None:
        sdk = _sdk()

        def build() -> tuple[Any, Any, Any]:
            reader = sdk.API(self.base_url, self._timeout)
            meta = reader.post("/info", {"type": "meta", "dex": ""})
            info = sdk.Info(self.base_url, True, meta, _EMPTY_SPOT_META, None, self._timeout)
            return info, sdk.API(self.base_url, self._timeout), meta

        self._info, self._api, meta = await self._read("meta", build)
        self._assets = {
            entry["name"]: (
                index,
                AssetInfo(entry["name"], int(entry["szDecimals"]), int(entry.get("maxLeverage", 1))),
            )
            for index, entry in enumerate(meta.get("universe", []))
            if not entry.get("isDelisted")
        }

    async def asset(self, symbol: str) -> AssetInfo | None:
        """The listed asset; an unknown symbol reloads the asset list, at most every META_REFRESH_S."""
        await self._ensure_started()
        if symbol not in self._assets:
            async with self._start_lock:
                now = asyncio.get_running_loop().time()
                if now - self._refreshed_for_unknown_at >= META_REFRESH_S:
                    self._refreshed_for_unknown_at = now
                    await self._load_meta()
        found = self._assets.get(symbol)
        return found[1] if found else None

    async def verify_signer(self) -> None:
        """Check, once, that the key may trade for the account, with the exchange's `userRole` of the key.

        The account must be the key's own (role "user") or the main account of an
        API wallet (role "agent"). Another account, a vault or a sub-account (which
        need the vault address in every action, not supported here) is refused:
        orders would go to one account while balances, exposure and reconciliation
        are read on another.
        """
        if self._signer_verified:
            return
        assert self.signer is not None
        await self._ensure_started()
        key = self.signer.address
        account = self.signer.account_address
        answer = await self._read(
            "user role", lambda: self._info.post("/info", {"type": "userRole", "user": key})
        )
        role = answer.get("role") if isinstance(answer, dict) else None
        data = (answer.get("data") if isinstance(answer, dict) else None) or {}
        if role == "agent":
            main = str(data.get("user", "")).lower()
            if not self._account_configured:
                raise AgentWithoutAccount(
                    f"the key is an API wallet acting for {main or 'another account'}: "
                    f"set SIGMA_HL_ACCOUNT_ADDRESS={main or '<its main account>'}"
                )
            if main != account:
                raise SignerAccountMismatch(
                    f"the key {key} is an API wallet of {main or 'an unknown account'}, "
                    f"not of the configured account {account} (SIGMA_HL_ACCOUNT_ADDRESS)"
                )
        elif role == "user":
            if key != account:
                raise SignerAccountMismatch(
                    f"the key {key} is its own account's, not an API wallet of the configured account "
                    f"{account} (SIGMA_HL_ACCOUNT_ADDRESS): use {account}'s key or one of its API wallets"
                )
        else:
            described = {
                "vault": "a vault",
                "subAccount": "a sub-account",
                "missing": "unknown to the exchange",
            }
            raise SignerAccountMismatch(
                f"the key {key} is {described.get(str(role), f'of role {role!r}')}; it cannot trade for "
                f"the configured account {account}: use {account}'s key or one of its API wallets"
            )
        self._signer_verified = True

    async def mids(self) -> dict[str, Decimal]:
        await self._ensure_started()
        mids = await self._read("mids", self._info.all_mids)
        return {coin: Decimal(str(px)) for coin, px in mids.items()} if isinstance(mids, dict) else {}

    async def mid(self, symbol: str) -> Decimal | None:
        return (await self.mids()).get(symbol)

    async def account_state(self, address: str) -> AccountState:
        await self._ensure_started()
        state = await self._read("account state", lambda: self._info.user_state(address))
        positions = []
        for item in state.get("assetPositions", []):
            position = item["position"]
            leverage = position.get("leverage") or {}
            positions.append(
                Position(
                    coin=position["coin"],
                    size=Decimal(str(position["szi"])),
                    notional=abs(Decimal(str(position.get("positionValue") or 0))),
                    leverage=int(leverage["value"]) if "value" in leverage else None,
                    cross=leverage.get("type", "cross") == "cross",
                )
            )
        return AccountState(Decimal(str(state["marginSummary"]["accountValue"])), tuple(positions))

    async def order_status(self, address: str, cloid: str) -> Any:
        """The exchange's orderStatus answer for `address`'s cloid ({"status": "order", ...} when known)."""
        await self._ensure_started()
        cloid_value = _sdk().Cloid.from_str(cloid)
        return await self._read("order status", lambda: self._info.query_order_by_cloid(address, cloid_value))

    async def order_fills(self, address: str, status: Any, cloid: str) -> list[tuple[Decimal, Decimal]]:
        """`address`'s fills (price, size) of the order an orderStatus answer describes."""
        details = status["order"].get("order", {})
        # userFills is capped to the latest fills: ask for the window since the order instead.
        since = int(details.get("timestamp", 0)) - 60_000
        fills = await self._read("fills", lambda: self._info.user_fills_by_time(address, max(since, 0), None))
        return _fills_of(fills, details.get("oid"), cloid)

    async def lookup_order(self, address: str, cloid: str) -> tuple[Any, list[tuple[Decimal, Decimal]]]:
        """The exchange's orderStatus for a cloid, and `address`'s fills of that order."""
        status = await self.order_status(address, cloid)
        if not is_known_order(status):
            return status, []
        return status, await self.order_fills(address, status, cloid)

    async def exchange_time(self, address: str) -> datetime | None:
        """The exchange's own clock, as its account state reports it (None when it does not say)."""
        await self._ensure_started()
        state = await self._read("account state", lambda: self._info.user_state(address))
        moment = state.get("time") if isinstance(state, dict) else None
        return datetime.fromtimestamp(int(moment) / 1000, UTC) if isinstance(moment, int) else None

    def _send_signed(self, action: dict[str, Any], nonce: int, expires_after: int) -> Any:
        """Sign and post an L1 action (runs in a worker thread: signing is CPU work too)."""
        assert self._wallet is not None
        signature = _sdk().sign_l1_action(
            self._wallet, action, None, nonce, expires_after, self.base_url == MAINNET_API_URL
        )
        payload = {
            "action": action,
            "nonce": nonce,
            "signature": signature,
            "vaultAddress": None,
            "expiresAfter": expires_after,
        }
        return self._api.post("/exchange", payload)

    async def set_leverage(
        self, symbol: str, leverage: int, *, cross: bool, nonce: int, expires_after: int
    ) -> str | None:
        """Set the asset's leverage in the given margin mode; None on success, else the failure's text."""
        sdk = _sdk()
        index, _ = self._assets[symbol]
        action = {"type": "updateLeverage", "asset": index, "isCross": cross, "leverage": leverage}
        try:
            response = await self._call(lambda: self._send_signed(action, nonce, expires_after))
        except (
            TimeoutError,
            sdk.requests.RequestException,
            sdk.ServerError,
            sdk.ClientError,
            KeyError,
        ) as error:
            return f"updateLeverage failed: {_describe(error)}"
        if isinstance(response, dict) and response.get("status") == "ok":
            return None
        return (
            f"updateLeverage refused: {response.get('response') if isinstance(response, dict) else response}"
        )

    async def place_ioc(
        self,
        *,
        symbol: str,
        is_buy: bool,
        size: Decimal,
        price: Decimal,
        cloid: str,
        nonce: int,
        expires_after: int,
    ) -> Result:
        """Send one IOC limit order and say what came of it (never raises for the exchange's answers)."""
        sdk = _sdk()
        index, _ = self._assets[symbol]
        wire = sdk.order_request_to_order_wire(
            {
                "coin": symbol,
                "is_buy": is_buy,
                "sz": float(size),
                "limit_px": float(price),
                "order_type": {"limit": {"tif": "Ioc"}},
                "reduce_only": False,
                "cloid": sdk.Cloid.from_str(cloid),
            },
            index,
        )
        action = sdk.order_wires_to_order_action([wire], None, "na")
        try:
            response = await self._call(lambda: self._send_signed(action, nonce, expires_after))
        except sdk.ClientError as error:
            # A 4xx is a definite refusal: the order was not accepted.
            reason = (
                ExecutionReason.RATE_LIMITED if error.status_code == 429 else ExecutionReason.EXCHANGE_ERROR
            )
            return Result(ExecutionStatus.FAILED, reason, _describe(error))
        except sdk.ServerError as error:
            return Result(ExecutionStatus.UNKNOWN, ExecutionReason.EXCHANGE_ERROR, _describe(error))
        except (TimeoutError, sdk.requests.Timeout) as error:
            return Result(ExecutionStatus.UNKNOWN, ExecutionReason.TIMEOUT, _describe(error))
        except sdk.requests.RequestException as error:
            # Reset or refused mid-flight: whether the exchange got the order is unknown.
            return Result(ExecutionStatus.UNKNOWN, ExecutionReason.TIMEOUT, _describe(error))
        except KeyError as error:
            # The SDK fails this way on a 4xx JSON body without "code": an answer we cannot read.
            return Result(ExecutionStatus.UNKNOWN, ExecutionReason.EXCHANGE_ERROR, _describe(error))
        return classify_order_response(response, size)

    async def cancel(self, symbol: str, cloid: str, nonce: int, expires_after: int) -> Any:
        """Cancel an order by cloid; returns the exchange's answer (errors are the caller's to log)."""
        index, _ = self._assets[symbol]
        action = {"type": "cancelByCloid", "cancels": [{"asset": index, "cloid": cloid}]}
        return await self._call(lambda: self._send_signed(action, nonce, expires_after))


def _describe(error: BaseException) -> str:
    sdk = _sdk()
    if isinstance(error, sdk.ClientError):
        return f"HTTP {error.status_code}: {str(error.error_message)[:300]}"
    if isinstance(error, sdk.ServerError):
        return f"HTTP {error.status_code}: {str(error.message)[:300]}"
    if isinstance(error, TimeoutError):
        return "no answer before the timeout"
    return f"{type(error).__name__}: {str(error)[:300]}"
