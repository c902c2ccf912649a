"""End to end in a real browser: the storefront served by ``shoprec serve``, driven in Debian's headless
Chromium with Playwright. Home feed with reasons, item page with similar and bought-together widgets,
"Add to cart" posting an event that changes the widgets at once, search. A screenshot goes to
``test-artifacts/storefront.png`` at the repository root.

Needs ``/usr/bin/chromium`` (``apt-get install chromium``; .ci/run installs it) and the ``playwright``
package of the test extra; without them the test is skipped locally and fails under CI.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from shoprec.service.store_sqlite import SQLiteStore

from ._server import ServerProcess

CHROMIUM = Path(os.environ.get("SHOPREC_TEST_CHROMIUM", "/usr/bin/chromium"))
#: Chromium's flags on this machine kind: headless as root, and no background connections (the
#: machine's closed network refuses them, many at a time).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TIMEOUT_MS = 30_000

pytestmark = pytest.mark.slow


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI must run the browser test (.ci/run installs Debian's chromium)")
    pytest.skip(f"{reason} (apt-get install -y --no-install-recommends chromium; pip install -e '.[test]')")


@pytest.fixture(scope="session")   # session: set up before the session's trained model, so a skip is quick
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed")
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        _unavailable(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture()
def server(demo_models, tmp_path):
    srv = ServerProcess(demo_models, tmp_path / "events.db", log=tmp_path / "server.log")
    srv.start(timeout=90)
    yield srv
    srv.stop()


def _ids(page, container: str) -> list[str]:
    return page.locator(f"#{container} [data-testid=card]").evaluate_all("els => els.map(e => e.dataset.itemId)")


def _wait_refilled(page, container: str, old_request_id: str | None) -> None:
    """Wait until ``container`` holds cards from a response other than ``old_request_id``."""
    page.wait_for_function(
        """([id, old]) => { const b = document.getElementById(id);
                            return b.dataset.requestId && b.dataset.requestId !== old
                                   && b.querySelectorAll('[data-testid=card]').length > 0; }""",
        arg=[container, old_request_id], timeout=TIMEOUT_MS)


@contextlib.contextmanager
def _page(browser, server, name: str, width: int = 1280):
    """A fresh page that records page errors and console errors in ``page.errors``; on a failure a
    screenshot goes to ``test-artifacts/NAME-failure.png`` and the server's log is printed."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.errors = errors
    try:
        yield page
    except Exception:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{name}-failure.png"), full_page=True)
        print(server.log_tail())
        raise
    finally:
        context.close()


def test_storefront_end_to_end(browser, server):
    with _page(browser, server, "storefront") as page:
        errors = page.errors
        # ---- home: a feed of cards, each with the reason it is there
        page.goto(server.url + "/")
        page.wait_for_selector("body[data-ready='1']")
        cards = page.locator("#home-feed [data-testid=card]")
        assert cards.count() >= 4, page.locator("#home-feed").inner_text()
        reasons = page.locator("#home-feed [data-testid=reason]").all_inner_texts()
        assert len(reasons) == cards.count()
        assert all(r.strip() for r in reasons), reasons
        session = page.evaluate("localStorage.getItem('shoprec-session')")
        assert session

        # ---- item page: click the first card's title
        first = cards.first
        item_id = first.get_attribute("data-item-id")
        title = first.locator("[data-testid=card-title]").inner_text()
        first.locator("[data-testid=card-title]").click()
        page.wait_for_selector("[data-testid=page-item]:not([hidden])")
        page.wait_for_selector(f"#item-detail[data-item-id='{item_id}'] [data-testid=item-title]")
        assert page.locator("[data-testid=item-title]").inner_text() == title
        page.wait_for_selector("#similar [data-testid=card]")
        page.wait_for_selector("#together [data-testid=card]")
        similar, together = _ids(page, "similar"), _ids(page, "together")
        assert similar and item_id not in similar, similar
        assert together and item_id not in together, together
        assert all(r.strip() for r in page.locator("#similar [data-testid=reason]").all_inner_texts())

        # ---- add to cart: an event is posted and the widgets reload with it
        before = {c: page.locator(f"#{c}").get_attribute("data-request-id") for c in ("similar", "together")}
        page.locator("[data-testid=detail-add-to-cart]").click()
        page.wait_for_function("document.getElementById('cart-count').textContent === '1'")
        for c in ("similar", "together"):
            _wait_refilled(page, c, before[c])
        assert item_id not in _ids(page, "together")
        assert not page.locator("#status.error").count(), page.locator("#status").inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "storefront.png"), full_page=True)

        with SQLiteStore(server.store) as store:
            events = [e for chunk in store.iter_events() for e in chunk]
        carts = [e for e in events if e.behaviour == "add_to_cart"]
        assert [(e.item_id, e.session_id) for e in carts] == [(item_id, session)], carts
        views = [e for e in events if e.behaviour == "view" and e.item_id == item_id]
        assert views and views[0].request_id and views[0].scenario == "home" and views[0].position == 1

        # ---- the cart page: complements of the live basket (the page sends no basket, the server
        # knows it from the event), none of them the item in the cart
        page.locator("[data-testid=cart-button]").click()
        page.wait_for_selector("[data-testid=page-cart]:not([hidden])")
        page.wait_for_selector(f"#cart-lines li[data-item-id='{item_id}']")
        page.wait_for_selector("#complements [data-testid=card]")
        complements = _ids(page, "complements")
        assert len(complements) >= 3 and item_id not in complements, complements
        comp_reasons = page.locator("#complements [data-testid=reason]").all_inner_texts()
        assert any(title.lower() in r.lower() for r in comp_reasons), (title, comp_reasons)
        page.screenshot(path=str(ARTIFACTS / "storefront-cart.png"), full_page=True)

        # ---- search
        page.locator("[data-testid=search-input]").fill("christmas lights")
        page.locator("[data-testid=search-input]").press("Enter")
        page.wait_for_selector("[data-testid=page-search]:not([hidden])")
        page.wait_for_selector("#results [data-testid=card]")
        titles = page.locator("#results [data-testid=card-title]").all_inner_texts()
        assert len(titles) >= 3, titles
        assert any("christmas" in t.lower() and "light" in t.lower() for t in titles), titles
        page.screenshot(path=str(ARTIFACTS / "storefront-search.png"), full_page=True)

        assert not errors, errors



