"""Take the README's MLflow UI screenshots with headless Chromium (Debian's chromium + driver).

    .venv/bin/python docs/screenshots.py http://127.0.0.1:5000 paretonas-quickstart

Writes docs/images/mlflow-front-runs.png (the front filtered by its tag) and
docs/images/mlflow-register-model.png (a front member's logged model, Register model).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mlflow.tracking import MlflowClient
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

IMAGES = Path(__file__).resolve().parent / "images"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("experiment")
    args = parser.parse_args()
    client = MlflowClient(args.url)
    experiment = client.get_experiment_by_name(args.experiment)
    parent = client.search_runs([experiment.experiment_id], "tags.`paretonas.kind` = 'search'",
                                order_by=["attributes.start_time DESC"], max_results=1)[0]
    best = client.search_runs(
        [experiment.experiment_id],
        f"tags.`paretonas.search_id` = '{parent.data.tags['paretonas.search_id']}' "
        f"and tags.`paretonas.pareto_front` = 'true'",
        order_by=["metrics.accuracy DESC"], max_results=1)[0]

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1400,820"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    wait = WebDriverWait(driver, 120)
    try:
        driver.get(f"{args.url}/#/experiments/{experiment.experiment_id}"
                   f"?workflowType=machine_learning")
        box = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "input[data-testid=search-box]"))
        _close_assistant(driver)
        box.click()
        box.send_keys('tags.`paretonas.pareto_front` = "true"', Keys.ENTER)
        row = wait.until(lambda d: d.find_element(
            By.CSS_SELECTOR, f"[role=row][row-id='{parent.info.run_id}']"))
        row.find_element(By.CSS_SELECTOR, "button[data-component-id*=runnamecellrenderer]").click()
        wait.until(lambda d: best.info.run_name in d.find_element(By.TAG_NAME, "body").text)
        time.sleep(2)
        IMAGES.mkdir(exist_ok=True)
        driver.save_screenshot(str(IMAGES / "mlflow-front-runs.png"))

        model_id = best.data.tags["paretonas.model_id"]
        driver.get(f"{args.url}/#/experiments/{experiment.experiment_id}/models/{model_id}"
                   f"?workflowType=machine_learning")
        wait.until(lambda d: "Register model" in d.find_element(By.TAG_NAME, "body").text)
        _close_assistant(driver)
        time.sleep(2)
        driver.save_screenshot(str(IMAGES / "mlflow-register-model.png"))
    finally:
        driver.quit()
    print(f"wrote {IMAGES}/mlflow-front-runs.png and mlflow-register-model.png")


def _close_assistant(driver: webdriver.Chrome) -> None:
    for button in driver.find_elements(By.CSS_SELECTOR, "button[aria-label=Close]"):
        if button.is_displayed():
            button.click()


if __name__ == "__main__":
    main()
