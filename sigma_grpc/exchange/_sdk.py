"""hyperliquid-python-sdk and what it brings along (eth_account, requests), in one place.

Importing these takes about half a second, more than the rest of the service:
sigma_grpc.exchange.hyperliquid imports this module only once it needs the
exchange (a configured key at start, or the first execution), so a server that
only logs decisions starts without it.
"""

from __future__ import annotations

import requests
from eth_account import Account
from hyperliquid.api import API  # type: ignore[import-untyped]
from hyperliquid.info import Info  # type: ignore[import-untyped]
from hyperliquid.utils.error import ClientError, ServerError  # type: ignore[import-untyped]
from hyperliquid.utils.signing import (  # type: ignore[import-untyped]
    order_request_to_order_wire,
    order_wires_to_order_action,
    sign_l1_action,
)
from hyperliquid.utils.types import Cloid  # type: ignore[import-untyped]

__all__ = [
    "API",
    "Account",
    "ClientError",
    "Cloid",
    "Info",
    "ServerError",
    "order_request_to_order_wire",
    "order_wires_to_order_action",
    "requests",
    "sign_l1_action",
]
