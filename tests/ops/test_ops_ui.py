"""The Dagster UI end to end in headless Chromium: `shardsmith build` records its runs in a persistent
instance (as `make demo` does), then `dagster dev` on loopback over that instance shows every asset
group, a materialised asset with its metadata, and the Materialize button of ``vindr_cxr_catalog``
launches a run that succeeds."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ops_services import REPO, demo_home, free_port, need_module, stop, wait_port
from skip_policy import need

pytestmark = pytest.mark.services

CHROMIUM = Path("/usr/bin/chromium")
DRIVER = Path("/usr/bin/chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage",
         "--window-size=1600,1000"]


def _browser(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for f in [*FLAGS, f"--user-data-dir={profile}"]:
        opts.add_argument(f)
    return webdriver.Chrome(options=opts, service=Service(executable_path=str(DRIVER)))


def _wait_text(driver, texts: list[str], timeout: float) -> str:
    """Wait until one of ``texts`` is on the page; return the one found."""
    from selenium.webdriver.support.ui import WebDriverWait

    def found(d) -> str | None:
        body = d.find_element("tag name", "body").text
        return next((t for t in texts if t in body), None)

    return WebDriverWait(driver, timeout, poll_frequency=0.5).until(found, message=f"none of {texts[:5]} shown")


def _dismiss_prompt(driver) -> None:
    """The UI's first-visit newsletter dialog covers the page; skip it when it is there."""
    from selenium.webdriver.common.by import By

    for b in driver.find_elements(By.XPATH, "//button[normalize-space(.)='Skip']"):
        if b.is_displayed():
            b.click()


def test_ui_shows_groups_and_materializes_a_catalog(tmp_path):
    if not (CHROMIUM.exists() and DRIVER.exists()):
        need("services", "chromium / chromium-driver missing (apt-get install chromium chromium-driver; "
                         "scripts/bootstrap.sh does it)")
    need_module("selenium")
    from selenium.common.exceptions import TimeoutException, WebDriverException
    from selenium.webdriver.common.by import By

    from shardsmith.definitions import defs

    groups: dict[str, list[str]] = {}
    for a in defs.assets:
        for k in a.keys:
            groups.setdefault(a.group_names_by_key[k], []).append(k.to_user_string())
    home = demo_home(tmp_path)
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    port = free_port()
    bindir = Path(sys.executable).parent
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "SHARDSMITH_HOME": str(home), "SHARDSMITH_DEMO": "1",
           "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    built = subprocess.run([str(bindir / "shardsmith"), "build", "--home", str(home), "--json"], env=env,
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    log = open(tmp_path / "dagster-dev.log", "w")
    server = subprocess.Popen([str(bindir / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port)], cwd=REPO,
                              env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    driver = None
    try:
        wait_port(port, 45, server)
        base = f"http://127.0.0.1:{port}"
        driver = _browser(tmp_path / "chromium-profile")
        for group, names in sorted(groups.items()):  # every asset group has its page, its assets drawn
            driver.get(f"{base}/locations/shardsmith/asset-groups/{group}")
            _wait_text(driver, names, 45)

        # what the CLI built is in the instance: the records asset shows its materialisation metadata
        driver.get(f"{base}/assets/medical_release")
        _wait_text(driver, ["content_digest"], 45)

        driver.get(f"{base}/assets/vindr_cxr_catalog")
        _wait_text(driver, ["images_on_disk"], 45)
        launched = False
        for _ in range(15):  # the first-visit dialog may pop up over the button: dismiss, click again
            try:
                _dismiss_prompt(driver)
                driver.find_element(By.XPATH, "//button[normalize-space(.)='Materialize']").click()
                _wait_text(driver, ["Launched run"], 4)
                launched = True
                break
            except (TimeoutException, WebDriverException):  # covered, re-rendered or not drawn yet
                time.sleep(1)
                continue
        assert launched, "the Materialize button did not launch a run"
        deadline = time.monotonic() + 180  # a loaded 2-core machine runs it slowly
        while time.monotonic() < deadline:  # the runs page shows the run finished
            driver.get(f"{base}/runs")
            time.sleep(2)
            body = driver.find_element(By.TAG_NAME, "body").text
            if "Success" in body or "Failure" in body:
                break
        assert "Success" in body, body[-1500:]
        assert (home / "staging" / "vindr_cxr" / "catalog.parquet").is_file()
    finally:
        if driver is not None:
            driver.quit()
        stop(server, 20)
        log.close()
