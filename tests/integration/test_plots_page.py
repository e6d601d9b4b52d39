"""`dvc plots show`: each plot declared once, oriented and sorted as the PNGs, and the page
rendered offline in headless Chromium.

The browser test drives Debian's chromium through its chromedriver (selenium with both paths
given, so nothing downloads a browser). The page is served from 127.0.0.1; every other host
goes to a local proxy that refuses and records the request, so a script from a CDN would both
fail to load and be named in the failure.
"""

from __future__ import annotations

import http.server
import json
import re
import shutil
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from dvc_harness import Repo

pytestmark = pytest.mark.dvc

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
VEGA_PLOTS = ("Confusion matrix", "ROC curve", "Precision-recall curve", "Permutation importance")
PNG_PLOTS = ("plots/confusion_matrix.png", "plots/roc.png", "plots/feature_importance.png")


def shown_plots(workspace: Repo) -> dict[str, Any]:
    result = workspace.dvc("plots", "show", "--json")
    plots: dict[str, Any] = json.loads(result.stdout)["data"]
    return plots


def drift_pngs(workspace: Repo) -> list[str]:
    return sorted(p.name for p in workspace.path("reports/drift_plots").glob("*.png"))


def test_every_plot_is_shown_once(workspace: Repo) -> None:
    plots = shown_plots(workspace)
    drift = [f"reports/drift_plots/{name}" for name in drift_pngs(workspace)]
    assert drift, "the monitor stage drew no drift plot"
    assert sorted(plots) == sorted([*VEGA_PLOTS, *PNG_PLOTS, *drift])
    for name in VEGA_PLOTS:
        assert len(plots[name]) == 1, f"{name} is drawn {len(plots[name])} times"


def test_the_confusion_matrix_and_importance_read_as_the_pngs(workspace: Repo) -> None:
    plots = shown_plots(workspace)
    confusion = plots["Confusion matrix"][0]["content"]["spec"]["encoding"]
    # As plots/confusion_matrix.png (scikit-learn's display): actual down, predicted across.
    assert confusion["x"]["field"] == "predicted" and confusion["y"]["field"] == "actual"
    assert confusion["y"]["sort"] == "ascending"
    importance = plots["Permutation importance"][0]["content"]["encoding"]
    assert importance["y"]["field"] == "feature"
    assert importance["y"]["sort"] == "-x"  # the largest bar on top, as in the PNG
    assert importance["x"]["scale"] == {"zero": True}  # bars start at zero


def test_moving_plots_to_outs_left_dvc_lock_valid(workspace: Repo) -> None:
    """The stage entries moved from plots: to outs: (cache: false) change nothing DVC records:
    written back as plots:, the reproduced workspace is still up to date."""
    dvc_yaml = workspace.path("dvc.yaml")
    text = dvc_yaml.read_text("utf-8")
    assert workspace.dvc("status").stdout.strip() == "Data and pipelines are up to date."
    old = text.replace(
        "    outs:\n      - plots/confusion.csv:", "    plots:\n      - plots/confusion.csv:"
    )
    old = old.replace("      - reports/drift_plots:", "    plots:\n      - reports/drift_plots:")
    assert old != text
    dvc_yaml.write_text(old, encoding="utf-8")
    assert workspace.dvc("status").stdout.strip() == "Data and pipelines are up to date."


def test_the_page_template_carries_vega_inline_and_no_cdn_placeholder() -> None:
    from dvc_render.vega import VegaRenderer

    template = Path(__file__).resolve().parents[2] / ".dvc" / "plots_offline.html"
    text = template.read_text("utf-8")
    assert "{plot_divs}" in text and "{scripts}" not in text
    assert re.findall(r"<script[^>]*\bsrc=", text) == []
    # The versions dvc-render would load from its CDN are the ones inlined.
    for name, version in re.findall(r"npm/([a-z-]+)@([\d.]+)", VegaRenderer.SCRIPTS):
        assert f"<!-- {name} {version} " in text, f"{name} {version} is not the inlined copy"


class _Refusing(http.server.BaseHTTPRequestHandler):
    """A proxy that lets nothing through and remembers what was asked of it."""

    asked: list[str]

    def _refuse(self) -> None:
        self.asked.append(f"{self.command} {self.path}")
        self.send_error(403, "offline test: no network")

    do_GET = do_POST = do_HEAD = do_CONNECT = _refuse

    def log_message(self, *args: Any) -> None:
        pass


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def _serve(handler: Any) -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, list[str]]]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip(
            "chromium and chromedriver not installed (apt-get install chromium chromium-driver;"
            " .ci/run does it): the offline page is not rendered"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # Both paths are given, so Selenium Manager has nothing to find; offline, it downloads
    # nothing even if it runs.
    monkeypatch.setenv("SE_OFFLINE", "true")
    asked: list[str] = []
    handler = type("Refusing", (_Refusing,), {"asked": asked})
    for proxy in _serve(handler):
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in (
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            f"--proxy-server=http://127.0.0.1:{proxy.server_port}",
            "--window-size=1400,1000",
        ):
            options.add_argument(arg)
        driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
        try:
            yield driver, asked
        finally:
            driver.quit()


COUNT_PANELS = """
const vega = document.querySelectorAll('.vega-embed canvas, .vega-embed svg.marks').length;
const images = [...document.images];
return {
    vega: vega,
    images: images.length,
    loaded: images.filter(i => i.complete && i.naturalWidth > 0).length,
    resources: performance.getEntriesByType('resource').map(e => e.name),
    scripts: [...document.scripts].map(s => s.src).filter(s => s),
    height: document.documentElement.scrollHeight,
};
"""


@pytest.mark.browser
def test_the_plots_page_renders_every_panel_offline(
    workspace: Repo, browser: tuple[Any, list[str]], tmp_path: Path
) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver, asked = browser
    workspace.dvc("plots", "show")
    page = workspace.path("dvc_plots")
    n_png = len(PNG_PLOTS) + len(drift_pngs(workspace))
    for server in _serve(partial(_Quiet, directory=str(page))):
        base = f"http://127.0.0.1:{server.server_port}"
        driver.get(f"{base}/index.html")

        def rendered(driver: Any) -> dict[str, Any] | None:
            counts: dict[str, Any] = driver.execute_script(COUNT_PANELS)
            done = counts["vega"] >= len(VEGA_PLOTS) and counts["loaded"] >= n_png
            return counts if done else None

        try:
            counts = WebDriverWait(driver, 30, poll_frequency=0.25).until(rendered)
        except Exception:
            counts = driver.execute_script(COUNT_PANELS)
            pytest.fail(f"the page did not render offline: {counts}; refused: {asked}")
        driver.set_window_size(1400, min(counts["height"] + 50, 16000))
        driver.save_screenshot(str(tmp_path / "plots_page.png"))
    assert counts["vega"] == len(VEGA_PLOTS)
    assert counts["images"] == counts["loaded"] == n_png
    assert counts["scripts"] == []  # every script inline
    assert all(url.startswith(base) for url in counts["resources"]), counts["resources"]
    # The proxy also refuses the browser's own background calls (time, updates, accounts),
    # which are not the page's: the page fails if it asked for any host its HTML names.
    hosts = set(re.findall(r"https?://([\w.-]+)", page.joinpath("index.html").read_text("utf-8")))
    tried = [line for line in asked if any(host in line for host in hosts)]
    assert tried == [], f"the page tried the network: {tried}"
