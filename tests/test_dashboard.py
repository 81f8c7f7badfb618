"""The Signal History dashboard (/dashboard) in headless Chromium driven by Playwright, over the real gateway.

The browser is Debian's Chromium (SIGMA_CHROMIUM_PATH, else the real binary behind /usr/bin/chromium);
Playwright's own browser download is never used. `scripts/ensure_chromium.sh` installs Chromium on a
fresh Debian machine (as root). Without a browser these tests fail: they are never skipped.

Screenshots go to SIGMA_TEST_ARTIFACTS (or the test's tmp_path); their paths are printed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest

try:
    from playwright.async_api import Browser, Locator, Page, Request, Route, async_playwright, expect
except ImportError as missing:  # pragma: no cover - a set-up error, reported as such
    raise ImportError(
        "the dashboard tests need Playwright for Python: pip install -e '.[dev]' (playwright is pinned there)"
    ) from missing

from sigma_grpc.app import RunningServer, start_server
from sigma_grpc.config import Settings
from sigma_grpc.storage.pool import create_pool
from tests.fake_hyperliquid import FakeHyperliquid

# The real binaries: /usr/bin/chromium is Debian's wrapper script, which Playwright cannot drive.
CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/lib/chromium-browser/chromium-browser")
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
# The page shows times in the browser's zone: a zone without summer time, half an hour off UTC.
BROWSER_ZONE = "Asia/Kolkata"
BROWSER_OFFSET = timezone(timedelta(hours=5, minutes=30))
MINUS = "\u2212"


def chromium_path() -> str:
    """The browser to drive; fails (never skips) when there is none."""
    configured = os.environ.get("SIGMA_CHROMIUM_PATH")
    if configured:
        if not (os.path.isfile(configured) and os.access(configured, os.X_OK)):
            pytest.fail(f"SIGMA_CHROMIUM_PATH={configured} is not an executable file", pytrace=False)
        return configured
    for candidate in CHROMIUM_CANDIDATES:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "No Chromium for the dashboard's browser tests. Run scripts/ensure_chromium.sh (as root it installs "
        "Debian's chromium package), or set SIGMA_CHROMIUM_PATH to a Chromium/Chrome binary. "
        "'playwright install' is not used.",
        pytrace=False,
    )


# -- what the tests seed, and what the dashboard must show for it ----------------------------------------


@dataclass
class Seed:
    """One decision to log through the API, and its outcome (pnl, R, minutes before now it closed)."""

    symbol: str
    direction: str
    decision_type: str
    minutes_ago: int | None  # None: decided now (the server's time)
    gates: list[dict[str, Any]] = field(default_factory=list)
    risk_checks: list[dict[str, Any]] = field(default_factory=list)
    outcome: tuple[str, float, int] | None = None
    execute: bool = False
    id: str = ""
    decided_at: str = ""
    closed_at: str = ""

    @property
    def is_signal(self) -> bool:
        return self.decision_type == "DECISION_TYPE_SIGNAL"

    @property
    def badge(self) -> str:
        if not self.is_signal:
            return "none"
        if self.outcome is None:
            return "pending"
        pnl = Decimal(self.outcome[0])
        return "win" if pnl > 0 else "loss" if pnl < 0 else "breakeven"


def gate(
    name: str, passed: bool, value: float | None = None, threshold: float | None = None
) -> dict[str, Any]:
    result: dict[str, Any] = {"name": name, "passed": passed}
    if value is not None:
        result["value"] = value
    if threshold is not None:
        result["threshold"] = threshold
    return result


CONSENSUS = [gate("supermajority", True, 0.8, 0.7), gate("effective_k", True, 3.1, 2.0)]


def seeds() -> list[Seed]:
    """Newest first: the order the dashboard lists them in."""
    return [
        Seed("ETH", "DIRECTION_LONG", "DECISION_TYPE_SIGNAL", None, CONSENSUS, execute=True),
        Seed("BTC", "DIRECTION_LONG", "DECISION_TYPE_SIGNAL", 5, CONSENSUS),
        Seed(
            "SOL",
            "DIRECTION_SHORT",
            "DECISION_TYPE_SKIP",
            10,
            [
                gate("supermajority", False, 0.55, 0.7),
                gate("effective_k", True, 2.4, 2.0),
                gate("freshness", False, 95, 60),
            ],
        ),
        Seed(
            "BTC",
            "DIRECTION_LONG",
            "DECISION_TYPE_RISK_REJECT",
            15,
            CONSENSUS,
            [{"name": "max_exposure", "passed": False, "value": 0.42, "limit": 0.3}],
        ),
        Seed("BTC", "DIRECTION_LONG", "DECISION_TYPE_SIGNAL", 20, CONSENSUS, outcome=("125.5", 1.8, 2)),
        Seed("ETH", "DIRECTION_SHORT", "DECISION_TYPE_SIGNAL", 25, CONSENSUS, outcome=("-40", -0.5, 12)),
        Seed(
            "ETH",
            "DIRECTION_SHORT",
            "DECISION_TYPE_SKIP",
            30,
            [gate("supermajority", False, 0.6, 0.7), gate("effective_k", True)],
        ),
        Seed("SOL", "DIRECTION_LONG", "DECISION_TYPE_SIGNAL", 35, CONSENSUS, outcome=("0", 0.0, 1)),
        Seed("BTC", "DIRECTION_SHORT", "DECISION_TYPE_SIGNAL", 40, CONSENSUS, outcome=("60.25", 0.9, 30)),
        Seed("ETH", "DIRECTION_LONG", "DECISION_TYPE_SIGNAL", 45, CONSENSUS, outcome=("-12.5", -0.25, 8)),
        Seed("SOL", "DIRECTION_LONG", "DECISION_TYPE_SIGNAL", 50, CONSENSUS),
    ]


def fmt_r(value: float, decimals: int = 4) -> str:
    """+1.80R, −0.25R, 0.00R: 2 to `decimals` decimals."""
    text = f"{abs(value):.{decimals}f}".rstrip("0")
    whole, fraction = text.split(".")
    text = f"{whole}.{fraction.ljust(2, '0')}R"
    return f"+{text}" if value > 0 else f"{MINUS}{text}" if value < 0 else text


def fmt_usd(pnl: str) -> str:
    amount = Decimal(pnl)
    text = f"{abs(amount):,.2f} USD"
    return f"+{text}" if amount > 0 else f"{MINUS}{text}" if amount < 0 else text


def fmt_pct(numerator: int, denominator: int) -> str:
    return f"{Decimal(100 * numerator) / Decimal(denominator):.1f}%"


def expected_cards(rows: list[Seed]) -> dict[str, str]:
    """The five cards, computed from the seeds (not from the API)."""
    signals = [s for s in rows if s.is_signal]
    closed = [s for s in signals if s.outcome is not None]
    wins = [s for s in closed if s.badge == "win"]
    skips = [s for s in rows if s.decision_type == "DECISION_TYPE_SKIP"]
    r_total = sum(Decimal(str(s.outcome[1])) for s in closed if s.outcome)
    return {
        "total-signals": str(len(signals)),
        "win-rate": fmt_pct(len(wins), len(closed)) if closed else "\u2014",
        "avg-r": fmt_r(float(r_total / len(closed)), 2) if closed else "\u2014",
        "skip-rate": fmt_pct(len(skips), len(rows)) if rows else "\u2014",
        "pending": str(len([s for s in signals if s.outcome is None])),
    }


# -- fixtures --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_exchange() -> Iterator[FakeHyperliquid]:
    """Mid prices for the dry-run (paper) executions."""
    with FakeHyperliquid() as running:
        yield running
        assert running.internal_errors == []


@pytest.fixture(scope="module")
async def dashboard_server(database_url: str, fake_exchange: FakeHyperliquid) -> AsyncIterator[RunningServer]:
    pool = await create_pool(database_url, max_size=6)
    settings = Settings(reconcile_interval_s=3600, hl_base_url=fake_exchange.base_url, hl_private_key=None)
    running = await start_server(pool, "127.0.0.1:0", settings, http_addr="127.0.0.1:0")
    yield running
    await running.stop(grace=1)
    await pool.close()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for the module; Playwright gives it a fresh, temporary user-data dir."""
    executable = chromium_path()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=LAUNCH_ARGS
        )
        yield launched
        await launched.close()


