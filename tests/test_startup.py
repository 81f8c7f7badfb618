"""What starting the service costs: the Hyperliquid SDK is imported only when execution needs it,
and pgserver only when the embedded database is started."""

from __future__ import annotations

import subprocess
import sys

from hyperliquid.utils import constants  # type: ignore[import-untyped]

from sigma_grpc.exchange import hyperliquid
from tests.helpers import ROOT

PROBE = """
import sys
from sigma_grpc.app import build_exchange
from sigma_grpc.cli import main
from sigma_grpc.config import Settings, Secret
settings = Settings(hl_private_key=Secret(sys.argv[1])) if len(sys.argv) > 1 else Settings()
build_exchange(settings)
heavy = {"hyperliquid", "eth_account", "requests", "pgserver"}
print(sorted({name.split(".")[0] for name in sys.modules} & heavy))
"""


def _sdk_modules_after_start(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.strip()


def test_the_api_urls_are_the_sdks() -> None:
    assert hyperliquid.MAINNET_API_URL == constants.MAINNET_API_URL
    assert hyperliquid.TESTNET_API_URL == constants.TESTNET_API_URL


def test_a_server_without_a_key_on_an_external_database_starts_without_the_sdk_or_pgserver() -> None:
    assert _sdk_modules_after_start() == "[]"


def test_a_configured_key_loads_the_sdk_at_start() -> None:
    # A throwaway key (the secp256k1 scalar 1): never funded, never used to sign here.
    key = "0x" + "0" * 63 + "1"
    assert _sdk_modules_after_start(key) == "['eth_account', 'hyperliquid', 'requests']"
