"""The web app in a real browser: the service and ``streamlit run`` on 127.0.0.1, driven by
Debian's headless Chromium through Selenium and its chromedriver (never a downloaded browser:
the driver path is given, so Selenium Manager is not used). Screenshots are saved in the
test's temporary folder."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from app_harness import APP, BIN, Served, csv_bytes
from serve_harness import free_port

from mlrepo.app.forms import form_fields, record_from
from mlrepo.schema import FeatureSchema

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT = 60

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="Debian's chromium and chromium-driver are not installed "
        "(apt-get install -y chromium chromium-driver; .ci/run installs them)",
    ),
]


@pytest.fixture(scope="module")
def app_url(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    env = {**os.environ, **served.env()}
    argv = [
        str(BIN / "streamlit"), "run", str(APP), "--server.address", "127.0.0.1",
        "--server.port", str(port), "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
        "--client.toolbarMode", "viewer",
    ]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, cwd=served.root, env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + WAIT
    try:
        while True:
            assert process.poll() is None, log.read_text(errors="replace")
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=2).text == "ok":
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "streamlit did not start:\n" + log.read_text()
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(20)


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # The driver path is given, so Selenium Manager has nothing to find; offline, it could not
    # download a browser or a driver even if something asked it to.
    monkeypatch.setenv("SE_OFFLINE", "true")

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--disable-dev-shm-usage", "--window-size=1400,1600",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def _wait_for_text(driver: object, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, WAIT).until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), text))


def _element(driver: object, by: str, selector: str, visible: bool = True) -> Any:
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wanted = ec.element_to_be_clickable if visible else ec.presence_of_element_located
    return WebDriverWait(driver, WAIT).until(wanted((by, selector)))


def _wait_for_chart(driver: object) -> None:
    """Until a Vega-Lite chart has drawn (screenshots taken earlier show an empty frame)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    drawn = (By.CSS_SELECTOR, '[data-testid*="VegaLite"] canvas, [data-testid*="VegaLite"] svg')
    WebDriverWait(driver, WAIT).until(ec.visibility_of_element_located(drawn))
    time.sleep(0.5)  # the canvas exists a moment before its bars are painted


def test_a_person_predicts_a_record_and_scores_a_csv(
    served: Served, app_url: str, browser: object, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    info = served.server.client.get("/model").json()
    schema = FeatureSchema.model_validate(info["feature_schema"])

    browser.get(app_url)
    _wait_for_text(browser, "Model version")
    _wait_for_text(browser, info["version"])
    browser.save_screenshot(str(shots / "1-overview.png"))

    browser.get(f"{app_url}/prediction")
    # Not the page title: the sidebar names every page from the start.
    _element(browser, By.XPATH, "//button[normalize-space()='Predict']").click()
    _wait_for_text(browser, "Predicted class")
    fields = form_fields(schema)
    defaults = {f.name: f.default if f.kind == "numeric" else f.options[0] for f in fields}
    expected = served.server.client.post("/predict", json=record_from(fields, defaults)).json()
    values = [
        e.text for e in browser.find_elements(By.CSS_SELECTOR, '[data-testid="stMetricValue"]')
    ]
    assert values[0] == str(expected["class"])
    assert values[1] == f"{max(expected['probabilities'].values()):.1%}"
    _wait_for_chart(browser)
    browser.save_screenshot(str(shots / "2-prediction.png"))

    upload = tmp_path / "batch.csv"
    upload.write_bytes(csv_bytes(served.project.features.head(40)))
    browser.get(f"{app_url}/batch")
    _element(browser, By.CSS_SELECTOR, 'input[type="file"]', visible=False).send_keys(str(upload))
    _wait_for_text(browser, "40 rows scored by model")
    _wait_for_text(browser, "Download predictions (CSV)")
    _wait_for_chart(browser)
    browser.save_screenshot(str(shots / "3-batch.png"))

    # The other pages, for a person to look at: each shows its own figures.
    for name, text in (
        ("analytics", "Latency p95"),
        ("drift", "Drifted features"),
        ("experiments", "Compare two revisions"),
    ):
        browser.get(f"{app_url}/{name}")
        _wait_for_text(browser, text)
        _wait_for_chart(browser) if name == "analytics" else time.sleep(1)
        browser.save_screenshot(str(shots / f"4-{name}.png"))
    assert len(list(shots.glob("*.png"))) == 6
    print(f"screenshots: {shots}")