@pytest.fixture
def base_url(dashboard_server: RunningServer) -> str:
    return f"http://127.0.0.1:{dashboard_server.http_port}"


@pytest.fixture
async def http(base_url: str, clean_db: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        yield client


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SIGMA_TEST_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class Watched:
    """A page with what it logged and asked for."""

    page: Page
    origin: str
    errors: list[str] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)

    def urls(self, path: str) -> list[str]:
        return [r.url for r in self.requests if urlsplit(r.url).path == path]

    def assert_clean(self, allowed_errors: tuple[str, ...] = ()) -> None:
        foreign = [r.url for r in self.requests if not r.url.startswith(self.origin + "/")]
        assert foreign == [], f"requests to another origin than {self.origin}: {foreign}"
        errors = [e for e in self.errors if not any(a in e for a in allowed_errors)]
        assert errors == [], f"console errors: {errors}"


async def open_page(browser: Browser, base_url: str, viewport: dict[str, int]) -> Watched:
    context = await browser.new_context(
        viewport=viewport,  # type: ignore[arg-type]
        locale="en-GB",
        timezone_id=BROWSER_ZONE,
        service_workers="block",
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    watched = Watched(page, base_url)
    page.on("console", lambda m: watched.errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: watched.errors.append(f"pageerror: {e}"))

    def record(request: Request) -> None:
        watched.requests.append(request)

    page.on("request", record)
    return watched


@pytest.fixture
async def pages(browser: Browser, base_url: str) -> AsyncIterator[list[Watched]]:
    opened: list[Watched] = []
    yield opened
    for watched in opened:
        await watched.page.context.close()


async def seed(http: httpx.AsyncClient, rows: list[Seed]) -> list[Seed]:
    """Log the seeds (oldest first), record their outcomes, execute the ones marked so (dry run)."""
    now = datetime.now(UTC)
    for row in reversed(rows):
        body: dict[str, Any] = {
            "symbol": row.symbol,
            "direction": row.direction,
            "decisionType": row.decision_type,
            "traderCount": 6,
            "agreementPct": 0.8,
            "effectiveK": 3.1,
            "gates": row.gates,
            "riskChecks": row.risk_checks,
        }
        if row.minutes_ago is not None:
            body["decidedAt"] = (now - timedelta(minutes=row.minutes_ago)).isoformat()
        logged = await http.post("/v1/decisions", json=body)
        assert logged.status_code == 200, logged.text
        row.id = logged.json()["decision"]["id"]
        row.decided_at = logged.json()["decision"]["decidedAt"]
        if row.outcome:
            pnl, r_multiple, closed_minutes_ago = row.outcome
            closed_at = (now - timedelta(minutes=closed_minutes_ago)).isoformat()
            closed = await http.post(
                f"/v1/decisions/{row.id}/outcome",
                json={"outcomePnl": pnl, "outcomeRMultiple": r_multiple, "outcomeClosedAt": closed_at},
            )
            assert closed.status_code == 200, closed.text
            row.closed_at = closed.json()["decision"]["outcomeClosedAt"]
    if any(row.execute for row in rows):
        enabled = await http.patch(
            "/v1/execution-config",
            json={
                "config": {"enabled": True, "hlEnabled": True, "dryRun": True},
                "updateMask": "enabled,hlEnabled,dryRun",
            },
        )
        assert enabled.status_code == 200, enabled.text
        for row in rows:
            if row.execute:
                executed = await http.post("/v1/executions", json={"decisionId": row.id})
                assert executed.status_code == 200, executed.text
                assert executed.json()["execution"]["status"] == "EXECUTION_STATUS_SIMULATED"
    return rows


async def screenshot(page: Page, artifacts: Path, name: str, capsys: pytest.CaptureFixture[str]) -> Path:
    path = artifacts / name
    await page.screenshot(path=str(path), full_page=True)
    with capsys.disabled():
        print(f"\n[dashboard screenshot] {path}")
    return path


async def goto(watched: Watched, query: str) -> None:
    await watched.page.goto(f"{watched.origin}/dashboard/{query}")
    await watched.page.wait_for_selector("body[data-state=ready]")


def row_ids(rows: list[Seed]) -> list[str]:
    return [r.id for r in rows]


def row_of(page: Page, decision_id: str) -> Locator:
    return page.locator(f'#decisions > li[data-id="{decision_id}"]')


async def listed_ids(page: Page) -> list[str]:
    ids: list[str] = await page.eval_on_selector_all("#decisions > li", "els => els.map(e => e.dataset.id)")
    return ids


async def assert_cards(page: Page, expected: dict[str, str]) -> None:
    for testid, text in expected.items():
        await expect(page.get_by_test_id(testid)).to_have_text(text)


# -- the tests -------------------------------------------------------------------------------------------


async def test_cards_rows_gates_paging_charts_and_filters(
    http: httpx.AsyncClient,
    browser: Browser,
    base_url: str,
    pages: list[Watched],
    artifacts: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = await seed(http, seeds())
    watched = await open_page(browser, base_url, PHONE)
    pages.append(watched)
    page = watched.page
    await goto(watched, "?pageSize=5&refresh=3600")

    # The cards: the numbers computed from the seeds.
    await assert_cards(page, expected_cards(rows))

    # The first page: newest first, with badges, P&L and R.
    decisions = page.locator("#decisions > li")
    await expect(decisions).to_have_count(5)
    assert await listed_ids(page) == row_ids(rows[:5])

    # Load more appends the next pages, each with ONE executions call for its decisions.
    more = page.get_by_role("button", name="Load more")
    await more.click()
    await expect(decisions).to_have_count(10)
    await more.click()
    await expect(decisions).to_have_count(11)
    await expect(more).to_be_hidden()
    assert await listed_ids(page) == row_ids(rows)
    executions_calls = watched.urls("/v1/executions")
    pages_of = [rows[0:5], rows[5:10], rows[10:11]]
    assert [sorted(parse_qs(urlsplit(u).query)["decisionIds"]) for u in executions_calls] == [
        sorted(r.id for r in chunk if r.is_signal) for chunk in pages_of
    ]

    for row in rows:
        item = row_of(page, row.id)
        await expect(item).to_have_attribute("data-outcome", row.badge)
        await expect(item.locator(".symbol")).to_have_text(row.symbol)
        # decidedAt in the browser's local time.
        decided = datetime.fromisoformat(row.decided_at.replace("Z", "+00:00")).astimezone(BROWSER_OFFSET)
        time = item.locator("time.decided-at")
        await expect(time).to_have_attribute("datetime", row.decided_at)
        await expect(time).to_contain_text(decided.strftime("%H:%M:%S"))
        await expect(item.locator(".reasoning")).not_to_be_empty()
        badge = item.locator(".badge.outcome")
        if row.badge == "none":
            await expect(badge).to_have_count(0)
            continue
        await expect(badge).to_have_text(row.badge.capitalize())
        await expect(badge).to_have_class(f"badge outcome {row.badge}")
        if row.outcome:
            await expect(item.locator(".pnl")).to_have_text(fmt_usd(row.outcome[0]))
            await expect(item.locator(".r")).to_have_text(fmt_r(row.outcome[1]))
        else:
            await expect(item.locator(".pnl")).to_have_count(0)

    # The execution's status, on the decision that has one only.
    executed = row_of(page, rows[0].id).locator(".exec-status")
    await expect(executed).to_have_text("Simulated")
    await expect(executed).to_have_attribute("data-status", "EXECUTION_STATUS_SIMULATED")
    await expect(page.locator(".exec-status")).to_have_count(1)

    # A skip's gates expand: each gate's name, result, value and threshold.
    skip = row_of(page, rows[2].id)
    table = skip.locator("details.gates table").first
    await expect(table).to_be_hidden()
    await skip.locator("details.gates summary").click()
    await expect(table).to_be_visible()
    cells = await table.locator("tbody tr").evaluate_all(
        "trs => trs.map(tr => [...tr.cells].map(td => td.textContent))"
    )
    assert cells == [
        ["supermajority", "failed", "0.55", "0.7"],
        ["effective_k", "passed", "2.4", "2"],
        ["freshness", "failed", "95", "60"],
    ]
    reject = row_of(page, rows[3].id)
    await reject.locator("details.gates summary").click()
    await expect(reject.locator("details.gates table").nth(1).locator("tbody tr")).to_have_text(
        ["max_exposurefailed0.420.3"]
    )

    # The charts: cumulative R by close time, gate failures by count.
    closed = sorted((r for r in rows if r.outcome), key=lambda r: r.closed_at)
    cumulative, total = [], Decimal(0)
    for row in closed:
        assert row.outcome
        total += Decimal(str(row.outcome[1]))
        cumulative.append(f"{total:.4f}")
    await expect(page.locator("#chart-r")).to_have_attribute("data-points", ",".join(cumulative))
    await expect(page.locator("#chart-r canvas")).to_have_count(1)
    failures: dict[str, int] = {}
    for row in rows:
        for g in row.gates:
            if not g["passed"]:
                failures[g["name"]] = failures.get(g["name"], 0) + 1
    ordered = sorted(failures.items(), key=lambda item: (-item[1], item[0]))
    await expect(page.locator("#chart-gates")).to_have_attribute(
        "data-points", ",".join(f"{n}={c}" for n, c in ordered)
    )
    await expect(page.locator("#chart-gates canvas")).to_have_count(1)

    # Readable on a phone: nothing wider than the screen.
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    await screenshot(page, artifacts, "dashboard-phone.png", capsys)

    # Another stats window keeps the loaded decisions.
    async with page.expect_response(lambda r: urlsplit(r.url).path == "/v1/stats" and "days=30" in r.url):
        await page.select_option("#filter-days", "30")
    await expect(page.locator("#stats-scope")).to_have_text("last 30 days")
    await expect(decisions).to_have_count(len(rows))
    await assert_cards(page, expected_cards(rows))

    # Filters: the decision type narrows the list...
    await page.select_option("#filter-type", "DECISION_TYPE_SKIP")
    await expect(decisions).to_have_count(2)
    assert await listed_ids(page) == [r.id for r in rows if r.decision_type == "DECISION_TYPE_SKIP"]
    # ...and the symbol narrows the list, the cards and the charts.
    await page.select_option("#filter-type", "")
    await page.fill("#filter-symbol", "BTC")
    await page.press("#filter-symbol", "Enter")
    btc = [r for r in rows if r.symbol == "BTC"]
    await expect(decisions).to_have_count(len(btc))
    assert await listed_ids(page) == row_ids(btc)
    await assert_cards(page, expected_cards(btc))
    await expect(page.locator("#chart-gates .empty")).to_be_visible()
    assert "symbol=BTC" in page.url
    # A symbol the API would refuse is not sent.
    await page.fill("#filter-symbol", "BTC/USD")
    await page.press("#filter-symbol", "Enter")
    await expect(page.locator("#filter-error")).to_be_visible()
    await expect(decisions).to_have_count(len(btc))

    watched.assert_clean()


async def test_polling_keeps_loaded_pages_and_open_rows(
    http: httpx.AsyncClient,
    browser: Browser,
    base_url: str,
    pages: list[Watched],
    artifacts: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = await seed(http, seeds())
    watched = await open_page(browser, base_url, DESKTOP)
    pages.append(watched)
    page = watched.page
    await goto(watched, "?pageSize=4&refresh=1")
    decisions = page.locator("#decisions > li")
    await page.get_by_role("button", name="Load more").click()
    await expect(decisions).to_have_count(8)
    # Open a row of the second page.
    opened = row_of(page, rows[6].id).locator("details.gates")
    await opened.locator("summary").click()
    await expect(opened).to_have_attribute("open", "")

    # Meanwhile: a new decision, and the pending BTC signal closes.
    logged = await http.post(
        "/v1/decisions",
        json={
            "symbol": "AVAX",
            "direction": "DIRECTION_LONG",
            "decisionType": "DECISION_TYPE_SIGNAL",
            "traderCount": 4,
            "agreementPct": 0.75,
            "effectiveK": 2.5,
            "gates": CONSENSUS,
        },
    )
    assert logged.status_code == 200, logged.text
    new_id = logged.json()["decision"]["id"]
    closed = await http.post(
        f"/v1/decisions/{rows[1].id}/outcome", json={"outcomePnl": "10", "outcomeRMultiple": 0.5}
    )
    assert closed.status_code == 200, closed.text

    # The next poll shows both, in place, without losing the second page or the open row.
    await expect(row_of(page, new_id)).to_have_attribute("data-outcome", "pending")
    await expect(row_of(page, rows[1].id)).to_have_attribute("data-outcome", "win")
    await expect(decisions).to_have_count(9)
    assert await listed_ids(page) == [new_id, *row_ids(rows[:8])]
    await expect(opened).to_have_attribute("open", "")
    after = [*rows, Seed("AVAX", "DIRECTION_LONG", "DECISION_TYPE_SIGNAL", 0, CONSENSUS)]
    rows[1].outcome = ("10", 0.5, 0)
    await assert_cards(page, expected_cards(after))

    # "Load more" goes on from where the loaded pages end.
    await page.get_by_role("button", name="Load more").click()
    await expect(decisions).to_have_count(12)
    assert await listed_ids(page) == [new_id, *row_ids(rows)]
    await expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    # Every executions call names a page's signals at once (each page here has several), never one per row.
    calls = watched.urls("/v1/executions")
    assert calls
    assert all(len(parse_qs(urlsplit(url).query)["decisionIds"]) >= 2 for url in calls)
    await screenshot(page, artifacts, "dashboard-desktop.png", capsys)
    watched.assert_clean()


# Counts the questions the page asks (each opening of a modal dialog).
ASKS_COUNTER = """
(() => {
  window.__asked = 0;
  const showModal = HTMLDialogElement.prototype.showModal;
  HTMLDialogElement.prototype.showModal = function () {
    window.__asked += 1;
    return showModal.call(this);
  };
})();
"""


async def test_asks_for_a_reader_token_once_on_401(
    http: httpx.AsyncClient, browser: Browser, base_url: str, pages: list[Watched]
) -> None:
    await seed(http, seeds()[4:6])
    watched = await open_page(browser, base_url, PHONE)
    pages.append(watched)
    page = watched.page
    api_calls: list[tuple[str, str | None]] = []

    async def require_token(route: Route) -> None:
        authorization = route.request.headers.get("authorization")
        api_calls.append((route.request.url, authorization))
        if authorization != "Bearer reader-s3cret":
            await route.fulfill(
                status=401,
                content_type="application/json",
                body='{"code": 16, "message": "a reader token is required", "details": []}',
            )
        else:
            await route.continue_()

    await page.route(f"{base_url}/v1/**", require_token)
    await page.add_init_script(ASKS_COUNTER)
    await page.goto(f"{base_url}/dashboard")  # redirected to /dashboard/
    dialog = page.locator("#token-dialog")
    await expect(dialog).to_be_visible()
    assert await page.evaluate("window.__asked") == 1  # one question, however many calls were refused
    # Dismissed: the page says what it needs and offers to ask again (and stops polling meanwhile).
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    ask_again = page.locator("#status").get_by_role("button", name="Enter token")
    await ask_again.click()
    await expect(dialog).to_be_visible()
    # A refused token is dropped and asked for again; several calls refused at once ask one question.
    await page.fill("#token-input", "wrong-token")
    await page.click("#token-submit")
    await expect(page.locator("#token-message")).to_contain_text("refused")
    await expect(dialog).to_be_visible()
    await page.fill("#token-input", "reader-s3cret")
    await page.click("#token-submit")
    await expect(dialog).to_be_hidden()
    await page.wait_for_selector("body[data-state=ready]")
    await expect(page.get_by_test_id("total-signals")).to_have_text("2")
    assert await page.evaluate("sessionStorage.getItem('sigma.readerToken')") == "reader-s3cret"
    assert await page.evaluate("window.__asked") == 3  # first, after "Enter token", after the refusal

    # Reloaded in the same tab: the kept token is sent on every call, nothing is asked.
    api_calls.clear()
    await page.reload()
    await page.wait_for_selector("body[data-state=ready]")
    await expect(page.get_by_test_id("total-signals")).to_have_text("2")
    await expect(dialog).to_be_hidden()
    assert await page.evaluate("window.__asked") == 0
    assert api_calls, "the page made no API call"
    assert {authorization for _, authorization in api_calls} == {"Bearer reader-s3cret"}
    # Chromium logs each 401 answer as a failed resource load; nothing else may be logged.
    watched.assert_clean(allowed_errors=("status of 401",))


async def test_api_data_is_escaped(browser: Browser, base_url: str, pages: list[Watched]) -> None:
    watched = await open_page(browser, base_url, PHONE)
    pages.append(watched)
    page = watched.page
    hostile = '<img src=x onerror="window.__owned=1"><script>window.__owned=2</script>'
    decision = {
        "id": "0b7f2c1e-6a4d-4e5b-9a8f-3c2d1e0f9a8b",
        "decidedAt": "2026-01-02T03:04:05.123456Z",
        "symbol": hostile,
        "direction": "DIRECTION_LONG",
        "decisionType": "DECISION_TYPE_SKIP",
        "reasoning": f"<b>bold</b>{hostile}",
        "gates": [{"name": hostile, "passed": False, "value": 1, "threshold": 2}],
        "riskChecks": [],
    }
    answers = {
        "/v1/stats": {"totals": {}, "bySymbol": [{"symbol": hostile, "stats": {}}], "gateFailures": []},
        "/v1/decisions": {"decisions": [decision], "nextPageToken": ""},
        "/v1/executions": {"executions": [], "nextPageToken": ""},
    }

    async def answer(route: Route) -> None:
        path = urlsplit(route.request.url).path
        query = parse_qs(urlsplit(route.request.url).query)
        body = answers[path]
        if path == "/v1/decisions" and query.get("outcome"):
            body = {"decisions": [], "nextPageToken": ""}
        await route.fulfill(status=200, json=body)

    await page.route(f"{base_url}/v1/**", answer)
    await goto(watched, "")
    item = page.locator("#decisions > li")
    await expect(item).to_have_count(1)
    await expect(item.locator(".symbol")).to_have_text(hostile)
    await expect(item.locator(".reasoning")).to_have_text(f"<b>bold</b>{hostile}")
    await item.locator("summary").click()
    await expect(item.locator(".check-name")).to_have_text(hostile)
    assert await page.locator("#decisions img, #decisions script, #decisions b").count() == 0
    assert await page.evaluate("window.__owned") is None
    watched.assert_clean()


# -- the signal-quality view -----------------------------------------------------------------------------

# Closed signals by agreement_pct, their R-multiples (P&L = 100 x R): 12 in one bucket (enough), 3 in
# another (fewer than GetSignalQuality's min_closed of 10), 1 below the first edge (the out-of-range bucket).
QUALITY_SIGNALS = {
    0.85: [1.5, 2.0, 0.8, 1.2, 1.0, 0.6, 2.5, 0.9, -1.0, -0.5, -1.0, -0.7],
    0.65: [1.0, -1.0, -0.5],
    0.4: [-0.3],
}
# Skips, each with its gates: near-misses at known distances, gates failing alone and together.
QUALITY_SKIPS = [
    [gate("supermajority", False, 0.65, 0.7), gate("effective_k", True, 2.5, 2.0)],
    [gate("supermajority", False, 0.69, 0.7), gate("effective_k", True, 2.5, 2.0)],
    [gate("supermajority", False, 0.55, 0.7), gate("effective_k", False, 1.5, 2.0)],
    [gate("supermajority", False, 0.6, 0.7), gate("effective_k", False, 1.85, 2.0)],
    [gate("supermajority", True, 0.8, 0.7), gate("freshness", False, 95, 60)],
    [gate("supermajority", True, 0.8, 0.7), gate("freshness", False)],
]
AGREEMENT_LABELS = ["50\u201360%", "60\u201370%", "70\u201380%", "80\u201390%", "90\u2013100%"]
GATE_SIDES = {"GATE_DIRECTION_MIN": "below threshold", "GATE_DIRECTION_MAX": "above threshold"}
EN_DASH = "\u2013"
NONE = "\u2014"


async def seed_quality(http: httpx.AsyncClient) -> list[float]:
    """Log QUALITY_SIGNALS (closed 2 h after their decision, over the last 6 days), one pending signal
    and QUALITY_SKIPS; returns the closed signals' R-multiples."""
    now = datetime.now(UTC)
    closed: list[float] = []
    for agreement, multiples in QUALITY_SIGNALS.items():
        for r_multiple in multiples:
            n = len(closed)
            decided = now - timedelta(days=n % 6, hours=3, minutes=n)
            logged = await http.post(
                "/v1/decisions",
                json={
                    "symbol": "BTC",
                    "direction": "DIRECTION_LONG",
                    "decisionType": "DECISION_TYPE_SIGNAL",
                    "traderCount": 4 + n % 5,
                    "agreementPct": agreement,
                    "effectiveK": 3.1,
                    "gates": CONSENSUS,
                    "decidedAt": decided.isoformat(),
                },
            )
            assert logged.status_code == 200, logged.text
            decision_id = logged.json()["decision"]["id"]
            outcome = await http.post(
                f"/v1/decisions/{decision_id}/outcome",
                json={
                    "outcomePnl": str(Decimal(str(r_multiple)) * 100),
                    "outcomeRMultiple": r_multiple,
                    "outcomeClosedAt": (decided + timedelta(hours=2)).isoformat(),
                },
            )
            assert outcome.status_code == 200, outcome.text
            closed.append(r_multiple)
    pending = {
        "symbol": "ETH",
        "direction": "DIRECTION_SHORT",
        "decisionType": "DECISION_TYPE_SIGNAL",
        "traderCount": 5,
        "agreementPct": 0.95,
        "effectiveK": 3.1,
        "gates": CONSENSUS,
        "decidedAt": (now - timedelta(hours=1)).isoformat(),
    }
    skips = [
        {
            "symbol": "SOL",
            "direction": "DIRECTION_NONE",
            "decisionType": "DECISION_TYPE_SKIP",
            "traderCount": 5,
            "agreementPct": 0.6,
            "effectiveK": 1.5,
            "gates": gates,
            "decidedAt": (now - timedelta(days=k % 5, minutes=30 + k)).isoformat(),
        }
        for k, gates in enumerate(QUALITY_SKIPS)
    ]
    for body in [pending, *skips]:
        logged = await http.post("/v1/decisions", json=body)
        assert logged.status_code == 200, logged.text
    return closed


def js_fixed(value: float, digits: int) -> str:
    """JavaScript's Number.prototype.toFixed: the exact double, ties away from zero."""
    text = str(Decimal(value).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))
    return text[1:] if value == 0 and text.startswith("-") else text


def js_pct(fraction: float) -> str:
    return f"{js_fixed(fraction * 100, 1)}%"


def js_range(interval: dict[str, float]) -> str:
    return (
        f"{js_fixed(interval.get('low', 0) * 100, 1)}{EN_DASH}{js_fixed(interval.get('high', 0) * 100, 1)}%"
    )


def js_r(value: float, decimals: int = 4) -> str:
    """The page's formatR: 2 to `decimals` decimals, a sign."""
    whole, fraction = js_fixed(abs(value), decimals).split(".")
    text = f"{whole}.{fraction.rstrip('0').ljust(2, '0')}R"
    return f"+{text}" if value > 0 else f"{MINUS}{text}" if value < 0 else text


def js_duration(text: str) -> str:
    """The page's formatDuration of a proto3 JSON Duration."""
    total = float(text.removesuffix("s"))
    if total < 10:
        return f"{float(js_fixed(total, 1)):g} s"
    rest = int(Decimal(total).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    days, rest = divmod(rest, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    return f"{seconds} s"


def expected_closed_cards(totals: dict[str, Any]) -> dict[str, str]:
    """The second row of cards (and the win rate's interval), from a GetStats response's totals."""
    wins, losses = int(totals.get("winCount", "0")), int(totals.get("lossCount", "0"))
    return {
        "win-rate-interval": f"95% interval {js_range(totals['winRateInterval'])}",
        "profit-factor": js_fixed(totals["profitFactor"], 2),
        "max-drawdown": js_r(-totals["maxDrawdownR"], 2),
        "avg-win-loss": f"{js_r(totals['avgWinR'], 2) if wins else NONE} / "
        f"{js_r(totals['avgLossR'], 2) if losses else NONE}",
        "best-worst": f"{js_r(totals['bestR'])} / {js_r(totals['worstR'])}",
        "streaks": f"{totals['longestWinStreak']} / {totals['longestLossStreak']}",
        "median-holding": js_duration(totals["medianHoldingTime"]),
    }


async def cell_texts(rows: Locator) -> list[list[str]]:
    texts: list[list[str]] = await rows.evaluate_all(
        "trs => trs.map(tr => [...tr.cells].map(td => td.textContent))"
    )
    return texts


def is_api(path: str) -> Any:
    return lambda response: urlsplit(response.url).path == path


async def test_signal_quality_view_draws_what_the_api_returns(
    http: httpx.AsyncClient,
    browser: Browser,
    base_url: str,
    pages: list[Watched],
    artifacts: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    closed = await seed_quality(http)
    watched = await open_page(browser, base_url, PHONE)
    pages.append(watched)
    page = watched.page
    async with page.expect_response(is_api("/v1/stats")) as stats_answer:
        await goto(watched, "?refresh=3600")
    totals = (await (await stats_answer.value).json())["totals"]

    # The new GetStats figures, as the API gave them (and, for a few, as the seeds say).
    for testid, text in expected_closed_cards(totals).items():
        await expect(page.get_by_test_id(testid)).to_have_text(text)
    gross_won = sum(Decimal(str(r)) for r in closed if r > 0)
    gross_lost = -sum(Decimal(str(r)) for r in closed if r < 0)
    await expect(page.get_by_test_id("profit-factor")).to_have_text(f"{gross_won / gross_lost:.2f}")
    await expect(page.get_by_test_id("best-worst")).to_have_text(f"{js_r(max(closed))} / {js_r(min(closed))}")
    await expect(page.get_by_test_id("median-holding")).to_have_text("2 h")

    # The view opens from its tab, with both analytics calls (no other route) and its own filters.
    quality_view = page.locator("#view-quality")
    await expect(quality_view).to_be_hidden()
    async with (
        page.expect_response(is_api("/v1/signal-quality")) as quality_answer,
        page.expect_response(is_api("/v1/gate-analytics")) as gates_answer,
    ):
        await page.get_by_role("tab", name="Signal quality").click()
    await expect(quality_view).to_have_attribute("data-state", "ready")
    quality = await (await quality_answer.value).json()
    gates = await (await gates_answer.value).json()
    assert "view=quality" in page.url
    await expect(page.get_by_role("tab", name="Signal quality")).to_have_attribute("aria-selected", "true")
    await expect(page.locator("#view-decisions")).to_be_hidden()
    await expect(page.locator("#filter-type")).to_be_hidden()
    await expect(page.locator("#filter-buckets")).to_be_visible()
    await expect(page.locator("#quality-empty")).to_be_hidden()
    await expect(page.locator("#quality-error")).to_be_hidden()
    assert quality["bucketWidth"] == "BUCKET_WIDTH_DAY"  # the default for 7 days

    # (1) Cumulative R: one point per time bucket, the API's values, ending at the seeds' total.
    series = quality["timeSeries"]
    equity = page.locator("#chart-equity")
    await expect(equity).to_have_attribute("data-buckets", str(len(series)))
    await expect(equity).to_have_attribute(
        "data-points", ",".join(js_fixed(b.get("cumulativeR", 0), 4) for b in series)
    )
    assert f"{sum(Decimal(str(r)) for r in closed):.4f}" == js_fixed(series[-1]["cumulativeR"], 4)
    await expect(equity.locator("canvas")).to_have_count(1)
    await equity.locator("summary").click()
    bucket_rows = page.locator("#bucket-table tbody tr")
    await expect(bucket_rows).to_have_count(len(series))
    await expect(page.locator("#bucket-table tbody tr.insufficient")).to_have_count(
        sum(1 for b in series if b.get("insufficientData"))
    )
    assert [row[1:3] for row in await cell_texts(bucket_rows)] == [
        [b.get("signals", "0"), b.get("closed", "0")] for b in series
    ]

    # (2) Win rate by agreement: each range and the out-of-range bucket (something fell there), with
    # the win rate, its interval and the too-few marking the API gave.
    buckets = [b for b in quality["byAgreement"]["buckets"] if not b.get("outOfRange") or int(b["closed"])]
    strength_rows = page.locator("#strength-table tbody tr")
    await expect(strength_rows).to_have_count(len(buckets))
    assert len(buckets) == 6
    expected_rows = []
    for label, bucket in zip([*AGREEMENT_LABELS, "outside"], buckets, strict=True):
        n = int(bucket.get("closed", "0"))
        badge = "too few" if bucket.get("insufficientData") and n else ""
        expected_rows.append(
            [
                f"{label}{badge}",
                str(n),
                js_pct(bucket.get("winRate", 0)) if n else NONE,
                js_range(bucket["winRateInterval"]) if n else NONE,
                js_r(bucket.get("avgR", 0), 2) if n else NONE,
            ]
        )
    assert [row for row in await cell_texts(strength_rows)] == expected_rows
    insufficient = await strength_rows.evaluate_all(
        "trs => trs.map(tr => tr.classList.contains('insufficient'))"
    )
    assert insufficient == [bool(b.get("insufficientData")) for b in buckets]
    # As the seeds say: 8 of 12 won at 80-90 % (enough), 1 of 3 at 60-70 % (too few), 1 loss outside.
    assert expected_rows[3][:3] == ["80\u201390%", "12", "66.7%"] and insufficient[3] is False
    assert expected_rows[1][:3] == ["60\u201370%too few", "3", "33.3%"] and insufficient[1] is True
    assert expected_rows[5][:3] == ["outsidetoo few", "1", "0.0%"]
    await expect(page.locator("#strength-table .badge.few")).to_have_count(
        sum(1 for b in buckets if b.get("insufficientData") and int(b.get("closed", "0")))
    )
    strength = page.locator("#chart-strength")
    await expect(strength).to_have_attribute("data-bars", "3")
    await expect(strength.locator("canvas")).to_have_count(1)
    await expect(strength.locator(".few-note")).to_contain_text(f"fewer than {quality['minClosed']} closed")
    # Another measure of consensus, from the same answer.
    await page.select_option("#strength-measure", "traderCount")
    await expect(page.locator("#strength-table th.measure-name")).to_have_text("Traders")
    by_traders = [
        b for b in quality["byTraderCount"]["buckets"] if not b.get("outOfRange") or int(b["closed"])
    ]
    await expect(strength_rows).to_have_count(len(by_traders))
    await page.select_option("#strength-measure", "agreement")
    await expect(strength_rows).to_have_count(len(buckets))

    # (3) Near-misses: one histogram per gate with binned values, the API's counts.
    binned = [g for g in gates["gates"] if any(int(b.get("count", "0")) for b in g.get("nearMisses", []))]
    await expect(page.locator("#near-misses figure")).to_have_count(len(binned))
    bars = {}
    for g in binned:
        counts = [int(b.get("count", "0")) for b in g["nearMisses"]]
        figure = page.locator(f'#near-misses figure[data-gate="{g["name"]}"]')
        await expect(figure).to_have_attribute("data-counts", ",".join(map(str, counts)))
        await expect(figure).to_have_attribute("data-bars", str(sum(1 for c in counts if c)))
        await expect(figure.locator("canvas")).to_have_count(1)
        bars[g["name"]] = sum(1 for c in counts if c)
    assert bars == {"supermajority": 4, "effective_k": 2, "freshness": 1}
    await expect(page.locator('#near-misses figure[data-gate="freshness"] .note')).to_have_text(
        "Not binned: 1 without a value."
    )

    # (4) The gates that alone blocked, and the gates failing together.
    gate_rows = await cell_texts(page.locator("#gate-table tbody tr"))
    assert gate_rows == [
        [
            g["name"],
            g.get("onlyFailure", "0"),
            g.get("failed", "0"),
            g.get("evaluated", "0"),
            js_pct(g.get("failureRate", 0)),
            GATE_SIDES.get(g.get("direction", ""), NONE),
        ]
        for g in gates["gates"]
    ]
    assert {row[0]: row[1] for row in gate_rows} == {
        "supermajority": "2",
        "effective_k": "0",
        "freshness": "2",
    }
    skips = int(gates["skipsWithFailures"])
    assert skips == len(QUALITY_SKIPS)
    combo_rows = await cell_texts(page.locator("#combo-table tbody tr"))
    assert combo_rows == [
        [" + ".join(c["gates"]), c["count"], js_pct(int(c["count"]) / skips)] for c in gates["failedTogether"]
    ]
    assert sorted(combo_rows) == [
        ["effective_k + supermajority", "2", "33.3%"],
        ["freshness", "2", "33.3%"],
        ["supermajority", "2", "33.3%"],
    ]
    await expect(page.locator("#gates-scope")).to_have_text("6 skips with a failed gate")

    # Readable on a phone: nothing wider than the screen.
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    await screenshot(page, artifacts, "dashboard-quality-phone.png", capsys)

    # Hourly buckets: asked for, and drawn one point each.
    async with page.expect_response(
        lambda r: urlsplit(r.url).path == "/v1/signal-quality" and "bucketWidth=BUCKET_WIDTH_HOUR" in r.url
    ) as hourly_answer:
        await page.select_option("#filter-buckets", "hour")
    hourly = await (await hourly_answer.value).json()
    await expect(quality_view).to_have_attribute("data-loads", "2")
    assert len(hourly["timeSeries"]) > len(series)
    await expect(equity).to_have_attribute("data-buckets", str(len(hourly["timeSeries"])))
    await expect(page.locator("#bucket-table tbody tr")).to_have_count(len(hourly["timeSeries"]))
    assert "buckets=hour" in page.url

    # Back to the decisions.
    await page.get_by_role("tab", name="Decisions").click()
    await expect(page.locator("#view-decisions")).to_be_visible()
    await expect(quality_view).to_be_hidden()
    await expect(page.locator("#decisions > li")).to_have_count(len(closed) + 1 + len(QUALITY_SKIPS))
    assert "view=" not in page.url
    watched.assert_clean()


async def test_signal_quality_view_of_an_empty_database(
    http: httpx.AsyncClient, browser: Browser, base_url: str, pages: list[Watched]
) -> None:
    watched = await open_page(browser, base_url, DESKTOP)
    pages.append(watched)
    page = watched.page
    await goto(watched, "?view=quality&refresh=3600")
    await expect(page.locator("#view-quality")).to_have_attribute("data-state", "ready")
    notice = page.locator("#quality-empty")
    await expect(notice).to_be_visible()
    await expect(notice).to_contain_text(
        "Nothing to analyse yet: no signal and no gate was recorded in the last 7 days"
    )
    await expect(page.locator("#view-quality .quality-part")).to_have_count(2)
    for part in await page.locator("#view-quality .quality-part").all():
        await expect(part).to_be_hidden()
    await expect(page.locator("#quality-error")).to_be_hidden()
    await expect(page.locator("#status")).not_to_have_class("status error")
    for testid in (
        "profit-factor",
        "max-drawdown",
        "avg-win-loss",
        "best-worst",
        "streaks",
        "median-holding",
    ):
        await expect(page.get_by_test_id(testid)).to_have_text(NONE)
    await expect(page.get_by_test_id("win-rate-interval")).to_have_text("")
    watched.assert_clean()


async def test_signal_quality_view_reports_errors_and_escapes_names(
    browser: Browser, base_url: str, pages: list[Watched]
) -> None:
    watched = await open_page(browser, base_url, PHONE)
    pages.append(watched)
    page = watched.page
    hostile = '<img src=x onerror="window.__owned=1"><script>window.__owned=2</script>'
    failing = True
    analytics = {
        "days": 7,
        "gates": [
            {
                "name": hostile,
                "evaluated": "3",
                "failed": "2",
                "failureRate": 2 / 3,
                "onlyFailure": "1",
                "direction": "GATE_DIRECTION_MIN",
                "nearMisses": [{"lower": 0, "upper": 0.01, "count": "2"}, {"lower": 0.01, "count": "0"}],
            }
        ],
        "failedTogether": [{"gates": [hostile], "count": "2"}],
        "skipsWithFailures": "2",
    }
    quality = {
        "days": 7,
        "bucketWidth": "BUCKET_WIDTH_WEEK",
        "timeSeries": [{"start": "2026-01-05T00:00:00Z", "signals": "1", "insufficientData": True}],
        "byAgreement": {"edges": [0.5, 1], "buckets": [{"lower": 0.5, "upper": 1, "insufficientData": True}]},
        "minClosed": 10,
    }

    async def answer(route: Route) -> None:
        path = urlsplit(route.request.url).path
        if path == "/v1/signal-quality" and failing:
            await route.fulfill(status=501, json={"code": 12, "message": "Method not found!", "details": []})
        elif path == "/v1/gate-analytics" and failing:
            await route.fulfill(
                status=503, json={"code": 14, "message": "the database is unavailable", "details": []}
            )
        elif path == "/v1/signal-quality":
            await route.fulfill(status=200, json=quality)
        elif path == "/v1/gate-analytics":
            await route.fulfill(status=200, json=analytics)
        else:
            await route.fulfill(status=200, json={"totals": {}, "bySymbol": [], "gateFailures": []})

    await page.route(f"{base_url}/v1/**", answer)
    await goto(watched, "?view=quality&refresh=3600")
    await expect(page.locator("#view-quality")).to_have_attribute("data-state", "error")
    await expect(page.locator("#quality-error")).to_have_text(
        "Signal quality could not be loaded: this server does not serve it (HTTP 501): it needs a newer "
        "sigma-grpc. Gate analytics could not be loaded: the database is unavailable (HTTP 503)."
    )
    await expect(page.locator("#status")).to_have_class("status error")
    await expect(page.locator("#status")).to_contain_text("Loading failed")

    # Answers again (the time buckets changed: loaded at once), with names to show as text only.
    failing = False
    await page.select_option("#filter-buckets", "week")
    await expect(page.locator("#view-quality")).to_have_attribute("data-state", "ready")
    await expect(page.locator("#quality-error")).to_be_hidden()
    await expect(page.locator("#gate-table tbody td.gate-name")).to_have_text(hostile)
    await expect(page.locator("#combo-table tbody td.combo-gates")).to_have_text(hostile)
    await expect(page.locator("#near-misses figure .gate-name")).to_have_text(hostile)
    await expect(page.locator("#chart-equity .empty")).to_be_visible()
    await expect(page.locator("#strength-table tbody tr.insufficient")).to_have_count(1)
    assert await page.locator("#view-quality img, #view-quality script").count() == 0
    assert await page.evaluate("window.__owned") is None
    # Chromium logs each 5xx answer as a failed resource load; nothing else may be logged.
    watched.assert_clean(allowed_errors=("status of 501", "status of 503"))
