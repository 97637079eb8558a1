"""The emulator's page in a real browser: headless Chromium, driven by Selenium through the
system's chromedriver, after a real target run of the four streams into the emulator. The page
shows the store's counts, marks the unlinked deal, narrows its rows to a search, shows a name
written in HTML as text, and reloads itself only while the run goes on. A screenshot is kept in
test-artifacts/ (its path is printed at the end of the test session).

`make pytest` installs Debian's chromium and chromium-driver where it can (as root, with
apt-get); elsewhere this test is skipped, saying so, except in CI, where it fails instead.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.expected_conditions import staleness_of
from support import config_for, deal, pipeline, record, run_in_process, schema, wait_until
from test_accounts import ACCOUNT_SCHEMA, seed_field
from test_sales_activities import OPEN_SCHEMA, activity

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
# Headless, as root, on a machine whose only network is loopback: without the background
# networking flags Chromium's own connections are refused and slow it down.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)
HTML_NAME = "<b>Big</b> deal <script>document.title='pwned'</script>"
TITLE = "What Recotap holds: recotap-emulator"
DEALS = 12


@pytest.fixture
def browser(tmp_path):
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and chromedriver):
        why = (
            "no chromium and chromedriver on PATH: `make pytest` installs Debian's chromium and"
            " chromium-driver where it runs as root with apt-get"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser test: {why}")
        pytest.skip(why)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def crm_messages() -> list[dict]:
    """Two accounts, then deals naming them (one names a domain no account has, one is named in
    HTML), a pipeline, and two calls."""
    accounts = [
        {"domain": "https://www.Acme.com/", "name": "Acme", "customFields": {"REGION_C": "EMEA"}},
        {"domain": "globex.example", "name": "Globex"},
    ]
    deals = [
        deal(n, associatedAccounts=[{"domain": "acme.com" if n % 2 else "globex.example"}])
        for n in range(1, DEALS - 1)
    ]
    deals += [
        deal("orphan", associatedAccounts=[{"domain": "www.nowhere.example"}]),
        deal("html", name=HTML_NAME),
    ]
    return [
        schema("accounts", ACCOUNT_SCHEMA),
        *(record("accounts", account) for account in accounts),
        schema("deals"),
        *(record("deals", d) for d in deals),
        schema("deal_stages"),
        record("deal_stages", pipeline("p-1", stages=3)),
        schema("sales_activities", OPEN_SCHEMA),
        record("sales_activities", activity(1)),
        record("sales_activities", activity(2, domain="globex.example")),
    ]


def text(browser, selector: str) -> str:
    return str(browser.find_element(By.CSS_SELECTOR, selector).text)


def row_ids(browser, section: str) -> list[str]:
    found = browser.find_elements(By.CSS_SELECTOR, f"#{section} tbody tr")
    return [str(row.get_attribute("data-id")) for row in found]


def search(browser, words: str) -> None:
    """Type ``words`` into the page's search box and send the form, as a person would."""
    box = browser.find_element(By.ID, "q")
    box.clear()
    box.send_keys(words)
    follow(browser, browser.find_element(By.CSS_SELECTOR, "form button[type=submit]"))


def follow(browser, element) -> None:
    """Click ``element`` and wait for the page it leads to."""
    before = browser.find_element(By.TAG_NAME, "body")
    element.click()
    wait_until(lambda: staleness_of(before)(browser), "the next page")


def reloading(browser) -> bool | None:
    """Whether the page asks to be reloaded; None while it is not all there yet."""
    try:
        if not browser.find_elements(By.ID, "totals"):
            return None
        return bool(browser.find_elements(By.CSS_SELECTOR, "meta[http-equiv=refresh]"))
    except StaleElementReferenceException:
        return None


def test_the_page_in_a_browser_after_a_real_run(browser, emulator, capsys, record_property):
    seed_field(emulator, "REGION_C")
    emulator.faults.retry_after = 0
    emulator.faults.script.append("429")  # the run's first request is throttled, then retried
    outcome = run_in_process(config_for(emulator), crm_messages(), capsys)
    assert outcome.exit_code == 0, outcome.log
    store = emulator.store

    # Right after the run the page reloads itself, and stops once the run is over.
    browser.get(emulator.page_url)
    assert reloading(browser) is True
    first = browser.find_element(By.TAG_NAME, "html")
    wait_until(lambda: reloading(browser) is False, "the page to stop reloading", timeout=40)
    assert staleness_of(first)(browser), "the page did not reload by itself"
    assert browser.title == TITLE

    # The counts are the store's.
    stats = store.stats()
    for kind in ("accounts", "deals", "pipelines", "activities", "requests"):
        assert text(browser, f"#total-{kind}") == f"{stats[kind]:,}"
    assert row_ids(browser, "deals") == list(store.deals())
    assert row_ids(browser, "accounts") == ["acme.com", "globex.example"]
    assert len(store.deals()) == DEALS
    assert store.unlinked_deal_ids() == ["deal-orphan"]
    assert text(browser, "#unlinked-summary").startswith(
        f"1 of {DEALS} deals name a domain Recotap has no account for"
    )
    assert "429" in text(browser, "#requests tr.faulty")
    assert "throttled" in text(browser, "#requests tr.faulty")

    # The unlinked deal is marked, and stands out.
    orphan = browser.find_element(By.CSS_SELECTOR, "#deals tr[data-id='deal-orphan']")
    assert "✗ unlinked" in orphan.text
    assert "nowhere.example: UNLINKED" in orphan.text
    linked = browser.find_element(By.CSS_SELECTOR, "#deals tr[data-id='deal-1']")
    assert "✓ linked" in linked.text
    background = "background-color"
    assert orphan.find_element(By.TAG_NAME, "td").value_of_css_property(
        background
    ) != linked.find_element(By.TAG_NAME, "td").value_of_css_property(background)

    # A name written in HTML is shown as that text: no element made of it, no script run.
    named = browser.find_element(By.CSS_SELECTOR, "#deals tr[data-id='deal-html']")
    assert named.find_elements(By.TAG_NAME, "td")[1].text == HTML_NAME  # the ID, the name
    assert browser.find_elements(By.CSS_SELECTOR, "main b, main script") == []
    assert browser.title == TITLE

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "emulator-page.png"
    # The whole page in one picture: a window as tall as the page (which is short here).
    height = browser.find_element(By.TAG_NAME, "html").size["height"]
    browser.set_window_size(1400, min(height + 200, 6000))
    assert browser.save_screenshot(str(screenshot))
    record_property("artifact", str(screenshot))

    # A search narrows the rows, by ID and by domain.
    search(browser, "deal-7")
    assert row_ids(browser, "deals") == ["deal-7"]
    assert row_ids(browser, "accounts") == []
    assert f"(1 of {DEALS} match)" in text(browser, "#deals h2")
    search(browser, "https://acme.com/pricing")  # a URL finds the domain it cleans to
    assert row_ids(browser, "accounts") == ["acme.com"]
    assert row_ids(browser, "deals") == [f"deal-{n}" for n in range(1, DEALS - 1, 2)]
    assert row_ids(browser, "activities") == ["act-1"]
    follow(browser, browser.find_element(By.LINK_TEXT, "Show only those"))
    assert row_ids(browser, "deals") == ["deal-orphan"]
