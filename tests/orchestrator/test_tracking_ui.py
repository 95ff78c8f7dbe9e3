"""The MLflow UI in headless Chromium: the experiment, the front filtered by tag, a run's plot.

Screenshots are kept under the test's tmp directory (``screenshots/``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.tracking import FRONT_TAG
from tests.orchestrator.test_tracking_server import ServerSearch

pytestmark = [pytest.mark.slow, pytest.mark.integration]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium "
                    "chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1600,1000", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


def _wait_for_text(driver: Any, text: str, timeout: float = 90) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(lambda d: text in d.find_element("tag name", "body").text,
                                         message=f"page never showed {text!r}")


def test_ui_shows_the_experiment_filters_the_front_and_opens_a_plot(
        server_search: ServerSearch, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    shots = tmp_path / "screenshots"
    shots.mkdir()
    uri = server_search.config.tracking.uri
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(server_search.config.tracking.experiment)
    runs = client.search_runs([experiment.experiment_id],
                              filter_string=f"tags.mlflow.parentRunId = "
                                            f"'{server_search.result.run_id}'")
    front = [r for r in runs if r.data.tags[FRONT_TAG] == "true"]
    others = [r for r in runs if r.data.tags[FRONT_TAG] != "true"]

    # The experiment opens on its runs in the model-training view.
    browser.get(f"{uri}/#/experiments/{experiment.experiment_id}?workflowType=machine_learning")
    parent_name = client.get_run(server_search.result.run_id).info.run_name
    _wait_for_text(browser, parent_name)
    assert "/runs" in browser.current_url
    for close in browser.find_elements(By.CSS_SELECTOR, "button[aria-label=Close]"):
        close.click()  # the assistant side panel
    browser.save_screenshot(str(shots / "1-experiment.png"))

    # Filter the front by its tag in the runs search box, then unfold the search's children.
    box = browser.find_element(By.CSS_SELECTOR, "input[data-testid=search-box]")
    box.click()
    box.send_keys(f'tags.`{FRONT_TAG}` = "true"', Keys.ENTER)
    WebDriverWait(browser, 60).until(
        lambda d: "searchFilter=tags" in d.current_url, message="the filter was not applied")
    row = WebDriverWait(browser, 60).until(lambda d: d.find_element(
        By.CSS_SELECTOR, f"[role=row][row-id='{server_search.result.run_id}']"))
    row.find_element(By.CSS_SELECTOR, "button[data-component-id*=runnamecellrenderer]").click()
    for run in front:
        _wait_for_text(browser, run.info.run_name)
    WebDriverWait(browser, 60).until(
        lambda d: not any(r.info.run_name in d.find_element(By.TAG_NAME, "body").text
                          for r in others), message="non-front runs still listed")
    browser.save_screenshot(str(shots / "2-front-filtered.png"))

    # A front run's interactive plot opens in the artifact viewer.
    member = front[0]
    browser.get(f"{uri}/#/experiments/{experiment.experiment_id}/runs/{member.info.run_id}"
                f"/artifacts/plots/front.html")
    frame = WebDriverWait(browser, 90).until(
        lambda d: next(iter(d.find_elements(By.TAG_NAME, "iframe")), None),
        message="the HTML artifact was not rendered")
    browser.switch_to.frame(frame)
    WebDriverWait(browser, 90).until(lambda d: d.find_elements(By.CSS_SELECTOR, "svg"),
                                     message="the run's plot was not drawn")
    assert member.data.tags["paretonas.arch_key"] in browser.page_source
    browser.switch_to.default_content()
    browser.save_screenshot(str(shots / "3-front-run-plot.png"))
    assert sorted(p.name for p in shots.iterdir()) == [
        "1-experiment.png", "2-front-filtered.png", "3-front-run-plot.png"]