def test_experiments_page_shows_the_report_with_plots(browser, server):
    """An A/B test started over the API, traffic and a purchase, then its dashboard page: the table
    per variant, the test's line and the two plots."""
    import time

    import httpx

    from .conftest import PUBLIC_KEY

    admin = {"X-API-Key": server.api_key}
    exp = {"id": "home-ab", "page": "home", "min_visitors": 2,
           "variants": [{"name": "control", "scenario": "home"}, {"name": "trending", "scenario": "first_visit"}]}
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert c.post("/v1/experiments", json=exp, headers=admin).status_code == 201
        for i in range(20):
            body = c.post("/v1/recommendations/home", json={"user_id": f"v{i}", "k": 4}).json()
            if body["experiment"]["variant"] == "trending" and body["items"]:
                ev = {"item_id": body["items"][0]["item_id"], "behaviour": "purchase", "user_id": f"v{i}",
                      "request_id": body["request_id"], "position": 1, "price": 2.5}
                assert c.post("/v1/events", json={"events": [ev]}, headers={"X-API-Key": PUBLIC_KEY}).status_code == 200
    time.sleep(1.0)   # the impression log's batch
    with _page(browser, server, "experiments", width=1100) as page:
        page.goto(f"{server.url}/experiments", timeout=TIMEOUT_MS)
        page.locator("[data-testid=api-key]").fill(server.api_key)
        page.locator("#key-form button").click()
        page.wait_for_selector("[data-testid=experiment-home-ab] svg circle", timeout=TIMEOUT_MS)
        rows = page.locator("[data-testid=experiment-home-ab] tr").all_inner_texts()
        assert len(rows) == 3 and "control" in rows[1] and "trending" in rows[2], rows
        assert "trending vs control" in page.locator("[data-testid=test-trending]").inner_text()
        assert page.locator("[data-testid=experiment-home-ab] svg").count() == 2
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "experiments.png"), full_page=True)
        assert not page.errors, page.errors


def test_marketplace_page_lists_the_bot_visits_held_back(browser, server):
    """A crawler's events posted over the API, then the marketplace-health page: its visit in the bots
    table; the shipped scenarios' price flags and consumer-protection flags in theirs."""
    import httpx

    from .conftest import PUBLIC_KEY

    with httpx.Client(base_url=server.url, timeout=30) as c:
        items = [it["item_id"] for it in c.post("/v1/recommendations/home", json={"k": 10}).json()["items"]]
        events = [{"item_id": items[k % len(items)] if k < len(items) else f"page-{k}", "behaviour": "view",
                   "session_id": "crawler-7", "timestamp": 1_800_000_000 + k} for k in range(40)]
        assert c.post("/v1/events", json={"events": events}, headers={"X-API-Key": PUBLIC_KEY}).status_code == 200
    with _page(browser, server, "marketplace", width=1100) as page:
        page.goto(f"{server.url}/marketplace", timeout=TIMEOUT_MS)
        page.locator("[data-testid=api-key]").fill(server.api_key)
        page.locator("#key-form button").click()
        page.wait_for_selector("[data-testid=bots] table", timeout=TIMEOUT_MS)
        rows = page.locator("[data-testid=bots] tr").all_inner_texts()
        assert any("crawler-7" in r and "crawler" in r for r in rows), rows
        prices = page.locator("[data-testid=prices]").inner_text()
        assert "flagged item(s), scenario" in prices and "its usual" in prices
        page.wait_for_selector("[data-testid=protection] p", timeout=TIMEOUT_MS)
        assert "flagged item(s), scenario" in page.locator("[data-testid=protection]").inner_text()
        page.wait_for_selector("[data-testid=exposure] p", timeout=TIMEOUT_MS)
        assert "seller, brand or category" in page.locator("[data-testid=exposure]").inner_text() \
            or "grouped by" in page.locator("[data-testid=exposure]").inner_text()
